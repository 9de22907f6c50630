//! The group-committing writer: one task per store owns one connection,
//! takes every pending append and tombstone, and commits them in one
//! transaction under the append lock.
//!
//! A batch of appends to distinct streams first tries the fast path: one
//! statement, its own transaction (`SELECT caseledger_append_fast(...)`),
//! whose function takes the lock, checks every expected revision at once and
//! inserts every event in one statement, or writes no event and says so
//! when an append is not that simple (a conflict, a deleted stream; a
//! stored id fails it with a unique violation). The writer remembers where
//! its last commit left the log (position and link) and sends the batch's
//! links along; the function uses them when the log still ends there, and
//! links the events itself when another process wrote since. It also
//! remembers, for the streams it wrote, their ids and the last revision it
//! stored: when every append of a batch is decided by that (an exact
//! revision that is the one remembered, any revision of a remembered
//! stream, a new stream), the function writes the batch without reading a
//! stream, and the unique indexes refuse what was written meanwhile.
//!
//! Every other batch, and a fast one that was refused, takes two round
//! trips. The first (pipelined) begins, takes the lock, creates the rows of
//! streams not seen before, and reads the head position, the batch's stream
//! heads and every batch event id already stored. With the lock held nobody
//! else writes, so every request is then decided in memory in arrival
//! order, each against its own expected revision and the heads its
//! predecessors in the batch left: a failing request writes nothing and
//! never fails its neighbours, which is what a savepoint per request would
//! buy, without its round trips. The second round trip inserts every event
//! of the batch in one statement, marks tombstones, notifies listeners and
//! commits. Should the database refuse the batch all the same (a value it
//! will not store), the transaction is undone and each request runs alone.
//!
//! Each commit wakes this process's subscriptions at once. Other processes
//! learn of it by a notification, which wakes every listener on the
//! server: under load the writer sends one at most every
//! [`PostgresOptions::announce_interval`], with the commit that falls due,
//! and announces what is left as soon as it has had nothing to do for
//! [`ANNOUNCE_WHEN_IDLE`] (or the interval is over); a commit after a quiet
//! spell is announced with itself.
//!
//! When the server goes away, the writer reconnects with backoff and runs
//! the batch again, for up to [`PostgresOptions::outage_timeout`]: a retried
//! append is recognised by its event ids, so an append whose commit was
//! sent but not acknowledged is neither lost nor written twice. A tombstone
//! whose commit may have happened is answered with
//! [`StoreError::Unavailable`] instead, since running it again could not
//! tell its own success from another's.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::try_join_all;
use rand::Rng;
use store::rules::check_expected;
use store::{AppendResult, CurrentRevision, ExpectedRevision, StoreError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::PostgresOptions;
use crate::config::Target;
use crate::error::{from_postgres, is_unavailable, unreachable_server};
use crate::schema::{APPEND_LOCK, CHANNEL};

/// An event ready for the database.
pub(crate) struct PreparedEvent {
    pub id: Uuid,
    pub type_name: String,
    pub schema_version: i32,
    pub metadata: Vec<u8>,
    pub payload: Bytes,
}

/// What the writer is asked to do.
pub(crate) enum Request {
    Append {
        stream: String,
        expected: ExpectedRevision,
        events: Vec<PreparedEvent>,
        reply: oneshot::Sender<Result<AppendResult, StoreError>>,
    },
    Tombstone {
        stream: String,
        expected: ExpectedRevision,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Request {
    fn stream(&self) -> &str {
        match self {
            Request::Append { stream, .. } | Request::Tombstone { stream, .. } => stream,
        }
    }

    fn event_count(&self) -> usize {
        match self {
            Request::Append { events, .. } => events.len(),
            Request::Tombstone { .. } => 1,
        }
    }

    fn answer(self, outcome: Result<Outcome, StoreError>) {
        match self {
            Request::Append { reply, .. } => {
                let _ = reply.send(outcome.and_then(|outcome| match outcome {
                    Outcome::Appended(result) => Ok(result),
                    Outcome::Tombstoned => Err(StoreError::Backend(
                        "the writer answered an append as a tombstone".to_owned(),
                    )),
                }));
            }
            Request::Tombstone { reply, .. } => {
                let _ = reply.send(outcome.map(drop));
            }
        }
    }
}

enum Outcome {
    Appended(AppendResult),
    Tombstoned,
}

/// How a batch failed as a whole.
enum Failure {
    /// The server is out of reach; `commit_sent` when the outcome is unknown.
    Unavailable {
        commit_sent: bool,
        error: StoreError,
    },
    /// The database refused a statement.
    Database(StoreError),
}

fn failure(commit_sent: bool) -> impl Fn(tokio_postgres::Error) -> Failure {
    move |error| {
        if is_unavailable(&error) {
            Failure::Unavailable {
                commit_sent,
                error: from_postgres(error),
            }
        } else {
            Failure::Database(from_postgres(error))
        }
    }
}

struct Statements {
    lock: Statement,
    create_streams: Statement,
    max_position: Statement,
    heads: Statement,
    stored: Statement,
    insert: Statement,
    tombstone: Statement,
    notify: Statement,
    fast: Statement,
}

/// A connection and its prepared statements.
pub(crate) struct Session {
    client: Client,
    statements: Statements,
}

impl Session {
    /// Connect and prepare.
    pub(crate) async fn open(target: &Target) -> Result<Session, StoreError> {
        let (client, connection) =
            target
                .config
                .connect(target.tls.clone())
                .await
                .map_err(|error| {
                    if is_unavailable(&error) {
                        unreachable_server(&target.endpoint, &error)
                    } else {
                        from_postgres(error)
                    }
                })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "the writer's PostgreSQL connection ended");
            }
        });
        let prepare = |sql: &'static str| client.prepare(sql);
        let statements = futures::try_join!(
            prepare("SELECT pg_advisory_xact_lock($1)"),
            prepare(
                "INSERT INTO caseledger_streams (name) \
                 SELECT n FROM unnest($1::text[]) AS u(n) \
                 WHERE NOT EXISTS (SELECT 1 FROM caseledger_streams s WHERE s.name = u.n) \
                 ON CONFLICT DO NOTHING"
            ),
            prepare("SELECT position, chain FROM caseledger_events ORDER BY position DESC LIMIT 1"),
            prepare(
                "SELECT s.name, s.stream_id, s.deleted, \
                 (SELECT e.revision FROM caseledger_events e WHERE e.stream_id = s.stream_id \
                  ORDER BY e.revision DESC LIMIT 1) \
                 FROM caseledger_streams s WHERE s.name = ANY($1::text[])"
            ),
            prepare(
                "SELECT event_id, stream_id, revision, position, type_name, schema_version, payload \
                 FROM caseledger_events WHERE event_id = ANY($1::uuid[])"
            ),
            prepare(
                "INSERT INTO caseledger_events (position, stream_id, revision, event_id, \
                 type_name, schema_version, recorded_at, metadata, payload, chain) \
                 SELECT p, s, r, i, t, v, $9, m, d, c FROM unnest($1::int8[], $2::int8[], \
                 $3::int8[], $4::uuid[], $5::text[], $6::int4[], $7::bytea[], $8::bytea[], \
                 $10::bytea[]) AS u(p, s, r, i, t, v, m, d, c)"
            ),
            prepare("UPDATE caseledger_streams SET deleted = true WHERE stream_id = ANY($1::int8[])"),
            prepare("SELECT pg_notify($1, $2)"),
            prepare(
                "SELECT heads, last_link, stream_ids FROM caseledger_append_fast($1, $2, $3, $4, \
                 $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
            ),
        )
        .map_err(from_postgres)?;
        let (lock, create_streams, max_position, heads, stored, insert, tombstone, notify, fast) =
            statements;
        Ok(Session {
            client,
            statements: Statements {
                lock,
                create_streams,
                max_position,
                heads,
                stored,
                insert,
                tombstone,
                notify,
                fast,
            },
        })
    }
}

