//! The embedded adapter of the EventStore port: one SQLite file (rusqlite,
//! bundled), WAL, durable commits, one group-committing writer thread and
//! readers on their own connections.
//!
//! # Opening
//! [`SqliteStore::open`] is synchronous (it opens the file, creates or checks
//! the schema and starts two threads); call it at start-up or inside
//! `spawn_blocking`. Every other method needs a tokio runtime: reads run on
//! `spawn_blocking`, appends are answered through the writer thread.
//!
//! The file may be opened by several processes at once (the server, a batch
//! job, the replay tool): SQLite serialises their writers, `busy_timeout`
//! makes each wait for the others, and the expected-revision check always
//! reads the database inside the write transaction, never a cache. Appends
//! made by another process are noticed by subscriptions through a poll of
//! the head position every [`SqliteOptions::live_poll_interval`].
//!
//! # Schema (version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`)
//! ```sql
//! streams(stream_id INTEGER PRIMARY KEY, name TEXT UNIQUE, deleted INTEGER)
//! events(position INTEGER PRIMARY KEY,        -- the rowid: global position
//!        stream_id, revision, event_id BLOB UNIQUE, type_name, schema_version,
//!        recorded_at /* µs since the epoch */, metadata BLOB, payload BLOB,
//!        chain BLOB /* the event's hash-chain link, version 3 */,
//!        UNIQUE(stream_id, revision))
//! data_keys(n INTEGER PRIMARY KEY AUTOINCREMENT, -- version 5
//!           id BLOB UNIQUE, subject TEXT, wrapped BLOB)
//! data_key_subjects(subject, id) -- the subject index, caught up by
//!                                -- destroy_keys from data_key_subjects_upto
//! ```
//! Opening a file of an older version upgrades it; the upgrade to version 3
//! computes the links of the events it holds, in one pass.
//! SQLite has one writer at a time and a new event's position is the last
//! one's plus one, so commit order is position order and a reader never sees
//! a gap: this is what makes the catch-up subscription exact. The writer
//! keeps the last link of the hash chain ([`crate::chain`]) in memory and
//! links each event as it writes it; it reads the last link again after a
//! rollback or another process's commit.
//!
//! Events name their stream by a small integer id, not by its text: the
//! `UNIQUE(stream_id, revision)` index is what an append over many random
//! streams pays for (each event dirties another index page), and integer
//! keys keep that index several times smaller than text keys would. The
//! stream's last revision is read from that same index (one B-tree descent),
//! so an append to an existing stream writes no row of `streams`: only a new
//! stream or a tombstone does. Event ids are uuid v7 (time-ordered), so the
//! `event_id` index grows at its right edge.
//!
//! Metadata is stored as postcard bytes of a private, versioned wire struct
//! (`StoredMetadataV1`, in `metadata_wire`): the stored shape does not depend on how `chrono`
//! or `uuid` choose to serialise themselves, and it decodes without parsing
//! text.
//!
//! # Group commit
//! Every append and tombstone is sent to the writer thread, which owns the
//! write connection. It takes every request that is waiting (up to
//! [`SqliteOptions::max_batch_events`]), runs them in ONE transaction, each
//! checked against its own expected revision, commits once (one fsync with
//! `synchronous=FULL`), and only then answers each caller. An acknowledged
//! append is durable. A failing append does not fail its neighbours: the
//! requests run bare, since nearly every failure (a conflict, a deleted
//! stream, a retry) comes before any write; should one fail after writing
//! part of itself, the transaction is undone and the batch runs again with
//! each request in a SAVEPOINT of its own, rolled back on its failure.
//!
//! # Rules
//! - An empty append is refused with [`StoreError::EmptyAppend`]; an append
//!   carrying the same event id twice with [`StoreError::InvalidInput`].
//! - Idempotency: if the first event id of an append is already stored in
//!   that stream and the whole batch matches the stored events from there in
//!   order, the original [`AppendResult`] is returned and nothing is
//!   appended (even though the expected revision no longer matches). Ids
//!   that match only in part, or belong to another stream, give
//!   [`StoreError::IdempotencyMismatch`].
//! - A tombstoned stream keeps its events in the global log (like KurrentDB
//!   before a scavenge); reading or appending to it gives
//!   [`StoreError::StreamDeleted`], whatever the expected revision.
//!
//! # Rewriting a copy
//! [`rewrite`] copies a store file and rewrites events of the copy in
//! place (`caseledger seal-log`), then links its chain anew ([`rechain`]).
//!
//! # Reading without writing
//! [`SqliteLogReader`] opens an existing file read-only (no schema is
//! created or migrated, no lock is taken) for tools beside the server.
//!
//! # Closing
//! Dropping the store ends the writer thread (after it has answered what
//! was already sent) and the poller thread, and joins both. Subscriptions
//! still open deliver what is committed and then end with
//! [`StoreError::Closed`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use rusqlite::config::DbConfig;
use rusqlite::types::ValueRef;
use rusqlite::{CachedStatement, Connection, OpenFlags, OptionalExtension, Row, Statement, params};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

mod known_streams;
mod read_only;
pub mod rewrite;

use known_streams::{KnownStreams, StreamHead};

pub use read_only::{EventRef, PayloadRef, SqliteLogReader};
pub use rewrite::rechain;

use crate::chain;
use crate::metadata_wire::{DayCache, Interner};
use crate::rules::{check_expected, validate_append, validate_stream};
use crate::subscription::{LogReader, follow_all};
use crate::{
    AppendResult, Bytes, CurrentRevision, Direction, EventMetadata, EventStore, ExpectedRevision,
    NewEvent, RecordedEvent, StoreError, StreamStart, SubscriptionItem,
};

/// The schema version this program writes and understands.
pub const SCHEMA_VERSION: i64 = 5;

const CREATE_SCHEMA: &str = "
CREATE TABLE streams (
    stream_id INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE,
    deleted   INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream_id      INTEGER NOT NULL REFERENCES streams (stream_id),
    revision       INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    type_name      TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    metadata       BLOB    NOT NULL,
    payload        BLOB    NOT NULL,
    UNIQUE (stream_id, revision)
) STRICT;
";

/// Version 2: small named values beside the log (outbox progress, leases).
const CREATE_VALUES: &str = "
CREATE TABLE store_values (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
";

/// Version 3: each event's hash-chain link ([`crate::chain`]), filled in
/// for the events a file already holds when it is upgraded.
const ADD_CHAIN: &str = "ALTER TABLE events ADD COLUMN chain BLOB NOT NULL DEFAULT x''";

/// Version 4: the key table (data keys for crypto-shredding, wrapped).
const CREATE_KEYS: &str = "
CREATE TABLE IF NOT EXISTS data_keys (
    id      BLOB NOT NULL PRIMARY KEY,
    subject TEXT NOT NULL,
    wrapped BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS data_keys_subject ON data_keys (subject);
";

/// Version 5, second step: the key table numbers its rows in insertion
/// order (never reused) and has no index by subject, which cost each append
/// that brought a new key a random index page.
const NUMBER_KEYS: &str = "
CREATE TABLE data_keys_5 (
    n       INTEGER PRIMARY KEY AUTOINCREMENT,
    id      BLOB NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    wrapped BLOB NOT NULL
) STRICT;
INSERT INTO data_keys_5 (id, subject, wrapped) SELECT id, subject, wrapped FROM data_keys ORDER BY id;
DROP TABLE data_keys;
ALTER TABLE data_keys_5 RENAME TO data_keys;
";

/// Version 5, first step: the subject index kept apart, brought up to
/// date (every key numbered above `data_key_subjects_upto`) by the one
/// that needs it, [`SqliteStore::destroy_keys`], in one transaction.
const KEY_SUBJECTS: &str = "
DROP INDEX IF EXISTS data_keys_subject;
CREATE TABLE IF NOT EXISTS data_key_subjects (
    subject TEXT NOT NULL,
    id      BLOB NOT NULL,
    PRIMARY KEY (subject, id)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS data_key_subjects_upto (n INTEGER NOT NULL) STRICT;
INSERT INTO data_key_subjects_upto (n)
    SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM data_key_subjects_upto);
";

const SELECT_EVENT_COLUMNS: &str = "SELECT position, stream_id, revision, event_id, type_name, \
     schema_version, recorded_at, metadata, payload FROM events";

/// Tuning of a [`SqliteStore`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// `PRAGMA synchronous=FULL` (default `true`): an acknowledged append
    /// survives a power loss. `false` uses `NORMAL`, which survives a crash
    /// of the process but may lose the last commits on power loss.
    pub synchronous_full: bool,
    /// How long a connection waits for another one (of this or another
    /// process) that holds the write lock. Default 5 s.
    pub busy_timeout: Duration,
    /// How often the head position is polled so that appends made by other
    /// processes reach this store's subscriptions. Default 250 ms.
    pub live_poll_interval: Duration,
    /// Most events one group commit takes. Default 4096.
    pub max_batch_events: usize,
    /// Read connections kept open between reads. Default 4.
    pub reader_pool_size: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous_full: true,
            busy_timeout: Duration::from_secs(5),
            live_poll_interval: Duration::from_millis(250),
            max_batch_events: 4096,
            reader_pool_size: 4,
        }
    }
}

fn encode_metadata(metadata: &EventMetadata) -> Vec<u8> {
    crate::metadata_wire::encode(metadata)
}

