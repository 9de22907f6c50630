//! The EventStore port on PostgreSQL (tokio-postgres, a deadpool pool,
//! rustls when the URL asks for TLS).
//!
//! # Connecting
//! [`PostgresStore::connect`] takes a `postgres://` URL (or libpq's
//! `key=value` form). `sslmode` may be `disable` (the default), `prefer`,
//! `require` (encrypted, certificate unchecked, as libpq) or `verify-full`
//! (chain and host name checked against the Mozilla roots, or against
//! `sslrootcert=<file>`; `verify-ca` is held to the same rule). A server
//! that cannot be reached is [`StoreError::Unavailable`] naming host, port
//! and database. The schema is created or upgraded under an advisory lock;
//! a newer one is refused with [`StoreError::SchemaTooNew`].
//!
//! # Global order
//! Every write transaction takes one transaction-level advisory lock before
//! it reads the head position, and commits before the lock passes on: the
//! writers of every process are serialised, positions are handed out in
//! commit order without gaps, and a reader of `position > p` never skips an
//! event that commits later (docs/adr/0007-postgres-global-order.md).
//!
//! # Group commit
//! One writer task per store takes every pending append and commits them in
//! one transaction, each checked against its own expected revision; see
//! `writer` for how a failing append leaves its neighbours alone and how an
//! outage is ridden out.
//!
//! # Rules (as the embedded adapter)
//! - An empty append is [`StoreError::EmptyAppend`]; the same event id twice
//!   in one append, or a name holding a NUL character, is
//!   [`StoreError::InvalidInput`].
//! - Idempotency: when the first event id of an append is stored in that
//!   stream and the whole append matches the stored events from there, in
//!   order and content (type, schema version, payload), the original
//!   [`AppendResult`] is returned and nothing is written, whatever the
//!   expected revision; ids that match only in part, belong to another
//!   stream or carry other content are [`StoreError::IdempotencyMismatch`].
//! - A tombstoned stream keeps its events in the global log; reading or
//!   appending to it is [`StoreError::StreamDeleted`].
//!
//! # Following live
//! Subscriptions catch up by reading pages, then wait for a wake-up: this
//! store's own commits, a NOTIFY from any process (a dedicated LISTEN
//! connection), or a poll of the head every
//! [`PostgresOptions::live_poll_interval`]. Under load a writer notifies
//! other processes at most every [`PostgresOptions::announce_interval`]
//! (each notification wakes every listener on the server), and announces
//! what is left as soon as it is idle. A subscription rides out an
//! outage (it retries with backoff and resumes after the last position it
//! delivered); it ends with [`StoreError::Closed`] once the store is dropped.
//!
//! # Beside the log
//! `kv_*` methods keep small shared values (key material, progress) in the
//! same database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use store::rules::validate_append;
use store::{
    AppendResult, Direction, EventStore, ExpectedRevision, NewEvent, RecordedEvent, StoreError,
    StreamStart, SubscriptionItem,
};
use tokio::sync::{mpsc, oneshot, watch};

mod config;
mod error;
mod kv;
mod listen;
mod read;
mod schema;
mod writer;

pub use config::TlsMode;
pub use schema::SCHEMA_VERSION;

use read::{Reader, SubscriptionReader};
use writer::{PreparedEvent, Request, Session, Writer};

/// Tuning of a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Connections of the read pool. Default 8.
    pub pool_size: usize,
    /// Most events one group commit takes. Default 4096.
    pub max_batch_events: usize,
    /// How often the head is polled for commits whose notification was
    /// missed. Default 500 ms.
    pub live_poll_interval: Duration,
    /// Under load, the least time between two notifications of new events
    /// to other processes (each wakes every listener on the server); what
    /// falls between is announced with the next commit that is due, or as
    /// soon as the writer has had nothing to do for a millisecond.
    /// Default 5 ms.
    pub announce_interval: Duration,
    /// How long an append waits for a server that went away before it
    /// fails with [`StoreError::Unavailable`]. Default 10 s.
    pub outage_timeout: Duration,
    /// Testing only: hold every write transaction open, lock taken, for a
    /// random time in this range before it commits.
    #[doc(hidden)]
    pub commit_delay_for_tests: Option<(Duration, Duration)>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            max_batch_events: 4096,
            live_poll_interval: Duration::from_millis(500),
            announce_interval: Duration::from_millis(5),
            outage_timeout: Duration::from_secs(10),
            commit_delay_for_tests: None,
        }
    }
}

