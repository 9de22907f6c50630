//! Appends and reads on PostgreSQL, one run against the server named by
//! `CASELEDGER_TEST_POSTGRES`, each phase on a fresh database:
//! (a) raw tokio-postgres inserts of the same rows, 1 and 64 per transaction;
//! (b1) one writer's append latency through the port, p50/p99;
//! (b64) 64 concurrent writers, one event per append, events/s;
//! (c) `read_all` + `migrations::decode` of the system's own mix
//! (`test_support::workload`), events/s with the reader on one core.
//! `BENCH_READ_ONLY=1` runs (c) alone.
//!
//! (b64) beside a published library's PostgreSQL store (cqrs-es with
//! postgres-es), same appends on the same server: `peer-bench/`, a crate
//! outside the workspace build (`cargo run --release --manifest-path
//! peer-bench/Cargo.toml`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimalloc::MiMalloc;
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};
use store_postgres::{PostgresOptions, PostgresStore};
use support::TestDatabase;
use test_support::workload::{Targets, Workload};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const ROUNDS: usize = 5;
const SINGLE_COMMITS: usize = 500;
const BATCHED_COMMITS: usize = 100;
const WRITERS: usize = 64;
const APPENDS_PER_WRITER: usize = 40;
const READ_EVENTS: usize = 200_000;

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "account:0190c0de-0000-7000-8000-000000000000".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: chrono::Utc::now(),
    }
}

/// A registration-sized event (about 135 payload bytes).
fn new_event(i: usize) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        type_name: "RegistrationStarted".to_owned(),
        schema_version: 1,
        metadata: metadata(),
        payload: (0..135).map(|b| (b as u8) ^ (i as u8)).collect(),
    }
}

async fn raw_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// A database with the adapter's schema.
async fn fresh_database() -> TestDatabase {
    let database = TestDatabase::create("caseledger_bench");
    drop(
        PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("create the schema"),
    );
    database
}

const RAW_INSERT: &str = "INSERT INTO caseledger_events (position, stream_id, revision, event_id, \
     type_name, schema_version, recorded_at, metadata, payload, chain) \
     SELECT p, s, 0, i, 'RegistrationStarted', 1, $6, m, d, c FROM unnest($1::int8[], \
     $2::int8[], $3::uuid[], $4::bytea[], $5::bytea[], $7::bytea[]) AS u(p, s, i, m, d, c)";

/// The hash-chain links of `events` (ADR 8) after `previous`, at
/// `positions`, each in a stream named by its position, as the store
/// computes them: the raw rows carry the same work and bytes.
fn raw_links(
    previous: &mut store::chain::Link,
    positions: &[i64],
    events: &[NewEvent],
    metadata: &[u8],
    recorded_at_micros: i64,
) -> Vec<Vec<u8>> {
    positions
        .iter()
        .zip(events)
        .map(|(&position, event)| {
            *previous = store::chain::link(
                previous,
                &store::chain::ChainedEvent {
                    position: position as u64,
                    stream: &position.to_string(),
                    revision: 0,
                    id: event.id.as_bytes(),
                    type_name: &event.type_name,
                    schema_version: event.schema_version,
                    recorded_at_micros,
                    metadata,
                    payload: &event.payload,
                },
            );
            previous.to_vec()
        })
        .collect()
}