/// Retry delays: 50 ms doubling to 2 s, with jitter.
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff(Duration::from_millis(50))
    }

    pub(crate) fn next(&mut self) -> Duration {
        let delay = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
        delay.mul_f64(rand::rng().random_range(0.5..1.0))
    }
}

/// The writer task's state.
pub(crate) struct Writer {
    pub target: Target,
    pub session: Option<Session>,
    pub heads: watch::Sender<u64>,
    pub options: PostgresOptions,
    /// The last position and link this writer knows the log to end with
    /// (from its own last commit), so that it can link a batch itself.
    pub known: Option<Known>,
    /// Streams this writer stored events in: id and the last revision it
    /// stored (a revision that exists for good; another node may have
    /// stored more since). At most [`KNOWN_STREAMS`], forgotten all at
    /// once when full.
    pub streams: HashMap<String, (i64, i64)>,
    /// When this writer last notified other processes.
    pub announced: Option<Instant>,
    /// The head of a commit not announced yet, and when it was committed.
    pub unannounced: Option<(i64, Instant)>,
}

/// How long the writer waits, with nothing to do, before it announces a
/// commit that was not due: a busy writer's next commit comes sooner.
const ANNOUNCE_WHEN_IDLE: Duration = Duration::from_millis(1);

/// How many streams a writer remembers.
const KNOWN_STREAMS: usize = 65_536;

