//! Rewriting a copy of an embedded store file: what `caseledger seal-log`
//! needs to turn a log written before personal data was sealed into the
//! sealed form without ever editing the original file.
//!
//! The steps, each a function here: [`checkpoint`] the original (its WAL
//! folded into it), [`hold_writes`] on it while the work runs, [`copy_store`]
//! it to a new file, [`PayloadRewriter`] replaces the stored form of events
//! in the copy, [`rechain`] links the copy's events anew, and [`compact`]
//! leaves the copy without a free page or a WAL that could still hold the
//! bytes it replaced.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params};
use uuid::Uuid;

use super::{backend, fill_chain, to_i64};
use crate::StoreError;
use crate::chain::ChainLink;

/// How long each step waits for another connection's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Backend(format!(
            "no event store at {}",
            path.display()
        )));
    }
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| StoreError::Backend(format!("cannot open {}: {error}", path.display())))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    Ok(connection)
}

/// Fold the WAL of the store file at `path` into the file (a WAL left by a
/// server that was killed included), then close it. Fails when another
/// connection keeps part of the WAL from being folded in.
pub fn checkpoint(path: &Path) -> Result<(), StoreError> {
    let connection = open_existing(path)?;
    let (busy, frames, done): (i64, i64, i64) = connection
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .map_err(backend)?;
    if busy != 0 || frames != done {
        return Err(StoreError::Backend(format!(
            "{} is in use by another process (its WAL could not be folded in)",
            path.display()
        )));
    }
    connection.close().map_err(|(_, error)| backend(error))?;
    Ok(())
}

/// The write lock of a store file, held while this value lives: appends of
/// other processes wait and then fail instead of landing in a file that is
/// being replaced. Readers go on.
#[derive(Debug)]
pub struct WriteHold {
    connection: Connection,
}

/// Take the write lock of the store file at `path` (see [`WriteHold`]).
pub fn hold_writes(path: &Path) -> Result<WriteHold, StoreError> {
    let connection = open_existing(path)?;
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(|error| {
            StoreError::Backend(format!(
                "{} is being written by another process: {error}",
                path.display()
            ))
        })?;
    Ok(WriteHold { connection })
}

impl WriteHold {
    /// Let go of the lock (nothing was written) and close the connection.
    pub fn release(self) -> Result<(), StoreError> {
        self.connection.execute_batch("ROLLBACK").map_err(backend)?;
        self.connection.close().map_err(|(_, error)| backend(error))
    }
}

/// Copy the store file at `from` to the new file `to` (which must not
/// exist): a consistent snapshot of the committed log, through SQLite's
/// `VACUUM INTO`, with no free pages. The copy keeps the original's schema
/// version; [`super::SqliteStore::open`] upgrades it.
pub fn copy_store(from: &Path, to: &Path) -> Result<(), StoreError> {
    if to.exists() {
        return Err(StoreError::Backend(format!(
            "{} exists already",
            to.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| StoreError::Backend(format!("{} is not a UTF-8 path", to.display())))?;
    let connection = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| StoreError::Backend(format!("cannot open {}: {error}", from.display())))?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(backend)?;
    connection
        .execute("VACUUM INTO ?1", [target])
        .map_err(|error| {
            StoreError::Backend(format!(
                "copying {} to {}: {error}",
                from.display(),
                to.display()
            ))
        })?;
    connection.close().map_err(|(_, error)| backend(error))
}

/// Replaces the stored form (schema version and payload) of events in a
/// store file, in one transaction: position, stream, revision, id, type,
/// recorded_at and metadata stay as they are. The hash chain is not
/// touched: [`rechain`] the file afterwards.
pub struct PayloadRewriter {
    connection: Connection,
    replaced: u64,
}

impl std::fmt::Debug for PayloadRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadRewriter")
            .field("replaced", &self.replaced)
            .finish_non_exhaustive()
    }
}

impl PayloadRewriter {
    /// Begin rewriting the store file at `path` (an existing store of the
    /// current schema; freed bytes are overwritten, `secure_delete`).
    pub fn begin(path: &Path) -> Result<PayloadRewriter, StoreError> {
        let connection = open_existing(path)?;
        connection
            .execute_batch("PRAGMA secure_delete = ON; BEGIN IMMEDIATE")
            .map_err(backend)?;
        Ok(PayloadRewriter {
            connection,
            replaced: 0,
        })
    }

    /// Store `payload` at `schema_version` for the event at `position`,
    /// which must be the event `id`.
    pub fn replace(
        &mut self,
        position: u64,
        id: Uuid,
        schema_version: u16,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        let changed = self
            .connection
            .prepare_cached(
                "UPDATE events SET schema_version = ?3, payload = ?4 \
                 WHERE position = ?1 AND event_id = ?2",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    to_i64(position),
                    id.as_bytes(),
                    schema_version,
                    payload
                ])
            })
            .map_err(backend)?;
        if changed != 1 {
            return Err(StoreError::Backend(format!(
                "no event {id} at position {position}"
            )));
        }
        self.replaced += 1;
        Ok(())
    }

    /// Commit every replacement; returns how many there were.
    pub fn commit(self) -> Result<u64, StoreError> {
        self.connection.execute_batch("COMMIT").map_err(backend)?;
        self.connection
            .close()
            .map_err(|(_, error)| backend(error))?;
        Ok(self.replaced)
    }
}

