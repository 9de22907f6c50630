//! Wire types (v1) of account, flow and reservation events.

use domain::account::{DeletionReason, Event as A, NewSession};
use domain::flow::{Event as F, FlowKind, IssuedCode};
use domain::reservation::Event as R;
use domain::{AccountId, Email, FlowId, SessionId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CodecError, DomainEvent, Encoded, from_bytes, instant, malformed, micros, to_bytes};

pub(crate) const TYPES: &[(&str, u16)] = &[
    ("PasswordAccountRegistered", 1),
    ("IdPortenAccountCreated", 1),
    ("LoginFailed", 1),
    ("SessionStarted", 1),
    ("PasswordRehashed", 1),
    ("SessionEnded", 1),
    ("PasswordChanged", 1),
    ("PurgeWarningIssued", 1),
    ("AccountDeleted", 1),
    ("FlowStarted", 1),
    ("CodeResent", 1),
    ("CodeRejected", 1),
    ("CodeVerified", 1),
    ("FlowCompleted", 1),
    ("IdentityReserved", 1),
    ("IdentityReleased", 1),
];

#[derive(Serialize, Deserialize)]
struct PasswordAccountRegisteredV1 {
    email: String,
    name: String,
    password_phc: String,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct IdPortenAccountCreatedV1 {
    subject: [u8; 32],
    pid_key: [u8; 32],
    name: String,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct AtV1 {
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct SessionStartedV1 {
    session: Uuid,
    token_digest: [u8; 32],
    expires_at: i64,
    idle_timeout_seconds: u32,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct PhcV1 {
    password_phc: String,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct SessionEndedV1 {
    session: Uuid,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct PurgeWarningIssuedV1 {
    deletion_after: i64,
    at: i64,
}

#[derive(Serialize, Deserialize)]
enum DeletionReasonV1 {
    Inactivity,
}

#[derive(Serialize, Deserialize)]
struct AccountDeletedV1 {
    reason: DeletionReasonV1,
    at: i64,
}

#[derive(Serialize, Deserialize)]
enum FlowKindV1 {
    Registration,
    Recovery,
}

#[derive(Serialize, Deserialize)]
struct IssuedCodeV1 {
    nonce: [u8; 16],
    digest: [u8; 32],
    expires_at: i64,
}

#[derive(Serialize, Deserialize)]
struct FlowStartedV1 {
    kind: FlowKindV1,
    email: String,
    account: Option<Uuid>,
    code: IssuedCodeV1,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct CodeResentV1 {
    code: IssuedCodeV1,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct CodeRejectedV1 {
    attempts_left: u32,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct FlowCompletedV1 {
    account: Uuid,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct IdentityReservedV1 {
    account: Uuid,
    flow: Option<Uuid>,
}

#[derive(Serialize, Deserialize)]
struct IdentityReleasedV1 {
    account: Uuid,
}

fn enc(type_name: &'static str, payload: Vec<u8>) -> Encoded {
    Encoded {
        type_name,
        schema_version: 1,
        payload,
    }
}

fn code_v1(code: &IssuedCode) -> IssuedCodeV1 {
    IssuedCodeV1 {
        nonce: code.nonce,
        digest: code.digest,
        expires_at: micros(&code.expires_at),
    }
}

pub(crate) fn encode_account(event: &A) -> Encoded {
    match event {
        A::PasswordAccountRegistered {
            email,
            name,
            password_phc,
            at,
        } => enc(
            "PasswordAccountRegistered",
            to_bytes(&PasswordAccountRegisteredV1 {
                email: email.as_str().to_owned(),
                name: name.clone(),
                password_phc: password_phc.clone(),
                at: micros(at),
            }),
        ),
        A::IdPortenAccountCreated {
            subject,
            pid_key,
            name,
            at,
        } => enc(
            "IdPortenAccountCreated",
            to_bytes(&IdPortenAccountCreatedV1 {
                subject: *subject,
                pid_key: *pid_key,
                name: name.clone(),
                at: micros(at),
            }),
        ),
        A::LoginFailed { at } => enc("LoginFailed", to_bytes(&AtV1 { at: micros(at) })),
        A::SessionStarted { session, at } => enc(
            "SessionStarted",
            to_bytes(&SessionStartedV1 {
                session: session.id.0,
                token_digest: session.token_digest,
                expires_at: micros(&session.expires_at),
                idle_timeout_seconds: session.idle_timeout_seconds,
                at: micros(at),
            }),
        ),
        A::PasswordRehashed { password_phc, at } => enc(
            "PasswordRehashed",
            to_bytes(&PhcV1 {
                password_phc: password_phc.clone(),
                at: micros(at),
            }),
        ),
        A::SessionEnded { session, at } => enc(
            "SessionEnded",
            to_bytes(&SessionEndedV1 {
                session: session.0,
                at: micros(at),
            }),
        ),
        A::PasswordChanged { password_phc, at } => enc(
            "PasswordChanged",
            to_bytes(&PhcV1 {
                password_phc: password_phc.clone(),
                at: micros(at),
            }),
        ),
        A::PurgeWarningIssued { deletion_after, at } => enc(
            "PurgeWarningIssued",
            to_bytes(&PurgeWarningIssuedV1 {
                deletion_after: micros(deletion_after),
                at: micros(at),
            }),
        ),
        A::AccountDeleted { reason, at } => enc(
            "AccountDeleted",
            to_bytes(&AccountDeletedV1 {
                reason: match reason {
                    DeletionReason::Inactivity => DeletionReasonV1::Inactivity,
                },
                at: micros(at),
            }),
        ),
    }
}

pub(crate) fn encode_flow(event: &F) -> Encoded {
    match event {
        F::Started {
            kind,
            email,
            account,
            code,
            at,
        } => enc(
            "FlowStarted",
            to_bytes(&FlowStartedV1 {
                kind: match kind {
                    FlowKind::Registration => FlowKindV1::Registration,
                    FlowKind::Recovery => FlowKindV1::Recovery,
                },
                email: email.as_str().to_owned(),
                account: account.map(|a| a.0),
                code: code_v1(code),
                at: micros(at),
            }),
        ),
        F::CodeResent { code, at } => enc(
            "CodeResent",
            to_bytes(&CodeResentV1 {
                code: code_v1(code),
                at: micros(at),
            }),
        ),
        F::CodeRejected { attempts_left, at } => enc(
            "CodeRejected",
            to_bytes(&CodeRejectedV1 {
                attempts_left: *attempts_left,
                at: micros(at),
            }),
        ),
        F::CodeVerified { at } => enc("CodeVerified", to_bytes(&AtV1 { at: micros(at) })),
        F::Completed { account, at } => enc(
            "FlowCompleted",
            to_bytes(&FlowCompletedV1 {
                account: account.0,
                at: micros(at),
            }),
        ),
    }
}

pub(crate) fn encode_reservation(event: &R) -> Encoded {
    match event {
        R::Reserved { account, flow } => enc(
            "IdentityReserved",
            to_bytes(&IdentityReservedV1 {
                account: account.0,
                flow: flow.map(|f| f.0),
            }),
        ),
        R::Released { account } => enc(
            "IdentityReleased",
            to_bytes(&IdentityReleasedV1 { account: account.0 }),
        ),
    }
}

/// Decode one of this module's types; `None` when the type is not ours.
pub(crate) fn decode(
    type_name: &str,
    version: u16,
    p: &[u8],
) -> Option<Result<DomainEvent, CodecError>> {
    let known = TYPES.iter().any(|(t, _)| *t == type_name);
    if !known {
        return None;
    }
    if version != 1 {
        return Some(Err(CodecError::UnknownVersion {
            type_name: type_name.to_owned(),
            version,
        }));
    }
    Some(decode_v1(type_name, p))
}

fn decode_v1(ty: &str, p: &[u8]) -> Result<DomainEvent, CodecError> {
    let t = |us: i64| instant(ty, 1, us);
    let email = |s: &str| Email::from_recorded(s).map_err(|e| malformed(ty, 1, e.to_string()));
    Ok(match ty {
        "PasswordAccountRegistered" => {
            let w: PasswordAccountRegisteredV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::PasswordAccountRegistered {
                email: email(&w.email)?,
                name: w.name,
                password_phc: w.password_phc,
                at: t(w.at)?,
            })
        }
        "IdPortenAccountCreated" => {
            let w: IdPortenAccountCreatedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::IdPortenAccountCreated {
                subject: w.subject,
                pid_key: w.pid_key,
                name: w.name,
                at: t(w.at)?,
            })
        }
        "LoginFailed" => {
            let w: AtV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::LoginFailed { at: t(w.at)? })
        }
        "SessionStarted" => {
            let w: SessionStartedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::SessionStarted {
                session: NewSession {
                    id: SessionId(w.session),
                    token_digest: w.token_digest,
                    expires_at: t(w.expires_at)?,
                    idle_timeout_seconds: w.idle_timeout_seconds,
                },
                at: t(w.at)?,
            })
        }
        "PasswordRehashed" => {
            let w: PhcV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::PasswordRehashed {
                password_phc: w.password_phc,
                at: t(w.at)?,
            })
        }
        "SessionEnded" => {
            let w: SessionEndedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::SessionEnded {
                session: SessionId(w.session),
                at: t(w.at)?,
            })
        }
        "PasswordChanged" => {
            let w: PhcV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::PasswordChanged {
                password_phc: w.password_phc,
                at: t(w.at)?,
            })
        }
        "PurgeWarningIssued" => {
            let w: PurgeWarningIssuedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::PurgeWarningIssued {
                deletion_after: t(w.deletion_after)?,
                at: t(w.at)?,
            })
        }
        "AccountDeleted" => {
            let w: AccountDeletedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Account(A::AccountDeleted {
                reason: match w.reason {
                    DeletionReasonV1::Inactivity => DeletionReason::Inactivity,
                },
                at: t(w.at)?,
            })
        }
        "FlowStarted" => {
            let w: FlowStartedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Flow(F::Started {
                kind: match w.kind {
                    FlowKindV1::Registration => FlowKind::Registration,
                    FlowKindV1::Recovery => FlowKind::Recovery,
                },
                email: email(&w.email)?,
                account: w.account.map(AccountId),
                code: IssuedCode {
                    nonce: w.code.nonce,
                    digest: w.code.digest,
                    expires_at: t(w.code.expires_at)?,
                },
                at: t(w.at)?,
            })
        }
        "CodeResent" => {
            let w: CodeResentV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Flow(F::CodeResent {
                code: IssuedCode {
                    nonce: w.code.nonce,
                    digest: w.code.digest,
                    expires_at: t(w.code.expires_at)?,
                },
                at: t(w.at)?,
            })
        }
        "CodeRejected" => {
            let w: CodeRejectedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Flow(F::CodeRejected {
                attempts_left: w.attempts_left,
                at: t(w.at)?,
            })
        }
        "CodeVerified" => {
            let w: AtV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Flow(F::CodeVerified { at: t(w.at)? })
        }
        "FlowCompleted" => {
            let w: FlowCompletedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Flow(F::Completed {
                account: AccountId(w.account),
                at: t(w.at)?,
            })
        }
        "IdentityReserved" => {
            let w: IdentityReservedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Reservation(R::Reserved {
                account: AccountId(w.account),
                flow: w.flow.map(FlowId),
            })
        }
        "IdentityReleased" => {
            let w: IdentityReleasedV1 = from_bytes(ty, 1, p)?;
            DomainEvent::Reservation(R::Released {
                account: AccountId(w.account),
            })
        }
        other => return Err(CodecError::UnknownType(other.to_owned())),
    })
}
