//! What the mail sender logs: the kind and position of a mail and what
//! happened to it, never the address or the code. The only test in its
//! binary, so that its thread-local log capture shares the process with no
//! other test's logging.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::mail::{
    DEFAULT_FROM, MailContent, MailSender, MailTransportConfig, OutgoingMail, RetryPolicy,
};

/// Collects everything the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn code_mail(key: &str, position: u64, code: &str) -> OutgoingMail {
    OutgoingMail {
        key: key.to_owned(),
        position,
        to: "ola@example.org".to_owned(),
        content: MailContent::RegistrationCode {
            code: code.to_owned(),
            expires_at: "2025-07-03T12:05:00Z".parse().unwrap(),
        },
    }
}

async fn file_sender(dir: &Path) -> MailSender {
    MailSender::new(
        MailTransportConfig::File {
            dir: dir.to_owned(),
        },
        DEFAULT_FROM.parse().unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn logs_name_the_kind_and_position_but_never_the_address_or_code() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let temp = tempfile::tempdir().unwrap();
    let outbox = temp.path().join("outbox");
    let sender = file_sender(&outbox).await.with_retry_policy(RetryPolicy {
        attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
    });
    sender
        .send(&code_mail("event-a", 7, "314159"))
        .await
        .unwrap();
    let mut invalid = code_mail("event-b", 8, "271828");
    invalid.to = "ola at example.org".to_owned();
    sender.send(&invalid).await.unwrap_err();
    std::fs::remove_dir_all(&outbox).unwrap();
    std::fs::write(&outbox, b"in the way").unwrap();
    sender
        .send(&code_mail("event-c", 9, "161803"))
        .await
        .unwrap_err();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("mail sent"), "{logs}");
    assert!(logs.contains("kind=\"registration-code\""), "{logs}");
    assert!(logs.contains("position=7"), "{logs}");
    assert!(logs.contains("will retry"), "{logs}");
    assert!(logs.contains("giving up"), "{logs}");
    for secret in ["ola", "example.org", "314159", "271828", "161803"] {
        assert!(!logs.contains(secret), "{secret:?} leaked into:\n{logs}");
    }
}