fn decode_metadata(bytes: &[u8], position: u64) -> Result<EventMetadata, StoreError> {
    crate::metadata_wire::decode(bytes).ok_or_else(|| corrupt_metadata(position))
}

/// The error for stored metadata that does not decode.
fn corrupt_metadata(position: u64) -> StoreError {
    StoreError::Backend(format!("corrupt metadata at position {position}"))
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn limit_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// The embedded [`EventStore`]: one SQLite file. See the module docs.
pub struct SqliteStore {
    path: PathBuf,
    writer: Option<mpsc::Sender<WriteRequest>>,
    writer_thread: Option<JoinHandle<()>>,
    poller_stop: Option<std::sync::mpsc::Sender<()>>,
    poller_thread: Option<JoinHandle<()>>,
    readers: Arc<ReaderPool>,
    heads: Arc<watch::Sender<u64>>,
    /// The connection for values beside the log (rare, small writes).
    values: Arc<std::sync::Mutex<Connection>>,
    /// The connection for the key table.
    keys: Arc<std::sync::Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating if needed) the store in the SQLite file at `path`.
    ///
    /// Blocking. Creates the schema in a new file; refuses a file written
    /// by a newer program with [`StoreError::SchemaTooNew`].
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let mut write_connection = open_write_connection(&path, &options)?;
        ensure_schema(&mut write_connection, &path)?;
        let values = Arc::new(std::sync::Mutex::new(open_write_connection(
            &path, &options,
        )?));
        let keys = open_write_connection(&path, &options)?;
        // Destroyed data keys are overwritten in the file, not just
        // unlinked (keys are written by the writer, with the events).
        keys.execute_batch("PRAGMA secure_delete = ON")
            .map_err(backend)?;
        let keys = Arc::new(std::sync::Mutex::new(keys));
        let readers = Arc::new(ReaderPool {
            path: path.clone(),
            busy_timeout: options.busy_timeout,
            max_idle: options.reader_pool_size.max(1),
            idle: Mutex::new(Vec::new()),
        });
        let mut poll_connection = readers.take()?;
        let head = poll_connection.head()?;
        let heads = Arc::new(watch::Sender::new(head));

        let (writer, requests) = mpsc::channel(1024);
        let writer_thread = {
            let heads = Arc::clone(&heads);
            let max_batch_events = options.max_batch_events.max(1);
            std::thread::Builder::new()
                .name("store-writer".to_owned())
                .spawn(move || {
                    Writer {
                        connection: write_connection,
                        heads,
                        max_batch_events,
                        known: KnownStreams::new(known_streams::DEFAULT_CAPACITY),
                        tip: None,
                    }
                    .run(requests)
                })
                .map_err(|error| StoreError::Backend(format!("cannot start writer: {error}")))?
        };

        let (poller_stop, stop) = std::sync::mpsc::channel::<()>();
        let poller_thread = {
            let heads = Arc::clone(&heads);
            let interval = options.live_poll_interval;
            std::thread::Builder::new()
                .name("store-poller".to_owned())
                .spawn(move || poll_head(&mut poll_connection, &heads, &stop, interval))
                .map_err(|error| StoreError::Backend(format!("cannot start poller: {error}")))?
        };

        Ok(SqliteStore {
            path,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            poller_stop: Some(poller_stop),
            poller_thread: Some(poller_thread),
            readers,
            heads,
            values,
            keys,
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn send(&self, request: WriteRequest) -> Result<(), StoreError> {
        let writer = self.writer.as_ref().ok_or(StoreError::Closed)?;
        writer.send(request).await.map_err(|_| StoreError::Closed)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has answered what is
        // queued; closing the stop channel wakes the poller at once.
        self.writer.take();
        self.poller_stop.take();
        for thread in [self.writer_thread.take(), self.poller_thread.take()]
            .into_iter()
            .flatten()
        {
            if thread.join().is_err() {
                tracing::error!("an event store thread panicked");
            }
        }
    }
}

/// Keeps each prepared statement's plan once made. Without this, SQLite
/// plans `LIMIT ?1` with the value bound at the time, marks the statement
/// to be prepared again whenever that parameter is bound, and so parses and
/// plans every cached read anew on every run.
pub(crate) fn keep_plans(connection: &Connection) -> Result<(), StoreError> {
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(backend)?;
    Ok(())
}

/// Runs a statement without parameters or rows through the statement cache.
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn open_write_connection(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)
        .map_err(|error| StoreError::Backend(format!("cannot open {}: {error}", path.display())))?;
    keep_plans(&connection)?;
    connection
        .busy_timeout(options.busy_timeout)
        .map_err(backend)?;
    let mode: String = connection
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(backend)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{} cannot use WAL (journal mode is {mode})",
            path.display()
        )));
    }
    let synchronous = if options.synchronous_full {
        "FULL"
    } else {
        "NORMAL"
    };
    connection
        .execute_batch(&format!(
            "PRAGMA synchronous = {synchronous};
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -32768;"
        ))
        .map_err(backend)?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

fn user_version(connection: &Connection) -> Result<i64, StoreError> {
    connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)
}

fn ensure_schema(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let too_new = |found| StoreError::SchemaTooNew {
        path: path.display().to_string(),
        found,
        supported: SCHEMA_VERSION,
    };
    let found = user_version(connection)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    if found > SCHEMA_VERSION {
        return Err(too_new(found));
    }
    // Another process may be creating the schema right now: decide under
    // the write lock.
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend)?;
    match user_version(&transaction)? {
        found @ 0..SCHEMA_VERSION => {
            // Each step in order: version 1, 2 (values), 3 (chain), 4 (keys),
            // 5 (keys numbered, their subject index apart).
            if found < 1 {
                transaction.execute_batch(CREATE_SCHEMA).map_err(backend)?;
            }
            if found < 2 {
                transaction.execute_batch(CREATE_VALUES).map_err(backend)?;
            }
            if found < 3 {
                transaction.execute_batch(ADD_CHAIN).map_err(backend)?;
                fill_chain(&transaction)?;
            }
            transaction.execute_batch(CREATE_KEYS).map_err(backend)?;
            transaction.execute_batch(KEY_SUBJECTS).map_err(backend)?;
            if transaction.prepare("SELECT n FROM data_keys").is_err() {
                // The old table's pages are freed zeroed: a key destroyed
                // later leaves no copy behind in them.
                let secure: i64 = transaction
                    .query_row("PRAGMA secure_delete", [], |row| row.get(0))
                    .map_err(backend)?;
                transaction
                    .execute_batch("PRAGMA secure_delete = ON")
                    .map_err(backend)?;
                transaction.execute_batch(NUMBER_KEYS).map_err(backend)?;
                transaction
                    .execute_batch(&format!("PRAGMA secure_delete = {secure}"))
                    .map_err(backend)?;
                // Numbers of another table: the subject index starts over.
                transaction
                    .execute_batch(
                        "DELETE FROM data_key_subjects; UPDATE data_key_subjects_upto SET n = 0;",
                    )
                    .map_err(backend)?;
            }
            transaction
                .execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(backend)?;
        }
        SCHEMA_VERSION => {}
        found if found > SCHEMA_VERSION => return Err(too_new(found)),
        found => {
            return Err(StoreError::Backend(format!(
                "{} has unknown schema version {found}",
                path.display()
            )));
        }
    }
    transaction.commit().map_err(backend)
}

/// Computes the chain link of every stored event, in one pass in position
/// order (the upgrade to version 3).
fn fill_chain(connection: &Connection) -> Result<(), StoreError> {
    let mut select = connection
        .prepare(
            "SELECT e.position, s.name, e.revision, e.event_id, e.type_name, \
             e.schema_version, e.recorded_at, e.metadata, e.payload \
             FROM events e JOIN streams s ON s.stream_id = e.stream_id ORDER BY e.position",
        )
        .map_err(backend)?;
    let mut update = connection
        .prepare("UPDATE events SET chain = ?2 WHERE position = ?1")
        .map_err(backend)?;
    let mut rows = select.query([]).map_err(backend)?;
    let mut previous = chain::genesis();
    while let Some(row) = rows.next().map_err(backend)? {
        let position: i64 = row.get(0).map_err(backend)?;
        let text = |index| {
            row.get_ref(index)
                .and_then(|value| Ok(value.as_str()?))
                .map_err(backend)
        };
        previous = chain::link(
            &previous,
            &chain::ChainedEvent {
                position: position as u64,
                stream: text(1)?,
                revision: row.get::<_, i64>(2).map_err(backend)? as u64,
                id: blob(row, 3)?,
                type_name: text(4)?,
                schema_version: row.get(5).map_err(backend)?,
                recorded_at_micros: row.get(6).map_err(backend)?,
                metadata: blob(row, 7)?,
                payload: blob(row, 8)?,
            },
        );
        update
            .execute(params![position, &previous[..]])
            .map_err(backend)?;
    }
    Ok(())
}

