//! Throughput and latency of the embedded event store against raw rusqlite
//! on the same schema and disk; prints a markdown report.
//!
//! Run with `cargo bench -p store --bench append`. Phases:
//! - (a) raw rusqlite, no port, no checks, no group commit: 64 rows per
//!   transaction, and single-row transactions (their median commit time);
//! - (b) `SqliteStore` through the port, one event per append, random
//!   streams, each append with its exact expected revision, 1 writer and
//!   64 concurrent writers;
//! - (c) `read_all` + decode of 1 M events (of two logs, below), with the
//!   runtime's threads free to move between cores and with every thread
//!   pinned to one core (the target is for one core: pinned, a page read on
//!   the blocking pool is decoded from the same core's caches).
//!
//! Every phase runs on a fresh file in a temp dir, durable
//! (`synchronous=FULL`). Raw and port take turns, so that both meet the
//! disk in the same moods (its fsync time drifts over seconds): 100
//! single-event commits of (a), then 100 appends of (b1), and so on; a
//! tenth of the batched events of (a), then a tenth through (b64). Each
//! write phase runs in two rounds, on fresh files, and is reported over
//! both. Each read runs three times, the fastest reported.
//!
//! Phase (c) reads two logs: 1 M events of one type with a ~146-byte
//! payload over 10 000 streams, decoded by serde, and 1 M events of the
//! system's own mix (`test_support::workload`), decoded by its codec.
//!
//! Sizes can be scaled with `BENCH_EVENTS` (events of the batched write
//! phases, default 200 000) and `BENCH_READ_EVENTS` (default 1 000 000);
//! `BENCH_READ_ONLY=1` runs phase (c) alone, and `BENCH_READ_LOG=heavy` or
//! `mixed` with it one of its logs; `BENCH_READ_PATH=<file>` reads an
//! existing file filled by an earlier run (kept with
//! `BENCH_KEEP_READ_FILE=<file>`; the mixed log in `<file>-mixed`) instead
//! of filling one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use rand::seq::IndexedRandom;
use rusqlite::{Connection, params};
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent, RecordedEvent};
use test_support::workload::{Targets, Workload};
use uuid::Uuid;

/// The allocator the `caseledger` binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STREAMS: usize = 10_000;
const BATCH: usize = 64;
const WRITERS: usize = 64;
/// Single-event commits of (a) and of (b1), in each round.
const SINGLE_COMMITS: usize = 3_000;
/// Commits of (a), then appends of (b1), in turn.
const SINGLE_BLOCK: usize = 100;
/// Turns of (a) and (b64) in each round.
const BATCHED_BLOCKS: usize = 10;
const ROUNDS: usize = 2;
/// Events per `read_all` page: the page `subscribe_all` reads the log in.
const READ_PAGE: usize = 1024;
/// Measured passes of each kind of read; the fastest is reported.
const READ_ROUNDS: usize = 3;

/// A realistic event payload (~135-145 bytes as postcard).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct RegistrationStartedV1 {
    flow_id: Uuid,
    account_id: Uuid,
    email_key: [u8; 32],
    display_name: String,
    locale: String,
    code_hash: [u8; 32],
    started_at_micros: i64,
    expires_at_micros: i64,
    attempts_left: u8,
}

fn payload(rng: &mut impl Rng) -> Vec<u8> {
    let now = Utc::now().timestamp_micros();
    let event = RegistrationStartedV1 {
        flow_id: Uuid::now_v7(),
        account_id: Uuid::now_v7(),
        email_key: rng.random(),
        display_name: "Kari Nordmann-Olsen Berg".to_owned(),
        locale: "nb-NO".to_owned(),
        code_hash: rng.random(),
        started_at_micros: now,
        expires_at_micros: now + 600_000_000,
        attempts_left: 5,
    };
    postcard::to_stdvec(&event).expect("encode payload")
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "service:api".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: Some(Uuid::now_v7()),
        occurred_at: Utc::now(),
    }
}

/// The same bytes the adapter stores for metadata (its private wire struct
/// has this shape), so the raw baseline writes rows of the same size.
#[derive(serde::Serialize)]
struct MetadataRow {
    actor: String,
    correlation_id: [u8; 16],
    causation_id: Option<[u8; 16]>,
    occurred_at_seconds: i64,
    occurred_at_nanos: u32,
}

