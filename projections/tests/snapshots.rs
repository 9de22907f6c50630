//! Snapshots and checkpoints: rebuilt, live and loaded models agree (digest
//! and rendering); a restart from a snapshot neither repeats nor skips an
//! event; an unusable snapshot is a typed error and the models are rebuilt.

mod common;

use std::sync::Arc;
use std::time::Duration;

use projections::snapshot::{self, SnapshotError, rebuild};
use projections::{Projections, ReadModel, SnapshotMode};
use proptest::prelude::*;
use store::EventStore;
use store::memory::MemoryStore;
use test_support::workload::{Generated, Targets, Workload};

const WAIT: Duration = Duration::from_secs(30);

fn workload(seed: u64, events: usize) -> Vec<Generated> {
    Workload::new(
        seed,
        Targets {
            accounts: events / 10 + 1,
            applications: events / 4 + 1,
        },
    )
    .take(events)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Rebuilt from zero, fed live in random (overlapping) batches, and saved
    /// and loaded: one digest, one rendering.
    #[test]
    fn rebuilt_live_and_loaded_models_agree(
        seed in any::<u64>(),
        events in 1usize..1500,
        batches in proptest::collection::vec((1usize..200, 0usize..20), 1..40),
    ) {
        let history = workload(seed, events);
        let rebuilt = rebuild(history.iter().map(|(p, s, e)| (*p, s.as_str(), e)));

        let mut live = ReadModel::default();
        let mut at = 0;
        let mut sizes = batches.iter().cycle();
        while at < history.len() {
            let (size, overlap) = sizes.next().unwrap();
            // A batch may start a little before the last one ended (a replay
            // after a crash): the position guard ignores what was applied.
            let start = at.saturating_sub(*overlap);
            let end = (at + size).min(history.len());
            for (position, stream, event) in &history[start..end] {
                live.apply(*position, stream, event);
            }
            at = end;
        }
        prop_assert_eq!(live.digest(), rebuilt.digest());
        prop_assert_eq!(live.render(), rebuilt.render());

        let dir = tempfile::tempdir().unwrap();
        let path = snapshot::snapshot_path(dir.path());
        snapshot::save(&path, &live).unwrap();
        let loaded = snapshot::load(&path).unwrap().expect("a snapshot");
        prop_assert_eq!(loaded.digest(), rebuilt.digest());
        prop_assert_eq!(loaded.render(), rebuilt.render());
        prop_assert_eq!(snapshot::canonical_bytes(&loaded), snapshot::canonical_bytes(&rebuilt));
    }
}

#[test]
fn digest_covers_the_position_and_the_state() {
    let history = workload(7, 400);
    let full = rebuild(history.iter().map(|(p, s, e)| (*p, s.as_str(), e)));
    let shorter = rebuild(
        history
            .iter()
            .take(399)
            .map(|(p, s, e)| (*p, s.as_str(), e)),
    );
    assert_ne!(full.digest(), shorter.digest());
    assert_ne!(full.digest(), ReadModel::default().digest());
    assert_eq!(full.digest(), full.clone().digest());
}