/// The position and stored link of the last event (position 0 and
/// [`chain::genesis`] for an empty log).
fn chain_tip(connection: &Connection) -> Result<ChainTip, StoreError> {
    let last: Option<(i64, Vec<u8>)> = connection
        .prepare_cached("SELECT position, chain FROM events ORDER BY position DESC LIMIT 1")
        .and_then(|mut statement| {
            statement
                .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(backend)?;
    match last {
        None => Ok(ChainTip {
            position: 0,
            link: chain::genesis(),
        }),
        Some((position, link)) => Ok(ChainTip {
            position: position as u64,
            link: chain::stored_link(&link).ok_or_else(|| {
                StoreError::Backend(format!("corrupt chain link at position {position}"))
            })?,
        }),
    }
}

/// The stored links of up to `limit` events after `after`.
fn read_chain(
    connection: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<chain::ChainLink>, StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT position, chain FROM events WHERE position > ?1 ORDER BY position LIMIT ?2",
        )
        .map_err(backend)?;
    let mut rows = statement
        .query(params![to_i64(after), limit_i64(limit)])
        .map_err(backend)?;
    let mut links = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let position: i64 = row.get(0).map_err(backend)?;
        // A link that is not 32 bytes reads as zeros: an audit reports it
        // as a broken chain at this position.
        let link = chain::stored_link(blob(row, 1)?).unwrap_or([0; chain::LINK_BYTES]);
        links.push(chain::ChainLink {
            position: position as u64,
            link,
        });
    }
    Ok(links)
}

/// Wakes subscriptions for appends this process did not make.
fn poll_head(
    connection: &mut ReadConnection,
    heads: &watch::Sender<u64>,
    stop: &std::sync::mpsc::Receiver<()>,
    interval: Duration,
) {
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        if heads.receiver_count() == 0 {
            continue;
        }
        match connection.head() {
            Ok(head) => {
                heads.send_if_modified(|seen| {
                    let newer = head > *seen;
                    if newer {
                        *seen = head;
                    }
                    newer
                });
            }
            Err(error) => tracing::warn!(%error, "polling the event store head failed"),
        }
    }
}

// ---------------------------------------------------------------- writing

/// The last event the writer linked: the next one's position is one more.
#[derive(Debug, Clone, Copy)]
struct ChainTip {
    position: u64,
    link: chain::Link,
}

/// An event ready for the writer: everything but the SQL done by the caller.
struct PreparedEvent {
    id: Uuid,
    type_name: String,
    schema_version: u16,
    metadata: Vec<u8>,
    payload: Vec<u8>,
}

enum WriteRequest {
    Append {
        stream: String,
        expected: ExpectedRevision,
        events: Vec<PreparedEvent>,
        /// Data keys stored in the same transaction, after the events.
        keys: Vec<crate::StoredKey>,
        reply: oneshot::Sender<Result<AppendResult, StoreError>>,
        /// Its result once run, answered after the commit.
        done: Option<Result<AppendResult, StoreError>>,
    },
    Tombstone {
        stream: String,
        expected: ExpectedRevision,
        reply: oneshot::Sender<Result<(), StoreError>>,
        /// Its result once run, answered after the commit.
        done: Option<Result<(), StoreError>>,
    },
    /// A data key for the key table, committed with the batch it meets (a
    /// connection of its own would wait for the writer's lock).
    PutKey {
        key: crate::StoredKey,
        reply: oneshot::Sender<Result<(), StoreError>>,
        /// Its result once run, answered after the commit.
        done: Option<Result<(), StoreError>>,
    },
}

impl WriteRequest {
    fn event_count(&self) -> usize {
        match self {
            WriteRequest::Append { events, .. } => events.len(),
            WriteRequest::Tombstone { .. } | WriteRequest::PutKey { .. } => 1,
        }
    }

    fn succeeded(&self) -> bool {
        match self {
            WriteRequest::Append { done, .. } => matches!(done, Some(Ok(_))),
            WriteRequest::Tombstone { done, .. } | WriteRequest::PutKey { done, .. } => {
                matches!(done, Some(Ok(_)))
            }
        }
    }

    /// The position of its last event, when it appended.
    fn appended_position(&self) -> Option<u64> {
        match self {
            WriteRequest::Append {
                done: Some(Ok(result)),
                ..
            } => Some(result.position),
            _ => None,
        }
    }

    /// Nothing of this request is stored: an error unless it failed already.
    fn fail(&mut self, why: &str) {
        let error = || StoreError::Backend(why.to_owned());
        match self {
            WriteRequest::Append { done, .. } if !matches!(done, Some(Err(_))) => {
                *done = Some(Err(error()));
            }
            WriteRequest::Tombstone { done, .. } | WriteRequest::PutKey { done, .. }
                if !matches!(done, Some(Err(_))) =>
            {
                *done = Some(Err(error()));
            }
            _ => {}
        }
    }

    fn answer(self) {
        // A caller that stopped waiting is no error of ours.
        let never_run = || StoreError::Backend("the request was not run".to_owned());
        match self {
            WriteRequest::Append { reply, done, .. } => {
                let _ = reply.send(done.unwrap_or_else(|| Err(never_run())));
            }
            WriteRequest::Tombstone { reply, done, .. }
            | WriteRequest::PutKey { reply, done, .. } => {
                let _ = reply.send(done.unwrap_or_else(|| Err(never_run())));
            }
        }
    }
}

struct Writer {
    connection: Connection,
    heads: Arc<watch::Sender<u64>>,
    max_batch_events: usize,
    /// Heads of the streams met lately: appends to them skip two lookups.
    known: KnownStreams,
    /// The chain's last link as committed (`None`: read it at the next
    /// transaction, after a rollback or another process's commit).
    tip: Option<ChainTip>,
}

impl Writer {
    fn run(mut self, mut requests: mpsc::Receiver<WriteRequest>) {
        let mut batch = Vec::new();
        while let Some(first) = requests.blocking_recv() {
            let mut events = first.event_count();
            batch.push(first);
            while events < self.max_batch_events {
                match requests.try_recv() {
                    Ok(request) => {
                        events += request.event_count();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch);
        }
    }

    /// Run `batch` in one transaction, commit it, then answer every request.
    ///
    /// The requests first run bare: most that fail do so before they write
    /// anything. Should one fail after writing part of itself, the whole
    /// transaction is undone and the batch runs again with each request in
    /// a savepoint of its own, so that its failure undoes only its writes.
    fn commit_batch(&mut self, batch: &mut Vec<WriteRequest>) {
        let recorded_at = Utc::now().timestamp_micros();
        let mut ran = self
            .begin()
            .map(|()| self.run_requests(batch, recorded_at, false));
        if matches!(ran, Ok(false)) {
            // The heads of this transaction were never stored.
            self.known.clear();
            self.tip = None;
            // SQLite may have rolled the transaction back itself.
            let undone = if self.connection.is_autocommit() {
                Ok(())
            } else {
                run_cached(&self.connection, "ROLLBACK").map_err(|error| error.to_string())
            };
            ran = undone
                .and_then(|()| self.begin())
                .map(|()| self.run_requests(batch, recorded_at, true));
        }
        let committed = match ran {
            Err(why) => Err(why),
            Ok(_) if batch.iter().any(WriteRequest::succeeded) => {
                run_cached(&self.connection, "COMMIT")
                    .map_err(|error| format!("commit failed: {error}"))
            }
            Ok(_) => {
                self.tip = None;
                run_cached(&self.connection, "ROLLBACK")
                    .map_err(|error| format!("commit failed: {error}"))
            }
        };
        match committed {
            Err(why) => {
                // The heads of this transaction were never stored.
                self.known.clear();
                self.tip = None;
                tracing::error!(error = %why, "event store transaction failed");
                if !self.connection.is_autocommit() {
                    let _ = self.connection.execute_batch("ROLLBACK");
                }
                for request in batch.iter_mut() {
                    request.fail(&why);
                }
            }
            Ok(()) => {
                let last = batch
                    .iter()
                    .filter_map(WriteRequest::appended_position)
                    .max();
                if let Some(last) = last {
                    self.heads.send_if_modified(|head| {
                        let newer = last > *head;
                        if newer {
                            *head = last;
                        }
                        newer
                    });
                }
            }
        }
        for request in batch.drain(..) {
            request.answer();
        }
    }

    /// `BEGIN IMMEDIATE`, then forget cached heads if another writer may
    /// have committed since.
    fn begin(&mut self) -> Result<(), String> {
        run_cached(&self.connection, "BEGIN IMMEDIATE").map_err(|error| error.to_string())?;
        match self.known.check_other_writers(&self.connection) {
            Ok(false) => {}
            // Another writer committed, or that is unsure: trust nothing cached.
            Ok(true) | Err(_) => {
                self.known.clear();
                self.tip = None;
            }
        }
        if self.tip.is_none() {
            self.tip = Some(chain_tip(&self.connection).map_err(|error| error.to_string())?);
        }
        Ok(())
    }

    /// Run every request of `batch` in the open transaction, keeping each
    /// result in its request; `isolated` puts each in a savepoint. `false`
    /// when a request that ran bare failed after writing part of itself
    /// (or took the transaction with it): the transaction must be undone.
    fn run_requests(
        &mut self,
        batch: &mut [WriteRequest],
        recorded_at: i64,
        isolated: bool,
    ) -> bool {
        for request in batch.iter_mut() {
            let changes = self.connection.total_changes();
            let failed = match request {
                WriteRequest::Append {
                    stream,
                    expected,
                    events,
                    keys,
                    done,
                    ..
                } => {
                    let known = self.known.get(stream);
                    let Some(before) = self.tip else {
                        *done = Some(Err(StoreError::Backend(
                            "the chain's last link is unknown".to_owned(),
                        )));
                        continue;
                    };
                    let mut tip = before;
                    // The keys after the events: an append refused by its
                    // expected revision then writes nothing at all.
                    let result = run_request(&self.connection, isolated, |connection| {
                        let appended = append(
                            connection,
                            known,
                            stream,
                            *expected,
                            events,
                            recorded_at,
                            &mut tip,
                        )?;
                        for key in keys.iter() {
                            put_key_row(connection, key)?;
                        }
                        Ok(appended)
                    })
                    .map(|(result, head)| {
                        self.known.put(stream, head);
                        result
                    });
                    // A failed request's links are not stored.
                    self.tip = Some(if result.is_ok() { tip } else { before });
                    let failed = result.is_err();
                    *done = Some(result);
                    failed
                }
                WriteRequest::Tombstone {
                    stream,
                    expected,
                    done,
                    ..
                } => {
                    let known = self.known.get(stream);
                    let result = run_request(&self.connection, isolated, |connection| {
                        tombstone(connection, known, stream, *expected)
                    })
                    .map(|head| self.known.put(stream, head));
                    let failed = result.is_err();
                    *done = Some(result);
                    failed
                }
                WriteRequest::PutKey { key, done, .. } => {
                    let result = run_request(&self.connection, isolated, |connection| {
                        put_key_row(connection, key)
                    });
                    let failed = result.is_err();
                    *done = Some(result);
                    failed
                }
            };
            let dirty =
                self.connection.total_changes() != changes || self.connection.is_autocommit();
            if failed && !isolated && dirty {
                return false;
            }
        }
        true
    }
}

/// Run one request bare, or in a savepoint when `isolated`.
fn run_request<T>(
    connection: &Connection,
    isolated: bool,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if isolated {
        in_savepoint(connection, work)
    } else {
        work(connection)
    }
}

/// Run one request so that its failure undoes only its own writes.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    connection
        .prepare_cached("SAVEPOINT request")
        .and_then(|mut statement| statement.execute([]))
        .map_err(backend)?;
    let result = work(connection);
    let close = if result.is_ok() {
        connection
            .prepare_cached("RELEASE request")
            .and_then(|mut statement| statement.execute([]))
    } else {
        connection
            .prepare_cached("ROLLBACK TO request")
            .and_then(|mut statement| statement.execute([]))
            .and_then(|_| connection.prepare_cached("RELEASE request"))
            .and_then(|mut statement| statement.execute([]))
    };
    match (result, close) {
        (Ok(value), Ok(_)) => Ok(value),
        (Err(error), _) => Err(error),
        (Ok(_), Err(error)) => Err(backend(error)),
    }
}

/// Column `index` of `row` as bytes.
fn blob<'a>(row: &'a Row<'_>, index: usize) -> Result<&'a [u8], StoreError> {
    row.get_ref(index)
        .and_then(|value| Ok(value.as_blob()?))
        .map_err(backend)
}

/// `(stream_id, deleted)` of a stream that has a row.
fn find_stream(connection: &Connection, stream: &str) -> Result<Option<(i64, bool)>, StoreError> {
    connection
        .prepare_cached("SELECT stream_id, deleted FROM streams WHERE name = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([stream], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)? != 0))
                })
                .optional()
        })
        .map_err(backend)
}

