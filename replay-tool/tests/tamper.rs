//! Tamper evidence on the embedded store: each kind of change to the stored
//! log (a byte of an event, a revision, a removed, moved or inserted event)
//! is named by `verify`, and a cut tail is found against a saved head.

mod common;

use common::*;
use rusqlite::Connection;

fn connection(dir: &tempfile::TempDir) -> Connection {
    Connection::open(store_file(dir.path())).unwrap()
}

/// Flip the last byte of `column` (a blob or text) of the event at `position`.
fn flip_last_byte(dir: &tempfile::TempDir, table: &str, column: &str, key: &str, at: i64) {
    let connection = connection(dir);
    let mut bytes: Vec<u8> = connection
        .query_row(
            &format!("SELECT CAST({column} AS BLOB) FROM {table} WHERE {key} = ?1"),
            [at],
            |row| row.get(0),
        )
        .unwrap();
    let last = bytes.len() - 1;
    // Stays ASCII for text columns, and no other stream's name.
    bytes[last] = if bytes[last] == b'~' { b'}' } else { b'~' };
    let value: rusqlite::types::Value = if column == "name" || column == "type_name" {
        rusqlite::types::Value::Text(String::from_utf8(bytes).unwrap())
    } else {
        rusqlite::types::Value::Blob(bytes)
    };
    connection
        .execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE {key} = ?2"),
            rusqlite::params![value, at],
        )
        .unwrap();
}

/// Run verify; it must fail naming `position` as the first bad event.
/// Returns the report.
fn fails_at(dir: &tempfile::TempDir, position: u64, args: &[&str]) -> String {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let output = replay(dir.path(), &all);
    let report = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report}\n{stderr}");
    assert!(
        report.contains(&format!("first bad event: position {position},")),
        "{report}"
    );
    assert!(
        stderr.contains(&format!("verify failed at position {position},")),
        "{stderr}"
    );
    report
}

#[test]
fn a_clean_store_passes_with_the_chain_checked() {
    let dir = story_data_dir();
    let report = stdout_ok(dir.path(), &["verify"]);
    assert!(report.contains("chain: checked"), "{report}");
    assert!(report.contains("the hash chain holds"), "{report}");
}

