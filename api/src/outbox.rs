//! The mail outbox: every mail the system owes is derived from an event in
//! the log (a code issued, a recovery for an unknown address, a purge
//! warning, a deletion, a booked appointment) and sent once, in log order.
//!
//! The consumer follows the log from its checkpoint and keeps no state of
//! its own: whether an event owes a mail, and where it goes, it reads from
//! the read models once they have applied the event (`ReadModel::owes_mail`,
//! the account's email, the application's owner and kind), and a resent
//! code's address from the flow's first event. Its checkpoint it keeps in
//! the store beside the log (the value [`CHECKPOINT_VALUE`]) after
//! each mail, so a data dir restored from a backup sends no old mail again.
//!
//! Of the nodes of one store, only the holder of the mail lease
//! ([`crate::lease`]) sends and moves the checkpoint; the others wait to
//! take over. A crash between a send and its checkpoint re-sends that one
//! mail, with the same `Message-ID`; with the `file` transport the re-send
//! rewrites the same file, so nothing is duplicated.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use domain::application;
use domain::flow::{self, FlowKind};
use domain::{AccountId, ApplicationId, Email, FlowId, account};
use migrations::DomainEvent;
use projections::Projections;
use projections::model::stream_id;
use store::{Direction, EventStore, RecordedEvent, StreamStart, SubscriptionItem};

use crate::lease::{HeldLease, Lease};
use crate::mail::{MailContent, MailSender, OutgoingMail};
use keys::{KeyRing, Keyer};

/// The value beside the log that holds the position of the last mail
/// handed to the transport.
pub const CHECKPOINT_VALUE: &str = "outbox.position";
/// Where earlier versions kept that position (read once, then the store's
/// value takes over).
pub const LEGACY_CHECKPOINT_FILE: &str = "outbox.checkpoint";

/// Derives and sends the mails the log owes.
pub struct Outbox {
    keyer: Keyer,
    sender: MailSender,
    legacy_checkpoint: PathBuf,
    projections: Projections,
    ring: Arc<KeyRing>,
}

/// Read the outbox checkpoint from the store (0 when none).
pub async fn read_checkpoint(store: &dyn EventStore) -> Result<u64, store::StoreError> {
    Ok(store
        .read_value(CHECKPOINT_VALUE)
        .await?
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0))
}

/// Why a node stopped sending.
enum HolderEnd {
    /// The server stops.
    Stopped,
    /// Another node holds the lease now.
    Lost,
    /// The log or the checkpoint could not be read.
    Failed,
}

/// Move the checkpoint forward to `position` (never back), from `previous`
/// (0: never stored) when it still holds that, else from what it holds.
async fn advance_checkpoint(
    store: &dyn EventStore,
    previous: u64,
    position: u64,
) -> Result<(), store::StoreError> {
    let encode = |position: u64| (position > 0).then(|| position.to_string().into_bytes());
    let mut expected = encode(previous);
    for _ in 0..8 {
        if store
            .swap_value(
                CHECKPOINT_VALUE,
                expected.as_deref(),
                position.to_string().as_bytes(),
            )
            .await?
        {
            return Ok(());
        }
        // Moved by an earlier holder that sent on a little longer.
        let current = store.read_value(CHECKPOINT_VALUE).await?;
        let current_position = current
            .as_deref()
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if current_position >= position {
            return Ok(());
        }
        expected = current;
    }
    Err(store::StoreError::Backend(
        "the outbox checkpoint keeps being moved by another process".to_owned(),
    ))
}

impl Outbox {
    /// An outbox that addresses mails from `projections`.
    pub fn new(
        keyer: Keyer,
        sender: MailSender,
        data_dir: &Path,
        projections: Projections,
        ring: Arc<KeyRing>,
    ) -> Outbox {
        Outbox {
            keyer,
            sender,
            legacy_checkpoint: data_dir.join(LEGACY_CHECKPOINT_FILE),
            projections,
            ring,
        }
    }