/// The end of the log as the writer last saw it: position and link.
pub(crate) type Known = (i64, store::chain::Link);

impl Writer {
    /// Serve requests until every sender is gone.
    pub(crate) async fn run(mut self, mut requests: mpsc::Receiver<Request>) {
        let mut batch = Vec::new();
        let mut last_batch = 0;
        loop {
            let next = match self.unannounced {
                None => requests.recv().await,
                Some((head, committed)) => {
                    let due = self.announced.map_or_else(Instant::now, |at| {
                        (at + self.options.announce_interval).min(committed + ANNOUNCE_WHEN_IDLE)
                    });
                    tokio::select! {
                        request = requests.recv() => request,
                        () = tokio::time::sleep_until(due.into()) => {
                            self.announce(head).await;
                            continue;
                        }
                    }
                }
            };
            let Some(first) = next else {
                if let Some((head, _)) = self.unannounced {
                    self.announce(head).await;
                }
                return;
            };
            let mut events = first.event_count();
            batch.push(first);
            // Let the callers that were just answered send their next
            // requests, so that they join this batch rather than wait for
            // the next one: take what is there, give way, and go on while
            // giving way brought more. A lone writer (the last batch held
            // one request) does not wait for company.
            let rounds = if last_batch > 1 { 8 } else { 1 };
            for round in 0..rounds {
                while events < self.options.max_batch_events {
                    match requests.try_recv() {
                        Ok(request) => {
                            events += request.event_count();
                            batch.push(request);
                        }
                        Err(_) => break,
                    }
                }
                if events >= self.options.max_batch_events || round + 1 == rounds {
                    break;
                }
                tokio::task::yield_now().await;
                if requests.is_empty() {
                    break;
                }
            }
            last_batch = batch.len();
            self.commit(&mut batch).await;
        }
    }

    /// Commit `batch` and answer every request of it (it is left empty).
    fn commit<'a>(
        &'a mut self,
        batch: &'a mut Vec<Request>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let started = Instant::now();
            let mut backoff = Backoff::new();
            loop {
                let delay = self.options.commit_delay_for_tests.map(|(low, high)| {
                    rand::rng().random_range(low.as_micros()..=high.as_micros())
                });
                let known = self.known.take();
                let announce = self
                    .announced
                    .is_none_or(|at| at.elapsed() >= self.options.announce_interval);
                let result = match open_session(&mut self.session, &self.target).await {
                    Ok(session) => {
                        let fast = if simple(batch) {
                            run_fast(session, batch, known, &self.streams, announce, delay).await
                        } else {
                            Ok(None)
                        };
                        match fast {
                            Ok(Some(committed)) => Ok(committed),
                            // Not simple after all, or refused by a unique
                            // index (a stored id: a retry; a revision or a
                            // stream written meanwhile) or a value refused:
                            // decided in full below.
                            Ok(None) | Err(Failure::Database(_)) => {
                                run_batch(session, batch, announce, delay).await
                            }
                            Err(unavailable) => Err(unavailable),
                        }
                    }
                    Err(error) => Err(Failure::Unavailable {
                        commit_sent: false,
                        error,
                    }),
                };
                let error = match result {
                    Ok(committed) => {
                        // What a failed batch leaves behind is no news:
                        // every revision remembered is still stored.
                        for ((request, outcome), stream_id) in batch
                            .iter()
                            .zip(&committed.outcomes)
                            .zip(&committed.stream_ids)
                        {
                            learn(&mut self.streams, request.stream(), outcome, *stream_id);
                        }
                        self.known = Some(committed.end);
                        if committed.wrote {
                            self.heads.send_modify(|head| *head += 1);
                            if announce {
                                self.announced = Some(Instant::now());
                                self.unannounced = None;
                            } else {
                                self.unannounced = Some((committed.end.0, Instant::now()));
                            }
                        }
                        for (request, outcome) in batch.drain(..).zip(committed.outcomes) {
                            request.answer(outcome);
                        }
                        return;
                    }
                    Err(Failure::Database(error)) => {
                        self.rollback().await;
                        if batch.len() == 1 {
                            if let Some(request) = batch.pop() {
                                request.answer(Err(error));
                            }
                            return;
                        }
                        // One request poisons the batch: each alone.
                        tracing::warn!(%error, "a batch was refused; its appends run one by one");
                        for request in std::mem::take(batch) {
                            self.commit(&mut vec![request]).await;
                        }
                        return;
                    }
                    Err(Failure::Unavailable { commit_sent, error }) => {
                        self.session = None;
                        if commit_sent {
                            let (tombstones, appends) = std::mem::take(batch)
                                .into_iter()
                                .partition(|r| matches!(r, Request::Tombstone { .. }));
                            *batch = appends;
                            for request in tombstones {
                                request.answer(Err(StoreError::Unavailable(format!(
                                    "{error}; the tombstone may or may not be committed"
                                ))));
                            }
                        }
                        error
                    }
                };
                if batch.is_empty() {
                    return;
                }
                if started.elapsed() >= self.options.outage_timeout {
                    let message = error.to_string();
                    for request in batch.drain(..) {
                        request.answer(Err(StoreError::Unavailable(message.clone())));
                    }
                    return;
                }
                tracing::warn!(%error, "PostgreSQL is out of reach; the writer retries");
                tokio::time::sleep(backoff.next()).await;
            }
        })
    }

    /// Notify other processes that the log reaches `head`, on the session
    /// there is: without one, their polling finds it.
    async fn announce(&mut self, head: i64) {
        self.announced = Some(Instant::now());
        self.unannounced = None;
        let Some(session) = self.session.as_ref().filter(|s| !s.client.is_closed()) else {
            return;
        };
        let head = head.to_string();
        let params: [&(dyn ToSql + Sync); 2] = [&CHANNEL, &head];
        if let Err(error) = session
            .client
            .execute(&session.statements.notify, &params)
            .await
        {
            tracing::debug!(%error, "a notification of new events was not sent");
        }
    }

    async fn rollback(&mut self) {
        if let Some(session) = &self.session
            && session.client.batch_execute("ROLLBACK").await.is_err()
        {
            self.session = None;
        }
    }
}

