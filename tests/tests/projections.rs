//! The read model snapshot through the real server: written at a graceful
//! stop, used at the next start (which resumes from its checkpoint and sends
//! no mail twice), discarded on `--rebuild-projections`, and an unusable one
//! makes the server rebuild from zero instead of failing.

mod common;

use common::Server;
use serde_json::json;

const SNAPSHOT: &str = "projections.snapshot";

async fn status_of(server: &Server, token: &str, id: &str) -> String {
    let answer = server
        .gql(
            Some(token),
            "query($id: ID!) { application(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    answer["data"]["application"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no status in {answer}"))
        .to_owned()
}

#[tokio::test]
async fn a_restart_resumes_from_the_snapshot_and_sends_no_mail_twice() {
    let server = Server::start(&[]);
    let token = server
        .register("snap@example.no", "Sommer2026abc", "Snap Shot")
        .await;
    let id = server.create_application(&token, "SELF", true).await;
    let first_log = server.wait_log("mail sent").await;
    assert!(first_log.contains("mail sent"), "{first_log}");
    let dir = server.stop_gracefully();
    assert!(
        dir.path().join(SNAPSHOT).exists(),
        "the stopping server wrote its snapshot"
    );

    let server = Server::start_in(dir, &[]);
    let again = server
        .login("snap@example.no", "Sommer2026abc")
        .await
        .unwrap();
    assert_eq!(status_of(&server, &again, &id).await, "SUBMITTED");
    // A new mail after the restart: the outbox handles the log in order, so
    // once it is out, any re-sent old mail would be in the log already.
    let answer = server
        .gql(
            None,
            "mutation($e: String!) { startPasswordRecovery(email: $e) { flowId } }",
            json!({"e": "snap@example.no"}),
        )
        .await;
    assert!(answer["errors"].is_null(), "{answer}");
    server.wait_mail("snap@example.no", "recovery-code").await;
    let log = server.wait_log("mail sent").await;
    assert!(
        log.contains("read models loaded from the snapshot"),
        "the second start used the snapshot: {log}"
    );
    let sent: Vec<&str> = log.lines().filter(|l| l.contains("mail sent")).collect();
    assert!(!sent.is_empty(), "{log}");
    assert!(
        sent.iter().all(|l| l.contains("recovery-code")),
        "only the new mail was sent after the restart: {log}"
    );
}

#[tokio::test]
async fn rebuild_projections_discards_the_snapshot() {
    let server = Server::start(&[]);
    let token = server
        .register("rebuild@example.no", "Sommer2026abc", "Re Build")
        .await;
    let id = server.create_application(&token, "SELF", false).await;
    let dir = server.stop_gracefully();
    assert!(dir.path().join(SNAPSHOT).exists());

    let server = Server::start_in(dir, &["--rebuild-projections"]);
    let again = server
        .login("rebuild@example.no", "Sommer2026abc")
        .await
        .unwrap();
    assert_eq!(status_of(&server, &again, &id).await, "DRAFT");
    let log = server.log();
    assert!(
        log.contains("snapshot deleted; rebuilding from zero"),
        "{log}"
    );
    assert!(
        !log.contains("read models loaded from the snapshot"),
        "{log}"
    );
}

#[tokio::test]
async fn an_unusable_snapshot_is_logged_and_the_models_are_rebuilt() {
    let server = Server::start(&[]);
    let token = server
        .register("corrupt@example.no", "Sommer2026abc", "Cor Rupt")
        .await;
    let id = server.create_application(&token, "SELF", true).await;
    let dir = server.stop_gracefully();
    let path = dir.path().join(SNAPSHOT);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let server = Server::start_in(dir, &[]);
    let again = server
        .login("corrupt@example.no", "Sommer2026abc")
        .await
        .unwrap();
    assert_eq!(status_of(&server, &again, &id).await, "SUBMITTED");
    let log = server.log();
    assert!(
        log.contains("snapshot unusable; rebuilding from zero") && log.contains("corrupt"),
        "{log}"
    );
}