fn current_revision(
    connection: &Connection,
    stream_id: i64,
) -> Result<CurrentRevision, StoreError> {
    let last: Option<i64> = connection
        .prepare_cached(
            "SELECT revision FROM events WHERE stream_id = ?1 ORDER BY revision DESC LIMIT 1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([stream_id], |row| row.get(0))
                .optional()
        })
        .map_err(backend)?;
    Ok(match last {
        Some(revision) => CurrentRevision::Current(revision as u64),
        None => CurrentRevision::NoStream,
    })
}

fn deleted(stream: &str) -> StoreError {
    StoreError::StreamDeleted {
        stream: stream.to_owned(),
    }
}

fn mismatch(stream: &str) -> StoreError {
    StoreError::IdempotencyMismatch {
        stream: stream.to_owned(),
    }
}

/// The original result when `events` is a retry of an append already stored.
fn idempotent_result(
    connection: &Connection,
    stream: &str,
    stream_id: Option<i64>,
    events: &[PreparedEvent],
) -> Result<Option<AppendResult>, StoreError> {
    let first: Option<(i64, i64)> = connection
        .prepare_cached("SELECT stream_id, revision FROM events WHERE event_id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row([events[0].id.as_bytes()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()
        })
        .map_err(backend)?;
    let Some((first_stream, first_revision)) = first else {
        return Ok(None);
    };
    if Some(first_stream) != stream_id {
        return Err(mismatch(stream));
    }
    let mut statement = connection
        .prepare_cached(
            "SELECT event_id, revision, position FROM events \
             WHERE stream_id = ?1 AND revision >= ?2 ORDER BY revision LIMIT ?3",
        )
        .map_err(backend)?;
    let stored = statement
        .query_map(
            params![first_stream, first_revision, limit_i64(events.len())],
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            },
        )
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let matches = stored.len() == events.len()
        && stored
            .iter()
            .zip(events)
            .all(|((id, _, _), event)| id.as_slice() == event.id.as_bytes());
    match stored.last() {
        Some(&(_, revision, position)) if matches => Ok(Some(AppendResult {
            next_expected_revision: revision as u64,
            position: position as u64,
        })),
        _ => Err(mismatch(stream)),
    }
}

/// The head of `stream`: `known` when the writer knows it, else as stored
/// (`None` when it has no row).
fn known_or_read(
    connection: &Connection,
    known: Option<StreamHead>,
    stream: &str,
) -> Result<Option<StreamHead>, StoreError> {
    if known.is_some() {
        return Ok(known);
    }
    let Some((stream_id, deleted)) = find_stream(connection, stream)? else {
        return Ok(None);
    };
    Ok(Some(StreamHead {
        stream_id,
        deleted,
        current: current_revision(connection, stream_id)?,
    }))
}

/// Append `events` to `stream`; `known` is the stream's head when the
/// writer knows it (else it is read). Returns the result and the new head.
fn append(
    connection: &Connection,
    known: Option<StreamHead>,
    stream: &str,
    expected: ExpectedRevision,
    events: &[PreparedEvent],
    recorded_at: i64,
    tip: &mut ChainTip,
) -> Result<(AppendResult, StreamHead), StoreError> {
    let head = known_or_read(connection, known, stream)?;
    if head.is_some_and(|head| head.deleted) {
        return Err(deleted(stream));
    }
    let known_id = head.map(|head| head.stream_id);
    // A retry shows either as a conflict or as a first id already stored:
    // only then is it looked for (new ids are the common case).
    let retry = || -> Result<Option<(AppendResult, StreamHead)>, StoreError> {
        let Some(original) = idempotent_result(connection, stream, known_id, events)? else {
            return Ok(None);
        };
        // A stored event of this stream was found, so the stream has a head.
        let head = head.ok_or_else(|| mismatch(stream))?;
        Ok(Some((original, head)))
    };
    let current = head.map_or(CurrentRevision::NoStream, |head| head.current);
    if let Err(conflict) = check_expected(stream, expected, current) {
        return retry()?.ok_or(conflict);
    }
    let stream_id = match known_id {
        Some(id) => id,
        None => {
            connection
                .prepare_cached("INSERT INTO streams (name) VALUES (?1)")
                .and_then(|mut statement| statement.execute([stream]))
                .map_err(backend)?;
            connection.last_insert_rowid()
        }
    };
    let first_revision = match current {
        CurrentRevision::NoStream => 0,
        CurrentRevision::Current(last) => last + 1,
    };
    let mut insert = connection
        .prepare_cached(
            "INSERT INTO events (position, stream_id, revision, event_id, type_name, \
             schema_version, recorded_at, metadata, payload, chain) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(backend)?;
    let mut result = None;
    for (revision, event) in (first_revision..).zip(events) {
        // The writer holds the write lock: the next position is the tip's
        // successor, and the link is computed before the row is written.
        let position = tip.position + 1;
        let link = chain::link(
            &tip.link,
            &chain::ChainedEvent {
                position,
                stream,
                revision,
                id: event.id.as_bytes(),
                type_name: &event.type_name,
                schema_version: event.schema_version,
                recorded_at_micros: recorded_at,
                metadata: &event.metadata,
                payload: &event.payload,
            },
        );
        let inserted = insert.execute(params![
            to_i64(position),
            stream_id,
            to_i64(revision),
            event.id.as_bytes(),
            event.type_name,
            event.schema_version,
            recorded_at,
            event.metadata,
            event.payload,
            &link[..],
        ]);
        match inserted {
            Ok(_) => {}
            Err(error) if is_stored_id(&error) => {
                // The first id stored already: a retry, or ids of another
                // append; a later id stored: ids that match only in part.
                if result.is_none() {
                    return retry()?.ok_or_else(|| mismatch(stream));
                }
                return Err(mismatch(stream));
            }
            Err(error) => return Err(backend(error)),
        }
        *tip = ChainTip { position, link };
        result = Some(AppendResult {
            next_expected_revision: revision,
            position,
        });
    }
    let result = result.ok_or(StoreError::EmptyAppend)?;
    let head = StreamHead {
        stream_id,
        deleted: false,
        current: CurrentRevision::Current(result.next_expected_revision),
    };
    Ok((result, head))
}

/// Whether an insert failed because its event id is stored already.
fn is_stored_id(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
        && error.to_string().contains("events.event_id")
}

/// Tombstone `stream`; `known` as for [`append`]. Returns the new head.
fn tombstone(
    connection: &Connection,
    known: Option<StreamHead>,
    stream: &str,
    expected: ExpectedRevision,
) -> Result<StreamHead, StoreError> {
    match known_or_read(connection, known, stream)? {
        Some(StreamHead { deleted: true, .. }) => Err(deleted(stream)),
        Some(head) => {
            check_expected(stream, expected, head.current)?;
            connection
                .prepare_cached("UPDATE streams SET deleted = 1 WHERE stream_id = ?1")
                .and_then(|mut statement| statement.execute([head.stream_id]))
                .map_err(backend)?;
            Ok(StreamHead {
                deleted: true,
                ..head
            })
        }
        None => {
            check_expected(stream, expected, CurrentRevision::NoStream)?;
            connection
                .prepare_cached("INSERT INTO streams (name, deleted) VALUES (?1, 1)")
                .and_then(|mut statement| statement.execute([stream]))
                .map_err(backend)?;
            Ok(StreamHead {
                stream_id: connection.last_insert_rowid(),
                deleted: true,
                current: CurrentRevision::NoStream,
            })
        }
    }
}

// ---------------------------------------------------------------- reading

/// Read connections, opened on demand and kept for reuse.
struct ReaderPool {
    path: PathBuf,
    busy_timeout: Duration,
    max_idle: usize,
    idle: Mutex<Vec<ReadConnection>>,
}

impl ReaderPool {
    fn take(&self) -> Result<ReadConnection, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => ReadConnection::open(&self.path, self.busy_timeout),
        }
    }

    fn put(&self, connection: ReadConnection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }

    /// Run `work` on a pooled connection on tokio's blocking pool.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut ReadConnection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut connection = pool.take()?;
            let result = work(&mut connection);
            pool.put(connection);
            result
        })
        .await
        .map_err(|error| StoreError::Backend(format!("read task failed: {error}")))?
    }
}