/// The session in `slot`, opened anew when there is none or it was lost.
async fn open_session<'s>(
    slot: &'s mut Option<Session>,
    target: &Target,
) -> Result<&'s Session, StoreError> {
    if slot.as_ref().is_none_or(|s| s.client.is_closed()) {
        *slot = Some(Session::open(target).await?);
    }
    slot.as_ref()
        .ok_or_else(|| StoreError::Backend("no writer session".to_owned()))
}

/// A stream's state as the batch sees it.
#[derive(Clone, Copy)]
struct Head {
    stream_id: i64,
    deleted: bool,
    current: CurrentRevision,
}

/// An event id already stored, or written earlier in this batch.
struct Stored {
    stream_id: i64,
    revision: i64,
    position: i64,
    content: Content,
}

enum Content {
    Database {
        type_name: String,
        schema_version: i32,
        payload: Vec<u8>,
    },
    Batch {
        request: usize,
        event: usize,
    },
}

/// The columns of the events a batch inserts.
#[derive(Default)]
struct Rows<'a> {
    position: Vec<i64>,
    stream_id: Vec<i64>,
    revision: Vec<i64>,
    event_id: Vec<Uuid>,
    type_name: Vec<&'a str>,
    schema_version: Vec<i32>,
    metadata: Vec<&'a [u8]>,
    payload: Vec<&'a [u8]>,
    /// The stream's name, for the chain.
    stream: Vec<&'a str>,
    /// Each event's hash-chain link, computed once the batch is decided.
    chain: Vec<Vec<u8>>,
}

impl Rows<'_> {
    /// Link every row after `previous` (the last stored link), as
    /// recorded at `recorded_at`.
    fn link(&mut self, previous: store::chain::Link, recorded_at: i64) {
        self.chain = chain_links(previous, self.position.len(), |n| {
            store::chain::ChainedEvent {
                position: self.position[n] as u64,
                stream: self.stream[n],
                revision: self.revision[n] as u64,
                id: self.event_id[n].as_bytes(),
                type_name: self.type_name[n],
                schema_version: self.schema_version[n] as u16,
                recorded_at_micros: recorded_at,
                metadata: self.metadata[n],
                payload: self.payload[n],
            }
        });
    }
}

/// The links of `count` events, the `n`th described by `event(n)`, one
/// after the other from `previous`, as stored.
fn chain_links<'e>(
    mut previous: store::chain::Link,
    count: usize,
    event: impl Fn(usize) -> store::chain::ChainedEvent<'e>,
) -> Vec<Vec<u8>> {
    (0..count)
        .map(|n| {
            previous = store::chain::link(&previous, &event(n));
            previous.to_vec()
        })
        .collect()
}