    /// Run until `stop` turns true: wait for the mail lease, then, while it
    /// is held, send the mails the log owes from the checkpoint on. Publishes
    /// the position of the last mail handled on `sent` (while another node
    /// holds the lease, the checkpoint it moves) and whether this node holds
    /// the lease on `holding`.
    pub async fn run(
        self,
        store: Arc<dyn EventStore>,
        lease: Lease,
        sent: watch::Sender<u64>,
        holding: watch::Sender<bool>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            let published = || async {
                if let Ok(position) = read_checkpoint(store.as_ref()).await {
                    let _ = sent.send(position);
                }
            };
            let Some(mut held) = lease.acquire(&mut stop, published).await else {
                return;
            };
            let _ = holding.send(true);
            let ended = self
                .send_while_held(&store, &mut held, &sent, &mut stop)
                .await;
            let _ = holding.send(false);
            match ended {
                HolderEnd::Stopped => {
                    held.release().await;
                    return;
                }
                HolderEnd::Lost => {
                    tracing::warn!("the mail lease is lost; this node sends no mail")
                }
                HolderEnd::Failed => {
                    // Give the lease to a node that may do better, after a pause.
                    held.release().await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
        }
    }

    /// Follow the log from the stored checkpoint and send, as long as
    /// `held` is valid.
    async fn send_while_held(
        &self,
        store: &Arc<dyn EventStore>,
        held: &mut HeldLease,
        sent: &watch::Sender<u64>,
        stop: &mut watch::Receiver<bool>,
    ) -> HolderEnd {
        let checkpoint = match self.start_checkpoint(store.as_ref()).await {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                tracing::error!(error = %e, "could not read the outbox checkpoint; no mail is sent");
                return HolderEnd::Failed;
            }
        };
        let mut stored = checkpoint;
        let _ = sent.send(checkpoint);
        let mut events = store.subscribe_all(checkpoint);
        loop {
            let item = tokio::select! {
                item = events.next() => item,
                _ = held.lost() => return HolderEnd::Lost,
                _ = stop.changed() => return HolderEnd::Stopped,
            };
            let Some(item) = item else {
                return HolderEnd::Failed;
            };
            let event = match item {
                Ok(SubscriptionItem::Event(event)) => event,
                Ok(SubscriptionItem::CaughtUp) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "outbox subscription failed");
                    return HolderEnd::Failed;
                }
            };
            // The read models must have applied the event before they
            // can say whether it owes a mail and where it goes.
            loop {
                let reached = tokio::select! {
                    reached = self.projections.wait_for(event.position, Duration::from_secs(30)) => reached,
                    _ = stop.changed() => return HolderEnd::Stopped,
                };
                match reached {
                    Ok(()) => break,
                    Err(projections::WaitError::Stopped) => return HolderEnd::Stopped,
                    Err(e) => tracing::warn!(error = %e, "the outbox waits for the read models"),
                }
            }
            let Some(mail) = self.mail_for(store.as_ref(), &event).await else {
                continue;
            };
            // Only a holder sends; a mail handed over just before the
            // lease runs out may go out twice, never not at all.
            if !held.is_valid() {
                return HolderEnd::Lost;
            }
            if !self.deliver(&mail, stop).await {
                return HolderEnd::Stopped;
            }
            match advance_checkpoint(store.as_ref(), stored, event.position).await {
                Ok(()) => stored = event.position,
                Err(e) => tracing::error!(error = %e, "could not store the outbox checkpoint"),
            }
            let _ = sent.send(event.position);
        }
    }

    /// The checkpoint in the store; on a data dir of an earlier version,
    /// the one in its file, moved into the store.
    async fn start_checkpoint(&self, store: &dyn EventStore) -> Result<u64, store::StoreError> {
        if store.read_value(CHECKPOINT_VALUE).await?.is_some() {
            return read_checkpoint(store).await;
        }
        let legacy = std::fs::read_to_string(&self.legacy_checkpoint)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        match legacy {
            Some(position) => {
                advance_checkpoint(store, 0, position).await?;
                if let Err(e) = std::fs::remove_file(&self.legacy_checkpoint) {
                    tracing::warn!(error = %e, "could not remove the old outbox checkpoint file");
                }
                Ok(position)
            }
            None => Ok(0),
        }
    }

    /// Send with retries until it works or the mail is refused for good
    /// (`true`), or the server stops (`false`).
    async fn deliver(&self, mail: &OutgoingMail, stop: &mut watch::Receiver<bool>) -> bool {
        let mut wait = Duration::from_secs(1);
        loop {
            match self.sender.send(mail).await {
                Ok(()) => {
                    tracing::info!(
                        kind = mail.content.kind(),
                        position = mail.position,
                        "mail sent"
                    );
                    return true;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(kind = mail.content.kind(), position = mail.position, error = %e, "mail not sent yet; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.changed() => return false,
                    }
                    wait = (wait * 2).min(Duration::from_secs(60));
                }
                Err(e) => {
                    tracing::error!(kind = mail.content.kind(), position = mail.position, error = %e, "mail refused for good; skipped");
                    return true;
                }
            }
        }
    }

    /// The mail `recorded` owes, if any (the read models have applied it).
    async fn mail_for(
        &self,
        store: &dyn EventStore,
        recorded: &RecordedEvent,
    ) -> Option<OutgoingMail> {
        if !self
            .projections
            .read(|model| model.owes_mail(recorded.position))
        {
            return None;
        }
        let event = open_event(&self.ring, store, recorded).await?;
        let mail = |to: String, content: MailContent| OutgoingMail {
            key: recorded.id.to_string(),
            position: recorded.position,
            to,
            content,
        };
        let email_of = |account: AccountId| {
            self.projections.read(|model| {
                model
                    .account(account)
                    .and_then(|a| a.email.as_ref())
                    .map(|e| e.as_str().to_owned())
            })
        };
        match event {
            DomainEvent::Flow(e) => {
                let flow = FlowId(stream_id(&recorded.stream, "flow")?);
                let (kind, email, known, code) = match e {
                    flow::Event::Started {
                        kind,
                        email,
                        account,
                        code,
                        ..
                    } => (kind, email, account.is_some(), code),
                    flow::Event::CodeResent { code, .. } => {
                        let (kind, email, known) =
                            flow_address(&self.ring, store, &recorded.stream).await?;
                        (kind, email, known, code)
                    }
                    _ => return None,
                };
                Some(mail(
                    email.as_str().to_owned(),
                    self.code_mail(flow, kind, known, &code),
                ))
            }
            DomainEvent::Account(e) => {
                let account = AccountId(stream_id(&recorded.stream, "account")?);
                let content = match e {
                    account::Event::PurgeWarningIssued { deletion_after, .. } => {
                        MailContent::PurgeWarning { deletion_after }
                    }
                    account::Event::AccountDeleted { .. } => MailContent::AccountDeleted,
                    _ => return None,
                };
                Some(mail(email_of(account)?, content))
            }
            DomainEvent::Application(
                application::Event::AppointmentBooked { appointment, .. }
                | application::Event::AppointmentRescheduled { appointment, .. },
            ) => {
                let id = ApplicationId(stream_id(&recorded.stream, "application")?);
                let (owner, kind) = self
                    .projections
                    .read(|model| model.application(id).map(|a| (a.owner.account, a.kind)))?;
                Some(mail(
                    email_of(owner)?,
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

/// What a flow's first event says about its mails: the kind, the address,
/// and whether an account has it.
async fn flow_address(
    ring: &KeyRing,
    store: &dyn EventStore,
    stream: &str,
) -> Option<(FlowKind, Email, bool)> {
    let first = store
        .read_stream(stream, StreamStart::Edge, Direction::Forwards, 1)
        .await
        .ok()?
        .into_iter()
        .next()?;
    match open_event(ring, store, &first).await? {
        DomainEvent::Flow(flow::Event::Started {
            kind,
            email,
            account,
            ..
        }) => Some((kind, email, account.is_some())),
        _ => None,
    }
}

/// `recorded` decoded with its sealed personal data opened (`None` when it
/// does not decode, or its data was erased: no mail goes to an erased
/// address).
async fn open_event(
    ring: &KeyRing,
    store: &dyn EventStore,
    recorded: &RecordedEvent,
) -> Option<DomainEvent> {
    if let Err(error) = ring.load_for(store, &[recorded]).await {
        tracing::warn!(%error, position = recorded.position, "loading a data key failed");
        return None;
    }
    let event = migrations::sealed::decode_opened(
        &recorded.type_name,
        recorded.schema_version,
        &recorded.payload,
        recorded.id,
        Some(ring as &dyn migrations::sealed::Opener),
    )
    .ok()?;
    let erased = migrations::sealed::personal(&event)
        .is_some_and(|(_, fields)| fields.contains(&domain::ERASED));
    (!erased).then_some(event)
}
