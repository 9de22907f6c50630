//! A small data dir with a fixed story (fixed ids, instants and secret),
//! written through the store port and the migrations encoder, and helpers
//! to run the built `replay-tool` over it.

#![allow(dead_code)] // each test binary uses a part of the helpers

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::{DateTime, NaiveDate, Utc};
use domain::account::{DeletionReason, Event as A, NewSession};
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, CountryCode, Event as P, Kind, MeetingPointKind,
    Relation,
};
use domain::flow::{Event as F, FlowKind, IssuedCode};
use domain::reservation::Event as R;
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, Email, FlowId, LoginMethod, SessionId};
use migrations::DomainEvent;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};
use uuid::Uuid;

pub const SECRET: [u8; 32] = [0x5a; 32];
pub const KARI_EMAIL: &str = "kari.nordmann@example.no";

pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

pub fn kari_first() -> AccountId {
    AccountId(id(0xa1))
}
pub fn kari_second() -> AccountId {
    AccountId(id(0xa2))
}
pub fn ola() -> AccountId {
    AccountId(id(0xb1))
}
pub fn work_application() -> ApplicationId {
    ApplicationId(id(0xc1))
}
pub fn child_application() -> ApplicationId {
    ApplicationId(id(0xc2))
}
pub fn second_account_application() -> ApplicationId {
    ApplicationId(id(0xc3))
}
pub fn ola_application() -> ApplicationId {
    ApplicationId(id(0xc4))
}

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("fixture instant")
}

pub fn email_stream() -> String {
    let keyer = keys::Keyer::new(SECRET);
    keys::email_stream(&keyer.email_key(&Email::parse(KARI_EMAIL).unwrap()))
}

/// One event of the story: stream, what, who, when.
struct Step {
    stream: String,
    event: DomainEvent,
    actor: String,
    at: DateTime<Utc>,
    /// Store it in this old schema version (upcast on read).
    old_version: Option<u16>,
}

fn step(stream: String, event: DomainEvent, actor: &str, at: &str) -> Step {
    Step {
        stream,
        event,
        actor: actor.to_owned(),
        at: t(at),
        old_version: None,
    }
}

fn code(expires_at: &str) -> IssuedCode {
    IssuedCode {
        nonce: [0x11; 16],
        digest: [0x22; 32],
        expires_at: t(expires_at),
    }
}

fn applicant(name: &str, born: (i32, u32, u32), nationality: &str) -> Applicant {
    Applicant {
        name: PersonName::parse(name).unwrap(),
        birth_date: NaiveDate::from_ymd_opt(born.0, born.1, born.2).unwrap(),
        nationality: CountryCode::parse(nationality).unwrap(),
    }
}

fn created(
    id: ApplicationId,
    owner: AccountId,
    method: LoginMethod,
    kind: Kind,
    relation: Relation,
    person: Applicant,
    at: &str,
) -> DomainEvent {
    DomainEvent::Application(P::Created {
        id,
        owner,
        owner_method: method,
        kind,
        relation,
        applicant: person,
        at: t(at),
    })
}

