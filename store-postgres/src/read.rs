//! Reads on pooled connections: a stream (with its tombstone, in one
//! statement, so one snapshot), the global log by position, the head.
//!
//! Appends are serialised under the append lock and a commit is visible
//! before the lock passes on, so a statement that sees position `p` sees
//! every position below it: reading `position > after` never skips.

use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use store::subscription::LogReader;
use store::{Direction, RecordedEvent, StoreError, StreamStart};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::{from_pool, from_postgres};
use crate::writer::Backoff;

/// The event columns every read selects, in this order.
const EVENT_COLUMNS: &str = "e.position, e.stream_id, e.revision, e.event_id, e.type_name, \
     e.schema_version, e.recorded_at, e.metadata, e.payload";

/// Reads on the store's pool.
pub(crate) struct Reader {
    pub pool: deadpool_postgres::Pool,
    pub endpoint: Arc<str>,
    /// Set when the store is dropped: subscriptions stop retrying.
    pub closed: Arc<AtomicBool>,
    /// Stream names by id. A stream's row is never renamed or removed, so
    /// an entry never goes stale; the map is emptied when it grows past
    /// [`MOST_CACHED_NAMES`].
    pub names: Mutex<HashMap<i64, Arc<str>>>,
    /// The page a scan will read next, asked for while it decodes this
    /// one (see [`Reader::read_all`]).
    pub ahead: Mutex<ReadAhead>,
}

/// Read-ahead of a scan of the global log: once two full pages in a row
/// follow each other, the next one is asked for before the caller asks,
/// on a connection of its own, so that the server reads it while the
/// caller decodes. A full page after a position never changes (events are
/// never altered and positions below the head are final), so a page read
/// early is the page read late; a short one is dropped.
#[derive(Default)]
pub(crate) struct ReadAhead {
    /// Where the last full page ended and its size: the next call of a scan.
    next: Option<(u64, usize)>,
    /// The page asked for early: its `after`, its limit and its rows.
    page: Option<(u64, usize, EarlyPage)>,
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some((_, _, page)) = self.page.take() {
            page.abort();
        }
    }
}

/// A page asked for before the caller asks.
type EarlyPage = tokio::task::JoinHandle<Result<Vec<Row>, StoreError>>;

/// The rows of up to `limit` events with position > `after`.
async fn query_page(
    pool: deadpool_postgres::Pool,
    endpoint: Arc<str>,
    after: u64,
    limit: usize,
) -> Result<Vec<Row>, StoreError> {
    let client = pool
        .get()
        .await
        .map_err(|error| from_pool(&endpoint, error))?;
    // The names come from a cache, not a join: a join costs an index
    // probe per event, the cache one per stream the reader meets.
    let statement = client
        .prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM caseledger_events e \
             WHERE e.position > $1 ORDER BY e.position LIMIT $2"
        ))
        .await
        .map_err(from_postgres)?;
    client
        .query(&statement, &[&to_i64(after), &to_i64(limit as u64)])
        .await
        .map_err(from_postgres)
}

