//! The EventStore port: the types every adapter speaks, the adapters
//! (in-memory, embedded SQLite) and the shared command loop.
//!
//! The port is shaped after KurrentDB's client so that adapter maps one to
//! one: expected stream state, client-chosen event ids for idempotent retries,
//! `$all` positions, and a catch-up subscription that then follows live.
//!
//! Conventions every adapter keeps:
//! - stream revisions start at 0 and are contiguous within a stream;
//! - global positions are above 0 and strictly increase in commit order;
//!   position 0 means "before the first event" (a checkpoint of 0 reads all).
//!   They need not be dense nor start at 1 (the in-memory, SQLite and
//!   PostgreSQL adapters number 1, 2, 3, …; KurrentDB's are `$all` commit
//!   positions): nothing computes with them, and a position handed in is 0
//!   or one the store handed out;
//! - an empty append is refused with [`StoreError::EmptyAppend`].

use std::fmt;
use std::sync::Arc;

pub use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use uuid::Uuid;

pub mod chain;
pub mod command;
pub mod location;
pub mod memory;
mod metadata_wire;
pub mod rules;
pub mod sqlite;
pub mod subscription;

/// The stored form of [`EventMetadata`] that every adapter writes: frozen
/// and versioned, like event payloads.
pub fn encode_metadata(metadata: &EventMetadata) -> Vec<u8> {
    metadata_wire::encode(metadata)
}

/// Read metadata stored by [`encode_metadata`]; `None` when the bytes are
/// not valid stored metadata.
pub fn decode_metadata(bytes: &[u8]) -> Option<EventMetadata> {
    metadata_wire::decode(bytes)
}

/// What the writer expects the stream to look like before its append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// No check at all.
    Any,
    /// The stream must not exist (no event ever appended, not tombstoned).
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => write!(f, "any"),
            ExpectedRevision::NoStream => write!(f, "no stream"),
            ExpectedRevision::StreamExists => write!(f, "stream exists"),
            ExpectedRevision::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

/// What the stream actually looked like when an expectation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentRevision {
    /// The stream has no events.
    NoStream,
    /// The stream's last event has this revision.
    Current(u64),
}

impl fmt::Display for CurrentRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CurrentRevision::NoStream => write!(f, "no stream"),
            CurrentRevision::Current(r) => write!(f, "revision {r}"),
        }
    }
}

/// Envelope metadata carried by every event. Never holds personal data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventMetadata {
    /// Who caused the event: `account:<uuid>`, `job:<name>`, `service:<name>`, `system`.
    /// Shared: a reader hands the same actor of many events out once.
    pub actor: Arc<str>,
    /// Groups every event caused by one request or job run.
    pub correlation_id: Uuid,
    /// The event or command that caused this one, when known.
    pub causation_id: Option<Uuid>,
    /// When it happened in the domain (may differ from when it was recorded).
    pub occurred_at: DateTime<Utc>,
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Client-chosen id (uuid v7); a retried append with the same ids is a no-op.
    pub id: Uuid,
    /// Stable type name, e.g. `RegistrationStarted`.
    pub type_name: String,
    /// Schema version of `payload` for `type_name`.
    pub schema_version: u16,
    pub metadata: EventMetadata,
    /// postcard bytes of the versioned wire type.
    pub payload: Vec<u8>,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub id: Uuid,
    /// The stream's name, shared by every event a reader returns for it.
    pub stream: Arc<str>,
    /// Revision within the stream, from 0.
    pub revision: u64,
    /// Position in the global log: above 0, strictly increasing, not
    /// necessarily dense.
    pub position: u64,
    /// The type name, shared by every event of that type a reader returns.
    pub type_name: Arc<str>,
    pub schema_version: u16,
    pub recorded_at: DateTime<Utc>,
    pub metadata: EventMetadata,
    /// postcard bytes of the versioned wire type; the events of one page
    /// share one buffer.
    pub payload: Bytes,
}

/// The outcome of a successful append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Revision of the last event written (the next expected revision).
    pub next_expected_revision: u64,
    /// Global position of the last event written.
    pub position: u64,
}

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    /// First event (forwards) or last event (backwards).
    Edge,
    /// This revision, inclusive.
    Revision(u64),
}

/// Direction of a stream read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// An item of a subscription to the global log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionItem {
    Event(RecordedEvent),
    /// Everything committed when the subscription started has been delivered;
    /// from here on events arrive live. Sent exactly once per subscription.
    CaughtUp,
}