/// (a): `rows` rows per transaction, `commits` times, positions from
/// `first`; the duration of each.
async fn raw_inserts(url: &str, rows: usize, commits: usize, first: i64) -> Vec<Duration> {
    let client = raw_client(url).await;
    let insert = client.prepare(RAW_INSERT).await.expect("prepare");
    let metadata = store::encode_metadata(&metadata());
    let mut next = first;
    let mut previous = store::chain::genesis();
    let mut took = Vec::with_capacity(commits);
    for _ in 0..commits {
        let events: Vec<NewEvent> = (0..rows).map(new_event).collect();
        let positions: Vec<i64> = (next..next + rows as i64).collect();
        next += rows as i64;
        let started = Instant::now();
        let recorded_at = chrono::Utc::now();
        let chain = raw_links(
            &mut previous,
            &positions,
            &events,
            &metadata,
            recorded_at.timestamp_micros(),
        );
        let ids: Vec<Uuid> = events.iter().map(|event| event.id).collect();
        let metadata: Vec<&[u8]> = events.iter().map(|_| &metadata[..]).collect();
        let payloads: Vec<&[u8]> = events.iter().map(|event| &event.payload[..]).collect();
        let params: [&(dyn ToSql + Sync); 7] = [
            &positions,
            &positions,
            &ids,
            &metadata,
            &payloads,
            &recorded_at,
            &chain,
        ];
        futures::try_join!(
            client.batch_execute("BEGIN"),
            client.execute(&insert, &params),
            client.batch_execute("COMMIT"),
        )
        .expect("raw transaction");
        took.push(started.elapsed());
    }
    took
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// (b1): sequential appends of one event to a new stream.
async fn one_writer(store: &PostgresStore, round: usize) -> Vec<Duration> {
    let mut took = Vec::with_capacity(SINGLE_COMMITS / ROUNDS);
    for i in 0..SINGLE_COMMITS / ROUNDS {
        let stream = format!("b1-{round}-{i}");
        let started = Instant::now();
        store
            .append(&stream, ExpectedRevision::NoStream, vec![new_event(i)])
            .await
            .expect("append");
        took.push(started.elapsed());
    }
    took
}

/// (b64): 64 writers, each on its own stream, one event per append.
async fn many_writers(store: Arc<PostgresStore>, round: usize) -> (usize, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let stream = format!("b64-{round}-{writer}");
                for i in 0..APPENDS_PER_WRITER {
                    let expected = match i {
                        0 => ExpectedRevision::NoStream,
                        i => ExpectedRevision::Exact(i as u64 - 1),
                    };
                    store
                        .append(&stream, expected, vec![new_event(i)])
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer");
    }
    (WRITERS * APPENDS_PER_WRITER, started.elapsed())
}

/// `count` events of the system's own mix, written raw in commits of 10 000.
async fn fill_mixed(url: &str, count: usize) -> f64 {
    let client = raw_client(url).await;
    let insert_streams = client
        .prepare(
            "INSERT INTO caseledger_streams (stream_id, name) OVERRIDING SYSTEM VALUE \
             SELECT * FROM unnest($1::int8[], $2::text[])",
        )
        .await
        .expect("prepare");
    let insert = client
        .prepare(
            "INSERT INTO caseledger_events (position, stream_id, revision, event_id, type_name, \
             schema_version, recorded_at, metadata, payload, chain) \
             SELECT p, s, r, i, t, v, now(), m, d, sha256(d) \
             FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::uuid[], $5::text[], \
             $6::int4[], $7::bytea[], $8::bytea[]) AS u(p, s, r, i, t, v, m, d)",
        )
        .await
        .expect("prepare");
    let metadata = store::encode_metadata(&metadata());
    let mut workload = Workload::new(
        0x5eed_2026,
        Targets {
            accounts: count / 10,
            applications: count * 3 / 10,
        },
    );
    let mut streams: HashMap<String, (i64, i64)> = HashMap::new();
    let mut written = 0;
    let mut payload_bytes = 0usize;
    while written < count {
        let mut chunk = workload.take(10_000.min(count - written));
        chunk.truncate(count - written);
        let (mut new_ids, mut new_names) = (Vec::new(), Vec::new());
        let mut columns: (Vec<i64>, Vec<i64>, Vec<i64>, Vec<Uuid>) = Default::default();
        let (mut types, mut versions, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
        for (_, stream, event) in chunk {
            let next_id = streams.len() as i64 + 1;
            let head = streams.entry(stream.clone()).or_insert_with(|| {
                new_ids.push(next_id);
                new_names.push(stream);
                (next_id, 0)
            });
            let encoded = migrations::encode(&event);
            written += 1;
            columns.0.push(written as i64);
            columns.1.push(head.0);
            columns.2.push(head.1);
            columns.3.push(Uuid::now_v7());
            types.push(encoded.type_name);
            versions.push(i32::from(encoded.schema_version));
            payload_bytes += encoded.payload.len();
            payloads.push(encoded.payload);
            head.1 += 1;
        }
        let metadata: Vec<&[u8]> = payloads.iter().map(|_| &metadata[..]).collect();
        let payloads: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        client
            .execute(&insert_streams, &[&new_ids, &new_names])
            .await
            .expect("streams");
        client
            .execute(
                &insert,
                &[
                    &columns.0, &columns.1, &columns.2, &columns.3, &types, &versions, &metadata,
                    &payloads,
                ],
            )
            .await
            .expect("events");
    }
    for table in ["caseledger_events", "caseledger_streams"] {
        client
            .batch_execute(&format!("VACUUM ANALYZE {table}"))
            .await
            .expect("vacuum");
    }
    payload_bytes as f64 / count as f64
}

/// (c): the whole log, page by page, every event decoded; events/s.
async fn read_and_decode(store: &PostgresStore) -> (usize, Duration) {
    let started = Instant::now();
    let mut after = 0;
    let mut events = 0;
    loop {
        let page = store.read_all(after, 4096).await.expect("read all");
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            let decoded =
                migrations::decode(&event.type_name, event.schema_version, &event.payload)
                    .expect("decode");
            std::hint::black_box(&decoded);
        }
        events += page.len();
    }
    (events, started.elapsed())
}

/// Run `work` on a current-thread runtime on a thread pinned to one core.
fn on_one_core<T: Send>(work: impl AsyncFnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                if let Some(core) =
                    core_affinity::get_core_ids().and_then(|ids| ids.last().copied())
                {
                    core_affinity::set_for_current(core);
                }
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(work())
            })
            .join()
            .expect("one-core thread")
    })
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // (a), (b1) and (b64) in alternating rounds on two databases, so
        // that the disk's ups and downs fall on both sides alike.
        if std::env::var_os("BENCH_READ_ONLY").is_none() {
            appends().await;
        }
        reads().await;
    });
}

