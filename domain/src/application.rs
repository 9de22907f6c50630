//! One application (case): its value types, commands, events, state and the
//! rules of the seed FAQ — ownership by login identity, the lifecycle from
//! draft to decision, appointments, fee and refund, and the caseworker side.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use crate::text::{self, PersonName, TextError};
use crate::{AccountId, Actor, ApplicationId, LoginIdentity, LoginMethod};

// ---------------------------------------------------------------------------
// Value types
// ---------------------------------------------------------------------------

/// What the application is for (`ApplicationKind` in the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Work,
    Family,
    Study,
    Visit,
    Protection,
    Citizenship,
}

impl Kind {
    /// Every kind, in contract order.
    pub const ALL: [Kind; 6] = [
        Kind::Work,
        Kind::Family,
        Kind::Study,
        Kind::Visit,
        Kind::Protection,
        Kind::Citizenship,
    ];

    /// The contract name (`WORK`, `FAMILY`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Work => "WORK",
            Kind::Family => "FAMILY",
            Kind::Study => "STUDY",
            Kind::Visit => "VISIT",
            Kind::Protection => "PROTECTION",
            Kind::Citizenship => "CITIZENSHIP",
        }
    }

    /// The kind with this contract name, if any.
    pub fn parse(raw: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// A short English label for mails and pages.
    pub fn label_en(self) -> &'static str {
        match self {
            Kind::Work => "work",
            Kind::Family => "family immigration",
            Kind::Study => "studies",
            Kind::Visit => "visit",
            Kind::Protection => "protection (asylum)",
            Kind::Citizenship => "citizenship",
        }
    }

    /// A short Norwegian (bokmål) label for mails and pages.
    pub fn label_nb(self) -> &'static str {
        match self {
            Kind::Work => "arbeid",
            Kind::Family => "familieinnvandring",
            Kind::Study => "studier",
            Kind::Visit => "besøk",
            Kind::Protection => "beskyttelse (asyl)",
            Kind::Citizenship => "statsborgerskap",
        }
    }
}

/// How the logged-in identity relates to the person applied for
/// (`Relation` in the contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Relation {
    /// `SELF`: applying for oneself (`Self` is a Rust keyword).
    Myself,
    /// `FAMILY_MEMBER`: a close family member, e.g. one's child.
    FamilyMember,
    /// `EMPLOYEE`: an employer applying for an employee.
    Employee,
    /// `OTHER`: anyone else.
    Other,
}

impl Relation {
    /// Every relation, in contract order.
    pub const ALL: [Relation; 4] = [
        Relation::Myself,
        Relation::FamilyMember,
        Relation::Employee,
        Relation::Other,
    ];

