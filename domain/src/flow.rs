//! Registration and password-recovery flows (`flow-<uuid>` streams): an
//! emailed code, its expiry, wrong tries, resends, then completion.
//!
//! Codes never appear here in clear. The caller draws a random nonce from a
//! CSPRNG, derives the 6-digit code from it under a server secret, and hands
//! the decider the nonce and a keyed digest of the code. A submitted code
//! arrives as its digest under the same key; the decider compares digests in
//! constant time.

use chrono::{DateTime, Duration, Utc};

use crate::{AccountId, Email, constant_time_eq};

/// Wrong codes allowed per flow; the last one kills the flow.
pub const MAX_WRONG_CODES: u32 = 5;
/// Codes sent per flow, the first one included.
pub const MAX_SENDS: u32 = 5;
/// Shortest time between two sends.
pub const RESEND_COOLDOWN: Duration = Duration::seconds(30);
/// How long a verified flow may wait for its completion.
pub const VERIFIED_FLOW_TTL: Duration = Duration::minutes(30);

/// What the flow is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowKind {
    Registration,
    Recovery,
}

/// One issued code: the nonce it is derived from and its keyed digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCode {
    pub nonce: [u8; 16],
    pub digest: [u8; 32],
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Phase {
    #[default]
    None,
    AwaitingCode,
    Verified,
    Completed,
    Killed,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub phase: Phase,
    pub kind: Option<FlowKind>,
    pub email: Option<Email>,
    /// For recovery: the account whose password is reset (None: unknown email).
    pub account: Option<AccountId>,
    pub code: Option<IssuedCode>,
    pub wrong_codes: u32,
    pub sends: u32,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub verified_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start {
        kind: FlowKind,
        email: Email,
        account: Option<AccountId>,
        code: IssuedCode,
        at: DateTime<Utc>,
    },
    Resend {
        code: IssuedCode,
        at: DateTime<Utc>,
    },
    /// `submitted_digest` is the keyed digest of what the person typed.
    Verify {
        submitted_digest: [u8; 32],
        at: DateTime<Utc>,
    },
    Complete {
        account: AccountId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started {
        kind: FlowKind,
        email: Email,
        account: Option<AccountId>,
        code: IssuedCode,
        at: DateTime<Utc>,
    },
    CodeResent {
        code: IssuedCode,
        at: DateTime<Utc>,
    },
    /// A wrong code; `attempts_left` = 0 means the flow is now dead.
    CodeRejected {
        attempts_left: u32,
        at: DateTime<Utc>,
    },
    CodeVerified {
        at: DateTime<Utc>,
    },
    Completed {
        account: AccountId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Unknown or finished flow.
    NotFound,
    AlreadyStarted,
    /// The code (or the verified flow) timed out.
    Expired,
    /// Too many wrong codes: the flow is dead; start again.
    TooManyAttempts,
    /// Asked for a new code too soon.
    ResendTooSoon {
        retry_after_seconds: i64,
    },
    /// No more codes for this flow; start again.
    ResendLimitReached,
    /// Completion before the code was verified.
    NotVerified,
    /// The code was already verified; nothing to resend or verify.
    AlreadyVerified,
}

/// The registration or recovery flow aggregate as a [`Decider`](crate::Decider):
/// [`decide`] and [`evolve`] over [`State`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Flow;

crate::decider::module_decider!(Flow);

pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::Started {
            kind,
            email,
            account,
            code,
            at,
        } => {
            state.phase = Phase::AwaitingCode;
            state.kind = Some(*kind);
            state.email = Some(email.clone());
            state.account = *account;
            state.code = Some(*code);
            state.sends = 1;
            state.last_sent_at = Some(*at);
        }
        Event::CodeResent { code, at } => {
            state.code = Some(*code);
            state.sends += 1;
            state.last_sent_at = Some(*at);
        }
        Event::CodeRejected { attempts_left, .. } => {
            state.wrong_codes += 1;
            if *attempts_left == 0 {
                state.phase = Phase::Killed;
            }
        }
        Event::CodeVerified { at } => {
            state.phase = Phase::Verified;
            state.verified_at = Some(*at);
        }
        Event::Completed { .. } => state.phase = Phase::Completed,
    }
}

pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::Start {
            kind,
            email,
            account,
            code,
            at,
        } => {
            if state.phase != Phase::None {
                return Err(Error::AlreadyStarted);
            }
            Ok(vec![Event::Started {
                kind: *kind,
                email: email.clone(),
                account: *account,
                code: *code,
                at: *at,
            }])
        }
        Command::Resend { code, at } => {
            live(state)?;
            if state.phase == Phase::Verified {
                return Err(Error::AlreadyVerified);
            }
            if state.sends >= MAX_SENDS {
                return Err(Error::ResendLimitReached);
            }
            if let Some(last) = state.last_sent_at {
                let ready = last + RESEND_COOLDOWN;
                if *at < ready {
                    let wait = (ready - *at).num_milliseconds();
                    return Err(Error::ResendTooSoon {
                        retry_after_seconds: (wait + 999) / 1000,
                    });
                }
            }
            Ok(vec![Event::CodeResent {
                code: *code,
                at: *at,
            }])
        }
        Command::Verify {
            submitted_digest,
            at,
        } => {
            live(state)?;
            if state.phase == Phase::Verified {
                return Err(Error::AlreadyVerified);
            }
            let code = state.code.as_ref().ok_or(Error::NotFound)?;
            if *at >= code.expires_at {
                return Err(Error::Expired);
            }
            if constant_time_eq(submitted_digest, &code.digest) {
                Ok(vec![Event::CodeVerified { at: *at }])
            } else {
                let attempts_left = MAX_WRONG_CODES.saturating_sub(state.wrong_codes + 1);
                Ok(vec![Event::CodeRejected {
                    attempts_left,
                    at: *at,
                }])
            }
        }
        Command::Complete { account, at } => {
            live(state)?;
            if state.phase != Phase::Verified {
                return Err(Error::NotVerified);
            }
            if state
                .verified_at
                .is_some_and(|v| *at >= v + VERIFIED_FLOW_TTL)
            {
                return Err(Error::Expired);
            }
            Ok(vec![Event::Completed {
                account: *account,
                at: *at,
            }])
        }
    }
}

