//! Accounts (`account-<uuid>` streams): one login identity each, its
//! password, login throttling, sessions and the two-year inactivity purge.
//!
//! Password hashing and token generation happen outside; the decider sees PHC
//! strings, token digests and the verdict of a password check.

use chrono::{DateTime, Duration, Utc};

use crate::{Email, LoginMethod, SessionId, text::PersonName, time};

/// Consecutive wrong passwords allowed before logins are slowed down.
pub const FREE_LOGIN_FAILURES: u32 = 5;
/// First delay once throttled; it doubles with every further failure.
pub const FIRST_LOGIN_DELAY: Duration = Duration::seconds(30);
/// The delay never grows beyond this: throttling, never a lockout.
pub const MAX_LOGIN_DELAY: Duration = Duration::minutes(15);

/// Why an account was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionReason {
    /// No login for over two years.
    Inactivity,
}

/// A session about to start. The token itself is never seen here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    /// SHA-256 of the 256-bit random token.
    pub token_digest: [u8; 32],
    /// Absolute end of the session.
    pub expires_at: DateTime<Utc>,
    /// The session ends after this much inactivity.
    pub idle_timeout_seconds: u32,
}

/// A live session as the account knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub token_digest: [u8; 32],
    pub expires_at: DateTime<Utc>,
    pub idle_timeout_seconds: u32,
}

/// What the password check said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Right password (or a verified ID-porten login): start `session`, and
    /// store `rehash` when the hash parameters changed.
    Success {
        session: NewSession,
        rehash: Option<String>,
    },
    WrongPassword,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    None,
    Active,
    Deleted,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub status: Status,
    pub method: Option<LoginMethod>,
    pub email: Option<Email>,
    pub name: Option<String>,
    pub password_phc: Option<String>,
    /// Keyed hash of (issuer, pid) for ID-porten accounts.
    pub idporten_subject: Option<[u8; 32]>,
    pub created_at: Option<DateTime<Utc>>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub failed_logins: u32,
    pub last_failed_at: Option<DateTime<Utc>>,
    pub sessions: Vec<SessionInfo>,
    /// Set when the purge warning went out for the current inactivity period.
    pub warned_at: Option<DateTime<Utc>>,
}

impl State {
    /// Last sign of life: the last login, or the creation for an unused account.
    pub fn last_active(&self) -> Option<DateTime<Utc>> {
        self.last_login_at.or(self.created_at)
    }

    /// How long the next login must wait, if it must.
    pub fn login_delay(&self, at: DateTime<Utc>) -> Option<Duration> {
        login_delay(self.failed_logins, self.last_failed_at, at)
    }
}

/// The wait imposed after `failures` consecutive wrong passwords.
pub fn delay_after(failures: u32) -> Option<Duration> {
    if failures < FREE_LOGIN_FAILURES {
        return None;
    }
    let doublings = (failures - FREE_LOGIN_FAILURES).min(16);
    let delay = FIRST_LOGIN_DELAY * 2i32.pow(doublings);
    Some(delay.min(MAX_LOGIN_DELAY))
}

