//! The read models as one pure fold over decoded events.

use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use domain::account::Event as A;
use domain::{AccountId, Email, LoginMethod, SessionId};
use migrations::DomainEvent;
use uuid::Uuid;

use crate::email_directory::EmailDirectory;
use crate::expiry::ExpiryQueue;
use crate::inactivity::InactivityIndex;
use crate::slots::Slots;
use crate::table::{IdMap, IdSet, Keyed, Table};

/// Lifecycle of an account as readers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    Deleted,
}

/// One account (login identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountView {
    pub id: AccountId,
    pub method: LoginMethod,
    pub email: Option<Email>,
    pub name: String,
    pub status: AccountStatus,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    /// Keyed hash of the pid of an ID-porten account (legacy matching).
    pub pid_key: Option<[u8; 32]>,
    /// Slots of the account's applications, oldest first.
    pub(crate) applications: Slots,
}

impl Keyed<AccountId> for AccountView {
    #[inline]
    fn key(&self) -> Option<AccountId> {
        Some(self.id)
    }
}

impl AccountView {
    /// Last sign of life (last login, else creation).
    pub fn last_active(&self) -> DateTime<Utc> {
        self.last_login_at.unwrap_or(self.created_at)
    }
}

/// One live session, found by the digest of its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionView {
    pub account: AccountId,
    pub id: SessionId,
    pub method: LoginMethod,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub idle_timeout_seconds: u32,
}

pub use crate::model_applications::ApplicationView;

/// Token digests of one account's live sessions; a single one (the common
/// case) is kept inline, without an allocation.
#[derive(Debug, Clone)]
pub(crate) enum SessionList {
    One([u8; 32]),
    Many(Vec<[u8; 32]>),
}

impl SessionList {
    fn push(&mut self, digest: [u8; 32]) {
        match self {
            SessionList::One(first) => *self = SessionList::Many(vec![*first, digest]),
            SessionList::Many(all) => all.push(digest),
        }
    }

    pub(crate) fn as_slice(&self) -> &[[u8; 32]] {
        match self {
            SessionList::One(digest) => std::slice::from_ref(digest),
            SessionList::Many(all) => all,
        }
    }

    /// Keep the digests `keep` says yes to, in order; false when none is
    /// left.
    fn retain(&mut self, mut keep: impl FnMut(&[u8; 32]) -> bool) -> bool {
        match self {
            SessionList::One(digest) => keep(digest),
            SessionList::Many(all) => {
                all.retain(|d| keep(d));
                !all.is_empty()
            }
        }
    }
}

/// Every read model, folded from the log up to `position`.
#[derive(Debug, Default, Clone)]
pub struct ReadModel {
    /// Global position of the last applied event.
    pub position: u64,
    pub(crate) accounts: Table<AccountId, AccountView>,
    /// Normalised email of an active password account -> account.
    pub(crate) email_directory: EmailDirectory,
    /// ID-porten subject key -> account.
    pub(crate) idporten_directory: IdMap<[u8; 32], AccountId>,
    pub(crate) sessions: IdMap<[u8; 32], SessionView>,
    /// Token digests of the live sessions of each account that has any
    /// (few at a time: kept apart from the accounts so that logouts and
    /// expiries do not touch them).
    pub(crate) account_sessions: IdMap<AccountId, SessionList>,
    /// (absolute expiry, token digest) of every session started (ended ones
    /// included until their turn comes), to forget long-expired sessions
    /// without a scan.
    pub(crate) session_expiry: ExpiryQueue,
    /// (last active, account slot) of active password accounts, oldest
    /// first, packed by [`inactivity_entry`] (readers order ties by account
    /// id); removals are lazy, see [`InactivityIndex`].
    pub(crate) inactivity: InactivityIndex,
    /// Deleted password accounts whose email reservation is not yet released
    /// (a purge interrupted between the two steps).
    pub(crate) deleted_unreleased: IdSet<AccountId>,
    pub(crate) applications: crate::model_applications::Applications,
    /// Positions of the events that owe a mail, ascending (see
    /// [`ReadModel::mail_outbox`]).
    pub(crate) mail_owed: Vec<u64>,
}