    /// The contract name (`SELF`, `FAMILY_MEMBER`, `EMPLOYEE`, `OTHER`).
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Myself => "SELF",
            Relation::FamilyMember => "FAMILY_MEMBER",
            Relation::Employee => "EMPLOYEE",
            Relation::Other => "OTHER",
        }
    }

    /// The relation with this contract name, if any.
    pub fn parse(raw: &str) -> Option<Relation> {
        Relation::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// Where an application is in its lifecycle (`ApplicationStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Draft,
    Submitted,
    AppointmentBooked,
    DocumentsReceived,
    Decided,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 5] = [
        Status::Draft,
        Status::Submitted,
        Status::AppointmentBooked,
        Status::DocumentsReceived,
        Status::Decided,
    ];

    /// The contract name (`DRAFT`, `SUBMITTED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "DRAFT",
            Status::Submitted => "SUBMITTED",
            Status::AppointmentBooked => "APPOINTMENT_BOOKED",
            Status::DocumentsReceived => "DOCUMENTS_RECEIVED",
            Status::Decided => "DECIDED",
        }
    }

    /// The status with this contract name, if any.
    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// A short English label.
    pub fn label_en(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Submitted => "submitted",
            Status::AppointmentBooked => "appointment booked",
            Status::DocumentsReceived => "documents received",
            Status::Decided => "decided",
        }
    }

    /// A short Norwegian (bokmål) label.
    pub fn label_nb(self) -> &'static str {
        match self {
            Status::Draft => "utkast",
            Status::Submitted => "sendt inn",
            Status::AppointmentBooked => "time bestilt",
            Status::DocumentsReceived => "dokumenter mottatt",
            Status::Decided => "vedtak fattet",
        }
    }

    /// True when a single event may move an application from `from` to `to`
    /// (`from == None` is "no application yet"). Staying put is allowed.
    /// Documents may be received without a booking made here: the FAQ lets a
    /// person who lost their account get an appointment from the meeting
    /// point directly and hand in the documents there.
    pub fn is_allowed_transition(from: Option<Status>, to: Status) -> bool {
        use Status::*;
        match from {
            None => to == Draft,
            Some(from) if from == to => true,
            Some(from) => matches!(
                (from, to),
                (Draft, Submitted)
                    | (Submitted, AppointmentBooked)
                    | (AppointmentBooked, Submitted)
                    | (Submitted, DocumentsReceived)
                    | (AppointmentBooked, DocumentsReceived)
                    | (DocumentsReceived, Decided)
            ),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of place an appointment is at (`MeetingPointKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MeetingPointKind {
    /// `POLICE`: a police district.
    Police,
    /// `SUA`: the Service Centre for Foreign Workers.
    Sua,
    /// `EMBASSY`: a Norwegian embassy or consulate.
    Embassy,
    /// `VISA_CENTRE`: a visa application centre.
    VisaCentre,
}

impl MeetingPointKind {
    /// Every meeting point kind, in contract order.
    pub const ALL: [MeetingPointKind; 4] = [
        MeetingPointKind::Police,
        MeetingPointKind::Sua,
        MeetingPointKind::Embassy,
        MeetingPointKind::VisaCentre,
    ];

    /// The contract name (`POLICE`, `SUA`, `EMBASSY`, `VISA_CENTRE`).
    pub fn as_str(self) -> &'static str {
        match self {
            MeetingPointKind::Police => "POLICE",
            MeetingPointKind::Sua => "SUA",
            MeetingPointKind::Embassy => "EMBASSY",
            MeetingPointKind::VisaCentre => "VISA_CENTRE",
        }
    }

    /// The meeting point kind with this contract name, if any.
    pub fn parse(raw: &str) -> Option<MeetingPointKind> {
        MeetingPointKind::ALL
            .into_iter()
            .find(|m| m.as_str() == raw)
    }

    /// An English label for mails.
    pub fn label_en(self) -> &'static str {
        match self {
            MeetingPointKind::Police => "the police",
            MeetingPointKind::Sua => "the Service Centre for Foreign Workers (SUA)",
            MeetingPointKind::Embassy => "the embassy",
            MeetingPointKind::VisaCentre => "the visa application centre",
        }
    }

    /// A Norwegian (bokmål) label for mails.
    pub fn label_nb(self) -> &'static str {
        match self {
            MeetingPointKind::Police => "politiet",
            MeetingPointKind::Sua => "Servicesenteret for utenlandske arbeidstakere (SUA)",
            MeetingPointKind::Embassy => "ambassaden",
            MeetingPointKind::VisaCentre => "visumsøknadssenteret",
        }
    }
}

/// Why the appointment is made (`AppointmentPurpose`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum AppointmentPurpose {
    /// `APPLICATION`: hand in the documents for the application.
    #[default]
    Application,
    /// `RESIDENCE_CARD_PHOTO`: have the photo taken for the residence card,
    /// after the application was granted.
    ResidenceCardPhoto,
}

impl AppointmentPurpose {
    /// Every purpose, in contract order.
    pub const ALL: [AppointmentPurpose; 2] = [
        AppointmentPurpose::Application,
        AppointmentPurpose::ResidenceCardPhoto,
    ];

    /// The contract name (`APPLICATION`, `RESIDENCE_CARD_PHOTO`).
    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentPurpose::Application => "APPLICATION",
            AppointmentPurpose::ResidenceCardPhoto => "RESIDENCE_CARD_PHOTO",
        }
    }

    /// The purpose with this contract name, if any.
    pub fn parse(raw: &str) -> Option<AppointmentPurpose> {
        AppointmentPurpose::ALL
            .into_iter()
            .find(|p| p.as_str() == raw)
    }
}

/// A booked time at a meeting point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appointment {
    pub meeting_point: MeetingPointKind,
    /// The place, e.g. "Oslo politidistrikt, Grønland"; 1 to
    /// [`Appointment::LOCATION_MAX`] characters, trimmed, no control characters.
    pub location: String,
    pub starts_at: DateTime<Utc>,
    pub purpose: AppointmentPurpose,
}

impl Appointment {
    /// Longest accepted location, in characters.
    pub const LOCATION_MAX: usize = 200;

    /// Builds an appointment, trimming and checking the location. Whether the
    /// time is in the future is checked by [`decide`], which knows "now".
    pub fn new(
        meeting_point: MeetingPointKind,
        location: &str,
        starts_at: DateTime<Utc>,
        purpose: AppointmentPurpose,
    ) -> Result<Appointment, Error> {
        let location = parse_location(location)?;
        Ok(Appointment {
            meeting_point,
            location,
            starts_at,
            purpose,
        })
    }
}

fn parse_location(raw: &str) -> Result<String, Error> {
    text::bounded(raw, Appointment::LOCATION_MAX).map_err(|e| Error::InvalidInput {
        field: "location",
        reason: Reason::Text(e),
    })
}

/// A nationality as an ISO 3166-1 alpha-3 code (`NOR`, `SWE`, ...).
///
/// Besides the 249 officially assigned codes, the codes that ICAO Doc 9303
/// uses in travel documents for people without a nationality are accepted
/// (see [`CountryCode::TRAVEL_DOCUMENT_EXTRAS`]): an immigration authority
/// must be able to register stateless people and refugees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(&'static str);

impl CountryCode {
    /// The officially assigned ISO 3166-1 alpha-3 codes, sorted.
    pub const ISO_ALPHA3: [&'static str; 249] = [
        "ABW", "AFG", "AGO", "AIA", "ALA", "ALB", "AND", "ARE", "ARG", "ARM", "ASM", "ATA", "ATF",
        "ATG", "AUS", "AUT", "AZE", "BDI", "BEL", "BEN", "BES", "BFA", "BGD", "BGR", "BHR", "BHS",
        "BIH", "BLM", "BLR", "BLZ", "BMU", "BOL", "BRA", "BRB", "BRN", "BTN", "BVT", "BWA", "CAF",
        "CAN", "CCK", "CHE", "CHL", "CHN", "CIV", "CMR", "COD", "COG", "COK", "COL", "COM", "CPV",
        "CRI", "CUB", "CUW", "CXR", "CYM", "CYP", "CZE", "DEU", "DJI", "DMA", "DNK", "DOM", "DZA",
        "ECU", "EGY", "ERI", "ESH", "ESP", "EST", "ETH", "FIN", "FJI", "FLK", "FRA", "FRO", "FSM",
        "GAB", "GBR", "GEO", "GGY", "GHA", "GIB", "GIN", "GLP", "GMB", "GNB", "GNQ", "GRC", "GRD",
        "GRL", "GTM", "GUF", "GUM", "GUY", "HKG", "HMD", "HND", "HRV", "HTI", "HUN", "IDN", "IMN",
        "IND", "IOT", "IRL", "IRN", "IRQ", "ISL", "ISR", "ITA", "JAM", "JEY", "JOR", "JPN", "KAZ",
        "KEN", "KGZ", "KHM", "KIR", "KNA", "KOR", "KWT", "LAO", "LBN", "LBR", "LBY", "LCA", "LIE",
        "LKA", "LSO", "LTU", "LUX", "LVA", "MAC", "MAF", "MAR", "MCO", "MDA", "MDG", "MDV", "MEX",
        "MHL", "MKD", "MLI", "MLT", "MMR", "MNE", "MNG", "MNP", "MOZ", "MRT", "MSR", "MTQ", "MUS",
        "MWI", "MYS", "MYT", "NAM", "NCL", "NER", "NFK", "NGA", "NIC", "NIU", "NLD", "NOR", "NPL",
        "NRU", "NZL", "OMN", "PAK", "PAN", "PCN", "PER", "PHL", "PLW", "PNG", "POL", "PRI", "PRK",
        "PRT", "PRY", "PSE", "PYF", "QAT", "REU", "ROU", "RUS", "RWA", "SAU", "SDN", "SEN", "SGP",
        "SGS", "SHN", "SJM", "SLB", "SLE", "SLV", "SMR", "SOM", "SPM", "SRB", "SSD", "STP", "SUR",
        "SVK", "SVN", "SWE", "SWZ", "SXM", "SYC", "SYR", "TCA", "TCD", "TGO", "THA", "TJK", "TKL",
        "TKM", "TLS", "TON", "TTO", "TUN", "TUR", "TUV", "TWN", "TZA", "UGA", "UKR", "UMI", "URY",
        "USA", "UZB", "VAT", "VCT", "VEN", "VGB", "VIR", "VNM", "VUT", "WLF", "WSM", "YEM", "ZAF",
        "ZMB", "ZWE",
    ];

    /// Codes outside ISO 3166-1 proper that travel documents carry (ICAO
    /// Doc 9303): `XXA` stateless person, `XXB` refugee (1951 Convention),
    /// `XXC` other refugee, `XXX` unspecified nationality, and `XKX` Kosovo
    /// (user-assigned, used by Norway and the EU).
    pub const TRAVEL_DOCUMENT_EXTRAS: [&'static str; 5] = ["XKX", "XXA", "XXB", "XXC", "XXX"];

    /// Parses a code: surrounding spaces are dropped and letters uppercased
    /// (`nor` is `NOR`); it must then be three letters A-Z on the shipped list.
    pub fn parse(raw: &str) -> Result<CountryCode, Error> {
        let invalid = |reason| Error::InvalidInput {
            field: "applicant.nationality",
            reason,
        };
        let upper = raw.trim().to_ascii_uppercase();
        if upper.len() != 3 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(Reason::NotThreeLetters));
        }
        Self::ISO_ALPHA3
            .binary_search(&upper.as_str())
            .ok()
            .map(|i| Self::ISO_ALPHA3[i])
            .or_else(|| {
                Self::TRAVEL_DOCUMENT_EXTRAS
                    .iter()
                    .copied()
                    .find(|c| *c == upper)
            })
            .map(CountryCode)
            .ok_or_else(|| invalid(Reason::UnknownCountryCode))
    }

    /// The three-letter code.
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The person applied for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applicant {
    pub name: PersonName,
    /// Not in the future and not before 1900 (checked by [`decide`] against
    /// the command's time).
    pub birth_date: NaiveDate,
    pub nationality: CountryCode,
}

impl Applicant {
    /// Parses the raw form fields, reporting the first bad field
    /// (`applicant.name`, `applicant.birthDate`, `applicant.nationality`).
    pub fn parse(
        name: &str,
        birth_date: NaiveDate,
        nationality: &str,
        at: DateTime<Utc>,
    ) -> Result<Applicant, Error> {
        let name = PersonName::parse(name).map_err(|e| Error::InvalidInput {
            field: "applicant.name",
            reason: Reason::Text(e),
        })?;
        check_birth_date(birth_date, at)?;
        let nationality = CountryCode::parse(nationality)?;
        Ok(Applicant {
            name,
            birth_date,
            nationality,
        })
    }
}

/// The earliest birth date accepted.
pub fn earliest_birth_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// A birth date is refused only while it is still in the future everywhere
/// on Earth (UTC+14): a child born today in any time zone can be applied for.
fn check_birth_date(birth_date: NaiveDate, at: DateTime<Utc>) -> Result<(), Error> {
    let latest = (at + Duration::hours(14)).date_naive();
    let reason = if birth_date > latest {
        Reason::InTheFuture
    } else if birth_date < earliest_birth_date() {
        Reason::Before1900
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput {
        field: "applicant.birthDate",
        reason,
    })
}

/// The outcome of the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionOutcome {
    Granted,
    Refused,
}

/// How the decision reaches the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryChannel {
    /// The person has a Digipost mailbox.
    Digipost,
    /// Ordinary post.
    Post,
}

/// The decision as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub outcome: DecisionOutcome,
    pub channel: DeliveryChannel,
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------
// Commands and events
// ---------------------------------------------------------------------------

/// What someone asks of one application. Citizen commands carry the acting
/// login identity; caseworker commands carry an [`Actor`] that must be
/// [`Actor::Caseworker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start a draft owned by `owner`.
    Create {
        id: ApplicationId,
        owner: LoginIdentity,
        kind: Kind,
        relation: Relation,
        applicant: Applicant,
        at: DateTime<Utc>,
    },
    /// Send the draft in.
    Submit {
        actor: LoginIdentity,
        at: DateTime<Utc>,
    },
    /// Book an appointment (to hand in documents, or for the residence-card
    /// photo after a grant). It must start after `at` and no later than
    /// `latest_start` (the end of the operator's booking horizon).
    BookAppointment {
        actor: LoginIdentity,
        appointment: Appointment,
        at: DateTime<Utc>,
        latest_start: DateTime<Utc>,
    },
    /// Move the booked appointment of the same purpose to a new time/place,
    /// within the same bounds as [`Command::BookAppointment`].
    RescheduleAppointment {
        actor: LoginIdentity,
        appointment: Appointment,
        at: DateTime<Utc>,
        latest_start: DateTime<Utc>,
    },
    /// Cancel the booked appointment (the application one while documents
    /// are not yet received, else the residence-card photo one).
    CancelAppointment {
        actor: LoginIdentity,
        at: DateTime<Utc>,
    },
    /// Ask for the paid fee back.
    RequestRefund {
        actor: LoginIdentity,
        at: DateTime<Utc>,
    },
    /// Caseworker: the documents were handed in at the meeting point.
    RegisterDocumentsReceived { actor: Actor, at: DateTime<Utc> },
    /// Caseworker: the fee was paid.
    RegisterFeePaid {
        actor: Actor,
        amount_nok: u32,
        at: DateTime<Utc>,
    },
    /// Caseworker: the decision; `has_digipost` says whether the person has
    /// a Digipost mailbox (looked up outside the domain).
    MakeDecision {
        actor: Actor,
        outcome: DecisionOutcome,
        has_digipost: bool,
        at: DateTime<Utc>,
    },
}

impl Command {
    /// When the command was issued.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Command::Create { at, .. }
            | Command::Submit { at, .. }
            | Command::BookAppointment { at, .. }
            | Command::RescheduleAppointment { at, .. }
            | Command::CancelAppointment { at, .. }
            | Command::RequestRefund { at, .. }
            | Command::RegisterDocumentsReceived { at, .. }
            | Command::RegisterFeePaid { at, .. }
            | Command::MakeDecision { at, .. } => *at,
        }
    }
}

/// What happened to one application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Created {
        id: ApplicationId,
        owner: AccountId,
        owner_method: LoginMethod,
        kind: Kind,
        relation: Relation,
        applicant: Applicant,
        at: DateTime<Utc>,
    },
    Submitted {
        at: DateTime<Utc>,
    },
    AppointmentBooked {
        appointment: Appointment,
        at: DateTime<Utc>,
    },
    AppointmentRescheduled {
        appointment: Appointment,
        at: DateTime<Utc>,
    },
    /// The appointment of this purpose was cancelled.
    AppointmentCancelled {
        purpose: AppointmentPurpose,
        at: DateTime<Utc>,
    },
    DocumentsReceived {
        at: DateTime<Utc>,
    },
    FeePaid {
        amount_nok: u32,
        at: DateTime<Utc>,
    },
    RefundRequested {
        at: DateTime<Utc>,
    },
    DecisionMade {
        outcome: DecisionOutcome,
        channel: DeliveryChannel,
        at: DateTime<Utc>,
    },
}

impl Event {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Event::Created { at, .. }
            | Event::Submitted { at }
            | Event::AppointmentBooked { at, .. }
            | Event::AppointmentRescheduled { at, .. }
            | Event::AppointmentCancelled { at, .. }
            | Event::DocumentsReceived { at }
            | Event::FeePaid { at, .. }
            | Event::RefundRequested { at }
            | Event::DecisionMade { at, .. } => *at,
        }
    }

    /// The event's name, for logs and audit output.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Created { .. } => "Created",
            Event::Submitted { .. } => "Submitted",
            Event::AppointmentBooked { .. } => "AppointmentBooked",
            Event::AppointmentRescheduled { .. } => "AppointmentRescheduled",
            Event::AppointmentCancelled { .. } => "AppointmentCancelled",
            Event::DocumentsReceived { .. } => "DocumentsReceived",
            Event::FeePaid { .. } => "FeePaid",
            Event::RefundRequested { .. } => "RefundRequested",
            Event::DecisionMade { .. } => "DecisionMade",
        }
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// The state of one application stream; `Default` is "no application".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub application: Option<Application>,
}

