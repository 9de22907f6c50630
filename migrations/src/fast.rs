//! Hand decoders of the frequent event types, read straight from the
//! postcard bytes: no serde visitor per field or per byte of an array, no
//! intermediate owned strings. They are strict: anything they are not sure
//! of (a malformed or unusual payload, a type or version they do not know)
//! gives `None`, and [`crate::decode`] then takes the serde path, which
//! decides and words the error. So both paths agree on every input (held by
//! the tests in `tests.rs`).

use chrono::{DateTime, NaiveDate, Utc};
use domain::account::{Event as A, NewSession};
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, CountryCode, DecisionOutcome, DeliveryChannel,
    Event as P, Kind, MeetingPointKind, Relation,
};
use domain::flow::{Event as F, FlowKind, IssuedCode};
use domain::reservation::Event as R;
use domain::text::PersonName;
use domain::{AccountId, ApplicationId, Email, FlowId, LoginMethod, SessionId};
use uuid::Uuid;

use crate::DomainEvent;
use crate::wire::{self, DayCache};

thread_local! {
    /// The day of the last instant decoded on this thread.
    static LAST_DAY: std::cell::Cell<DayCache> = const { std::cell::Cell::new(DayCache::EPOCH) };
}

/// `DateTime::from_timestamp_micros(micros)`, with the date of the day
/// last met taken from [`LAST_DAY`].
#[inline]
fn instant_micros(micros: i64) -> Option<DateTime<Utc>> {
    let mut days = LAST_DAY.get();
    let instant = days.instant_micros(micros);
    LAST_DAY.set(days);
    instant
}

/// A cursor over postcard bytes, read through [`wire`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    #[inline]
    fn byte(&mut self) -> Option<u8> {
        wire::read_u8(&mut self.0)
    }

    #[inline]
    fn u32(&mut self) -> Option<u32> {
        wire::read_u32(&mut self.0)
    }

    #[inline]
    fn i32(&mut self) -> Option<i32> {
        wire::read_i32(&mut self.0)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        wire::read_array(&mut self.0)
    }

    #[inline]
    fn uuid(&mut self) -> Option<Uuid> {
        (wire::read_u64(&mut self.0)? == 16).then_some(())?;
        Some(Uuid::from_bytes(self.array()?))
    }

    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        wire::read_str(&mut self.0)
    }

    /// An enum variant index below `n`.
    #[inline]
    fn variant(&mut self, n: u32) -> Option<u32> {
        self.u32().filter(|v| *v < n)
    }

    #[inline]
    fn option<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => read(self).map(Some),
            _ => None,
        }
    }

    #[inline]
    fn instant(&mut self) -> Option<DateTime<Utc>> {
        instant_micros(wire::read_i64(&mut self.0)?)
    }

    /// The value, if every byte was read.
    #[inline]
    fn end<T>(self, value: T) -> Option<T> {
        self.0.is_empty().then_some(value)
    }
}

