//! A store that hands out positions the way KurrentDB does, for the
//! conformance kit's own tests: another store's log seen through positions
//! that are neither dense nor start at 1, with hidden events of a foreign
//! namespace in between. The kit passing on it shows that no case computes
//! with positions (`p + 1`, `head - checkpoint`, "from 1").
//!
//! Every event the inner store holds at position `p` is at
//! `p * STRIDE + OFFSET` here; before each append a few events of a
//! foreign namespace (streams starting with [`FOREIGN_PREFIX`]) are
//! appended to the inner store and never shown, so the positions shown
//! have gaps of every size. Positions go through both ways: results,
//! reads, the head, subscriptions, the chain (whose links cover the
//! positions shown, so they are computed here over the events shown).
//! A position handed in that is not 0 and not one of an event shown is
//! refused with [`StoreError::InvalidInput`], as a kit that computed one
//! would deserve.
//!
//! [`SparsePositions::with_ids_per_stream`] also checks event ids within
//! their own stream only, as KurrentDB does: each id is stored mixed with
//! its stream's name, so the inner store sees another stream's id as new.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use store::chain::ChainLink;
use store::{
    AppendResult, Direction, EventStore, ExpectedRevision, NewEvent, RecordedEvent, StoreError,
    StoredKey, StreamStart, SubscriptionItem,
};
use uuid::Uuid;

/// How far apart two consecutive positions of the inner store are here.
pub const STRIDE: u64 = 37;
/// Where position 0 of the inner store would be (never handed out).
pub const OFFSET: u64 = 1_000_003;
/// The streams of the foreign namespace, which nothing here shows.
pub const FOREIGN_PREFIX: &str = "foreign-namespace/";

/// How many of the inner store's events one page of a scan reads.
const SCAN_PAGE: usize = 256;

/// `inner` with sparse positions and a hidden foreign namespace.
pub struct SparsePositions<S: EventStore> {
    /// The only strong handle: dropping this closes the inner store, and
    /// with it every subscription.
    inner: Arc<S>,
    /// How many appends were asked for: sets how many foreign events go
    /// before the next one.
    appends: AtomicU64,
    /// The inner position scanned up to, and the last of ours up to it.
    head: tokio::sync::Mutex<(u64, u64)>,
    /// Event ids are stored mixed with their stream's name.
    ids_per_stream: bool,
}

impl<S: EventStore> SparsePositions<S> {
    /// `inner`, which must be empty, seen through sparse positions.
    pub fn new(inner: S) -> SparsePositions<S> {
        SparsePositions {
            inner: Arc::new(inner),
            appends: AtomicU64::new(0),
            head: tokio::sync::Mutex::new((0, 0)),
            ids_per_stream: false,
        }
    }

    /// [`SparsePositions::new`], and an event id used in one stream is new
    /// to every other one.
    pub fn with_ids_per_stream(inner: S) -> SparsePositions<S> {
        SparsePositions {
            ids_per_stream: true,
            ..SparsePositions::new(inner)
        }
    }

    /// `event` as shown, or `None` when it is foreign.
    fn shown(&self, event: RecordedEvent) -> Option<RecordedEvent> {
        shown(self.ids_per_stream, event)
    }

    /// The inner store, positions unchanged, foreign events included.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn inner_position(&self, position: u64) -> Result<u64, StoreError> {
        let inner = inner_position(position)?;
        check_shown(&*self.inner, position, inner).await?;
        Ok(inner)
    }

    /// Append `count` hidden events to the foreign namespace.
    async fn append_foreign(&self, stream: u64, count: usize) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        let events = (0..count)
            .map(|_| NewEvent {
                id: Uuid::now_v7(),
                type_name: "ForeignHappened".to_owned(),
                schema_version: 1,
                metadata: crate::conformance::metadata(),
                payload: b"not ours".to_vec(),
            })
            .collect();
        self.inner
            .append(
                &format!("{FOREIGN_PREFIX}{stream}"),
                ExpectedRevision::Any,
                events,
            )
            .await?;
        Ok(())
    }
}

/// The position shown for the inner store's position `inner` (above 0).
pub fn shown_position(inner: u64) -> u64 {
    inner * STRIDE + OFFSET
}

/// The inner position of a position handed in, if it can be one.
fn inner_position(position: u64) -> Result<u64, StoreError> {
    if position == 0 {
        return Ok(0);
    }
    position
        .checked_sub(OFFSET)
        .filter(|offset| offset % STRIDE == 0)
        .map(|offset| offset / STRIDE)
        .filter(|&inner| inner > 0)
        .ok_or_else(|| never_handed_out(position))
}

fn never_handed_out(position: u64) -> StoreError {
    StoreError::InvalidInput(format!(
        "position {position} was never handed out by this store"
    ))
}

/// The inner event at `inner` is one of ours: `position` was handed out.
async fn check_shown<S: EventStore>(
    store: &S,
    position: u64,
    inner: u64,
) -> Result<(), StoreError> {
    if inner == 0 {
        return Ok(());
    }
    let page = store.read_all(inner - 1, 1).await?;
    match page.first() {
        Some(event) if event.position == inner && !is_foreign(event) => Ok(()),
        _ => Err(never_handed_out(position)),
    }
}

fn is_foreign(event: &RecordedEvent) -> bool {
    event.stream.starts_with(FOREIGN_PREFIX)
}