impl State {
    /// The current status, `None` when there is no application.
    pub fn status(&self) -> Option<Status> {
        self.application.as_ref().map(|a| a.status)
    }

    /// True when the application exists.
    pub fn exists(&self) -> bool {
        self.application.is_some()
    }

    /// True when the application exists and belongs to `identity`.
    pub fn is_owned_by(&self, identity: &LoginIdentity) -> bool {
        self.application
            .as_ref()
            .is_some_and(|a| a.is_owned_by(identity))
    }
}

/// An existing application as built from its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: ApplicationId,
    /// The login identity that created it; the only one that may act on it.
    pub owner: LoginIdentity,
    pub kind: Kind,
    pub relation: Relation,
    pub applicant: Applicant,
    pub status: Status,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    /// The appointment to hand in documents (kept after they are received).
    pub appointment: Option<Appointment>,
    /// The residence-card photo appointment, after a grant.
    pub photo_appointment: Option<Appointment>,
    pub documents_received_at: Option<DateTime<Utc>>,
    pub fee_paid_nok: Option<u32>,
    pub fee_paid_at: Option<DateTime<Utc>>,
    pub refund_requested_at: Option<DateTime<Utc>>,
    pub decision: Option<Decision>,
    /// Time of the latest event.
    pub updated_at: DateTime<Utc>,
}

impl Application {
    /// True when `identity` is the owning login identity.
    pub fn is_owned_by(&self, identity: &LoginIdentity) -> bool {
        self.owner == *identity
    }

    /// True when a fee has been registered as paid.
    pub fn fee_paid(&self) -> bool {
        self.fee_paid_nok.is_some()
    }

    /// True when a refund has been requested.
    pub fn refund_requested(&self) -> bool {
        self.refund_requested_at.is_some()
    }

    /// True when the decision is a grant.
    pub fn is_granted(&self) -> bool {
        self.decision
            .is_some_and(|d| d.outcome == DecisionOutcome::Granted)
    }

    /// The appointment to show: the photo one when there is one, else the
    /// application one.
    pub fn current_appointment(&self) -> Option<&Appointment> {
        self.photo_appointment
            .as_ref()
            .or(self.appointment.as_ref())
    }

    /// The next step for this application in English, refined by the
    /// decision and the photo appointment.
    pub fn next_step_en(&self) -> &'static str {
        match (self.status, self.decision.map(|d| d.outcome)) {
            (Status::Decided, Some(DecisionOutcome::Granted))
                if self.photo_appointment.is_some() =>
            {
                "Attend your appointment to have your photo taken for the residence card."
            }
            (Status::Decided, Some(DecisionOutcome::Granted)) => {
                "Your application was granted. Book an appointment with the police to have your photo taken for the residence card."
            }
            (Status::Decided, Some(DecisionOutcome::Refused)) => {
                "Your application was refused. The decision letter explains why and how to appeal."
            }
            (status, _) => next_step_en(status),
        }
    }

    /// The next step for this application in Norwegian (bokmål).
    pub fn next_step_nb(&self) -> &'static str {
        match (self.status, self.decision.map(|d| d.outcome)) {
            (Status::Decided, Some(DecisionOutcome::Granted))
                if self.photo_appointment.is_some() =>
            {
                "Møt opp til timen din for å ta bilde til oppholdskortet."
            }
            (Status::Decided, Some(DecisionOutcome::Granted)) => {
                "Søknaden din er innvilget. Bestill time hos politiet for å ta bilde til oppholdskortet."
            }
            (Status::Decided, Some(DecisionOutcome::Refused)) => {
                "Søknaden din er avslått. I vedtaket står det hvorfor og hvordan du kan klage."
            }
            (status, _) => next_step_nb(status),
        }
    }
}

/// The application case aggregate as a [`Decider`](crate::Decider):
/// [`decide`] and [`evolve`] over [`State`].
///
/// Named `Case` because [`Application`] is the state it builds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Case;

crate::decider::module_decider!(Case);

