//! `rebuild` agrees with a snapshot written by the projections' own writer
//! and reports a tampered one.

mod common;

use common::*;
use migrations::DomainEvent;
use store::sqlite::SqliteLogReader;

/// The story's events up to `until`, decoded, leaving out `skip`.
fn decoded(
    data_dir: &std::path::Path,
    until: u64,
    skip: Option<u64>,
) -> Vec<(u64, String, DomainEvent)> {
    let mut reader = SqliteLogReader::open(&store_file(data_dir)).unwrap();
    reader
        .read_all(0, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.position <= until && Some(e.position) != skip)
        .map(|e| {
            let event = migrations::decode(&e.type_name, e.schema_version, &e.payload).unwrap();
            (e.position, e.stream.to_string(), event)
        })
        .collect()
}

fn save_snapshot(data_dir: &std::path::Path, model: &projections::ReadModel) {
    projections::snapshot::save(&projections::snapshot::snapshot_path(data_dir), model).unwrap();
}

#[test]
fn rebuild_matches_the_live_snapshot_and_reports_the_head() {
    let dir = story_data_dir();
    let live = projections::snapshot::rebuild(decoded(dir.path(), 12, None));
    assert_eq!(live.position, 12);
    save_snapshot(dir.path(), &live);
    let snapshot_bytes = std::fs::read(projections::snapshot::snapshot_path(dir.path())).unwrap();

    let out = stdout_ok(dir.path(), &["rebuild"]);
    let digest = hex::encode(live.digest());
    assert!(
        out.contains(&format!(
            "rebuilt from zero to position 12: digest {digest} (MATCHES the snapshot)"
        )),
        "{out}"
    );
    let head = projections::snapshot::rebuild(decoded(dir.path(), u64::MAX, None));
    assert!(
        out.contains(&format!(
            "head: position {}, digest {}",
            story_len(),
            hex::encode(head.digest())
        )),
        "{out}"
    );
    assert_eq!(
        std::fs::read(projections::snapshot::snapshot_path(dir.path())).unwrap(),
        snapshot_bytes,
        "rebuild never writes the snapshot"
    );
}

/// With the snapshot at the head, the head line gives the digest rebuilt
/// from the log (not the snapshot's), whether they match or not.
#[test]
fn rebuild_with_the_snapshot_at_the_head_reports_the_rebuilt_digest_there() {
    let dir = story_data_dir();
    let head = projections::snapshot::rebuild(decoded(dir.path(), u64::MAX, None));
    let head_digest = hex::encode(head.digest());
    let len = story_len();
    assert_eq!(head.position, len as u64);
    // At the head too, but without event 12: the position agrees, the state does not.
    let tampered = projections::snapshot::rebuild(decoded(dir.path(), u64::MAX, Some(12)));
    assert_eq!(tampered.position, len as u64);
    assert_ne!(tampered.digest(), head.digest());

    save_snapshot(dir.path(), &head);
    let out = stdout_ok(dir.path(), &["rebuild"]);
    assert!(
        out.contains(&format!(
            "rebuilt from zero to position {len}: digest {head_digest} (MATCHES the snapshot)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("head: position {len}, digest {head_digest}")),
        "{out}"
    );
    assert!(out.contains(&format!("for {len} events")), "{out}");

    save_snapshot(dir.path(), &tampered);
    let output = replay(dir.path(), &["rebuild"]);
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "rebuilt from zero to position {len}: digest {head_digest} (MISMATCH)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("head: position {len}, digest {head_digest}")),
        "{out}"
    );
}

#[test]
fn rebuild_reports_a_snapshot_that_differs_from_the_log() {
    let dir = story_data_dir();
    let tampered = projections::snapshot::rebuild(decoded(dir.path(), 12, Some(12)));
    let tampered = {
        let mut model = tampered;
        let last = decoded(dir.path(), 12, None).pop().unwrap();
        assert_eq!(last.0, 12);
        // Another event at position 12: the position agrees, the state does not.
        model.apply(
            12,
            &last.1,
            &DomainEvent::Application(domain::application::Event::Submitted {
                at: t("2026-03-05T09:05:00Z"),
            }),
        );
        model
    };
    assert_eq!(tampered.position, 12);
    save_snapshot(dir.path(), &tampered);
    let output = replay(dir.path(), &["rebuild"]);
    let out = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("MISMATCH"), "{out}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("differ from the live snapshot"));
}

#[test]
fn rebuild_refuses_a_corrupt_snapshot_file() {
    let dir = story_data_dir();
    let live = projections::snapshot::rebuild(decoded(dir.path(), 12, None));
    save_snapshot(dir.path(), &live);
    let path = projections::snapshot::snapshot_path(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
    let output = replay(dir.path(), &["rebuild"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("corrupt"));
}

#[test]
fn rebuild_without_a_snapshot_reports_the_head_digest() {
    let dir = story_data_dir();
    let out = stdout_ok(dir.path(), &["rebuild"]);
    assert!(out.contains("snapshot: none"), "{out}");
    let head = projections::snapshot::rebuild(decoded(dir.path(), u64::MAX, None));
    assert!(out.contains(&hex::encode(head.digest())), "{out}");
}