/// Kari registers, applies for work and for her child, books an appointment,
/// is purged after two years of inactivity and registers again with the
/// same email; Ola (ID-porten) applies too.
fn story() -> Vec<Step> {
    let email = Email::parse(KARI_EMAIL).unwrap();
    let first = kari_first();
    let second = kari_second();
    let flow_one = FlowId(id(0xf1));
    let flow_two = FlowId(id(0xf2));
    let kari = |a: AccountId| format!("account:{a}");
    let reservation = email_stream();
    let mut old = step(
        child_application().stream(),
        created(
            child_application(),
            first,
            LoginMethod::Password,
            Kind::Family,
            Relation::FamilyMember,
            applicant("Nora Nordmann", (2019, 5, 17), "NOR"),
            "2026-03-02T10:00:00Z",
        ),
        &kari(first),
        "2026-03-02T10:00:00Z",
    );
    old.old_version = Some(1);
    vec![
        step(
            flow_one.stream(),
            DomainEvent::Flow(F::Started {
                kind: FlowKind::Registration,
                email: email.clone(),
                account: None,
                code: code("2026-03-01T10:10:00Z"),
                at: t("2026-03-01T10:00:00Z"),
            }),
            "system",
            "2026-03-01T10:00:00Z",
        ),
        step(
            flow_one.stream(),
            DomainEvent::Flow(F::CodeVerified {
                at: t("2026-03-01T10:03:00Z"),
            }),
            "system",
            "2026-03-01T10:03:00Z",
        ),
        step(
            reservation.clone(),
            DomainEvent::Reservation(R::Reserved {
                account: first,
                flow: Some(flow_one),
            }),
            "system",
            "2026-03-01T10:05:00Z",
        ),
        step(
            first.stream(),
            DomainEvent::Account(A::PasswordAccountRegistered {
                email: email.clone(),
                name: "Kari Nordmann".into(),
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
                at: t("2026-03-01T10:05:00Z"),
            }),
            "system",
            "2026-03-01T10:05:00Z",
        ),
        step(
            flow_one.stream(),
            DomainEvent::Flow(F::Completed {
                account: first,
                at: t("2026-03-01T10:05:00Z"),
            }),
            "system",
            "2026-03-01T10:05:00Z",
        ),
        step(
            first.stream(),
            DomainEvent::Account(A::SessionStarted {
                session: NewSession {
                    id: SessionId(id(0xd1)),
                    token_digest: [0x44; 32],
                    expires_at: t("2026-03-01T22:06:00Z"),
                    idle_timeout_seconds: 3600,
                },
                at: t("2026-03-01T10:06:00Z"),
            }),
            &kari(first),
            "2026-03-01T10:06:00Z",
        ),
        step(
            work_application().stream(),
            created(
                work_application(),
                first,
                LoginMethod::Password,
                Kind::Work,
                Relation::Myself,
                applicant("Kari Nordmann", (1990, 1, 2), "SWE"),
                "2026-03-01T10:30:00Z",
            ),
            &kari(first),
            "2026-03-01T10:30:00Z",
        ),
        step(
            ola().stream(),
            DomainEvent::Account(A::IdPortenAccountCreated {
                subject: [0x33; 32],
                pid_key: [0x34; 32],
                name: "Ola Nordmann".into(),
                at: t("2026-03-01T11:00:00Z"),
            }),
            "system",
            "2026-03-01T11:00:00Z",
        ),
        step(
            ola_application().stream(),
            created(
                ola_application(),
                ola(),
                LoginMethod::IdPorten,
                Kind::Study,
                Relation::Myself,
                applicant("Ola Nordmann", (2001, 8, 30), "NOR"),
                "2026-03-01T11:10:00Z",
            ),
            &format!("account:{}", ola()),
            "2026-03-01T11:10:00Z",
        ),
        old,
        step(
            work_application().stream(),
            DomainEvent::Application(P::Submitted {
                at: t("2026-03-03T09:00:00Z"),
            }),
            &kari(first),
            "2026-03-03T09:00:00Z",
        ),
        step(
            work_application().stream(),
            DomainEvent::Application(P::AppointmentBooked {
                appointment: Appointment {
                    meeting_point: MeetingPointKind::Police,
                    location: "Oslo politidistrikt, Grønland".into(),
                    starts_at: t("2026-04-02T08:30:00Z"),
                    purpose: AppointmentPurpose::Application,
                },
                at: t("2026-03-05T09:05:00Z"),
            }),
            &kari(first),
            "2026-03-05T09:05:00Z",
        ),
        step(
            first.stream(),
            DomainEvent::Account(A::PurgeWarningIssued {
                deletion_after: t("2028-03-31T10:06:00Z"),
                at: t("2028-03-01T02:00:00Z"),
            }),
            "job:purge-inactive",
            "2028-03-01T02:00:00Z",
        ),
        step(
            first.stream(),
            DomainEvent::Account(A::AccountDeleted {
                reason: DeletionReason::Inactivity,
                at: t("2028-04-01T02:00:00Z"),
            }),
            "job:purge-inactive",
            "2028-04-01T02:00:00Z",
        ),
        step(
            reservation.clone(),
            DomainEvent::Reservation(R::Released { account: first }),
            "job:purge-inactive",
            "2028-04-01T02:00:01Z",
        ),
        step(
            flow_two.stream(),
            DomainEvent::Flow(F::Started {
                kind: FlowKind::Registration,
                email: email.clone(),
                account: None,
                code: code("2028-05-01T12:10:00Z"),
                at: t("2028-05-01T12:00:00Z"),
            }),
            "system",
            "2028-05-01T12:00:00Z",
        ),
        step(
            flow_two.stream(),
            DomainEvent::Flow(F::CodeVerified {
                at: t("2028-05-01T12:02:00Z"),
            }),
            "system",
            "2028-05-01T12:02:00Z",
        ),
        step(
            reservation,
            DomainEvent::Reservation(R::Reserved {
                account: second,
                flow: Some(flow_two),
            }),
            "system",
            "2028-05-01T12:03:00Z",
        ),
        step(
            second.stream(),
            DomainEvent::Account(A::PasswordAccountRegistered {
                email,
                name: "Kari Nordmann".into(),
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA".into(),
                at: t("2028-05-01T12:03:00Z"),
            }),
            "system",
            "2028-05-01T12:03:00Z",
        ),
        step(
            flow_two.stream(),
            DomainEvent::Flow(F::Completed {
                account: second,
                at: t("2028-05-01T12:03:00Z"),
            }),
            "system",
            "2028-05-01T12:03:00Z",
        ),
        step(
            second_account_application().stream(),
            created(
                second_account_application(),
                second,
                LoginMethod::Password,
                Kind::Visit,
                Relation::Other,
                applicant("Per Hansen", (1955, 12, 24), "DNK"),
                "2028-05-02T08:00:00Z",
            ),
            &kari(second),
            "2028-05-02T08:00:00Z",
        ),
    ]
}

