//! Helpers shared by the projection tests: a small hand-written history and
//! appending generated events to a store.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::account::{DeletionReason, Event as A, NewSession};
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, CountryCode, DecisionOutcome, DeliveryChannel,
    Event as P, Kind, MeetingPointKind, Relation,
};
use domain::legacy::{Event as L, LegacyOwner, LegacyRecord};
use domain::reservation::Event as R;
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, Email, LoginMethod, SessionId};
use migrations::DomainEvent;
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};
use test_support::workload::Generated;
use uuid::Uuid;

pub fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).single().unwrap() + Duration::minutes(minutes)
}

pub fn account(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(0xa000 + n))
}

pub fn application(n: u128) -> ApplicationId {
    ApplicationId(Uuid::from_u128(0xb000 + n))
}

fn session(n: u128, at: DateTime<Utc>) -> NewSession {
    NewSession {
        id: SessionId(Uuid::from_u128(0xc000 + n)),
        token_digest: [n as u8; 32],
        expires_at: at + Duration::hours(12),
        idle_timeout_seconds: 3600,
    }
}

fn applicant(name: &str) -> Applicant {
    Applicant {
        name: PersonName::parse(name).unwrap(),
        birth_date: chrono::NaiveDate::from_ymd_opt(1990, 5, 17).unwrap(),
        nationality: CountryCode::parse("POL").unwrap(),
    }
}

/// A short history: two password accounts and one ID-porten account,
/// logins and a logout, three applications (one booked and decided), a
/// legacy record, a purge warning and a deletion.
pub fn small_history() -> Vec<Generated> {
    let (kari, ola, idp) = (account(1), account(2), account(3));
    let kari_email = Email::parse("kari@example.no").unwrap();
    let events: Vec<(String, DomainEvent)> = vec![
        (
            "email-01".into(),
            DomainEvent::Reservation(R::Reserved {
                account: kari,
                flow: None,
            }),
        ),
        (
            kari.stream(),
            DomainEvent::Account(A::PasswordAccountRegistered {
                email: kari_email,
                name: "Kari Nordmann".into(),
                password_phc: "phc".into(),
                at: t(0),
            }),
        ),
        (
            ola.stream(),
            DomainEvent::Account(A::PasswordAccountRegistered {
                email: Email::parse("Ola@Example.no").unwrap(),
                name: "Ola Nordmann".into(),
                password_phc: "phc".into(),
                at: t(1),
            }),
        ),
        (
            idp.stream(),
            DomainEvent::Account(A::IdPortenAccountCreated {
                subject: [7; 32],
                pid_key: [8; 32],
                name: "Aisha Khan".into(),
                at: t(2),
            }),
        ),
        (
            kari.stream(),
            DomainEvent::Account(A::SessionStarted {
                session: session(1, t(3)),
                at: t(3),
            }),
        ),
        (
            idp.stream(),
            DomainEvent::Account(A::SessionStarted {
                session: session(2, t(4)),
                at: t(4),
            }),
        ),
        (
            ola.stream(),
            DomainEvent::Account(A::SessionStarted {
                session: session(3, t(5)),
                at: t(5),
            }),
        ),
        (
            ola.stream(),
            DomainEvent::Account(A::SessionEnded {
                session: SessionId(Uuid::from_u128(0xc003)),
                at: t(6),
            }),
        ),
        (
            application(1).stream(),
            DomainEvent::Application(P::Created {
                id: application(1),
                owner: kari,
                owner_method: LoginMethod::Password,
                kind: Kind::Work,
                relation: Relation::Myself,
                applicant: applicant("Kari Nordmann"),
                at: t(10),
            }),
        ),
        (
            application(2).stream(),
            DomainEvent::Application(P::Created {
                id: application(2),
                owner: kari,
                owner_method: LoginMethod::Password,
                kind: Kind::Family,
                relation: Relation::FamilyMember,
                applicant: applicant("Liten Nordmann"),
                at: t(11),
            }),
        ),
        (
            application(1).stream(),
            DomainEvent::Application(P::Submitted { at: t(12) }),
        ),
        (
            application(1).stream(),
            DomainEvent::Application(P::FeePaid {
                amount_nok: 6300,
                at: t(13),
            }),
        ),
        (
            application(1).stream(),
            DomainEvent::Application(P::AppointmentBooked {
                appointment: Appointment {
                    meeting_point: MeetingPointKind::Police,
                    location: "Oslo politidistrikt, Grønland".into(),
                    starts_at: t(60 * 24 * 7),
                    purpose: AppointmentPurpose::Application,
                },
                at: t(14),
            }),
        ),
        (
            application(1).stream(),
            DomainEvent::Application(P::DocumentsReceived { at: t(60 * 24 * 7) }),
        ),
        (
            application(1).stream(),
            DomainEvent::Application(P::DecisionMade {
                outcome: DecisionOutcome::Granted,
                channel: DeliveryChannel::Digipost,
                at: t(60 * 24 * 30),
            }),
        ),
        (
            application(3).stream(),
            DomainEvent::Application(P::Created {
                id: application(3),
                owner: idp,
                owner_method: LoginMethod::IdPorten,
                kind: Kind::Study,
                relation: Relation::Myself,
                applicant: applicant("Aisha Khan"),
                at: t(60 * 24 * 31),
            }),
        ),
        (
            "legacy-UDI-0000001".into(),
            DomainEvent::Legacy(L::LegacyApplicationImported {
                record: LegacyRecord {
                    reference: "UDI-0000001".into(),
                    submitted_at: Utc.with_ymd_and_hms(2021, 6, 1, 10, 0, 0).single().unwrap(),
                    kind: Kind::Visit,
                    owner: LegacyOwner::PidHash([8; 32]),
                },
                imported_at: t(60 * 24 * 32),
            }),
        ),
        (
            ola.stream(),
            DomainEvent::Account(A::PurgeWarningIssued {
                deletion_after: t(60 * 24 * 800),
                at: t(60 * 24 * 770),
            }),
        ),
        (
            ola.stream(),
            DomainEvent::Account(A::AccountDeleted {
                reason: DeletionReason::Inactivity,
                at: t(60 * 24 * 800),
            }),
        ),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, (stream, event))| (i as u64 + 1, stream, event))
        .collect()
}

/// Append generated events to `store`, one append per event, in order.
pub async fn append_all(store: &Arc<dyn EventStore>, events: &[Generated]) -> u64 {
    let mut last = 0;
    for (_, stream, event) in events {
        let encoded = migrations::encode(event);
        let result = store
            .append(
                stream,
                ExpectedRevision::Any,
                vec![NewEvent {
                    id: Uuid::new_v4(),
                    type_name: encoded.type_name.to_owned(),
                    schema_version: encoded.schema_version,
                    metadata: EventMetadata {
                        actor: "system".into(),
                        correlation_id: Uuid::new_v4(),
                        causation_id: None,
                        occurred_at: t(0),
                    },
                    payload: encoded.payload,
                }],
            )
            .await
            .expect("append");
        last = result.position;
    }
    last
}