/// Applies one event. Never fails and checks nothing: the rules were
/// checked when the event was decided.
pub fn evolve(state: &mut State, event: &Event) {
    if let Event::Created {
        id,
        owner,
        owner_method,
        kind,
        relation,
        applicant,
        at,
    } = event
    {
        state.application = Some(Application {
            id: *id,
            owner: LoginIdentity {
                account: *owner,
                method: *owner_method,
            },
            kind: *kind,
            relation: *relation,
            applicant: applicant.clone(),
            status: Status::Draft,
            created_at: *at,
            submitted_at: None,
            appointment: None,
            photo_appointment: None,
            documents_received_at: None,
            fee_paid_nok: None,
            fee_paid_at: None,
            refund_requested_at: None,
            decision: None,
            updated_at: *at,
        });
        return;
    }
    let Some(app) = state.application.as_mut() else {
        return;
    };
    app.updated_at = event.at();
    match event {
        Event::Created { .. } => {}
        Event::Submitted { at } => {
            app.status = Status::Submitted;
            app.submitted_at = Some(*at);
        }
        Event::AppointmentBooked { appointment, .. }
        | Event::AppointmentRescheduled { appointment, .. } => match appointment.purpose {
            AppointmentPurpose::Application => {
                app.appointment = Some(appointment.clone());
                app.status = Status::AppointmentBooked;
            }
            AppointmentPurpose::ResidenceCardPhoto => {
                app.photo_appointment = Some(appointment.clone());
            }
        },
        Event::AppointmentCancelled { purpose, .. } => match purpose {
            AppointmentPurpose::Application => {
                app.appointment = None;
                app.status = Status::Submitted;
            }
            AppointmentPurpose::ResidenceCardPhoto => app.photo_appointment = None,
        },
        Event::DocumentsReceived { at } => {
            app.status = Status::DocumentsReceived;
            app.documents_received_at = Some(*at);
        }
        Event::FeePaid { amount_nok, at } => {
            app.fee_paid_nok = Some(*amount_nok);
            app.fee_paid_at = Some(*at);
        }
        Event::RefundRequested { at } => app.refund_requested_at = Some(*at),
        Event::DecisionMade {
            outcome,
            channel,
            at,
        } => {
            app.status = Status::Decided;
            app.decision = Some(Decision {
                outcome: *outcome,
                channel: *channel,
                at: *at,
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Decide
// ---------------------------------------------------------------------------

/// Checks a command against the state and says what happens. Never changes
/// the state. Order of checks: who may act (caseworker commands), existence
/// and ownership (always `NotFound` for a stranger), state, then input.
pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::Create {
            id,
            owner,
            kind,
            relation,
            applicant,
            at,
        } => {
            if state.exists() {
                return Err(Error::AlreadyExists);
            }
            if *relation == Relation::Employee && owner.method == LoginMethod::IdPorten {
                return Err(Error::LoginMethodNotAllowed);
            }
            check_birth_date(applicant.birth_date, *at)?;
            Ok(vec![Event::Created {
                id: *id,
                owner: owner.account,
                owner_method: owner.method,
                kind: *kind,
                relation: *relation,
                applicant: applicant.clone(),
                at: *at,
            }])
        }
        Command::Submit { actor, at } => {
            let app = owned(state, actor)?;
            require(app, app.status == Status::Draft)?;
            Ok(vec![Event::Submitted { at: *at }])
        }
        Command::BookAppointment {
            actor,
            appointment,
            at,
            latest_start,
        } => {
            let app = owned(state, actor)?;
            let may_book = match appointment.purpose {
                AppointmentPurpose::Application => app.status == Status::Submitted,
                AppointmentPurpose::ResidenceCardPhoto => {
                    app.status == Status::Decided
                        && app.is_granted()
                        && app.photo_appointment.is_none()
                }
            };
            require(app, may_book)?;
            let appointment = checked_appointment(appointment, *at, *latest_start)?;
            Ok(vec![Event::AppointmentBooked {
                appointment,
                at: *at,
            }])
        }
        Command::RescheduleAppointment {
            actor,
            appointment,
            at,
            latest_start,
        } => {
            let app = owned(state, actor)?;
            let current = match appointment.purpose {
                AppointmentPurpose::Application if app.status == Status::AppointmentBooked => {
                    app.appointment.as_ref()
                }
                AppointmentPurpose::ResidenceCardPhoto if app.status == Status::Decided => {
                    app.photo_appointment.as_ref()
                }
                _ => None,
            };
            let Some(current) = current else {
                return Err(Error::WrongState { status: app.status });
            };
            let appointment = checked_appointment(appointment, *at, *latest_start)?;
            if appointment == *current {
                return Ok(vec![]);
            }
            Ok(vec![Event::AppointmentRescheduled {
                appointment,
                at: *at,
            }])
        }
        Command::CancelAppointment { actor, at } => {
            let app = owned(state, actor)?;
            let purpose = match app.status {
                Status::AppointmentBooked => AppointmentPurpose::Application,
                Status::Decided if app.photo_appointment.is_some() => {
                    AppointmentPurpose::ResidenceCardPhoto
                }
                status => return Err(Error::WrongState { status }),
            };
            Ok(vec![Event::AppointmentCancelled { purpose, at: *at }])
        }
        Command::RequestRefund { actor, at } => {
            let app = owned(state, actor)?;
            if !app.fee_paid() {
                return Err(Error::RefundWithoutFee { status: app.status });
            }
            if app.refund_requested() {
                return Err(Error::RefundAlreadyRequested { status: app.status });
            }
            Ok(vec![Event::RefundRequested { at: *at }])
        }
        Command::RegisterDocumentsReceived { actor, at } => {
            caseworker(actor)?;
            let app = existing(state)?;
            require(
                app,
                matches!(app.status, Status::Submitted | Status::AppointmentBooked),
            )?;
            Ok(vec![Event::DocumentsReceived { at: *at }])
        }
        Command::RegisterFeePaid {
            actor,
            amount_nok,
            at,
        } => {
            caseworker(actor)?;
            let app = existing(state)?;
            require(app, app.status != Status::Draft)?;
            if app.fee_paid() {
                return Err(Error::FeeAlreadyRegistered { status: app.status });
            }
            if *amount_nok == 0 {
                return Err(Error::InvalidInput {
                    field: "amountNok",
                    reason: Reason::NotPositive,
                });
            }
            Ok(vec![Event::FeePaid {
                amount_nok: *amount_nok,
                at: *at,
            }])
        }
        Command::MakeDecision {
            actor,
            outcome,
            has_digipost,
            at,
        } => {
            caseworker(actor)?;
            let app = existing(state)?;
            require(app, app.status == Status::DocumentsReceived)?;
            let channel = if *has_digipost {
                DeliveryChannel::Digipost
            } else {
                DeliveryChannel::Post
            };
            Ok(vec![Event::DecisionMade {
                outcome: *outcome,
                channel,
                at: *at,
            }])
        }
    }
}

fn existing(state: &State) -> Result<&Application, Error> {
    state.application.as_ref().ok_or(Error::NotFound)
}

/// The application, if it exists and `actor` owns it. A stranger gets the
/// same answer as for an application that does not exist.
fn owned<'a>(state: &'a State, actor: &LoginIdentity) -> Result<&'a Application, Error> {
    existing(state)
        .ok()
        .filter(|app| app.is_owned_by(actor))
        .ok_or(Error::NotFound)
}

fn caseworker(actor: &Actor) -> Result<(), Error> {
    match actor {
        Actor::Caseworker(_) => Ok(()),
        _ => Err(Error::NotPermitted),
    }
}

fn require(app: &Application, allowed: bool) -> Result<(), Error> {
    if allowed {
        Ok(())
    } else {
        Err(Error::WrongState { status: app.status })
    }
}

/// Re-checks the location (fields are public) and that the time is after
/// `at` and no later than `latest_start`; returns the normalised appointment
/// to record.
fn checked_appointment(
    appointment: &Appointment,
    at: DateTime<Utc>,
    latest_start: DateTime<Utc>,
) -> Result<Appointment, Error> {
    let location = parse_location(&appointment.location)?;
    if appointment.starts_at <= at {
        return Err(Error::AppointmentInPast);
    }
    if appointment.starts_at > latest_start {
        return Err(Error::AppointmentBeyondHorizon {
            latest: latest_start,
        });
    }
    Ok(Appointment {
        location,
        ..appointment.clone()
    })
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a field was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Empty, too long, invisible, or with control, direction-changing or
    /// markup characters.
    Text(TextError),
    /// Not three letters A-Z.
    NotThreeLetters,
    /// Three letters, but not a country code on the list.
    UnknownCountryCode,
    /// A date that has not happened yet.
    InTheFuture,
    /// A birth date before 1 January 1900.
    Before1900,
    /// Zero where a positive number is needed.
    NotPositive,
}

impl Reason {
    /// The reason in English, as the end of a sentence.
    pub fn en(&self) -> String {
        match self {
            Reason::Text(e) => e.to_string(),
            Reason::NotThreeLetters => {
                "must be a three-letter country code (ISO 3166-1 alpha-3), such as NOR".into()
            }
            Reason::UnknownCountryCode => {
                "is not a known country code (ISO 3166-1 alpha-3), such as NOR".into()
            }
            Reason::InTheFuture => "must not be in the future".into(),
            Reason::Before1900 => "must not be before 1 January 1900".into(),
            Reason::NotPositive => "must be greater than zero".into(),
        }
    }

    /// The reason in Norwegian (bokmål), as the end of a sentence.
    pub fn nb(&self) -> String {
        match self {
            Reason::Text(e) => e.nb(),
            Reason::NotThreeLetters => {
                "må være en landkode på tre bokstaver (ISO 3166-1 alfa-3), for eksempel NOR".into()
            }
            Reason::UnknownCountryCode => {
                "er ikke en kjent landkode (ISO 3166-1 alfa-3), for eksempel NOR".into()
            }
            Reason::InTheFuture => "kan ikke være fram i tid".into(),
            Reason::Before1900 => "kan ikke være før 1. januar 1900".into(),
            Reason::NotPositive => "må være større enn null".into(),
        }
    }
}

/// Why a command was refused. [`Error::code`] gives the contract code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No such application for this caller (it does not exist, or belongs to
    /// another login identity — never told apart).
    NotFound,
    /// Not possible in the current status.
    WrongState { status: Status },
    /// An employer applying for an employee while logged in with ID-porten.
    LoginMethodNotAllowed,
    /// A field is malformed; `field` is the contract's input field path.
    InvalidInput { field: &'static str, reason: Reason },
    /// The appointment does not start after the time of the command.
    AppointmentInPast,
    /// The appointment starts after `latest`, the end of the booking horizon.
    AppointmentBeyondHorizon { latest: DateTime<Utc> },
    /// Create on a stream that already holds an application. Ids are chosen
    /// by the server, so a caller can only meet this through an id collision.
    AlreadyExists,
    /// A caseworker command from an actor that is not a caseworker service.
    NotPermitted,
    /// Refund asked for, but no fee was registered as paid.
    RefundWithoutFee { status: Status },
    /// Refund asked for a second time.
    RefundAlreadyRequested { status: Status },
    /// A fee registered for an application whose fee is already paid.
    FeeAlreadyRegistered { status: Status },
}

impl Error {
    /// The contract's `extensions.code`.
    ///
    /// Refusals tied to the fee (`RefundWithoutFee`, `RefundAlreadyRequested`,
    /// `FeeAlreadyRegistered`) are `WRONG_STATE` with the current status: the
    /// application is not in a state where that is possible. `AlreadyExists`
    /// is `INVALID_INPUT` on field `id`. `NotPermitted` is `UNAUTHENTICATED`:
    /// the caller lacks the caseworker service credential.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound => "NOT_FOUND",
            Error::WrongState { .. }
            | Error::RefundWithoutFee { .. }
            | Error::RefundAlreadyRequested { .. }
            | Error::FeeAlreadyRegistered { .. } => "WRONG_STATE",
            Error::LoginMethodNotAllowed => "LOGIN_METHOD_NOT_ALLOWED",
            Error::InvalidInput { .. }
            | Error::AppointmentInPast
            | Error::AppointmentBeyondHorizon { .. }
            | Error::AlreadyExists => "INVALID_INPUT",
            Error::NotPermitted => "UNAUTHENTICATED",
        }
    }

    /// The `field` extension for `INVALID_INPUT`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::InvalidInput { field, .. } => Some(field),
            Error::AppointmentInPast | Error::AppointmentBeyondHorizon { .. } => Some("startsAt"),
            Error::AlreadyExists => Some("id"),
            _ => None,
        }
    }

    /// The `status` extension for `WRONG_STATE`.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::WrongState { status }
            | Error::RefundWithoutFee { status }
            | Error::RefundAlreadyRequested { status }
            | Error::FeeAlreadyRegistered { status } => Some(*status),
            _ => None,
        }
    }

    /// A message in English that a person understands.
    pub fn message_en(&self) -> String {
        match self {
            Error::NotFound => "We could not find that application. Make sure you are logged in \
                 the same way as when you created it: with the same username and password, \
                 or with ID-porten."
                .into(),
            Error::WrongState { status } => format!(
                "This cannot be done now: the application's status is \"{}\". {}",
                status.label_en(),
                next_step_en(*status)
            ),
            Error::LoginMethodNotAllowed => "An employer applying on behalf of an employee \
                 cannot log in with ID-porten. Log out, then log in with a username and \
                 password and create the application there."
                .into(),
            Error::InvalidInput { field, reason } => {
                format!("{}: {}.", field_label_en(field), reason.en())
            }
            Error::AppointmentInPast => {
                "The appointment time must be in the future. Choose a later time.".into()
            }
            Error::AppointmentBeyondHorizon { latest } => format!(
                "Appointments can be booked up to {} (UTC) at the latest. Choose an earlier time.",
                latest.format("%-d %B %Y, %H:%M")
            ),
            Error::AlreadyExists => "An application with this id already exists.".into(),
            Error::NotPermitted => "Only UDI's caseworker service can do this.".into(),
            Error::RefundWithoutFee { .. } => "No fee has been registered as paid for this \
                 application, so there is nothing to refund."
                .into(),
            Error::RefundAlreadyRequested { .. } => {
                "You have already asked for a refund of the fee for this application.".into()
            }
            Error::FeeAlreadyRegistered { .. } => {
                "The fee for this application is already registered as paid.".into()
            }
        }
    }

    /// A message in Norwegian (bokmål) that a person understands.
    pub fn message_nb(&self) -> String {
        match self {
            Error::NotFound => "Vi fant ikke søknaden. Sjekk at du er logget inn på samme måte \
                 som da du opprettet den: med samme brukernavn og passord, eller med ID-porten."
                .into(),
            Error::WrongState { status } => format!(
                "Dette kan ikke gjøres nå: søknaden har status «{}». {}",
                status.label_nb(),
                next_step_nb(*status)
            ),
            Error::LoginMethodNotAllowed => "En arbeidsgiver som søker på vegne av en ansatt, \
                 kan ikke logge inn med ID-porten. Logg ut, logg inn med brukernavn og passord, \
                 og opprett søknaden der."
                .into(),
            Error::InvalidInput { field, reason } => {
                format!("{}: {}.", field_label_nb(field), reason.nb())
            }
            Error::AppointmentInPast => {
                "Tidspunktet for timen må være fram i tid. Velg et senere tidspunkt.".into()
            }
            Error::AppointmentBeyondHorizon { latest } => format!(
                "Timer kan bestilles fram til {} kl. {} (UTC). Velg et tidligere tidspunkt.",
                date_nb(*latest),
                latest.format("%H:%M")
            ),
            Error::AlreadyExists => "Det finnes allerede en søknad med denne id-en.".into(),
            Error::NotPermitted => "Bare UDIs saksbehandlingstjeneste kan gjøre dette.".into(),
            Error::RefundWithoutFee { .. } => "Det er ikke registrert noe betalt gebyr for \
                 denne søknaden, så det er ingenting å betale tilbake."
                .into(),
            Error::RefundAlreadyRequested { .. } => {
                "Du har allerede bedt om å få tilbake gebyret for denne søknaden.".into()
            }
            Error::FeeAlreadyRegistered { .. } => {
                "Gebyret for denne søknaden er allerede registrert som betalt.".into()
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_en())
    }
}

