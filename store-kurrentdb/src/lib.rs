//! The EventStore port on KurrentDB (EventStoreDB), through the `kurrentdb`
//! gRPC client (docs/adr/0010-kurrentdb-adapter.md).
//!
//! # Connecting
//! [`KurrentStore::connect`] takes the client's connection string
//! (`esdb://`, `esdb+discover://`, `kurrentdb://`, `kurrentdb+discover://`,
//! TLS settings and credentials included), plus one parameter of its own,
//! `caseledgerNamespace=<name>` (default `caseledger`), so that several
//! stores can share a cluster. The user must be allowed to read `$all` (an
//! admin, unless the ACLs say otherwise). Deadlines are the client's
//! (`defaultDeadline` in the connection string).
//!
//! # Mapping
//! - The port's stream `s` is the stream `<namespace>/s`; the adapter's own
//!   streams start with `<namespace>~` (the chain, values, data keys).
//! - An event's KurrentDB id is its port id, its type the port's type name,
//!   its data the payload (binary), and its metadata an envelope: a format
//!   byte, the schema version and the port's stored metadata.
//! - Expected revisions are stream states one to one; a conflict reports
//!   the revision KurrentDB saw.
//! - The global position is the `$all` commit position: strictly increasing
//!   in commit order, not dense.
//! - `read_all`, `head_position` and `subscribe_all` read `$all` filtered
//!   by stream prefix on the server and skip `$` event types (tombstones,
//!   metadata, links); `$` system streams never match the prefix.
//! - A tombstone is `tombstone_stream`; its events stay in `$all`.
//!
//! # Idempotent retries
//! KurrentDB guarantees that an append whose ids are already stored is a
//! no-op only for an exact stream state; for `Any` it does its best. Before
//! every append the adapter reads the stream's last
//! [`IDEMPOTENCY_WINDOW`] events: an append repeating stored events
//! returns the original result, one reusing ids otherwise is
//! [`StoreError::IdempotencyMismatch`]. An append expecting `Any` is then
//! sent pinned to the revision just read (and read again on a race), so
//! KurrentDB's guarantee covers it too; only in the last of
//! [`ANY_ATTEMPTS`] rounds is it sent as `Any`. Ids stored in another
//! stream, or further back than the window, are not seen.
//!
//! # Positions handed in
//! A position to read or subscribe after must be 0 or one this store
//! handed out (an event's, a head, a checkpoint made of them): commit
//! positions are byte offsets, and the server reads `$all` from a record.
//!
//! # Following live
//! See [`subscription`]: a catch-up subscription that rides out outages
//! and ends with [`StoreError::Closed`] once the store is dropped; any
//! other error ends it too, and the consumer subscribes again from its
//! checkpoint.
//!
//! # The hash chain
//! See [`chain`]: links are kept in the chain stream, computed right after
//! each append by the appender, serialised by the chain stream's expected
//! revision.
//!
//! # Beside the log
//! See [`values`] (compare-and-swap by expected revision) and [`keys`] (a
//! stream per data key, tombstoned on destroy; the bytes leave the disk
//! only after a scavenge on every node).

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, ReadAllOptions, ReadStreamOptions,
    StreamPosition, StreamState, SubscriptionFilter, TombstoneStreamOptions,
};
use store::chain::ChainLink;
use store::rules::{
    check_expected, key_mismatch, validate_append, validate_key, validate_key_subject,
    validate_stream, validate_value,
};
use store::{
    AppendResult, CurrentRevision, Direction, EventStore, ExpectedRevision, NewEvent,
    RecordedEvent, StoreError, StoredKey, StreamStart, SubscriptionItem,
};
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

pub mod chain;
pub mod error;
pub mod keys;
pub mod mapping;
pub mod names;
pub mod subscription;
pub mod values;

use chain::ChainHead;
use error::{Failure, classify, from_kurrent, to_store_error};
use mapping::{Interner, KurrentEvent, Retry, port_event};
pub use names::{Names, is_kurrentdb_url};

/// How many of a stream's last events an append looks through for its ids.
pub const IDEMPOTENCY_WINDOW: usize = 100;
/// How many rounds (read the tail, append) an append takes at most; an
/// append expecting `Any` is sent as `Any` in the last one.
pub const ANY_ATTEMPTS: usize = 16;
/// How many events of `$all` one page of a read asks for at most.
const PAGE: usize = 512;
/// How many events one round of linking reads and links at most.
const LINK_PAGE: usize = 64;
/// How many rounds a linker takes before it gives up (another linker wins
/// each round it loses, so this is reached only under a storm).
const LINK_ROUNDS: usize = 256;