fn metadata_row(metadata: &EventMetadata) -> Vec<u8> {
    postcard::to_stdvec(&MetadataRow {
        actor: metadata.actor.to_string(),
        correlation_id: metadata.correlation_id.into_bytes(),
        causation_id: metadata.causation_id.map(Uuid::into_bytes),
        occurred_at_seconds: metadata.occurred_at.timestamp(),
        occurred_at_nanos: metadata.occurred_at.timestamp_subsec_nanos(),
    })
    .expect("encode metadata")
}

fn stream_names() -> Vec<String> {
    (0..STREAMS)
        .map(|_| format!("account-{}", Uuid::new_v4()))
        .collect()
}

fn new_event(rng: &mut impl Rng) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        type_name: "RegistrationStarted".to_owned(),
        schema_version: 1,
        metadata: metadata(),
        payload: payload(rng),
    }
}

/// A fresh file with the store's schema.
fn fresh_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    drop(SqliteStore::open(&path, SqliteOptions::default()).expect("create schema"));
    path
}

/// A raw connection configured like the store's writer.
fn raw_connection(path: &Path, synchronous: &str) -> Connection {
    let connection = Connection::open(path).expect("open raw");
    connection
        .execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};
             PRAGMA temp_store = MEMORY; PRAGMA cache_size = -32768;"
        ))
        .expect("pragmas");
    connection
}

/// A new stream row; its number.
fn insert_stream(connection: &Connection, name: &str) -> i64 {
    connection
        .prepare_cached("INSERT INTO streams (name) VALUES (?1)")
        .and_then(|mut s| s.execute([name]))
        .expect("insert stream");
    connection.last_insert_rowid()
}

/// One event row, laid out the way the store lays it out, with no checks.
fn insert_row(
    connection: &Connection,
    (stream_id, revision): (i64, i64),
    id: Uuid,
    type_name: &str,
    schema_version: u16,
    metadata: &[u8],
    payload: &[u8],
) {
    connection
        .prepare_cached(
            "INSERT INTO events (stream_id, revision, event_id, type_name, schema_version, \
             recorded_at, metadata, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                stream_id,
                revision,
                id.as_bytes(),
                type_name,
                schema_version,
                Utc::now().timestamp_micros(),
                metadata,
                payload,
            ])
        })
        .expect("insert event");
}

/// Inserts rows the way the store lays them out, with no checks at all.
struct RawWriter {
    connection: Connection,
    names: Vec<String>,
    /// Per stream: (stream_id, next revision) once created.
    streams: Vec<Option<(i64, i64)>>,
}

impl RawWriter {
    fn new(path: &Path, synchronous: &str) -> RawWriter {
        RawWriter {
            connection: raw_connection(path, synchronous),
            names: stream_names(),
            streams: vec![None; STREAMS],
        }
    }

    fn insert(&mut self, stream: usize, rng: &mut impl Rng) {
        let (stream_id, revision) = match self.streams[stream] {
            Some(known) => known,
            None => (insert_stream(&self.connection, &self.names[stream]), 0),
        };
        let event = new_event(rng);
        insert_row(
            &self.connection,
            (stream_id, revision),
            event.id,
            &event.type_name,
            event.schema_version,
            &metadata_row(&event.metadata),
            &event.payload,
        );
        self.streams[stream] = Some((stream_id, revision + 1));
    }

    /// `count` events, `per_transaction` per commit; returns each commit's
    /// duration.
    fn run(&mut self, count: usize, per_transaction: usize) -> Vec<Duration> {
        let mut rng = rand::rng();
        let mut commits = Vec::with_capacity(count / per_transaction + 1);
        let mut written = 0;
        while written < count {
            let started = Instant::now();
            self.connection
                .execute_batch("BEGIN IMMEDIATE")
                .expect("begin");
            for _ in 0..per_transaction.min(count - written) {
                let stream = rng.random_range(0..STREAMS);
                self.insert(stream, &mut rng);
                written += 1;
            }
            self.connection.execute_batch("COMMIT").expect("commit");
            commits.push(started.elapsed());
        }
        commits
    }
}

fn median(durations: &mut [Duration]) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

