//! The PostgreSQL store's (b64) appends beside the same appends through a
//! published Rust event-sourcing library's PostgreSQL store, cqrs-es with
//! postgres-es, on the server named by `CASELEDGER_TEST_POSTGRES`, in one
//! run of alternating rounds, each phase on a fresh database (dropped after).
//!
//! Every phase is 64 concurrent writers × 40 appends, one event per append,
//! each writer on a stream (aggregate) of its own, a registration-sized
//! event (about 135 payload bytes), as phase (b64) of
//! `store-postgres/benches/append.rs`:
//! - ours: `store::EventStore::append` on a `PostgresStore` with its default
//!   options (one group-committing writer connection, a read pool of 8, one
//!   LISTEN connection), each append with the exact expected revision;
//! - the peer's commands: `CqrsFramework::execute_with_metadata` on
//!   `postgres_es::postgres_cqrs` (event store as the source of truth, no
//!   snapshots, the `events` table of postgres-es's `db/init.sql`): each
//!   command loads its aggregate, yields one event, and commits it under the
//!   library's optimistic lock (the table's primary key). Twice: on the pool
//!   its docs show (`default_postgress_pool`, 10 connections, sqlx's
//!   defaults) and on a pool of 64 connections, one per writer, without
//!   sqlx's ping before each acquire;
//! - the peer's bare appends: `PersistedEventRepository::persist` of one
//!   serialised event with the next sequence, no load (the library's cheapest
//!   write, below its command API), on the 64-connection pool.
//!
//! Each round prints events/s for every phase and ours / the peer's faster
//! command pool; the end prints the medians. The peer's pools are opened in
//! full before the clock starts, as ours opens its connections in `connect`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use mimalloc::MiMalloc;
use postgres_es::{PostgresCqrs, PostgresEventRepository};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres};
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};
use store_postgres::{PostgresOptions, PostgresStore};
use test_support::postgres::{execute, with_database};
use uuid::Uuid;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const ROUNDS: usize = 5;
const WRITERS: usize = 64;
const APPENDS_PER_WRITER: usize = 40;
const EVENTS: usize = WRITERS * APPENDS_PER_WRITER;
/// `default_postgress_pool`'s size, as postgres-es's README shows it.
const PEER_DEFAULT_POOL: u32 = 10;
/// One connection per writer.
const PEER_LARGE_POOL: u32 = WRITERS as u32;

/// postgres-es's event table, as its `db/init.sql` creates it (no snapshot
/// table: this run takes no snapshots).
const PEER_SCHEMA: &str = "CREATE TABLE events (
    aggregate_type text                         NOT NULL,
    aggregate_id   text                         NOT NULL,
    sequence       bigint CHECK (sequence >= 0) NOT NULL,
    event_type     text                         NOT NULL,
    event_version  text                         NOT NULL,
    payload        json                         NOT NULL,
    metadata       json                         NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
)";

const HOW_TO_START: &str = "CASELEDGER_TEST_POSTGRES is not set: the peer comparison needs a \
PostgreSQL server where it may create and drop databases. Start a throwaway one from the \
workspace root:\n  \
dir=$(mktemp -d)\n  \
export CASELEDGER_TEST_POSTGRES=$(.ci/postgres start \"$dir\")\n  \
cargo run --release --manifest-path peer-bench/Cargo.toml\n  \
.ci/postgres stop \"$dir\" && rm -rf \"$dir\"";

fn server_url() -> String {
    match std::env::var("CASELEDGER_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            eprintln!("{HOW_TO_START}");
            std::process::exit(2);
        }
    }
}

/// A database of its own on the server, dropped (connections and all) with
/// the guard.
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create(server: &str, prefix: &str) -> Database {
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        execute(server, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|error| panic!("cannot create a database on {server}: {error}"));
        Database {
            url: with_database(server, &name),
            server: server.to_owned(),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = execute(&self.server, &sql) {
            eprintln!("cannot drop database {}: {error}", self.name);
        }
    }
}

// ---------------------------------------------------------------- ours

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "account:0190c0de-0000-7000-8000-000000000000".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: chrono::Utc::now(),
    }
}

/// A registration-sized event (about 135 payload bytes), as the store's own
/// bench makes it.
fn new_event(i: usize) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        type_name: "RegistrationStarted".to_owned(),
        schema_version: 1,
        metadata: metadata(),
        payload: (0..135).map(|b| (b as u8) ^ (i as u8)).collect(),
    }
}