/// What the store and its subscriptions share.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) names: Arc<Names>,
}

/// The port on one KurrentDB namespace.
pub struct KurrentStore {
    shared: Shared,
    /// Dropped with the store: subscriptions then end with
    /// [`StoreError::Closed`].
    closed: watch::Sender<()>,
    /// Appenders of this process link one at a time; the head they agree on.
    chain_head: Mutex<Option<ChainHead>>,
    /// The revision of the last chain position `read_chain` returned.
    chain_cursor: std::sync::Mutex<Option<(u64, u64)>>,
}

impl std::fmt::Debug for KurrentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KurrentStore")
            .field("namespace", &self.shared.names.namespace())
            .finish_non_exhaustive()
    }
}

impl KurrentStore {
    /// Connect to the server `url` names and check that it answers (an
    /// unreachable one is [`StoreError::Unavailable`]).
    pub async fn connect(url: &str) -> Result<KurrentStore, StoreError> {
        let store = KurrentStore::open(url, tokio::runtime::Handle::current())?;
        store.read_chain_head().await?;
        Ok(store)
    }

    /// A store on `url` whose client runs on `runtime`, without contacting
    /// the server yet.
    pub fn open(url: &str, runtime: tokio::runtime::Handle) -> Result<KurrentStore, StoreError> {
        let location = names::parse_location(url)?;
        let settings: ClientSettings =
            location
                .client_url
                .parse()
                .map_err(|error: kurrentdb::ClientSettingsParseError| {
                    let message = error
                        .to_string()
                        .replace(&location.client_url, &names::redacted(&location.client_url));
                    StoreError::InvalidInput(format!(
                        "KurrentDB connection string {}: {message}",
                        names::redacted(url)
                    ))
                })?;
        let client = Client::with_runtime_handle(runtime, settings).map_err(|error| {
            StoreError::Backend(format!(
                "KurrentDB client for {}: {error}",
                names::redacted(url)
            ))
        })?;
        let (closed, _) = watch::channel(());
        Ok(KurrentStore {
            shared: Shared {
                client,
                names: Arc::new(Names::new(&location.namespace)?),
            },
            closed,
            chain_head: Mutex::new(None),
            chain_cursor: std::sync::Mutex::new(None),
        })
    }

    /// The streams this store uses.
    pub fn names(&self) -> &Names {
        &self.shared.names
    }

    fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Up to `count` events of a KurrentDB stream; `None` when it does not
    /// exist.
    async fn read_raw(
        &self,
        stream: &str,
        position: StreamPosition<u64>,
        forwards: bool,
        count: usize,
    ) -> Result<Option<Vec<kurrentdb::RecordedEvent>>, kurrentdb::Error> {
        read_raw(self.client(), stream, position, forwards, count).await
    }

    /// The port's events of a stream, for an append or a read.
    async fn read_port_stream(
        &self,
        stream: &str,
        position: StreamPosition<u64>,
        forwards: bool,
        count: usize,
    ) -> Result<(Vec<RecordedEvent>, CurrentRevision), StoreError> {
        let kurrent = self.shared.names.event_stream(stream);
        let raw = match self.read_raw(&kurrent, position, forwards, count).await {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok((Vec::new(), CurrentRevision::NoStream)),
            Err(error) => return Err(from_kurrent(&error, stream)),
        };
        let last_revision = raw.iter().map(|event| event.revision).max();
        let mut interner = Interner::default();
        let mut events = Vec::with_capacity(raw.len());
        for event in &raw {
            if let Some(event) =
                port_event(&self.shared.names, &KurrentEvent::of(event), &mut interner)?
            {
                events.push(event);
            }
        }
        let current = last_revision.map_or(CurrentRevision::NoStream, CurrentRevision::Current);
        Ok((events, current))
    }

    /// The position of the event at `revision` of the port's `stream`.
    async fn position_of(&self, stream: &str, revision: u64) -> Result<u64, StoreError> {
        let (events, _) = self
            .read_port_stream(stream, StreamPosition::Position(revision), true, 1)
            .await?;
        events
            .first()
            .filter(|event| event.revision == revision)
            .map(|event| event.position)
            .ok_or_else(|| {
                StoreError::Backend(format!(
                    "KurrentDB: revision {revision} of {stream} is not readable after its append"
                ))
            })
    }

