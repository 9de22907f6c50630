//! A read-only view of an embedded store file for tools that run beside the
//! server (the replay tool, audits): opened with `SQLITE_OPEN_READ_ONLY`, it
//! never creates a file or a schema, never takes the write lock, and reads
//! the global log in pages without copying each row into owned values.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, params};
use uuid::Uuid;

use super::{
    NameCache, ReadConnection, SCHEMA_VERSION, backend, blob, corrupt_metadata, decode_metadata,
    keep_plans, limit_i64, to_i64, user_version,
};
use crate::{Bytes, Direction, EventMetadata, RecordedEvent, StoreError, StreamStart};

/// How long a read waits for a writer's lock (only checkpoints take one).
const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One stored event, borrowed from the row being read: nothing is decoded
/// or copied until asked for.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    /// Position in the global log, from 1.
    pub position: u64,
    /// Name of the stream.
    pub stream: &'a str,
    /// The store's number of the stream: dense from 1, fixed for the life of
    /// the file. Cheap to index per-stream state by.
    pub stream_number: u64,
    /// Revision within the stream, from 0.
    pub revision: u64,
    /// Stable type name.
    pub type_name: &'a str,
    /// Schema version of `payload`.
    pub schema_version: u16,
    /// Stored event id bytes (16 in an intact file).
    pub id_bytes: &'a [u8],
    /// Microseconds since the Unix epoch at which the event was committed.
    pub recorded_at_micros: i64,
    /// Stored metadata bytes; see [`EventRef::metadata`].
    pub metadata_bytes: &'a [u8],
    /// postcard bytes of the versioned wire type.
    pub payload: &'a [u8],
    /// The stored hash-chain link ([`crate::chain`]); empty in a file of
    /// a schema older than version 3.
    pub chain: &'a [u8],
}

impl EventRef<'_> {
    /// What the hash chain covers of this event.
    pub fn chained(&self) -> crate::chain::ChainedEvent<'_> {
        crate::chain::ChainedEvent {
            position: self.position,
            stream: self.stream,
            revision: self.revision,
            id: self.id_bytes,
            type_name: self.type_name,
            schema_version: self.schema_version,
            recorded_at_micros: self.recorded_at_micros,
            metadata: self.metadata_bytes,
            payload: self.payload,
        }
    }

    /// The event id, or an error naming the position when the bytes are not an id.
    pub fn id(&self) -> Result<Uuid, StoreError> {
        Uuid::from_slice(self.id_bytes).map_err(|_| {
            StoreError::Backend(format!("corrupt event id at position {}", self.position))
        })
    }

    /// When the event was committed.
    pub fn recorded_at(&self) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(self.recorded_at_micros).ok_or_else(|| {
            StoreError::Backend(format!("corrupt recorded_at at position {}", self.position))
        })
    }

    /// The decoded envelope metadata.
    pub fn metadata(&self) -> Result<EventMetadata, StoreError> {
        decode_metadata(self.metadata_bytes, self.position)
    }

    /// Whether [`EventRef::metadata`] would decode, without building it.
    pub fn check_metadata(&self) -> Result<(), StoreError> {
        if crate::metadata_wire::is_valid(self.metadata_bytes) {
            Ok(())
        } else {
            Err(corrupt_metadata(self.position))
        }
    }

    /// An owned copy with decoded metadata.
    pub fn to_recorded(&self) -> Result<RecordedEvent, StoreError> {
        Ok(RecordedEvent {
            id: self.id()?,
            stream: Arc::from(self.stream),
            revision: self.revision,
            position: self.position,
            type_name: Arc::from(self.type_name),
            schema_version: self.schema_version,
            recorded_at: self.recorded_at()?,
            metadata: self.metadata()?,
            payload: Bytes::copy_from_slice(self.payload),
        })
    }
}

