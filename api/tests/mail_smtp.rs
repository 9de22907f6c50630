//! The SMTP transport against a real SMTP server: aiosmtpd (Python) on
//! loopback, started by the tests themselves.
//!
//! Needs `python3` with the `aiosmtpd` package (`pip install aiosmtpd`, or
//! Debian's `python3-aiosmtpd`); set `PYTHON` to use another interpreter.
//! Without it every test here fails and says how to install it.

use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../../tests/support/smtp_sink.rs"]
mod smtp_sink;

use smtp_sink::{SmtpServer, free_port, require_aiosmtpd};

use api::mail::{
    DEFAULT_FROM, MailContent, MailError, MailSender, MailTransportConfig, OutgoingMail,
    RetryPolicy,
};

async fn smtp_sender(port: u16, retry: RetryPolicy) -> MailSender {
    let config =
        MailTransportConfig::parse(&format!("smtp://127.0.0.1:{port}"), Path::new("unused"))
            .unwrap();
    MailSender::new(config, DEFAULT_FROM.parse().unwrap())
        .await
        .unwrap()
        .with_retry_policy(retry)
        .with_smtp_timeout(Duration::from_secs(5))
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    let (headers, _) = raw.split_once("\r\n\r\n")?;
    headers.split("\r\n").find_map(|line| {
        line.split_once(": ")
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

fn body(raw: &str) -> &str {
    raw.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

fn registration_code(key: &str, to: &str, code: &str) -> OutgoingMail {
    OutgoingMail {
        key: key.to_owned(),
        position: 17,
        to: to.to_owned(),
        content: MailContent::RegistrationCode {
            code: code.to_owned(),
            expires_at: "2025-07-03T12:05:00Z".parse().unwrap(),
        },
    }
}

#[tokio::test]
async fn mails_reach_a_real_smtp_server_with_the_code_in_clear() {
    let port = free_port();
    let server = SmtpServer::start(port).await;
    let sender = smtp_sender(port, RetryPolicy::default()).await;

    sender
        .send(&registration_code("event-1", "kari@example.org", "503127"))
        .await
        .unwrap();
    sender
        .send(&OutgoingMail {
            key: "event-2".to_owned(),
            position: 18,
            to: "ola@example.org".to_owned(),
            content: MailContent::AppointmentConfirmation {
                reference: "UDI-2025-AB12".to_owned(),
                meeting_point: "Police".to_owned(),
                location: "Oslo politidistrikt, Grønland".to_owned(),
                starts_at: "2025-11-04T08:15:00Z".parse().unwrap(),
                documents_en: vec!["Valid passport".to_owned()],
                documents_nb: vec!["Gyldig pass".to_owned()],
            },
        })
        .await
        .unwrap();

    let received = server.wait_for(2).await;
    assert_eq!(received.len(), 2);

    let code_mail = &received[0];
    assert_eq!(
        header(code_mail, "X-Test-Rcpt-To"),
        Some("kari@example.org")
    );
    assert_eq!(header(code_mail, "To"), Some("kari@example.org"));
    assert_eq!(header(code_mail, "From"), Some("UDI <noreply@udi.no>"));
    assert_eq!(
        header(code_mail, "X-Caseledger-Kind"),
        Some("registration-code")
    );
    assert_eq!(header(code_mail, "Content-Transfer-Encoding"), Some("8bit"));
    assert!(
        body(code_mail).split("\r\n").any(|line| line == "503127"),
        "the code arrives in clear on its own line:\n{code_mail}"
    );
    assert!(
        body(code_mail).contains("bokmål"),
        "8bit text arrives intact"
    );

    let appointment = &received[1];
    assert_eq!(
        header(appointment, "X-Test-Rcpt-To"),
        Some("ola@example.org")
    );
    assert_eq!(
        header(appointment, "X-Caseledger-Kind"),
        Some("appointment-confirmation")
    );
    assert!(body(appointment).contains("Oslo politidistrikt, Grønland"));
    assert!(body(appointment).contains("FØLGEBREV / COVER LETTER"));
}

#[tokio::test]
async fn a_server_that_comes_up_during_the_retry_window_gets_the_mail() {
    require_aiosmtpd();
    let port = free_port();
    let sender = smtp_sender(
        port,
        RetryPolicy {
            attempts: 12,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        },
    )
    .await;

    let sending = tokio::spawn({
        let sender = sender.clone();
        async move {
            sender
                .send(&registration_code("event-1", "late@example.org", "640912"))
                .await
        }
    });
    // Let the first attempts fail against a closed port.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!sending.is_finished(), "the sender is still retrying");

    let server = SmtpServer::start(port).await;
    tokio::time::timeout(Duration::from_secs(20), sending)
        .await
        .expect("the retries end within the window")
        .unwrap()
        .expect("a later attempt reaches the server");

    let received = server.wait_for(1).await;
    assert_eq!(received.len(), 1, "delivered exactly once");
    assert_eq!(
        header(&received[0], "X-Test-Rcpt-To"),
        Some("late@example.org")
    );
    assert!(
        body(&received[0])
            .split("\r\n")
            .any(|line| line == "640912")
    );
}

#[tokio::test]
async fn a_permanent_refusal_is_returned_at_once_without_retrying() {
    let port = free_port();
    let server = SmtpServer::start(port).await;
    let sender = smtp_sender(
        port,
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_secs(3),
            max_backoff: Duration::from_secs(3),
        },
    )
    .await;

    let started = Instant::now();
    let error = sender
        .send(&registration_code(
            "event-1",
            "reject@example.org",
            "503127",
        ))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no backoff on a permanent failure (took {:?})",
        started.elapsed()
    );
    assert!(
        matches!(&error, MailError::SmtpRejected { reason } if reason == "550"),
        "{error:?}"
    );
    assert!(!error.is_transient());
    assert!(
        !error.to_string().contains("reject@example.org"),
        "errors never carry the address"
    );
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn an_unreachable_server_is_given_up_after_the_configured_attempts() {
    let port = free_port();
    let sender = smtp_sender(
        port,
        RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
        },
    )
    .await;
    let error = sender
        .send(&registration_code("event-1", "kari@example.org", "503127"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, MailError::SmtpUnavailable { attempts: 3, .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
}