#[test]
fn a_payload_byte_that_still_decodes_is_named() {
    let dir = story_data_dir();
    // A Kari's email in the registration's payload: one letter changed
    // still decodes, so only the chain tells.
    let position = 1;
    let connection = connection(&dir);
    let (type_name, version, payload): (String, u16, Vec<u8>) = connection
        .query_row(
            "SELECT type_name, schema_version, payload FROM events WHERE position = ?1",
            [position],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    let index = payload
        .iter()
        .position(|byte| byte.is_ascii_lowercase())
        .unwrap();
    let mut altered = payload.clone();
    altered[index] ^= 0x01;
    assert!(migrations::decode(&type_name, version, &altered).is_ok());
    connection
        .execute(
            "UPDATE events SET payload = ?1 WHERE position = ?2",
            rusqlite::params![altered, position],
        )
        .unwrap();
    let report = fails_at(&dir, 1, &[]);
    assert!(report.contains("FAILED, 1 problem(s)"), "{report}");
    assert!(
        report.contains("the hash chain breaks: the stored link does not match"),
        "{report}"
    );
}

#[test]
fn a_metadata_byte_is_named() {
    let dir = story_data_dir();
    flip_last_byte(&dir, "events", "metadata", "position", 7);
    let report = fails_at(&dir, 7, &[]);
    assert!(report.contains("the hash chain breaks"), "{report}");
}

#[test]
fn a_type_name_byte_is_named() {
    let dir = story_data_dir();
    flip_last_byte(&dir, "events", "type_name", "position", 9);
    fails_at(&dir, 9, &[]);
}

#[test]
fn a_stream_name_byte_is_named_at_the_streams_first_event() {
    let dir = story_data_dir();
    let (stream_id, first): (i64, i64) = connection(&dir)
        .query_row(
            "SELECT stream_id, min(position) FROM events WHERE position >= 10",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let first_of_stream: i64 = connection(&dir)
        .query_row(
            "SELECT min(position) FROM events WHERE stream_id = ?1",
            [stream_id],
            |row| row.get(0),
        )
        .unwrap();
    assert!(first_of_stream <= first);
    flip_last_byte(&dir, "streams", "name", "stream_id", stream_id);
    fails_at(&dir, first_of_stream as u64, &[]);
}

#[test]
fn a_changed_revision_is_named() {
    let dir = story_data_dir();
    connection(&dir)
        .execute(
            "UPDATE events SET revision = revision + 100 WHERE position = 11",
            [],
        )
        .unwrap();
    fails_at(&dir, 11, &[]);
}

#[test]
fn a_removed_event_is_named_at_the_next_one() {
    let dir = story_data_dir();
    connection(&dir)
        .execute("DELETE FROM events WHERE position = 5", [])
        .unwrap();
    let report = fails_at(&dir, 6, &[]);
    assert!(report.contains("positions 5 to 5 are missing"), "{report}");
}

#[test]
fn two_swapped_events_are_named_at_the_first() {
    let dir = story_data_dir();
    connection(&dir)
        .execute_batch(
            "UPDATE events SET position = -1 WHERE position = 4;
             UPDATE events SET position = 4 WHERE position = 8;
             UPDATE events SET position = 8 WHERE position = -1;",
        )
        .unwrap();
    fails_at(&dir, 4, &[]);
}

#[test]
fn an_inserted_event_is_named() {
    let dir = story_data_dir();
    // Make room after position 5 and copy event 5 there under a new id,
    // with the link the event before it has: a forger's best guess.
    connection(&dir)
        .execute_batch(
            "UPDATE events SET position = position + 1000 WHERE position > 5;
             UPDATE events SET position = position - 999 WHERE position > 1000;
             INSERT INTO events (position, stream_id, revision, event_id, type_name,
                 schema_version, recorded_at, metadata, payload, chain)
             SELECT 6, stream_id, revision + 50, randomblob(16), type_name, schema_version,
                 recorded_at, metadata, payload, chain FROM events WHERE position = 5;",
        )
        .unwrap();
    fails_at(&dir, 6, &[]);
}

#[test]
fn a_cut_tail_is_found_only_against_a_saved_head() {
    let dir = story_data_dir();
    let saved = dir.path().join("head.txt");
    let printed = stdout_ok(dir.path(), &["head", "--out", saved.to_str().unwrap()]);
    let text = std::fs::read_to_string(&saved).unwrap();
    assert_eq!(printed, text);
    assert!(
        text.contains(&format!("position: {}\n", story_len())),
        "{text}"
    );
    let held = stdout_ok(
        dir.path(),
        &["verify", "--expect-head", saved.to_str().unwrap()],
    );
    assert!(held.contains(": held by the log"), "{held}");

    connection(&dir)
        .execute(
            "DELETE FROM events WHERE position > ?1",
            [story_len() as i64 - 2],
        )
        .unwrap();
    // The shorter chain holds on its own...
    stdout_ok(dir.path(), &["verify"]);
    // ...but not the saved head.
    let output = replay(
        dir.path(),
        &["verify", "--expect-head", saved.to_str().unwrap()],
    );
    let report = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report}");
    let why = format!(
        "the log ends at position {}, before the saved head at position {}: events were cut from its tail",
        story_len() - 2,
        story_len()
    );
    assert!(report.contains(&why), "{report}");
    assert!(
        report.contains("result: FAILED, the saved head is not in the log"),
        "{report}"
    );
    assert!(stderr.contains(&why), "{stderr}");
}

#[test]
fn a_tail_rewritten_past_the_saved_head_is_found() {
    let dir = story_data_dir();
    let saved = dir.path().join("head.txt");
    stdout_ok(dir.path(), &["head", "--out", saved.to_str().unwrap()]);
    // A forger who recomputes every link after a change: the chain holds,
    // the saved head's link does not.
    let last = story_len() as i64;
    connection(&dir)
        .execute_batch(&format!(
            "UPDATE events SET payload = CAST(payload || x'00' AS BLOB) WHERE position = {last};
             ALTER TABLE events DROP COLUMN chain; PRAGMA user_version = 2;"
        ))
        .unwrap();
    drop(store::sqlite::SqliteStore::open(&store_file(dir.path()), Default::default()).unwrap());
    let output = replay(
        dir.path(),
        &["verify", "--expect-head", saved.to_str().unwrap()],
    );
    let report = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!("the event at position {last} has link"))
            && report.contains("the log was rewritten up to there"),
        "{report}"
    );
}

#[test]
fn a_version_2_file_verifies_without_a_chain_and_gains_one_when_opened() {
    let dir = story_data_dir();
    connection(&dir)
        .execute_batch("ALTER TABLE events DROP COLUMN chain; PRAGMA user_version = 2;")
        .unwrap();
    let before = stdout_ok(dir.path(), &["verify"]);
    assert!(before.contains("chain: absent"), "{before}");
    let refused = replay(dir.path(), &["head"]);
    assert_eq!(refused.status.code(), Some(2));

    drop(store::sqlite::SqliteStore::open(&store_file(dir.path()), Default::default()).unwrap());
    let version: i64 = connection(&dir)
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, store::sqlite::SCHEMA_VERSION);
    let unlinked: i64 = connection(&dir)
        .query_row(
            "SELECT count(*) FROM events WHERE length(chain) != 32",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(unlinked, 0);
    let after = stdout_ok(dir.path(), &["verify"]);
    assert!(after.contains("chain: checked"), "{after}");
    assert!(after.contains("result: OK"), "{after}");
}