/// Number of events in the story.
pub fn story_len() -> usize {
    story().len()
}

fn new_event(number: u128, step: &Step) -> NewEvent {
    let encoded = migrations::encode(&step.event);
    let (schema_version, payload) = match step.old_version {
        Some(version) => (
            version,
            migrations::samples::old_version_bytes(encoded.type_name, version, &step.event)
                .expect("old bytes"),
        ),
        None => (encoded.schema_version, encoded.payload),
    };
    NewEvent {
        id: id(0xe000 + number),
        type_name: encoded.type_name.to_owned(),
        schema_version,
        metadata: EventMetadata {
            actor: step.actor.as_str().into(),
            correlation_id: id(0x9000 + number),
            causation_id: None,
            occurred_at: step.at,
        },
        payload,
    }
}

/// The store file of a data dir.
pub fn store_file(data_dir: &Path) -> PathBuf {
    data_dir.join("events.sqlite3")
}

/// A data dir holding the story, each event recorded at its own instant.
pub fn story_data_dir() -> tempfile::TempDir {
    story_dir(None)
}

/// How the sealed story treats its people's data keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keys {
    /// Every key kept.
    Kept,
    /// The purge of the first account destroys its person's keys (before
    /// the email is released, as `purge-inactive` does).
    ErasedAtThePurge,
}

/// The story as today's server writes it: emails and names sealed under
/// their person's data key (`migrations::sealed`), in the key table.
pub fn sealed_story_data_dir(keys: Keys) -> tempfile::TempDir {
    story_dir(Some(keys))
}

fn story_dir(sealed: Option<Keys>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret.key"), hex::encode(SECRET)).unwrap();
    let steps = story();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SqliteStore::open(&store_file(dir.path()), SqliteOptions::default()).unwrap();
        let ring = keys::KeyRing::new(keys::Keyer::new(SECRET));
        for (number, step) in steps.iter().enumerate() {
            let mut event = new_event(number as u128, step);
            if let Some(keys) = sealed {
                if keys == Keys::ErasedAtThePurge
                    && matches!(step.event, DomainEvent::Reservation(R::Released { .. }))
                {
                    let email = Email::parse(KARI_EMAIL).unwrap();
                    ring.destroy(&store, migrations::sealed::Subject::Email(&email))
                        .await
                        .unwrap();
                }
                if step.old_version.is_none() {
                    let encoded =
                        migrations::sealed::encode_sealed(&step.event, event.id, &ring).unwrap();
                    event.schema_version = encoded.schema_version;
                    event.payload = encoded.payload;
                    ring.commit(&store).await.unwrap();
                }
            }
            store
                .append(&step.stream, ExpectedRevision::Any, vec![event])
                .await
                .unwrap();
        }
    });
    // The writer stamps each commit with the wall clock; the story needs its
    // own instants so that as-of and the timelines are stable.
    let connection = rusqlite::Connection::open(store_file(dir.path())).unwrap();
    for (position, step) in (1..).zip(&steps) {
        connection
            .execute(
                "UPDATE events SET recorded_at = ?1 WHERE position = ?2",
                rusqlite::params![step.at.timestamp_micros(), position],
            )
            .unwrap();
    }
    // Those instants are hashed into the chain: drop its links and let
    // the store link the events again, as it upgrades a file of schema
    // version 2.
    connection
        .execute_batch("ALTER TABLE events DROP COLUMN chain; PRAGMA user_version = 2;")
        .unwrap();
    drop(connection);
    drop(SqliteStore::open(&store_file(dir.path()), SqliteOptions::default()).unwrap());
    dir
}

/// The story appended to `store` (recorded at the store's own clock).
pub async fn append_story(store: &dyn store::EventStore) {
    for (number, step) in story().iter().enumerate() {
        store
            .append(
                &step.stream,
                ExpectedRevision::Any,
                vec![new_event(number as u128, step)],
            )
            .await
            .unwrap();
    }
}

/// Run the built tool with `args` over `data_dir`.
pub fn replay(data_dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_replay-tool"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("CASELEDGER_DATA_DIR")
        .output()
        .expect("run replay-tool")
}

/// Stdout of a run that must succeed.
pub fn stdout_ok(data_dir: &Path, args: &[&str]) -> String {
    let output = replay(data_dir, args);
    assert!(
        output.status.success(),
        "replay-tool {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