/// What a committed batch answers.
struct Committed {
    /// Each request's outcome.
    outcomes: Vec<Result<Outcome, StoreError>>,
    /// Whether it wrote.
    wrote: bool,
    /// The log's end after it.
    end: Known,
    /// Each request's stream id, where the batch found one.
    stream_ids: Vec<Option<i64>>,
}

/// Remember what `outcome` says of `stream` (whose id is `stream_id`): an
/// append's last revision is stored for good; a tombstone or a failure
/// says nothing worth keeping.
fn learn(
    streams: &mut HashMap<String, (i64, i64)>,
    stream: &str,
    outcome: &Result<Outcome, StoreError>,
    stream_id: Option<i64>,
) {
    let (Ok(Outcome::Appended(result)), Some(id)) = (outcome, stream_id) else {
        streams.remove(stream);
        return;
    };
    let Ok(last) = i64::try_from(result.next_expected_revision) else {
        return;
    };
    if let Some(known) = streams.get_mut(stream) {
        *known = (id, known.1.max(last));
        return;
    }
    if streams.len() >= KNOWN_STREAMS {
        streams.clear();
    }
    streams.insert(stream.to_owned(), (id, last));
}

async fn run_batch(
    session: &Session,
    batch: &[Request],
    announce: bool,
    delay_micros: Option<u128>,
) -> Result<Committed, Failure> {
    let client = &session.client;
    let statements = &session.statements;
    let mut names: Vec<&str> = batch.iter().map(Request::stream).collect();
    names.sort_unstable();
    names.dedup();
    let ids: Vec<Uuid> = batch
        .iter()
        .flat_map(|request| match request {
            Request::Append { events, .. } => events.iter().map(|event| event.id).collect(),
            Request::Tombstone { .. } => Vec::new(),
        })
        .collect();
    let lock_params: [&(dyn ToSql + Sync); 1] = [&APPEND_LOCK];
    let name_params: [&(dyn ToSql + Sync); 1] = [&names];
    let id_params: [&(dyn ToSql + Sync); 1] = [&ids];
    let (_, _, _, max_position, head_rows, stored_rows) = futures::try_join!(
        client.batch_execute("BEGIN"),
        client.execute(&statements.lock, &lock_params),
        client.execute(&statements.create_streams, &name_params),
        client.query_opt(&statements.max_position, &[]),
        client.query(&statements.heads, &name_params),
        client.query(&statements.stored, &id_params),
    )
    .map_err(failure(false))?;

    let mut heads = HashMap::with_capacity(head_rows.len());
    for row in &head_rows {
        let name: &str = row.get(0);
        let last: Option<i64> = row.get(3);
        heads.insert(
            name.to_owned(),
            Head {
                stream_id: row.get(1),
                deleted: row.get(2),
                current: last.map_or(CurrentRevision::NoStream, |r| {
                    CurrentRevision::Current(r as u64)
                }),
            },
        );
    }
    let mut stored = HashMap::with_capacity(stored_rows.len() + ids.len());
    for row in stored_rows {
        stored.insert(
            row.get::<_, Uuid>(0),
            Stored {
                stream_id: row.get(1),
                revision: row.get(2),
                position: row.get(3),
                content: Content::Database {
                    type_name: row.get(4),
                    schema_version: row.get(5),
                    payload: row.get(6),
                },
            },
        );
    }
    let (first_position, last_link): (i64, store::chain::Link) = match max_position {
        None => (0, store::chain::genesis()),
        Some(row) => {
            let link: Vec<u8> = row.get(1);
            let position: i64 = row.get(0);
            let link = store::chain::stored_link(&link).ok_or_else(|| {
                Failure::Database(StoreError::Backend(format!(
                    "corrupt chain link at position {position}"
                )))
            })?;
            (position, link)
        }
    };
    let mut rows = Rows::default();
    let mut tombstoned = Vec::new();
    let outcomes = decide(
        batch,
        &mut heads,
        &mut stored,
        first_position + 1,
        &mut rows,
        &mut tombstoned,
    );

    let stream_ids = batch
        .iter()
        .map(|request| heads.get(request.stream()).map(|head| head.stream_id))
        .collect();
    if rows.position.is_empty() && tombstoned.is_empty() {
        client
            .batch_execute("ROLLBACK")
            .await
            .map_err(failure(false))?;
        return Ok(Committed {
            outcomes,
            wrote: false,
            end: (first_position, last_link),
            stream_ids,
        });
    }
    if let Some(micros) = delay_micros {
        tokio::time::sleep(Duration::from_micros(micros as u64)).await;
    }
    let head = rows.position.last().copied().unwrap_or(first_position);
    let recorded_at = now_micros();
    rows.link(last_link, recorded_at.timestamp_micros());
    let head_text = head.to_string();
    let params: [&(dyn ToSql + Sync); 10] = [
        &rows.position,
        &rows.stream_id,
        &rows.revision,
        &rows.event_id,
        &rows.type_name,
        &rows.schema_version,
        &rows.metadata,
        &rows.payload,
        &recorded_at,
        &rows.chain,
    ];
    let tombstone_params: [&(dyn ToSql + Sync); 1] = [&tombstoned];
    let notify_params: [&(dyn ToSql + Sync); 2] = [&CHANNEL, &head_text];
    type Step<'s> = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 's>>;
    let mut second: Vec<Step<'_>> = Vec::new();
    if !rows.position.is_empty() {
        let insert = client.execute(&statements.insert, &params);
        second.push(Box::pin(async move { insert.await.map(drop) }));
    }
    if !tombstoned.is_empty() {
        let update = client.execute(&statements.tombstone, &tombstone_params);
        second.push(Box::pin(async move { update.await.map(drop) }));
    }
    if announce {
        let notify = client.execute(&statements.notify, &notify_params);
        second.push(Box::pin(async move { notify.await.map(drop) }));
    }
    second.push(Box::pin(client.batch_execute("COMMIT")));
    try_join_all(second).await.map_err(failure(true))?;
    let end = rows
        .chain
        .last()
        .and_then(|link| store::chain::stored_link(link))
        .map_or((first_position, last_link), |link| (head, link));
    Ok(Committed {
        outcomes,
        wrote: true,
        end,
        stream_ids,
    })
}