/// How long past its absolute expiry a session is still kept (see
/// [`ReadModel::forget_expired_sessions`]).
pub const EXPIRED_SESSION_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The email of the account in `slot`.
pub(crate) fn account_email(accounts: &Table<AccountId, AccountView>, slot: u32) -> Option<&str> {
    accounts.by_slot(slot)?.email.as_ref().map(Email::as_str)
}

/// The inactivity index key of the account in `slot`: active password
/// accounts only.
pub(crate) fn inactivity_key(account: &AccountView, slot: u32) -> Option<u128> {
    (account.status == AccountStatus::Active && account.method == LoginMethod::Password)
        .then(|| inactivity_entry(account.last_active(), slot))
}

/// `last` and `slot` packed so that integer order is (instant, slot) order.
pub(crate) fn inactivity_entry(last: DateTime<Utc>, slot: u32) -> u128 {
    let seconds = (last.timestamp() as u64) ^ (1 << 63);
    u128::from(seconds) << 64 | u128::from(last.timestamp_subsec_nanos()) << 32 | u128::from(slot)
}

/// Whether `entry` is the inactivity key its account has now (the index
/// keeps stale entries for a while).
fn is_live_entry(accounts: &Table<AccountId, AccountView>, entry: u128) -> bool {
    let slot = entry as u32;
    accounts
        .by_slot(slot)
        .and_then(|account| inactivity_key(account, slot))
        == Some(entry)
}

/// The instant of an inactivity entry.
fn entry_instant(entry: u128) -> DateTime<Utc> {
    let seconds = (((entry >> 64) as u64) ^ (1 << 63)) as i64;
    DateTime::from_timestamp(seconds, (entry >> 32) as u32).unwrap_or_default()
}

/// The id of `<prefix>-<uuid>` stream names.
pub fn stream_id(stream: &str, prefix: &str) -> Option<Uuid> {
    let id = stream.strip_prefix(prefix)?.strip_prefix('-')?;
    parse_hyphenated(id.as_bytes()).or_else(|| Uuid::parse_str(id).ok())
}

/// Hex digit values (`0xff`: not a hex digit).
const HEX: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The common form of a uuid (`8-4-4-4-12` hex digits), as the system
/// writes stream names; `None` for anything else (the caller then asks
/// `Uuid::parse_str`, which knows every form).
// Kept: 19-24 ns a name against `Uuid::parse_str` alone 29-37 ns (`--bench stream_ids`).
#[inline]
fn parse_hyphenated(text: &[u8]) -> Option<Uuid> {
    let text: &[u8; 36] = text.try_into().ok()?;
    if text[8] != b'-' || text[13] != b'-' || text[18] != b'-' || text[23] != b'-' {
        return None;
    }
    // Start of each byte's two digits.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut bytes = [0u8; 16];
    let mut bad = 0u8;
    for (byte, at) in bytes.iter_mut().zip(AT) {
        let (high, low) = (HEX[usize::from(text[at])], HEX[usize::from(text[at + 1])]);
        bad |= high | low;
        *byte = high << 4 | low;
    }
    (bad & 0xf0 == 0).then(|| Uuid::from_bytes(bytes))
}

/// What the read models take from a stream's name: the aggregate it names
/// and the id in it. A fold that meets each stream many times can work it
/// out once per stream ([`ReadModel::apply_keyed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKey {
    /// `account-<uuid>`.
    Account(Uuid),
    /// `application-<uuid>`.
    Application(Uuid),
    /// `flow-<uuid>`.
    Flow,
    /// Any other name.
    Other,
}

impl StreamKey {
    /// The key of the stream named `stream`.
    pub fn of(stream: &str) -> StreamKey {
        let Some((prefix, _)) = stream.split_once('-') else {
            return StreamKey::Other;
        };
        let key = match prefix {
            "account" => stream_id(stream, prefix).map(StreamKey::Account),
            "application" => stream_id(stream, prefix).map(StreamKey::Application),
            "flow" => stream_id(stream, prefix).map(|_| StreamKey::Flow),
            _ => None,
        };
        key.unwrap_or(StreamKey::Other)
    }
}