/// The event store on a PostgreSQL database. Dropping it stops its writer
/// and listener tasks.
pub struct PostgresStore {
    reader: Arc<Reader>,
    writer: mpsc::Sender<Request>,
    heads: watch::Receiver<u64>,
    listener: tokio::task::JoinHandle<()>,
    created: bool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("endpoint", &self.reader.endpoint)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connect to the database at `url`, create or upgrade its schema, and
    /// start the writer and listener tasks on the current tokio runtime.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let target = config::parse(url)?;
        let endpoint: Arc<str> = target.endpoint.as_str().into();
        let manager = deadpool_postgres::Manager::from_config(
            target.config.clone(),
            target.tls.clone(),
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(|error| StoreError::Backend(format!("connection pool: {error}")))?;
        let created = {
            let mut client = pool
                .get()
                .await
                .map_err(|error| error::from_pool(&endpoint, error))?;
            schema::ensure(&mut client, &endpoint).await?
        };
        let session = Session::open(&target).await?;
        let (heads_sender, heads) = watch::channel(0u64);
        let listener = tokio::spawn(listen::run(
            config::parse(url)?,
            heads_sender.clone(),
            options.live_poll_interval,
        ));
        let (writer, requests) = mpsc::channel(16 * 1024);
        tokio::spawn(
            Writer {
                target,
                session: Some(session),
                heads: heads_sender,
                options,
                known: None,
                streams: Default::default(),
                announced: None,
                unannounced: None,
            }
            .run(requests),
        );
        Ok(PostgresStore {
            reader: Arc::new(Reader {
                pool,
                endpoint,
                closed: Arc::new(AtomicBool::new(false)),
                names: Default::default(),
                ahead: Default::default(),
            }),
            writer,
            heads,
            listener,
            created,
        })
    }

    /// `host:port/database`, as errors name it.
    pub fn endpoint(&self) -> &str {
        &self.reader.endpoint
    }

    /// Whether this connect created the schema (the database was empty).
    pub fn created_schema(&self) -> bool {
        self.created
    }

    async fn send<T>(
        &self,
        request: Request,
        reply: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.writer
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)?;
        reply.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.reader.closed.store(true, Ordering::Release);
        self.listener.abort();
    }
}

fn refuse_nul(what: &str, text: &str) -> Result<(), StoreError> {
    if text.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "a {what} must not hold a NUL character"
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events)?;
        refuse_nul("stream name", stream)?;
        let events = events
            .into_iter()
            .map(|event| {
                refuse_nul("type name", &event.type_name)?;
                Ok(PreparedEvent {
                    id: event.id,
                    metadata: store::encode_metadata(&event.metadata),
                    type_name: event.type_name,
                    schema_version: i32::from(event.schema_version),
                    payload: Bytes::from(event.payload),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let (reply, answer) = oneshot::channel();
        self.send(
            Request::Append {
                stream: stream.to_owned(),
                expected,
                events,
                reply,
            },
            answer,
        )
        .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        refuse_nul("stream name", stream)?;
        self.reader
            .read_stream(stream, start, direction, limit)
            .await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reader.read_all(after, limit).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.reader.head().await
    }

    async fn read_chain(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<store::chain::ChainLink>, StoreError> {
        self.reader.read_chain(after, limit).await
    }

    fn subscribe_all(
        &self,
        after: u64,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        store::subscription::follow_all(
            Arc::new(SubscriptionReader(Arc::clone(&self.reader))),
            self.heads.clone(),
            after,
        )
    }

    async fn tombstone(&self, stream: &str, expected: ExpectedRevision) -> Result<(), StoreError> {
        store::rules::validate_stream(stream)?;
        refuse_nul("stream name", stream)?;
        let (reply, answer) = oneshot::channel();
        self.send(
            Request::Tombstone {
                stream: stream.to_owned(),
                expected,
                reply,
            },
            answer,
        )
        .await
    }

    async fn read_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        store::rules::validate_value(name, &[])?;
        refuse_nul("value name", name)?;
        self.kv_get(VALUES_NAMESPACE, name).await
    }

    async fn swap_value(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        store::rules::validate_value(name, value)?;
        refuse_nul("value name", name)?;
        self.kv_compare_and_set(VALUES_NAMESPACE, name, expected, value)
            .await
    }

    async fn put_key(&self, key: &store::StoredKey) -> Result<(), StoreError> {
        store::rules::validate_key(key)?;
        self.key_put(key).await
    }

    async fn read_key(&self, id: uuid::Uuid) -> Result<Option<store::StoredKey>, StoreError> {
        Ok(self.key_read(None, Some(id), 1).await?.pop())
    }

    async fn read_keys(
        &self,
        after: Option<uuid::Uuid>,
        limit: usize,
    ) -> Result<Vec<store::StoredKey>, StoreError> {
        self.key_read(after, None, limit).await
    }

    async fn destroy_keys(&self, subject: &str) -> Result<u64, StoreError> {
        store::rules::validate_key_subject(subject)?;
        self.key_destroy(subject).await
    }
}

/// The namespace of the port's values beside the log in the key-value table.
const VALUES_NAMESPACE: &str = "store";

/// Whether the database at `url` holds this adapter's schema (any
/// version), without creating or changing anything.
pub async fn schema_exists(url: &str) -> Result<bool, StoreError> {
    let target = config::parse(url)?;
    let (client, connection) = target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|error| error::unreachable_server(&target.endpoint, &error))?;
    let driver = tokio::spawn(connection);
    let exists = schema::exists(&client).await;
    drop(client);
    let _ = driver.await;
    exists
}