/// A state whose applications fill several parts of the snapshot (more
/// than a page of them each, and an empty one) loads equal to the saved one.
#[test]
fn a_state_in_several_application_parts_loads_equal() {
    let mut workload = Workload::new(
        21,
        Targets {
            accounts: 3_000,
            applications: 70_000,
        },
    );
    let mut model = ReadModel::default();
    while model.total_applications() < 70_000 {
        for (position, stream, event) in workload.take(20_000) {
            model.apply(position, &stream, &event);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    snapshot::save(&path, &model).unwrap();
    let loaded = snapshot::load(&path).unwrap().expect("a snapshot");
    assert_eq!(loaded.digest(), model.digest());
    assert_eq!(loaded.render(), model.render());
}

/// Apply through the live runner over a memory store, in whatever batches
/// the subscription delivers.
#[test]
fn the_runner_gives_the_same_model_as_a_rebuild() {
    runtime().block_on(async {
        let history = workload(11, 3000);
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let projections = Projections::start(store.clone(), ReadModel::default());
        let (first, rest) = history.split_at(1200);
        common::append_all(&store, first).await;
        let head = common::append_all(&store, rest).await;
        projections.wait_for(head, WAIT).await.unwrap();
        let rebuilt = snapshot::rebuild_from_log(store.as_ref()).await.unwrap();
        assert!(rebuilt.undecodable.is_empty());
        assert_eq!(rebuilt.model.position, head);
        let live = projections.read(|m| (m.digest(), m.render()));
        assert_eq!(live.0, rebuilt.model.digest());
        assert_eq!(live.1, rebuilt.model.render());
    });
}

/// Snapshot at position k, append more, restart from the snapshot: the
/// result equals a full rebuild, so no event was applied twice or skipped.
#[test]
fn a_restart_from_a_snapshot_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let history = workload(23, 2500);
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let (first, rest) = history.split_at(1000);

    // First run: the server's runner, stopped after the first part. The
    // runtime's shutdown drops the runner, which writes the snapshot.
    let k = runtime().block_on(async {
        let k = common::append_all(&store, first).await;
        let projections = Projections::start_in_data_dir(
            store.clone(),
            dir.path(),
            SnapshotMode::ReadWrite,
            None,
        );
        projections.wait_for(k, WAIT).await.unwrap();
        k
    });
    let saved = snapshot::load(&snapshot::snapshot_path(dir.path()))
        .unwrap()
        .expect("the stopping server wrote its snapshot");
    assert_eq!(saved.position, k);
    let expected_at_k = rebuild(first.iter().map(|(p, s, e)| (*p, s.as_str(), e)));
    assert_eq!(saved.digest(), expected_at_k.digest());

    // Second run: more events, a restart from the snapshot.
    runtime().block_on(async {
        let head = common::append_all(&store, rest).await;
        let projections =
            Projections::start_in_data_dir(store.clone(), dir.path(), SnapshotMode::ReadOnly, None);
        assert_eq!(projections.started_from(), k, "resumes at the checkpoint");
        projections.wait_for(head, WAIT).await.unwrap();
        let rebuilt = snapshot::rebuild_from_log(store.as_ref())
            .await
            .unwrap()
            .model;
        assert_eq!(projections.read(|m| m.digest()), rebuilt.digest());
        assert_eq!(projections.read(|m| m.render()), rebuilt.render());
    });
    // A read-only process leaves the snapshot alone.
    let after = snapshot::load(&snapshot::snapshot_path(dir.path()))
        .unwrap()
        .unwrap();
    assert_eq!(after.position, k);
}

#[test]
fn the_runner_writes_a_snapshot_every_so_many_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    let history = workload(5, 600);
    runtime().block_on(async {
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let projections = Projections::start_with(
            store.clone(),
            ReadModel::default(),
            Some(projections::runner::SnapshotSettings {
                path: path.clone(),
                every_events: 100,
                every: Duration::from_secs(3600),
            }),
            None,
        );
        let head = common::append_all(&store, &history).await;
        projections.wait_for(head, WAIT).await.unwrap();
        // Written under the runner's own flow: poll until a file is there.
        let mut loaded = None;
        for _ in 0..600 {
            if let Ok(Some(model)) = snapshot::load(&path) {
                loaded = Some(model);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let loaded = loaded.expect("a periodic snapshot");
        assert!(loaded.position >= 100);
        let at_that_point = rebuild(
            history
                .iter()
                .take_while(|(p, _, _)| *p <= loaded.position)
                .map(|(p, s, e)| (*p, s.as_str(), e)),
        );
        assert_eq!(loaded.digest(), at_that_point.digest());
    });
}

fn corrupt_cases(good: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut flipped = good.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x55;
    let mut version = good.to_vec();
    version[8..12].copy_from_slice(&99u32.to_le_bytes());
    vec![
        ("empty", Vec::new()),
        ("garbage", b"not a snapshot at all, just text".to_vec()),
        ("truncated", good[..good.len() - 7].to_vec()),
        ("flipped byte", flipped),
        ("unknown version", version),
    ]
}

#[test]
fn an_unusable_snapshot_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    assert!(snapshot::load(&path).unwrap().is_none(), "absent is None");
    let model = rebuild(workload(3, 300));
    snapshot::save(&path, &model).unwrap();
    let good = std::fs::read(&path).unwrap();
    for (case, bytes) in corrupt_cases(&good) {
        std::fs::write(&path, bytes).unwrap();
        match (case, snapshot::load(&path)) {
            ("unknown version", Err(SnapshotError::UnknownVersion { found: 99, .. })) => {}
            ("unknown version", other) => panic!("unknown version: {other:?}"),
            (_, Err(SnapshotError::Corrupt { .. })) => {}
            (case, other) => panic!("{case}: {:?}", other.map(|m| m.map(|m| m.position))),
        }
    }
}

/// The digest and position read from a saved snapshot, without decoding
/// it, are those of the model saved.
#[test]
fn the_digest_read_from_a_snapshot_is_the_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    assert_eq!(
        snapshot::read_digest(&path).unwrap(),
        None,
        "absent is None"
    );
    for model in [
        ReadModel::default(),
        rebuild(workload(5, 700)),
        rebuild(workload(6, 1_300)),
    ] {
        snapshot::save(&path, &model).unwrap();
        let read = snapshot::read_digest(&path).unwrap().expect("a snapshot");
        assert_eq!(read.position, model.position);
        assert_eq!(read.digest, model.digest());
    }
}