impl std::error::Error for Error {}

/// `15. mars 2027`.
fn date_nb(at: DateTime<Utc>) -> String {
    const MONTHS: [&str; 12] = [
        "januar",
        "februar",
        "mars",
        "april",
        "mai",
        "juni",
        "juli",
        "august",
        "september",
        "oktober",
        "november",
        "desember",
    ];
    let date = at.date_naive();
    format!(
        "{}. {} {}",
        date.day(),
        MONTHS[date.month0() as usize],
        date.year()
    )
}

fn field_label_en(field: &str) -> &str {
    match field {
        "applicant.name" => "Name",
        "applicant.birthDate" => "Date of birth",
        "applicant.nationality" => "Nationality",
        "location" => "Place",
        "startsAt" => "Time",
        "amountNok" => "Amount",
        "id" => "Id",
        other => other,
    }
}

fn field_label_nb(field: &str) -> &str {
    match field {
        "applicant.name" => "Navn",
        "applicant.birthDate" => "Fødselsdato",
        "applicant.nationality" => "Statsborgerskap",
        "location" => "Sted",
        "startsAt" => "Tidspunkt",
        "amountNok" => "Beløp",
        "id" => "Id",
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Texts for mails and "My applications"
// ---------------------------------------------------------------------------

/// The documents to bring to the appointment for this kind of application,
/// in English, for the booking confirmation mail.
pub fn documents_to_bring(kind: Kind) -> Vec<&'static str> {
    let mut documents = vec![
        "Your passport (valid), or the travel document you have",
        "One passport photo taken within the last six months",
        "The cover letter for your application, printed and signed",
    ];
    documents.extend_from_slice(match kind {
        Kind::Work => &[
            "Your employment contract or a binding offer of employment",
            "Documentation of your education or vocational training",
        ][..],
        Kind::Family => &[
            "A marriage certificate or birth certificate showing the family relationship",
            "A copy of the passport of your family member in Norway",
        ][..],
        Kind::Study => &[
            "The letter of admission from the place of study",
            "Proof that you have enough money to support yourself (proof of funds)",
        ][..],
        Kind::Visit => &[
            "Travel medical insurance for the whole stay",
            "The invitation from the person you are visiting, if you have one",
            "Your travel plan or a booked return ticket",
        ][..],
        Kind::Protection => {
            &["Any other documents that can confirm who you are, such as an ID card or a birth certificate"][..]
        }
        Kind::Citizenship => &[
            "Documentation of your Norwegian language skills",
            "Documentation that you passed the citizenship test",
        ][..],
    });
    documents
}

/// The documents to bring, in Norwegian (bokmål).
pub fn documents_to_bring_nb(kind: Kind) -> Vec<&'static str> {
    let mut documents = vec![
        "Gyldig pass, eller reisedokumentet du har",
        "Ett passbilde tatt de siste seks månedene",
        "Følgebrevet til søknaden, skrevet ut og signert",
    ];
    documents.extend_from_slice(match kind {
        Kind::Work => &[
            "Arbeidskontrakt eller bindende tilbud om arbeid",
            "Dokumentasjon på utdanningen eller fagopplæringen din",
        ][..],
        Kind::Family => &[
            "Vigselsattest eller fødselsattest som viser familieforholdet",
            "Kopi av passet til familiemedlemmet ditt i Norge",
        ][..],
        Kind::Study => &[
            "Opptaksbrev fra studiestedet",
            "Dokumentasjon på at du har nok penger til å forsørge deg",
        ][..],
        Kind::Visit => &[
            "Reiseforsikring som gjelder hele oppholdet",
            "Invitasjon fra den du skal besøke, hvis du har det",
            "Reiseplan eller bestilt returbillett",
        ][..],
        Kind::Protection => {
            &["Andre dokumenter som kan bekrefte hvem du er, for eksempel ID-kort eller fødselsattest"][..]
        }
        Kind::Citizenship => &[
            "Dokumentasjon på norskkunnskapene dine",
            "Dokumentasjon på at du har bestått statsborgerprøven",
        ][..],
    });
    documents
}

/// The next step for an application in this status, in English, for
/// "My applications".
pub fn next_step_en(status: Status) -> &'static str {
    match status {
        Status::Draft => "Finish the application form and submit it.",
        Status::Submitted => "Book an appointment at the meeting point to hand in your documents.",
        Status::AppointmentBooked => {
            "Go to your appointment and bring the documents listed in the confirmation email."
        }
        Status::DocumentsReceived => "We have received your documents. Wait for the decision.",
        Status::Decided => {
            "The decision has been sent to you: in Digipost if you have it, otherwise by post."
        }
    }
}