/// What a fold needs of one stored event, borrowed from the row being read
/// (see [`SqliteLogReader::for_each_payload_between`]).
#[derive(Debug, Clone, Copy)]
pub struct PayloadRef<'a> {
    /// Position in the global log, from 1.
    pub position: u64,
    /// Name of the stream (empty when names are skipped).
    pub stream: &'a str,
    /// The store's number of the stream, as [`EventRef::stream_number`].
    pub stream_number: u64,
    /// Stable type name.
    pub type_name: &'a str,
    /// Schema version of `payload`.
    pub schema_version: u16,
    /// postcard bytes of the versioned wire type.
    pub payload: &'a [u8],
    /// The event's id (16 bytes): what its sealed fields are bound to.
    pub id_bytes: &'a [u8],
}

/// A read-only reader of an embedded store file. Synchronous; safe while
/// another process (the server) writes the same file: every page is its own
/// read transaction and sees a gap-free prefix of the log.
pub struct SqliteLogReader {
    path: PathBuf,
    reader: ReadConnection,
    /// Stream names by stream number, loaded in bulk.
    stream_names: StreamNames,
    /// Scans leave [`EventRef::stream`] empty (see [`SqliteLogReader::skip_stream_names`]).
    skip_names: bool,
    /// The file's schema version.
    version: i64,
}

