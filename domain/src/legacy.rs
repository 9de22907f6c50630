//! Legacy applications: those submitted before 1 April 2022 in the old
//! portal. They are imported as records (one stream per reference), never
//! shown in "My applications", and every digital action on one is refused
//! with guidance on what to do instead.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::application::Kind;
use crate::{LoginIdentity, constant_time_eq, time};

/// Who owned the application in the old portal, as a keyed hash computed
/// outside the domain (the clear email or pid is never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegacyOwner {
    /// Keyed hash of the (normalised) email of the old portal's user.
    EmailHash([u8; 32]),
    /// Keyed hash of the national identity number (pid).
    PidHash([u8; 32]),
}

impl LegacyOwner {
    /// True when both are the same kind of key with the same hash, compared
    /// in constant time.
    pub fn matches(&self, other: &LegacyOwner) -> bool {
        match (self, other) {
            (LegacyOwner::EmailHash(a), LegacyOwner::EmailHash(b))
            | (LegacyOwner::PidHash(a), LegacyOwner::PidHash(b)) => constant_time_eq(a, b),
            _ => false,
        }
    }
}

/// Longest accepted reference, in characters.
pub const REFERENCE_MAX: usize = 64;

/// Parses an old portal reference: surrounding spaces are dropped; then 1 to
/// [`REFERENCE_MAX`] characters from `A-Z a-z 0-9 - / _ .`.
pub fn parse_reference(raw: &str) -> Result<String, Error> {
    let reference = raw.trim();
    let problem = if reference.is_empty() {
        ReferenceProblem::Empty
    } else if reference.chars().count() > REFERENCE_MAX {
        ReferenceProblem::TooLong
    } else if let Some(c) = reference
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '.')))
    {
        ReferenceProblem::ForbiddenCharacter(c)
    } else {
        return Ok(reference.to_owned());
    };
    Err(Error::InvalidReference(problem))
}

/// The name of the stream that holds the legacy record with this reference.
pub fn stream(reference: &str) -> String {
    format!("legacy-{reference}")
}

/// One application from the old portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRecord {
    /// The old portal's reference (see [`parse_reference`]).
    pub reference: String,
    /// Before [`time::legacy_cutoff`].
    pub submitted_at: DateTime<Utc>,
    pub kind: Kind,
    pub owner: LegacyOwner,
}

impl LegacyRecord {
    /// Builds a record, checking the reference and that it was submitted
    /// before the cutoff.
    pub fn new(
        reference: &str,
        submitted_at: DateTime<Utc>,
        kind: Kind,
        owner: LegacyOwner,
    ) -> Result<LegacyRecord, Error> {
        let record = LegacyRecord {
            reference: parse_reference(reference)?,
            submitted_at,
            kind,
            owner,
        };
        check_legacy(&record)?;
        Ok(record)
    }

    /// True when any of `keys` (the caller's keyed email and pid hashes) is
    /// this record's owner.
    pub fn is_owned_by(&self, keys: &[LegacyOwner]) -> bool {
        keys.iter().any(|k| k.matches(&self.owner))
    }
}

fn check_legacy(record: &LegacyRecord) -> Result<(), Error> {
    if parse_reference(&record.reference)? != record.reference {
        return Err(Error::InvalidReference(ReferenceProblem::SurroundingSpace));
    }
    if record.submitted_at >= time::legacy_cutoff() {
        return Err(Error::NotLegacy {
            submitted_at: record.submitted_at,
        });
    }
    Ok(())
}

/// The citizen asking for a digital action on a legacy application: the
/// login identity and the keyed hashes of its email and/or pid, computed
/// outside the domain with the same key as at import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyActor {
    pub identity: LoginIdentity,
    pub owner_keys: Vec<LegacyOwner>,
}

/// What is asked of one legacy stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Batch import of a record from the old portal.
    Import {
        record: LegacyRecord,
        at: DateTime<Utc>,
    },
    /// Book an appointment digitally (always refused for a legacy record).
    Book {
        actor: LegacyActor,
        at: DateTime<Utc>,
    },
    /// Upload documents digitally (always refused for a legacy record).
    UploadDocuments {
        actor: LegacyActor,
        at: DateTime<Utc>,
    },
    /// Ask for a refund digitally (always refused for a legacy record).
    RequestRefund {
        actor: LegacyActor,
        at: DateTime<Utc>,
    },
}

/// What happened to one legacy stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LegacyApplicationImported {
        record: LegacyRecord,
        imported_at: DateTime<Utc>,
    },
}