/// The next step for an application in this status, in Norwegian (bokmål).
pub fn next_step_nb(status: Status) -> &'static str {
    match status {
        Status::Draft => "Fyll ut søknadsskjemaet og send det inn.",
        Status::Submitted => "Bestill time på oppmøtestedet for å levere dokumentene dine.",
        Status::AppointmentBooked => {
            "Møt opp til timen din og ta med dokumentene som står i bekreftelsen på e-post."
        }
        Status::DocumentsReceived => "Vi har mottatt dokumentene dine. Vent på vedtaket.",
        Status::Decided => {
            "Vedtaket er sendt til deg: i Digipost hvis du har det, ellers i posten."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Given};
    use proptest::prelude::*;
    use uuid::Uuid;

    // --- fixtures -----------------------------------------------------------

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn now() -> DateTime<Utc> {
        t("2025-03-10T09:00:00Z")
    }

    fn later(hours: i64) -> DateTime<Utc> {
        now() + Duration::hours(hours)
    }

    /// The latest start the booking horizon allows (a year after [`now`]).
    fn horizon_end() -> DateTime<Utc> {
        now() + Duration::days(365)
    }

    fn identity(n: u128, method: LoginMethod) -> LoginIdentity {
        LoginIdentity {
            account: AccountId(Uuid::from_u128(n)),
            method,
        }
    }

    fn owner() -> LoginIdentity {
        identity(1, LoginMethod::Password)
    }

    /// Another account, logged in with a password.
    fn stranger() -> LoginIdentity {
        identity(2, LoginMethod::Password)
    }

    /// The same person logged in the other way: a different account.
    fn owner_via_idporten() -> LoginIdentity {
        identity(3, LoginMethod::IdPorten)
    }

    fn caseworker_actor() -> Actor {
        Actor::Caseworker("case-service".into())
    }

    fn app_id() -> ApplicationId {
        ApplicationId(Uuid::from_u128(42))
    }

    fn applicant() -> Applicant {
        Applicant::parse(
            "Kari Nordmann",
            NaiveDate::from_ymd_opt(1990, 5, 17).unwrap(),
            "swe",
            now(),
        )
        .unwrap()
    }

    fn appointment(purpose: AppointmentPurpose, starts_at: DateTime<Utc>) -> Appointment {
        Appointment::new(
            MeetingPointKind::Police,
            "Oslo politidistrikt, Grønland",
            starts_at,
            purpose,
        )
        .unwrap()
    }

    fn created_by(who: LoginIdentity, relation: Relation) -> Event {
        Event::Created {
            id: app_id(),
            owner: who.account,
            owner_method: who.method,
            kind: Kind::Work,
            relation,
            applicant: applicant(),
            at: t("2025-03-01T08:00:00Z"),
        }
    }

    fn created() -> Event {
        created_by(owner(), Relation::Myself)
    }

    fn submitted() -> Event {
        Event::Submitted {
            at: t("2025-03-01T09:00:00Z"),
        }
    }

    fn booked() -> Event {
        Event::AppointmentBooked {
            appointment: appointment(AppointmentPurpose::Application, later(48)),
            at: t("2025-03-02T09:00:00Z"),
        }
    }

    fn documents_received() -> Event {
        Event::DocumentsReceived {
            at: t("2025-03-05T09:00:00Z"),
        }
    }

    fn fee_paid() -> Event {
        Event::FeePaid {
            amount_nok: 6_300,
            at: t("2025-03-01T10:00:00Z"),
        }
    }

    fn decided(outcome: DecisionOutcome) -> Event {
        Event::DecisionMade {
            outcome,
            channel: DeliveryChannel::Digipost,
            at: t("2025-03-08T09:00:00Z"),
        }
    }

    fn history_up_to(status: Status) -> Vec<Event> {
        let mut events = vec![created()];
        let steps = [
            (Status::Submitted, submitted()),
            (Status::AppointmentBooked, booked()),
            (Status::DocumentsReceived, documents_received()),
            (Status::Decided, decided(DecisionOutcome::Granted)),
        ];
        for (reached, event) in steps {
            if status < reached {
                break;
            }
            events.push(event);
        }
        events
    }

    // --- given / when / then ------------------------------------------------

    fn given(events: impl IntoIterator<Item = Event>) -> Given<Case> {
        testing::given(events)
    }

    fn create(owner: LoginIdentity, relation: Relation) -> Command {
        Command::Create {
            id: app_id(),
            owner,
            kind: Kind::Work,
            relation,
            applicant: applicant(),
            at: now(),
        }
    }

    fn book(
        actor: LoginIdentity,
        purpose: AppointmentPurpose,
        starts_at: DateTime<Utc>,
    ) -> Command {
        Command::BookAppointment {
            actor,
            appointment: appointment(purpose, starts_at),
            at: now(),
            latest_start: horizon_end(),
        }
    }

    fn citizen_commands(actor: LoginIdentity) -> Vec<Command> {
        vec![
            Command::Submit { actor, at: now() },
            book(actor, AppointmentPurpose::Application, later(24)),
            book(actor, AppointmentPurpose::ResidenceCardPhoto, later(24)),
            Command::RescheduleAppointment {
                actor,
                appointment: appointment(AppointmentPurpose::Application, later(72)),
                at: now(),
                latest_start: horizon_end(),
            },
            Command::RescheduleAppointment {
                actor,
                appointment: appointment(AppointmentPurpose::ResidenceCardPhoto, later(72)),
                at: now(),
                latest_start: horizon_end(),
            },
            Command::CancelAppointment { actor, at: now() },
            Command::RequestRefund { actor, at: now() },
        ]
    }

    fn caseworker_commands(actor: Actor) -> Vec<Command> {
        vec![
            Command::RegisterDocumentsReceived {
                actor: actor.clone(),
                at: now(),
            },
            Command::RegisterFeePaid {
                actor: actor.clone(),
                amount_nok: 6_300,
                at: now(),
            },
            Command::MakeDecision {
                actor,
                outcome: DecisionOutcome::Granted,
                has_digipost: true,
                at: now(),
            },
        ]
    }

    // --- creating -------------------------------------------------------------

    #[test]
    fn creating_records_the_owner_and_starts_a_draft() {
        let state = given([])
            .when(create(owner(), Relation::Myself))
            .then(vec![Event::Created {
                id: app_id(),
                owner: owner().account,
                owner_method: LoginMethod::Password,
                kind: Kind::Work,
                relation: Relation::Myself,
                applicant: applicant(),
                at: now(),
            }])
            .state();
        assert_eq!(state.status(), Some(Status::Draft));
        assert!(state.is_owned_by(&owner()));
        assert!(!state.is_owned_by(&owner_via_idporten()));
    }

    #[test]
    fn creating_twice_is_refused() {
        given([created()])
            .when(create(owner(), Relation::Myself))
            .then_error(Error::AlreadyExists);
    }

    #[test]
    fn employer_application_with_idporten_is_refused() {
        given([])
            .when(create(owner_via_idporten(), Relation::Employee))
            .then_error(Error::LoginMethodNotAllowed);
        assert_eq!(
            Error::LoginMethodNotAllowed.code(),
            "LOGIN_METHOD_NOT_ALLOWED"
        );
    }

    #[test]
    fn employer_application_with_a_password_is_allowed() {
        given([]).when(create(owner(), Relation::Employee)).events();
    }

    #[test]
    fn family_member_application_with_idporten_is_allowed() {
        for relation in [Relation::FamilyMember, Relation::Other, Relation::Myself] {
            let state = given([])
                .when(create(owner_via_idporten(), relation))
                .then(vec![Event::Created {
                    id: app_id(),
                    owner: owner_via_idporten().account,
                    owner_method: LoginMethod::IdPorten,
                    kind: Kind::Work,
                    relation,
                    applicant: applicant(),
                    at: now(),
                }])
                .state();
            // The logged-in identity follows the case up, not the person
            // applied for.
            assert!(state.is_owned_by(&owner_via_idporten()));
        }
    }

    #[test]
    fn nationality_must_be_an_iso_alpha3_code() {
        for good in ["NOR", "nor", " swe ", "Deu", "PSE", "XXA"] {
            assert!(CountryCode::parse(good).is_ok(), "{good}");
        }
        assert_eq!(CountryCode::parse("nor").unwrap().as_str(), "NOR");
        for (bad, reason) in [
            ("NO", Reason::NotThreeLetters),
            ("NORW", Reason::NotThreeLetters),
            ("", Reason::NotThreeLetters),
            ("N0R", Reason::NotThreeLetters),
            ("ÅLA", Reason::NotThreeLetters),
            ("ZZZ", Reason::UnknownCountryCode),
            ("EUR", Reason::UnknownCountryCode),
            ("UK", Reason::NotThreeLetters),
        ] {
            assert_eq!(
                CountryCode::parse(bad),
                Err(Error::InvalidInput {
                    field: "applicant.nationality",
                    reason
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_country_list_is_sorted_and_unique() {
        assert!(CountryCode::ISO_ALPHA3.windows(2).all(|w| w[0] < w[1]));
        assert!(
            CountryCode::ISO_ALPHA3
                .iter()
                .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
        );
    }

    #[test]
    fn birth_date_must_not_be_in_the_future_or_before_1900() {
        let at = now();
        let field = "applicant.birthDate";
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert!(Applicant::parse("A", date(1900, 1, 1), "NOR", at).is_ok());
        assert!(Applicant::parse("A", at.date_naive(), "NOR", at).is_ok());
        assert_eq!(
            Applicant::parse("A", date(1899, 12, 31), "NOR", at),
            Err(Error::InvalidInput {
                field,
                reason: Reason::Before1900
            })
        );
        let future = at.date_naive() + Duration::days(2);
        assert_eq!(
            Applicant::parse("A", future, "NOR", at),
            Err(Error::InvalidInput {
                field,
                reason: Reason::InTheFuture
            })
        );
        // The decider checks it too: the fields are public.
        let mut unborn = applicant();
        unborn.birth_date = future;
        given([])
            .when(Command::Create {
                id: app_id(),
                owner: owner(),
                kind: Kind::Family,
                relation: Relation::FamilyMember,
                applicant: unborn,
                at,
            })
            .then_error(Error::InvalidInput {
                field,
                reason: Reason::InTheFuture,
            });
    }

    #[test]
    fn applicant_name_must_not_be_empty() {
        assert_eq!(
            Applicant::parse(
                "  ",
                NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
                "NOR",
                now()
            ),
            Err(Error::InvalidInput {
                field: "applicant.name",
                reason: Reason::Text(TextError::Empty)
            })
        );
    }

    // --- ownership --------------------------------------------------------------

    #[test]
    fn another_identity_gets_not_found_for_every_command() {
        for status in Status::ALL {
            for intruder in [stranger(), owner_via_idporten()] {
                for command in citizen_commands(intruder) {
                    given(history_up_to(status))
                        .when(command.clone())
                        .then_error(Error::NotFound);
                }
            }
        }
    }

    #[test]
    fn a_command_on_a_missing_application_is_not_found() {
        for command in citizen_commands(owner())
            .into_iter()
            .chain(caseworker_commands(caseworker_actor()))
        {
            given([]).when(command).then_error(Error::NotFound);
        }
    }

    // --- lifecycle ----------------------------------------------------------------

    #[test]
    fn submitting_a_draft_moves_it_to_submitted() {
        let state = given([created()])
            .when(Command::Submit {
                actor: owner(),
                at: now(),
            })
            .then(vec![Event::Submitted { at: now() }])
            .state();
        let app = state.application.unwrap();
        assert_eq!(app.status, Status::Submitted);
        assert_eq!(app.submitted_at, Some(now()));
    }

    #[test]
    fn submitting_twice_is_wrong_state() {
        given([created(), submitted()])
            .when(Command::Submit {
                actor: owner(),
                at: now(),
            })
            .then_error(Error::WrongState {
                status: Status::Submitted,
            });
    }

    #[test]
    fn booking_after_submit_books_the_appointment() {
        let state = given([created(), submitted()])
            .when(book(owner(), AppointmentPurpose::Application, later(24)))
            .then(vec![Event::AppointmentBooked {
                appointment: appointment(AppointmentPurpose::Application, later(24)),
                at: now(),
            }])
            .state();
        let app = state.application.unwrap();
        assert_eq!(app.status, Status::AppointmentBooked);
        assert_eq!(app.appointment.unwrap().starts_at, later(24));
    }

    #[test]
    fn booking_trims_the_location_and_refuses_a_bad_one() {
        let mut raw = appointment(AppointmentPurpose::Application, later(24));
        raw.location = "  SUA Oslo  ".into();
        let events = given([created(), submitted()])
            .when(Command::BookAppointment {
                actor: owner(),
                appointment: raw.clone(),
                at: now(),
                latest_start: horizon_end(),
            })
            .events();
        let Event::AppointmentBooked { appointment, .. } = &events[0] else {
            panic!("expected a booking, got {events:?}");
        };
        assert_eq!(appointment.location, "SUA Oslo");

        raw.location = "x".repeat(Appointment::LOCATION_MAX + 1);
        given([created(), submitted()])
            .when(Command::BookAppointment {
                actor: owner(),
                appointment: raw,
                at: now(),
                latest_start: horizon_end(),
            })
            .then_error(Error::InvalidInput {
                field: "location",
                reason: Reason::Text(TextError::TooLong {
                    max: Appointment::LOCATION_MAX,
                }),
            });
    }

    #[test]
    fn booking_in_the_past_is_refused() {
        for starts_at in [later(-1), now()] {
            given([created(), submitted()])
                .when(book(owner(), AppointmentPurpose::Application, starts_at))
                .then_error(Error::AppointmentInPast);
        }
        assert_eq!(Error::AppointmentInPast.code(), "INVALID_INPUT");
        assert_eq!(Error::AppointmentInPast.field(), Some("startsAt"));
    }

    #[test]
    fn booking_up_to_the_end_of_the_horizon_is_accepted() {
        given([created(), submitted()])
            .when(book(
                owner(),
                AppointmentPurpose::Application,
                horizon_end(),
            ))
            .then(vec![Event::AppointmentBooked {
                appointment: appointment(AppointmentPurpose::Application, horizon_end()),
                at: now(),
            }]);
    }

    #[test]
    fn booking_beyond_the_horizon_is_refused_with_the_latest_date() {
        let year_9999 = t("9999-12-31T10:00:00Z");
        for starts_at in [horizon_end() + Duration::seconds(1), year_9999] {
            given([created(), submitted()])
                .when(book(owner(), AppointmentPurpose::Application, starts_at))
                .then_error(Error::AppointmentBeyondHorizon {
                    latest: horizon_end(),
                });
        }
        let error = Error::AppointmentBeyondHorizon {
            latest: horizon_end(),
        };
        assert_eq!(error.code(), "INVALID_INPUT");
        assert_eq!(error.field(), Some("startsAt"));
        assert!(
            error.message_en().contains("10 March 2026, 09:00"),
            "{error}"
        );
        assert!(
            error.message_nb().contains("10. mars 2026 kl. 09:00"),
            "{}",
            error.message_nb()
        );
    }

    #[test]
    fn a_residence_card_photo_beyond_the_horizon_is_refused() {
        given(history_up_to(Status::Decided))
            .when(book(
                owner(),
                AppointmentPurpose::ResidenceCardPhoto,
                horizon_end() + Duration::days(1),
            ))
            .then_error(Error::AppointmentBeyondHorizon {
                latest: horizon_end(),
            });
    }

    #[test]
    fn rescheduling_beyond_the_horizon_is_refused() {
        for (history, purpose) in [
            (
                vec![created(), submitted(), booked()],
                AppointmentPurpose::Application,
            ),
            (
                vec![
                    created(),
                    submitted(),
                    booked(),
                    documents_received(),
                    { decided(DecisionOutcome::Granted) },
                    Event::AppointmentBooked {
                        appointment: appointment(AppointmentPurpose::ResidenceCardPhoto, later(24)),
                        at: now(),
                    },
                ],
                AppointmentPurpose::ResidenceCardPhoto,
            ),
        ] {
            given(history)
                .when(Command::RescheduleAppointment {
                    actor: owner(),
                    appointment: appointment(purpose, t("9999-01-01T10:00:00Z")),
                    at: now(),
                    latest_start: horizon_end(),
                })
                .then_error(Error::AppointmentBeyondHorizon {
                    latest: horizon_end(),
                });
        }
    }

    #[test]
    fn booking_refuses_a_location_that_deceives() {
        for (location, reason) in [
            ("Oslo\u{202E}gnp.exe", TextError::BidiControl),
            ("\u{200b}\u{feff}", TextError::Invisible),
            ("<b>SUA</b>", TextError::Markup),
        ] {
            assert_eq!(
                Appointment::new(
                    MeetingPointKind::Sua,
                    location,
                    later(24),
                    AppointmentPurpose::Application
                ),
                Err(Error::InvalidInput {
                    field: "location",
                    reason: Reason::Text(reason.clone()),
                })
            );
            // The decider checks again, for an appointment built by hand.
            let mut raw = appointment(AppointmentPurpose::Application, later(24));
            raw.location = location.into();
            given([created(), submitted()])
                .when(Command::BookAppointment {
                    actor: owner(),
                    appointment: raw,
                    at: now(),
                    latest_start: horizon_end(),
                })
                .then_error(Error::InvalidInput {
                    field: "location",
                    reason: Reason::Text(reason),
                });
        }
    }

    #[test]
    fn an_applicant_name_that_deceives_is_refused_in_both_languages() {
        for (name, reason, nb) in [
            (
                "Bob\u{202E}gnp.exe",
                TextError::BidiControl,
                "endrer skriveretningen",
            ),
            ("\u{200b}\u{feff}", TextError::Invisible, "synlig tegn"),
            ("<b>x</b>", TextError::Markup, "< eller >"),
        ] {
            let error = Applicant::parse(
                name,
                NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
                "NOR",
                now(),
            )
            .unwrap_err();
            assert_eq!(
                error,
                Error::InvalidInput {
                    field: "applicant.name",
                    reason: Reason::Text(reason.clone()),
                }
            );
            assert_eq!(error.code(), "INVALID_INPUT");
            assert_eq!(error.message_en(), format!("Name: {reason}."), "{name:?}");
            assert!(error.message_nb().starts_with("Navn: "), "{name:?}");
            assert!(error.message_nb().contains(nb), "{name:?}");
        }
    }

    #[test]
    fn booking_twice_is_refused() {
        given([created(), submitted(), booked()])
            .when(book(owner(), AppointmentPurpose::Application, later(96)))
            .then_error(Error::WrongState {
                status: Status::AppointmentBooked,
            });
    }

    #[test]
    fn booking_before_submit_is_wrong_state() {
        let error = given([created()])
            .when(book(owner(), AppointmentPurpose::Application, later(24)))
            .error();
        assert_eq!(
            error,
            Error::WrongState {
                status: Status::Draft
            }
        );
        assert_eq!(error.code(), "WRONG_STATE");
        assert_eq!(error.status(), Some(Status::Draft));
    }

    #[test]
    fn rescheduling_moves_the_booked_appointment() {
        let moved = appointment(AppointmentPurpose::Application, later(96));
        let state = given([created(), submitted(), booked()])
            .when(Command::RescheduleAppointment {
                actor: owner(),
                appointment: moved.clone(),
                at: now(),
                latest_start: horizon_end(),
            })
            .then(vec![Event::AppointmentRescheduled {
                appointment: moved.clone(),
                at: now(),
            }])
            .state();
        let app = state.application.unwrap();
        assert_eq!(app.appointment, Some(moved));
        assert_eq!(app.status, Status::AppointmentBooked);
    }

    #[test]
    fn rescheduling_to_the_same_appointment_changes_nothing() {
        let Event::AppointmentBooked { appointment, .. } = booked() else {
            unreachable!()
        };
        given([created(), submitted(), booked()])
            .when(Command::RescheduleAppointment {
                actor: owner(),
                appointment,
                at: now(),
                latest_start: horizon_end(),
            })
            .then(vec![]);
    }

    #[test]
    fn rescheduling_into_the_past_is_refused() {
        given([created(), submitted(), booked()])
            .when(Command::RescheduleAppointment {
                actor: owner(),
                appointment: appointment(AppointmentPurpose::Application, later(-2)),
                at: now(),
                latest_start: horizon_end(),
            })
            .then_error(Error::AppointmentInPast);
    }

    #[test]
    fn rescheduling_or_cancelling_without_a_booking_is_wrong_state() {
        for status in [Status::Draft, Status::Submitted, Status::DocumentsReceived] {
            given(history_up_to(status))
                .when(Command::RescheduleAppointment {
                    actor: owner(),
                    appointment: appointment(AppointmentPurpose::Application, later(96)),
                    at: now(),
                    latest_start: horizon_end(),
                })
                .then_error(Error::WrongState { status });
            given(history_up_to(status))
                .when(Command::CancelAppointment {
                    actor: owner(),
                    at: now(),
                })
                .then_error(Error::WrongState { status });
        }
    }

    #[test]
    fn cancelling_returns_the_application_to_submitted() {
        let state = given([created(), submitted(), booked()])
            .when(Command::CancelAppointment {
                actor: owner(),
                at: now(),
            })
            .then(vec![Event::AppointmentCancelled {
                purpose: AppointmentPurpose::Application,
                at: now(),
            }])
            .state();
        let app = state.application.clone().unwrap();
        assert_eq!(app.status, Status::Submitted);
        assert_eq!(app.appointment, None);
        // ... and a new time can be booked.
        given([
            created(),
            submitted(),
            booked(),
            Event::AppointmentCancelled {
                purpose: AppointmentPurpose::Application,
                at: now(),
            },
        ])
        .when(book(owner(), AppointmentPurpose::Application, later(200)))
        .events();
    }

    #[test]
    fn documents_received_after_booking_or_directly_at_the_meeting_point() {
        for history in [
            vec![created(), submitted(), booked()],
            vec![created(), submitted()],
        ] {
            let state = given(history)
                .when(Command::RegisterDocumentsReceived {
                    actor: caseworker_actor(),
                    at: now(),
                })
                .then(vec![Event::DocumentsReceived { at: now() }])
                .state();
            assert_eq!(state.status(), Some(Status::DocumentsReceived));
        }
    }

    #[test]
    fn documents_received_for_a_draft_is_wrong_state() {
        given([created()])
            .when(Command::RegisterDocumentsReceived {
                actor: caseworker_actor(),
                at: now(),
            })
            .then_error(Error::WrongState {
                status: Status::Draft,
            });
    }

    #[test]
    fn decision_only_after_documents_received() {
        for status in [
            Status::Draft,
            Status::Submitted,
            Status::AppointmentBooked,
            Status::Decided,
        ] {
            given(history_up_to(status))
                .when(Command::MakeDecision {
                    actor: caseworker_actor(),
                    outcome: DecisionOutcome::Granted,
                    has_digipost: false,
                    at: now(),
                })
                .then_error(Error::WrongState { status });
        }
    }

    #[test]
    fn decision_is_delivered_by_digipost_when_the_person_has_it_else_post() {
        for (has_digipost, channel) in [
            (true, DeliveryChannel::Digipost),
            (false, DeliveryChannel::Post),
        ] {
            let state = given(history_up_to(Status::DocumentsReceived))
                .when(Command::MakeDecision {
                    actor: caseworker_actor(),
                    outcome: DecisionOutcome::Refused,
                    has_digipost,
                    at: now(),
                })
                .then(vec![Event::DecisionMade {
                    outcome: DecisionOutcome::Refused,
                    channel,
                    at: now(),
                }])
                .state();
            let app = state.application.unwrap();
            assert_eq!(app.status, Status::Decided);
            assert_eq!(app.decision.unwrap().channel, channel);
        }
    }

    #[test]
    fn caseworker_commands_refuse_citizen_actors() {
        for actor in [
            Actor::Citizen(owner()),
            Actor::Citizen(stranger()),
            Actor::Job("purge".into()),
            Actor::System,
        ] {
            for status in Status::ALL {
                for command in caseworker_commands(actor.clone()) {
                    given(history_up_to(status))
                        .when(command)
                        .then_error(Error::NotPermitted);
                }
            }
            // Not even a hint of whether the application exists.
            for command in caseworker_commands(actor.clone()) {
                given([]).when(command).then_error(Error::NotPermitted);
            }
        }
    }

    // --- fee and refund -----------------------------------------------------------

    #[test]
    fn fee_can_be_registered_any_time_after_submit() {
        for status in [
            Status::Submitted,
            Status::AppointmentBooked,
            Status::DocumentsReceived,
            Status::Decided,
        ] {
            let state = given(history_up_to(status))
                .when(Command::RegisterFeePaid {
                    actor: caseworker_actor(),
                    amount_nok: 6_300,
                    at: now(),
                })
                .then(vec![Event::FeePaid {
                    amount_nok: 6_300,
                    at: now(),
                }])
                .state();
            assert_eq!(state.status(), Some(status));
            assert!(state.application.unwrap().fee_paid());
        }
        given([created()])
            .when(Command::RegisterFeePaid {
                actor: caseworker_actor(),
                amount_nok: 6_300,
                at: now(),
            })
            .then_error(Error::WrongState {
                status: Status::Draft,
            });
    }

    #[test]
    fn fee_of_zero_or_registered_twice_is_refused() {
        given([created(), submitted()])
            .when(Command::RegisterFeePaid {
                actor: caseworker_actor(),
                amount_nok: 0,
                at: now(),
            })
            .then_error(Error::InvalidInput {
                field: "amountNok",
                reason: Reason::NotPositive,
            });
        given([created(), submitted(), fee_paid()])
            .when(Command::RegisterFeePaid {
                actor: caseworker_actor(),
                amount_nok: 6_300,
                at: now(),
            })
            .then_error(Error::FeeAlreadyRegistered {
                status: Status::Submitted,
            });
    }

    #[test]
    fn refund_after_a_paid_fee_is_recorded() {
        let state = given([created(), submitted(), fee_paid()])
            .when(Command::RequestRefund {
                actor: owner(),
                at: now(),
            })
            .then(vec![Event::RefundRequested { at: now() }])
            .state();
        assert!(state.application.unwrap().refund_requested());
    }

    #[test]
    fn refund_without_fee_is_refused() {
        let error = given([created(), submitted()])
            .when(Command::RequestRefund {
                actor: owner(),
                at: now(),
            })
            .error();
        assert_eq!(
            error,
            Error::RefundWithoutFee {
                status: Status::Submitted
            }
        );
        assert_eq!(error.code(), "WRONG_STATE");
        assert_eq!(error.status(), Some(Status::Submitted));
    }

    #[test]
    fn refund_twice_is_refused() {
        given([
            created(),
            submitted(),
            fee_paid(),
            Event::RefundRequested { at: now() },
        ])
        .when(Command::RequestRefund {
            actor: owner(),
            at: later(1),
        })
        .then_error(Error::RefundAlreadyRequested {
            status: Status::Submitted,
        });
    }

    // --- residence-card photo ---------------------------------------------------------

    #[test]
    fn photo_booking_after_a_grant_is_allowed_for_the_owner() {
        let state = given(history_up_to(Status::Decided))
            .when(book(
                owner(),
                AppointmentPurpose::ResidenceCardPhoto,
                later(24),
            ))
            .then(vec![Event::AppointmentBooked {
                appointment: appointment(AppointmentPurpose::ResidenceCardPhoto, later(24)),
                at: now(),
            }])
            .state();
        let app = state.application.unwrap();
        assert_eq!(app.status, Status::Decided);
        assert_eq!(
            app.current_appointment().map(|a| a.purpose),
            Some(AppointmentPurpose::ResidenceCardPhoto)
        );
    }

    #[test]
    fn photo_booking_before_a_decision_is_refused() {
        for status in [
            Status::Draft,
            Status::Submitted,
            Status::AppointmentBooked,
            Status::DocumentsReceived,
        ] {
            given(history_up_to(status))
                .when(book(
                    owner(),
                    AppointmentPurpose::ResidenceCardPhoto,
                    later(24),
                ))
                .then_error(Error::WrongState { status });
        }
    }

    #[test]
    fn photo_booking_after_a_refusal_is_refused() {
        let mut history = history_up_to(Status::DocumentsReceived);
        history.push(decided(DecisionOutcome::Refused));
        given(history)
            .when(book(
                owner(),
                AppointmentPurpose::ResidenceCardPhoto,
                later(24),
            ))
            .then_error(Error::WrongState {
                status: Status::Decided,
            });
    }

    #[test]
    fn photo_booking_by_another_identity_is_not_found() {
        for intruder in [stranger(), owner_via_idporten()] {
            given(history_up_to(Status::Decided))
                .when(book(
                    intruder,
                    AppointmentPurpose::ResidenceCardPhoto,
                    later(24),
                ))
                .then_error(Error::NotFound);
        }
    }

    #[test]
    fn photo_appointment_can_be_moved_and_cancelled_but_not_booked_twice() {
        let mut history = history_up_to(Status::Decided);
        history.push(Event::AppointmentBooked {
            appointment: appointment(AppointmentPurpose::ResidenceCardPhoto, later(24)),
            at: now(),
        });
        given(history.clone())
            .when(book(
                owner(),
                AppointmentPurpose::ResidenceCardPhoto,
                later(48),
            ))
            .then_error(Error::WrongState {
                status: Status::Decided,
            });
        given(history.clone())
            .when(Command::RescheduleAppointment {
                actor: owner(),
                appointment: appointment(AppointmentPurpose::ResidenceCardPhoto, later(48)),
                at: now(),
                latest_start: horizon_end(),
            })
            .events();
        let state = given(history)
            .when(Command::CancelAppointment {
                actor: owner(),
                at: now(),
            })
            .then(vec![Event::AppointmentCancelled {
                purpose: AppointmentPurpose::ResidenceCardPhoto,
                at: now(),
            }])
            .state();
        let app = state.application.unwrap();
        assert_eq!(app.status, Status::Decided);
        assert_eq!(app.photo_appointment, None);
    }

    // --- texts ----------------------------------------------------------------------------

    #[test]
    fn documents_to_bring_include_the_basics_and_the_kind_specific_ones() {
        for kind in Kind::ALL {
            let en = documents_to_bring(kind);
            let nb = documents_to_bring_nb(kind);
            assert_eq!(en.len(), nb.len(), "{kind:?}");
            assert!(en.iter().any(|d| d.contains("passport")));
            assert!(en.iter().any(|d| d.contains("cover letter")));
            assert!(nb.iter().any(|d| d.contains("Følgebrev")));
        }
        assert!(
            documents_to_bring(Kind::Work)
                .iter()
                .any(|d| d.contains("employment contract"))
        );
        assert!(
            documents_to_bring(Kind::Family)
                .iter()
                .any(|d| d.contains("marriage certificate"))
        );
        let study = documents_to_bring(Kind::Study);
        assert!(study.iter().any(|d| d.contains("admission")));
        assert!(study.iter().any(|d| d.contains("proof of funds")));
    }

    #[test]
    fn every_status_has_a_next_step_and_every_error_a_message() {
        for status in Status::ALL {
            assert!(!next_step_en(status).is_empty());
            assert!(!next_step_nb(status).is_empty());
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        let errors = [
            Error::NotFound,
            Error::WrongState {
                status: Status::Draft,
            },
            Error::LoginMethodNotAllowed,
            Error::InvalidInput {
                field: "applicant.birthDate",
                reason: Reason::InTheFuture,
            },
            Error::AppointmentInPast,
            Error::AppointmentBeyondHorizon {
                latest: horizon_end(),
            },
            Error::AlreadyExists,
            Error::NotPermitted,
            Error::RefundWithoutFee {
                status: Status::Submitted,
            },
            Error::RefundAlreadyRequested {
                status: Status::Submitted,
            },
            Error::FeeAlreadyRegistered {
                status: Status::Submitted,
            },
        ];
        for error in errors {
            assert!(!error.message_en().is_empty());
            assert!(!error.message_nb().is_empty());
            assert_ne!(error.message_en(), error.message_nb());
            if error.code() == "WRONG_STATE" {
                assert!(error.status().is_some(), "{error:?}");
            }
            if error.code() == "INVALID_INPUT" {
                assert!(error.field().is_some(), "{error:?}");
            }
        }
        assert_eq!(
            Error::InvalidInput {
                field: "applicant.birthDate",
                reason: Reason::InTheFuture
            }
            .message_nb(),
            "Fødselsdato: kan ikke være fram i tid."
        );
    }

    #[test]
    fn contract_names_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        for relation in Relation::ALL {
            assert_eq!(Relation::parse(relation.as_str()), Some(relation));
        }
        for point in MeetingPointKind::ALL {
            assert_eq!(MeetingPointKind::parse(point.as_str()), Some(point));
        }
        for purpose in AppointmentPurpose::ALL {
            assert_eq!(AppointmentPurpose::parse(purpose.as_str()), Some(purpose));
        }
        assert_eq!(Relation::Myself.as_str(), "SELF");
        assert_eq!(Kind::parse("work"), None);
    }

    // --- property: random command sequences -----------------------------------------

    fn arb_step() -> impl Strategy<Value = (u8, u8, u8, i64, bool)> {
        (0u8..10, 0u8..4, 0u8..2, -3i64..200, any::<bool>())
    }

    fn build_command(
        (which, who, purpose, hours, flag): (u8, u8, u8, i64, bool),
        at: DateTime<Utc>,
    ) -> Command {
        let citizen = match who {
            0 | 1 => owner(),
            2 => stranger(),
            _ => owner_via_idporten(),
        };
        let actor = match who {
            0 | 1 => caseworker_actor(),
            2 => Actor::Citizen(owner()),
            _ => Actor::System,
        };
        let purpose = AppointmentPurpose::ALL[purpose as usize];
        let appointment = appointment(purpose, at + Duration::hours(hours));
        match which {
            0 => Command::Create {
                id: app_id(),
                owner: citizen,
                kind: Kind::Study,
                relation: if flag {
                    Relation::Employee
                } else {
                    Relation::FamilyMember
                },
                applicant: applicant(),
                at,
            },
            1 => Command::Submit { actor: citizen, at },
            2 => Command::BookAppointment {
                actor: citizen,
                appointment,
                at,
                latest_start: horizon_end(),
            },
            3 => Command::RescheduleAppointment {
                actor: citizen,
                appointment,
                at,
                latest_start: horizon_end(),
            },
            4 => Command::CancelAppointment { actor: citizen, at },
            5 => Command::RequestRefund { actor: citizen, at },
            6 => Command::RegisterDocumentsReceived { actor, at },
            7 => Command::RegisterFeePaid {
                actor,
                amount_nok: hours.unsigned_abs() as u32,
                at,
            },
            _ => Command::MakeDecision {
                actor,
                outcome: if flag {
                    DecisionOutcome::Granted
                } else {
                    DecisionOutcome::Refused
                },
                has_digipost: hours % 2 == 0,
                at,
            },
        }
    }

    proptest! {
        #[test]
        fn random_command_sequences_follow_the_lifecycle(
            steps in prop::collection::vec(arb_step(), 0..60)
        ) {
            let mut state = State::default();
            let mut history = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                let at = now() + Duration::hours(i as i64);
                let command = build_command(step, at);
                let before = state.clone();
                let result = decide(&state, &command);
                prop_assert_eq!(&state, &before, "decide must not change the state");
                let Ok(events) = result else { continue };
                for event in &events {
                    let from = state.status();
                    evolve(&mut state, event);
                    let to = state.status().expect("an event always leaves an application");
                    prop_assert!(
                        Status::is_allowed_transition(from, to),
                        "{:?} -> {:?} by {:?}", from, to, event
                    );
                    history.push(event.clone());
                }
                // Only the owner's citizen commands ever succeed.
                if let Command::Submit { actor, .. }
                | Command::BookAppointment { actor, .. }
                | Command::RescheduleAppointment { actor, .. }
                | Command::CancelAppointment { actor, .. }
                | Command::RequestRefund { actor, .. } = &command
                {
                    prop_assert!(events.is_empty() || state.is_owned_by(actor));
                }
            }
            // Replaying the history gives the same state.
            let mut replayed = State::default();
            for event in &history {
                evolve(&mut replayed, event);
            }
            prop_assert_eq!(replayed, state);
        }
    }
}