fn login_delay(
    failures: u32,
    last_failed_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Option<Duration> {
    let ready = last_failed_at? + delay_after(failures)?;
    (at < ready).then(|| ready - at)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    RegisterWithPassword {
        email: Email,
        name: PersonName,
        password_phc: String,
        at: DateTime<Utc>,
    },
    CreateIdPorten {
        subject: [u8; 32],
        /// Keyed hash of the pid alone (matches legacy records).
        pid_key: [u8; 32],
        name: PersonName,
        at: DateTime<Utc>,
    },
    Login {
        outcome: LoginOutcome,
        at: DateTime<Utc>,
    },
    Logout {
        session: SessionId,
        at: DateTime<Utc>,
    },
    /// Set a new password (recovery); ends every session.
    ChangePassword {
        password_phc: String,
        at: DateTime<Utc>,
    },
    /// Warn of the coming purge when inside the 30-day window.
    WarnOfPurge { as_of: DateTime<Utc> },
    /// Delete the account when it has been inactive for over two years.
    PurgeInactive { as_of: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PasswordAccountRegistered {
        email: Email,
        name: String,
        password_phc: String,
        at: DateTime<Utc>,
    },
    IdPortenAccountCreated {
        subject: [u8; 32],
        pid_key: [u8; 32],
        name: String,
        at: DateTime<Utc>,
    },
    LoginFailed {
        at: DateTime<Utc>,
    },
    /// A successful login: the session starts and the account counts as used.
    SessionStarted {
        session: NewSession,
        at: DateTime<Utc>,
    },
    PasswordRehashed {
        password_phc: String,
        at: DateTime<Utc>,
    },
    SessionEnded {
        session: SessionId,
        at: DateTime<Utc>,
    },
    /// The password changed; every session ends.
    PasswordChanged {
        password_phc: String,
        at: DateTime<Utc>,
    },
    PurgeWarningIssued {
        deletion_after: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// The account is gone; every session ends, the applications stay.
    AccountDeleted {
        reason: DeletionReason,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    NotFound,
    AlreadyExists,
    /// Too many wrong passwords lately; try again later.
    Throttled {
        retry_after_seconds: i64,
    },
    /// The operation needs a password account.
    NotAPasswordAccount,
    /// The account is not (yet) due for the purge.
    NotDue,
}

/// The account aggregate as a [`Decider`](crate::Decider):
/// [`decide`] and [`evolve`] over [`State`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Account;

crate::decider::module_decider!(Account);

pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::PasswordAccountRegistered {
            email,
            name,
            password_phc,
            at,
        } => {
            state.status = Status::Active;
            state.method = Some(LoginMethod::Password);
            state.email = Some(email.clone());
            state.name = Some(name.clone());
            state.password_phc = Some(password_phc.clone());
            state.created_at = Some(*at);
        }
        Event::IdPortenAccountCreated {
            subject, name, at, ..
        } => {
            state.status = Status::Active;
            state.method = Some(LoginMethod::IdPorten);
            state.idporten_subject = Some(*subject);
            state.name = Some(name.clone());
            state.created_at = Some(*at);
        }
        Event::LoginFailed { at } => {
            state.failed_logins += 1;
            state.last_failed_at = Some(*at);
        }
        Event::SessionStarted { session, at } => {
            state.failed_logins = 0;
            state.last_failed_at = None;
            state.last_login_at = Some(*at);
            state.warned_at = None;
            state.sessions.push(SessionInfo {
                id: session.id,
                token_digest: session.token_digest,
                expires_at: session.expires_at,
                idle_timeout_seconds: session.idle_timeout_seconds,
            });
        }
        Event::PasswordRehashed { password_phc, .. } => {
            state.password_phc = Some(password_phc.clone())
        }
        Event::SessionEnded { session, .. } => state.sessions.retain(|s| s.id != *session),
        Event::PasswordChanged { password_phc, .. } => {
            state.password_phc = Some(password_phc.clone());
            state.failed_logins = 0;
            state.last_failed_at = None;
            state.sessions.clear();
        }
        Event::PurgeWarningIssued { at, .. } => state.warned_at = Some(*at),
        Event::AccountDeleted { .. } => {
            state.status = Status::Deleted;
            state.sessions.clear();
        }
    }
}

pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::RegisterWithPassword {
            email,
            name,
            password_phc,
            at,
        } => {
            if state.status != Status::None {
                return Err(Error::AlreadyExists);
            }
            Ok(vec![Event::PasswordAccountRegistered {
                email: email.clone(),
                name: name.as_str().to_owned(),
                password_phc: password_phc.clone(),
                at: *at,
            }])
        }
        Command::CreateIdPorten {
            subject,
            pid_key,
            name,
            at,
        } => {
            if state.status != Status::None {
                return Err(Error::AlreadyExists);
            }
            Ok(vec![Event::IdPortenAccountCreated {
                subject: *subject,
                pid_key: *pid_key,
                name: name.as_str().to_owned(),
                at: *at,
            }])
        }
        Command::Login { outcome, at } => {
            active(state)?;
            if let Some(wait) = state.login_delay(*at) {
                return Err(Error::Throttled {
                    retry_after_seconds: (wait.num_milliseconds() + 999) / 1000,
                });
            }
            match outcome {
                LoginOutcome::WrongPassword => Ok(vec![Event::LoginFailed { at: *at }]),
                LoginOutcome::Success { session, rehash } => {
                    let mut events = vec![Event::SessionStarted {
                        session: *session,
                        at: *at,
                    }];
                    if let Some(phc) = rehash {
                        events.push(Event::PasswordRehashed {
                            password_phc: phc.clone(),
                            at: *at,
                        });
                    }
                    Ok(events)
                }
            }
        }
        Command::Logout { session, at } => {
            active(state)?;
            if state.sessions.iter().any(|s| s.id == *session) {
                Ok(vec![Event::SessionEnded {
                    session: *session,
                    at: *at,
                }])
            } else {
                Ok(vec![])
            }
        }
        Command::ChangePassword { password_phc, at } => {
            active(state)?;
            if state.method != Some(LoginMethod::Password) {
                return Err(Error::NotAPasswordAccount);
            }
            Ok(vec![Event::PasswordChanged {
                password_phc: password_phc.clone(),
                at: *at,
            }])
        }
        Command::WarnOfPurge { as_of } => {
            active(state)?;
            let last = state.last_active().ok_or(Error::NotFound)?;
            if state.warned_at.is_some() || *as_of < time::purge_warning_at(last) {
                return Ok(vec![]);
            }
            Ok(vec![Event::PurgeWarningIssued {
                deletion_after: time::two_years_after(last),
                at: *as_of,
            }])
        }
        Command::PurgeInactive { as_of } => {
            if state.status == Status::Deleted {
                return Ok(vec![]);
            }
            active(state)?;
            let last = state.last_active().ok_or(Error::NotFound)?;
            if !time::inactive_over_two_years(last, *as_of) {
                return Err(Error::NotDue);
            }
            Ok(vec![Event::AccountDeleted {
                reason: DeletionReason::Inactivity,
                at: *as_of,
            }])
        }
    }
}