impl ReadModel {
    /// Apply one event recorded at `position` in `stream`. Events at or below
    /// the current position are ignored (idempotent replays).
    pub fn apply(&mut self, position: u64, stream: &str, event: &DomainEvent) {
        self.apply_keyed(position, StreamKey::of(stream), event);
    }

    /// [`ReadModel::apply`] with the stream's key worked out already.
    pub fn apply_keyed(&mut self, position: u64, stream: StreamKey, event: &DomainEvent) {
        if position <= self.position {
            return;
        }
        self.position = position;
        match event {
            DomainEvent::Account(e) => {
                if let StreamKey::Account(id) = stream {
                    let id = AccountId(id);
                    if matches!(e, A::PurgeWarningIssued { .. } | A::AccountDeleted { .. })
                        && self.has_mail_address(id)
                    {
                        self.mail_owed.push(position);
                    }
                    self.apply_account(id, e);
                }
            }
            DomainEvent::Application(e) => {
                if matches!(
                    e,
                    domain::application::Event::AppointmentBooked { .. }
                        | domain::application::Event::AppointmentRescheduled { .. }
                ) && self.application_mail_address(stream)
                {
                    self.mail_owed.push(position);
                }
                if let Some(created) = self.applications.apply(stream, e) {
                    self.file_application(created);
                }
            }
            DomainEvent::Flow(
                domain::flow::Event::Started { .. } | domain::flow::Event::CodeResent { .. },
            ) => {
                if stream == StreamKey::Flow {
                    self.mail_owed.push(position);
                }
            }
            DomainEvent::Legacy(e) => self.applications.apply_legacy(e),
            DomainEvent::Reservation(domain::reservation::Event::Released { account }) => {
                self.deleted_unreleased.remove(account);
                // Released last, once the person's data keys are destroyed:
                // what the models held of them goes too.
                if let Some(view) = self.accounts.get_mut(account)
                    && view.status == AccountStatus::Deleted
                {
                    view.email = None;
                    view.name = domain::ERASED.to_owned();
                }
            }
            DomainEvent::Flow(_) | DomainEvent::Reservation(_) | DomainEvent::Address(_) => {}
        }
    }

    fn apply_account(&mut self, id: AccountId, event: &A) {
        // Only these change an account's status, method or last sign of life.
        let reindex = matches!(
            event,
            A::PasswordAccountRegistered { .. }
                | A::IdPortenAccountCreated { .. }
                | A::AccountDeleted { .. }
        );
        if !reindex {
            self.apply_account_event(id, event);
            return;
        }
        let before = self.inactivity_key_of(id);
        self.apply_account_event(id, event);
        let after = self.inactivity_key_of(id);
        self.reindex(before, after);
    }

    fn inactivity_key_of(&self, id: AccountId) -> Option<u128> {
        let slot = self.accounts.slot(&id)?;
        inactivity_key(self.accounts.by_slot(slot)?, slot)
    }

    fn reindex(&mut self, before: Option<u128>, after: Option<u128>) {
        if before != after {
            if let Some(key) = before {
                self.inactivity.remove(key);
            }
            if let Some(key) = after {
                self.inactivity.insert(key);
            }
            if self.inactivity.needs_compaction() {
                let accounts = &self.accounts;
                self.inactivity
                    .compact(|entry| is_live_entry(accounts, entry));
            }
        }
    }

