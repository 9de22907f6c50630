//! Where the data lives: `--store`, `--secret-file` and `new-secret`, the
//! store's memory of its secret, and the outbox's progress kept in the store.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use common::{Server, new_secret, refused_serve};
use serde_json::json;

const PASSWORD: &str = "Sommer2026abc";

#[test]
fn new_secret_writes_an_owner_only_file_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    let first = new_secret(&path);
    assert!(first.status.success(), "{first:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let second = new_secret(&path);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("exists already"),
        "{second:?}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "unchanged");
}

#[tokio::test]
async fn a_server_given_another_secret_refuses_the_store() {
    let server = Server::start(&[]);
    server.register("kari@example.no", PASSWORD, "Kari").await;
    let data = server.stop_gracefully();
    let other = data.path().join("other.key");
    assert!(new_secret(&other).status.success());
    let data_arg = data.path().to_str().unwrap().to_owned();
    let message = refused_serve(&[
        "--data-dir",
        &data_arg,
        "--secret-file",
        other.to_str().unwrap(),
    ]);
    assert!(
        message.contains("not the one this store was initialised with"),
        "{message}"
    );
    // The same secret given by path is accepted.
    let same = data.path().join("secret.key");
    let server = Server::start_in(data, &["--secret-file", same.to_str().unwrap()]);
    assert!(server.login("kari@example.no", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn the_store_may_live_in_a_file_of_its_own() {
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("ledger.sqlite3");
    let store = format!("sqlite:{}", file.display());
    let server = Server::start(&["--store", &store]);
    server.register("ola@example.no", PASSWORD, "Ola").await;
    assert!(file.exists());
    assert!(!server.data_path().join("events.sqlite3").exists());
    let bad = refused_serve(&[
        "--data-dir",
        elsewhere.path().to_str().unwrap(),
        "--store",
        "mysql://root:topsecret@db/x",
    ]);
    assert!(bad.contains("--store takes"), "{bad}");
    assert!(!bad.contains("topsecret"), "{bad}");
}

#[tokio::test]
async fn a_restarted_server_sends_no_mail_twice_since_the_store_keeps_the_outbox_progress() {
    let server = Server::start(&[]);
    server.register("eva@example.no", PASSWORD, "Eva").await;
    let started = server
        .gql(
            None,
            "mutation { startPasswordRecovery(email: \"eva@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    assert!(started["errors"].is_null(), "{started}");
    server.wait_mail("eva@example.no", "recovery-code").await;
    let mut pending = u64::MAX;
    for _ in 0..50 {
        pending = server.metric("caseledger_outbox_pending").await;
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending, 0, "every mail owed was sent");
    let data = server.stop_gracefully();
    assert!(
        !data.path().join("outbox.checkpoint").exists(),
        "the progress is in the store, not in a side file"
    );
    // Mails already sent are gone from the outbox (taken by a mail relay,
    // say); a restart must not write them again.
    for entry in std::fs::read_dir(data.path().join("outbox")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let server = Server::start_in(data, &[]);
    server.register("per@example.no", PASSWORD, "Per").await;
    let mails = server.mails();
    assert!(
        mails.iter().all(|m| m.to == "per@example.no"),
        "old mails came back: {mails:?}"
    );
}

#[tokio::test]
async fn a_mutation_says_its_position_and_a_request_may_wait_for_one() {
    let server = Server::start(&[]);
    let token = server.register("nina@example.no", PASSWORD, "Nina").await;
    let post = |query: &str, headers: Vec<(&'static str, String)>| {
        let mut request = server
            .client
            .post(format!("{}/graphql", server.url))
            .bearer_auth(&token)
            .json(&json!({ "query": query }));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let created = post(
        "mutation { createApplication(input: { kind: STUDY, relation: SELF, applicant: { name: \"Nina\", birthDate: \"2001-02-03\", nationality: \"NOR\" } }) { id } }",
        vec![],
    )
    .await
    .unwrap();
    let position: u64 = created
        .headers()
        .get("caseledger-position")
        .expect("the position header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(position > 0);
    assert!(
        created.headers().get_all("set-cookie").iter().any(|c| c
            .to_str()
            .unwrap()
            .starts_with(&format!("caseledger_position={position};"))),
        "{:?}",
        created.headers()
    );
    // A query names nothing it wrote.
    let listed = post("{ myApplications { edges { node { id } } } }", vec![])
        .await
        .unwrap();
    assert!(listed.headers().get("caseledger-position").is_none());

    let reached = post(
        "{ myApplications { edges { node { id } } } }",
        vec![("caseledger-min-position", position.to_string())],
    )
    .await
    .unwrap();
    assert_eq!(reached.status(), 200);
    let body: serde_json::Value = reached.json().await.unwrap();
    assert_eq!(
        body["data"]["myApplications"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let began = Instant::now();
    let ahead = post(
        "{ me { id } }",
        vec![("caseledger-min-position", (position + 1_000).to_string())],
    )
    .await
    .unwrap();
    assert_eq!(ahead.status(), 503);
    assert_eq!(ahead.headers().get("retry-after").unwrap(), "1");
    assert!(began.elapsed() >= Duration::from_secs(4), "it waited first");
    let body: serde_json::Value = ahead.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["reason"],
        "POSITION_NOT_REACHED"
    );

    let garbage = post(
        "{ me { id } }",
        vec![("caseledger-min-position", "soon".to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(garbage.status(), 400);
}
