//! A deterministic generator of valid, realistic event sequences (for the
//! property tests and the replay benchmark): registrations with their flow
//! and reservation, ID-porten accounts, logins and logouts, failed logins,
//! applications through their lifecycle with bookings, fees and decisions,
//! legacy imports, password changes, purge warnings and deletions.
//!
//! Seeded with a small SplitMix64, so a seed always gives the same events.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
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
use migrations::DomainEvent;
use uuid::Uuid;

/// One generated event: global position, stream name, event.
pub type Generated = (u64, String, DomainEvent);

/// How many accounts and applications to create at most; once reached, the
/// workload goes on with logins and case work only.
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// Accounts (password and ID-porten) to register at most.
    pub accounts: usize,
    /// Applications to create at most.
    pub applications: usize,
}

/// Small, fast, seeded random numbers (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 < `n` < 2^32).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        out
    }

    fn uuid(&mut self) -> Uuid {
        uuid::Builder::from_random_bytes(
            (u128::from(self.next_u64()) << 64 | u128::from(self.next_u64())).to_le_bytes(),
        )
        .into_uuid()
    }
}

struct GenAccount {
    id: AccountId,
    method: LoginMethod,
    deleted: bool,
    email_stream: Option<String>,
    sessions: Vec<SessionId>,
}

struct GenApplication {
    id: ApplicationId,
    /// 0 draft, 1 submitted, 2 booked, 3 documents received, 4 decided.
    stage: u8,
    fee_paid: bool,
    granted: bool,
}

const LOCATIONS: [&str; 6] = [
    "Oslo politidistrikt, Grønland",
    "Vest politidistrikt, Bergen",
    "Trøndelag politidistrikt, Trondheim",
    "SUA Oslo, Schweigaards gate 17",
    "Embassy of Norway, Nairobi",
    "VFS Global, Islamabad",
];
const NATIONALITIES: [&str; 8] = ["NOR", "SWE", "POL", "IND", "PAK", "SYR", "UKR", "XXA"];
const NAMES: [&str; 8] = [
    "Kari Nordmann",
    "Ola Nordmann",
    "Aisha Khan",
    "Piotr Kowalski",
    "Olena Shevchenko",
    "Ahmad Al-Sayed",
    "Priya Sharma",
    "Sara Johansson",
];

fn emit(position: &mut u64, out: &mut Vec<Generated>, stream: String, event: DomainEvent) {
    *position += 1;
    out.push((*position, stream, event));
}

/// The generator. Call [`Workload::next_events`] for the events of one
/// action, or [`Workload::take`] for many.
pub struct Workload {
    rng: Rng,
    targets: Targets,
    now: DateTime<Utc>,
    position: u64,
    accounts: Vec<GenAccount>,
    live_accounts: usize,
    applications: Vec<GenApplication>,
    legacy: u64,
    registered: u64,
    countries: Vec<CountryCode>,
}

impl Workload {
    /// A workload from `seed` that stops creating accounts and
    /// applications at `targets`.
    pub fn new(seed: u64, targets: Targets) -> Workload {
        Workload {
            rng: Rng::new(seed),
            targets,
            now: Utc
                .with_ymd_and_hms(2022, 6, 1, 8, 0, 0)
                .single()
                .expect("valid instant"),
            position: 0,
            accounts: Vec::with_capacity(targets.accounts.min(1 << 24)),
            live_accounts: 0,
            applications: Vec::with_capacity(targets.applications.min(1 << 24)),
            legacy: 0,
            registered: 0,
            countries: NATIONALITIES
                .iter()
                .map(|c| CountryCode::parse(c).expect("known code"))
                .collect(),
        }
    }

    /// Accounts and applications created so far.
    pub fn counts(&self) -> (usize, usize) {
        (self.accounts.len(), self.applications.len())
    }

