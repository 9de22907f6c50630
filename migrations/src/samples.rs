//! One fixed sample of every stored event type: the source of the golden
//! byte vectors in `test_data/`, and realistic payloads for benchmarks.

use chrono::{DateTime, Utc};
use domain::account::{DeletionReason, Event as A, NewSession};
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, CountryCode, DecisionOutcome, DeliveryChannel,
    Event as P, Kind, MeetingPointKind, Relation,
};
use domain::flow::{Event as F, FlowKind, IssuedCode};
use domain::legacy::{Event as L, LegacyOwner, LegacyRecord};
use domain::reservation::Event as R;
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, Email, FlowId, LoginMethod, SessionId};
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
                pid_key: [0x34; 32],
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
        (
            "AddressMailed",
            1,
            DomainEvent::Address(domain::address::Event::Mailed {
                at: t("2026-03-01T10:00:00Z"),
            }),
        ),
        (
            "AddressLoginFailed",
            1,
            DomainEvent::Address(domain::address::Event::LoginFailed {
                device: Some([0x44; 16]),
                at: t("2026-03-01T10:06:00Z"),
            }),
        ),
        (
            "AddressLoginSucceeded",
            1,
            DomainEvent::Address(domain::address::Event::LoginSucceeded {
                device: None,
                at: t("2026-03-01T10:07:00Z"),
            }),
        ),
        (
            "ApplicationCreated",
            1,
            DomainEvent::Application(created(account, LoginMethod::Password)),
        ),
        (
            "ApplicationCreated",
            2,
            DomainEvent::Application(created(account, LoginMethod::IdPorten)),
        ),
        (
            "ApplicationSubmitted",
            1,
            DomainEvent::Application(P::Submitted {
                at: t("2026-03-03T09:00:00Z"),
            }),
        ),
        (
            "AppointmentBooked",
            1,
            DomainEvent::Application(P::AppointmentBooked {
                appointment: appointment(AppointmentPurpose::Application),
                at: t("2026-03-03T09:05:00Z"),
            }),
        ),
        (
            "AppointmentRescheduled",
            1,
            DomainEvent::Application(P::AppointmentRescheduled {
                appointment: appointment(AppointmentPurpose::ResidenceCardPhoto),
                at: t("2026-03-04T09:05:00Z"),
            }),
        ),
        (
            "AppointmentCancelled",
            1,
            DomainEvent::Application(P::AppointmentCancelled {
                purpose: AppointmentPurpose::Application,
                at: t("2026-03-05T09:05:00Z"),
            }),
        ),
        (
            "DocumentsReceived",
            1,
            DomainEvent::Application(P::DocumentsReceived {
                at: t("2026-03-20T10:00:00Z"),
            }),
        ),
        (
            "FeePaid",
            1,
            DomainEvent::Application(P::FeePaid {
                amount_nok: 6300,
                at: t("2026-03-03T09:01:00Z"),
            }),
        ),
        (
            "RefundRequested",
            1,
            DomainEvent::Application(P::RefundRequested {
                at: t("2026-03-06T09:01:00Z"),
            }),
        ),
        (
            "DecisionMade",
            1,
            DomainEvent::Application(P::DecisionMade {
                outcome: DecisionOutcome::Granted,
                channel: DeliveryChannel::Digipost,
                at: t("2026-05-01T12:00:00Z"),
            }),
        ),
        (
            "LegacyApplicationImported",
            1,
            DomainEvent::Legacy(L::LegacyApplicationImported {
                record: LegacyRecord {
                    reference: "UDI-2021-000123".into(),
                    submitted_at: t("2021-06-01T10:00:00Z"),
                    kind: Kind::Work,
                    owner: LegacyOwner::EmailHash([0x77; 32]),
                },
                imported_at: t("2026-03-01T00:00:00Z"),
            }),
        ),
    ]
}

fn created(owner: AccountId, owner_method: LoginMethod) -> P {
    P::Created {
        id: ApplicationId(uuid(4)),
        owner,
        owner_method,
        kind: Kind::Family,
        relation: Relation::FamilyMember,
        applicant: Applicant {
            name: PersonName::parse("Nora Nordmann").expect("sample name"),
            birth_date: chrono::NaiveDate::from_ymd_opt(2019, 5, 17).expect("sample date"),
            nationality: CountryCode::parse("NOR").expect("sample country"),
        },
        at: t("2026-03-02T09:00:00Z"),
    }
}

fn appointment(purpose: AppointmentPurpose) -> Appointment {
    Appointment {
        meeting_point: MeetingPointKind::Police,
        location: "Oslo politidistrikt, Grønland".into(),
        starts_at: t("2026-04-02T08:30:00Z"),
        purpose,
    }
}

/// The bytes of an old (no longer written) version, for blessing its vector.
pub fn old_version_bytes(type_name: &str, version: u16, event: &DomainEvent) -> Option<Vec<u8>> {
    match (type_name, version, event) {
        ("ApplicationCreated", 1, DomainEvent::Application(e)) => {
            crate::application::created_v1_bytes(e)
        }
        _ => None,
    }
}