    /// The account change itself. The inactivity index stays equal to the
    /// active password accounts' last signs of life: [`Self::apply_account`]
    /// reindexes around creations and deletions, the login arm itself.
    fn apply_account_event(&mut self, id: AccountId, event: &A) {
        match event {
            A::PasswordAccountRegistered {
                email, name, at, ..
            } => {
                self.end_all_sessions(id);
                self.forget_email(id);
                let applications = self.take_application_slots(id);
                // Erased (its data key destroyed): a deleted account's.
                let email = (!email.is_erased()).then(|| email.clone());
                let filed = self.accounts.insert(AccountView {
                    id,
                    method: LoginMethod::Password,
                    email: email.clone(),
                    name: name.clone(),
                    status: AccountStatus::Active,
                    created_at: *at,
                    last_login_at: None,
                    warned_at: None,
                    pid_key: None,
                    applications,
                });
                if let (Some((slot, _)), Some(email)) = (filed, &email) {
                    self.file_email(email.as_str(), slot);
                }
            }
            A::IdPortenAccountCreated {
                subject,
                pid_key,
                name,
                at,
            } => {
                self.end_all_sessions(id);
                let applications = self.take_application_slots(id);
                self.accounts.insert(AccountView {
                    id,
                    method: LoginMethod::IdPorten,
                    email: None,
                    name: name.clone(),
                    status: AccountStatus::Active,
                    created_at: *at,
                    last_login_at: None,
                    warned_at: None,
                    pid_key: Some(*pid_key),
                    applications,
                });
                self.idporten_directory.insert(*subject, id);
            }
            A::LoginFailed { .. } | A::PasswordRehashed { .. } => {}
            A::SessionStarted { session, at } => {
                // The hottest account event: one lookup of the account, and
                // its inactivity key kept right here.
                self.forget_expired_sessions(*at);
                let digest = session.token_digest;
                let Some(slot) = self.accounts.slot(&id) else {
                    return;
                };
                let Some(account) = self.accounts.by_slot_mut(slot) else {
                    return;
                };
                let before = inactivity_key(account, slot);
                account.last_login_at = Some(*at);
                account.warned_at = None;
                let after = inactivity_key(account, slot);
                let view = SessionView {
                    account: id,
                    id: session.id,
                    method: account.method,
                    started_at: *at,
                    expires_at: session.expires_at,
                    idle_timeout_seconds: session.idle_timeout_seconds,
                };
                let previous = self.sessions.insert(digest, view);
                self.session_expiry.push((session.expires_at, digest));
                self.reindex(before, after);
                match previous {
                    None => self.list_session(id, digest),
                    // A digest seen before (never, with random tokens): it
                    // moves to this account.
                    Some(previous) if previous.account != id => {
                        self.unlist_session(previous.account, &digest);
                        self.list_session(id, digest);
                    }
                    Some(_) => {}
                }
            }
            A::SessionEnded { session, .. } => {
                let Entry::Occupied(mut listed) = self.account_sessions.entry(id) else {
                    return;
                };
                let sessions = &mut self.sessions;
                let left = listed.get_mut().retain(|digest| {
                    let ended = sessions.get(digest).is_some_and(|s| s.id == *session);
                    if ended {
                        sessions.remove(digest);
                    }
                    !ended
                });
                if !left {
                    listed.remove();
                }
            }
            A::PasswordChanged { .. } => self.end_all_sessions(id),
            A::PurgeWarningIssued { at, .. } => {
                if let Some(account) = self.accounts.get_mut(&id) {
                    account.warned_at = Some(*at);
                }
            }
            A::AccountDeleted { .. } => {
                self.end_all_sessions(id);
                let Some(account) = self.accounts.get_mut(&id) else {
                    return;
                };
                account.status = AccountStatus::Deleted;
                if account.email.is_some() {
                    self.deleted_unreleased.insert(id);
                }
                self.forget_email(id);
            }
        }
    }

    /// Remove the account's email from the directory if it points there.
    fn forget_email(&mut self, id: AccountId) {
        let accounts = &self.accounts;
        let Some(slot) = accounts.slot(&id) else {
            return;
        };
        if let Some(email) = account_email(accounts, slot) {
            self.email_directory
                .remove(email, slot, |slot| account_email(accounts, slot));
        }
    }

    /// File the account in `slot` under `email` (the account already holds
    /// it).
    pub(crate) fn file_email(&mut self, email: &str, slot: u32) {
        let accounts = &self.accounts;
        self.email_directory
            .insert(email, slot, |slot| account_email(accounts, slot));
    }