fn active(state: &State) -> Result<(), Error> {
    match state.status {
        Status::Active => Ok(()),
        Status::None | Status::Deleted => Err(Error::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Given};
    use uuid::Uuid;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn registered(at: &str) -> Event {
        Event::PasswordAccountRegistered {
            email: Email::parse("kari@example.no").unwrap(),
            name: "Kari Nordmann".into(),
            password_phc: "$argon2id$old".into(),
            at: t(at),
        }
    }

    fn session(n: u128) -> NewSession {
        NewSession {
            id: SessionId(Uuid::from_u128(n)),
            token_digest: [n as u8; 32],
            expires_at: t("2030-01-01T00:00:00Z"),
            idle_timeout_seconds: 1800,
        }
    }

    fn given(events: impl IntoIterator<Item = Event>) -> Given<Account> {
        testing::given(events)
    }

    fn login(at: DateTime<Utc>, session_number: u128, rehash: Option<&str>) -> Command {
        Command::Login {
            outcome: LoginOutcome::Success {
                session: session(session_number),
                rehash: rehash.map(Into::into),
            },
            at,
        }
    }

    fn wrong_password(at: DateTime<Utc>) -> Command {
        Command::Login {
            outcome: LoginOutcome::WrongPassword,
            at,
        }
    }

    #[test]
    fn an_account_is_registered_once() {
        given([registered("2026-01-01T00:00:00Z")])
            .when(Command::RegisterWithPassword {
                email: Email::parse("kari@example.no").unwrap(),
                name: PersonName::parse("Kari").unwrap(),
                password_phc: "x".into(),
                at: t("2026-01-02T00:00:00Z"),
            })
            .then_error(Error::AlreadyExists);
    }

    #[test]
    fn a_successful_login_starts_a_session_and_records_the_login() {
        let state = given([registered("2026-01-01T00:00:00Z")])
            .when(login(t("2026-02-01T00:00:00Z"), 1, None))
            .accepted()
            .state();
        assert_eq!(state.last_login_at, Some(t("2026-02-01T00:00:00Z")));
        assert_eq!(state.sessions.len(), 1);
    }

    #[test]
    fn login_rehashes_when_parameters_changed() {
        let state = given([registered("2026-01-01T00:00:00Z")])
            .when(login(t("2026-02-01T00:00:00Z"), 1, Some("$argon2id$new")))
            .accepted()
            .state();
        assert_eq!(state.password_phc.as_deref(), Some("$argon2id$new"));
    }

    #[test]
    fn repeated_wrong_passwords_slow_logins_down_but_never_lock_out() {
        let mut account = given([registered("2026-01-01T00:00:00Z")]);
        let mut at = t("2026-02-01T00:00:00Z");
        for _ in 0..FREE_LOGIN_FAILURES {
            account = account.when(wrong_password(at)).accepted();
            at += Duration::seconds(1);
        }
        let right = |at| login(at, 2, None);
        account = account.when(right(at)).then_error(Error::Throttled {
            retry_after_seconds: 29,
        });
        let later = at + Duration::seconds(30);
        account.clone().when(right(later)).accepted();
        // The delay grows with every further failure, up to the cap.
        for _ in 0..20 {
            let state = account.clone().state();
            let ready = state.last_failed_at.unwrap()
                + state
                    .login_delay(state.last_failed_at.unwrap())
                    .unwrap_or_default();
            account = account.when(wrong_password(ready)).accepted();
        }
        let state = account.clone().state();
        let last = state.last_failed_at.unwrap();
        assert_eq!(state.login_delay(last), Some(MAX_LOGIN_DELAY));
        account.when(right(last + MAX_LOGIN_DELAY)).accepted();
    }

    #[test]
    fn a_successful_login_resets_the_failure_count() {
        let mut account = given([registered("2026-01-01T00:00:00Z")]);
        let at = t("2026-02-01T00:00:00Z");
        for _ in 0..3 {
            account = account.when(wrong_password(at)).accepted();
        }
        let state = account.when(login(at, 1, None)).accepted().state();
        assert_eq!(state.failed_logins, 0);
    }

    #[test]
    fn logout_ends_only_that_session() {
        let state = given([
            registered("2026-01-01T00:00:00Z"),
            Event::SessionStarted {
                session: session(1),
                at: t("2026-01-02T00:00:00Z"),
            },
            Event::SessionStarted {
                session: session(2),
                at: t("2026-01-02T00:00:00Z"),
            },
        ])
        .when(Command::Logout {
            session: session(1).id,
            at: t("2026-01-03T00:00:00Z"),
        })
        .accepted()
        .state();
        assert_eq!(
            state.sessions.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![session(2).id]
        );
    }

    #[test]
    fn a_password_change_ends_every_session() {
        let state = given([
            registered("2026-01-01T00:00:00Z"),
            Event::SessionStarted {
                session: session(1),
                at: t("2026-01-02T00:00:00Z"),
            },
            Event::SessionStarted {
                session: session(2),
                at: t("2026-01-02T00:00:00Z"),
            },
        ])
        .when(Command::ChangePassword {
            password_phc: "$argon2id$new".into(),
            at: t("2026-01-03T00:00:00Z"),
        })
        .accepted()
        .state();
        assert!(state.sessions.is_empty());
    }

    #[test]
    fn an_idporten_account_has_no_password_to_change() {
        given([Event::IdPortenAccountCreated {
            subject: [1; 32],
            pid_key: [2; 32],
            name: "Ola".into(),
            at: t("2026-01-01T00:00:00Z"),
        }])
        .when(Command::ChangePassword {
            password_phc: "x".into(),
            at: t("2026-01-02T00:00:00Z"),
        })
        .then_error(Error::NotAPasswordAccount);
    }

    #[test]
    fn an_account_unused_for_over_two_years_is_purged_and_its_sessions_end() {
        let purged = given([
            registered("2024-01-01T00:00:00Z"),
            Event::SessionStarted {
                session: session(1),
                at: t("2024-02-29T10:00:00Z"),
            },
        ])
        .when(Command::PurgeInactive {
            as_of: t("2026-02-28T10:00:00Z"),
        })
        .then_error(Error::NotDue)
        .when(Command::PurgeInactive {
            as_of: t("2026-02-28T10:00:01Z"),
        })
        .accepted();
        let state = purged.clone().state();
        assert_eq!(state.status, Status::Deleted);
        assert!(state.sessions.is_empty());
        purged
            .when(Command::PurgeInactive {
                as_of: t("2026-03-01T00:00:00Z"),
            })
            .then(vec![]);
    }

    #[test]
    fn a_never_used_account_counts_from_its_creation() {
        given([registered("2024-03-01T00:00:00Z")])
            .when(Command::PurgeInactive {
                as_of: t("2026-03-01T00:00:00Z"),
            })
            .then_error(Error::NotDue)
            .when(Command::PurgeInactive {
                as_of: t("2026-03-01T00:00:01Z"),
            })
            .accepted();
    }

    #[test]
    fn the_purge_warning_goes_out_once_thirty_days_before() {
        given([registered("2024-06-01T00:00:00Z")])
            .when(Command::WarnOfPurge {
                as_of: t("2026-05-01T00:00:00Z"),
            })
            .then(vec![])
            .when(Command::WarnOfPurge {
                as_of: t("2026-05-02T00:00:00Z"),
            })
            .then(vec![Event::PurgeWarningIssued {
                deletion_after: t("2026-06-01T00:00:00Z"),
                at: t("2026-05-02T00:00:00Z"),
            }])
            .when(Command::WarnOfPurge {
                as_of: t("2026-05-03T00:00:00Z"),
            })
            .then(vec![]);
    }

    #[test]
    fn a_login_after_the_warning_restarts_the_period() {
        given([registered("2024-06-01T00:00:00Z")])
            .when(Command::WarnOfPurge {
                as_of: t("2026-05-02T00:00:00Z"),
            })
            .accepted()
            .when(login(t("2026-05-10T00:00:00Z"), 1, None))
            .accepted()
            .when(Command::PurgeInactive {
                as_of: t("2026-06-02T00:00:00Z"),
            })
            .then_error(Error::NotDue);
    }

    #[test]
    fn a_deleted_account_cannot_log_in() {
        given([
            registered("2024-01-01T00:00:00Z"),
            Event::AccountDeleted {
                reason: DeletionReason::Inactivity,
                at: t("2026-02-01T00:00:00Z"),
            },
        ])
        .when(wrong_password(t("2026-02-02T00:00:00Z")))
        .then_error(Error::NotFound);
    }
}