/// Whether the fast path may take `batch`: appends only, each to another
/// stream.
fn simple(batch: &[Request]) -> bool {
    let mut names = std::collections::HashSet::with_capacity(batch.len());
    batch
        .iter()
        .all(|request| matches!(request, Request::Append { .. }) && names.insert(request.stream()))
}

/// The batch in one round trip (`caseledger_append_fast`); `None` when the
/// function found an append that is not simple and wrote no event. With
/// the log's end `known` and every append's first revision implied by its
/// expected revision, the links go along, computed here; the function uses
/// them when the log still ends there, and links the events itself when not.
/// When `streams` (what this writer remembers) decides every append, the
/// stream ids go along too, and the function writes without checking
/// (module documentation).
async fn run_fast(
    session: &Session,
    batch: &[Request],
    known: Option<Known>,
    streams: &HashMap<String, (i64, i64)>,
    announce: bool,
    delay_micros: Option<u128>,
) -> Result<Option<Committed>, Failure> {
    let client = &session.client;
    let mut names = Vec::with_capacity(batch.len());
    let mut kinds = Vec::with_capacity(batch.len());
    let mut revisions = Vec::with_capacity(batch.len());
    let mut firsts = Some(Vec::with_capacity(batch.len()));
    let (mut requests, mut offsets, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    let (mut type_names, mut versions) = (Vec::new(), Vec::new());
    let (mut metadata, mut payloads) = (Vec::new(), Vec::new());
    let mut counts = Vec::with_capacity(batch.len());
    // Each append's stream id (None: a new stream) and first revision, as
    // long as what this writer remembers decides every append so far.
    let mut vouched = Some((
        Vec::with_capacity(batch.len()),
        Vec::with_capacity(batch.len()),
    ));
    for (index, request) in batch.iter().enumerate() {
        let Request::Append {
            stream,
            expected,
            events,
            ..
        } = request
        else {
            return Ok(None);
        };
        names.push(stream.as_str());
        let (kind, revision) = match *expected {
            ExpectedRevision::Any => (0i16, 0i64),
            ExpectedRevision::NoStream => (1, 0),
            ExpectedRevision::StreamExists => (2, 0),
            ExpectedRevision::Exact(revision) => (3, i64::try_from(revision).unwrap_or(-2)),
        };
        kinds.push(kind);
        revisions.push(revision);
        let first = match kind {
            1 => Some(0),
            3 => revision.checked_add(1).filter(|&first| first > 0),
            _ => None,
        };
        firsts = firsts.zip(first).map(|(mut firsts, first)| {
            firsts.push(first);
            firsts
        });
        let remembered = streams.get(stream.as_str()).copied();
        let decided = match (*expected, remembered) {
            (ExpectedRevision::Any | ExpectedRevision::StreamExists, Some((id, last))) => {
                Some((Some(id), last + 1))
            }
            (ExpectedRevision::Exact(expected), Some((id, last)))
                if i64::try_from(expected) == Ok(last) =>
            {
                Some((Some(id), last + 1))
            }
            // Taken to be new; a name already taken is refused.
            (ExpectedRevision::Any | ExpectedRevision::NoStream, None) => Some((None, 0)),
            _ => None,
        };
        vouched = vouched
            .zip(decided)
            .map(|((mut ids, mut firsts), (id, first))| {
                ids.push(id);
                firsts.push(first);
                (ids, firsts)
            });
        counts.push(events.len());
        for (offset, event) in events.iter().enumerate() {
            requests.push(index as i32 + 1);
            offsets.push(offset as i32);
            ids.push(event.id);
            type_names.push(event.type_name.as_str());
            versions.push(event.schema_version);
            metadata.push(&event.metadata[..]);
            payloads.push(&event.payload[..]);
        }
    }
    let recorded_at = now_micros();
    let channel = announce.then_some(CHANNEL);
    let known_streams = match vouched {
        Some((ids, vouched_firsts)) => {
            firsts = Some(vouched_firsts);
            Some(ids)
        }
        None => None,
    };
    let (known_head, known_link, links) = match (known, &firsts) {
        (Some((head, link)), Some(firsts)) => {
            let links = chain_links(link, ids.len(), |n| {
                let request = requests[n] as usize - 1;
                store::chain::ChainedEvent {
                    position: (head + 1 + n as i64) as u64,
                    stream: names[request],
                    revision: (firsts[request] + i64::from(offsets[n])) as u64,
                    id: ids[n].as_bytes(),
                    type_name: type_names[n],
                    schema_version: versions[n] as u16,
                    recorded_at_micros: recorded_at.timestamp_micros(),
                    metadata: metadata[n],
                    payload: payloads[n],
                }
            });
            (Some(head), Some(link.to_vec()), Some(links))
        }
        _ => (None, None, None),
    };
    let params: [&(dyn ToSql + Sync); 18] = [
        &APPEND_LOCK,
        &names,
        &kinds,
        &revisions,
        &requests,
        &offsets,
        &ids,
        &type_names,
        &versions,
        &metadata,
        &payloads,
        &recorded_at,
        &channel,
        &known_head,
        &known_link,
        &firsts,
        &links,
        &known_streams,
    ];
    let row = match delay_micros {
        // One statement, its own transaction: committed before the answer.
        None => client
            .query_one(&session.statements.fast, &params)
            .await
            .map_err(failure(true))?,
        Some(micros) => {
            let started = futures::try_join!(
                client.batch_execute("BEGIN"),
                client.query_one(&session.statements.fast, &params),
            );
            let (_, row) = match started {
                Ok(started) => started,
                Err(error) => {
                    // End the aborted transaction before the full path.
                    let _ = client.batch_execute("ROLLBACK").await;
                    return Err(failure(false)(error));
                }
            };
            tokio::time::sleep(Duration::from_micros(micros as u64)).await;
            client
                .batch_execute("COMMIT")
                .await
                .map_err(failure(true))?;
            row
        }
    };
    let Some(heads) = row.get::<_, Option<Vec<i64>>>(0) else {
        return Ok(None);
    };
    let Some((&head, firsts)) = heads.split_first() else {
        return Ok(None);
    };
    let last_link = row
        .get::<_, Option<Vec<u8>>>(1)
        .as_deref()
        .and_then(store::chain::stored_link)
        .ok_or_else(|| {
            Failure::Database(StoreError::Backend(
                "the append function returned no link".to_owned(),
            ))
        })?;
    let stream_ids: Vec<Option<i64>> = row
        .get::<_, Option<Vec<Option<i64>>>>(2)
        .unwrap_or_default();
    let mut position = head;
    let outcomes = counts
        .iter()
        .zip(firsts)
        .map(|(&count, &first)| {
            position += count as i64;
            Ok(Outcome::Appended(AppendResult {
                next_expected_revision: (first + count as i64 - 1) as u64,
                position: position as u64,
            }))
        })
        .collect();
    Ok(Some(Committed {
        outcomes,
        wrote: true,
        end: (position, last_link),
        stream_ids,
    }))
}

fn now_micros() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    let micros = now.timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros).unwrap_or(now)
}

