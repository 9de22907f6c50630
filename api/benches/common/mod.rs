//! What the HTTP benches share: the seeded population (password accounts
//! with three applications each, one argon2id hash shared by all) and the
//! latency record of a load run.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use domain::application::{Applicant, CountryCode, Event as P, Kind, Relation};
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, Email, LoginMethod};
use futures::StreamExt;
use keys::Keyer;
use migrations::DomainEvent;
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent};
use uuid::Uuid;

/// The password of every seeded account.
pub const PASSWORD: &str = "Benchmark2026";

pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

pub fn email(i: usize) -> String {
    format!("person{i}@bench.example")
}

fn metadata(actor: &str, at: chrono::DateTime<Utc>) -> EventMetadata {
    EventMetadata {
        actor: actor.into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: at,
    }
}

fn new_event(event: &DomainEvent, metadata: &EventMetadata) -> NewEvent {
    let encoded = migrations::encode(event);
    NewEvent {
        id: Uuid::now_v7(),
        type_name: encoded.type_name.to_owned(),
        schema_version: encoded.schema_version,
        metadata: metadata.clone(),
        payload: encoded.payload,
    }
}

/// The streams of one account: its email reservation, the account, and
/// three applications.
pub fn account_streams(keyer: &Keyer, i: usize, phc: &str) -> Vec<(String, Vec<NewEvent>)> {
    let created = Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap()
        + chrono::Duration::seconds(i as i64 % 20_000_000);
    let account = AccountId(Uuid::now_v7());
    let actor = format!("account:{account}");
    let meta = metadata(&actor, created);
    let email = Email::parse(&email(i)).expect("bench email");
    let mut streams = vec![
        (
            keys::email_stream(&keyer.email_key(&email)),
            vec![new_event(
                &DomainEvent::Reservation(domain::reservation::Event::Reserved {
                    account,
                    flow: None,
                }),
                &meta,
            )],
        ),
        (
            account.stream(),
            vec![new_event(
                &DomainEvent::Account(domain::account::Event::PasswordAccountRegistered {
                    email,
                    name: format!("Person {i}"),
                    password_phc: phc.to_owned(),
                    at: created,
                }),
                &meta,
            )],
        ),
    ];
    let kinds = [Kind::Work, Kind::Family, Kind::Study];
    let relations = [Relation::Myself, Relation::FamilyMember, Relation::Employee];
    for (n, (kind, relation)) in kinds.into_iter().zip(relations).enumerate() {
        let id = ApplicationId(Uuid::now_v7());
        let at = created + chrono::Duration::days(n as i64 + 1);
        let mut events = vec![new_event(
            &DomainEvent::Application(P::Created {
                id,
                owner: account,
                owner_method: LoginMethod::Password,
                kind,
                relation,
                applicant: Applicant {
                    name: PersonName::parse(&format!("Applicant {i} {n}")).expect("bench name"),
                    birth_date: chrono::NaiveDate::from_ymd_opt(1990, 1 + n as u32, 15)
                        .expect("bench date"),
                    nationality: CountryCode::parse("SWE").expect("bench country"),
                },
                at,
            }),
            &metadata(&actor, at),
        )];
        if n < 2 {
            let submitted = at + chrono::Duration::hours(2);
            events.push(new_event(
                &DomainEvent::Application(P::Submitted { at: submitted }),
                &metadata(&actor, submitted),
            ));
        }
        streams.push((id.stream(), events));
    }
    streams
}

/// Latencies in microseconds, sorted.
pub struct Run {
    pub latencies: Vec<u32>,
    pub errors: u64,
    pub elapsed: Duration,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies[index]) / 1000.0
    }
}

/// The one argon2id PHC string every seeded account shares (server
/// parameters, fixed salt).
pub fn shared_phc() -> String {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    let salt = SaltString::encode_b64(b"benchmark-salt-0").expect("salt");
    argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// Append `accounts` accounts (see [`account_streams`]) to `store`, 256
/// at a time; returns the number of events.
pub async fn seed_accounts(
    store: Arc<dyn EventStore>,
    keyer: &Keyer,
    accounts: usize,
    phc: &str,
) -> u64 {
    let events = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut done = 0usize;
    let mut appends = futures::stream::iter(0..accounts)
        .map(|i| {
            let store = store.clone();
            let events = events.clone();
            let streams = account_streams(keyer, i, phc);
            async move {
                for (stream, batch) in streams {
                    events.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    store
                        .append(&stream, ExpectedRevision::NoStream, batch)
                        .await
                        .expect("seed append");
                }
            }
        })
        .buffer_unordered(256);
    while appends.next().await.is_some() {
        done += 1;
        if done.is_multiple_of(100_000) {
            eprintln!(
                "seeded {done} accounts in {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    events.load(Ordering::Relaxed)
}