async fn ours(server: &str, round: usize) -> f64 {
    let database = Database::create(server, "peer_bench_ours");
    let store = Arc::new(
        PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("connect the PostgreSQL store"),
    );
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
    let took = started.elapsed();
    drop(store);
    drop(database);
    rate(took)
}

// ---------------------------------------------------------------- the peer

/// The peer's aggregate: a registration that records one step per command.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Registration {
    steps: u32,
}

/// The command: record the next step.
struct RecordStep {
    application_id: Uuid,
    programme: &'static str,
}

/// The one event a command yields; about 135 bytes of JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum RegistrationEvent {
    RegistrationStarted {
        application_id: Uuid,
        step: u32,
        programme: String,
    },
}

impl DomainEvent for RegistrationEvent {
    fn event_type(&self) -> String {
        "RegistrationStarted".to_owned()
    }

    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

impl Aggregate for Registration {
    const TYPE: &'static str = "Registration";
    type Command = RecordStep;
    type Event = RegistrationEvent;
    type Error = std::convert::Infallible;
    type Services = ();

    async fn handle(
        &mut self,
        command: RecordStep,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = RegistrationEvent::RegistrationStarted {
            application_id: command.application_id,
            step: self.steps,
            programme: command.programme.to_owned(),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: RegistrationEvent) {
        let RegistrationEvent::RegistrationStarted { step, .. } = event;
        self.steps = step + 1;
    }
}

const PROGRAMME: &str = "bachelor-of-informatics-2027";

fn peer_event(writer: usize, step: u32) -> RegistrationEvent {
    RegistrationEvent::RegistrationStarted {
        application_id: writer_id(writer),
        step,
        programme: PROGRAMME.to_owned(),
    }
}

fn writer_id(n: usize) -> Uuid {
    Uuid::from_u128(0x0190_c0de_0000_7000_8000_0000_0000_0000 | n as u128)
}

/// The same metadata as ours, in the peer's shape (string pairs).
fn peer_metadata() -> HashMap<String, String> {
    let metadata = metadata();
    HashMap::from([
        ("actor".to_owned(), metadata.actor.to_string()),
        (
            "correlation_id".to_owned(),
            metadata.correlation_id.to_string(),
        ),
        ("occurred_at".to_owned(), metadata.occurred_at.to_rfc3339()),
    ])
}

#[derive(Clone, Copy)]
enum Peer {
    /// Commands on `default_postgress_pool` (10 connections).
    CommandsDefaultPool,
    /// Commands on 64 connections, no ping before each acquire.
    CommandsLargePool,
    /// `persist` of one serialised event, no load, on 64 connections.
    BareAppends,
}

/// A fresh database with the peer's table, and its pool opened in full.
async fn peer_pool(database: &Database, peer: Peer) -> Pool<Postgres> {
    let (pool, size) = match peer {
        Peer::CommandsDefaultPool => (
            postgres_es::default_postgress_pool(&database.url).await,
            PEER_DEFAULT_POOL,
        ),
        Peer::CommandsLargePool | Peer::BareAppends => (
            PgPoolOptions::new()
                .max_connections(PEER_LARGE_POOL)
                .test_before_acquire(false)
                .connect(&database.url)
                .await
                .expect("connect the peer's pool"),
            PEER_LARGE_POOL,
        ),
    };
    sqlx::query(PEER_SCHEMA)
        .execute(&pool)
        .await
        .expect("create the peer's events table");
    let connections = futures::future::try_join_all((0..size).map(|_| pool.acquire()))
        .await
        .expect("open the peer's pool");
    drop(connections);
    pool
}

async fn peer(server: &str, peer: Peer) -> f64 {
    let database = Database::create(server, "peer_bench_cqrs");
    let pool = peer_pool(&database, peer).await;
    let took = match peer {
        Peer::CommandsDefaultPool | Peer::CommandsLargePool => {
            let cqrs: Arc<PostgresCqrs<Registration>> =
                Arc::new(postgres_es::postgres_cqrs(pool.clone(), vec![], ()));
            let started = Instant::now();
            let tasks: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let cqrs = Arc::clone(&cqrs);
                    tokio::spawn(async move {
                        let aggregate = writer_id(writer).to_string();
                        for _ in 0..APPENDS_PER_WRITER {
                            let command = RecordStep {
                                application_id: writer_id(writer),
                                programme: PROGRAMME,
                            };
                            cqrs.execute_with_metadata(&aggregate, command, peer_metadata())
                                .await
                                .expect("command");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("writer");
            }
            started.elapsed()
        }
        Peer::BareAppends => {
            let repository = Arc::new(PostgresEventRepository::new(pool.clone()));
            let started = Instant::now();
            let tasks: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let repository = Arc::clone(&repository);
                    tokio::spawn(async move {
                        let aggregate = writer_id(writer).to_string();
                        for step in 0..APPENDS_PER_WRITER as u32 {
                            let event = peer_event(writer, step);
                            let serialised = SerializedEvent::new(
                                aggregate.clone(),
                                step as usize + 1,
                                Registration::TYPE.to_owned(),
                                event.event_type(),
                                event.event_version(),
                                serde_json::to_value(&event).expect("payload"),
                                serde_json::to_value(peer_metadata()).expect("metadata"),
                            );
                            repository
                                .persist::<Registration>(&[serialised], None)
                                .await
                                .expect("persist");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("writer");
            }
            started.elapsed()
        }
    };
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count the peer's events");
    assert_eq!(stored, EVENTS as i64, "the peer stored every event");
    pool.close().await;
    drop(database);
    rate(took)
}

// ---------------------------------------------------------------- the run

fn rate(took: Duration) -> f64 {
    EVENTS as f64 / took.as_secs_f64()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn range(values: &[f64]) -> (f64, f64) {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (low, high)
}

#[derive(Clone, Copy)]
enum Phase {
    Ours,
    Peer(Peer),
}

const PHASES: [Phase; 4] = [
    Phase::Ours,
    Phase::Peer(Peer::CommandsDefaultPool),
    Phase::Peer(Peer::CommandsLargePool),
    Phase::Peer(Peer::BareAppends),
];

const NAMES: [&str; 4] = [
    "ours",
    "peer commands, 10 conns",
    "peer commands, 64 conns",
    "peer bare appends, 64 conns",
];

fn main() {
    let server = server_url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let event_bytes = serde_json::to_vec(&peer_event(0, 10)).expect("json").len();
    println!(
        "{WRITERS} writers × {APPENDS_PER_WRITER} appends, one event each; ours: 135-byte \
         payloads; the peer (cqrs-es + postgres-es): {event_bytes}-byte JSON events"
    );
    let mut rates = vec![Vec::new(); PHASES.len()];
    let mut ratios = Vec::new();
    runtime.block_on(async {
        for round in 0..ROUNDS {
            // The phases take turns at going first.
            let mut order: Vec<usize> = (0..PHASES.len()).collect();
            order.rotate_left(round % PHASES.len());
            let mut this_round = [0.0; PHASES.len()];
            for index in order {
                this_round[index] = match PHASES[index] {
                    Phase::Ours => ours(&server, round).await,
                    Phase::Peer(which) => peer(&server, which).await,
                };
                rates[index].push(this_round[index]);
            }
            let best_commands = this_round[1].max(this_round[2]);
            let ratio = this_round[0] / best_commands;
            ratios.push(ratio);
            let figures: Vec<String> = NAMES
                .iter()
                .zip(this_round)
                .map(|(name, rate)| format!("{name} {rate:.0}"))
                .collect();
            println!(
                "round {}/{ROUNDS}: {} events/s; ours / peer's faster commands = {ratio:.2}; \
                 ours / peer's bare appends = {:.2}",
                round + 1,
                figures.join(", "),
                this_round[0] / this_round[3]
            );
        }
    });
    for (name, rates) in NAMES.iter().zip(&rates) {
        let (low, high) = range(rates);
        println!(
            "{name}: {:.0} events/s median ({low:.0}-{high:.0})",
            median(rates)
        );
    }
    let (low, high) = range(&ratios);
    let bare: Vec<f64> = rates[0].iter().zip(&rates[3]).map(|(o, p)| o / p).collect();
    println!(
        "(b64) ours / the peer's faster command pool: {:.2} median of {ROUNDS} rounds \
         ({low:.2}-{high:.2}; target >= 2); ours / the peer's bare appends: {:.2} median",
        median(&ratios),
        median(&bare)
    );
}