fn percentile(durations: &mut [Duration], per_mille: usize) -> Duration {
    durations.sort();
    durations[(durations.len() * per_mille / 1000).min(durations.len() - 1)]
}

#[derive(Default)]
struct WriteRun {
    events: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl WriteRun {
    /// Counts a block of `events` events that took `elapsed`.
    fn add(&mut self, events: usize, elapsed: Duration, latencies: Vec<Duration>) {
        self.events += events;
        self.elapsed += elapsed;
        self.latencies.extend(latencies);
    }

    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// One writer of the port: appends one event at a time to random streams
/// of its own (so every append carries its exact expected revision).
struct PortWriter {
    store: Arc<SqliteStore>,
    names: Arc<Vec<String>>,
    mine: Vec<usize>,
    next_revision: Vec<u64>,
}

impl PortWriter {
    /// Writer `writer` of `writers`, each with its own share of the streams.
    fn new(
        store: Arc<SqliteStore>,
        names: Arc<Vec<String>>,
        writer: usize,
        writers: usize,
    ) -> PortWriter {
        PortWriter {
            store,
            names,
            mine: (writer..STREAMS).step_by(writers).collect(),
            next_revision: vec![0; STREAMS],
        }
    }

    /// `count` appends; returns the writer and each append's latency.
    async fn run(mut self, count: usize) -> (PortWriter, Vec<Duration>) {
        let mut latencies = Vec::with_capacity(count);
        for _ in 0..count {
            let (stream, event) = {
                let mut rng = rand::rng();
                (
                    *self.mine.choose(&mut rng).expect("a stream"),
                    new_event(&mut rng),
                )
            };
            let expected = match self.next_revision[stream] {
                0 => ExpectedRevision::NoStream,
                next => ExpectedRevision::Exact(next - 1),
            };
            let sent = Instant::now();
            self.store
                .append(&self.names[stream], expected, vec![event])
                .await
                .expect("append");
            latencies.push(sent.elapsed());
            self.next_revision[stream] += 1;
        }
        (self, latencies)
    }
}

/// Every writer runs `each` appends, all at once; returns the writers and
/// every append's latency.
async fn concurrently(writers: Vec<PortWriter>, each: usize) -> (Vec<PortWriter>, Vec<Duration>) {
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|writer| tokio::spawn(writer.run(each)))
        .collect();
    let mut writers = Vec::with_capacity(tasks.len());
    let mut latencies = Vec::with_capacity(tasks.len() * each);
    for task in tasks {
        let (writer, mine) = task.await.expect("writer task");
        writers.push(writer);
        latencies.extend(mine);
    }
    (writers, latencies)
}

/// A raw writer on a fresh file and `writers` [`PortWriter`]s on a fresh
/// store, which run in turn, `blocks` times: raw `block` events in commits
/// of `per_transaction`, then the port `block` events, spread over its
/// writers. Taking turns, both meet the disk in the same moods (its fsync
/// time drifts over seconds). Returns (raw, port).
fn in_turn(
    dir: &Path,
    name: &str,
    runtime: &tokio::runtime::Runtime,
    blocks: usize,
    block: usize,
    per_transaction: usize,
    writers: usize,
) -> (WriteRun, WriteRun) {
    let mut raw = RawWriter::new(&fresh_file(dir, &format!("raw-{name}.db")), "FULL");
    let path = dir.join(format!("port-{name}.db"));
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).expect("open"));
    let names = Arc::new(stream_names());
    let mut port: Vec<PortWriter> = (0..writers)
        .map(|writer| PortWriter::new(Arc::clone(&store), Arc::clone(&names), writer, writers))
        .collect();
    let mut raw_run = WriteRun::default();
    let mut port_run = WriteRun::default();
    for _ in 0..blocks {
        let started = Instant::now();
        let latencies = raw.run(block, per_transaction);
        raw_run.add(block, started.elapsed(), latencies);

        let started = Instant::now();
        // On the runtime's workers, as request handlers would be.
        let (back, latencies) = runtime.block_on(concurrently(port, block / writers));
        port_run.add(latencies.len(), started.elapsed(), latencies);
        port = back;
    }
    (raw_run, port_run)
}