impl std::fmt::Debug for SqliteLogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLogReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteLogReader {
    /// Open the store file at `path` read-only. Refuses a missing file (it
    /// is never created), a file without a store schema, and a schema newer
    /// than this program's ([`StoreError::SchemaTooNew`]).
    pub fn open(path: &Path) -> Result<SqliteLogReader, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Backend(format!(
                "no event store at {}",
                path.display()
            )));
        }
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|error| StoreError::Backend(format!("cannot open {}: {error}", path.display())))?;
        keep_plans(&connection)?;
        connection
            .busy_timeout(READ_BUSY_TIMEOUT)
            .map_err(backend)?;
        connection
            // No memory mapping: a long scan through 4 KiB mappings (a
            // TLB miss per page, dear under a hypervisor's nested paging)
            // measured slower than `read()` copying each page into
            // SQLite's cache (BENCHMARKS.md, `replay-tool verify`). The
            // store's small read cache, so that a scan's buffers stay in
            // the CPU's caches.
            .execute_batch(&format!(
                "PRAGMA query_only = ON; PRAGMA cache_size = -{}; PRAGMA mmap_size = 0;",
                super::READ_CACHE_KIB
            ))
            .map_err(backend)?;
        connection.set_prepared_statement_cache_capacity(16);
        let version = user_version(&connection)?;
        match version {
            // Version 1 differs by the values beside the log, 2 by the
            // chain, 3 by the key table.
            1..=SCHEMA_VERSION => {}
            0 => {
                return Err(StoreError::Backend(format!(
                    "{} holds no event store schema",
                    path.display()
                )));
            }
            found if found > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    path: path.display().to_string(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            found => {
                return Err(StoreError::Backend(format!(
                    "{} has unknown schema version {found}",
                    path.display()
                )));
            }
        }
        Ok(SqliteLogReader {
            path: path.to_path_buf(),
            reader: ReadConnection {
                connection,
                names: NameCache::default(),
                payload_hint: 0,
            },
            stream_names: StreamNames::default(),
            skip_names: false,
            version,
        })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Position of the last committed event (0 when the log is empty).
    pub fn head(&mut self) -> Result<u64, StoreError> {
        self.reader.head()
    }

    /// Whether scans leave [`EventRef::stream`] empty instead of resolving
    /// each name: a scan that needs a name only now and then (to report a
    /// problem) saves loading every stream's name, and asks
    /// [`SqliteLogReader::stream_name`] for the few it needs.
    pub fn skip_stream_names(&mut self, skip: bool) {
        self.skip_names = skip;
    }

    /// The name of the stream with this [`EventRef::stream_number`].
    pub fn stream_name(&mut self, stream_number: u64) -> Result<String, StoreError> {
        let number = i64::try_from(stream_number)
            .map_err(|_| StoreError::Backend(format!("corrupt stream number {stream_number}")))?;
        self.reader
            .connection
            .prepare_cached("SELECT name FROM streams WHERE stream_id = ?1")
            .and_then(|mut statement| statement.query_row([number], |row| row.get(0)))
            .map_err(backend)
    }

    /// Visit the number and name of every stream numbered above `after`,
    /// in number order (tombstoned ones included).
    pub fn for_each_stream_after(
        &mut self,
        after: u64,
        mut visit: impl FnMut(u64, &str),
    ) -> Result<(), StoreError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        each_stream_after(&self.reader.connection, after, |number, name| {
            let number = u64::try_from(number)
                .map_err(|_| StoreError::Backend(format!("corrupt stream number {number}")))?;
            visit(number, name);
            Ok(())
        })
    }

    /// Number of streams (tombstoned ones included).
    pub fn stream_count(&mut self) -> Result<u64, StoreError> {
        let count: i64 = self
            .reader
            .connection
            .prepare_cached("SELECT count(*) FROM streams")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(backend)?;
        Ok(count as u64)
    }

    /// Whether the file holds the hash chain (schema version 3 on; the
    /// server adds it to an older file when it next opens it).
    pub fn has_chain(&self) -> bool {
        self.version >= 3
    }

    /// Every data key of the file's key table (none before version 4).
    pub fn data_keys(&mut self) -> Result<Vec<crate::StoredKey>, StoreError> {
        if self.version < 4 {
            return Ok(Vec::new());
        }
        let mut statement = self
            .reader
            .connection
            .prepare_cached("SELECT id, subject, wrapped FROM data_keys ORDER BY id")
            .map_err(backend)?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (id, subject, wrapped) = row.map_err(backend)?;
            let id = Uuid::from_slice(&id)
                .map_err(|_| StoreError::Backend("a data key with a malformed id".to_owned()))?;
            Ok(crate::StoredKey {
                id,
                subject,
                wrapped,
            })
        })
        .collect()
    }

    /// The file's schema version.
    pub fn schema_version(&self) -> i64 {
        self.version
    }

    /// The position and stored link of the last event; `None` for an
    /// empty log or a file without the chain.
    pub fn chain_head(&mut self) -> Result<Option<crate::chain::ChainLink>, StoreError> {
        if !self.has_chain() {
            return Ok(None);
        }
        let transaction = self.reader.connection.transaction().map_err(backend)?;
        let tip = super::chain_tip(&transaction)?;
        Ok((tip.position > 0).then_some(crate::chain::ChainLink {
            position: tip.position,
            link: tip.link,
        }))
    }

    /// Visit up to `limit` events with `after < position <= until`, in
    /// position order, and return how many were visited. `visit` sees each
    /// event borrowed from its row; an error from it ends the page.
    pub fn for_each_between<E: From<StoreError>>(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
        mut visit: impl FnMut(&EventRef<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let chain = if self.has_chain() { "chain" } else { "x''" };
        self.scan_rows(
            &format!(
                "SELECT position, stream_id, type_name, schema_version, payload, \
                 event_id, revision, recorded_at, metadata, {chain} FROM events \
                 WHERE position > ?1 AND position <= ?2 ORDER BY position LIMIT ?3"
            ),
            (after, until, limit),
            |payload, row| {
                let revision: i64 = row.get(6).map_err(backend)?;
                let id_bytes = payload.id_bytes;
                let recorded_at_micros: i64 = row.get(7).map_err(backend)?;
                let metadata_bytes = blob(row, 8)?;
                let chain = blob(row, 9)?;
                visit(&EventRef {
                    position: payload.position,
                    stream: payload.stream,
                    stream_number: payload.stream_number,
                    revision: revision as u64,
                    type_name: payload.type_name,
                    schema_version: payload.schema_version,
                    id_bytes,
                    recorded_at_micros,
                    metadata_bytes,
                    payload: payload.payload,
                    chain,
                })
            },
        )
    }

    /// [`SqliteLogReader::for_each_between`] for folds that need only what
    /// routes and decodes a payload: the other columns (id, revision,
    /// recorded_at, metadata) are not read at all, which makes a whole-log
    /// scan cheaper.
    pub fn for_each_payload_between<E: From<StoreError>>(
        &mut self,
        after: u64,
        until: u64,
        limit: usize,
        mut visit: impl FnMut(&PayloadRef<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        self.scan_rows(
            "SELECT position, stream_id, type_name, schema_version, payload, event_id FROM events \
             WHERE position > ?1 AND position <= ?2 ORDER BY position LIMIT ?3",
            (after, until, limit),
            |payload, _row| visit(payload),
        )
    }

    /// Run `sql` (whose first six columns are those of [`PayloadRef`]) over
    /// `(after, until, limit)` and hand each row to `visit`, with its
    /// [`PayloadRef`] already taken from it.
    fn scan_rows<E: From<StoreError>>(
        &mut self,
        sql: &str,
        (after, until, limit): (u64, u64, usize),
        mut visit: impl FnMut(&PayloadRef<'_>, &rusqlite::Row<'_>) -> Result<(), E>,
    ) -> Result<usize, E> {
        let SqliteLogReader {
            reader,
            stream_names,
            skip_names,
            ..
        } = self;
        let connection = &reader.connection;
        let mut statement = connection.prepare_cached(sql).map_err(backend)?;
        let mut rows = statement
            .query(params![to_i64(after), to_i64(until), limit_i64(limit)])
            .map_err(backend)?;
        let mut visited = 0;
        while let Some(row) = rows.next().map_err(backend)? {
            let position: i64 = row.get(0).map_err(backend)?;
            let stream_id: i64 = row.get(1).map_err(backend)?;
            let type_name = row
                .get_ref(2)
                .and_then(|value| Ok(value.as_str()?))
                .map_err(backend)?;
            let schema_version: u16 = row.get(3).map_err(backend)?;
            let payload = blob(row, 4)?;
            let id_bytes = blob(row, 5)?;
            let stream = if *skip_names {
                ""
            } else {
                stream_name(connection, stream_names, stream_id)?
            };
            let payload = PayloadRef {
                position: position as u64,
                stream,
                stream_number: stream_id as u64,
                type_name,
                schema_version,
                payload,
                id_bytes,
            };
            visit(&payload, row)?;
            visited += 1;
        }
        Ok(visited)
    }

    /// Up to `limit` events with position > `after`, owned.
    pub fn read_all(&mut self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reader.read_all(after, limit)
    }

    /// Up to `limit` events of one stream, as `EventStore::read_stream`.
    pub fn read_stream(
        &mut self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        crate::rules::validate_stream(stream)?;
        self.reader.read_stream(stream, start, direction, limit)
    }
}

/// The names of the streams by stream number, all in one text: each
/// number's name is a span of it (no allocation per stream).
#[derive(Debug, Default)]
struct StreamNames {
    /// Every name read, one after the other.
    text: String,
    /// By stream number: where its name lies in `text`, or [`Span::UNKNOWN`].
    spans: Vec<Span>,
}

/// A name's place in [`StreamNames::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// A stream number without a name (none read, or a gap in the numbers).
    const UNKNOWN: Span = Span {
        start: usize::MAX,
        len: 0,
    };
}

