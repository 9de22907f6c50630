//! One fixed sample of every stored event type: the source of the golden
//! byte vectors in `test_data/`, and realistic payloads for benchmarks.

use chrono::{DateTime, Utc};
use domain::account::{DeletionReason, Event as A, NewSession};
use domain::flow::{Event as F, FlowKind, IssuedCode};
use domain::reservation::Event as R;
use domain::{AccountId, Email, FlowId, SessionId};
use uuid::Uuid;

use crate::DomainEvent;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("sample instant")
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// (type name, schema version, the event those bytes decode to today).
pub fn all() -> Vec<(&'static str, u16, DomainEvent)> {
    let account = AccountId(uuid(1));
    let code = IssuedCode {
        nonce: [0x11; 16],
        digest: [0x22; 32],
        expires_at: t("2026-03-01T10:10:00Z"),
    };
    let email = Email::parse("kari.nordmann@example.no").expect("sample email");
    vec![
        (
            "PasswordAccountRegistered",
            1,
            DomainEvent::Account(A::PasswordAccountRegistered {
                email: email.clone(),
                name: "Kari Nordmann".into(),
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
                at: t("2026-03-01T10:05:00Z"),
            }),
        ),
        (
            "IdPortenAccountCreated",
            1,
            DomainEvent::Account(A::IdPortenAccountCreated {
                subject: [0x33; 32],
                name: "Ola Nordmann".into(),
                at: t("2026-03-01T11:00:00Z"),
            }),
        ),
        (
            "LoginFailed",
            1,
            DomainEvent::Account(A::LoginFailed {
                at: t("2026-03-02T08:00:00Z"),
            }),
        ),
        (
            "SessionStarted",
            1,
            DomainEvent::Account(A::SessionStarted {
                session: NewSession {
                    id: SessionId(uuid(2)),
                    token_digest: [0x44; 32],
                    expires_at: t("2026-03-02T20:00:00Z"),
                    idle_timeout_seconds: 3600,
                },
                at: t("2026-03-02T08:01:00Z"),
            }),
        ),
        (
            "PasswordRehashed",
            1,
            DomainEvent::Account(A::PasswordRehashed {
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA".into(),
                at: t("2026-03-02T08:01:00Z"),
            }),
        ),
        (
            "SessionEnded",
            1,
            DomainEvent::Account(A::SessionEnded {
                session: SessionId(uuid(2)),
                at: t("2026-03-02T09:00:00Z"),
            }),
        ),
        (
            "PasswordChanged",
            1,
            DomainEvent::Account(A::PasswordChanged {
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$Y2hhbmdlZA$Y2hhbmdlZA".into(),
                at: t("2026-04-01T12:00:00Z"),
            }),
        ),
        (
            "PurgeWarningIssued",
            1,
            DomainEvent::Account(A::PurgeWarningIssued {
                deletion_after: t("2028-04-01T12:00:00Z"),
                at: t("2028-03-02T12:00:00Z"),
            }),
        ),
        (
            "AccountDeleted",
            1,
            DomainEvent::Account(A::AccountDeleted {
                reason: DeletionReason::Inactivity,
                at: t("2028-04-02T00:00:00Z"),
            }),
        ),
        (
            "FlowStarted",
            1,
            DomainEvent::Flow(F::Started {
                kind: FlowKind::Registration,
                email,
                account: None,
                code,
                at: t("2026-03-01T10:00:00Z"),
            }),
        ),
        (
            "CodeResent",
            1,
            DomainEvent::Flow(F::CodeResent {
                code: IssuedCode {
                    nonce: [0x55; 16],
                    digest: [0x66; 32],
                    expires_at: t("2026-03-01T10:11:00Z"),
                },
                at: t("2026-03-01T10:01:00Z"),
            }),
        ),
        (
            "CodeRejected",
            1,
            DomainEvent::Flow(F::CodeRejected {
                attempts_left: 4,
                at: t("2026-03-01T10:02:00Z"),
            }),
        ),
        (
            "CodeVerified",
            1,
            DomainEvent::Flow(F::CodeVerified {
                at: t("2026-03-01T10:03:00Z"),
            }),
        ),
        (
            "FlowCompleted",
            1,
            DomainEvent::Flow(F::Completed {
                account,
                at: t("2026-03-01T10:05:00Z"),
            }),
        ),
        (
            "IdentityReserved",
            1,
            DomainEvent::Reservation(R::Reserved {
                account,
                flow: Some(FlowId(uuid(3))),
            }),
        ),
        (
            "IdentityReleased",
            1,
            DomainEvent::Reservation(R::Released { account }),
        ),
    ]
}
