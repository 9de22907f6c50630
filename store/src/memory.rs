//! The in-memory adapter of the EventStore port: one mutex-guarded log, for
//! unit tests and for anything that needs a store without a disk.
//!
//! It keeps exactly the semantics of the embedded SQLite adapter (the
//! conformance suite in `store/tests/conformance.rs` runs against both):
//! revisions from 0, positions from 1 with no gap, idempotent retries by
//! event id, tombstones, and empty appends refused with
//! [`StoreError::EmptyAppend`]. Nothing survives the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::watch;
use uuid::Uuid;

use crate::chain;
use crate::rules::{check_expected, validate_append, validate_stream};
use crate::subscription::{LogReader, follow_all};
use crate::{
    AppendResult, Bytes, CurrentRevision, Direction, EventStore, ExpectedRevision, NewEvent,
    RecordedEvent, StoreError, StreamStart, SubscriptionItem,
};

/// An [`EventStore`] held in memory.
///
/// Subscriptions opened on it end with [`StoreError::Closed`] once the store
/// is dropped and everything appended before has been delivered.
pub struct MemoryStore {
    log: Arc<Mutex<Log>>,
    heads: watch::Sender<u64>,
}

#[derive(Default)]
struct Log {
    /// `events[i]` has position `i + 1`.
    events: Vec<RecordedEvent>,
    streams: HashMap<String, StreamEntry>,
    /// Event id -> position.
    ids: HashMap<Uuid, u64>,
    /// Values beside the log.
    values: HashMap<String, Vec<u8>>,
    /// `links[i]`: the hash-chain link of `events[i]`.
    links: Vec<crate::chain::Link>,
    /// The key table.
    keys: std::collections::BTreeMap<Uuid, crate::StoredKey>,
}

#[derive(Default)]
struct StreamEntry {
    /// Positions of the stream's events; index = revision.
    positions: Vec<u64>,
    deleted: bool,
}

impl StreamEntry {
    fn current(&self) -> CurrentRevision {
        match self.positions.len() {
            0 => CurrentRevision::NoStream,
            n => CurrentRevision::Current(n as u64 - 1),
        }
    }
}

impl Log {
    fn event_at(&self, position: u64) -> &RecordedEvent {
        &self.events[position as usize - 1]
    }

    fn head(&self) -> u64 {
        self.events.len() as u64
    }

    fn read_after(&self, after: u64, limit: usize) -> Vec<RecordedEvent> {
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        self.events[start..].iter().take(limit).cloned().collect()
    }

    /// An earlier append with the same ids, when this is a retry of it.
    fn idempotent_result(
        &self,
        stream: &str,
        events: &[NewEvent],
    ) -> Option<Result<AppendResult, StoreError>> {
        let first_position = *self.ids.get(&events[0].id)?;
        let first = self.event_at(first_position);
        let mismatch = || {
            Err(StoreError::IdempotencyMismatch {
                stream: stream.to_owned(),
            })
        };
        if *first.stream != *stream {
            return Some(mismatch());
        }
        let positions = &self.streams[stream].positions;
        let stored = positions
            .iter()
            .skip(first.revision as usize)
            .take(events.len())
            .map(|&position| self.event_at(position));
        let mut last = None;
        let mut matched = 0;
        for (stored, new) in stored.zip(events) {
            if stored.id != new.id {
                return Some(mismatch());
            }
            matched += 1;
            last = Some(stored);
        }
        match last {
            Some(last) if matched == events.len() => Some(Ok(AppendResult {
                next_expected_revision: last.revision,
                position: last.position,
            })),
            _ => Some(mismatch()),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore {
            log: Arc::new(Mutex::new(Log::default())),
            heads: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }
}

/// A panic while holding the lock cannot leave the log half-written (every
/// mutation is checked before it starts), so a poisoned lock is still usable.
fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Microsecond precision, like the SQLite adapter, so both record the same.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

#[async_trait::async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream, &events)?;
        let result = {
            let mut log = self.lock();
            let log = &mut *log;
            let (deleted, current) = match log.streams.get(stream) {
                Some(entry) => (entry.deleted, entry.current()),
                None => (false, CurrentRevision::NoStream),
            };
            if deleted {
                return Err(StoreError::StreamDeleted {
                    stream: stream.to_owned(),
                });
            }
            if let Some(outcome) = log.idempotent_result(stream, &events) {
                return outcome;
            }
            check_expected(stream, expected, current)?;
            if events.iter().any(|event| log.ids.contains_key(&event.id)) {
                return Err(StoreError::IdempotencyMismatch {
                    stream: stream.to_owned(),
                });
            }
            let recorded_at = now_micros();
            let entry = log.streams.entry(stream.to_owned()).or_default();
            let name: Arc<str> = Arc::from(stream);
            let mut result = None;
            for event in events {
                let position = log.events.len() as u64 + 1;
                let revision = entry.positions.len() as u64;
                entry.positions.push(position);
                log.ids.insert(event.id, position);
                let previous = log.links.last().copied().unwrap_or_else(chain::genesis);
                let metadata = crate::encode_metadata(&event.metadata);
                log.links.push(chain::link(
                    &previous,
                    &chain::ChainedEvent {
                        position,
                        stream,
                        revision,
                        id: event.id.as_bytes(),
                        type_name: &event.type_name,
                        schema_version: event.schema_version,
                        recorded_at_micros: recorded_at.timestamp_micros(),
                        metadata: &metadata,
                        payload: &event.payload,
                    },
                ));
                log.events.push(RecordedEvent {
                    id: event.id,
                    stream: Arc::clone(&name),
                    revision,
                    position,
                    type_name: Arc::from(event.type_name),
                    schema_version: event.schema_version,
                    recorded_at,
                    metadata: event.metadata,
                    payload: Bytes::from(event.payload),
                });
                result = Some(AppendResult {
                    next_expected_revision: revision,
                    position,
                });
            }
            result.ok_or(StoreError::EmptyAppend)?
        };
        self.heads
            .send_modify(|head| *head = (*head).max(result.position));
        Ok(result)
    }