impl StreamNames {
    /// The name of stream `index`, if read.
    fn get(&self, index: usize) -> Option<&str> {
        let span = *self.spans.get(index)?;
        if span == Span::UNKNOWN {
            return None;
        }
        self.text.get(span.start..span.start + span.len)
    }

    /// The highest stream number with a place in the table (0 when none).
    fn highest(&self) -> usize {
        self.spans.len().saturating_sub(1)
    }

    /// Record the name of stream `index`.
    fn insert(&mut self, index: usize, name: &str) {
        if self.spans.len() <= index {
            self.spans.resize(index + 1, Span::UNKNOWN);
        }
        self.spans[index] = Span {
            start: self.text.len(),
            len: name.len(),
        };
        self.text.push_str(name);
    }

    /// Make room for the names of the numbers after `index` up to
    /// `highest`, at `average` bytes each plus an eighth: a bulk read then
    /// fills one allocation instead of regrowing (and copying) the text
    /// and the spans as it goes, fresh memory being the dearest part of a
    /// large read. Room that cannot be had is left to ordinary growth.
    fn expect(&mut self, index: usize, highest: usize, average: usize) {
        let more = highest.saturating_sub(index);
        let _ = self
            .spans
            .try_reserve_exact(highest.saturating_add(1).saturating_sub(self.spans.len()));
        let _ = self
            .text
            .try_reserve_exact(more.saturating_mul(average).saturating_mul(9) / 8);
    }
}

