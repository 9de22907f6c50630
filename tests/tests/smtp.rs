//! `--mail smtp://host:port`: the server's outbox delivers to a real SMTP
//! server, and a mail owed while the SMTP server is down arrives once it is up.

mod common;

#[path = "../support/smtp_sink.rs"]
mod smtp_sink;

use common::Server;
use serde_json::json;
use smtp_sink::{SmtpServer, free_port};

#[tokio::test]
async fn registration_codes_reach_a_real_smtp_server_and_register_the_account() {
    let port = free_port();
    let smtp = SmtpServer::start(port).await;
    let mail = format!("smtp://127.0.0.1:{port}");
    let server = Server::start(&["--mail", &mail]);
    let started = server
        .gql(
            None,
            "mutation { startRegistration(email: \"smtp.user@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let received = smtp.wait_for(1).await;
    assert!(received[0].contains("smtp.user@example.no"));
    assert!(received[0].contains("X-Caseledger-Kind: registration-code"));
    let code = received[0]
        .replace("\r\n", "\n")
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.chars().all(|c| c.is_ascii_digit()))
        .expect("a code in clear")
        .to_owned();
    let verified = server
        .gql(
            None,
            "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }",
            json!({"f": flow, "c": code}),
        )
        .await;
    assert_eq!(
        verified["data"]["verifyRegistrationCode"], true,
        "{verified}"
    );
    assert!(
        server.mails().is_empty(),
        "nothing goes to the file outbox with SMTP"
    );
}

#[tokio::test]
async fn a_mail_owed_while_the_smtp_server_is_down_is_sent_once_it_is_up() {
    let port = free_port();
    let mail = format!("smtp://127.0.0.1:{port}");
    let server = Server::start(&["--mail", &mail]);
    server
        .gql(
            None,
            "mutation { startPasswordRecovery(email: \"late@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let smtp = SmtpServer::start(port).await;
    let received = smtp.wait_for(1).await;
    assert!(received[0].contains("X-Caseledger-Kind: no-account"));
}