/// Most stream names a reader keeps.
const MOST_CACHED_NAMES: usize = 1 << 20;

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Reader {
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| from_pool(&self.endpoint, error))
    }

    /// Position of the last committed event.
    pub(crate) async fn head(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT coalesce(max(position), 0) FROM caseledger_events")
            .await
            .map_err(from_postgres)?;
        let row = client
            .query_one(&statement, &[])
            .await
            .map_err(from_postgres)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// The stored chain links of up to `limit` events after `after`; a
    /// link that is not 32 bytes reads as zeros (a broken chain there).
    pub(crate) async fn read_chain(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<store::chain::ChainLink>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT position, chain FROM caseledger_events WHERE position > $1 \
                 ORDER BY position LIMIT $2",
            )
            .await
            .map_err(from_postgres)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&statement, &[&to_i64(after), &limit])
            .await
            .map_err(from_postgres)?;
        Ok(rows
            .iter()
            .map(|row| store::chain::ChainLink {
                position: row.get::<_, i64>(0) as u64,
                link: store::chain::stored_link(row.get::<_, &[u8]>(1))
                    .unwrap_or([0; store::chain::LINK_BYTES]),
            })
            .collect())
    }

    /// Up to `limit` events with position > `after`.
    pub(crate) async fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let early = {
            let mut ahead = self.ahead.lock().map_err(|_| poisoned())?;
            match ahead.page.take() {
                Some((at, size, page)) if (at, size) == (after, limit) => Some(page),
                Some((_, _, page)) => {
                    page.abort();
                    None
                }
                None => None,
            }
        };
        let rows = match early {
            Some(page) => match page.await {
                Ok(Ok(rows)) if rows.len() == limit => rows,
                // Short (the head then), failed or gone: read it now.
                _ => query_page(self.pool.clone(), self.endpoint.clone(), after, limit).await?,
            },
            None => query_page(self.pool.clone(), self.endpoint.clone(), after, limit).await?,
        };
        if rows.len() == limit {
            let end = rows
                .last()
                .map(|row| row.try_get::<_, i64>(0))
                .transpose()
                .map_err(from_postgres)?
                .unwrap_or_default() as u64;
            let asked_early = {
                let mut ahead = self.ahead.lock().map_err(|_| poisoned())?;
                // The second full page in a row of one scan: read the next
                // one early.
                let scanning = ahead.next == Some((after, limit));
                if scanning {
                    let (pool, endpoint) = (self.pool.clone(), self.endpoint.clone());
                    let page = tokio::spawn(query_page(pool, endpoint, end, limit));
                    if let Some((_, _, old)) = ahead.page.replace((end, limit, page)) {
                        old.abort();
                    }
                }
                ahead.next = Some((end, limit));
                scanning
            };
            if asked_early {
                // Let the read-ahead send its query before this page is
                // decoded (on a runtime of one thread it would otherwise
                // wait for the next call).
                tokio::task::yield_now().await;
            }
        }
        let mut names: HashMap<i64, Arc<str>> = HashMap::default();
        let mut unknown = Vec::new();
        {
            let cache = self.names.lock().map_err(|_| poisoned())?;
            for row in &rows {
                let stream_id: i64 = row.try_get(1).map_err(from_postgres)?;
                if names.contains_key(&stream_id) {
                    continue;
                }
                match cache.get(&stream_id) {
                    Some(name) => {
                        names.insert(stream_id, Arc::clone(name));
                    }
                    None => unknown.push(stream_id),
                }
            }
        }
        unknown.sort_unstable();
        unknown.dedup();
        if let (Some(&low), Some(&high)) = (unknown.first(), unknown.last()) {
            // Stream ids are handed out in creation order, so the streams a
            // page of a scan meets for the first time are mostly close
            // together: a range is read in one sweep of the index, where a
            // list costs a probe per id. The rest of a range is kept too:
            // a scan meets those streams soon.
            let client = self.client().await?;
            let found = if (high - low) as usize <= 4 * unknown.len() {
                let statement = client
                    .prepare_cached(
                        "SELECT stream_id, name FROM caseledger_streams \
                         WHERE stream_id BETWEEN $1 AND $2",
                    )
                    .await
                    .map_err(from_postgres)?;
                client
                    .query(&statement, &[&low, &high])
                    .await
                    .map_err(from_postgres)?
            } else {
                let statement = client
                    .prepare_cached(
                        "SELECT stream_id, name FROM caseledger_streams WHERE stream_id = ANY($1)",
                    )
                    .await
                    .map_err(from_postgres)?;
                client
                    .query(&statement, &[&unknown])
                    .await
                    .map_err(from_postgres)?
            };
            let mut cache = self.names.lock().map_err(|_| poisoned())?;
            if cache.len() + found.len() > MOST_CACHED_NAMES {
                cache.clear();
            }
            for row in found {
                let name: Arc<str> = row.try_get::<_, &str>(1).map_err(from_postgres)?.into();
                let stream_id: i64 = row.try_get(0).map_err(from_postgres)?;
                cache.insert(stream_id, Arc::clone(&name));
                if unknown.binary_search(&stream_id).is_ok() {
                    names.insert(stream_id, name);
                }
            }
        }
        decode_page(&rows, 0, |row| {
            let stream_id: i64 = row.get(1);
            names
                .get(&stream_id)
                .cloned()
                .ok_or_else(|| StoreError::Backend(format!("stream {stream_id} has no row")))
        })
    }

    /// Up to `limit` events of `stream`.
    pub(crate) async fn read_stream(
        &self,
        stream: &str,
        start: StreamStart,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        store::rules::validate_stream(stream)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (comparison, order, edge) = match direction {
            Direction::Forwards => (">=", "ASC", 0),
            Direction::Backwards => ("<=", "DESC", i64::MAX),
        };
        let from = match start {
            StreamStart::Edge => edge,
            StreamStart::Revision(revision) => to_i64(revision),
        };
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT s.deleted, {EVENT_COLUMNS} FROM caseledger_streams s \
                 LEFT JOIN LATERAL (SELECT * FROM caseledger_events x \
                   WHERE x.stream_id = s.stream_id AND x.revision {comparison} $2 \
                   ORDER BY x.revision {order} LIMIT $3) e ON true \
                 WHERE s.name = $1"
            ))
            .await
            .map_err(from_postgres)?;
        let rows = client
            .query(&statement, &[&stream, &from, &to_i64(limit as u64)])
            .await
            .map_err(from_postgres)?;
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        if first.get::<_, bool>(0) {
            return Err(StoreError::StreamDeleted {
                stream: stream.to_owned(),
            });
        }
        if first.get::<_, Option<i64>>(1).is_none() {
            return Ok(Vec::new());
        }
        let name: Arc<str> = stream.into();
        decode_page(&rows, 1, |_| Ok(Arc::clone(&name)))
    }
}