/// What phase (c) reads and decodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Log {
    /// One event type with a ~135-byte payload over random streams,
    /// decoded by serde (postcard).
    Heavy,
    /// The system's own mix of events (`test_support::workload`: sessions,
    /// flows, registrations, applications, ...), decoded by its codec
    /// (`migrations::decode`).
    Mixed,
}

impl Log {
    /// Its name in `BENCH_READ_LOG`.
    fn name(self) -> &'static str {
        match self {
            Log::Heavy => "heavy",
            Log::Mixed => "mixed",
        }
    }

    /// The file of this log among the phase's files.
    fn file_name(self) -> &'static str {
        match self {
            Log::Heavy => "read.db",
            Log::Mixed => "read-mixed.db",
        }
    }

    /// A file of `count` events, written fast (not durable: only the read
    /// is measured).
    fn fill(self, dir: &Path, count: usize) -> std::path::PathBuf {
        let path = fresh_file(dir, self.file_name());
        let connection = match self {
            Log::Heavy => {
                let mut writer = RawWriter::new(&path, "OFF");
                writer.run(count, 10_000);
                writer.connection
            }
            Log::Mixed => fill_mixed(&path, count),
        };
        connection
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .expect("checkpoint");
        path
    }

    /// Decodes `event`; something of it for a checksum.
    fn decode(self, event: &RecordedEvent) -> u64 {
        self.decode_parts(&event.type_name, event.schema_version, &event.payload)
    }

    /// Decodes a payload of this type and version; something of it for a
    /// checksum.
    fn decode_parts(self, type_name: &str, schema_version: u16, payload: &[u8]) -> u64 {
        match self {
            Log::Heavy => {
                let decoded: RegistrationStartedV1 =
                    postcard::from_bytes(payload).expect("decode payload");
                u64::from(decoded.attempts_left)
            }
            Log::Mixed => {
                let decoded = migrations::decode(type_name, schema_version, payload)
                    .expect("decode a generated event");
                std::hint::black_box(&decoded);
                1
            }
        }
    }
}

/// `count` events of the system's own workload (1 M events: 100 000
/// accounts, 300 000 applications), each on its stream, in commits of
/// 10 000.
fn fill_mixed(path: &Path, count: usize) -> Connection {
    let connection = raw_connection(path, "OFF");
    let mut workload = Workload::new(
        0x5eed_2026,
        Targets {
            accounts: count / 10,
            applications: count * 3 / 10,
        },
    );
    let mut streams: HashMap<String, (i64, i64)> = HashMap::new();
    let mut written = 0;
    while written < count {
        let mut chunk = workload.take(10_000.min(count - written));
        chunk.truncate(count - written);
        connection.execute_batch("BEGIN").expect("begin");
        for (_, stream, event) in chunk {
            let head = match streams.get(&stream) {
                Some(&head) => head,
                None => (insert_stream(&connection, &stream), 0),
            };
            let encoded = migrations::encode(&event);
            insert_row(
                &connection,
                head,
                Uuid::now_v7(),
                encoded.type_name,
                encoded.schema_version,
                &metadata_row(&metadata()),
                &encoded.payload,
            );
            streams.insert(stream, (head.0, head.1 + 1));
            written += 1;
        }
        connection.execute_batch("COMMIT").expect("commit");
    }
    connection
}

struct ReadRun {
    events: usize,
    elapsed: Duration,
}

impl ReadRun {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

fn fastest(runs: Vec<ReadRun>) -> ReadRun {
    runs.into_iter()
        .min_by_key(|run| run.elapsed)
        .expect("a run")
}

/// Page by page: read, then decode, then read the next page.
async fn read_sequential(store: &SqliteStore, log: Log) -> ReadRun {
    let started = Instant::now();
    let mut after = 0;
    let mut events = 0;
    let mut checksum = 0u64;
    loop {
        let page = store.read_all(after, READ_PAGE).await.expect("read");
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in &page {
            checksum = checksum.wrapping_add(log.decode(event));
        }
        events += page.len();
    }
    std::hint::black_box(checksum);
    ReadRun {
        events,
        elapsed: started.elapsed(),
    }
}

/// The next page is read (on the blocking pool) while this one decodes, the
/// way a projection consumer would overlap IO and work.
async fn read_pipelined(store: Arc<SqliteStore>, log: Log) -> ReadRun {
    let started = Instant::now();
    let mut events = 0;
    let mut checksum = 0u64;
    let read = |after: u64| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.read_all(after, READ_PAGE).await.expect("read") })
    };
    let mut next = read(0);
    loop {
        let page = next.await.expect("read task");
        let Some(last) = page.last() else { break };
        next = read(last.position);
        for event in &page {
            checksum = checksum.wrapping_add(log.decode(event));
        }
        events += page.len();
    }
    std::hint::black_box(checksum);
    ReadRun {
        events,
        elapsed: started.elapsed(),
    }
}

