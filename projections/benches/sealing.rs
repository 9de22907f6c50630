//! What sealing personal data (ADR 0012) costs, side by side with the same
//! work on clear payloads, alternated in one run; prints a markdown report.
//!
//! Run with `cargo bench -p projections --bench sealing`. Phases, each on
//! fresh embedded stores (durable, hash-chained as always):
//! - appends: the system's own event mix (`test_support::workload`), 64
//!   concurrent writers, one event per append, as the append bench's (b64);
//!   sealed, each writer also checks a cached key of the event's subject,
//!   seals, and appends a new key with its first event, in one transaction
//!   (`EventStore::append_with_keys`; a new key per person);
//! - replay: the whole log read back, decoded and folded into the read
//!   models (as the runner does), clear payloads against sealed ones opened
//!   with the key ring (keys loaded first, as a fold from zero does).
//!
//! `BENCH_EVENTS` scales the log (default 100 000); `BENCH_BOTH_CLEAR=1`
//! runs clear payloads on both sides (the ratios then show the bench's own
//! noise). The sealed writers' time in checking keys and sealing goes to
//! stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keys::{KeyRing, Keyer};
use migrations::DomainEvent;
use migrations::sealed::Opener;
use projections::ReadModel;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};
use test_support::workload::{Targets, Workload};
use uuid::Uuid;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WRITERS: usize = 64;
static PREPARE: AtomicUsize = AtomicUsize::new(0);
static SEAL: AtomicUsize = AtomicUsize::new(0);
static NEW_KEYS: AtomicUsize = AtomicUsize::new(0);
/// Alternating blocks per phase and round.
const BLOCKS: usize = 10;

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "bench".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: chrono::Utc::now(),
    }
}

/// One side of the comparison: a store, and the ring when sealing.
struct Side {
    store: Arc<SqliteStore>,
    ring: Option<Arc<KeyRing>>,
    _dir: tempfile::TempDir,
    appended: Duration,
}