    async fn append_once(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: &[NewEvent],
        data: &[EventData],
        attempt: usize,
    ) -> Result<Option<AppendResult>, StoreError> {
        let (tail, current) = self
            .read_port_stream(stream, StreamPosition::End, false, IDEMPOTENCY_WINDOW)
            .await?;
        let tail: Vec<RecordedEvent> = tail.into_iter().rev().collect();
        match mapping::retry_of(events, &tail) {
            Retry::Repeat { last } => {
                let stored = &tail[last];
                self.link_through(stored.position).await?;
                return Ok(Some(AppendResult {
                    next_expected_revision: stored.revision,
                    position: stored.position,
                }));
            }
            Retry::Mismatch => {
                return Err(StoreError::IdempotencyMismatch {
                    stream: stream.to_owned(),
                });
            }
            Retry::Fresh => {}
        }
        let state = match expected {
            ExpectedRevision::Any if attempt + 1 >= ANY_ATTEMPTS => StreamState::Any,
            ExpectedRevision::Any => mapping::pinned_state(current),
            other => {
                check_expected(stream, other, current)?;
                mapping::stream_state(other)
            }
        };
        let options = AppendToStreamOptions::default().stream_state(state);
        let kurrent = self.shared.names.event_stream(stream);
        match self
            .client()
            .append_to_stream(kurrent, &options, data.to_vec())
            .await
        {
            Ok(written) => {
                let revision = written.next_expected_version;
                let position = self.position_of(stream, revision).await?;
                self.link_through(position).await?;
                Ok(Some(AppendResult {
                    next_expected_revision: revision,
                    position,
                }))
            }
            Err(error) => match classify(&error) {
                // A reader that lags behind the leader (a follower by
                // node preference) may keep saying the expectation holds:
                // after the last round, KurrentDB's word is final.
                Failure::WrongExpectedVersion(reported)
                    if expected != ExpectedRevision::Any && attempt + 1 >= ANY_ATTEMPTS =>
                {
                    Err(StoreError::Conflict {
                        stream: stream.to_owned(),
                        expected,
                        actual: reported.unwrap_or(current),
                    })
                }
                // Read again: the next round reports a retry, a mismatch
                // or the conflict with the revision it finds.
                Failure::WrongExpectedVersion(_) => Ok(None),
                failure => Err(to_store_error(failure, stream)),
            },
        }
    }

    /// The chain's head: the cached one, or the chain stream's last event.
    async fn read_chain_head(&self) -> Result<ChainHead, StoreError> {
        let stream = self.shared.names.chain_stream();
        match self.read_raw(&stream, StreamPosition::End, false, 1).await {
            Ok(Some(raw)) => match raw.first() {
                Some(event) => {
                    let link = chain::decode_link(&event.data)?;
                    Ok(ChainHead {
                        revision: Some(event.revision),
                        position: link.position,
                        link: link.link,
                    })
                }
                None => Ok(ChainHead::genesis()),
            },
            Ok(None) => Ok(ChainHead::genesis()),
            Err(error) => Err(from_kurrent(&error, "the hash chain")),
        }
    }

