//! Outgoing mail: what the portal sends (`MailContent`), how it is rendered
//! into a bilingual RFC 5322 message (`render`) and how it leaves the process
//! (`MailSender` over the `file` outbox or SMTP).
//!
//! Language order: every mail is written in Norwegian bokmål first, then in
//! English, and every subject reads "Norwegian / English" (e.g.
//! "Bekreftelseskode for nytt passord / Verification code for a new
//! password"), matching the portal's Norwegian-first labels.
//!
//! Privacy: nothing in this module logs a recipient address, a body or a
//! code. Log lines carry only the mail kind, the position of the causing event
//! and the outcome; error messages never contain an address or server text.

mod oslo_time;
mod render;
mod transport;

use chrono::{DateTime, Utc};

pub use render::render;
pub use transport::{DEFAULT_SMTP_TIMEOUT, MailSender, MailTransportConfig, RetryPolicy};

/// The sender used when the operator configures none: UDI's no-reply address.
pub const DEFAULT_FROM: &str = "UDI <noreply@udi.no>";

/// Name of the header that makes the kind of a mail machine-readable.
pub const KIND_HEADER: &str = "X-Caseledger-Kind";

/// What a mail says. Each variant renders to one bilingual plain-text mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailContent {
    /// The code that confirms the email address of a new account.
    RegistrationCode {
        /// Six ASCII digits.
        code: String,
        /// When the code stops being accepted.
        expires_at: DateTime<Utc>,
    },
    /// The code that lets the owner of an account choose a new password.
    RecoveryCode {
        /// Six ASCII digits.
        code: String,
        /// When the code stops being accepted.
        expires_at: DateTime<Utc>,
    },
    /// Someone asked to reset the password for this address, but no account
    /// is registered with it.
    NoAccountNotice,
    /// Someone tried to register with this address, but an account is
    /// registered with it already: no code, and how to recover instead.
    AccountExistsNotice,
    /// The account has not been used for almost two years and will be
    /// deleted after `deletion_after` unless its owner logs in.
    PurgeWarning {
        /// The moment after which the account may be deleted.
        deletion_after: DateTime<Utc>,
    },
    /// The account was deleted for inactivity; the applications stay.
    AccountDeleted,
    /// A booked appointment: time, place, documents to bring and the cover
    /// letter to print.
    AppointmentConfirmation {
        /// The application's reference, printed on the cover letter.
        reference: String,
        /// Human name of the meeting point, e.g. "Police".
        meeting_point: String,
        /// Where the meeting point is, e.g. "Oslo politidistrikt, Grønland".
        location: String,
        /// Start of the appointment; shown in Europe/Oslo local time.
        starts_at: DateTime<Utc>,
        /// Documents to bring, in English.
        documents_en: Vec<String>,
        /// Documents to bring, in Norwegian bokmål.
        documents_nb: Vec<String>,
    },
}

impl MailContent {
    /// The stable, machine-readable kind: the value of `X-Caseledger-Kind`
    /// and part of the outbox file name.
    pub fn kind(&self) -> &'static str {
        match self {
            MailContent::RegistrationCode { .. } => "registration-code",
            MailContent::RecoveryCode { .. } => "recovery-code",
            MailContent::NoAccountNotice => "no-account",
            MailContent::AccountExistsNotice => "account-exists",
            MailContent::PurgeWarning { .. } => "purge-warning",
            MailContent::AccountDeleted => "account-deleted",
            MailContent::AppointmentConfirmation { .. } => "appointment-confirmation",
        }
    }
}

/// One mail the system owes someone, tied to the event that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Unique, stable id of this mail (e.g. the causing event's id). Used in
    /// the outbox file name and the Message-ID, so sending the same mail
    /// again produces the same file and the same Message-ID. Allowed: 1 to
    /// 128 characters of `A-Z a-z 0-9 - _`.
    pub key: String,
    /// Global log position of the causing event.
    pub position: u64,
    /// Recipient address (`user@example.org` or `Name <user@example.org>`).
    pub to: String,
    /// What the mail says.
    pub content: MailContent,
}

impl OutgoingMail {
    /// The outbox file name of this mail:
    /// `<position zero-padded to 12 digits>-<kind>-<key>.eml`.
    pub fn outbox_file_name(&self) -> Result<String, MailError> {
        validate_key(&self.key)?;
        Ok(format!(
            "{:012}-{}-{}.eml",
            self.position,
            self.content.kind(),
            self.key
        ))
    }
}