    /// The account filed under `email` in the directory.
    pub(crate) fn filed_under(&self, email: &str) -> Option<AccountId> {
        let slot = self
            .email_directory
            .get(email, |slot| account_email(&self.accounts, slot))?;
        self.accounts.by_slot(slot).map(|account| account.id)
    }

    /// The application slots of an account about to be (re)created: its
    /// own, or those filed before it existed here.
    fn take_application_slots(&mut self, id: AccountId) -> Slots {
        match self.accounts.get_mut(&id) {
            Some(account) => std::mem::take(&mut account.applications),
            None => self.applications.orphans.remove(&id).unwrap_or_default(),
        }
    }

    /// Take `digest` off the list of `id`'s live sessions.
    fn unlist_session(&mut self, id: AccountId, digest: &[u8; 32]) {
        if let Entry::Occupied(mut listed) = self.account_sessions.entry(id)
            && !listed.get_mut().retain(|d| d != digest)
        {
            listed.remove();
        }
    }

    /// Add `digest` to the list of `id`'s live sessions.
    pub(crate) fn list_session(&mut self, id: AccountId, digest: [u8; 32]) {
        match self.account_sessions.entry(id) {
            Entry::Occupied(mut listed) => listed.get_mut().push(digest),
            Entry::Vacant(entry) => {
                entry.insert(SessionList::One(digest));
            }
        }
    }

    /// Forget sessions whose absolute expiry is more than
    /// [`EXPIRED_SESSION_GRACE`] before `now` (the time of a login): no clock
    /// reading them can still accept them, and without this every session
    /// never logged out would stay in memory for good. Driven only by event
    /// times, so replays agree.
    fn forget_expired_sessions(&mut self, now: DateTime<Utc>) {
        let Some(cutoff) = now.checked_sub_signed(EXPIRED_SESSION_GRACE) else {
            return;
        };
        while let Some((expires_at, digest)) = self.session_expiry.pop_before(cutoff) {
            // Entries of sessions that ended earlier are left here (no
            // removal on every logout) and skipped now.
            if let Entry::Occupied(entry) = self.sessions.entry(digest)
                && entry.get().expires_at == expires_at
            {
                let view = entry.remove();
                self.unlist_session(view.account, &digest);
            }
        }
    }

    fn end_all_sessions(&mut self, id: AccountId) {
        if let Some(listed) = self.account_sessions.remove(&id) {
            for digest in listed.as_slice() {
                self.sessions.remove(digest);
            }
        }
    }

    /// An account by id.
    pub fn account(&self, id: AccountId) -> Option<&AccountView> {
        self.accounts.get(&id)
    }

    /// The active password account registered with `email`.
    pub fn account_by_email(&self, email: &Email) -> Option<&AccountView> {
        self.filed_under(email.as_str())
            .and_then(|id| self.accounts.get(&id))
    }

    /// The account of an ID-porten subject key.
    pub fn account_by_idporten(&self, subject: &[u8; 32]) -> Option<&AccountView> {
        self.idporten_directory
            .get(subject)
            .and_then(|id| self.accounts.get(id))
    }

    /// The live session whose token has this digest.
    pub fn session(&self, token_digest: &[u8; 32]) -> Option<&SessionView> {
        self.sessions.get(token_digest)
    }

    /// Active password accounts inactive for over two years as of `as_of`,
    /// oldest first. Costs the size of the answer, not a full scan.
    pub fn due_for_purge(&self, as_of: DateTime<Utc>) -> Vec<AccountId> {
        self.inactive_while(|last| domain::time::inactive_over_two_years(last, as_of))
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }

    /// The oldest entries of the inactivity index while `due` holds for
    /// their last sign of life, as (last active, account), in that order.
    pub(crate) fn inactive_while(
        &self,
        due: impl Fn(DateTime<Utc>) -> bool,
    ) -> Vec<(DateTime<Utc>, AccountId)> {
        let mut entries: Vec<(DateTime<Utc>, AccountId)> = self
            .inactivity
            .iter()
            .take_while(|entry| due(entry_instant(*entry)))
            .filter(|entry| is_live_entry(&self.accounts, *entry))
            .filter_map(|entry| {
                let account = self.accounts.by_slot(entry as u32)?;
                Some((entry_instant(entry), account.id))
            })
            .collect();
        // Entries of one instant are in slot order; readers get id order.
        // An entry can be there twice (an account back at an instant it had).
        entries.sort_unstable();
        entries.dedup();
        entries
    }