/// `read_digest` refuses every file `load` refuses, and a byte flipped in
/// any section of the body (first or last byte) is `Corrupt`.
#[test]
fn read_digest_refuses_an_unusable_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    snapshot::save(&path, &rebuild(workload(3, 300))).unwrap();
    let good = std::fs::read(&path).unwrap();
    let mut cases = corrupt_cases(&good);
    // The section table follows the 52-byte header: per section, its length
    // (u64) and SHA-256.
    let mut offset = 52 + snapshot::SECTIONS * 40;
    for i in 0..snapshot::SECTIONS {
        let entry = 52 + i * 40;
        let len = u64::from_le_bytes(good[entry..entry + 8].try_into().unwrap()) as usize;
        assert!(len > 0, "section {i} is empty");
        for at in [offset, offset + len - 1] {
            let mut flipped = good.clone();
            flipped[at] ^= 0x01;
            cases.push(("flipped body byte", flipped));
        }
        offset += len;
    }
    assert_eq!(offset, good.len());
    for (case, bytes) in cases {
        std::fs::write(&path, bytes).unwrap();
        match (case, snapshot::read_digest(&path)) {
            ("unknown version", Err(SnapshotError::UnknownVersion { found: 99, .. })) => {}
            ("unknown version", other) => panic!("unknown version: {other:?}"),
            (_, Err(SnapshotError::Corrupt { .. })) => {}
            (case, other) => panic!("{case}: {other:?}"),
        }
    }
}

#[test]
fn an_unusable_snapshot_makes_the_server_rebuild_from_zero() {
    let history = workload(9, 800);
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    let runtime = runtime();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let head = runtime.block_on(common::append_all(&store, &history));
    let full = rebuild(history.iter().map(|(p, s, e)| (*p, s.as_str(), e)));
    snapshot::save(
        &path,
        &rebuild(
            history
                .iter()
                .take(200)
                .map(|(p, s, e)| (*p, s.as_str(), e)),
        ),
    )
    .unwrap();
    let good = std::fs::read(&path).unwrap();
    for (case, bytes) in corrupt_cases(&good) {
        std::fs::write(&path, bytes).unwrap();
        runtime.block_on(async {
            let projections = Projections::start_in_data_dir(
                store.clone(),
                dir.path(),
                SnapshotMode::ReadOnly,
                None,
            );
            assert_eq!(projections.started_from(), 0, "{case}: starts from zero");
            projections.wait_for(head, WAIT).await.unwrap();
            assert_eq!(projections.read(|m| m.digest()), full.digest(), "{case}");
        });
    }
}

