//! The auditors' commands on a PostgreSQL store (`--store postgres://…`)
//! give what they give on the embedded store for the same history. Needs
//! `CASELEDGER_TEST_POSTGRES` (see README, "PostgreSQL tests").

mod common;

use common::{SECRET, append_story, stdout_ok, story_data_dir, story_len};

#[test]
fn verify_history_and_export_read_a_postgres_store() {
    let url = story_database();
    let node = tempfile::tempdir().unwrap();
    std::fs::write(node.path().join("secret.key"), hex::encode(SECRET)).unwrap();
    let embedded = story_data_dir();

    let verified = stdout_ok(node.path(), &["--store", &url, "verify"]);
    assert!(
        verified.contains(&format!("events: {}", story_len())),
        "{verified}"
    );
    let line = |text: &str, prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_owned)
    };
    let on_file = stdout_ok(embedded.path(), &["verify"]);
    assert_eq!(line(&verified, "streams"), line(&on_file, "streams"));

    let exported = stdout_ok(
        node.path(),
        &["--store", &url, "export", "--format", "jsonl"],
    );
    let exported_file = stdout_ok(embedded.path(), &["export", "--format", "jsonl"]);
    assert_eq!(exported.lines().count(), exported_file.lines().count());

    let history = stdout_ok(
        node.path(),
        &[
            "--store",
            &url,
            "history",
            "--email",
            "kari.nordmann@example.no",
        ],
    );
    let history_file = stdout_ok(
        embedded.path(),
        &["history", "--email", "kari.nordmann@example.no"],
    );
    let types = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.chars().next().is_some_and(char::is_uppercase))
            })
            .map(str::to_owned)
            .collect()
    };
    assert!(!types(&history).is_empty(), "{history}");
    assert_eq!(types(&history), types(&history_file));
}

/// A fresh database holding the story; its URL.
fn story_database() -> String {
    let url = test_support::postgres::fresh_database("caseledger_replay");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = store_postgres::PostgresStore::connect(&url, Default::default())
            .await
            .unwrap();
        append_story(&store).await;
    });
    url
}

/// Run `sql` on the database at `url`.
fn tamper(url: &str, sql: &str) {
    test_support::postgres::execute(url, sql).expect("tampering with the log");
}

#[test]
fn every_kind_of_tampering_with_a_postgres_log_is_named() {
    let node = tempfile::tempdir().unwrap();
    let cases: [(&str, u64); 8] = [
        (
            "UPDATE caseledger_events SET payload = set_byte(payload, 0, get_byte(payload, 0) # 1) WHERE position = 3",
            3,
        ),
        (
            "UPDATE caseledger_events SET metadata = set_byte(metadata, length(metadata) - 1, \
             get_byte(metadata, length(metadata) - 1) # 1) WHERE position = 7",
            7,
        ),
        (
            "UPDATE caseledger_events SET type_name = type_name || 'x' WHERE position = 9",
            9,
        ),
        (
            "UPDATE caseledger_streams SET name = name || 'x' WHERE stream_id = \
             (SELECT stream_id FROM caseledger_events WHERE position = 1)",
            1,
        ),
        (
            "UPDATE caseledger_events SET revision = revision + 100 WHERE position = 11",
            11,
        ),
        ("DELETE FROM caseledger_events WHERE position = 5", 6),
        (
            "UPDATE caseledger_events SET position = -1 WHERE position = 4;
             UPDATE caseledger_events SET position = 4 WHERE position = 8;
             UPDATE caseledger_events SET position = 8 WHERE position = -1;",
            4,
        ),
        (
            "UPDATE caseledger_events SET position = position + 1000 WHERE position > 5;
             UPDATE caseledger_events SET position = position - 999 WHERE position > 1000;
             INSERT INTO caseledger_events SELECT 6, stream_id, revision + 50, gen_random_uuid(),
                 type_name, schema_version, recorded_at, metadata, payload, chain
                 FROM caseledger_events WHERE position = 5;",
            6,
        ),
    ];
    for (sql, position) in cases {
        let url = story_database();
        stdout_ok(node.path(), &["--store", &url, "verify"]);
        tamper(&url, sql);
        let output = common::replay(node.path(), &["--store", &url, "verify"]);
        let report = String::from_utf8(output.stdout).unwrap();
        assert_eq!(output.status.code(), Some(1), "{sql}\n{report}");
        assert!(
            report.contains(&format!("first bad event: position {position},")),
            "{sql}\n{report}"
        );
    }
}

#[test]
fn a_cut_tail_of_a_postgres_log_is_found_against_a_saved_head() {
    let node = tempfile::tempdir().unwrap();
    let url = story_database();
    let saved = node.path().join("head.txt");
    let saved = saved.to_str().unwrap();
    stdout_ok(node.path(), &["--store", &url, "head", "--out", saved]);
    let held = stdout_ok(
        node.path(),
        &["--store", &url, "verify", "--expect-head", saved],
    );
    assert!(held.contains(": held by the log"), "{held}");
    tamper(
        &url,
        &format!(
            "DELETE FROM caseledger_events WHERE position > {}",
            story_len() - 1
        ),
    );
    stdout_ok(node.path(), &["--store", &url, "verify"]);
    let output = common::replay(
        node.path(),
        &["--store", &url, "verify", "--expect-head", saved],
    );
    let report = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("events were cut from its tail"), "{report}");
}
