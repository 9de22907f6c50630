//! The mail outbox: every mail the system owes is derived from an event in
//! the log (a code issued, a recovery for an unknown address, a purge
//! warning, a deletion, a booked appointment) and sent once, in log order.
//!
//! The consumer folds the whole log to know addresses (flows, accounts,
//! applications), but sends only for events after its checkpoint, which it
//! stores in `<data-dir>/outbox.checkpoint` after each mail. A crash between
//! a send and its checkpoint re-sends that one mail; with the `file`
//! transport the re-send rewrites the same file, so nothing is duplicated.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use domain::application::{self, Kind};
use domain::flow::{self, FlowKind};
use domain::{AccountId, ApplicationId, FlowId, account};
use migrations::DomainEvent;
use projections::model::stream_id;
use store::{EventStore, RecordedEvent, SubscriptionItem};

use crate::mail::{MailContent, MailSender, OutgoingMail};
use keys::Keyer;

/// File that holds the position of the last mail handed to the transport.
pub const CHECKPOINT_FILE: &str = "outbox.checkpoint";

/// What the consumer remembers to address mails.
#[derive(Default)]
struct Addresses {
    flows: HashMap<FlowId, (FlowKind, String, bool)>,
    accounts: HashMap<AccountId, String>,
    applications: HashMap<ApplicationId, (AccountId, Kind)>,
}

/// Derives and sends the mails the log owes.
pub struct Outbox {
    keyer: Keyer,
    sender: MailSender,
    checkpoint_path: PathBuf,
    addresses: Addresses,
}