struct ReadConnection {
    connection: Connection,
    /// Names already read, shared by the events that carry them.
    names: NameCache,
    /// Payload bytes per event to reserve for the next page of the log.
    payload_hint: usize,
}

/// Page cache of a read connection, in KiB.
pub(crate) const READ_CACHE_KIB: u32 = 2048;

/// The most payload bytes per event a page reserves in advance.
const MAX_PAYLOAD_HINT: usize = 4096;

/// The most slots of the stream name cache of one read connection (a power
/// of two): stream `id` lives in slot `id % slots`. The cache grows to the
/// streams it meets, up to this: 12 MiB of slots, and the names they hold.
/// A scan of a log with more streams than slots looks names up again.
const STREAM_SLOTS: usize = 1 << 19;
/// The most slots a stream name cache grows to for streams read by name:
/// a scan of the log grows it further.
const STREAM_SLOTS_BY_NAME: usize = 1 << 17;
/// The fewest slots of a stream name cache that holds any.
const MIN_STREAM_SLOTS: usize = 1 << 10;
/// Stream names read ahead when a scan meets a stream newer than any read
/// so far: a scan meets streams roughly in the order they were created.
const STREAM_NAME_READ_AHEAD: i64 = 256;

/// Stream and type names of one read connection, each held once.
#[derive(Default)]
pub(crate) struct NameCache {
    /// Direct-mapped stream names: `(stream_id, name)`; a stream's name never
    /// changes. Empty until the first lookup.
    streams: Vec<Option<(i64, Arc<str>)>>,
    /// The highest stream id read so far.
    highest: i64,
    /// type name bytes -> the shared name.
    types: FxHashMap<Box<[u8]>, Arc<str>>,
    /// Actors met lately, shared by the events that carry them.
    actors: Interner,
    /// The date of the day of the last instant read.
    days: DayCache,
}

impl NameCache {
    /// The slot of `stream_id`; the cache holds some.
    fn slot(&self, stream_id: i64) -> usize {
        (stream_id as u64 as usize) & (self.streams.len() - 1)
    }

    /// The cached name of a stream.
    #[inline]
    fn cached(&self, stream_id: i64) -> Option<&Arc<str>> {
        if self.streams.is_empty() {
            return None;
        }
        match self.streams.get(self.slot(stream_id)) {
            Some(Some((id, name))) if *id == stream_id => Some(name),
            _ => None,
        }
    }

    /// The name of a stream; a miss reads it, and the next ones as well
    /// when it is newer than every stream read so far.
    fn stream(&mut self, connection: &Connection, stream_id: i64) -> Result<Arc<str>, StoreError> {
        if let Some(name) = self.cached(stream_id) {
            return Ok(Arc::clone(name));
        }
        let mut statement = names_from(connection)?;
        self.read_from(&mut statement, stream_id)?
            .ok_or_else(|| unknown_stream(stream_id))
    }

    /// Readies the names of these streams, the ones a page of the log
    /// needs: reads the names that are not cached, in the order of their
    /// ids, with one statement; reads the reference count of each cached
    /// one, so that the loop that then takes a reference to each finds it
    /// in the CPU's cache (these plain loads overlap, whereas each locked
    /// increment of a reference count waits for its own cache miss).
    fn load(
        &mut self,
        connection: &Connection,
        stream_ids: &mut Vec<i64>,
    ) -> Result<(), StoreError> {
        let mut counts = 0usize;
        stream_ids.retain(|&stream_id| match self.cached(stream_id) {
            Some(name) => {
                counts = counts.wrapping_add(Arc::strong_count(name));
                false
            }
            None => true,
        });
        std::hint::black_box(counts);
        if stream_ids.is_empty() {
            return Ok(());
        }
        stream_ids.sort_unstable();
        stream_ids.dedup();
        let mut statement = names_from(connection)?;
        for &stream_id in stream_ids.iter() {
            // Read ahead by an earlier one, or else read now.
            if !self.has_stream(stream_id) {
                self.read_from(&mut statement, stream_id)?
                    .ok_or_else(|| unknown_stream(stream_id))?;
            }
        }
        Ok(())
    }

    /// Reads the name of `stream_id` through `statement` (of
    /// [`names_from`]), and the next ones as well when it is newer than
    /// every stream read so far; `None` when there is no such stream.
    fn read_from(
        &mut self,
        statement: &mut Statement<'_>,
        stream_id: i64,
    ) -> Result<Option<Arc<str>>, StoreError> {
        let ahead = if stream_id > self.highest {
            STREAM_NAME_READ_AHEAD
        } else {
            1
        };
        let mut rows = statement
            .query(params![stream_id, ahead])
            .map_err(backend)?;
        let mut found = None;
        while let Some(row) = rows.next().map_err(backend)? {
            let id: i64 = row.get(0).map_err(backend)?;
            let name = match row.get_ref(1).map_err(backend)? {
                ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok().map(Arc::<str>::from),
                _ => None,
            }
            .ok_or_else(|| StoreError::Backend(format!("corrupt name of stream {id}")))?;
            if id == stream_id {
                found = Some(Arc::clone(&name));
            }
            self.remember(id, name, STREAM_SLOTS);
        }
        Ok(found)
    }

    fn has_stream(&self, stream_id: i64) -> bool {
        self.cached(stream_id).is_some()
    }

    /// Remembers a stream's name found by name (a stream read): growing the
    /// cache to at most [`STREAM_SLOTS_BY_NAME`], since the streams a server
    /// reads one by one are many and met once in a while.
    fn remember_stream(&mut self, stream_id: i64, name: &str) {
        if !self.has_stream(stream_id) {
            self.remember(stream_id, Arc::from(name), STREAM_SLOTS_BY_NAME);
        }
    }

    /// Remembers a stream's name, growing the cache to the stream's id if
    /// it is smaller, up to `most_slots`.
    fn remember(&mut self, stream_id: i64, name: Arc<str>, most_slots: usize) {
        let wanted = (stream_id as u64 as usize)
            .saturating_add(1)
            .clamp(
                MIN_STREAM_SLOTS,
                most_slots.clamp(MIN_STREAM_SLOTS, STREAM_SLOTS),
            )
            .next_power_of_two();
        if wanted > self.streams.len() {
            self.grow(wanted);
        }
        self.highest = self.highest.max(stream_id);
        let slot = self.slot(stream_id);
        self.streams[slot] = Some((stream_id, name));
    }

    /// Grows the cache to `slots` slots, keeping every name it holds (in a
    /// larger cache, no two of them share a slot).
    fn grow(&mut self, slots: usize) {
        let held = std::mem::replace(&mut self.streams, vec![None; slots]);
        for (stream_id, name) in held.into_iter().flatten() {
            let slot = self.slot(stream_id);
            self.streams[slot] = Some((stream_id, name));
        }
    }

    /// The shared type name for these stored bytes.
    fn type_name(&mut self, bytes: &[u8], position: u64) -> Result<Arc<str>, StoreError> {
        if let Some(name) = self.types.get(bytes) {
            return Ok(Arc::clone(name));
        }
        let name: Arc<str> = Arc::from(std::str::from_utf8(bytes).map_err(|_| {
            StoreError::Backend(format!("corrupt type name at position {position}"))
        })?);
        self.types.insert(bytes.into(), Arc::clone(&name));
        Ok(name)
    }
}

/// The statement that reads stream names from an id on.
fn names_from(connection: &Connection) -> Result<CachedStatement<'_>, StoreError> {
    connection
        .prepare_cached(
            "SELECT stream_id, name FROM streams WHERE stream_id >= ?1 \
             ORDER BY stream_id LIMIT ?2",
        )
        .map_err(backend)
}

/// The error for an event of a stream that does not exist.
fn unknown_stream(stream_id: i64) -> StoreError {
    StoreError::Backend(format!("event names unknown stream {stream_id}"))
}