    /// Active password accounts inside the 30-day warning window as of
    /// `as_of` (including those already due), oldest first.
    pub fn due_for_warning(&self, as_of: DateTime<Utc>) -> Vec<AccountId> {
        self.inactive_while(|last| domain::time::purge_warning_at(last) <= as_of)
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }

    /// Deleted accounts whose email is still reserved, in id order.
    pub fn deleted_unreleased(&self) -> Vec<AccountId> {
        let mut ids: Vec<AccountId> = self.deleted_unreleased.iter().copied().collect();
        ids.sort();
        ids
    }

    /// Number of accounts (any status) and live sessions.
    pub fn counts(&self) -> (usize, usize) {
        (self.accounts.len(), self.sessions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast parse of stream ids agrees with `Uuid::parse_str` on ids
    /// in every form and with any one character changed.
    #[test]
    fn stream_ids_parse_as_uuid_parses_them() {
        let mut rng = test_support::workload::Rng::new(3);
        let alphabet = b"0123456789abcdefABCDEFgG-{}: ";
        for _ in 0..2_000 {
            let id = Uuid::from_u128(u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()));
            for text in [
                id.hyphenated().to_string(),
                id.hyphenated().to_string().to_uppercase(),
                id.simple().to_string(),
                id.braced().to_string(),
                id.urn().to_string(),
            ] {
                let mut variants = vec![text.clone()];
                let mut changed = text.clone().into_bytes();
                let at = rng.below(changed.len());
                changed[at] = alphabet[rng.below(alphabet.len())];
                variants.push(String::from_utf8(changed).expect("ascii"));
                variants.push(text[1..].to_owned());
                for variant in variants {
                    assert_eq!(
                        stream_id(&format!("account-{variant}"), "account"),
                        Uuid::parse_str(&variant).ok(),
                        "{variant}"
                    );
                }
            }
        }
        assert_eq!(stream_id("account-", "account"), None);
        assert_eq!(
            stream_id("flow-00000000-0000-0000-0000-000000000000", "account"),
            None
        );
    }

    /// A stream's key says what `stream_id` says of its name for each
    /// aggregate the read models know.
    #[test]
    fn a_stream_key_is_what_its_name_says() {
        let mut rng = test_support::workload::Rng::new(5);
        let prefixes = [
            "account",
            "application",
            "flow",
            "reservation",
            "accounts",
            "Account",
            "",
        ];
        for _ in 0..500 {
            let id = Uuid::from_u128(u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64()));
            let hyphenated = id.hyphenated().to_string();
            let ids = [
                hyphenated.clone(),
                hyphenated.to_uppercase(),
                id.simple().to_string(),
                id.braced().to_string(),
                hyphenated[1..].to_owned(),
                format!("{hyphenated}-x"),
                String::new(),
            ];
            for prefix in prefixes {
                for id in &ids {
                    for name in [format!("{prefix}-{id}"), format!("{prefix}{id}")] {
                        let expected = match (
                            stream_id(&name, "account"),
                            stream_id(&name, "application"),
                            stream_id(&name, "flow"),
                        ) {
                            (Some(id), None, None) => StreamKey::Account(id),
                            (None, Some(id), None) => StreamKey::Application(id),
                            (None, None, Some(_)) => StreamKey::Flow,
                            (None, None, None) => StreamKey::Other,
                            both => panic!("{name} names two aggregates: {both:?}"),
                        };
                        assert_eq!(StreamKey::of(&name), expected, "{name}");
                    }
                }
            }
        }
        assert_eq!(
            StreamKey::of("account-00000000-0000-0000-0000-000000000007"),
            StreamKey::Account(Uuid::from_u128(7))
        );
    }
}