/// `event` as shown, or `None` when it is foreign.
fn shown(ids_per_stream: bool, mut event: RecordedEvent) -> Option<RecordedEvent> {
    if is_foreign(&event) {
        return None;
    }
    event.position = shown_position(event.position);
    if ids_per_stream {
        event.id = mixed_id(&event.stream, event.id);
    }
    Some(event)
}

/// `id` mixed with `stream`'s name, and back: the same (stream, id) is
/// always the same stored id, and two streams never share one.
fn mixed_id(stream: &str, id: Uuid) -> Uuid {
    use std::hash::{Hash, Hasher};
    // `DefaultHasher::new` has fixed keys: the same in every run.
    let mut hasher = std::hash::DefaultHasher::new();
    stream.hash(&mut hasher);
    let hash = hasher.finish();
    Uuid::from_u128(id.as_u128() ^ ((u128::from(hash) << 64) | u128::from(hash.rotate_left(32))))
}

fn refuse_foreign(stream: &str) -> Result<(), StoreError> {
    if stream.starts_with(FOREIGN_PREFIX) {
        return Err(StoreError::InvalidInput(format!(
            "{stream} belongs to another namespace"
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl<S: EventStore> EventStore for SparsePositions<S> {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedRevision,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        refuse_foreign(stream)?;
        // 2, 1, 0, 2, 1, 0, … foreign events before each append, racing
        // with whatever else is appended at the same time.
        let append = self.appends.fetch_add(1, Ordering::Relaxed);
        self.append_foreign(append % 2, (2 - append % 3) as usize)
            .await?;
        let events = if self.ids_per_stream {
            events
                .into_iter()
                .map(|event| NewEvent {
                    id: mixed_id(stream, event.id),
                    ..event
                })
                .collect()
        } else {
            events
        };
        let result = self.inner.append(stream, expected, events).await?;
        Ok(AppendResult {
            position: shown_position(result.position),
            ..result
        })
    }

    async fn read_stream(
        &self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        refuse_foreign(stream)?;
        let events = self
            .inner
            .read_stream(stream, start, direction, limit)
            .await?;
        Ok(events
            .into_iter()
            .filter_map(|event| self.shown(event))
            .collect())
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut from = self.inner_position(after).await?;
        let mut events = Vec::new();
        while events.len() < limit {
            let page = self.inner.read_all(from, limit - events.len()).await?;
            let Some(last) = page.last() else { break };
            from = last.position;
            events.extend(page.into_iter().filter_map(|event| self.shown(event)));
        }
        Ok(events)
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        let mut head = self.head.lock().await;
        let (scanned, ours) = &mut *head;
        loop {
            let page = self.inner.read_all(*scanned, SCAN_PAGE).await?;
            let Some(last) = page.last() else { break };
            *scanned = last.position;
            if let Some(event) = page.iter().rev().find(|event| !is_foreign(event)) {
                *ours = event.position;
            }
        }
        Ok(if *ours == 0 { 0 } else { shown_position(*ours) })
    }

    async fn read_chain(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>, StoreError> {
        self.inner_position(after).await?;
        // The chain of the events shown, at the positions shown, from the
        // start: the inner store's links cover other positions.
        let mut previous = store::chain::genesis();
        let mut links = Vec::new();
        let mut from = 0;
        while links.len() < limit {
            let page = self.inner.read_all(from, SCAN_PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.position;
            for event in page.into_iter().filter_map(|event| self.shown(event)) {
                previous = store::chain::link_recorded(&previous, &event);
                if event.position > after && links.len() < limit {
                    links.push(ChainLink {
                        position: event.position,
                        link: previous,
                    });
                }
            }
        }
        Ok(links)
    }

    fn subscribe_all(
        &self,
        after: u64,
    ) -> BoxStream<'static, Result<SubscriptionItem, StoreError>> {
        let inner_after = match inner_position(after) {
            Ok(inner_after) => inner_after,
            Err(error) => return futures::stream::once(async { Err(error) }).boxed(),
        };
        let ids_per_stream = self.ids_per_stream;
        let items = self
            .inner
            .subscribe_all(inner_after)
            .filter_map(move |item| {
                futures::future::ready(match item {
                    Ok(SubscriptionItem::Event(event)) => shown(ids_per_stream, event)
                        .map(SubscriptionItem::Event)
                        .map(Ok),
                    other => Some(other),
                })
            })
            .boxed();
        // Checked without keeping the store open: once it is dropped the
        // inner subscription says so itself.
        let inner: Weak<S> = Arc::downgrade(&self.inner);
        async move {
            let checked = match inner.upgrade() {
                Some(inner) => check_shown(&*inner, after, inner_after).await,
                None => Ok(()),
            };
            match checked {
                Ok(()) => items,
                Err(error) => futures::stream::once(async { Err(error) }).boxed(),
            }
        }
        .into_stream()
        .flatten()
        .boxed()
    }

    async fn tombstone(&self, stream: &str, expected: ExpectedRevision) -> Result<(), StoreError> {
        refuse_foreign(stream)?;
        self.inner.tombstone(stream, expected).await
    }

    async fn read_value(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read_value(name).await
    }

    async fn swap_value(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> Result<bool, StoreError> {
        self.inner.swap_value(name, expected, value).await
    }

    async fn put_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        self.inner.put_key(key).await
    }

    async fn read_key(&self, id: Uuid) -> Result<Option<StoredKey>, StoreError> {
        self.inner.read_key(id).await
    }

    async fn read_keys(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.inner.read_keys(after, limit).await
    }

    async fn destroy_keys(&self, subject: &str) -> Result<u64, StoreError> {
        self.inner.destroy_keys(subject).await
    }
}