impl ReadConnection {
    fn open(path: &Path, busy_timeout: Duration) -> Result<ReadConnection, StoreError> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .map_err(|error| StoreError::Backend(format!("cannot open {}: {error}", path.display())))?;
        keep_plans(&connection)?;
        connection.busy_timeout(busy_timeout).map_err(backend)?;
        // A small page cache: a scan of the log cycles through its buffers,
        // which then stay in the CPU's caches (a scan through a 16 MiB
        // cache ran 5 % slower); a stream read needs the upper levels of
        // two b-trees, which 2 MiB holds.
        connection
            .execute_batch(&format!(
                "PRAGMA query_only = ON; PRAGMA cache_size = -{READ_CACHE_KIB};"
            ))
            .map_err(backend)?;
        connection.set_prepared_statement_cache_capacity(16);
        Ok(ReadConnection {
            connection,
            names: NameCache::default(),
            payload_hint: 0,
        })
    }

    fn head(&mut self) -> Result<u64, StoreError> {
        let head: i64 = self
            .connection
            .prepare_cached("SELECT coalesce(max(position), 0) FROM events")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(backend)?;
        Ok(head as u64)
    }

    fn read_all(&mut self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let ReadConnection {
            connection,
            names,
            payload_hint,
        } = self;
        // One read transaction for the page and the names it needs: one
        // snapshot, and one taking of the file's read lock instead of one
        // per name looked up.
        let connection = connection.transaction().map_err(backend)?;
        let mut statement = connection
            .prepare_cached(&format!(
                "{SELECT_EVENT_COLUMNS} WHERE position > ?1 ORDER BY position LIMIT ?2"
            ))
            .map_err(backend)?;
        let mut rows = statement
            .query(params![to_i64(after), limit_i64(limit)])
            .map_err(backend)?;
        let mut page = PageBuilder::with_capacity(limit.min(4096), *payload_hint);
        while let Some(row) = rows.next().map_err(backend)? {
            page.push(names, row)?;
        }
        if !page.events.is_empty() {
            // A little above this page's mean, so that the next page's
            // buffer rarely has to grow (and copy).
            *payload_hint = (page.payloads.len() / page.events.len() + 16).min(MAX_PAYLOAD_HINT);
        }
        drop(rows);
        drop(statement);
        page.finish(&connection, names)
    }

    fn read_stream(
        &mut self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let ReadConnection {
            connection, names, ..
        } = self;
        // The stream and its events from one snapshot.
        let connection = connection.transaction().map_err(backend)?;
        let Some((stream_id, is_deleted)) = find_stream(&connection, stream)? else {
            return Ok(Vec::new());
        };
        if is_deleted {
            return Err(deleted(stream));
        }
        names.remember_stream(stream_id, stream);
        let (condition, order, from) = match (direction, start) {
            (Direction::Forwards, StreamStart::Edge) => (">=", "ASC", 0),
            (Direction::Forwards, StreamStart::Revision(revision)) => {
                (">=", "ASC", to_i64(revision))
            }
            (Direction::Backwards, StreamStart::Edge) => ("<=", "DESC", i64::MAX),
            (Direction::Backwards, StreamStart::Revision(revision)) => {
                ("<=", "DESC", to_i64(revision))
            }
        };
        let mut statement = connection
            .prepare_cached(&format!(
                "{SELECT_EVENT_COLUMNS} WHERE stream_id = ?1 AND revision {condition} ?2 \
                 ORDER BY revision {order} LIMIT ?3"
            ))
            .map_err(backend)?;
        let mut rows = statement
            .query(params![stream_id, from, limit_i64(limit)])
            .map_err(backend)?;
        let mut page = PageBuilder::with_capacity(limit.min(64), 0);
        while let Some(row) = rows.next().map_err(backend)? {
            page.push(names, row)?;
        }
        drop(rows);
        drop(statement);
        page.finish(&connection, names)
    }
}

/// Builds the events of one read. Their payloads go into one buffer that
/// the events share once the page is complete, and their stream names are
/// looked up together at the end, in a tight loop whose cache misses
/// overlap (inside the row loop they would come one at a time).
struct PageBuilder {
    events: Vec<RecordedEvent>,
    /// Per event: its stream id and the (start, end) of its payload in `payloads`.
    parts: Vec<(i64, usize, usize)>,
    payloads: Vec<u8>,
    /// The stream name every event holds until [`PageBuilder::finish`].
    unnamed: Arc<str>,
}

impl PageBuilder {
    /// Room for `events` events of about `payload_bytes` bytes each.
    fn with_capacity(events: usize, payload_bytes: usize) -> PageBuilder {
        PageBuilder {
            events: Vec::with_capacity(events),
            parts: Vec::with_capacity(events),
            payloads: Vec::with_capacity(events.saturating_mul(payload_bytes)),
            unnamed: Arc::from(""),
        }
    }

    /// One row as an event. Its payload goes to `payloads`; its stream name
    /// and payload are filled in by [`PageBuilder::finish`]. The event is
    /// built in place in the page (it is some 200 bytes).
    fn push(&mut self, names: &mut NameCache, row: &Row<'_>) -> Result<(), StoreError> {
        let position: i64 = row.get(0).map_err(backend)?;
        let position = position as u64;
        let stream_id: i64 = row.get(1).map_err(backend)?;
        let revision: i64 = row.get(2).map_err(backend)?;
        let id = Uuid::from_slice(blob(row, 3)?)
            .map_err(|_| StoreError::Backend(format!("corrupt event id at position {position}")))?;
        let type_name = match row.get_ref(4).map_err(backend)? {
            ValueRef::Text(bytes) => names.type_name(bytes, position)?,
            _ => {
                return Err(StoreError::Backend(format!(
                    "corrupt type name at position {position}"
                )));
            }
        };
        let schema_version: u16 = row.get(5).map_err(backend)?;
        let recorded_at: i64 = row.get(6).map_err(backend)?;
        let recorded_at = names.days.instant_micros(recorded_at).ok_or_else(|| {
            StoreError::Backend(format!("corrupt recorded_at at position {position}"))
        })?;
        let NameCache { actors, days, .. } = names;
        let metadata = crate::metadata_wire::decode_with(
            blob(row, 7)?,
            |actor: &[u8]| actors.get(actor),
            days,
        )
        .ok_or_else(|| corrupt_metadata(position))?;
        let payload = blob(row, 8)?;
        let start = self.payloads.len();
        self.payloads.extend_from_slice(payload);
        self.parts.push((stream_id, start, self.payloads.len()));
        self.events.push(RecordedEvent {
            id,
            stream: Arc::clone(&self.unnamed),
            revision: revision as u64,
            position,
            type_name,
            schema_version,
            recorded_at,
            metadata,
            payload: Bytes::new(),
        });
        Ok(())
    }

    fn finish(
        self,
        connection: &Connection,
        names: &mut NameCache,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let PageBuilder {
            mut events,
            parts,
            payloads,
            unnamed: _,
        } = self;
        let mut stream_ids: Vec<i64> = parts.iter().map(|(stream_id, ..)| *stream_id).collect();
        names.load(connection, &mut stream_ids)?;
        let shared = Bytes::from(payloads);
        for (event, (stream_id, start, end)) in events.iter_mut().zip(parts) {
            event.stream = names.stream(connection, stream_id)?;
            event.payload = shared.slice(start..end);
        }
        Ok(events)
    }
}

/// What a subscription holds: the read pool, not the store, so that dropping
/// the store still ends its subscriptions.
struct SqliteReader {
    readers: Arc<ReaderPool>,
}

impl LogReader for SqliteReader {
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>> {
        let readers = Arc::clone(&self.readers);
        async move {
            readers
                .run(move |connection| connection.read_all(after, limit))
                .await
        }
        .boxed()
    }

    fn head(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        let readers = Arc::clone(&self.readers);
        async move { readers.run(ReadConnection::head).await }.boxed()
    }
}

fn prepare(events: Vec<NewEvent>) -> Vec<PreparedEvent> {
    events
        .into_iter()
        .map(|event| PreparedEvent {
            metadata: encode_metadata(&event.metadata),
            id: event.id,
            type_name: event.type_name,
            schema_version: event.schema_version,
            payload: event.payload,
        })
        .collect()
}