/// Raw rusqlite scan of the same rows with the same decoding, for scale:
/// the payload column only, or every column of the envelope as well (what
/// any reader of whole events must at least pay). A mixed log always reads
/// the type's name and version, which its decoding needs.
fn read_raw(path: &Path, log: Log, every_column: bool) -> ReadRun {
    let connection = raw_connection(path, "FULL");
    let started = Instant::now();
    let mut statement = connection
        .prepare(
            "SELECT position, stream_id, revision, event_id, type_name, schema_version, \
             recorded_at, metadata, payload FROM events ORDER BY position",
        )
        .expect("prepare");
    let mut rows = statement.query([]).expect("query");
    let mut events = 0;
    let mut checksum = 0u64;
    while let Some(row) = rows.next().expect("row") {
        if every_column {
            for column in 0..8 {
                std::hint::black_box(row.get_ref(column).expect("column"));
            }
        }
        let payload = row.get_ref(8).expect("payload").as_blob().expect("blob");
        checksum = checksum.wrapping_add(match log {
            Log::Heavy => log.decode_parts("", 1, payload),
            Log::Mixed => {
                let type_name = row.get_ref(4).expect("type").as_str().expect("text");
                let version: u16 = row.get(5).expect("version");
                log.decode_parts(type_name, version, payload)
            }
        });
        events += 1;
    }
    std::hint::black_box(checksum);
    ReadRun {
        events,
        elapsed: started.elapsed(),
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

/// Phase (c) on `log`: fills `read_events` events, then scans them raw,
/// through the port page by page, and through the port with the next page
/// read ahead; the port's passes with threads free and on one core.
/// `BENCH_READ_PATH` names a file to read instead of filling one (the
/// mixed log's name ends in `-mixed`); `BENCH_KEEP_READ_FILE` keeps a
/// filled one.
fn read_phase(
    dir: &Path,
    log: Log,
    read_events: usize,
    runtime: &tokio::runtime::Runtime,
) -> ReadPhase {
    let named = |variable: &str| {
        std::env::var_os(variable).map(|path| {
            let mut path = path;
            if log == Log::Mixed {
                path.push("-mixed");
            }
            std::path::PathBuf::from(path)
        })
    };
    let (read_path, filled) = match named("BENCH_READ_PATH") {
        Some(path) if path.exists() => (path, false),
        _ => {
            eprintln!("(c) filling {read_events} events");
            (log.fill(dir, read_events), true)
        }
    };
    let raw_payload = (log == Log::Heavy).then(|| {
        fastest(
            (0..READ_ROUNDS)
                .map(|_| read_raw(&read_path, log, false))
                .collect(),
        )
    });
    let raw_every = fastest(
        (0..READ_ROUNDS)
            .map(|_| read_raw(&read_path, log, true))
            .collect(),
    );
    let store = Arc::new(SqliteStore::open(&read_path, SqliteOptions::default()).expect("open"));
    let (sequential, pipelined) = port_passes(runtime, &store, log);
    let one_core = on_one_core(|runtime| port_passes(runtime, &store, log));
    if one_core.is_none() {
        eprintln!("(c) this system cannot pin threads to a core; one-core rows left out");
    }
    for run in [&sequential, &pipelined]
        .into_iter()
        .chain(one_core.iter().flat_map(|(s, p)| [s, p]))
    {
        assert_eq!(run.events, read_events);
    }
    drop(store);
    if let Some(keep) = named("BENCH_KEEP_READ_FILE").filter(|_| filled) {
        std::fs::copy(&read_path, keep).expect("keep the read file");
    }
    ReadPhase {
        log,
        payload_bytes: mean_payload(&read_path),
        raw: raw_payload,
        raw_every_column: raw_every,
        sequential,
        pipelined,
        one_core,
    }
}

/// The mean size of a file's payloads, in bytes.
fn mean_payload(path: &Path) -> f64 {
    raw_connection(path, "FULL")
        .query_row("SELECT avg(length(payload)) FROM events", [], |row| {
            row.get(0)
        })
        .expect("mean payload")
}

/// One warm-up pass (so that every measured pass reads a warm page cache),
/// then `READ_ROUNDS` passes of each kind; the fastest of each kind.
fn port_passes(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<SqliteStore>,
    log: Log,
) -> (ReadRun, ReadRun) {
    runtime.block_on(async {
        read_sequential(store, log).await;
        let mut sequential = Vec::new();
        let mut pipelined = Vec::new();
        for _ in 0..READ_ROUNDS {
            sequential.push(read_sequential(store, log).await);
            pipelined.push(read_pipelined(Arc::clone(store), log).await);
        }
        (fastest(sequential), fastest(pipelined))
    })
}

/// Runs `work` on a thread of its own with a runtime of its own, that
/// thread and every thread of the runtime (its worker and its blocking
/// pool, where reads run) pinned to one core: "on one core" literally, so
/// that a page read on the blocking pool is decoded from the same core's
/// caches. `None` when this system cannot pin threads.
fn on_one_core<T: Send>(work: impl FnOnce(&tokio::runtime::Runtime) -> T + Send) -> Option<T> {
    let core = core_affinity::get_core_ids()?.into_iter().last()?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                if !core_affinity::set_for_current(core) {
                    return None;
                }
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .on_thread_start(move || {
                        core_affinity::set_for_current(core);
                    })
                    .enable_all()
                    .build()
                    .expect("runtime");
                Some(work(&runtime))
            })
            .join()
            .expect("one-core thread")
    })
}

