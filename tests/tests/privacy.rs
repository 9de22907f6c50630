//! No personal data in logs: run every flow with debug logging, then search
//! the captured server log for every email, name, code, token, password and
//! national identity number used. Also: a graceful stop loses nothing.

mod common;

use std::time::Duration;

use common::{Server, error_code};
use serde_json::json;

#[tokio::test]
async fn no_flow_writes_personal_data_to_the_log() {
    let server = Server::start(&["--service-token", "svc-credential-xyz"]);
    let mut secrets: Vec<String> = Vec::new();

    // Registration, login, logout, wrong password.
    let token = server
        .register(
            "Privat.Person@Example.no",
            "Hemmelig2026abc",
            "Kari Hemmeligsen",
        )
        .await;
    secrets.extend(
        [
            "privat.person@example.no",
            "Privat.Person@Example.no",
            "Hemmelig2026abc",
            "Kari Hemmeligsen",
        ]
        .map(String::from),
    );
    secrets.push(token.clone());
    for mail in server.mails() {
        if let Some(code) = mail.code() {
            secrets.push(code);
        }
    }
    let second = server
        .login("privat.person@example.no", "Hemmelig2026abc")
        .await
        .unwrap();
    secrets.push(second.clone());
    let _ = server
        .login("privat.person@example.no", "FeilPassord99")
        .await;
    secrets.push("FeilPassord99".into());
    server
        .gql(Some(&second), "mutation { logout }", json!({}))
        .await;

    // Recovery for a known and an unknown email.
    for email in ["privat.person@example.no", "ukjent.person@example.no"] {
        server
            .gql(
                None,
                "mutation($e: String!) { startPasswordRecovery(email: $e) { flowId } }",
                json!({"e": email}),
            )
            .await;
    }
    secrets.push("ukjent.person@example.no".into());
    let recovery = server
        .wait_mail("privat.person@example.no", "recovery-code")
        .await;
    secrets.push(recovery.code().unwrap());
    server
        .wait_mail("ukjent.person@example.no", "no-account")
        .await;

    // Applications, booking, caseworker steps, legacy import and refusal.
    let id = server
        .create_application(&token, "FAMILY_MEMBER", true)
        .await;
    secrets.push("Nora Nordmann".into());
    let future = (chrono::Utc::now() + chrono::Duration::days(5)).to_rfc3339();
    server
        .gql(
            Some(&token),
            "mutation($id: ID!, $t: DateTime!) { bookAppointment(applicationId: $id, input: { meetingPoint: SUA, location: \"Skjult Gate 7\", startsAt: $t }) { location } }",
            json!({"id": id, "t": future}),
        )
        .await;
    server
        .wait_mail("privat.person@example.no", "appointment-confirmation")
        .await;
    server
        .gql_with(
            &[("x-service-token", "svc-credential-xyz")],
            "mutation($id: ID!) { registerFeePaid(applicationId: $id, amountNok: 6300) { id } }",
            json!({"id": id}),
        )
        .await;
    secrets.push("svc-credential-xyz".into());
    let file = server.data_path().join("legacy.jsonl");
    std::fs::write(
        &file,
        "{\"reference\": \"OLD-1\", \"submittedAt\": \"2021-01-01T00:00:00Z\", \"kind\": \"WORK\", \"pid\": \"31129912345\"}\n",
    )
    .unwrap();
    assert!(
        server
            .cli(&["import-legacy", "--file", file.to_str().unwrap()])
            .status
            .success()
    );
    secrets.push("31129912345".into());
    let refused = server
        .gql(
            Some(&token),
            "mutation { requestRefund(applicationId: \"OLD-1\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&refused), "NOT_FOUND");
    // Give the log a moment to be flushed by the server.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = server.log();
    assert!(
        log.contains("mail sent"),
        "the log was captured at all: {log}"
    );
    let lower = log.to_lowercase();
    for secret in &secrets {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "the server log contains personal data or a secret ({} chars)",
            secret.len()
        );
    }
}

#[tokio::test]
async fn a_graceful_stop_keeps_everything_acknowledged() {
    let server = Server::start(&[]);
    let token = server
        .register("stop@example.no", "Sommer2026abc", "Stopper")
        .await;
    let id = server.create_application(&token, "SELF", true).await;
    let dir = server.stop_gracefully();
    let server = Server::start_in(dir, &[]);
    let again = server
        .login("stop@example.no", "Sommer2026abc")
        .await
        .unwrap();
    let app = server
        .gql(
            Some(&again),
            "query($id: ID!) { application(id: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(app["data"]["application"]["status"], "SUBMITTED");
}