fn mismatch(stream: &str) -> StoreError {
    StoreError::IdempotencyMismatch {
        stream: stream.to_owned(),
    }
}

/// Decide every request in order against the heads and stored ids, filling
/// `rows` and `tombstoned` with what the successful ones write.
fn decide<'a>(
    batch: &'a [Request],
    heads: &mut HashMap<String, Head>,
    stored: &mut HashMap<Uuid, Stored>,
    mut next_position: i64,
    rows: &mut Rows<'a>,
    tombstoned: &mut Vec<i64>,
) -> Vec<Result<Outcome, StoreError>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    for (index, request) in batch.iter().enumerate() {
        let Some(head) = heads.get_mut(request.stream()) else {
            outcomes.push(Err(StoreError::Backend(format!(
                "the row of stream {} is missing",
                request.stream()
            ))));
            continue;
        };
        if head.deleted {
            outcomes.push(Err(StoreError::StreamDeleted {
                stream: request.stream().to_owned(),
            }));
            continue;
        }
        match request {
            Request::Tombstone {
                stream, expected, ..
            } => {
                outcomes.push(check_expected(stream, *expected, head.current).map(|()| {
                    head.deleted = true;
                    tombstoned.push(head.stream_id);
                    Outcome::Tombstoned
                }));
            }
            Request::Append {
                stream,
                expected,
                events,
                ..
            } => {
                let retry = |stored: &HashMap<Uuid, Stored>| {
                    original_result(batch, stream, head.stream_id, events, stored)
                };
                if let Err(conflict) = check_expected(stream, *expected, head.current) {
                    outcomes.push(
                        retry(stored)
                            .and_then(|found| found.ok_or(conflict))
                            .map(Outcome::Appended),
                    );
                    continue;
                }
                if stored.contains_key(&events[0].id) {
                    outcomes.push(
                        retry(stored)
                            .and_then(|found| found.ok_or_else(|| mismatch(stream)))
                            .map(Outcome::Appended),
                    );
                    continue;
                }
                if events[1..]
                    .iter()
                    .any(|event| stored.contains_key(&event.id))
                {
                    outcomes.push(Err(mismatch(stream)));
                    continue;
                }
                let first_revision = match head.current {
                    CurrentRevision::NoStream => 0,
                    CurrentRevision::Current(last) => last as i64 + 1,
                };
                for (offset, event) in events.iter().enumerate() {
                    let revision = first_revision + offset as i64;
                    rows.position.push(next_position);
                    rows.stream_id.push(head.stream_id);
                    rows.revision.push(revision);
                    rows.event_id.push(event.id);
                    rows.type_name.push(&event.type_name);
                    rows.schema_version.push(event.schema_version);
                    rows.metadata.push(&event.metadata);
                    rows.payload.push(&event.payload);
                    rows.stream.push(stream);
                    stored.insert(
                        event.id,
                        Stored {
                            stream_id: head.stream_id,
                            revision,
                            position: next_position,
                            content: Content::Batch {
                                request: index,
                                event: offset,
                            },
                        },
                    );
                    next_position += 1;
                }
                let last = first_revision + events.len() as i64 - 1;
                head.current = CurrentRevision::Current(last as u64);
                outcomes.push(Ok(Outcome::Appended(AppendResult {
                    next_expected_revision: last as u64,
                    position: (next_position - 1) as u64,
                })));
            }
        }
    }
    outcomes
}

