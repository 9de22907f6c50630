//! Getting rendered mail out of the process: the `file` outbox (one `.eml`
//! per mail, written atomically under a stable name) and plain SMTP, both
//! with bounded retries and exponential backoff on transient failures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{MailError, OutgoingMail, render};

/// Where mail goes, parsed from the `--mail` flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransportConfig {
    /// One RFC 5322 `.eml` file per mail in `dir` (`<data-dir>/outbox`).
    File {
        /// The outbox directory; created when missing.
        dir: PathBuf,
    },
    /// Plain SMTP (no TLS, no authentication) to a local or trusted relay.
    Smtp {
        /// Host name or IP address (an IPv6 address without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl MailTransportConfig {
    /// Parses the `--mail` flag: exactly `file` (the outbox under
    /// `data_dir`) or `smtp://host:port` (IPv6 as `smtp://[::1]:2525`).
    pub fn parse(flag: &str, data_dir: &Path) -> Result<Self, MailError> {
        if flag == "file" {
            return Ok(MailTransportConfig::File {
                dir: data_dir.join("outbox"),
            });
        }
        let invalid = || MailError::InvalidTransport(flag.to_owned());
        let rest = flag.strip_prefix("smtp://").ok_or_else(invalid)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(invalid)?;
        let host = match host.strip_prefix('[') {
            Some(bracketed) => {
                let inner = bracketed.strip_suffix(']').ok_or_else(invalid)?;
                if !inner.contains(':') {
                    return Err(invalid());
                }
                inner
            }
            None if host.contains(':') => return Err(invalid()),
            None => host,
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !host_ok {
            return Err(invalid());
        }
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let port: u16 = port
            .parse()
            .ok()
            .filter(|port| *port != 0)
            .ok_or_else(invalid)?;
        Ok(MailTransportConfig::Smtp {
            host: host.to_owned(),
            port,
        })
    }
}

/// How often and how patiently a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first (0 counts as 1).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    /// Upper bound of a single wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waiting 200 ms, 400 ms, 800 ms and 1.6 s (at most 5 s).
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `failed_attempt` (1-based).
    pub fn backoff_after(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

/// How long one SMTP command may take before the attempt counts as failed.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders and delivers [`OutgoingMail`] through the configured transport.
#[derive(Debug, Clone)]
pub struct MailSender {
    from: Mailbox,
    retry: RetryPolicy,
    transport: Transport,
}

#[derive(Debug, Clone)]
enum Transport {
    File {
        dir: PathBuf,
    },
    Smtp {
        host: String,
        port: u16,
        client: AsyncSmtpTransport<Tokio1Executor>,
    },
}

fn smtp_client(host: &str, port: u16, timeout: Duration) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .timeout(Some(timeout))
        .build()
}

/// One failed attempt, before deciding whether to retry.
enum AttemptFailure {
    Permanent(MailError),
    TransientIo(std::io::Error),
    TransientSmtp(String),
}

impl MailSender {
    /// A sender for `config`, mailing as `from` (normally
    /// [`super::DEFAULT_FROM`]), with the default [`RetryPolicy`] and
    /// [`DEFAULT_SMTP_TIMEOUT`]. Creates the outbox directory; does not
    /// contact the SMTP server (a server that is down now may be up by the
    /// time a mail is sent).
    pub async fn new(config: MailTransportConfig, from: Mailbox) -> Result<Self, MailError> {
        let transport = match config {
            MailTransportConfig::File { dir } => {
                tokio::fs::create_dir_all(&dir)
                    .await
                    .map_err(|source| MailError::File {
                        attempts: 1,
                        source,
                    })?;
                Transport::File { dir }
            }
            MailTransportConfig::Smtp { host, port } => Transport::Smtp {
                client: smtp_client(&host, port, DEFAULT_SMTP_TIMEOUT),
                host,
                port,
            },
        };
        Ok(MailSender {
            from,
            retry: RetryPolicy::default(),
            transport,
        })
    }

    /// The same sender with another retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The same sender with another per-command SMTP timeout (no effect on
    /// the file transport).
    pub fn with_smtp_timeout(mut self, timeout: Duration) -> Self {
        if let Transport::Smtp { host, port, client } = &mut self.transport {
            *client = smtp_client(host, *port, timeout);
        }
        self
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Renders `mail` and delivers it, retrying transient failures with
    /// exponential backoff; permanent failures (invalid mail, SMTP 5xx) are
    /// returned at once. With the file transport, sending the same mail
    /// again replaces the same file.
    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let kind = mail.content.kind();
        let position = mail.position;
        let message = render(mail, &self.from).inspect_err(|error| {
            tracing::warn!(kind, position, %error, "mail not sent: it cannot be rendered");
        })?;
        let attempts = self.retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let failure = match self.attempt(mail, &message).await {
                Ok(()) => {
                    tracing::info!(kind, position, attempt, "mail sent");
                    return Ok(());
                }
                Err(AttemptFailure::Permanent(error)) => {
                    tracing::warn!(kind, position, attempt, %error, "mail not sent: refused");
                    return Err(error);
                }
                Err(failure) => failure,
            };
            let reason = match &failure {
                AttemptFailure::TransientIo(error) => error.kind().to_string(),
                AttemptFailure::TransientSmtp(reason) => reason.clone(),
                AttemptFailure::Permanent(_) => unreachable!("returned above"),
            };
            if attempt >= attempts {
                tracing::warn!(kind, position, attempt, %reason, "mail not sent: giving up");
                return Err(match failure {
                    AttemptFailure::TransientIo(source) => MailError::File { attempts, source },
                    _ => MailError::SmtpUnavailable { attempts, reason },
                });
            }
            let wait = self.retry.backoff_after(attempt);
            tracing::warn!(
                kind,
                position,
                attempt,
                %reason,
                retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "mail not sent yet: will retry"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn attempt(&self, mail: &OutgoingMail, message: &Message) -> Result<(), AttemptFailure> {
        match &self.transport {
            Transport::File { dir } => {
                let name = mail.outbox_file_name().map_err(AttemptFailure::Permanent)?;
                let dir = dir.clone();
                let bytes = message.formatted();
                let written =
                    tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
                        .await
                        .unwrap_or_else(|join| Err(std::io::Error::other(join)));
                written.map_err(|error| {
                    if io_error_is_transient(&error) {
                        AttemptFailure::TransientIo(error)
                    } else {
                        AttemptFailure::Permanent(MailError::File {
                            attempts: 1,
                            source: error,
                        })
                    }
                })
            }
            Transport::Smtp { client, .. } => match client.send(message.clone()).await {
                Ok(_) => Ok(()),
                Err(error) => Err(classify_smtp_error(&error)),
            },
        }
    }
}

/// Sorts an SMTP failure without keeping the server's text, which may quote
/// the recipient address.
fn classify_smtp_error(error: &lettre::transport::smtp::Error) -> AttemptFailure {
    let code = || {
        error
            .status()
            .map_or_else(|| "unknown code".to_owned(), |code| code.to_string())
    };
    if error.is_permanent() {
        AttemptFailure::Permanent(MailError::SmtpRejected { reason: code() })
    } else if error.is_transient() {
        AttemptFailure::TransientSmtp(code())
    } else if error.is_timeout() {
        AttemptFailure::TransientSmtp("timeout".to_owned())
    } else if error.is_client() {
        AttemptFailure::Permanent(MailError::SmtpRejected {
            reason: "client error".to_owned(),
        })
    } else if error.is_response() {
        AttemptFailure::TransientSmtp("unreadable response".to_owned())
    } else {
        AttemptFailure::TransientSmtp("connection".to_owned())
    }
}

/// Whether an IO failure may go away by itself (a full disk, a missing
/// directory someone is restoring) rather than repeat forever.
pub(super) fn io_error_is_transient(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    !matches!(
        error.kind(),
        ErrorKind::PermissionDenied | ErrorKind::InvalidInput | ErrorKind::ReadOnlyFilesystem
    )
}

/// Writes `bytes` to `dir/name` so that a reader sees either no file or the
/// whole file: a uniquely named temporary file in the same directory (the
/// leading dot and `.tmp` keep it out of `*.eml` listings), fsync, rename
/// over the final name, fsync the directory.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = std::fs::File::create_new(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, dir.join(name))?;
        sync_directory(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(unix)]
fn sync_directory(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_directory(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{DEFAULT_FROM, MailContent};
    use super::*;

    fn utc(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn code_mail(key: &str, position: u64, code: &str) -> OutgoingMail {
        OutgoingMail {
            key: key.to_owned(),
            position,
            to: "ola@example.org".to_owned(),
            content: MailContent::RegistrationCode {
                code: code.to_owned(),
                expires_at: utc("2025-07-03T12:05:00Z"),
            },
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
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

    #[test]
    fn parse_accepts_file_and_smtp_urls() {
        let data = Path::new("/var/lib/caseledger");
        assert_eq!(
            MailTransportConfig::parse("file", data).unwrap(),
            MailTransportConfig::File {
                dir: data.join("outbox")
            }
        );
        assert_eq!(
            MailTransportConfig::parse("smtp://127.0.0.1:2525", data).unwrap(),
            MailTransportConfig::Smtp {
                host: "127.0.0.1".into(),
                port: 2525
            }
        );
        assert_eq!(
            MailTransportConfig::parse("smtp://mail.example.org:25", data).unwrap(),
            MailTransportConfig::Smtp {
                host: "mail.example.org".into(),
                port: 25
            }
        );
        assert_eq!(
            MailTransportConfig::parse("smtp://[::1]:2525", data).unwrap(),
            MailTransportConfig::Smtp {
                host: "::1".into(),
                port: 2525
            }
        );
    }

    #[test]
    fn parse_refuses_anything_else_with_a_clear_message() {
        let data = Path::new("data");
        for flag in [
            "",
            "File",
            "file:",
            "smtp",
            "smtp://",
            "smtp://host",
            "smtp://host:",
            "smtp://:25",
            "smtp://host:0",
            "smtp://host:65536",
            "smtp://host:+25",
            "smtp://host:25/path",
            "smtp://user@host:25",
            "smtps://host:465",
            "smtp://::1:25",
            "sendmail",
        ] {
            let error = MailTransportConfig::parse(flag, data).unwrap_err();
            assert!(
                matches!(&error, MailError::InvalidTransport(f) if f == flag),
                "{flag:?}"
            );
            assert!(error.to_string().contains("`file` or `smtp://host:port`"));
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u128> = (1..=7)
            .map(|n| policy.backoff_after(n).as_millis())
            .collect();
        assert_eq!(waits, vec![200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(policy.backoff_after(1000), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn file_transport_writes_one_eml_per_mail_with_the_code_in_clear() {
        let temp = tempfile::tempdir().unwrap();
        let outbox = temp.path().join("outbox");
        let sender = MailSender::new(
            MailTransportConfig::parse("file", temp.path()).unwrap(),
            DEFAULT_FROM.parse().unwrap(),
        )
        .await
        .unwrap();
        assert!(outbox.is_dir(), "the outbox is created up front");

        sender
            .send(&code_mail("event-a", 7, "314159"))
            .await
            .unwrap();
        sender
            .send(&code_mail("event-b", 12, "271828"))
            .await
            .unwrap();

        assert_eq!(
            entries(&outbox),
            vec![
                "000000000007-registration-code-event-a.eml",
                "000000000012-registration-code-event-b.eml",
            ]
        );
        let raw =
            std::fs::read_to_string(outbox.join("000000000007-registration-code-event-a.eml"))
                .unwrap();
        assert!(raw.contains("\r\n314159\r\n"));
        assert!(raw.contains("\r\nX-Caseledger-Kind: registration-code\r\n"));
        assert!(raw.contains("\r\nTo: ola@example.org\r\n"));
    }

    #[tokio::test]
    async fn sending_the_same_mail_twice_leaves_one_file() {
        let temp = tempfile::tempdir().unwrap();
        let sender = file_sender(temp.path()).await;
        let mail = code_mail("event-a", 7, "314159");
        sender.send(&mail).await.unwrap();
        sender.send(&mail).await.unwrap();
        assert_eq!(
            entries(temp.path()),
            vec!["000000000007-registration-code-event-a.eml"],
            "no second file and no temporary file left behind"
        );
    }

    #[tokio::test]
    async fn the_outbox_file_is_replaced_whole_never_written_in_place() {
        let temp = tempfile::tempdir().unwrap();
        let sender = file_sender(temp.path()).await;
        let mail = code_mail("event-a", 7, "314159");
        sender.send(&mail).await.unwrap();
        let path = temp.path().join(mail.outbox_file_name().unwrap());
        // A reader holding the old file keeps reading the old, complete
        // content: the new one arrives by rename, not by truncation.
        let mut held = std::fs::File::open(&path).unwrap();
        sender.send(&mail).await.unwrap();
        let mut old = String::new();
        std::io::Read::read_to_string(&mut held, &mut old).unwrap();
        assert!(old.contains("\r\n314159\r\n"));
        assert!(old.ends_with("\r\n"));
        assert_eq!(entries(temp.path()).len(), 1);
    }

    #[tokio::test]
    async fn a_blocked_outbox_is_retried_until_it_clears() {
        let temp = tempfile::tempdir().unwrap();
        let outbox = temp.path().join("outbox");
        let sender = file_sender(&outbox).await.with_retry_policy(RetryPolicy {
            attempts: 20,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(50),
        });
        // A plain file where the directory should be: every attempt fails
        // until it is removed.
        std::fs::remove_dir(&outbox).unwrap();
        std::fs::write(&outbox, b"in the way").unwrap();
        let clear = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(150)).await;
                std::fs::remove_file(&outbox).unwrap();
            }
        });
        sender
            .send(&code_mail("event-a", 7, "314159"))
            .await
            .unwrap();
        clear.await.unwrap();
        assert_eq!(
            entries(&outbox),
            vec!["000000000007-registration-code-event-a.eml"]
        );
    }

    #[tokio::test]
    async fn a_blocked_outbox_gives_up_after_the_last_attempt() {
        let temp = tempfile::tempdir().unwrap();
        let outbox = temp.path().join("outbox");
        let sender = file_sender(&outbox).await.with_retry_policy(RetryPolicy {
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        });
        std::fs::remove_dir(&outbox).unwrap();
        std::fs::write(&outbox, b"in the way").unwrap();
        let error = sender
            .send(&code_mail("event-a", 7, "314159"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, MailError::File { attempts: 3, .. }),
            "{error:?}"
        );
        assert!(error.is_transient());
    }

    #[tokio::test]
    async fn an_invalid_mail_is_refused_at_once_and_writes_nothing() {
        let temp = tempfile::tempdir().unwrap();
        let sender = file_sender(temp.path()).await;
        let mut mail = code_mail("event-a", 7, "314159");
        mail.to = "nobody".to_owned();
        let error = sender.send(&mail).await.unwrap_err();
        assert!(matches!(error, MailError::InvalidRecipient));
        assert!(!error.is_transient());
        assert!(entries(temp.path()).is_empty());
    }
}