/// Read the outbox checkpoint (0 when none).
pub fn read_checkpoint(data_dir: &Path) -> u64 {
    std::fs::read_to_string(data_dir.join(CHECKPOINT_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn write_checkpoint(path: &Path, position: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, position.to_string())?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Outbox {
    pub fn new(keyer: Keyer, sender: MailSender, data_dir: &Path) -> Outbox {
        Outbox {
            keyer,
            sender,
            checkpoint_path: data_dir.join(CHECKPOINT_FILE),
            addresses: Addresses::default(),
        }
    }

    /// Run until the log subscription ends or `stop` turns true. Publishes
    /// the position of the last mail handled on `sent`.
    pub async fn run(
        mut self,
        store: Arc<dyn EventStore>,
        sent: watch::Sender<u64>,
        mut stop: watch::Receiver<bool>,
    ) {
        let checkpoint = std::fs::read_to_string(&self.checkpoint_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0u64);
        let _ = sent.send(checkpoint);
        let mut events = store.subscribe_all(0);
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                _ = stop.changed() => return,
            };
            let Some(item) = item else { return };
            let event = match item {
                Ok(SubscriptionItem::Event(event)) => event,
                Ok(SubscriptionItem::CaughtUp) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "outbox subscription failed");
                    return;
                }
            };
            let Some(mail) = self.observe(&event) else {
                continue;
            };
            if event.position <= checkpoint {
                continue;
            }
            self.deliver(&mail, &mut stop).await;
            if let Err(e) = write_checkpoint(&self.checkpoint_path, event.position) {
                tracing::error!(error = %e, "could not store the outbox checkpoint");
            }
            let _ = sent.send(event.position);
        }
    }

    /// Send with retries until it works, the mail is refused for good, or
    /// the server stops.
    async fn deliver(&self, mail: &OutgoingMail, stop: &mut watch::Receiver<bool>) {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.sender.send(mail).await {
                Ok(()) => {
                    tracing::info!(
                        kind = mail.content.kind(),
                        position = mail.position,
                        "mail sent"
                    );
                    return;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(kind = mail.content.kind(), position = mail.position, error = %e, "mail not sent yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return,
                    }
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
                Err(e) => {
                    tracing::error!(kind = mail.content.kind(), position = mail.position, error = %e, "mail refused for good; skipped");
                    return;
                }
            }
        }
    }

    /// Learn from one event, and return the mail it causes, if any.
    fn observe(&mut self, recorded: &RecordedEvent) -> Option<OutgoingMail> {
        let event = migrations::decode(
            &recorded.type_name,
            recorded.schema_version,
            &recorded.payload,
        )
        .ok()?;
        let mail = |to: String, content: MailContent| OutgoingMail {
            key: recorded.id.to_string(),
            position: recorded.position,
            to,
            content,
        };
        match event {
            DomainEvent::Flow(e) => {
                let flow = FlowId(stream_id(&recorded.stream, "flow")?);
                match e {
                    flow::Event::Started {
                        kind,
                        email,
                        account,
                        code,
                        ..
                    } => {
                        let known = account.is_some();
                        self.addresses
                            .flows
                            .insert(flow, (kind, email.as_str().to_owned(), known));
                        Some(mail(
                            email.as_str().to_owned(),
                            self.code_mail(flow, kind, known, &code),
                        ))
                    }
                    flow::Event::CodeResent { code, .. } => {
                        let (kind, email, known) = self.addresses.flows.get(&flow)?.clone();
                        Some(mail(email, self.code_mail(flow, kind, known, &code)))
                    }
                    flow::Event::Completed { .. } => {
                        self.addresses.flows.remove(&flow);
                        None
                    }
                    flow::Event::CodeRejected { .. } | flow::Event::CodeVerified { .. } => None,
                }
            }
            DomainEvent::Account(e) => {
                let account = AccountId(stream_id(&recorded.stream, "account")?);
                match e {
                    account::Event::PasswordAccountRegistered { email, .. } => {
                        self.addresses
                            .accounts
                            .insert(account, email.as_str().to_owned());
                        None
                    }
                    account::Event::PurgeWarningIssued { deletion_after, .. } => {
                        let to = self.addresses.accounts.get(&account)?.clone();
                        Some(mail(to, MailContent::PurgeWarning { deletion_after }))
                    }
                    account::Event::AccountDeleted { .. } => {
                        let to = self.addresses.accounts.remove(&account)?;
                        Some(mail(to, MailContent::AccountDeleted))
                    }
                    _ => None,
                }
            }
            DomainEvent::Application(e) => {
                let id = ApplicationId(stream_id(&recorded.stream, "application")?);
                match e {
                    application::Event::Created { owner, kind, .. } => {
                        self.addresses.applications.insert(id, (owner, kind));
                        None
                    }
                    application::Event::AppointmentBooked { appointment, .. }
                    | application::Event::AppointmentRescheduled { appointment, .. } => {
                        let (owner, kind) = *self.addresses.applications.get(&id)?;
                        let to = self.addresses.accounts.get(&owner)?.clone();
                        Some(mail(
                            to,
                            MailContent::AppointmentConfirmation {
                                reference: id.to_string(),
                                meeting_point: appointment.meeting_point.label_en().to_owned(),
                                location: appointment.location.clone(),
                                starts_at: appointment.starts_at,
                                documents_en: application::documents_to_bring(kind)
                                    .into_iter()
                                    .map(str::to_owned)
                                    .collect(),
                                documents_nb: application::documents_to_bring_nb(kind)
                                    .into_iter()
                                    .map(str::to_owned)
                                    .collect(),
                            },
                        ))
                    }
                    _ => None,
                }
            }
            DomainEvent::Reservation(_) | DomainEvent::Legacy(_) | DomainEvent::Address(_) => None,
        }
    }

    fn code_mail(
        &self,
        flow: FlowId,
        kind: FlowKind,
        known: bool,
        code: &flow::IssuedCode,
    ) -> MailContent {
        match (kind, known) {
            (FlowKind::Registration, true) => MailContent::AccountExistsNotice,
            (FlowKind::Registration, false) => MailContent::RegistrationCode {
                code: self.keyer.code(flow, &code.nonce),
                expires_at: code.expires_at,
            },
            (FlowKind::Recovery, true) => MailContent::RecoveryCode {
                code: self.keyer.code(flow, &code.nonce),
                expires_at: code.expires_at,
            },
            (FlowKind::Recovery, false) => MailContent::NoAccountNotice,
        }
    }
}
