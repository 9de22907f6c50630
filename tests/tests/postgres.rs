//! The whole system on a PostgreSQL store (`--store postgres://…`), over
//! HTTP: registration, login, My applications, the purge, a restart that
//! keeps everything, the secret check, and a clear refusal of a server that
//! cannot be reached. Needs `CASELEDGER_TEST_POSTGRES` (see README).

mod common;

use std::time::{Duration, Instant};

use common::{Server, error_code};
use serde_json::{Value, json};

const PASSWORD: &str = "Sommer2026abc";

async fn me(server: &Server, token: &str) -> Value {
    server
        .gql(Some(token), "{ me { id email name } }", json!({}))
        .await["data"]["me"]
        .clone()
}

#[tokio::test]
async fn registration_login_and_my_applications_live_in_postgres_across_a_restart() {
    let server = Server::start_postgres(&[]);
    let token = server.register("kari@example.no", PASSWORD, "Kari").await;
    assert_eq!(me(&server, &token).await["email"], "kari@example.no");
    let id = server.create_application(&token, "SELF", true).await;
    let wrong = server
        .login("kari@example.no", "Wrong2026abc")
        .await
        .unwrap_err();
    assert_eq!(error_code(&wrong), "INVALID_CREDENTIALS");

    // Nothing of the log is in the data dir: a new data dir (a new node)
    // on the same store and secret sees it all.
    let store_args = server.store_args.clone();
    let data = server.stop_gracefully();
    assert!(!data.path().join("events.sqlite3").exists());
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(
        data.path().join("secret.key"),
        fresh.path().join("secret.key"),
    )
    .unwrap();
    let args: Vec<&str> = store_args.iter().map(String::as_str).collect();
    let server = Server::start_in(fresh, &args);
    let again = server.login("kari@example.no", PASSWORD).await.unwrap();
    let listed = server
        .gql(
            Some(&again),
            "{ myApplications { edges { node { id status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["myApplications"]["edges"][0]["node"]["id"],
        json!(id),
        "{listed}"
    );
    // Mails went out once, from the first node; the second sends none again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.mails().is_empty(), "{:?}", server.mails());
}

#[tokio::test]
async fn the_purge_runs_on_the_postgres_store() {
    let server = Server::start_postgres(&[]);
    let token = server.register("gone@example.no", PASSWORD, "Gone").await;
    server.create_application(&token, "SELF", true).await;
    let in_two_years = (chrono::Utc::now() + chrono::Duration::days(2 * 366)).to_rfc3339();
    let run = server.cli(&["purge-inactive", "--as-of", &in_two_years]);
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && out.contains("deleted 1"),
        "{out} {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut ended = false;
    for _ in 0..100 {
        if me(&server, &token).await.is_null() {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ended, "the server saw the job's deletion");
    // The email is free again.
    server.register("gone@example.no", PASSWORD, "Back").await;
}

/// `serve` on a fresh data dir with `args` must refuse to start; its stderr.
fn refused_serve(args: &[&str]) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut all = vec!["--data-dir", data.path().to_str().unwrap()];
    all.extend_from_slice(args);
    common::refused_serve(&all)
}

#[tokio::test]
async fn a_node_with_another_secret_is_refused_by_the_store() {
    let server = Server::start_postgres(&[]);
    server.register("ola@example.no", PASSWORD, "Ola").await;
    let message = refused_serve(&[&server.store_args[0], &server.store_args[1]]);
    assert!(
        message.contains("not the one this store was initialised with"),
        "{message}"
    );
}

#[test]
fn an_unreachable_server_is_named_and_the_node_does_not_start() {
    // Nothing listens on port 9 of the loopback.
    let message = refused_serve(&["--store", "postgres://app:topsecret@127.0.0.1:9/ledger"]);
    assert!(message.contains("127.0.0.1:9"), "{message}");
    assert!(!message.contains("topsecret"), "{message}");
}

#[tokio::test]
async fn an_outage_of_postgres_is_answered_503_and_the_server_recovers() {
    let postgres = test_support::postgres::OwnServer::start();
    let server = Server::start(&["--store", &postgres.url]);
    let token = server.register("tone@example.no", PASSWORD, "Tone").await;

    postgres.stop();
    let create = "mutation { createApplication(input: { kind: VISIT, relation: SELF, applicant: { name: \"Tone\", birthDate: \"1980-01-02\", nationality: \"NOR\" } }) { id } }";
    let began = Instant::now();
    let answer = server
        .client
        .post(format!("{}/graphql", server.url))
        .bearer_auth(&token)
        .json(&json!({ "query": create }))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let retry_after = answer.headers().get("retry-after").cloned();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, 503, "during the outage: {body}");
    assert!(retry_after.is_some());
    assert_eq!(error_code(&body), "UNAVAILABLE", "{body}");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "answered within the request's budget"
    );
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internals in the answer: {body}"
    );
    let health = server
        .client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the process lives on");

    postgres.start_again();
    let mut created = Value::Null;
    for _ in 0..60 {
        created = server.gql(Some(&token), create, json!({})).await;
        if created["errors"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        created["data"]["createApplication"]["id"].is_string(),
        "{created}"
    );
    let listed = server
        .gql(
            Some(&token),
            "{ myApplications { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        listed["data"]["myApplications"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "the refused request stored nothing, the later one stored one: {listed}"
    );
}