/// The state of one legacy stream; `Default` is "no record".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub record: Option<LegacyRecord>,
    pub imported_at: Option<DateTime<Utc>>,
}

/// The legacy record aggregate as a [`Decider`](crate::Decider):
/// [`decide`] and [`evolve`] over [`State`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Legacy;

crate::decider::module_decider!(Legacy);

/// Applies one event; never fails, checks nothing.
pub fn evolve(state: &mut State, event: &Event) {
    match event {
        Event::LegacyApplicationImported {
            record,
            imported_at,
        } => {
            state.record = Some(record.clone());
            state.imported_at = Some(*imported_at);
        }
    }
}

/// Checks a command against the state; never changes the state.
pub fn decide(state: &State, command: &Command) -> Result<Vec<Event>, Error> {
    match command {
        Command::Import { record, at } => {
            check_legacy(record)?;
            match &state.record {
                None => Ok(vec![Event::LegacyApplicationImported {
                    record: record.clone(),
                    imported_at: *at,
                }]),
                Some(existing) if existing == record => Ok(vec![]),
                Some(_) => Err(Error::ConflictingImport {
                    reference: record.reference.clone(),
                }),
            }
        }
        Command::Book { actor, .. }
        | Command::UploadDocuments { actor, .. }
        | Command::RequestRefund { actor, .. } => match &state.record {
            Some(record) if record.is_owned_by(&actor.owner_keys) => {
                Err(Error::LegacyApplication {
                    guidance: guidance_en(),
                })
            }
            // Missing, or someone else's: never a hint that it exists.
            _ => Err(Error::NotFound),
        },
    }
}

/// What to do instead of a digital action, in English.
pub fn guidance_en() -> &'static str {
    "This application was submitted before 1 April 2022 and is in UDI's old \
     application portal, so it cannot be handled digitally here. To get access \
     to the old case or to see its application summary, contact UDI in writing. \
     To book an appointment for it, contact the police directly. To send \
     documents for it, use UDI's separate service for submitting documents."
}

/// What to do instead of a digital action, in Norwegian (bokmål).
pub fn guidance_nb() -> &'static str {
    "Denne søknaden ble sendt inn før 1. april 2022 og ligger i UDIs gamle \
     søknadsportal, så den kan ikke behandles digitalt her. Hvis du vil få \
     tilgang til den gamle saken eller se søknadssammendraget, må du kontakte \
     UDI skriftlig. For å bestille time for denne søknaden må du kontakte \
     politiet direkte. For å sende dokumenter til den bruker du UDIs egen \
     tjeneste for innsending av dokumenter."
}

/// What is wrong with a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceProblem {
    Empty,
    TooLong,
    ForbiddenCharacter(char),
    /// A record built by hand with spaces around the reference.
    SurroundingSpace,
}

/// Why a legacy command was refused. [`Error::code`] gives the contract code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No legacy record with this reference for this caller.
    NotFound,
    /// Submitted on or after 1 April 2022: not a legacy application.
    NotLegacy { submitted_at: DateTime<Utc> },
    /// The reference was already imported with different content.
    ConflictingImport { reference: String },
    /// A digital action on a legacy application; `guidance` is
    /// [`guidance_en`] (use [`guidance_nb`] for Norwegian).
    LegacyApplication { guidance: &'static str },
    /// The reference is malformed.
    InvalidReference(ReferenceProblem),
}