    /// Link every event of the namespace up to `target` (the position of
    /// an event just appended).
    async fn link_through(&self, target: u64) -> Result<(), StoreError> {
        let mut cached = self.chain_head.lock().await;
        for _ in 0..LINK_ROUNDS {
            let head = match *cached {
                Some(head) => head,
                None => self.read_chain_head().await?,
            };
            if head.position >= target {
                *cached = Some(head);
                return Ok(());
            }
            let events = read_all_page(&self.shared, head.position, LINK_PAGE).await?;
            let links = chain::links_after(&head, &events)?;
            if links.is_empty() {
                if cached.take().is_some() {
                    // The cached head may be stale; read it again.
                    continue;
                }
                return Err(StoreError::Backend(format!(
                    "KurrentDB: the event at position {target} is not in $all after {}",
                    head.position
                )));
            }
            let data: Vec<EventData> = links
                .iter()
                .map(|link| {
                    EventData::binary(
                        chain::CHAIN_EVENT_TYPE,
                        Bytes::copy_from_slice(&chain::encode_link(link)),
                    )
                    .id(uuid::Uuid::now_v7())
                })
                .collect();
            let state = head
                .revision
                .map_or(StreamState::NoStream, StreamState::StreamRevision);
            let options = AppendToStreamOptions::default().stream_state(state);
            match self
                .client()
                .append_to_stream(self.shared.names.chain_stream(), &options, data)
                .await
            {
                Ok(_) => {
                    *cached = Some(links.iter().fold(head, |head, link| head.after(link)));
                }
                Err(error) => {
                    *cached = None;
                    match classify(&error) {
                        // Another linker moved the head: carry on from it.
                        Failure::WrongExpectedVersion(_) => {}
                        failure => return Err(to_store_error(failure, "the hash chain")),
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "KurrentDB: the hash chain could not be linked under contention; retry the append"
                .to_owned(),
        ))
    }

    /// The chain event at `revision`.
    async fn chain_event(&self, revision: u64) -> Result<ChainLink, StoreError> {
        let stream = self.shared.names.chain_stream();
        let raw = self
            .read_raw(&stream, StreamPosition::Position(revision), true, 1)
            .await
            .map_err(|error| from_kurrent(&error, "the hash chain"))?
            .unwrap_or_default();
        match raw.first() {
            Some(event) if event.revision == revision => chain::decode_link(&event.data),
            _ => Err(StoreError::Backend(format!(
                "KurrentDB: no chain event at revision {revision}"
            ))),
        }
    }

    /// Read the last event of a value's stream: its revision and data.
    async fn read_value_event(&self, name: &str) -> Result<Option<(u64, Bytes)>, StoreError> {
        let stream = self.shared.names.value_stream(name);
        match self.read_raw(&stream, StreamPosition::End, false, 1).await {
            Ok(raw) => Ok(raw
                .and_then(|raw| raw.into_iter().next())
                .map(|event| (event.revision, event.data))),
            Err(error) => Err(from_kurrent(&error, name)),
        }
    }
}

/// What the key stream of an id holds.
enum KeyState {
    Absent,
    Held(StoredKey),
    Destroyed,
}

impl KurrentStore {
    async fn key_state(&self, id: Uuid) -> Result<KeyState, StoreError> {
        let stream = self.shared.names.key_stream(id);
        match self.read_raw(&stream, StreamPosition::Start, true, 1).await {
            Ok(Some(raw)) => match raw.first() {
                Some(event) => keys::decode_key(id, &event.data).map(KeyState::Held),
                None => Ok(KeyState::Absent),
            },
            Ok(None) => Ok(KeyState::Absent),
            Err(error) => match classify(&error) {
                Failure::Deleted => Ok(KeyState::Destroyed),
                failure => Err(to_store_error(failure, "a data key")),
            },
        }
    }

    /// Every key ever put, each once, by id.
    async fn key_index(&self) -> Result<Vec<(Uuid, String)>, StoreError> {
        let stream = self.shared.names.key_index_stream();
        let raw = self
            .read_raw(&stream, StreamPosition::Start, true, usize::MAX)
            .await
            .map_err(|error| from_kurrent(&error, "the data key index"))?
            .unwrap_or_default();
        let entries = raw
            .iter()
            .map(|event| keys::decode_index_entry(&event.data))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(keys::indexed(entries))
    }

    /// The answer to a put of `key` when its id holds something already.
    fn put_again(key: &StoredKey, state: KeyState) -> Option<Result<(), StoreError>> {
        match state {
            KeyState::Absent => None,
            KeyState::Held(stored) if stored == *key => Some(Ok(())),
            KeyState::Held(_) => Some(Err(key_mismatch(key.id))),
            KeyState::Destroyed => Some(Err(StoreError::InvalidInput(format!(
                "data key {} was destroyed; its id cannot be used again",
                key.id
            )))),
        }
    }
}

/// Up to `count` events of a KurrentDB stream; `None` when it does not
/// exist.
async fn read_raw(
    client: &Client,
    stream: &str,
    position: StreamPosition<u64>,
    forwards: bool,
    count: usize,
) -> Result<Option<Vec<kurrentdb::RecordedEvent>>, kurrentdb::Error> {
    let options = ReadStreamOptions::default().position(position);
    let options = if forwards {
        options.forwards()
    } else {
        options.backwards()
    }
    .max_count(count);
    let mut read = match client.read_stream(stream, &options).await {
        Ok(read) => read,
        Err(kurrentdb::Error::ResourceNotFound) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut events = Vec::new();
    loop {
        match read.next().await {
            Ok(Some(resolved)) => events.extend(resolved.event),
            Ok(None) => return Ok(Some(events)),
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(None),
            Err(error) => return Err(error),
        }
    }
}

/// Up to `limit` of the namespace's events with position > `after`.
pub(crate) async fn read_all_page(
    shared: &Shared,
    after: u64,
    limit: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::new();
    let mut from = after;
    let mut interner = Interner::default();
    while events.len() < limit {
        // The start is inclusive: one more for the event at `from`.
        let want = (limit - events.len()).min(PAGE) + 1;
        let options = ReadAllOptions::default()
            .position(mapping::all_position(from))
            .forwards()
            .filter(SubscriptionFilter::on_stream_name().add_prefix(shared.names.events_prefix()))
            .max_count(want);
        let mut read = shared
            .client
            .read_all(&options)
            .await
            .map_err(|error| from_kurrent(&error, "$all"))?;
        let mut fresh = 0;
        let mut furthest = from;
        while let Some(resolved) = read
            .next()
            .await
            .map_err(|error| from_kurrent(&error, "$all"))?
        {
            let Some(recorded) = resolved.event.as_ref() else {
                continue;
            };
            if recorded.position.commit <= from {
                continue;
            }
            fresh += 1;
            furthest = furthest.max(recorded.position.commit);
            if let Some(event) =
                port_event(&shared.names, &KurrentEvent::of(recorded), &mut interner)?
            {
                events.push(event);
                if events.len() == limit {
                    break;
                }
            }
        }
        if fresh == 0 {
            break;
        }
        from = furthest;
    }
    Ok(events)
}

/// The position of the namespace's last event (0 when it has none).
pub(crate) async fn read_head(shared: &Shared) -> Result<u64, StoreError> {
    const BATCH: usize = 32;
    let mut before: Option<u64> = None;
    let mut interner = Interner::default();
    loop {
        let position = match before {
            None => StreamPosition::End,
            Some(commit) => StreamPosition::Position(kurrentdb::Position {
                commit,
                prepare: commit,
            }),
        };
        let options = ReadAllOptions::default()
            .position(position)
            .backwards()
            .filter(SubscriptionFilter::on_stream_name().add_prefix(shared.names.events_prefix()))
            .max_count(BATCH + 1);
        let mut read = shared
            .client
            .read_all(&options)
            .await
            .map_err(|error| from_kurrent(&error, "$all"))?;
        let mut fresh = 0;
        while let Some(resolved) = read
            .next()
            .await
            .map_err(|error| from_kurrent(&error, "$all"))?
        {
            let Some(recorded) = resolved.event.as_ref() else {
                continue;
            };
            if before.is_some_and(|before| recorded.position.commit >= before) {
                continue;
            }
            fresh += 1;
            before = Some(recorded.position.commit);
            if let Some(event) =
                port_event(&shared.names, &KurrentEvent::of(recorded), &mut interner)?
            {
                return Ok(event.position);
            }
        }
        if fresh == 0 {
            return Ok(0);
        }
    }
}

#[async_trait::async_trait]
impl EventStore for KurrentStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events)?;
        mapping::validate_types(&events)?;
        let data: Vec<EventData> = events
            .iter()
            .map(|event| {
                EventData::binary(&event.type_name, Bytes::copy_from_slice(&event.payload))
                    .id(event.id)
                    .metadata(Bytes::from(mapping::encode_envelope(
                        event.schema_version,
                        &event.metadata,
                    )))
            })
            .collect();
        for attempt in 0..ANY_ATTEMPTS {
            if let Some(result) = self
                .append_once(stream, expected, &events, &data, attempt)
                .await?
            {
                return Ok(result);
            }
        }
        Err(StoreError::Backend(format!(
            "KurrentDB: an append to {stream} expecting any revision was refused {ANY_ATTEMPTS} times"
        )))
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
            // A zero count means something else to KurrentDB; a tombstoned
            // stream is still refused.
            self.read_port_stream(stream, StreamPosition::End, false, 1)
                .await?;
            return Ok(Vec::new());
        }
        let (position, forwards) = mapping::stream_read_start(start, direction);
        let (events, _) = self
            .read_port_stream(stream, position, forwards, limit)
            .await?;
        Ok(events)
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        read_all_page(&self.shared, after, limit).await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        read_head(&self.shared).await
    }

    async fn read_chain(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let head = self.read_chain_head().await?;
        let Some(last) = head.revision else {
            return Ok(Vec::new());
        };
        if after >= head.position {
            return Ok(Vec::new());
        }
        let cursor = *self.chain_cursor.lock().expect("chain cursor");
        let start = match cursor {
            Some((position, revision)) if position == after => revision + 1,
            _ if after == 0 => 0,
            _ => {
                chain::first_revision_after(after, last + 1, |revision| async move {
                    self.chain_event(revision).await.map(|link| link.position)
                })
                .await?
            }
        };
        let stream = self.shared.names.chain_stream();
        let raw = self
            .read_raw(&stream, StreamPosition::Position(start), true, limit)
            .await
            .map_err(|error| from_kurrent(&error, "the hash chain"))?
            .unwrap_or_default();
        let mut links = Vec::with_capacity(raw.len());
        let mut last_read = None;
        for event in &raw {
            let link = chain::decode_link(&event.data)?;
            if link.position > after {
                last_read = Some((link.position, event.revision));
                links.push(link);
            }
        }
        if let Some(last_read) = last_read {
            *self.chain_cursor.lock().expect("chain cursor") = Some(last_read);
        }
        Ok(links)
    }

    fn subscribe_all(
        &self,
        after: u64,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        subscription::subscribe(self.shared.clone(), self.closed.subscribe(), after)
    }

    async fn tombstone(&self, stream: &str, expected: ExpectedRevision) -> Result<(), StoreError> {
        validate_stream(stream)?;
        let options =
            TombstoneStreamOptions::default().stream_state(mapping::stream_state(expected));
        let kurrent = self.shared.names.event_stream(stream);
        match self.client().tombstone_stream(kurrent, &options).await {
            Ok(_) => Ok(()),
            Err(error) => match classify(&error) {
                Failure::WrongExpectedVersion(actual) => {
                    let actual = match actual {
                        Some(actual) => actual,
                        None => {
                            self.read_port_stream(stream, StreamPosition::End, false, 1)
                                .await?
                                .1
                        }
                    };
                    Err(StoreError::Conflict {
                        stream: stream.to_owned(),
                        expected,
                        actual,
                    })
                }
                failure => Err(to_store_error(failure, stream)),
            },
        }
    }

    async fn read_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        validate_value(name, &[])?;
        Ok(self
            .read_value_event(name)
            .await?
            .map(|(_, data)| data.to_vec()))
    }

    async fn swap_value(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        validate_value(name, value)?;
        let current = self.read_value_event(name).await?;
        let Some(state) = values::swap_state(
            expected,
            current
                .as_ref()
                .map(|(revision, data)| (*revision, &data[..])),
        ) else {
            return Ok(false);
        };
        let event = EventData::binary(values::VALUE_EVENT_TYPE, Bytes::copy_from_slice(value))
            .id(uuid::Uuid::now_v7());
        let options = AppendToStreamOptions::default().stream_state(state);
        let stream = self.shared.names.value_stream(name);
        match self
            .client()
            .append_to_stream(stream.as_str(), &options, event)
            .await
        {
            Ok(_) => {
                if state == StreamState::NoStream {
                    values::keep_only_the_last(self.client(), &stream)
                        .await
                        .map_err(|error| from_kurrent(&error, name))?;
                }
                Ok(true)
            }
            Err(error) => match classify(&error) {
                Failure::WrongExpectedVersion(_) => Ok(false),
                failure => Err(to_store_error(failure, name)),
            },
        }
    }

    async fn put_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        validate_key(key)?;
        if let Some(answer) = Self::put_again(key, self.key_state(key.id).await?) {
            return answer;
        }
        // Indexed first: a key the store holds is always found by its
        // subject's destruction.
        let entry = EventData::binary(
            keys::INDEX_EVENT_TYPE,
            Bytes::from(keys::encode_index_entry(key.id, &key.subject)),
        )
        .id(Uuid::now_v7());
        self.client()
            .append_to_stream(
                self.shared.names.key_index_stream(),
                &AppendToStreamOptions::default(),
                entry,
            )
            .await
            .map_err(|error| from_kurrent(&error, "the data key index"))?;
        let event =
            EventData::binary(keys::KEY_EVENT_TYPE, Bytes::from(keys::encode_key(key))).id(key.id);
        let options = AppendToStreamOptions::default().stream_state(StreamState::NoStream);
        match self
            .client()
            .append_to_stream(self.shared.names.key_stream(key.id), &options, event)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => match classify(&error) {
                // Another put of the same id won the race, or a destruction
                // came first: answer as to a put of a key already there.
                Failure::WrongExpectedVersion(_) | Failure::Deleted => {
                    Self::put_again(key, self.key_state(key.id).await?).unwrap_or_else(|| {
                        Err(StoreError::Backend(format!(
                            "KurrentDB: data key {} neither written nor readable",
                            key.id
                        )))
                    })
                }
                failure => Err(to_store_error(failure, "a data key")),
            },
        }
    }

    async fn read_key(&self, id: Uuid) -> Result<Option<StoredKey>, StoreError> {
        match self.key_state(id).await? {
            KeyState::Held(key) => Ok(Some(key)),
            KeyState::Absent | KeyState::Destroyed => Ok(None),
        }
    }

    async fn read_keys(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let index = self.key_index().await?;
        let mut found = Vec::new();
        for id in keys::ids_after(&index, after) {
            if found.len() >= limit {
                break;
            }
            if let KeyState::Held(key) = self.key_state(id).await? {
                found.push(key);
            }
        }
        Ok(found)
    }

    async fn destroy_keys(&self, subject: &str) -> Result<u64, StoreError> {
        validate_key_subject(subject)?;
        let index = self.key_index().await?;
        let mut destroyed = 0;
        for id in keys::ids_of(&index, subject) {
            // Expecting the stream to exist: an index entry of a put cut
            // short, or a key destroyed before, is not counted.
            let options = TombstoneStreamOptions::default().stream_state(StreamState::StreamExists);
            match self
                .client()
                .tombstone_stream(self.shared.names.key_stream(id), &options)
                .await
            {
                Ok(_) => destroyed += 1,
                Err(error) => match classify(&error) {
                    Failure::WrongExpectedVersion(_) | Failure::Deleted | Failure::NotFound => {}
                    failure => return Err(to_store_error(failure, "a data key")),
                },
            }
        }
        Ok(destroyed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(wrapped: u8) -> StoredKey {
        StoredKey {
            id: Uuid::from_u128(5),
            subject: "subject-a".to_owned(),
            wrapped: vec![wrapped; 40],
        }
    }

    #[test]
    fn putting_a_key_again_is_a_no_op_only_with_the_same_content() {
        assert!(KurrentStore::put_again(&key(1), KeyState::Absent).is_none());
        assert!(matches!(
            KurrentStore::put_again(&key(1), KeyState::Held(key(1))),
            Some(Ok(()))
        ));
        assert!(matches!(
            KurrentStore::put_again(&key(1), KeyState::Held(key(2))),
            Some(Err(StoreError::InvalidInput(_)))
        ));
        let other_subject = StoredKey {
            subject: "subject-b".to_owned(),
            ..key(1)
        };
        assert!(matches!(
            KurrentStore::put_again(&key(1), KeyState::Held(other_subject)),
            Some(Err(StoreError::InvalidInput(_)))
        ));
        assert!(matches!(
            KurrentStore::put_again(&key(1), KeyState::Destroyed),
            Some(Err(StoreError::InvalidInput(message))) if message.contains("destroyed")
        ));
    }

    #[test]
    fn a_connection_string_is_checked_without_contacting_the_server() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = KurrentStore::open(
            "esdb://admin:changeit@localhost:2113?tls=false&caseledgerNamespace=staging",
            runtime.handle().clone(),
        )
        .expect("a valid connection string");
        assert_eq!(store.names().namespace(), "staging");
        assert_eq!(store.names().event_stream("account-1"), "staging/account-1");
        for bad in [
            "esdb://admin:changeit@localhost:2113/some/path",
            "esdb://admin:changeit@localhost:2113?tls=maybe",
            "postgres://admin:changeit@localhost/db",
        ] {
            let error = KurrentStore::open(bad, runtime.handle().clone()).unwrap_err();
            assert!(
                matches!(error, StoreError::InvalidInput(_)),
                "{bad}: {error}"
            );
            assert!(!error.to_string().contains("changeit"), "{bad}: {error}");
        }
    }
}