#[async_trait::async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append_with_keys(stream, expected, events, Vec::new())
            .await
    }

    async fn append_with_keys(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        keys: Vec<crate::StoredKey>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events)?;
        for key in &keys {
            crate::rules::validate_key(key)?;
        }
        let (reply, answer) = oneshot::channel();
        self.send(WriteRequest::Append {
            stream: stream.to_owned(),
            expected,
            events: prepare(events),
            keys,
            reply,
            done: None,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_chain(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<chain::ChainLink>, StoreError> {
        self.readers
            .run(move |connection| {
                let transaction = connection.connection.transaction().map_err(backend)?;
                read_chain(&transaction, after, limit)
            })
            .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_stream(stream)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stream = stream.to_owned();
        self.readers
            .run(move |connection| connection.read_stream(&stream, start, direction, limit))
            .await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.readers
            .run(move |connection| connection.read_all(after, limit))
            .await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.readers.run(ReadConnection::head).await
    }

    fn subscribe_all(
        &self,
        after: u64,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        let reader = Arc::new(SqliteReader {
            readers: Arc::clone(&self.readers),
        });
        follow_all(reader, self.heads.subscribe(), after)
    }

    async fn tombstone(&self, stream: &str, expected: ExpectedRevision) -> Result<(), StoreError> {
        validate_stream(stream)?;
        let (reply, answer) = oneshot::channel();
        self.send(WriteRequest::Tombstone {
            stream: stream.to_owned(),
            expected,
            reply,
            done: None,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        crate::rules::validate_value(name, &[])?;
        let values = Arc::clone(&self.values);
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let connection = values.lock().unwrap_or_else(|p| p.into_inner());
            connection
                .query_row(
                    "SELECT value FROM store_values WHERE name = ?1",
                    [&name],
                    |row| row.get::<_, Vec<u8>>(0),
                )
                .optional()
                .map_err(backend)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn swap_value(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        crate::rules::validate_value(name, value)?;
        let values = Arc::clone(&self.values);
        let (name, expected, value) = (
            name.to_owned(),
            expected.map(<[u8]>::to_vec),
            value.to_vec(),
        );
        tokio::task::spawn_blocking(move || {
            let mut connection = values.lock().unwrap_or_else(|p| p.into_inner());
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            let current: Option<Vec<u8>> = transaction
                .query_row(
                    "SELECT value FROM store_values WHERE name = ?1",
                    [&name],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            if current != expected {
                return Ok(false);
            }
            transaction
                .execute(
                    "INSERT INTO store_values (name, value) VALUES (?1, ?2) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    rusqlite::params![name, value],
                )
                .map_err(backend)?;
            transaction.commit().map_err(backend)?;
            Ok(true)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn put_key(&self, key: &crate::StoredKey) -> Result<(), StoreError> {
        crate::rules::validate_key(key)?;
        let (reply, answer) = oneshot::channel();
        self.send(WriteRequest::PutKey {
            key: key.clone(),
            reply,
            done: None,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_key(&self, id: Uuid) -> Result<Option<crate::StoredKey>, StoreError> {
        self.with_keys(move |connection| read_key_row(connection, id))
            .await
    }

    async fn read_keys(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<crate::StoredKey>, StoreError> {
        self.with_keys(move |connection| {
            let after = after.map(|id| id.as_bytes().to_vec()).unwrap_or_default();
            let mut statement = connection
                .prepare_cached(
                    "SELECT id, subject, wrapped FROM data_keys WHERE id > ?1 \
                     ORDER BY id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map(rusqlite::params![after, limit_i64(limit)], key_row)
                .map_err(backend)?;
            rows.map(|row| row.map_err(backend)?).collect()
        })
        .await
    }

    async fn destroy_keys(&self, subject: &str) -> Result<u64, StoreError> {
        crate::rules::validate_key_subject(subject)?;
        let subject = subject.to_owned();
        self.with_keys(move |connection| {
            let transaction = connection
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(backend)?;
            // The subject index first takes in the keys stored since.
            transaction
                .execute_batch(
                    "INSERT INTO data_key_subjects (subject, id) \
                     SELECT subject, id FROM data_keys \
                     WHERE n > (SELECT n FROM data_key_subjects_upto) \
                     ON CONFLICT DO NOTHING; \
                     UPDATE data_key_subjects_upto \
                     SET n = max(n, (SELECT coalesce(max(n), 0) FROM data_keys));",
                )
                .map_err(backend)?;
            let removed = transaction
                .execute(
                    "DELETE FROM data_keys WHERE id IN \
                     (SELECT id FROM data_key_subjects WHERE subject = ?1)",
                    [&subject],
                )
                .map_err(backend)?;
            transaction
                .execute(
                    "DELETE FROM data_key_subjects WHERE subject = ?1",
                    [&subject],
                )
                .map_err(backend)?;
            transaction.commit().map_err(backend)?;
            if removed > 0 {
                // Move the overwritten pages from the WAL into the file and
                // empty the WAL, so that no old copy of the key stays in
                // either (best effort while readers hold old snapshots: the
                // next checkpoint finishes it).
                if let Err(error) =
                    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                {
                    tracing::warn!(%error, "checkpoint after destroying data keys failed");
                }
            }
            Ok(removed as u64)
        })
        .await
    }
}

impl SqliteStore {
    /// Run `work` on the connection of the key table.
    async fn with_keys<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let values = Arc::clone(&self.keys);
        tokio::task::spawn_blocking(move || {
            let mut connection = values.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn key_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<crate::StoredKey, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let subject: String = row.get(1)?;
    let wrapped: Vec<u8> = row.get(2)?;
    Ok(Uuid::from_slice(&id)
        .map(|id| crate::StoredKey {
            id,
            subject,
            wrapped,
        })
        .map_err(|_| StoreError::Backend("a data key with a malformed id".to_owned())))
}

/// Keep `key` in the key table (the same key again is a no-op).
fn put_key_row(connection: &Connection, key: &crate::StoredKey) -> Result<(), StoreError> {
    match read_key_row(connection, key.id)? {
        Some(stored) if stored == *key => Ok(()),
        Some(_) => Err(crate::rules::key_mismatch(key.id)),
        None => connection
            .prepare_cached("INSERT INTO data_keys (id, subject, wrapped) VALUES (?1, ?2, ?3)")
            .map_err(backend)?
            .execute(rusqlite::params![
                key.id.as_bytes().as_slice(),
                key.subject,
                key.wrapped
            ])
            .map(|_| ())
            .map_err(backend),
    }
}

fn read_key_row(connection: &Connection, id: Uuid) -> Result<Option<crate::StoredKey>, StoreError> {
    connection
        .prepare_cached("SELECT id, subject, wrapped FROM data_keys WHERE id = ?1")
        .map_err(backend)?
        .query_row([id.as_bytes().as_slice()], key_row)
        .optional()
        .map_err(backend)?
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_version_1_file_gains_the_values_table_and_keeps_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection.execute_batch(CREATE_SCHEMA).unwrap();
            connection
                .execute_batch(
                    "INSERT INTO streams (stream_id, name) VALUES (1, 'kept');
                     INSERT INTO events VALUES (1, 1, 0, x'00112233445566778899aabbccddeeff',
                         'Happened', 1, 0, x'', x'01');
                     PRAGMA user_version = 1;",
                )
                .unwrap();
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let runtime = runtime();
        runtime.block_on(async {
            assert_eq!(store.head_position().await.unwrap(), 1);
            assert!(store.swap_value("outbox", None, b"1").await.unwrap());
            assert_eq!(
                store.read_value("outbox").await.unwrap(),
                Some(b"1".to_vec())
            );
        });
        let connection = Connection::open(&path).unwrap();
        assert_eq!(user_version(&connection).unwrap(), SCHEMA_VERSION);
    }

    fn new_event(n: u8) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            type_name: "Happened".into(),
            schema_version: 1,
            metadata: crate::EventMetadata {
                actor: "system".into(),
                correlation_id: Uuid::nil(),
                causation_id: None,
                occurred_at: Utc::now(),
            },
            payload: vec![n],
        }
    }

    /// The subject index is apart from the key table and brought up to
    /// date by each destroy: keys stored before or after a destroy, a key
    /// table of version 4, and a key numbered where a destroyed one was
    /// are all found by their subject.
    #[test]
    fn keys_are_destroyed_by_subject_whenever_they_were_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let key = |subject: &str, n: u8| crate::StoredKey {
            id: Uuid::now_v7(),
            subject: subject.to_owned(),
            wrapped: (0..61u8).map(|i| n ^ i.wrapping_mul(37) ^ 0x5a).collect(),
        };
        let (old_a, old_b, old_a2) = (key("email-a", 1), key("email-b", 2), key("email-a", 3));
        // A file whose key table is of version 4, with keys in it.
        {
            drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
            let connection = Connection::open(&path).unwrap();
            // The subject index's mark is left high: the upgrade must start
            // it over for the renumbered keys.
            connection
                .execute_batch("DROP TABLE data_keys; UPDATE data_key_subjects_upto SET n = 1000;")
                .unwrap();
            connection.execute_batch(CREATE_KEYS).unwrap();
            for stored in [&old_a, &old_b, &old_a2] {
                connection
                    .execute(
                        "INSERT INTO data_keys (id, subject, wrapped) VALUES (?1, ?2, ?3)",
                        rusqlite::params![stored.id.as_bytes(), stored.subject, stored.wrapped],
                    )
                    .unwrap();
            }
            connection.execute_batch("PRAGMA user_version = 4").unwrap();
        }
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let runtime = runtime();
        runtime.block_on(async {
            assert_eq!(store.read_key(old_b.id).await.unwrap(), Some(old_b.clone()));
            let new_a = key("email-a", 4);
            store.put_key(&new_a).await.unwrap();
            assert_eq!(store.destroy_keys("email-a").await.unwrap(), 3);
            assert_eq!(store.destroy_keys("email-a").await.unwrap(), 0);
            for gone in [&old_a, &old_a2, &new_a] {
                assert_eq!(store.read_key(gone.id).await.unwrap(), None);
            }
            // Stored after a destroy, then the newest key destroyed and
            // another stored: each found.
            let later = key("email-c", 5);
            store.put_key(&later).await.unwrap();
            assert_eq!(store.destroy_keys("email-c").await.unwrap(), 1);
            let again = key("email-c", 6);
            store
                .append_with_keys(
                    "person-c",
                    ExpectedRevision::NoStream,
                    vec![new_event(1)],
                    vec![again.clone()],
                )
                .await
                .unwrap();
            assert_eq!(store.destroy_keys("email-c").await.unwrap(), 1);
            assert_eq!(store.destroy_keys("email-b").await.unwrap(), 1);
            assert!(store.read_keys(None, 10).await.unwrap().is_empty());
        });
        drop(store);
        // No copy of a destroyed key in the file, the old table's pages
        // included.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(dir.path().join("events.db-wal")).unwrap_or_default());
        for gone in [&old_a, &old_a2, &old_b] {
            assert!(
                !bytes.windows(gone.wrapped.len()).any(|w| w == gone.wrapped),
                "a destroyed key is still in the file"
            );
        }
        let connection = Connection::open(&path).unwrap();
        let version: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let subject_indexes: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'data_keys' \
                 AND sql LIKE '%subject%'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(subject_indexes, 0, "no index by subject on the key table");
    }

    #[test]
    fn a_key_appended_with_its_event_lands_with_it_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SqliteStore::open(&dir.path().join("events.db"), SqliteOptions::default()).unwrap();
        let key = |n: u8| crate::StoredKey {
            id: Uuid::now_v7(),
            subject: format!("email-{n:02x}"),
            wrapped: vec![n; 61],
        };
        let runtime = runtime();
        runtime.block_on(async {
            let (first, event) = (key(1), new_event(1));
            let appended = store
                .append_with_keys(
                    "person",
                    ExpectedRevision::NoStream,
                    vec![event.clone()],
                    vec![first.clone()],
                )
                .await
                .unwrap();
            assert_eq!(store.read_key(first.id).await.unwrap(), Some(first.clone()));
            // A retry of the same append answers as the first time.
            let again = store
                .append_with_keys(
                    "person",
                    ExpectedRevision::NoStream,
                    vec![event],
                    vec![first.clone()],
                )
                .await
                .unwrap();
            assert_eq!(again, appended);

            // Refused by its expected revision: neither event nor key.
            let refused = key(2);
            let conflict = store
                .append_with_keys(
                    "person",
                    ExpectedRevision::NoStream,
                    vec![new_event(2)],
                    vec![refused.clone()],
                )
                .await;
            assert!(
                matches!(conflict, Err(StoreError::Conflict { .. })),
                "{conflict:?}"
            );
            assert_eq!(store.read_key(refused.id).await.unwrap(), None);

            // A key that clashes with a stored one: the events stay out too.
            let clash = crate::StoredKey {
                wrapped: vec![9; 61],
                ..first.clone()
            };
            let mismatch = store
                .append_with_keys(
                    "other",
                    ExpectedRevision::Any,
                    vec![new_event(3)],
                    vec![clash],
                )
                .await;
            assert!(
                matches!(mismatch, Err(StoreError::InvalidInput(_))),
                "{mismatch:?}"
            );
            assert_eq!(store.head_position().await.unwrap(), appended.position);
            assert_eq!(store.read_key(first.id).await.unwrap(), Some(first));
        });
    }

    fn streams_table(ids: &[i64]) -> Connection {
        let connection = Connection::open_in_memory().unwrap();
        connection.execute_batch(CREATE_SCHEMA).unwrap();
        insert_streams(&connection, ids);
        connection
    }

    /// Streams numbered `ids`, named `stream-<id>`.
    fn insert_streams(connection: &Connection, ids: &[i64]) {
        for id in ids {
            connection
                .execute(
                    "INSERT INTO streams (stream_id, name) VALUES (?1, ?2)",
                    params![id, format!("stream-{id}")],
                )
                .unwrap();
        }
    }

    #[test]
    fn cached_reads_with_a_bound_limit_are_not_prepared_again() {
        let connection = streams_table(&(1..=10).collect::<Vec<_>>());
        keep_plans(&connection).unwrap();
        let sql = "SELECT name FROM streams WHERE stream_id >= ?1 ORDER BY stream_id LIMIT ?2";
        for limit in [1, 2, 3, 2] {
            let mut statement = connection.prepare_cached(sql).unwrap();
            let names: Vec<String> = statement
                .query_map(params![1, limit], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(names.len(), limit);
        }
        let statement = connection.prepare_cached(sql).unwrap();
        assert_eq!(
            statement.get_status(rusqlite::StatementStatus::RePrepare),
            0
        );
    }

    #[test]
    fn streams_sharing_a_cache_slot_keep_their_own_names() {
        let slots = STREAM_SLOTS as i64;
        let connection = streams_table(&[1, 2, 1 + slots, 2 + 2 * slots]);
        let mut names = NameCache::default();
        for _ in 0..2 {
            for id in [1, 1 + slots, 2, 2 + 2 * slots, 1] {
                assert_eq!(
                    &*names.stream(&connection, id).unwrap(),
                    format!("stream-{id}")
                );
            }
        }
    }

    #[test]
    fn a_new_stream_reads_the_next_names_ahead_and_an_unknown_one_is_an_error() {
        let connection = streams_table(&(1..=10).collect::<Vec<_>>());
        let mut names = NameCache::default();
        assert_eq!(&*names.stream(&connection, 3).unwrap(), "stream-3");
        assert!((3..=10).all(|id| names.has_stream(id)));
        assert!(!names.has_stream(2));
        assert_eq!(&*names.stream(&connection, 2).unwrap(), "stream-2");
        let error = names.stream(&connection, 11).unwrap_err();
        assert!(error.to_string().contains("unknown stream 11"), "{error}");
    }

    #[test]
    fn names_a_page_needs_are_loaded_in_one_pass_even_when_they_share_slots() {
        let slots = STREAM_SLOTS as i64;
        let connection = streams_table(&[1, 3, 5, 9, 1 + slots, 2 + 2 * slots]);
        let mut names = NameCache::default();
        names.load(&connection, &mut vec![]).unwrap();
        let page = [5, 1 + slots, 1, 9, 2 + 2 * slots, 5, 3];
        names.load(&connection, &mut page.to_vec()).unwrap();
        for id in page {
            assert_eq!(
                &*names.stream(&connection, id).unwrap(),
                format!("stream-{id}")
            );
        }
        let error = names.load(&connection, &mut vec![9, 4]).unwrap_err();
        assert!(error.to_string().contains("unknown stream 4"), "{error}");
    }

    /// A page of the log whose streams are many and share cache slots
    /// names every event right, on a connection that read other pages.
    #[test]
    fn every_event_of_a_page_carries_its_streams_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite3");
        drop(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
        let slots = STREAM_SLOTS as i64;
        // Every third stream shares its cache slot with another.
        let ids: Vec<i64> = (1..=200)
            .chain((1..=200).filter(|n| n % 3 == 0).map(|n| n + slots))
            .collect();
        let writer = Connection::open(&path).unwrap();
        let metadata = encode_metadata(&EventMetadata {
            actor: "system".into(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            occurred_at: Utc::now(),
        });
        insert_streams(&writer, &ids);
        // Events visit the streams out of order, each at least twice.
        let visits: Vec<i64> = ids
            .iter()
            .rev()
            .chain(ids.iter().step_by(7))
            .chain(&ids)
            .copied()
            .collect();
        let mut revisions = std::collections::HashMap::new();
        for id in &visits {
            let revision = revisions.entry(*id).or_insert(0i64);
            writer
                .execute(
                    "INSERT INTO events (stream_id, revision, event_id, type_name, schema_version, \
                     recorded_at, metadata, payload) VALUES (?1, ?2, ?3, 'Seen', 1, 0, ?4, x'01')",
                    params![id, *revision, Uuid::now_v7().as_bytes(), metadata],
                )
                .unwrap();
            *revision += 1;
        }
        let mut reader = ReadConnection::open(&path, Duration::from_secs(1)).unwrap();
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = reader.read_all(after, 128).unwrap();
            let Some(last) = page.last() else { break };
            after = last.position;
            seen.extend(page.iter().map(|event| event.stream.to_string()));
        }
        let expected: Vec<String> = visits.iter().map(|id| format!("stream-{id}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn the_name_cache_grows_to_the_streams_it_meets_keeping_what_it_holds() {
        let mut names = NameCache::default();
        assert!(!names.has_stream(1));
        for id in 1..=5 {
            names.remember(id, Arc::from(format!("stream-{id}")), STREAM_SLOTS);
        }
        assert_eq!(names.streams.len(), MIN_STREAM_SLOTS);
        names.remember(5000, Arc::from("stream-5000"), STREAM_SLOTS);
        assert_eq!(names.streams.len(), 8192);
        names.remember_stream(i64::MAX - 1, "read by name");
        assert_eq!(names.streams.len(), STREAM_SLOTS_BY_NAME);
        names.remember(i64::MAX, Arc::from("last"), STREAM_SLOTS);
        names.remember(-2, Arc::from("odd"), STREAM_SLOTS);
        assert_eq!(names.streams.len(), STREAM_SLOTS);
        for id in (1..=5).chain([5000]) {
            assert_eq!(&**names.cached(id).unwrap(), format!("stream-{id}"));
        }
        assert_eq!(&**names.cached(i64::MAX).unwrap(), "last");
        assert_eq!(&**names.cached(-2).unwrap(), "odd");
        assert!(!names.has_stream(6));
    }

    #[test]
    fn type_names_are_shared_and_bad_utf8_is_an_error() {
        let mut names = NameCache::default();
        let first = names.type_name(b"AccountRegistered", 1).unwrap();
        let second = names.type_name(b"AccountRegistered", 2).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let error = names.type_name(&[0xff, 0xfe], 7).unwrap_err();
        assert!(error.to_string().contains("position 7"), "{error}");
    }
}