impl Side {
    fn new(sealed: bool) -> Side {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("events.sqlite3"), SqliteOptions::default())
            .expect("store");
        Side {
            store: Arc::new(store),
            ring: sealed.then(|| Arc::new(KeyRing::new(Keyer::new([7; 32])))),
            _dir: dir,
            appended: Duration::ZERO,
        }
    }

    /// Append `events` with [`WRITERS`] concurrent writers.
    async fn append(&mut self, events: Arc<Vec<(String, DomainEvent)>>) {
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (events, next) = (events.clone(), next.clone());
                let (store, ring) = (self.store.clone(), self.ring.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((stream, event)) = events.get(i) else {
                            return;
                        };
                        let id = Uuid::now_v7();
                        let (encoded, keys) = match &ring {
                            None => (migrations::encode(event), Vec::new()),
                            Some(ring) => {
                                let t0 = Instant::now();
                                if let Some((subject, _)) = migrations::sealed::personal(event) {
                                    let name = ring.subject_name(subject);
                                    ring.prepare_seal(store.as_ref(), &[name])
                                        .await
                                        .expect("check");
                                }
                                let t1 = Instant::now();
                                let encoded =
                                    migrations::sealed::encode_sealed(event, id, ring.as_ref())
                                        .expect("seal");
                                PREPARE
                                    .fetch_add((t1 - t0).as_micros() as usize, Ordering::Relaxed);
                                SEAL.fetch_add(
                                    t1.elapsed().as_micros() as usize,
                                    Ordering::Relaxed,
                                );
                                let used: Vec<Uuid> = migrations::sealed::sealed_key(
                                    encoded.schema_version,
                                    &encoded.payload,
                                )
                                .into_iter()
                                .collect();
                                (encoded, ring.unstored(&used))
                            }
                        };
                        let event = NewEvent {
                            id,
                            type_name: encoded.type_name.to_owned(),
                            schema_version: encoded.schema_version,
                            metadata: metadata(),
                            payload: encoded.payload,
                        };
                        if keys.is_empty() {
                            store
                                .append(stream, ExpectedRevision::Any, vec![event])
                                .await
                                .expect("append");
                        } else {
                            store
                                .append_with_keys(
                                    stream,
                                    ExpectedRevision::Any,
                                    vec![event],
                                    keys.clone(),
                                )
                                .await
                                .expect("append");
                            if let Some(ring) = &ring {
                                ring.stored(&keys);
                            }
                            NEW_KEYS.fetch_add(keys.len(), Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        self.appended += started.elapsed();
    }

    /// Read the whole log, decode and fold it; returns the time taken.
    async fn replay(&self) -> (Duration, [u8; 32]) {
        let started = Instant::now();
        let ring = match &self.ring {
            Some(_) => {
                let ring = KeyRing::new(Keyer::new([7; 32]));
                ring.load_all(self.store.as_ref()).await.expect("keys");
                Some(ring)
            }
            None => None,
        };
        let opener = ring.as_ref().map(|ring| ring as &dyn Opener);
        let mut model = ReadModel::default();
        let mut after = 0;
        loop {
            let page = self.store.read_all(after, 4096).await.expect("read");
            let Some(last) = page.last() else { break };
            after = last.position;
            for e in &page {
                let event = migrations::sealed::decode_opened(
                    &e.type_name,
                    e.schema_version,
                    &e.payload,
                    e.id,
                    opener,
                )
                .expect("decode");
                model.apply(e.position, &e.stream, &event);
            }
        }
        (started.elapsed(), model.digest())
    }
}

fn main() {
    let total: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut workload = Workload::new(
        7,
        Targets {
            accounts: total / 10,
            applications: total / 8,
        },
    );
    let events: Vec<(String, DomainEvent)> = workload
        .take(total)
        .into_iter()
        .map(|(_, stream, event)| (stream, event))
        .collect();
    let personal = events
        .iter()
        .filter(|(_, e)| migrations::sealed::personal(e).is_some())
        .count();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut clear = Side::new(false);
        let mut sealed = Side::new(std::env::var_os("BENCH_BOTH_CLEAR").is_none());
        let block = events.len().div_ceil(BLOCKS);
        for (n, chunk) in events.chunks(block).enumerate() {
            let chunk = Arc::new(chunk.to_vec());
            // Take turns, starting with each side in every other block.
            if n % 2 == 0 {
                clear.append(chunk.clone()).await;
                sealed.append(chunk).await;
            } else {
                sealed.append(chunk.clone()).await;
                clear.append(chunk).await;
            }
        }
        let rate = |d: Duration| events.len() as f64 / d.as_secs_f64();
        let (clear_rate, sealed_rate) = (rate(clear.appended), rate(sealed.appended));
        eprintln!(
            "appends: {clear_rate:.0} events/s clear, {sealed_rate:.0} sealed, ratio {:.2}",
            sealed_rate / clear_rate
        );
        let mut clear_replay = Duration::MAX;
        let mut sealed_replay = Duration::MAX;
        for _ in 0..3 {
            let (c, _) = clear.replay().await;
            let (s, _) = sealed.replay().await;
            clear_replay = clear_replay.min(c);
            sealed_replay = sealed_replay.min(s);
        }
        eprintln!(
            "sealed writers' time: checking keys {} ms, sealing {} ms (summed over writers); {} new keys stored with their first event",
            PREPARE.load(Ordering::Relaxed) / 1000,
            SEAL.load(Ordering::Relaxed) / 1000,
            NEW_KEYS.load(Ordering::Relaxed)
        );
        let keys = sealed.store.read_keys(None, usize::MAX).await.expect("keys").len();
        println!(
            "## Sealing personal data: {} events ({personal} with personal data, {keys} data keys), {WRITERS} writers\n",
            events.len()
        );
        println!("| phase | clear | sealed | sealed / clear | target |");
        println!("|---|---|---|---|---|");
        println!(
            "| appends, one event per append | {clear_rate:.0} events/s | {sealed_rate:.0} events/s | {:.2} | >= 0.90 |",
            sealed_rate / clear_rate
        );
        println!(
            "| replay: read, decode, fold (best of 3) | {:.0} events/s | {:.0} events/s | {:.2} | >= 0.85 |",
            rate(clear_replay),
            rate(sealed_replay),
            clear_replay.as_secs_f64() / sealed_replay.as_secs_f64()
        );
    });
}