/// Names a bulk read takes before it makes room for the rest.
const NAME_SAMPLE: usize = 1024;

/// Visit the number and name of every stream numbered above `after`, in
/// number order.
fn each_stream_after(
    connection: &Connection,
    after: i64,
    mut visit: impl FnMut(i64, &str) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT stream_id, name FROM streams WHERE stream_id > ?1 ORDER BY stream_id",
        )
        .map_err(backend)?;
    let mut rows = statement.query([after]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let number: i64 = row.get(0).map_err(backend)?;
        let name = row
            .get_ref(1)
            .and_then(|value| Ok(value.as_str()?))
            .map_err(backend)?;
        visit(number, name)?;
    }
    Ok(())
}

/// The name of stream `stream_id`. A miss loads, in one ordered scan, every
/// stream numbered above the highest number known (streams only ever get
/// new numbers), made room for once the first [`NAME_SAMPLE`] names tell
/// their average length (the numbers are dense, so the highest number
/// tells how many follow).
fn stream_name<'a>(
    connection: &Connection,
    names: &'a mut StreamNames,
    stream_id: i64,
) -> Result<&'a str, StoreError> {
    let index = usize::try_from(stream_id)
        .map_err(|_| StoreError::Backend(format!("corrupt stream number {stream_id}")))?;
    if names.get(index).is_none() {
        let known = i64::try_from(names.highest()).unwrap_or(i64::MAX);
        let (start, mut read) = (names.text.len(), 0usize);
        each_stream_after(connection, known, |id, name| {
            let Ok(id) = usize::try_from(id) else {
                return Ok(());
            };
            names.insert(id, name);
            read += 1;
            if read == NAME_SAMPLE {
                // Only a read this long asks how many follow.
                let highest: Option<i64> = connection
                    .prepare_cached("SELECT max(stream_id) FROM streams")
                    .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
                    .map_err(backend)?;
                let highest = highest.map_or(0, |highest| usize::try_from(highest).unwrap_or(0));
                names.expect(id, highest, (names.text.len() - start).div_ceil(read));
            }
            Ok(())
        })?;
    }
    names
        .get(index)
        .ok_or_else(|| StoreError::Backend(format!("event names unknown stream {stream_id}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::{EventStore, ExpectedRevision, NewEvent};

    fn event(n: u8) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            type_name: "Tested".into(),
            schema_version: 1,
            metadata: EventMetadata {
                actor: "system".into(),
                correlation_id: Uuid::from_u128(7),
                causation_id: None,
                occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
            payload: vec![n],
        }
    }

    #[test]
    fn stream_names_share_one_text_and_keep_gaps_unknown() {
        let mut names = StreamNames::default();
        assert_eq!(names.highest(), 0);
        assert_eq!(names.get(0), None);
        names.insert(1, "account-1");
        names.insert(3, "flow-3");
        names.insert(6, "");
        assert_eq!(names.highest(), 6);
        assert_eq!(names.get(0), None);
        assert_eq!(names.get(1), Some("account-1"));
        assert_eq!(names.get(2), None, "a gap");
        assert_eq!(names.get(3), Some("flow-3"));
        assert_eq!(names.get(5), None, "a gap");
        assert_eq!(names.get(6), Some(""), "an empty name is a name");
        assert_eq!(names.get(7), None, "above the highest");
        assert_eq!(names.text, "account-1flow-3");
    }

    #[test]
    fn stream_names_make_room_for_what_a_bulk_read_expects() {
        let mut names = StreamNames::default();
        names.insert(1, "account-1");
        names.expect(1, 1_001, 10);
        assert!(names.spans.capacity() >= 1_002);
        assert!(names.text.capacity() >= names.text.len() + 10_000);
        // A number far beyond memory (a corrupt file) leaves the names as
        // they are instead of failing.
        names.expect(1, usize::MAX / 2, 64);
        names.insert(2, "flow-2");
        assert_eq!(names.get(1), Some("account-1"));
        assert_eq!(names.get(2), Some("flow-2"));
    }

    /// A name for stream `n` whose length varies with `n`.
    fn varied_name(n: usize) -> String {
        format!("stream-{}-{n}", "x".repeat(n % 41))
    }

    #[tokio::test]
    async fn a_bulk_read_of_many_names_reads_each_right() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let streams = 3 * NAME_SAMPLE;
        let picked = [1, NAME_SAMPLE, NAME_SAMPLE + 1, streams - 1, streams];
        {
            let mut connection = Connection::open(&path).unwrap();
            let transaction = connection.transaction().unwrap();
            for n in 1..=streams {
                transaction
                    .execute(
                        "INSERT INTO streams (stream_id, name) VALUES (?1, ?2)",
                        params![n as i64, varied_name(n)],
                    )
                    .unwrap();
            }
            for (position, n) in picked.iter().enumerate() {
                transaction
                    .execute(
                        "INSERT INTO events (position, stream_id, revision, event_id, type_name, \
                         schema_version, recorded_at, metadata, payload) \
                         VALUES (?1, ?2, 0, ?3, 'Tested', 1, 0, x'', x'00')",
                        params![position as i64 + 1, *n as i64, vec![position as u8; 16]],
                    )
                    .unwrap();
            }
            transaction.commit().unwrap();
        }
        let mut reader = SqliteLogReader::open(&path).unwrap();
        let expected: Vec<_> = picked
            .iter()
            .enumerate()
            .map(|(position, n)| (position as u64 + 1, varied_name(*n), *n as u64))
            .collect();
        assert_eq!(scanned(&mut reader, 0).unwrap(), expected);
    }

    #[tokio::test]
    async fn every_stream_after_a_number_is_visited_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        {
            let connection = Connection::open(&path).unwrap();
            for n in [1i64, 2, 5, 9] {
                connection
                    .execute(
                        "INSERT INTO streams (stream_id, name) VALUES (?1, ?2)",
                        params![n, varied_name(n as usize)],
                    )
                    .unwrap();
            }
        }
        let mut reader = SqliteLogReader::open(&path).unwrap();
        let visited = |reader: &mut SqliteLogReader, after| {
            let mut seen = Vec::new();
            reader
                .for_each_stream_after(after, |n, name| seen.push((n, name.to_owned())))
                .unwrap();
            seen
        };
        let named = |numbers: &[u64]| -> Vec<(u64, String)> {
            numbers
                .iter()
                .map(|n| (*n, varied_name(*n as usize)))
                .collect()
        };
        assert_eq!(visited(&mut reader, 0), named(&[1, 2, 5, 9]));
        assert_eq!(visited(&mut reader, 2), named(&[5, 9]));
        assert_eq!(visited(&mut reader, 9), named(&[]));
        assert_eq!(visited(&mut reader, u64::MAX), named(&[]));
    }

    /// Every payload scanned from `after`: (position, stream, stream number).
    fn scanned(
        reader: &mut SqliteLogReader,
        after: u64,
    ) -> Result<Vec<(u64, String, u64)>, StoreError> {
        let mut seen = Vec::new();
        reader.for_each_payload_between(after, u64::MAX, 10, |e| {
            seen.push((e.position, e.stream.to_owned(), e.stream_number));
            Ok::<_, StoreError>(())
        })?;
        Ok(seen)
    }

    #[tokio::test]
    async fn names_are_read_across_gaps_and_as_a_live_writer_adds_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            for (n, stream) in [(1, "account-1"), (2, "flow-2"), (3, "flow-3")] {
                store
                    .append(stream, ExpectedRevision::NoStream, vec![event(n)])
                    .await
                    .unwrap();
            }
        }
        // Number the third stream 7: numbers 3 to 6 are a gap.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "PRAGMA foreign_keys = OFF; \
                 UPDATE streams SET stream_id = 7 WHERE stream_id = 3; \
                 UPDATE events SET stream_id = 7 WHERE stream_id = 3;",
            )
            .unwrap();
        let mut reader = SqliteLogReader::open(&path).unwrap();
        assert_eq!(
            scanned(&mut reader, 0).unwrap(),
            vec![
                (1, "account-1".to_owned(), 1),
                (2, "flow-2".to_owned(), 2),
                (3, "flow-3".to_owned(), 7),
            ]
        );

        // A stream created after the names were read, numbered above them.
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store
            .append("flow-new", ExpectedRevision::NoStream, vec![event(4)])
            .await
            .unwrap();
        drop(store);
        assert_eq!(
            scanned(&mut reader, 2).unwrap(),
            vec![(3, "flow-3".to_owned(), 7), (4, "flow-new".to_owned(), 8)]
        );

        // An event of a number in the gap names no stream.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "PRAGMA foreign_keys = OFF; UPDATE events SET stream_id = 5 WHERE position = 4;",
            )
            .unwrap();
        let error = scanned(&mut reader, 0).unwrap_err();
        assert!(
            error.to_string().contains("event names unknown stream 5"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_refused_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        assert!(SqliteLogReader::open(&path).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn a_file_without_the_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sqlite3");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INTEGER)")
            .unwrap();
        let error = SqliteLogReader::open(&path).unwrap_err();
        assert!(
            error.to_string().contains("no event store schema"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn reads_a_file_no_writer_has_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        {
            let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            store
                .append("account-1", ExpectedRevision::NoStream, vec![event(1)])
                .await
                .unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let mut reader = SqliteLogReader::open(&path).unwrap();
        assert_eq!(reader.read_all(0, 10).unwrap().len(), 1);
        drop(reader);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[tokio::test]
    async fn reads_what_a_live_writer_appends_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store
            .append(
                "account-1",
                ExpectedRevision::NoStream,
                vec![event(1), event(2)],
            )
            .await
            .unwrap();
        let mut reader = SqliteLogReader::open(&path).unwrap();
        assert_eq!(reader.head().unwrap(), 2);
        store
            .append("flow-2", ExpectedRevision::NoStream, vec![event(3)])
            .await
            .unwrap();
        let mut seen = Vec::new();
        let visited = reader
            .for_each_between(0, u64::MAX, 10, |e| {
                seen.push((
                    e.position,
                    e.stream.to_owned(),
                    e.revision,
                    e.payload.to_vec(),
                ));
                assert_eq!(&*e.to_recorded()?.metadata.actor, "system");
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(visited, 3);
        assert_eq!(
            seen,
            vec![
                (1, "account-1".to_owned(), 0, vec![1]),
                (2, "account-1".to_owned(), 1, vec![2]),
                (3, "flow-2".to_owned(), 0, vec![3]),
            ]
        );
        assert_eq!(
            reader
                .for_each_between(1, 2, 10, |_| Ok::<_, StoreError>(()))
                .unwrap(),
            1
        );
        let mut payloads = Vec::new();
        let visited = reader
            .for_each_payload_between(1, u64::MAX, 10, |e| {
                payloads.push((
                    e.position,
                    e.stream.to_owned(),
                    e.type_name.to_owned(),
                    e.schema_version,
                    e.payload.to_vec(),
                ));
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(visited, 2);
        assert_eq!(
            payloads,
            vec![
                (2, "account-1".to_owned(), "Tested".to_owned(), 1, vec![2]),
                (3, "flow-2".to_owned(), "Tested".to_owned(), 1, vec![3]),
            ]
        );
        let stream = reader
            .read_stream("account-1", StreamStart::Edge, Direction::Backwards, 1)
            .unwrap();
        assert_eq!(stream[0].revision, 1);
        assert_eq!(reader.stream_count().unwrap(), 2);
        reader.skip_stream_names(true);
        let mut numbers = Vec::new();
        reader
            .for_each_between(0, u64::MAX, 10, |e| {
                assert_eq!(e.stream, "");
                numbers.push(e.stream_number);
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(reader.stream_name(numbers[2]).unwrap(), "flow-2");
        let refused = reader.reader.connection.execute("DELETE FROM events", []);
        assert!(refused.is_err(), "a read-only reader must not write");
        assert_eq!(reader.head().unwrap(), 3);
    }
}