/// A flow that can still be acted on.
fn live(state: &State) -> Result<(), Error> {
    match state.phase {
        Phase::None | Phase::Completed => Err(Error::NotFound),
        Phase::Killed => Err(Error::TooManyAttempts),
        Phase::AwaitingCode | Phase::Verified => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Given};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn code(byte: u8, expires_at: DateTime<Utc>) -> IssuedCode {
        IssuedCode {
            nonce: [byte; 16],
            digest: [byte; 32],
            expires_at,
        }
    }

    fn started() -> Vec<Event> {
        vec![Event::Started {
            kind: FlowKind::Registration,
            email: Email::parse("kari@example.no").unwrap(),
            account: None,
            code: code(7, t("2026-01-01T10:10:00Z")),
            at: t("2026-01-01T10:00:00Z"),
        }]
    }

    fn given(events: impl IntoIterator<Item = Event>) -> Given<Flow> {
        testing::given(events)
    }

    #[test]
    fn the_right_code_verifies_the_flow() {
        given(started())
            .when(Command::Verify {
                submitted_digest: [7; 32],
                at: t("2026-01-01T10:05:00Z"),
            })
            .then(vec![Event::CodeVerified {
                at: t("2026-01-01T10:05:00Z"),
            }]);
    }

    #[test]
    fn a_code_is_single_use() {
        let verify = Command::Verify {
            submitted_digest: [7; 32],
            at: t("2026-01-01T10:05:00Z"),
        };
        given(started())
            .when(verify.clone())
            .accepted()
            .when(verify.clone())
            .then_error(Error::AlreadyVerified)
            .when(Command::Complete {
                account: AccountId(Uuid::nil()),
                at: t("2026-01-01T10:06:00Z"),
            })
            .accepted()
            .when(verify)
            .then_error(Error::NotFound);
    }

    #[test]
    fn a_code_expires_at_its_deadline() {
        given(started())
            .when(Command::Verify {
                submitted_digest: [7; 32],
                at: t("2026-01-01T10:10:00Z"),
            })
            .then_error(Error::Expired);
    }

    #[test]
    fn wrong_code_five_times_kills_the_flow() {
        let mut flow = given(started());
        let wrong = Command::Verify {
            submitted_digest: [1; 32],
            at: t("2026-01-01T10:01:00Z"),
        };
        for left in (0..MAX_WRONG_CODES).rev() {
            let when = flow.when(wrong.clone());
            assert!(
                matches!(when.outcome(), Ok([Event::CodeRejected { attempts_left, .. }]) if *attempts_left == left)
            );
            flow = when.accepted();
        }
        flow.when(Command::Verify {
            submitted_digest: [7; 32],
            at: t("2026-01-01T10:02:00Z"),
        })
        .then_error(Error::TooManyAttempts)
        .when(Command::Resend {
            code: code(8, t("2026-01-01T10:20:00Z")),
            at: t("2026-01-01T10:05:00Z"),
        })
        .then_error(Error::TooManyAttempts);
    }

    #[test]
    fn resend_replaces_the_code_after_the_cool_down() {
        let resent = given(started())
            .when(Command::Resend {
                code: code(8, t("2026-01-01T10:10:10Z")),
                at: t("2026-01-01T10:00:10Z"),
            })
            .then_error(Error::ResendTooSoon {
                retry_after_seconds: 20,
            })
            .when(Command::Resend {
                code: code(8, t("2026-01-01T10:10:30Z")),
                at: t("2026-01-01T10:00:30Z"),
            })
            .accepted();
        let old = Command::Verify {
            submitted_digest: [7; 32],
            at: t("2026-01-01T10:01:00Z"),
        };
        assert!(matches!(
            resent.clone().when(old).outcome(),
            Ok([Event::CodeRejected { .. }])
        ));
        let new = Command::Verify {
            submitted_digest: [8; 32],
            at: t("2026-01-01T10:01:00Z"),
        };
        assert!(matches!(
            resent.when(new).outcome(),
            Ok([Event::CodeVerified { .. }])
        ));
    }

    #[test]
    fn resend_is_capped_per_flow() {
        let mut flow = given(started());
        let mut at = t("2026-01-01T10:00:00Z");
        for _ in 1..MAX_SENDS {
            at += Duration::minutes(1);
            flow = flow
                .when(Command::Resend {
                    code: code(9, at + Duration::minutes(10)),
                    at,
                })
                .accepted();
        }
        at += Duration::minutes(1);
        flow.when(Command::Resend {
            code: code(9, at),
            at,
        })
        .then_error(Error::ResendLimitReached);
    }

    #[test]
    fn completion_needs_a_verified_code() {
        given(started())
            .when(Command::Complete {
                account: AccountId(Uuid::nil()),
                at: t("2026-01-01T10:01:00Z"),
            })
            .then_error(Error::NotVerified);
    }

    #[test]
    fn an_unknown_flow_is_not_found() {
        given([])
            .when(Command::Verify {
                submitted_digest: [0; 32],
                at: t("2026-01-01T10:00:00Z"),
            })
            .then_error(Error::NotFound);
    }

    proptest! {
        /// A code is accepted exactly when submitted strictly before its deadline.
        #[test]
        fn code_expiry_boundary(offset_ms in -600_000i64..600_000) {
            let deadline = t("2026-01-01T10:10:00Z");
            let at = deadline + Duration::milliseconds(offset_ms);
            let when = given(started()).when(Command::Verify { submitted_digest: [7; 32], at });
            if offset_ms < 0 {
                prop_assert_eq!(when.outcome(), Ok(&[Event::CodeVerified { at }][..]));
            } else {
                prop_assert_eq!(when.outcome(), Err(&Error::Expired));
            }
        }
    }
}