/// Compute the hash-chain link of every event of the store file at `path`
/// anew, in position order (after their stored bytes were rewritten), and
/// return the new head (`None` for an empty log).
pub fn rechain(path: &Path) -> Result<Option<ChainLink>, StoreError> {
    let mut connection = open_existing(path)?;
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    fill_chain(&transaction)?;
    let tip = super::chain_tip(&transaction)?;
    transaction.commit().map_err(backend)?;
    connection.close().map_err(|(_, error)| backend(error))?;
    Ok((tip.position > 0).then_some(ChainLink {
        position: tip.position,
        link: tip.link,
    }))
}

/// Rebuild the store file at `path` so that no free page keeps bytes of
/// rows that were replaced (`VACUUM`), fold its WAL into it and close it:
/// its `-wal` and `-shm` files are gone afterwards.
pub fn compact(path: &Path) -> Result<(), StoreError> {
    let connection = open_existing(path)?;
    connection
        .execute_batch("PRAGMA secure_delete = ON; VACUUM")
        .map_err(backend)?;
    connection.close().map_err(|(_, error)| backend(error))?;
    checkpoint(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{SqliteLogReader, SqliteOptions, SqliteStore};
    use crate::{EventMetadata, EventStore, ExpectedRevision, NewEvent};

    fn event(payload: &[u8]) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            type_name: "Test".to_owned(),
            schema_version: 1,
            metadata: EventMetadata {
                actor: "test".into(),
                correlation_id: Uuid::nil(),
                causation_id: None,
                occurred_at: chrono::Utc::now(),
            },
            payload: payload.to_vec(),
        }
    }

    /// Position, id, schema version, payload and link of a stored event.
    type Row = (u64, Vec<u8>, u16, Vec<u8>, Vec<u8>);

    fn scan(path: &Path) -> Vec<Row> {
        let mut reader = SqliteLogReader::open(path).unwrap();
        let mut rows = Vec::new();
        reader
            .for_each_between::<StoreError>(0, u64::MAX, usize::MAX, |event| {
                rows.push((
                    event.position,
                    event.id_bytes.to_vec(),
                    event.schema_version,
                    event.payload.to_vec(),
                    event.chain.to_vec(),
                ));
                Ok(())
            })
            .unwrap();
        rows
    }

    #[tokio::test]
    async fn a_rewritten_copy_keeps_every_event_in_place_and_the_original_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("events.sqlite3");
        let store = SqliteStore::open(&original, SqliteOptions::default()).unwrap();
        let secret = b"a secret in clear".as_slice();
        for payload in [b"one".as_slice(), secret, b"three"] {
            store
                .append("s", ExpectedRevision::Any, vec![event(payload)])
                .await
                .unwrap();
        }
        drop(store);
        checkpoint(&original).unwrap();
        let before = scan(&original);
        let original_bytes = std::fs::read(&original).unwrap();

        let copy = dir.path().join("events.sqlite3.sealing");
        let hold = hold_writes(&original).unwrap();
        copy_store(&original, &copy).unwrap();
        assert!(copy_store(&original, &copy).is_err(), "never overwritten");
        let id = Uuid::from_slice(&before[1].1).unwrap();
        let mut rewriter = PayloadRewriter::begin(&copy).unwrap();
        assert!(rewriter.replace(2, Uuid::nil(), 2, b"x").is_err());
        rewriter.replace(2, id, 0x8001, b"sealed").unwrap();
        assert_eq!(rewriter.commit().unwrap(), 1);
        let head = rechain(&copy).unwrap().expect("a head");
        compact(&copy).unwrap();
        hold.release().unwrap();

        let after = scan(&copy);
        assert_eq!(after.len(), 3);
        assert_eq!(head.position, 3);
        assert_eq!(after[2].4, head.link.to_vec());
        assert_eq!(
            (after[0].0, &after[0].3, &after[0].4),
            (1, &before[0].3, &before[0].4)
        );
        assert_eq!(
            (&after[1].1, after[1].2, after[1].3.as_slice()),
            (&before[1].1, 0x8001, b"sealed".as_slice())
        );
        assert_ne!(after[1].4, before[1].4, "the chain is linked anew");
        let copy_bytes = std::fs::read(&copy).unwrap();
        assert!(!copy_bytes.windows(secret.len()).any(|w| w == secret));
        assert!(!Path::new(&format!("{}-wal", copy.display())).exists());
        assert_eq!(std::fs::read(&original).unwrap(), original_bytes);
        // The copy opens as a store, and its chain is whole.
        let reopened = SqliteStore::open(&copy, SqliteOptions::default()).unwrap();
        let links = reopened.read_chain(0, 10).await.unwrap();
        assert_eq!(links.last().map(|l| l.link), Some(head.link));
    }

    #[test]
    fn a_held_file_refuses_a_second_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let hold = hold_writes(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(Duration::from_millis(50)).unwrap();
        assert!(other.execute_batch("BEGIN IMMEDIATE").is_err());
        hold.release().unwrap();
        other.execute_batch("BEGIN IMMEDIATE; ROLLBACK").unwrap();
    }
}