    /// The next `n` events (a little more: actions are not split).
    pub fn take(&mut self, n: usize) -> Vec<Generated> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.next_events(&mut out);
        }
        out
    }

    fn tick(&mut self) -> DateTime<Utc> {
        self.now += Duration::milliseconds(1 + self.rng.below(20_000) as i64);
        self.now
    }

    /// Append the events of one action to `out`.
    pub fn next_events(&mut self, out: &mut Vec<Generated>) {
        let can_register = self.accounts.len() < self.targets.accounts;
        let can_apply =
            self.applications.len() < self.targets.applications && self.live_accounts > 0;
        let has_accounts = self.live_accounts > 0;
        let has_apps = !self.applications.is_empty();
        let roll = self.rng.below(100);
        match roll {
            0..=9 if can_register => self.register_password(out),
            10..=11 if can_register => self.register_idporten(out),
            12..=31 if can_apply => self.create_application(out),
            32..=61 if has_apps => self.advance_application(out),
            62..=81 if has_accounts => self.login(out),
            82..=96 if has_accounts => self.logout(out),
            97 => self.import_legacy(out),
            98 if has_accounts => self.change_password(out),
            99 if has_accounts => self.purge_one(out),
            _ if can_register => self.register_password(out),
            _ if can_apply => self.create_application(out),
            _ if has_accounts => self.login(out),
            _ => self.import_legacy(out),
        }
    }

    fn pick_live_account(&mut self) -> Option<usize> {
        for _ in 0..8 {
            let i = self.rng.below(self.accounts.len());
            if !self.accounts[i].deleted {
                return Some(i);
            }
        }
        None
    }

    fn new_session(&mut self, at: DateTime<Utc>, method: LoginMethod) -> NewSession {
        let idle = match method {
            LoginMethod::Password => 3600,
            LoginMethod::IdPorten => 1800,
        };
        NewSession {
            id: SessionId(self.rng.uuid()),
            token_digest: self.rng.bytes32(),
            expires_at: at + Duration::hours(12),
            idle_timeout_seconds: idle,
        }
    }

    fn register_password(&mut self, out: &mut Vec<Generated>) {
        self.registered += 1;
        let n = self.registered;
        let email = Email::parse(&format!("person{n}@example{}.no", n % 97)).expect("valid email");
        let flow = FlowId(self.rng.uuid());
        let account = AccountId(self.rng.uuid());
        let email_stream = format!("email-{}", hex::encode(&self.rng.bytes32()[..16]));
        let at = self.tick();
        let code = IssuedCode {
            nonce: self.rng.bytes32()[..16].try_into().expect("16 bytes"),
            digest: self.rng.bytes32(),
            expires_at: at + Duration::minutes(10),
        };
        emit(
            &mut self.position,
            out,
            flow.stream(),
            DomainEvent::Flow(F::Started {
                kind: FlowKind::Registration,
                email: email.clone(),
                account: None,
                code,
                at,
            }),
        );
        let at = self.tick();
        emit(
            &mut self.position,
            out,
            flow.stream(),
            DomainEvent::Flow(F::CodeVerified { at }),
        );
        emit(
            &mut self.position,
            out,
            email_stream.clone(),
            DomainEvent::Reservation(R::Reserved {
                account,
                flow: Some(flow),
            }),
        );
        emit(
            &mut self.position,
            out,
            account.stream(),
            DomainEvent::Account(A::PasswordAccountRegistered {
                email,
                name: NAMES[self.rng.below(NAMES.len())].to_owned(),
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                    .to_owned(),
                at,
            }),
        );
        emit(
            &mut self.position,
            out,
            flow.stream(),
            DomainEvent::Flow(F::Completed { account, at }),
        );
        let session = self.new_session(at, LoginMethod::Password);
        emit(
            &mut self.position,
            out,
            account.stream(),
            DomainEvent::Account(A::SessionStarted { session, at }),
        );
        self.accounts.push(GenAccount {
            id: account,
            method: LoginMethod::Password,
            deleted: false,
            email_stream: Some(email_stream),
            sessions: vec![session.id],
        });
        self.live_accounts += 1;
    }

    fn register_idporten(&mut self, out: &mut Vec<Generated>) {
        let account = AccountId(self.rng.uuid());
        let subject = self.rng.bytes32();
        let at = self.tick();
        emit(
            &mut self.position,
            out,
            format!("idporten-{}", hex::encode(&subject[..16])),
            DomainEvent::Reservation(R::Reserved {
                account,
                flow: None,
            }),
        );
        emit(
            &mut self.position,
            out,
            account.stream(),
            DomainEvent::Account(A::IdPortenAccountCreated {
                subject,
                pid_key: self.rng.bytes32(),
                name: NAMES[self.rng.below(NAMES.len())].to_owned(),
                at,
            }),
        );
        let session = self.new_session(at, LoginMethod::IdPorten);
        emit(
            &mut self.position,
            out,
            account.stream(),
            DomainEvent::Account(A::SessionStarted { session, at }),
        );
        self.accounts.push(GenAccount {
            id: account,
            method: LoginMethod::IdPorten,
            deleted: false,
            email_stream: None,
            sessions: vec![session.id],
        });
        self.live_accounts += 1;
    }

    fn login(&mut self, out: &mut Vec<Generated>) {
        let Some(i) = self.pick_live_account() else {
            return;
        };
        let (id, method) = (self.accounts[i].id, self.accounts[i].method);
        if method == LoginMethod::Password && self.rng.percent(10) {
            let at = self.tick();
            emit(
                &mut self.position,
                out,
                id.stream(),
                DomainEvent::Account(A::LoginFailed { at }),
            );
        }
        let at = self.tick();
        let session = self.new_session(at, method);
        emit(
            &mut self.position,
            out,
            id.stream(),
            DomainEvent::Account(A::SessionStarted { session, at }),
        );
        self.accounts[i].sessions.push(session.id);
    }

    fn logout(&mut self, out: &mut Vec<Generated>) {
        let Some(i) = self.pick_live_account() else {
            return;
        };
        let Some(session) = self.accounts[i].sessions.pop() else {
            return;
        };
        let at = self.tick();
        let id = self.accounts[i].id;
        emit(
            &mut self.position,
            out,
            id.stream(),
            DomainEvent::Account(A::SessionEnded { session, at }),
        );
    }

    fn change_password(&mut self, out: &mut Vec<Generated>) {
        let Some(i) = self.pick_live_account() else {
            return;
        };
        if self.accounts[i].method != LoginMethod::Password {
            return;
        }
        let at = self.tick();
        let id = self.accounts[i].id;
        self.accounts[i].sessions.clear();
        emit(
            &mut self.position,
            out,
            id.stream(),
            DomainEvent::Account(A::PasswordChanged {
                password_phc: "$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g"
                    .to_owned(),
                at,
            }),
        );
    }

    fn purge_one(&mut self, out: &mut Vec<Generated>) {
        let Some(i) = self.pick_live_account() else {
            return;
        };
        if self.accounts[i].method != LoginMethod::Password {
            return;
        }
        let id = self.accounts[i].id;
        let at = self.tick();
        emit(
            &mut self.position,
            out,
            id.stream(),
            DomainEvent::Account(A::PurgeWarningIssued {
                deletion_after: at + Duration::days(30),
                at,
            }),
        );
        if self.rng.percent(50) {
            let at = self.tick();
            emit(
                &mut self.position,
                out,
                id.stream(),
                DomainEvent::Account(A::AccountDeleted {
                    reason: DeletionReason::Inactivity,
                    at,
                }),
            );
            self.accounts[i].deleted = true;
            self.accounts[i].sessions.clear();
            self.live_accounts -= 1;
            // Now and then the purge stops between deletion and release.
            if self.rng.percent(80)
                && let Some(stream) = self.accounts[i].email_stream.clone()
            {
                emit(
                    &mut self.position,
                    out,
                    stream,
                    DomainEvent::Reservation(R::Released { account: id }),
                );
            }
        }
    }

    fn create_application(&mut self, out: &mut Vec<Generated>) {
        let Some(i) = self.pick_live_account() else {
            return;
        };
        let owner = &self.accounts[i];
        let (owner, owner_method) = (owner.id, owner.method);
        let id = ApplicationId(self.rng.uuid());
        let kind = Kind::ALL[self.rng.below(Kind::ALL.len())];
        let at = self.tick();
        let birth = NaiveDate::from_ymd_opt(1950 + self.rng.below(70) as i32, 1, 1)
            .expect("valid date")
            + Duration::days(self.rng.below(365) as i64);
        let applicant = Applicant {
            name: PersonName::parse(NAMES[self.rng.below(NAMES.len())]).expect("valid name"),
            birth_date: birth,
            nationality: self.countries[self.rng.below(self.countries.len())],
        };
        emit(
            &mut self.position,
            out,
            id.stream(),
            DomainEvent::Application(P::Created {
                id,
                owner,
                owner_method,
                kind,
                relation: Relation::ALL[self.rng.below(Relation::ALL.len())],
                applicant,
                at,
            }),
        );
        self.applications.push(GenApplication {
            id,
            stage: 0,
            fee_paid: false,
            granted: false,
        });
    }

    fn appointment(&mut self, at: DateTime<Utc>, purpose: AppointmentPurpose) -> Appointment {
        Appointment {
            meeting_point: MeetingPointKind::ALL[self.rng.below(MeetingPointKind::ALL.len())],
            location: LOCATIONS[self.rng.below(LOCATIONS.len())].to_owned(),
            starts_at: at + Duration::days(3 + self.rng.below(60) as i64),
            purpose,
        }
    }

    fn advance_application(&mut self, out: &mut Vec<Generated>) {
        let i = self.rng.below(self.applications.len());
        let at = self.tick();
        let (id, stage, fee_paid, granted) = {
            let a = &self.applications[i];
            (a.id, a.stage, a.fee_paid, a.granted)
        };
        let event = match stage {
            0 => {
                self.applications[i].stage = 1;
                P::Submitted { at }
            }
            1 if !fee_paid && self.rng.percent(40) => {
                self.applications[i].fee_paid = true;
                P::FeePaid {
                    amount_nok: [610, 6300, 1200][self.rng.below(3)],
                    at,
                }
            }
            1 => {
                self.applications[i].stage = 2;
                P::AppointmentBooked {
                    appointment: self.appointment(at, AppointmentPurpose::Application),
                    at,
                }
            }
            2 if self.rng.percent(15) => P::AppointmentRescheduled {
                appointment: self.appointment(at, AppointmentPurpose::Application),
                at,
            },
            2 if self.rng.percent(5) => {
                self.applications[i].stage = 1;
                P::AppointmentCancelled {
                    purpose: AppointmentPurpose::Application,
                    at,
                }
            }
            2 => {
                self.applications[i].stage = 3;
                P::DocumentsReceived { at }
            }
            3 => {
                self.applications[i].stage = 4;
                let outcome = if self.rng.percent(80) {
                    self.applications[i].granted = true;
                    DecisionOutcome::Granted
                } else {
                    DecisionOutcome::Refused
                };
                P::DecisionMade {
                    outcome,
                    channel: if self.rng.percent(70) {
                        DeliveryChannel::Digipost
                    } else {
                        DeliveryChannel::Post
                    },
                    at,
                }
            }
            _ if granted && self.rng.percent(50) => P::AppointmentBooked {
                appointment: self.appointment(at, AppointmentPurpose::ResidenceCardPhoto),
                at,
            },
            _ if fee_paid && self.rng.percent(5) => P::RefundRequested { at },
            // A decided case is done: a login stands in for its turn.
            _ => return self.login(out),
        };
        emit(
            &mut self.position,
            out,
            id.stream(),
            DomainEvent::Application(event),
        );
    }

    fn import_legacy(&mut self, out: &mut Vec<Generated>) {
        self.legacy += 1;
        let reference = format!("UDI-{:07}", self.legacy);
        let owner = if self.rng.percent(70) {
            LegacyOwner::EmailHash(self.rng.bytes32())
        } else {
            LegacyOwner::PidHash(self.rng.bytes32())
        };
        let submitted_at = Utc
            .with_ymd_and_hms(2019, 1, 1, 0, 0, 0)
            .single()
            .expect("valid instant")
            + Duration::hours(self.rng.below(24 * 365 * 3) as i64);
        let at = self.tick();
        emit(
            &mut self.position,
            out,
            domain::legacy::stream(&reference),
            DomainEvent::Legacy(L::LegacyApplicationImported {
                record: LegacyRecord {
                    reference,
                    submitted_at,
                    kind: Kind::ALL[self.rng.below(Kind::ALL.len())],
                    owner,
                },
                imported_at: at,
            }),
        );
    }
}
