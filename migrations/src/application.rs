//! Wire types of application events. `ApplicationCreated` shows the upcast
//! path: v1 (written before ID-porten logins existed) had no login method of
//! the owner; it decodes as v2 with `owner_method = Password`, the only
//! method there was.

use chrono::NaiveDate;
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, CountryCode, DecisionOutcome, DeliveryChannel,
    Event as P, Kind, MeetingPointKind, Relation,
};
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, LoginMethod};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{CodecError, DomainEvent, Encoded, from_bytes, instant, malformed, micros, to_bytes};

pub(crate) const TYPES: &[(&str, u16)] = &[
    ("ApplicationCreated", 2),
    ("ApplicationSubmitted", 1),
    ("AppointmentBooked", 1),
    ("AppointmentRescheduled", 1),
    ("AppointmentCancelled", 1),
    ("DocumentsReceived", 1),
    ("FeePaid", 1),
    ("RefundRequested", 1),
    ("DecisionMade", 1),
];

/// Versions that are still decoded but no longer written.
pub(crate) const OLD_TYPES: &[(&str, u16)] = &[("ApplicationCreated", 1)];

#[derive(Serialize, Deserialize, Clone, Copy)]
pub(crate) enum KindV1 {
    Work,
    Family,
    Study,
    Visit,
    Protection,
    Citizenship,
}

impl From<Kind> for KindV1 {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Work => KindV1::Work,
            Kind::Family => KindV1::Family,
            Kind::Study => KindV1::Study,
            Kind::Visit => KindV1::Visit,
            Kind::Protection => KindV1::Protection,
            Kind::Citizenship => KindV1::Citizenship,
        }
    }
}

impl From<KindV1> for Kind {
    fn from(k: KindV1) -> Self {
        match k {
            KindV1::Work => Kind::Work,
            KindV1::Family => Kind::Family,
            KindV1::Study => Kind::Study,
            KindV1::Visit => Kind::Visit,
            KindV1::Protection => Kind::Protection,
            KindV1::Citizenship => Kind::Citizenship,
        }
    }
}

#[derive(Serialize, Deserialize)]
enum RelationV1 {
    Myself,
    FamilyMember,
    Employee,
    Other,
}

#[derive(Serialize, Deserialize)]
enum LoginMethodV1 {
    Password,
    IdPorten,
}

#[derive(Serialize, Deserialize)]
enum MeetingPointV1 {
    Police,
    Sua,
    Embassy,
    VisaCentre,
}

#[derive(Serialize, Deserialize)]
enum PurposeV1 {
    Application,
    ResidenceCardPhoto,
}

#[derive(Serialize, Deserialize)]
struct ApplicantV1 {
    name: String,
    /// Days since 0001-01-01 (proleptic Gregorian, day 1).
    birth_date: i32,
    nationality: String,
}