fn poisoned() -> StoreError {
    StoreError::Backend("the stream name cache is poisoned".to_owned())
}

/// Rows to events; the event columns start at `base`. Payloads share one
/// buffer, type names one `Arc` per name.
fn decode_page(
    rows: &[Row],
    base: usize,
    mut stream_name: impl FnMut(&Row) -> Result<Arc<str>, StoreError>,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let payloads: Vec<&[u8]> = rows
        .iter()
        .map(|row| row.try_get::<_, &[u8]>(base + 8))
        .collect::<Result<_, _>>()
        .map_err(from_postgres)?;
    let mut buffer = Vec::with_capacity(payloads.iter().map(|p| p.len()).sum());
    for payload in &payloads {
        buffer.extend_from_slice(payload);
    }
    let buffer = Bytes::from(buffer);
    let mut type_names: Vec<Arc<str>> = Vec::new();
    let mut last_type: Option<Arc<str>> = None;
    let mut offset = 0;
    let mut events = Vec::with_capacity(rows.len());
    for (row, payload) in rows.iter().zip(&payloads) {
        let position: i64 = row.try_get(base).map_err(from_postgres)?;
        let type_name: &str = row.try_get(base + 4).map_err(from_postgres)?;
        // Logs run in streaks of one type: the last one is tried first.
        let type_name = match last_type.as_ref().filter(|last| ***last == *type_name) {
            Some(last) => Arc::clone(last),
            None => {
                let name = match type_names.iter().find(|known| ***known == *type_name) {
                    Some(known) => Arc::clone(known),
                    None => {
                        let name: Arc<str> = type_name.into();
                        type_names.push(Arc::clone(&name));
                        name
                    }
                };
                last_type = Some(Arc::clone(&name));
                name
            }
        };
        let metadata: &[u8] = row.try_get(base + 7).map_err(from_postgres)?;
        let metadata = store::decode_metadata(metadata).ok_or_else(|| {
            StoreError::Backend(format!("corrupt metadata at position {position}"))
        })?;
        let schema_version: i32 = row.try_get(base + 5).map_err(from_postgres)?;
        events.push(RecordedEvent {
            id: row.try_get::<_, Uuid>(base + 3).map_err(from_postgres)?,
            stream: stream_name(row)?,
            revision: row.try_get::<_, i64>(base + 2).map_err(from_postgres)? as u64,
            position: position as u64,
            type_name,
            schema_version: u16::try_from(schema_version).map_err(|_| {
                StoreError::Backend(format!("bad schema version at position {position}"))
            })?,
            recorded_at: row.try_get(base + 6).map_err(from_postgres)?,
            metadata,
            payload: buffer.slice(offset..offset + payload.len()),
        });
        offset += payload.len();
    }
    Ok(events)
}

/// The subscription's reader: it outlives outages, retrying with backoff
/// until the server answers again (resuming after the last position it
/// delivered), and stops retrying once the store is dropped.
pub(crate) struct SubscriptionReader(pub Arc<Reader>);

impl SubscriptionReader {
    async fn retrying<T, F, Fut>(reader: Arc<Reader>, mut attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(Arc<Reader>) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut backoff = Backoff::new();
        loop {
            match attempt(Arc::clone(&reader)).await {
                Err(StoreError::Unavailable(message)) if !reader.closed.load(Ordering::Acquire) => {
                    tracing::warn!(%message, "a subscription waits for PostgreSQL");
                    tokio::time::sleep(backoff.next()).await;
                }
                other => return other,
            }
        }
    }
}

impl LogReader for SubscriptionReader {
    fn read_after(
        &self,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>> {
        Self::retrying(Arc::clone(&self.0), move |reader| async move {
            reader.read_all(after, limit).await
        })
        .boxed()
    }

    fn head(&self) -> BoxFuture<'static, Result<u64, StoreError>> {
        Self::retrying(
            Arc::clone(&self.0),
            |reader| async move { reader.head().await },
        )
        .boxed()
    }
}
