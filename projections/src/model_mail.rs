//! The mail outbox state as the log tells it: which events owe a mail (the
//! same rules as the outbox in the API: a code issued or resent, a purge
//! warning or a deletion of an account with an email, a booked or moved
//! appointment of an application whose owner has an email), split into sent
//! and pending at the outbox's checkpoint.

use domain::AccountId;

use crate::ReadModel;
use crate::model::{AccountStatus, StreamKey};

/// Mails owed up to the model's position, split at a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailOutboxState {
    /// Every event that owes a mail.
    pub owed: usize,
    /// Those at or before the checkpoint (handed to the transport).
    pub sent: usize,
    /// Those after it.
    pub pending: usize,
    /// Position of the oldest pending one.
    pub first_pending: Option<u64>,
}

impl ReadModel {
    /// The outbox state for the outbox checkpoint `sent_up_to` (the
    /// position of the last mail handed to the transport).
    pub fn mail_outbox(&self, sent_up_to: u64) -> MailOutboxState {
        let sent = self.mail_owed.partition_point(|p| *p <= sent_up_to);
        MailOutboxState {
            owed: self.mail_owed.len(),
            sent,
            pending: self.mail_owed.len() - sent,
            first_pending: self.mail_owed.get(sent).copied(),
        }
    }

    /// Whether the event at `position` owes a mail (as the model judged
    /// when it applied the event).
    pub fn owes_mail(&self, position: u64) -> bool {
        self.mail_owed.binary_search(&position).is_ok()
    }

    /// An active account with an email (the outbox knows where to write).
    pub(crate) fn has_mail_address(&self, id: AccountId) -> bool {
        // A password account's: it has an address, even once a replay
        // reads it as erased (what the log owed does not change with that).
        self.account(id).is_some_and(|a| {
            a.method == domain::LoginMethod::Password && a.status == AccountStatus::Active
        })
    }

    /// The application of `stream` exists and its owner has a mail address.
    pub(crate) fn application_mail_address(&self, stream: StreamKey) -> bool {
        let StreamKey::Application(id) = stream else {
            return false;
        };
        self.application(domain::ApplicationId(id))
            .is_some_and(|app| self.has_mail_address(app.owner.account))
    }
}
