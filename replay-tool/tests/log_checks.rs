//! `verify` names the first bad event and exits non-zero; `export` writes
//! one JSON line per event; the tool reads while a writer holds the store
//! and changes nothing.

mod common;

use common::*;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};

fn payload_of(data_dir: &std::path::Path, position: i64) -> (String, u16, Vec<u8>) {
    let connection = rusqlite::Connection::open(store_file(data_dir)).unwrap();
    connection
        .query_row(
            "SELECT type_name, schema_version, payload FROM events WHERE position = ?1",
            [position],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap()
}

#[test]
fn verify_passes_a_clean_store_with_a_report() {
    let dir = story_data_dir();
    let output = replay(dir.path(), &["verify"]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains(&format!("events: {}\n", story_len())),
        "{report}"
    );
    assert!(report.contains("streams: 10\n"), "{report}");
    assert!(report.contains("  ApplicationCreated v1: 1\n"), "{report}");
    assert!(report.contains("  ApplicationCreated v2: 3\n"), "{report}");
    assert!(report.contains("result: OK"), "{report}");
    assert!(report.contains("events/s"), "{report}");
}

#[test]
fn verify_names_an_event_whose_payload_byte_was_altered() {
    let dir = story_data_dir();
    // The booking at position 12: change one byte so it no longer decodes.
    let position = 12;
    let (type_name, version, payload) = payload_of(dir.path(), position);
    assert_eq!(type_name, "AppointmentBooked");
    let altered = (0..payload.len())
        .map(|index| {
            let mut bytes = payload.clone();
            bytes[index] = 0xff;
            bytes
        })
        .find(|bytes| migrations::decode(&type_name, version, bytes).is_err())
        .expect("some byte breaks the payload");
    assert_eq!(altered.len(), payload.len());
    rusqlite::Connection::open(store_file(dir.path()))
        .unwrap()
        .execute(
            "UPDATE events SET payload = ?1 WHERE position = ?2",
            rusqlite::params![altered, position],
        )
        .unwrap();

    let output = replay(dir.path(), &["verify"]);
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let named = format!(
        "position 12, stream {}, type AppointmentBooked v1: payload does not decode",
        work_application().stream()
    );
    assert!(
        report.contains(&format!("first bad event: {named}")),
        "{report}"
    );
    assert!(report.contains("FAILED, 2 problem(s)"), "{report}");
    assert!(stderr.contains(&named), "{stderr}");
}

#[test]
fn verify_names_a_gap_in_a_streams_revisions() {
    let dir = story_data_dir();
    rusqlite::Connection::open(store_file(dir.path()))
        .unwrap()
        .execute("UPDATE events SET revision = 5 WHERE position = 11", [])
        .unwrap();
    let output = replay(dir.path(), &["verify"]);
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(
        report.contains(&format!(
            "first bad event: position 11, stream {}, type ApplicationSubmitted v1: \
             revision 5 follows revision 0",
            work_application().stream()
        )),
        "{report}"
    );
}

#[test]
fn verify_names_an_event_whose_metadata_was_cut_short() {
    let dir = story_data_dir();
    rusqlite::Connection::open(store_file(dir.path()))
        .unwrap()
        .execute(
            "UPDATE events SET metadata = substr(metadata, 1, 3) WHERE position = 9",
            [],
        )
        .unwrap();
    let output = replay(dir.path(), &["verify"]);
    assert_eq!(output.status.code(), Some(1));
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(report.contains("FAILED, 2 problem(s)"), "{report}");
    assert!(
        report.contains("first bad event: position 9,")
            && report.contains("corrupt metadata at position 9"),
        "{report}"
    );
}

#[test]
fn export_writes_one_json_object_per_event() {
    let dir = story_data_dir();
    let masked = stdout_ok(dir.path(), &["export", "--format", "jsonl"]);
    let lines: Vec<serde_json::Value> = masked
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), story_len());
    for (position, line) in (1..).zip(&lines) {
        assert_eq!(line["position"], position);
        for key in [
            "stream",
            "revision",
            "id",
            "type",
            "schemaVersion",
            "recordedAt",
            "metadata",
            "data",
        ] {
            assert!(!line[key].is_null(), "{key} missing in {line}");
        }
    }
    let upcast = &lines[9];
    assert_eq!(upcast["type"], "ApplicationCreated");
    assert_eq!(upcast["schemaVersion"], 1);
    assert_eq!(upcast["data"]["applicant"]["name"], "[masked]");
    assert_eq!(
        upcast["metadata"]["actor"],
        format!("account:{}", kari_first())
    );
    assert!(!masked.contains(KARI_EMAIL) && !masked.contains("Nordmann"));

    let file = dir.path().join("export.jsonl");
    stdout_ok(
        dir.path(),
        &[
            "export",
            "--format",
            "jsonl",
            "--show-personal-data",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    let shown = std::fs::read_to_string(&file).unwrap();
    assert_eq!(shown.lines().count(), story_len());
    assert!(shown.contains(KARI_EMAIL) && shown.contains("Nora Nordmann"));
    assert!(
        !shown.contains("$argon2id"),
        "password hashes are never exported"
    );
}

#[test]
fn the_tool_never_creates_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let output = replay(dir.path(), &["verify"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no event store"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn extra_event(n: u128) -> NewEvent {
    let encoded = migrations::encode(&migrations::DomainEvent::Account(
        domain::account::Event::LoginFailed {
            at: t("2028-06-01T00:00:00Z"),
        },
    ));
    NewEvent {
        id: id(0xee00 + n),
        type_name: encoded.type_name.to_owned(),
        schema_version: encoded.schema_version,
        metadata: EventMetadata {
            actor: "system".into(),
            correlation_id: id(0xee00 + n),
            causation_id: None,
            occurred_at: t("2028-06-01T00:00:00Z"),
        },
        payload: encoded.payload,
    }
}

#[test]
fn reading_beside_a_live_writer_works_and_changes_nothing() {
    let dir = story_data_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = SqliteStore::open(&store_file(dir.path()), SqliteOptions::default()).unwrap();
    // Committed but, with the writer open, still in the WAL.
    runtime
        .block_on(store.append(
            &kari_second().stream(),
            ExpectedRevision::Any,
            vec![extra_event(1)],
        ))
        .unwrap();
    let head_before = runtime.block_on(store.head_position()).unwrap();
    let file_before = std::fs::read(store_file(dir.path())).unwrap();

    let output = replay(dir.path(), &["verify"]);
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains(&format!("events: {}\n", story_len() + 1)),
        "{report}"
    );
    let account = kari_second().to_string();
    stdout_ok(dir.path(), &["history", "--account", &account]);
    stdout_ok(dir.path(), &["export", "--format", "jsonl"]);
    stdout_ok(
        dir.path(),
        &["as-of", "2030-01-01T00:00:00Z", "--email", KARI_EMAIL],
    );

    assert_eq!(
        runtime.block_on(store.head_position()).unwrap(),
        head_before
    );
    assert_eq!(std::fs::read(store_file(dir.path())).unwrap(), file_before);
    // The writer still writes after the tool has read.
    runtime
        .block_on(store.append(
            &kari_second().stream(),
            ExpectedRevision::Any,
            vec![extra_event(2)],
        ))
        .unwrap();
    drop(store);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("events.sqlite3"))
        .collect();
    assert_eq!(
        names,
        vec!["secret.key".to_owned()],
        "the tool wrote no other file"
    );
}