    async fn read_chain(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<chain::ChainLink>, StoreError> {
        let log = self.lock();
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(log.links.len());
        Ok((start..)
            .zip(&log.links[start..])
            .take(limit)
            .map(|(index, link)| chain::ChainLink {
                position: index as u64 + 1,
                link: *link,
            })
            .collect())
    }

    async fn read_stream(
        &self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        validate_stream(stream)?;
        let log = self.lock();
        let Some(entry) = log.streams.get(stream) else {
            return Ok(Vec::new());
        };
        if entry.deleted {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        let positions = &entry.positions;
        let picked: Vec<u64> = match (direction, start) {
            (Direction::Forwards, StreamStart::Edge) => {
                positions.iter().take(limit).copied().collect()
            }
            (Direction::Forwards, StreamStart::Revision(revision)) => positions
                .iter()
                .skip(usize::try_from(revision).unwrap_or(usize::MAX))
                .take(limit)
                .copied()
                .collect(),
            (Direction::Backwards, StreamStart::Edge) => {
                positions.iter().rev().take(limit).copied().collect()
            }
            (Direction::Backwards, StreamStart::Revision(revision)) => {
                let end = usize::try_from(revision.saturating_add(1))
                    .unwrap_or(usize::MAX)
                    .min(positions.len());
                positions[..end].iter().rev().take(limit).copied().collect()
            }
        };
        Ok(picked
            .into_iter()
            .map(|position| log.event_at(position).clone())
            .collect())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        Ok(self.lock().read_after(after, limit))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        Ok(self.lock().head())
    }

    fn subscribe_all(
        &self,
        after: u64,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        let reader = Arc::new(MemoryReader {
            log: Arc::clone(&self.log),
        });
        follow_all(reader, self.heads.subscribe(), after)
    }

    async fn tombstone(&self, stream: &str, expected: ExpectedRevision) -> Result<(), StoreError> {
        validate_stream(stream)?;
        let mut log = self.lock();
        let entry = log.streams.entry(stream.to_owned()).or_default();
        if entry.deleted {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        if let Err(conflict) = check_expected(stream, expected, entry.current()) {
            if entry.positions.is_empty() {
                log.streams.remove(stream);
            }
            return Err(conflict);
        }
        entry.deleted = true;
        Ok(())
    }

    async fn read_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        crate::rules::validate_value(name, &[])?;
        Ok(self.lock().values.get(name).cloned())
    }

    async fn swap_value(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        crate::rules::validate_value(name, value)?;
        let mut log = self.lock();
        if log.values.get(name).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        log.values.insert(name.to_owned(), value.to_vec());
        Ok(true)
    }

    async fn put_key(&self, key: &crate::StoredKey) -> Result<(), StoreError> {
        crate::rules::validate_key(key)?;
        let mut log = self.lock();
        match log.keys.get(&key.id) {
            Some(stored) if stored == key => Ok(()),
            Some(_) => Err(crate::rules::key_mismatch(key.id)),
            None => {
                log.keys.insert(key.id, key.clone());
                Ok(())
            }
        }
    }

    async fn read_key(&self, id: Uuid) -> Result<Option<crate::StoredKey>, StoreError> {
        Ok(self.lock().keys.get(&id).cloned())
    }

    async fn read_keys(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<crate::StoredKey>, StoreError> {
        use std::ops::Bound;
        let log = self.lock();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(log
            .keys
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect())
    }

    async fn destroy_keys(&self, subject: &str) -> Result<u64, StoreError> {
        crate::rules::validate_key_subject(subject)?;
        let mut log = self.lock();
        let before = log.keys.len();
        log.keys.retain(|_, key| key.subject != subject);
        Ok((before - log.keys.len()) as u64)
    }
}

/// What a subscription holds: the log, not the store, so dropping the store
/// ends its subscriptions.
struct MemoryReader {
    log: Arc<Mutex<Log>>,
}

impl LogReader for MemoryReader {
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>> {
        let page = lock(&self.log).read_after(after, limit);
        async move { Ok(page) }.boxed()
    }

    fn head(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        let head = lock(&self.log).head();
        async move { Ok(head) }.boxed()
    }
}