/// The original result when `events` is a retry of an append already
/// stored (or written earlier in the batch): every id stored in this stream,
/// one after the other, with the same content. `Ok(None)` when the first id
/// is new.
fn original_result(
    batch: &[Request],
    stream: &str,
    stream_id: i64,
    events: &[PreparedEvent],
    stored: &HashMap<Uuid, Stored>,
) -> Result<Option<AppendResult>, StoreError> {
    let Some(first) = stored.get(&events[0].id) else {
        return Ok(None);
    };
    let mut last = first;
    for (offset, event) in events.iter().enumerate() {
        match stored.get(&event.id) {
            Some(found)
                if found.stream_id == stream_id
                    && found.revision == first.revision + offset as i64
                    && same_content(batch, &found.content, event) =>
            {
                last = found;
            }
            _ => return Err(mismatch(stream)),
        }
    }
    Ok(Some(AppendResult {
        next_expected_revision: last.revision as u64,
        position: last.position as u64,
    }))
}

fn same_content(batch: &[Request], content: &Content, event: &PreparedEvent) -> bool {
    match content {
        Content::Database {
            type_name,
            schema_version,
            payload,
        } => {
            *type_name == event.type_name
                && *schema_version == event.schema_version
                && payload[..] == event.payload[..]
        }
        Content::Batch { request, event: at } => match &batch[*request] {
            Request::Append { events, .. } => {
                let earlier = &events[*at];
                earlier.type_name == event.type_name
                    && earlier.schema_version == event.schema_version
                    && earlier.payload == event.payload
            }
            Request::Tombstone { .. } => false,
        },
    }
}
