//! Writes a data dir with a realistic log for benchmarking the replay tool:
//! people register (flow, reservation, account), log in and out, and follow
//! one application from creation to decision; 20 events a person, their
//! appends interleaved across many concurrent writers.
//!
//! `cargo run --release -p replay-tool --example generate_store -- DIR EVENTS`
//! (synchronous off: this is setup, not a durability test).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use domain::account::{Event as A, NewSession};
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, CountryCode, DecisionOutcome, DeliveryChannel,
    Event as P, Kind, MeetingPointKind, Relation,
};
use domain::flow::{Event as F, FlowKind, IssuedCode};
use domain::reservation::Event as R;
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, Email, FlowId, LoginMethod, SessionId};
use migrations::DomainEvent;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};
use uuid::Uuid;

const EVENTS_PER_PERSON: u64 = 20;
const WRITERS: u64 = 64;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(events)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: generate_store DATA_DIR EVENTS");
    };
    let events: u64 = events.parse()?;
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let secret = [0x42u8; 32];
    std::fs::write(dir.join(keys::SECRET_FILE), hex::encode(secret))?;
    let keyer = keys::Keyer::new(secret);
    let store = Arc::new(SqliteStore::open(
        &dir.join("events.sqlite3"),
        SqliteOptions {
            synchronous_full: false,
            max_batch_events: 65_536,
            ..SqliteOptions::default()
        },
    )?);
    let people = events.div_ceil(EVENTS_PER_PERSON);
    let next = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = std::time::Instant::now();
    runtime.block_on(async {
        let mut writers = Vec::new();
        for _ in 0..WRITERS {
            let store = Arc::clone(&store);
            let next = Arc::clone(&next);
            let keyer = keyer.clone();
            writers.push(tokio::spawn(async move {
                loop {
                    let person = next.fetch_add(1, Ordering::Relaxed);
                    if person >= people {
                        return Ok::<_, anyhow::Error>(());
                    }
                    for (stream, batch) in person_appends(person, &keyer) {
                        store.append(&stream, ExpectedRevision::Any, batch).await?;
                    }
                    if person.is_multiple_of(50_000) {
                        eprintln!("{person}/{people} people");
                    }
                }
            }));
        }
        for writer in writers {
            writer.await??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let head = runtime.block_on(store.head_position())?;
    eprintln!(
        "wrote {head} events in {:.1} s to {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

fn uuid(kind: u8, person: u64) -> Uuid {
    Uuid::from_u128(
        (0x0190_0000_0000_7000_8000u128 << 48) | (u128::from(kind) << 40) | u128::from(person),
    )
}

fn event(person: u64, n: u8, at: DateTime<Utc>, actor: &str, event: &DomainEvent) -> NewEvent {
    let encoded = migrations::encode(event);
    NewEvent {
        id: Uuid::now_v7(),
        type_name: encoded.type_name.to_owned(),
        schema_version: encoded.schema_version,
        metadata: EventMetadata {
            actor: actor.into(),
            correlation_id: uuid(0x80 | n, person),
            causation_id: None,
            occurred_at: at,
        },
        payload: encoded.payload,
    }
}

/// The appends of one person's story, in order: (stream, events).
fn person_appends(person: u64, keyer: &keys::Keyer) -> Vec<(String, Vec<NewEvent>)> {
    let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default()
        + Duration::seconds(i64::try_from(person).unwrap_or(0) * 37);
    let at = |minutes: i64| start + Duration::minutes(minutes);
    let email = Email::parse(&format!("person{person}@example.no")).expect("valid email");
    let account = AccountId(uuid(1, person));
    let flow = FlowId(uuid(2, person));
    let application = ApplicationId(uuid(3, person));
    let actor = format!("account:{account}");
    let code = IssuedCode {
        nonce: [(person % 251) as u8; 16],
        digest: [(person % 241) as u8; 32],
        expires_at: at(10),
    };
    let reservation = keys::email_stream(&keyer.email_key(&email));
    let name = format!("Person Number {person}");
    let mut appends = vec![
        (
            flow.stream(),
            vec![
                event(person, 0, at(0), "system", &DomainEvent::Flow(F::Started {
                    kind: FlowKind::Registration,
                    email: email.clone(),
                    account: None,
                    code,
                    at: at(0),
                })),
                event(person, 1, at(2), "system", &DomainEvent::Flow(F::CodeVerified { at: at(2) })),
            ],
        ),
        (
            reservation,
            vec![event(person, 2, at(3), "system", &DomainEvent::Reservation(R::Reserved {
                account,
                flow: Some(flow),
            }))],
        ),
        (
            account.stream(),
            vec![event(person, 3, at(3), "system", &DomainEvent::Account(A::PasswordAccountRegistered {
                email,
                name: name.clone(),
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA".into(),
                at: at(3),
            }))],
        ),
        (
            flow.stream(),
            vec![event(person, 4, at(3), "system", &DomainEvent::Flow(F::Completed { account, at: at(3) }))],
        ),
    ];
    let mut sessions = vec![event(
        person,
        5,
        at(60),
        &actor,
        &DomainEvent::Account(A::LoginFailed { at: at(60) }),
    )];
    for round in 0..4u8 {
        let begin = at(61 + i64::from(round) * 1440);
        let session = SessionId(uuid(0x10 + round, person));
        sessions.push(event(
            person,
            6 + 2 * round,
            begin,
            &actor,
            &DomainEvent::Account(A::SessionStarted {
                session: NewSession {
                    id: session,
                    token_digest: [round; 32],
                    expires_at: begin + Duration::hours(12),
                    idle_timeout_seconds: 3600,
                },
                at: begin,
            }),
        ));
        sessions.push(event(
            person,
            7 + 2 * round,
            begin + Duration::minutes(20),
            &actor,
            &DomainEvent::Account(A::SessionEnded {
                session,
                at: begin + Duration::minutes(20),
            }),
        ));
    }
    let case = |n: u8, minutes: i64, e: P| {
        event(person, n, at(minutes), &actor, &DomainEvent::Application(e))
    };
    let applicant = Applicant {
        name: PersonName::parse(&name).expect("valid name"),
        birth_date: NaiveDate::from_ymd_opt(
            1960 + (person % 50) as i32,
            1 + (person % 12) as u32,
            1 + (person % 28) as u32,
        )
        .expect("valid date"),
        nationality: CountryCode::parse("NOR").expect("valid country"),
    };
    let application_events = [
        case(
            20,
            62,
            P::Created {
                id: application,
                owner: account,
                owner_method: LoginMethod::Password,
                kind: Kind::ALL[(person % 6) as usize],
                relation: Relation::Myself,
                applicant,
                at: at(62),
            },
        ),
        case(21, 70, P::Submitted { at: at(70) }),
        case(
            22,
            1500,
            P::AppointmentBooked {
                appointment: Appointment {
                    meeting_point: MeetingPointKind::Police,
                    location: "Oslo politidistrikt, Grønland".into(),
                    starts_at: at(20_000),
                    purpose: AppointmentPurpose::Application,
                },
                at: at(1500),
            },
        ),
        case(
            23,
            1510,
            P::FeePaid {
                amount_nok: 6300,
                at: at(1510),
            },
        ),
        case(24, 20_030, P::DocumentsReceived { at: at(20_030) }),
        case(
            25,
            40_000,
            P::DecisionMade {
                outcome: DecisionOutcome::Granted,
                channel: DeliveryChannel::Digipost,
                at: at(40_000),
            },
        ),
    ];
    // Interleave the account's sessions with the case, as people do.
    let (early, late) = sessions.split_at(2);
    let (case_start, case_rest) = application_events.split_at(2);
    appends.push((account.stream(), early.to_vec()));
    appends.push((application.stream(), case_start.to_vec()));
    appends.push((account.stream(), late.to_vec()));
    appends.push((application.stream(), case_rest.to_vec()));
    appends
}