/// The event, when this module knows the type and is sure of the bytes.
pub(crate) fn decode(type_name: &str, version: u16, payload: &[u8]) -> Option<DomainEvent> {
    let r = &mut Reader(payload);
    let event = match (type_name, version) {
        ("SessionStarted", 1) => DomainEvent::Account(A::SessionStarted {
            session: NewSession {
                id: SessionId(r.uuid()?),
                token_digest: r.array()?,
                expires_at: r.instant()?,
                idle_timeout_seconds: r.u32()?,
            },
            at: r.instant()?,
        }),
        ("SessionEnded", 1) => DomainEvent::Account(A::SessionEnded {
            session: SessionId(r.uuid()?),
            at: r.instant()?,
        }),
        ("LoginFailed", 1) => DomainEvent::Account(A::LoginFailed { at: r.instant()? }),
        ("PasswordAccountRegistered", 1) => {
            let email = Email::from_recorded(r.str()?).ok()?;
            DomainEvent::Account(A::PasswordAccountRegistered {
                email,
                name: r.str()?.to_owned(),
                password_phc: r.str()?.to_owned(),
                at: r.instant()?,
            })
        }
        ("IdPortenAccountCreated", 1) => DomainEvent::Account(A::IdPortenAccountCreated {
            subject: r.array()?,
            pid_key: r.array()?,
            name: r.str()?.to_owned(),
            at: r.instant()?,
        }),
        ("FlowStarted", 1) => {
            let kind = match r.variant(2)? {
                0 => FlowKind::Registration,
                _ => FlowKind::Recovery,
            };
            DomainEvent::Flow(F::Started {
                kind,
                email: Email::from_recorded(r.str()?).ok()?,
                account: r.option(Reader::uuid)?.map(AccountId),
                code: IssuedCode {
                    nonce: r.array()?,
                    digest: r.array()?,
                    expires_at: r.instant()?,
                },
                at: r.instant()?,
            })
        }
        ("CodeVerified", 1) => DomainEvent::Flow(F::CodeVerified { at: r.instant()? }),
        ("FlowCompleted", 1) => DomainEvent::Flow(F::Completed {
            account: AccountId(r.uuid()?),
            at: r.instant()?,
        }),
        ("IdentityReserved", 1) => DomainEvent::Reservation(R::Reserved {
            account: AccountId(r.uuid()?),
            flow: r.option(Reader::uuid)?.map(FlowId),
        }),
        ("IdentityReleased", 1) => DomainEvent::Reservation(R::Released {
            account: AccountId(r.uuid()?),
        }),
        ("ApplicationCreated", 2) => DomainEvent::Application(P::Created {
            id: ApplicationId(r.uuid()?),
            owner: AccountId(r.uuid()?),
            owner_method: match r.variant(2)? {
                0 => LoginMethod::Password,
                _ => LoginMethod::IdPorten,
            },
            kind: match r.variant(6)? {
                0 => Kind::Work,
                1 => Kind::Family,
                2 => Kind::Study,
                3 => Kind::Visit,
                4 => Kind::Protection,
                _ => Kind::Citizenship,
            },
            relation: match r.variant(4)? {
                0 => Relation::Myself,
                1 => Relation::FamilyMember,
                2 => Relation::Employee,
                _ => Relation::Other,
            },
            applicant: Applicant {
                name: PersonName::from_recorded(r.str()?).ok()?,
                birth_date: NaiveDate::from_num_days_from_ce_opt(r.i32()?)?,
                nationality: CountryCode::parse(r.str()?).ok()?,
            },
            at: r.instant()?,
        }),
        ("ApplicationSubmitted", 1) => DomainEvent::Application(P::Submitted { at: r.instant()? }),
        ("DocumentsReceived", 1) => {
            DomainEvent::Application(P::DocumentsReceived { at: r.instant()? })
        }
        ("RefundRequested", 1) => DomainEvent::Application(P::RefundRequested { at: r.instant()? }),
        ("FeePaid", 1) => DomainEvent::Application(P::FeePaid {
            amount_nok: r.u32()?,
            at: r.instant()?,
        }),
        ("AppointmentBooked", 1) => DomainEvent::Application(P::AppointmentBooked {
            appointment: appointment(r)?,
            at: r.instant()?,
        }),
        ("AppointmentRescheduled", 1) => DomainEvent::Application(P::AppointmentRescheduled {
            appointment: appointment(r)?,
            at: r.instant()?,
        }),
        ("AppointmentCancelled", 1) => DomainEvent::Application(P::AppointmentCancelled {
            purpose: purpose(r)?,
            at: r.instant()?,
        }),
        ("DecisionMade", 1) => DomainEvent::Application(P::DecisionMade {
            outcome: match r.variant(2)? {
                0 => DecisionOutcome::Granted,
                _ => DecisionOutcome::Refused,
            },
            channel: match r.variant(2)? {
                0 => DeliveryChannel::Digipost,
                _ => DeliveryChannel::Post,
            },
            at: r.instant()?,
        }),
        _ => return None,
    };
    Reader(r.0).end(event)
}

fn purpose(r: &mut Reader) -> Option<AppointmentPurpose> {
    Some(match r.variant(2)? {
        0 => AppointmentPurpose::Application,
        _ => AppointmentPurpose::ResidenceCardPhoto,
    })
}

fn appointment(r: &mut Reader) -> Option<Appointment> {
    Some(Appointment {
        meeting_point: match r.variant(4)? {
            0 => MeetingPointKind::Police,
            1 => MeetingPointKind::Sua,
            2 => MeetingPointKind::Embassy,
            _ => MeetingPointKind::VisaCentre,
        },
        location: r.str()?.to_owned(),
        starts_at: r.instant()?,
        purpose: purpose(r)?,
    })
}

#[cfg(test)]
mod day_cache_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn instants_through_the_day_cache_are_chronos(
            micros in proptest::collection::vec(
                prop_oneof![
                    any::<i64>(),
                    -8_300_000_000_000_000_000i64..8_300_000_000_000_000_000,
                    1_700_000_000_000_000i64..1_700_300_000_000_000,
                ],
                1..40,
            ),
        ) {
            for micros in micros {
                prop_assert_eq!(instant_micros(micros), DateTime::from_timestamp_micros(micros));
            }
        }
    }

    #[test]
    fn the_day_before_and_after_a_cached_one_are_their_own() {
        let day = 86_400_000_000i64;
        for micros in [
            0,
            day - 1,
            day,
            -1,
            -day,
            -day - 1,
            5 * day + 3,
            5 * day - 3,
        ] {
            assert_eq!(
                instant_micros(micros),
                DateTime::from_timestamp_micros(micros),
                "{micros}"
            );
        }
    }
}
