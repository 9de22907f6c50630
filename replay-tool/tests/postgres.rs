//! The auditors' commands on a PostgreSQL store (`--store postgres://…`)
//! give what they give on the embedded store for the same history. Needs
//! `CASELEDGER_TEST_POSTGRES` (see README, "PostgreSQL tests").

mod common;

use common::{SECRET, append_story, stdout_ok, story_data_dir, story_len};

/// A fresh database on the test server; its URL.
fn fresh_database() -> String {
    let server = std::env::var("CASELEDGER_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "CASELEDGER_TEST_POSTGRES is not set: start a throwaway PostgreSQL server as README.md (\"PostgreSQL tests\") shows, e.g. dir=$(mktemp -d); export CASELEDGER_TEST_POSTGRES=$(.ci/postgres start \"$dir\")"
        )
    });
    let name = format!("caseledger_replay_{}", uuid::Uuid::new_v4().simple());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
            .await
            .expect("connect to the test PostgreSQL server");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
    });
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (server.clone(), String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{name}{query}", &base[..path])
}

#[test]
fn verify_history_and_export_read_a_postgres_store() {
    let url = fresh_database();
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