#[derive(Serialize, Deserialize)]
struct ApplicationCreatedV1 {
    id: Uuid,
    owner: Uuid,
    kind: KindV1,
    relation: RelationV1,
    applicant: ApplicantV1,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct ApplicationCreatedV2 {
    id: Uuid,
    owner: Uuid,
    owner_method: LoginMethodV1,
    kind: KindV1,
    relation: RelationV1,
    applicant: ApplicantV1,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct AppointmentV1 {
    meeting_point: MeetingPointV1,
    location: String,
    starts_at: i64,
    purpose: PurposeV1,
}

#[derive(Serialize, Deserialize)]
struct AppointmentEventV1 {
    appointment: AppointmentV1,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct AppointmentCancelledV1 {
    purpose: PurposeV1,
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct AtV1 {
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct FeePaidV1 {
    amount_nok: u32,
    at: i64,
}

#[derive(Serialize, Deserialize)]
enum OutcomeV1 {
    Granted,
    Refused,
}

#[derive(Serialize, Deserialize)]
enum ChannelV1 {
    Digipost,
    Post,
}

#[derive(Serialize, Deserialize)]
struct DecisionMadeV1 {
    outcome: OutcomeV1,
    channel: ChannelV1,
    at: i64,
}

fn purpose_v1(p: AppointmentPurpose) -> PurposeV1 {
    match p {
        AppointmentPurpose::Application => PurposeV1::Application,
        AppointmentPurpose::ResidenceCardPhoto => PurposeV1::ResidenceCardPhoto,
    }
}

fn purpose(p: PurposeV1) -> AppointmentPurpose {
    match p {
        PurposeV1::Application => AppointmentPurpose::Application,
        PurposeV1::ResidenceCardPhoto => AppointmentPurpose::ResidenceCardPhoto,
    }
}

fn appointment_v1(a: &Appointment) -> AppointmentV1 {
    AppointmentV1 {
        meeting_point: match a.meeting_point {
            MeetingPointKind::Police => MeetingPointV1::Police,
            MeetingPointKind::Sua => MeetingPointV1::Sua,
            MeetingPointKind::Embassy => MeetingPointV1::Embassy,
            MeetingPointKind::VisaCentre => MeetingPointV1::VisaCentre,
        },
        location: a.location.clone(),
        starts_at: micros(&a.starts_at),
        purpose: purpose_v1(a.purpose),
    }
}

fn enc(type_name: &'static str, version: u16, payload: Vec<u8>) -> Encoded {
    Encoded {
        type_name,
        schema_version: version,
        payload,
    }
}

pub(crate) fn encode(event: &P) -> Encoded {
    match event {
        P::Created {
            id,
            owner,
            owner_method,
            kind,
            relation,
            applicant,
            at,
        } => enc(
            "ApplicationCreated",
            2,
            to_bytes(&ApplicationCreatedV2 {
                id: id.0,
                owner: owner.0,
                owner_method: match owner_method {
                    LoginMethod::Password => LoginMethodV1::Password,
                    LoginMethod::IdPorten => LoginMethodV1::IdPorten,
                },
                kind: (*kind).into(),
                relation: match relation {
                    Relation::Myself => RelationV1::Myself,
                    Relation::FamilyMember => RelationV1::FamilyMember,
                    Relation::Employee => RelationV1::Employee,
                    Relation::Other => RelationV1::Other,
                },
                applicant: ApplicantV1 {
                    name: applicant.name.as_str().to_owned(),
                    birth_date: chrono::Datelike::num_days_from_ce(&applicant.birth_date),
                    nationality: applicant.nationality.as_str().to_owned(),
                },
                at: micros(at),
            }),
        ),
        P::Submitted { at } => enc(
            "ApplicationSubmitted",
            1,
            to_bytes(&AtV1 { at: micros(at) }),
        ),
        P::AppointmentBooked { appointment, at } => enc(
            "AppointmentBooked",
            1,
            to_bytes(&AppointmentEventV1 {
                appointment: appointment_v1(appointment),
                at: micros(at),
            }),
        ),
        P::AppointmentRescheduled { appointment, at } => enc(
            "AppointmentRescheduled",
            1,
            to_bytes(&AppointmentEventV1 {
                appointment: appointment_v1(appointment),
                at: micros(at),
            }),
        ),
        P::AppointmentCancelled { purpose, at } => enc(
            "AppointmentCancelled",
            1,
            to_bytes(&AppointmentCancelledV1 {
                purpose: purpose_v1(*purpose),
                at: micros(at),
            }),
        ),
        P::DocumentsReceived { at } => {
            enc("DocumentsReceived", 1, to_bytes(&AtV1 { at: micros(at) }))
        }
        P::FeePaid { amount_nok, at } => enc(
            "FeePaid",
            1,
            to_bytes(&FeePaidV1 {
                amount_nok: *amount_nok,
                at: micros(at),
            }),
        ),
        P::RefundRequested { at } => enc("RefundRequested", 1, to_bytes(&AtV1 { at: micros(at) })),
        P::DecisionMade {
            outcome,
            channel,
            at,
        } => enc(
            "DecisionMade",
            1,
            to_bytes(&DecisionMadeV1 {
                outcome: match outcome {
                    DecisionOutcome::Granted => OutcomeV1::Granted,
                    DecisionOutcome::Refused => OutcomeV1::Refused,
                },
                channel: match channel {
                    DeliveryChannel::Digipost => ChannelV1::Digipost,
                    DeliveryChannel::Post => ChannelV1::Post,
                },
                at: micros(at),
            }),
        ),
    }
}

pub(crate) fn decode(
    type_name: &str,
    version: u16,
    p: &[u8],
) -> Option<Result<DomainEvent, CodecError>> {
    let known = TYPES.iter().chain(OLD_TYPES).any(|(t, _)| *t == type_name);
    if !known {
        return None;
    }
    Some(decode_known(type_name, version, p).map(DomainEvent::Application))
}

fn applicant(ty: &str, version: u16, w: ApplicantV1) -> Result<Applicant, CodecError> {
    let bad = |reason: String| malformed(ty, version, reason);
    Ok(Applicant {
        name: PersonName::from_recorded(&w.name).map_err(|e| bad(e.to_string()))?,
        birth_date: NaiveDate::from_num_days_from_ce_opt(w.birth_date)
            .ok_or_else(|| bad("birth date out of range".into()))?,
        nationality: CountryCode::parse(&w.nationality).map_err(|e| bad(e.to_string()))?,
    })
}

fn relation(r: RelationV1) -> Relation {
    match r {
        RelationV1::Myself => Relation::Myself,
        RelationV1::FamilyMember => Relation::FamilyMember,
        RelationV1::Employee => Relation::Employee,
        RelationV1::Other => Relation::Other,
    }
}

fn appointment(ty: &str, version: u16, w: AppointmentV1) -> Result<Appointment, CodecError> {
    Ok(Appointment {
        meeting_point: match w.meeting_point {
            MeetingPointV1::Police => MeetingPointKind::Police,
            MeetingPointV1::Sua => MeetingPointKind::Sua,
            MeetingPointV1::Embassy => MeetingPointKind::Embassy,
            MeetingPointV1::VisaCentre => MeetingPointKind::VisaCentre,
        },
        location: w.location,
        starts_at: instant(ty, version, w.starts_at)?,
        purpose: purpose(w.purpose),
    })
}

fn decode_known(ty: &str, version: u16, p: &[u8]) -> Result<P, CodecError> {
    let t = |us: i64| instant(ty, version, us);
    Ok(match (ty, version) {
        ("ApplicationCreated", 1) => {
            let w: ApplicationCreatedV1 = from_bytes(ty, version, p)?;
            P::Created {
                id: ApplicationId(w.id),
                owner: AccountId(w.owner),
                owner_method: LoginMethod::Password,
                kind: w.kind.into(),
                relation: relation(w.relation),
                applicant: applicant(ty, version, w.applicant)?,
                at: t(w.at)?,
            }
        }
        ("ApplicationCreated", 2) => {
            let w: ApplicationCreatedV2 = from_bytes(ty, version, p)?;
            P::Created {
                id: ApplicationId(w.id),
                owner: AccountId(w.owner),
                owner_method: match w.owner_method {
                    LoginMethodV1::Password => LoginMethod::Password,
                    LoginMethodV1::IdPorten => LoginMethod::IdPorten,
                },
                kind: w.kind.into(),
                relation: relation(w.relation),
                applicant: applicant(ty, version, w.applicant)?,
                at: t(w.at)?,
            }
        }
        ("ApplicationSubmitted", 1) => P::Submitted {
            at: t(from_bytes::<AtV1>(ty, version, p)?.at)?,
        },
        ("AppointmentBooked", 1) => {
            let w: AppointmentEventV1 = from_bytes(ty, version, p)?;
            P::AppointmentBooked {
                appointment: appointment(ty, version, w.appointment)?,
                at: t(w.at)?,
            }
        }
        ("AppointmentRescheduled", 1) => {
            let w: AppointmentEventV1 = from_bytes(ty, version, p)?;
            P::AppointmentRescheduled {
                appointment: appointment(ty, version, w.appointment)?,
                at: t(w.at)?,
            }
        }
        ("AppointmentCancelled", 1) => {
            let w: AppointmentCancelledV1 = from_bytes(ty, version, p)?;
            P::AppointmentCancelled {
                purpose: purpose(w.purpose),
                at: t(w.at)?,
            }
        }
        ("DocumentsReceived", 1) => P::DocumentsReceived {
            at: t(from_bytes::<AtV1>(ty, version, p)?.at)?,
        },
        ("FeePaid", 1) => {
            let w: FeePaidV1 = from_bytes(ty, version, p)?;
            P::FeePaid {
                amount_nok: w.amount_nok,
                at: t(w.at)?,
            }
        }
        ("RefundRequested", 1) => P::RefundRequested {
            at: t(from_bytes::<AtV1>(ty, version, p)?.at)?,
        },
        ("DecisionMade", 1) => {
            let w: DecisionMadeV1 = from_bytes(ty, version, p)?;
            P::DecisionMade {
                outcome: match w.outcome {
                    OutcomeV1::Granted => DecisionOutcome::Granted,
                    OutcomeV1::Refused => DecisionOutcome::Refused,
                },
                channel: match w.channel {
                    ChannelV1::Digipost => DeliveryChannel::Digipost,
                    ChannelV1::Post => DeliveryChannel::Post,
                },
                at: t(w.at)?,
            }
        }
        _ => {
            return Err(CodecError::UnknownVersion {
                type_name: ty.to_owned(),
                version,
            });
        }
    })
}

/// The bytes a v1 `ApplicationCreated` had (for the golden vector of the
/// old version; nothing writes v1 any more).
pub fn created_v1_bytes(event: &P) -> Option<Vec<u8>> {
    let P::Created {
        id,
        owner,
        kind,
        relation,
        applicant,
        at,
        ..
    } = event
    else {
        return None;
    };
    Some(to_bytes(&ApplicationCreatedV1 {
        id: id.0,
        owner: owner.0,
        kind: (*kind).into(),
        relation: match relation {
            Relation::Myself => RelationV1::Myself,
            Relation::FamilyMember => RelationV1::FamilyMember,
            Relation::Employee => RelationV1::Employee,
            Relation::Other => RelationV1::Other,
        },
        applicant: ApplicantV1 {
            name: applicant.name.as_str().to_owned(),
            birth_date: chrono::Datelike::num_days_from_ce(&applicant.birth_date),
            nationality: applicant.nationality.as_str().to_owned(),
        },
        at: micros(at),
    }))
}