impl Error {
    /// The contract's `extensions.code`. Import refusals are
    /// `INVALID_INPUT` on the offending field.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound => "NOT_FOUND",
            Error::LegacyApplication { .. } => "LEGACY_APPLICATION",
            Error::NotLegacy { .. }
            | Error::ConflictingImport { .. }
            | Error::InvalidReference(_) => "INVALID_INPUT",
        }
    }

    /// The `field` extension for `INVALID_INPUT`.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Error::NotLegacy { .. } => Some("submittedAt"),
            Error::ConflictingImport { .. } | Error::InvalidReference(_) => Some("reference"),
            _ => None,
        }
    }

    /// A message in English that a person understands.
    pub fn message_en(&self) -> String {
        match self {
            Error::NotFound => "We could not find that application.".into(),
            Error::NotLegacy { submitted_at } => format!(
                "The application was submitted on or after 1 April 2022 ({}), so it is not \
                 an application from the old portal.",
                submitted_at.to_rfc3339()
            ),
            Error::ConflictingImport { reference } => {
                format!("Reference {reference} was already imported with different content.")
            }
            Error::LegacyApplication { .. } => guidance_en().into(),
            Error::InvalidReference(problem) => match problem {
                ReferenceProblem::Empty => "The reference must not be empty.".into(),
                ReferenceProblem::TooLong => {
                    format!("The reference must be at most {REFERENCE_MAX} characters.")
                }
                ReferenceProblem::ForbiddenCharacter(c) => format!(
                    "The reference may only contain letters A-Z, digits and - / _ . (found {c:?})."
                ),
                ReferenceProblem::SurroundingSpace => {
                    "The reference must not start or end with spaces.".into()
                }
            },
        }
    }

    /// A message in Norwegian (bokmål) that a person understands.
    pub fn message_nb(&self) -> String {
        match self {
            Error::NotFound => "Vi fant ikke søknaden.".into(),
            Error::NotLegacy { submitted_at } => format!(
                "Søknaden ble sendt inn 1. april 2022 eller senere ({}), så den er ikke en \
                 søknad fra den gamle portalen.",
                submitted_at.to_rfc3339()
            ),
            Error::ConflictingImport { reference } => {
                format!("Referansen {reference} er allerede importert med annet innhold.")
            }
            Error::LegacyApplication { .. } => guidance_nb().into(),
            Error::InvalidReference(problem) => match problem {
                ReferenceProblem::Empty => "Referansen kan ikke være tom.".into(),
                ReferenceProblem::TooLong => {
                    format!("Referansen kan ha høyst {REFERENCE_MAX} tegn.")
                }
                ReferenceProblem::ForbiddenCharacter(c) => format!(
                    "Referansen kan bare inneholde bokstavene A-Z, sifre og - / _ . (fant {c:?})."
                ),
                ReferenceProblem::SurroundingSpace => {
                    "Referansen kan ikke begynne eller slutte med mellomrom.".into()
                }
            },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_en())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Given};
    use crate::{AccountId, LoginMethod};
    use uuid::Uuid;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn email_key() -> LegacyOwner {
        LegacyOwner::EmailHash([7; 32])
    }

    fn record() -> LegacyRecord {
        LegacyRecord::new(
            "2021/UDI-123_4.a",
            t("2021-06-01T10:00:00Z"),
            Kind::Work,
            email_key(),
        )
        .unwrap()
    }

    fn imported() -> Event {
        Event::LegacyApplicationImported {
            record: record(),
            imported_at: t("2025-01-01T00:00:00Z"),
        }
    }

    fn actor(keys: Vec<LegacyOwner>) -> LegacyActor {
        LegacyActor {
            identity: LoginIdentity {
                account: AccountId(Uuid::from_u128(1)),
                method: LoginMethod::Password,
            },
            owner_keys: keys,
        }
    }

    fn now() -> DateTime<Utc> {
        t("2025-03-10T09:00:00Z")
    }

    fn given(events: impl IntoIterator<Item = Event>) -> Given<Legacy> {
        testing::given(events)
    }

    fn digital_actions(actor: LegacyActor) -> Vec<Command> {
        vec![
            Command::Book {
                actor: actor.clone(),
                at: now(),
            },
            Command::UploadDocuments {
                actor: actor.clone(),
                at: now(),
            },
            Command::RequestRefund { actor, at: now() },
        ]
    }

    #[test]
    fn import_records_the_application() {
        let state = given([])
            .when(Command::Import {
                record: record(),
                at: now(),
            })
            .then(vec![Event::LegacyApplicationImported {
                record: record(),
                imported_at: now(),
            }])
            .state();
        assert_eq!(state.record, Some(record()));
        assert_eq!(state.imported_at, Some(now()));
    }

    #[test]
    fn legacy_import_after_cutoff_is_refused() {
        let cutoff = time::legacy_cutoff();
        for submitted_at in [cutoff, t("2022-04-01T10:00:00Z"), t("2024-01-01T00:00:00Z")] {
            let mut late = record();
            late.submitted_at = submitted_at;
            let error = given([])
                .when(Command::Import {
                    record: late,
                    at: now(),
                })
                .error();
            assert_eq!(error, Error::NotLegacy { submitted_at });
            assert!(error.message_en().contains("on or after 1 April 2022"));
            assert_eq!(error.field(), Some("submittedAt"));
        }
        // One second before midnight in Oslo is still legacy.
        let mut last = record();
        last.submitted_at = t("2022-03-31T21:59:59Z");
        given([])
            .when(Command::Import {
                record: last,
                at: now(),
            })
            .accepted();
        assert!(
            LegacyRecord::new("A-1", cutoff, Kind::Visit, email_key()).is_err(),
            "the constructor checks the cutoff too"
        );
    }

    #[test]
    fn legacy_import_is_idempotent_by_reference() {
        given([imported()])
            .when(Command::Import {
                record: record(),
                at: now(),
            })
            .then(vec![]);
        let mut changed = record();
        changed.kind = Kind::Study;
        given([imported()])
            .when(Command::Import {
                record: changed,
                at: now(),
            })
            .then_error(Error::ConflictingImport {
                reference: record().reference,
            });
        let mut other_owner = record();
        other_owner.owner = LegacyOwner::PidHash([7; 32]);
        assert!(matches!(
            given([imported()])
                .when(Command::Import {
                    record: other_owner,
                    at: now(),
                })
                .outcome(),
            Err(Error::ConflictingImport { .. })
        ));
    }

    #[test]
    fn legacy_booking_is_refused_with_guidance() {
        for command in digital_actions(actor(vec![LegacyOwner::PidHash([1; 32]), email_key()])) {
            let error = given([imported()]).when(command).error();
            assert_eq!(
                error,
                Error::LegacyApplication {
                    guidance: guidance_en()
                }
            );
            assert_eq!(error.code(), "LEGACY_APPLICATION");
        }
        let guidance = guidance_en();
        assert!(guidance.contains("in writing"));
        assert!(guidance.contains("contact the police directly"));
        assert!(guidance.contains("service for submitting documents"));
        let guidance = guidance_nb();
        assert!(guidance.contains("skriftlig"));
        assert!(guidance.contains("politiet direkte"));
        assert!(guidance.contains("innsending av dokumenter"));
    }

    #[test]
    fn legacy_action_on_a_missing_or_anothers_record_is_not_found() {
        for command in digital_actions(actor(vec![email_key()])) {
            given([]).when(command).then_error(Error::NotFound);
        }
        // Same hash bytes but a different kind of key is not the owner.
        for keys in [
            vec![],
            vec![LegacyOwner::EmailHash([8; 32])],
            vec![LegacyOwner::PidHash([7; 32])],
        ] {
            for command in digital_actions(actor(keys.clone())) {
                given([imported()])
                    .when(command)
                    .then_error(Error::NotFound);
            }
        }
    }

    #[test]
    fn references_are_checked() {
        assert_eq!(parse_reference(" AB-12/3_x.y ").unwrap(), "AB-12/3_x.y");
        assert_eq!(
            parse_reference("x".repeat(REFERENCE_MAX).as_str())
                .unwrap()
                .len(),
            REFERENCE_MAX
        );
        assert_eq!(
            parse_reference("  "),
            Err(Error::InvalidReference(ReferenceProblem::Empty))
        );
        assert_eq!(
            parse_reference(&"x".repeat(REFERENCE_MAX + 1)),
            Err(Error::InvalidReference(ReferenceProblem::TooLong))
        );
        for (raw, c) in [("AB 12", ' '), ("ÆØÅ", 'Æ'), ("a;b", ';'), ("a\nb", '\n')] {
            assert_eq!(
                parse_reference(raw),
                Err(Error::InvalidReference(
                    ReferenceProblem::ForbiddenCharacter(c)
                )),
                "{raw:?}"
            );
        }
        let mut padded = record();
        padded.reference = " A-1".into();
        given([])
            .when(Command::Import {
                record: padded,
                at: now(),
            })
            .then_error(Error::InvalidReference(ReferenceProblem::SurroundingSpace));
        assert_eq!(stream("A-1"), "legacy-A-1");
    }

    #[test]
    fn every_error_has_a_code_and_messages() {
        for error in [
            Error::NotFound,
            Error::NotLegacy {
                submitted_at: time::legacy_cutoff(),
            },
            Error::ConflictingImport {
                reference: "A-1".into(),
            },
            Error::LegacyApplication {
                guidance: guidance_en(),
            },
            Error::InvalidReference(ReferenceProblem::Empty),
        ] {
            assert!(!error.code().is_empty());
            assert!(!error.message_en().is_empty());
            assert_ne!(error.message_en(), error.message_nb());
            if error.code() == "INVALID_INPUT" {
                assert!(error.field().is_some());
            }
        }
    }
}