/// The runs of phase (c) on one log.
struct ReadPhase {
    log: Log,
    /// Mean bytes of a payload.
    payload_bytes: f64,
    /// Payload column only (the heavy log).
    raw: Option<ReadRun>,
    raw_every_column: ReadRun,
    sequential: ReadRun,
    pipelined: ReadRun,
    /// The same two, with every thread on one core.
    one_core: Option<(ReadRun, ReadRun)>,
}

/// Prints the rows of phase (c).
fn print_read(read: &ReadPhase) {
    let log = match read.log {
        Log::Heavy => format!(
            "one type, {:.0}-byte payloads, serde decode",
            read.payload_bytes
        ),
        Log::Mixed => format!(
            "the system's own mix, {:.0}-byte payloads on average, `migrations::decode`",
            read.payload_bytes
        ),
    };
    let rate = |run: &ReadRun| format!("{:.2} M events/s", run.per_second() / 1e6);
    println!(
        "| (c) {} events of {log}: | |",
        read.raw_every_column.events
    );
    if let Some(raw) = &read.raw {
        println!(
            "| raw rusqlite scan of the payload column + decode | {} |",
            rate(raw)
        );
    }
    println!(
        "| raw rusqlite scan reading all nine columns + decode | {} |",
        rate(&read.raw_every_column)
    );
    println!(
        "| port `read_all` (pages of {READ_PAGE}) + decode, sequential | {} |",
        rate(&read.sequential)
    );
    println!(
        "| port `read_all` + decode, next page read while decoding | {} |",
        rate(&read.pipelined)
    );
    if let Some((sequential, pipelined)) = &read.one_core {
        println!(
            "| port `read_all` + decode, sequential, every thread on one core | {} |",
            rate(sequential)
        );
        println!(
            "| port `read_all` + decode, next page read while decoding, every thread on one core | {} |",
            rate(pipelined)
        );
    }
}

