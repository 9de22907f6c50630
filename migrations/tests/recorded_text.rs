//! Text recorded before the input rules refused direction overrides,
//! invisible-only values and markup still decodes: the rules apply where a
//! person types, never where history is read back.

use chrono::{DateTime, NaiveDate, Utc};
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, CountryCode, Event, Kind, MeetingPointKind,
    Relation,
};
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, LoginMethod};
use migrations::DomainEvent;
use uuid::Uuid;

/// Values the input rules refuse today.
const REFUSED_TODAY: [&str; 3] = ["Bob\u{202E}gnp.exe", "\u{200b}\u{feff}", "<b>x</b>"];

fn at() -> DateTime<Utc> {
    "2025-01-02T09:00:00Z".parse().unwrap()
}

#[track_caller]
fn round_trip(event: Event) {
    let event = DomainEvent::Application(event);
    let encoded = migrations::encode(&event);
    let decoded = migrations::decode(encoded.type_name, encoded.schema_version, &encoded.payload);
    assert_eq!(decoded, Ok(event.clone()), "{}", encoded.type_name);

    if let Some(v1) = migrations::samples::old_version_bytes(encoded.type_name, 1, &event) {
        let upcast = migrations::decode(encoded.type_name, 1, &v1).expect("v1 decodes");
        assert_eq!(upcast, event, "{} v1", encoded.type_name);
    }
}

#[test]
fn an_applicant_name_refused_today_still_decodes() {
    for raw in REFUSED_TODAY {
        assert!(
            PersonName::parse(raw).is_err(),
            "{raw:?} is refused as input"
        );
        round_trip(Event::Created {
            id: ApplicationId(Uuid::from_u128(7)),
            owner: AccountId(Uuid::from_u128(8)),
            owner_method: LoginMethod::Password,
            kind: Kind::Work,
            relation: Relation::Myself,
            applicant: Applicant {
                name: PersonName::from_recorded(raw).unwrap(),
                birth_date: NaiveDate::from_ymd_opt(1990, 5, 17).unwrap(),
                nationality: CountryCode::parse("NOR").unwrap(),
            },
            at: at(),
        });
    }
}

#[test]
fn a_location_refused_today_still_decodes() {
    for raw in REFUSED_TODAY {
        let appointment = Appointment {
            meeting_point: MeetingPointKind::Police,
            location: raw.to_owned(),
            starts_at: "9999-01-01T10:00:00Z".parse().unwrap(),
            purpose: AppointmentPurpose::Application,
        };
        round_trip(Event::AppointmentBooked {
            appointment: appointment.clone(),
            at: at(),
        });
        round_trip(Event::AppointmentRescheduled {
            appointment,
            at: at(),
        });
    }
}