#[test]
fn a_snapshot_ahead_of_the_log_is_discarded() {
    let history = workload(13, 500);
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    snapshot::save(
        &path,
        &rebuild(history.iter().map(|(p, s, e)| (*p, s.as_str(), e))),
    )
    .unwrap();
    runtime().block_on(async {
        // The log holds only the first 100 events (say, restored from an
        // older backup).
        let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
        let head = common::append_all(&store, &history[..100]).await;
        let projections =
            Projections::start_in_data_dir(store.clone(), dir.path(), SnapshotMode::ReadOnly, None);
        projections.wait_for(head, WAIT).await.unwrap();
        let rebuilt = snapshot::rebuild_from_log(store.as_ref())
            .await
            .unwrap()
            .model;
        // wait_for may return on the snapshot's position; wait for the reset.
        for _ in 0..600 {
            if projections.read(|m| m.position) == head {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(projections.read(|m| m.digest()), rebuilt.digest());
    });
}

#[test]
fn rebuild_mode_deletes_the_snapshot_and_starts_from_zero() {
    let history = workload(17, 300);
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    snapshot::save(
        &path,
        &rebuild(
            history
                .iter()
                .take(100)
                .map(|(p, s, e)| (*p, s.as_str(), e)),
        ),
    )
    .unwrap();
    let runtime = runtime();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let head = runtime.block_on(common::append_all(&store, &history));
    runtime.block_on(async {
        let projections =
            Projections::start_in_data_dir(store.clone(), dir.path(), SnapshotMode::Rebuild, None);
        assert_eq!(projections.started_from(), 0);
        assert!(!path.exists(), "the snapshot is gone");
        projections.wait_for(head, WAIT).await.unwrap();
    });
    drop(runtime);
    // Stopping wrote a fresh one at the head.
    let fresh = snapshot::load(&path).unwrap().unwrap();
    assert_eq!(fresh.position, head);
}

/// A snapshot of an older format version (its enums may have meant other
/// variants) reads as absent: the server rebuilds from the log, and in
/// read-write mode its next snapshot replaces the old file.
#[test]
fn an_older_snapshot_is_absent_and_the_server_rebuilds_from_zero() {
    let history = workload(21, 600);
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot::snapshot_path(dir.path());
    snapshot::save(
        &path,
        &rebuild(
            history
                .iter()
                .take(200)
                .map(|(p, s, e)| (*p, s.as_str(), e)),
        ),
    )
    .unwrap();
    let mut older = std::fs::read(&path).unwrap();
    older[8..12].copy_from_slice(&(snapshot::FORMAT_VERSION - 1).to_le_bytes());
    std::fs::write(&path, &older).unwrap();
    assert!(snapshot::load(&path).unwrap().is_none());
    assert_eq!(snapshot::read_digest(&path).unwrap(), None);

    let full = rebuild(history.iter().map(|(p, s, e)| (*p, s.as_str(), e)));
    let runtime = runtime();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let head = runtime.block_on(common::append_all(&store, &history));
    runtime.block_on(async {
        let projections = Projections::start_in_data_dir(
            store.clone(),
            dir.path(),
            SnapshotMode::ReadWrite,
            None,
        );
        assert_eq!(projections.started_from(), 0, "starts from zero");
        projections.wait_for(head, WAIT).await.unwrap();
        assert_eq!(projections.read(|m| m.digest()), full.digest());
    });
    // Stopping the runner writes its last snapshot over the old file.
    drop(runtime);
    let loaded = snapshot::load(&path)
        .unwrap()
        .expect("a snapshot of today's format");
    assert_eq!(loaded.digest(), full.digest());
}