impl ReadPhase {
    /// The rate on one core: page by page with every thread on one core
    /// (threads free to move when they cannot be pinned).
    fn one_core_rate(&self) -> f64 {
        self.one_core
            .as_ref()
            .map_or(&self.sequential, |(sequential, _)| sequential)
            .per_second()
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is understood.
    let events = env_count("BENCH_EVENTS", 200_000);
    let read_events = env_count("BENCH_READ_EVENTS", 1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    if std::env::var_os("BENCH_READ_ONLY").is_some() {
        // `BENCH_READ_LOG=heavy` or `mixed` reads that log alone.
        let only = std::env::var("BENCH_READ_LOG").ok();
        for log in [Log::Heavy, Log::Mixed] {
            if only.as_deref().is_some_and(|only| only != log.name()) {
                continue;
            }
            print_read(&read_phase(dir.path(), log, read_events, &runtime));
        }
        return;
    }
    let sample = payload(&mut rand::rng()).len();
    eprintln!("payload {sample} bytes; {events} events per batched phase");

    let mut raw_1 = WriteRun::default();
    let mut port_1 = WriteRun::default();
    let mut raw_64 = WriteRun::default();
    let mut port_64 = WriteRun::default();
    for round in 0..ROUNDS {
        eprintln!("round {round}: (a) single-row commits and (b1) one writer, in turn");
        let (raw, port) = in_turn(
            dir.path(),
            &format!("single-{round}"),
            &runtime,
            SINGLE_COMMITS / SINGLE_BLOCK,
            SINGLE_BLOCK,
            1,
            1,
        );
        raw_1.add(raw.events, raw.elapsed, raw.latencies);
        port_1.add(port.events, port.elapsed, port.latencies);
        eprintln!(
            "round {round}: (a) {BATCH} rows per transaction and (b64) {WRITERS} writers, in turn"
        );
        let (raw, port) = in_turn(
            dir.path(),
            &format!("batched-{round}"),
            &runtime,
            BATCHED_BLOCKS,
            events / BATCHED_BLOCKS,
            BATCH,
            WRITERS,
        );
        raw_64.add(raw.events, raw.elapsed, raw.latencies);
        port_64.add(port.events, port.elapsed, port.latencies);
    }

    let reads =
        [Log::Heavy, Log::Mixed].map(|log| read_phase(dir.path(), log, read_events, &runtime));

    let raw_commit = median(&mut raw_1.latencies);
    let raw_commit_p99 = percentile(&mut raw_1.latencies, 990);
    let port_append = median(&mut port_1.latencies);
    let port_append_p99 = percentile(&mut port_1.latencies, 990);
    let mut port_64_latencies = port_64.latencies.clone();
    let throughput_ratio = port_64.per_second() / raw_64.per_second();
    let latency_ratio = port_append.as_secs_f64() / raw_commit.as_secs_f64();

    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("| measurement | result |");
    println!("|---|---|");
    println!(
        "| (a) raw rusqlite, {BATCH} rows per transaction, {} events | {:.0} events/s |",
        raw_64.events,
        raw_64.per_second()
    );
    println!(
        "| (a) raw rusqlite, single-row durable commit ({}) | median {}, p99 {}, {:.0} commits/s |",
        raw_1.events,
        ms(raw_commit),
        ms(raw_commit_p99),
        raw_1.per_second()
    );
    println!(
        "| (b1) port, 1 writer, one event per append ({}) | median {}, p99 {}, {:.0} events/s |",
        port_1.events,
        ms(port_append),
        ms(port_append_p99),
        port_1.per_second()
    );
    println!(
        "| (b64) port, {WRITERS} writers, one event per append, {} events | {:.0} events/s, median append {} , p99 {} |",
        port_64.events,
        port_64.per_second(),
        ms(median(&mut port_64_latencies)),
        ms(percentile(&mut port_64_latencies, 990)),
    );
    for read in &reads {
        print_read(read);
    }
    println!();
    println!("| ratio | value | target | |");
    println!("|---|---|---|---|");
    println!(
        "| (b64) / (a) throughput | {throughput_ratio:.2} | >= 0.8 | {} |",
        verdict(throughput_ratio >= 0.8)
    );
    println!(
        "| (b1) median append / (a) median single-row commit | {latency_ratio:.2} | <= 1.5 | {} |",
        verdict(latency_ratio <= 1.5)
    );
    for read in &reads {
        let rate = read.one_core_rate();
        let log = match read.log {
            Log::Heavy => "one type, serde",
            Log::Mixed => "the system's own mix and codec",
        };
        println!(
            "| (c) `read_all` + decode on one core (sequential, threads pinned), {log} | {:.2} M events/s | >= 1.5 M/s | {} |",
            rate / 1e6,
            verdict(rate >= 1.5e6)
        );
    }
}