/// Errors of the port. Callers branch on the variants.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("wrong expected revision on {stream}: expected {expected}, actual {actual}")]
    Conflict {
        stream: String,
        expected: ExpectedRevision,
        actual: CurrentRevision,
    },
    #[error("stream {stream} is deleted")]
    StreamDeleted { stream: String },
    #[error("an append must carry at least one event")]
    EmptyAppend,
    #[error("event ids already used differently in stream {stream}")]
    IdempotencyMismatch { stream: String },
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error(
        "the store at {path} has schema version {found}, newer than this program supports ({supported}); use a newer caseledger"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        supported: i64,
    },
    #[error("store backend failure: {0}")]
    Backend(String),
    /// The backend cannot be reached now (a server down or restarting); the
    /// same request may succeed later (an API answers 503 with Retry-After).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("the store is closed")]
    Closed,
}

/// The event log port. Every adapter passes `store/tests/conformance.rs`.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Append `events` to `stream` if it matches `expected`, atomically.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// [`EventStore::append`] together with the data keys that `events` are
    /// sealed under and that the key table may not hold yet
    /// ([`EventStore::put_key`] of each): one transaction where the adapter
    /// can, so that a new person's key and first event cost one commit.
    /// Keys are stored before or with the events, never after; a failed
    /// append may still have stored them (harmless: a key no event uses).
    async fn append_with_keys(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
        keys: Vec<StoredKey>,
    ) -> Result<AppendResult, StoreError> {
        for key in &keys {
            self.put_key(key).await?;
        }
        self.append(stream, expected, events).await
    }

    /// Read up to `limit` events of one stream. A stream that never existed
    /// reads as empty; a tombstoned one is [`StoreError::StreamDeleted`].
    async fn read_stream(
        &self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Read up to `limit` events of the global log with position > `after`.
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Position of the last committed event (0 when the log is empty).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// The stored hash-chain links ([`chain`]) of up to `limit` events
    /// with position > `after`, in position order: what an audit checks
    /// [`EventStore::read_all`]'s events against.
    async fn read_chain(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<chain::ChainLink>, StoreError>;

    /// Catch up from position > `after`, say [`SubscriptionItem::CaughtUp`],
    /// then follow live: every event exactly once, in global order.
    fn subscribe_all(&self, after: u64)
    -> BoxStream<'static, Result<SubscriptionItem, StoreError>>;

    /// Delete a stream forever: reads and appends then fail with
    /// [`StoreError::StreamDeleted`] and its name can never be reused.
    async fn tombstone(&self, stream: &str, expected: ExpectedRevision) -> Result<(), StoreError>;

    /// A small named value kept beside the log, not in it (the mail
    /// outbox's progress, a lease, the fingerprint of the server secret):
    /// `None` when it was never written.
    async fn read_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Write `value` under `name` if it holds `expected` now (`None`: it
    /// was never written), atomically; `Ok(false)` when it held something
    /// else, which is left as it was.
    async fn swap_value(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError>;

    /// Keep a data key in the key table beside the log. Writing the same
    /// key again is a no-op; the same id with another subject or material
    /// is [`StoreError::InvalidInput`].
    async fn put_key(&self, key: &StoredKey) -> Result<(), StoreError>;

    /// The data key `id`: `None` when it was never written or was destroyed.
    async fn read_key(&self, id: Uuid) -> Result<Option<StoredKey>, StoreError>;

    /// Up to `limit` data keys with an id greater than `after` (all from
    /// the first with `None`), by id ascending; destroyed keys are absent.
    async fn read_keys(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<StoredKey>, StoreError>;

    /// Destroy every data key of `subject` for good (nothing of them stays
    /// readable in the store's files where the backend allows it); returns
    /// how many there were.
    async fn destroy_keys(&self, subject: &str) -> Result<u64, StoreError>;
}

/// A data key as the store keeps it: wrapped (encrypted) under a key the
/// store never sees. Erasure destroys it, and with it every field sealed
/// under it (crypto-shredding): the log itself stays append-only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key's id, as sealed fields name it.
    pub id: Uuid,
    /// Whose data the key seals: an opaque keyed digest, never personal
    /// data in clear ([`MAX_KEY_SUBJECT`] bytes at most).
    pub subject: String,
    /// The key material, wrapped ([`MAX_WRAPPED_KEY`] bytes at most).
    pub wrapped: Vec<u8>,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Longest subject of a data key.
pub const MAX_KEY_SUBJECT: usize = 200;
/// Largest wrapped data key.
pub const MAX_WRAPPED_KEY: usize = 1024;

/// Longest name of a value beside the log.
pub const MAX_VALUE_NAME: usize = 200;
/// Largest value beside the log.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