fn validate_key(key: &str) -> Result<(), MailError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if key.is_empty() || key.len() > 128 || !key.chars().all(allowed) {
        return Err(MailError::InvalidKey);
    }
    Ok(())
}

/// Why a mail could not be rendered or sent. Messages never contain an
/// address, a code or text returned by a mail server.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The `--mail` flag is neither `file` nor `smtp://host:port`.
    #[error("unsupported mail transport {0:?}: expected `file` or `smtp://host:port`")]
    InvalidTransport(String),
    /// The recipient is not a valid email address.
    #[error("the recipient is not a valid email address")]
    InvalidRecipient,
    /// The mail key is empty, too long or has characters other than
    /// `A-Z a-z 0-9 - _`.
    #[error("the mail key must be 1 to 128 characters of A-Z, a-z, 0-9, `-` or `_`")]
    InvalidKey,
    /// The content cannot be rendered (e.g. a code that is not six digits).
    #[error("invalid mail content: {0}")]
    InvalidContent(&'static str),
    /// lettre refused to build the message.
    #[error("the message could not be built")]
    Build(#[source] lettre::error::Error),
    /// Writing the outbox file failed (after all attempts if transient).
    #[error("could not write the mail to the outbox after {attempts} attempt(s)")]
    File {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: std::io::Error,
    },
    /// The SMTP server refused the mail for good (a 5xx reply or a client
    /// error); no retry was made.
    #[error("the SMTP server refused the mail permanently ({reason})")]
    SmtpRejected {
        /// The reply code or failure class, e.g. "550".
        reason: String,
    },
    /// The SMTP server could not be reached or answered with a transient
    /// failure on every attempt.
    #[error("the SMTP server was unavailable on all {attempts} attempt(s) ({reason})")]
    SmtpUnavailable {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure class, e.g. "connection", "timeout" or "421".
        reason: String,
    },
}

impl MailError {
    /// Whether sending the same mail later may succeed (the outbox should
    /// keep it), as opposed to a failure that will repeat forever.
    pub fn is_transient(&self) -> bool {
        match self {
            MailError::SmtpUnavailable { .. } => true,
            MailError::File { source, .. } => transport::io_error_is_transient(source),
            MailError::InvalidTransport(_)
            | MailError::InvalidRecipient
            | MailError::InvalidKey
            | MailError::InvalidContent(_)
            | MailError::Build(_)
            | MailError::SmtpRejected { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(key: &str) -> OutgoingMail {
        OutgoingMail {
            key: key.to_owned(),
            position: 42,
            to: "someone@example.org".to_owned(),
            content: MailContent::NoAccountNotice,
        }
    }

    #[test]
    fn outbox_file_name_pads_the_position_and_names_the_kind() {
        assert_eq!(
            mail("0197a2b4-7c1e-7d2a-9f00-3c4d5e6f7a8b")
                .outbox_file_name()
                .unwrap(),
            "000000000042-no-account-0197a2b4-7c1e-7d2a-9f00-3c4d5e6f7a8b.eml"
        );
    }

    #[test]
    fn keys_that_could_escape_the_outbox_are_refused() {
        for bad in ["", "../x", "a/b", "a.b", "a b", &"k".repeat(129)] {
            assert!(
                matches!(mail(bad).outbox_file_name(), Err(MailError::InvalidKey)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn every_kind_is_distinct() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let kinds: std::collections::BTreeSet<_> = [
            MailContent::RegistrationCode {
                code: "123456".into(),
                expires_at: at,
            },
            MailContent::RecoveryCode {
                code: "123456".into(),
                expires_at: at,
            },
            MailContent::NoAccountNotice,
            MailContent::PurgeWarning { deletion_after: at },
            MailContent::AccountDeleted,
            MailContent::AppointmentConfirmation {
                reference: String::new(),
                meeting_point: String::new(),
                location: String::new(),
                starts_at: at,
                documents_en: vec![],
                documents_nb: vec![],
            },
        ]
        .iter()
        .map(MailContent::kind)
        .collect();
        assert_eq!(kinds.len(), 6);
    }
}