async fn appends() {
    let raw = fresh_database().await;
    let database = fresh_database().await;
    let store = Arc::new(
        PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("connect"),
    );
    let (mut single, mut latencies) = (Vec::new(), Vec::new());
    let (mut batched, mut concurrent) = (Vec::new(), Vec::new());
    let mut raw_position = 1;
    for round in 0..ROUNDS {
        single.extend(raw_inserts(&raw.url, 1, SINGLE_COMMITS / ROUNDS, raw_position).await);
        raw_position += (SINGLE_COMMITS / ROUNDS) as i64;
        latencies.extend(one_writer(&store, round).await);
        let took = raw_inserts(&raw.url, 64, BATCHED_COMMITS / ROUNDS, raw_position).await;
        raw_position += (64 * BATCHED_COMMITS / ROUNDS) as i64;
        batched.push((64 * took.len()) as f64 / took.iter().sum::<Duration>().as_secs_f64());
        let (events, took) = many_writers(Arc::clone(&store), round).await;
        concurrent.push(events as f64 / took.as_secs_f64());
    }
    single.sort();
    latencies.sort();
    let median = |rates: &mut Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let (batched_rate, concurrent_rate) = (median(&mut batched), median(&mut concurrent));
    println!(
        "(a)   raw single-row commit: p50 {:.2} ms, p99 {:.2} ms; raw 64-row commits: {:.0} rows/s (median of {ROUNDS} rounds)",
        ms(percentile(&single, 0.5)),
        ms(percentile(&single, 0.99)),
        batched_rate
    );
    let p50 = percentile(&latencies, 0.5);
    println!(
        "(b1)  one writer: p50 {:.2} ms, p99 {:.2} ms; p50 / raw single-row p50 = {:.2} (target <= 1.5)",
        ms(p50),
        ms(percentile(&latencies, 0.99)),
        p50.as_secs_f64() / percentile(&single, 0.5).as_secs_f64()
    );
    println!(
        "(b64) {WRITERS} writers: {concurrent_rate:.0} events/s (median of {ROUNDS} rounds); \
             / raw 64-row commits = {:.2} (target >= 0.7)",
        concurrent_rate / batched_rate
    );
    drop(store);
    drop(database);
    drop(raw);
}

async fn reads() {
    let database = TestDatabase::create("caseledger_bench");
    let url = database.url.clone();
    drop(
        PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .expect("schema"),
    );
    let payload_bytes = fill_mixed(&url, READ_EVENTS).await;
    // Each run on a new store: the first pass meets every stream name for
    // the first time (a rebuild from zero), the second has them cached (a
    // consumer that follows the log).
    let runs: Vec<(f64, f64)> = (0..3)
        .map(|_| {
            let url = url.clone();
            on_one_core(async move || {
                let store = PostgresStore::connect(&url, PostgresOptions::default())
                    .await
                    .expect("connect");
                let (events, cold) = read_and_decode(&store).await;
                let (_, warm) = read_and_decode(&store).await;
                (
                    events as f64 / cold.as_secs_f64(),
                    events as f64 / warm.as_secs_f64(),
                )
            })
        })
        .collect();
    let cold = runs.iter().map(|run| run.0).fold(0f64, f64::max);
    let warm = runs.iter().map(|run| run.1).fold(0f64, f64::max);
    println!(
        "(c)   read_all + migrations::decode, reader on one core: {:.2} M events/s with the stream \
         names cached, {:.2} M events/s meeting every name first (best of 3, {READ_EVENTS} events \
         of the system's mix, {payload_bytes:.0}-byte payloads; target >= 0.5)",
        warm / 1e6,
        cold / 1e6
    );
    drop(database);
}
