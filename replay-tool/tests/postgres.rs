//! The auditors' commands on a PostgreSQL store (`--store postgres://…`)
//! give what they give on the embedded store for the same history. Needs
//! `CASELEDGER_TEST_POSTGRES` (see README, "PostgreSQL tests").

mod common;

use common::{SECRET, append_story, stdout_ok, story_data_dir, story_len};

#[test]
fn verify_history_and_export_read_a_postgres_store() {
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
    drop(runtime);
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
