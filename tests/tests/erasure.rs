//! Erasure that really erases: after `purge-inactive`, no byte of the
//! person's email or name is in any file of the data dir (the mail outbox's
//! `.eml` files aside), while the history still replays: `verify` passes,
//! `history` shows the fields erased, and a rebuild gives the live digest.

mod common;

use std::path::PathBuf;

use common::*;

const PASSWORD: &str = "Sommer2026abc";
const EMAIL: &str = "eira.slettesen@example.no";
const NAME: &str = "Eira Slettesen";
const KEPT_EMAIL: &str = "kjell.beholder@example.no";
const KEPT_NAME: &str = "Kjell Beholder";

async fn log_in(server: &Server, email: &str) -> bool {
    server.login(email, PASSWORD).await.is_ok()
}

#[tokio::test]
async fn a_purged_person_leaves_no_byte_of_email_or_name_and_the_history_still_replays() {
    let server = Server::start(&[]);
    let token = server.register(EMAIL, PASSWORD, NAME).await;
    let application = server.create_application(&token, "SELF", true).await;
    // A recovery flow too: its email is personal data of the same person.
    let recovery = server
        .gql(
            None,
            "mutation($e: String!) { startPasswordRecovery(email: $e) { flowId } }",
            serde_json::json!({"e": EMAIL}),
        )
        .await;
    assert!(
        recovery["data"]["startPasswordRecovery"]["flowId"].is_string(),
        "{recovery}"
    );
    let data = server.data_path().to_path_buf();
    // The log keeps personal data only sealed (the read models' snapshot
    // holds the living in clear, and is rewritten when they go).
    let in_store = |needle: &str| -> Vec<PathBuf> {
        files_holding(&data, needle.as_bytes())
            .into_iter()
            .filter(|path| path.to_string_lossy().contains("events"))
            .collect()
    };
    assert!(
        in_store(EMAIL).is_empty() && in_store(NAME).is_empty(),
        "{:?} {:?}",
        in_store(EMAIL),
        in_store(NAME)
    );
    let before = replay(
        &data,
        &["history", "--email", EMAIL, "--show-personal-data"],
    );
    let before = String::from_utf8_lossy(&before.stdout).into_owned();
    assert!(
        before.contains(NAME),
        "the history opens sealed fields: {before}"
    );

    // Stop the server so that it writes its snapshot (names in it), then purge.
    let dir = server.stop_gracefully();
    let in_two_years = (chrono::Utc::now() + chrono::Duration::days(2 * 366)).to_rfc3339();
    let server = Server::start_in(dir, &[]);
    let kept = server.register(KEPT_EMAIL, PASSWORD, KEPT_NAME).await;
    let run = server.cli(&["purge-inactive", "--as-of", &in_two_years]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let purged = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        purged.contains("deleted 2") && purged.contains("emails released 2"),
        "{purged}"
    );
    let dir = server.stop_gracefully();
    let data = dir.path().to_path_buf();

    for needle in [EMAIL, NAME, KEPT_EMAIL, KEPT_NAME] {
        let found = files_holding(&data, needle.as_bytes());
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
    }

    let verify = replay(&data, &["verify"]);
    assert!(verify.status.success(), "{verify:?}");
    let rebuild = replay(&data, &["rebuild"]);
    let rebuilt = String::from_utf8_lossy(&rebuild.stdout);
    assert!(
        rebuild.status.success() && rebuilt.contains("MATCHES the snapshot"),
        "{rebuilt} {}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    let after = replay(
        &data,
        &[
            "history",
            "--application",
            &application,
            "--show-personal-data",
        ],
    );
    let after = String::from_utf8_lossy(&after.stdout).into_owned();
    assert!(
        after.contains("ApplicationSubmitted") || after.contains("Submitted"),
        "{after}"
    );
    let export = replay(&data, &["export", "--show-personal-data"]);
    let exported = String::from_utf8_lossy(&export.stdout);
    assert!(export.status.success(), "{export:?}");
    assert!(
        !exported.contains(EMAIL) && !exported.contains(NAME),
        "{exported}"
    );
    assert!(
        exported.contains(domain_erased()),
        "the export shows the fields erased"
    );

    // The server starts again on the data dir; the person is gone, the
    // address free again.
    let server = Server::start_in(dir, &[]);
    assert!(!log_in(&server, EMAIL).await);
    let again = server.register(EMAIL, PASSWORD, NAME).await;
    assert!(!again.is_empty());
    drop(kept);
}

/// Rows of `sql` (one count) on the PostgreSQL store at `url`.
async fn count(url: &str, sql: &str, needle: &[u8]) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL");
    tokio::spawn(connection);
    let row = if sql.contains("$1") {
        client.query_one(sql, &[&needle]).await
    } else {
        client.query_one(sql, &[]).await
    };
    row.expect("count").get(0)
}

#[tokio::test]
async fn on_postgres_the_key_row_goes_and_no_stored_byte_holds_the_person() {
    let server = Server::start_postgres(&[]);
    let url = server.store_args[1].clone();
    let email = "pia.postgres@example.no";
    let name = "Pia Postgresdottir";
    server.register(email, PASSWORD, name).await;
    let in_events = "SELECT count(*) FROM caseledger_events \
                     WHERE position($1::bytea IN payload) > 0 OR position($1::bytea IN metadata) > 0";
    for needle in [email, name] {
        assert_eq!(
            count(&url, in_events, needle.as_bytes()).await,
            0,
            "{needle} sealed"
        );
    }
    let keys = "SELECT count(*) FROM caseledger_keys";
    let before = count(&url, keys, b"").await;
    assert!(before >= 1);

    let in_two_years = (chrono::Utc::now() + chrono::Duration::days(2 * 366)).to_rfc3339();
    let run = server.cli(&["purge-inactive", "--as-of", &in_two_years]);
    let purged = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        purged.contains("deleted 1") && purged.contains("emails released 1"),
        "{purged} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        count(&url, keys, b"").await,
        before - 1,
        "the person's key row is gone"
    );
    let dir = server.stop_gracefully();
    for needle in [email, name] {
        let found = files_holding(dir.path(), needle.as_bytes());
        assert!(found.is_empty(), "{needle:?} is still in {found:?}");
        assert_eq!(count(&url, in_events, needle.as_bytes()).await, 0);
    }
}

fn domain_erased() -> &'static str {
    "<erased>"
}
