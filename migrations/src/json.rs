//! JSON rendering of today's domain events for other tools (exports, audit
//! reports): readable camelCase field names, RFC 3339 instants, hashes and
//! digests as lowercase hex, enum values as their contract names.
//!
//! Personal data (emails, person names, birth dates, nationalities) goes
//! through [`Disclosure`]: masked unless the caller shows it on purpose.
//! Credential verifiers (password hashes, code nonces and digests, session
//! token digests) are always redacted: no audit or export needs them.
//!
//! Written by hand per variant on purpose: domain types carry no serde
//! derives, and this shape is an output format, not a stored one (stored
//! shapes are the versioned postcard wire types). Adding a field here is
//! fine; renaming one breaks the tools that read exports.

use chrono::{DateTime, SecondsFormat, Utc};
use domain::LoginMethod;
use domain::account::{DeletionReason, Event as A};
use domain::application::{
    Applicant, Appointment, AppointmentPurpose, DecisionOutcome, DeliveryChannel, Event as P,
};
use domain::flow::{Event as F, FlowKind, IssuedCode};
use domain::legacy::{Event as L, LegacyOwner};
use domain::reservation::Event as R;
use serde_json::{Value, json};

use crate::DomainEvent;

/// Whether personal data appears in the rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    /// Every personal value becomes [`MASKED`].
    Masked,
    /// Personal values appear as stored.
    Shown,
}

/// What a masked personal value renders as.
pub const MASKED: &str = "[masked]";
/// What a credential verifier renders as, whatever the disclosure.
pub const REDACTED: &str = "[redacted]";

impl Disclosure {
    fn personal(self, value: &str) -> Value {
        match self {
            Disclosure::Masked => Value::String(MASKED.to_owned()),
            Disclosure::Shown => Value::String(value.to_owned()),
        }
    }
}

fn redacted() -> Value {
    Value::String(REDACTED.to_owned())
}

/// Render `event` as a JSON object of its fields (the event's type name is
/// not included: callers have it from the envelope), with personal data
/// shown. Credential verifiers are redacted.
pub fn to_json(event: &DomainEvent) -> Value {
    to_json_with(event, Disclosure::Shown)
}

/// Render `event` as [`to_json`] does, personal data shown or masked.
pub fn to_json_with(event: &DomainEvent, disclosure: Disclosure) -> Value {
    match event {
        DomainEvent::Account(e) => account(e, disclosure),
        DomainEvent::Flow(e) => flow(e, disclosure),
        DomainEvent::Reservation(e) => reservation(e),
        DomainEvent::Application(e) => application(e, disclosure),
        DomainEvent::Legacy(e) => legacy(e),
        DomainEvent::Address(e) => address(e),
    }
}

fn instant(at: &DateTime<Utc>) -> Value {
    Value::String(at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn hex(bytes: &[u8]) -> Value {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    Value::String(text)
}

fn login_method(method: LoginMethod) -> &'static str {
    match method {
        LoginMethod::Password => "PASSWORD",
        LoginMethod::IdPorten => "ID_PORTEN",
    }
}

fn account(event: &A, disclosure: Disclosure) -> Value {
    match event {
        A::PasswordAccountRegistered {
            email,
            name,
            password_phc: _,
            at,
        } => json!({
            "email": disclosure.personal(email.as_str()),
            "name": disclosure.personal(name),
            "passwordPhc": redacted(),
            "at": instant(at),
        }),
        A::IdPortenAccountCreated {
            subject,
            pid_key,
            name,
            at,
        } => json!({
            "subject": hex(subject),
            "pidKey": hex(pid_key),
            "name": disclosure.personal(name),
            "at": instant(at),
        }),
        A::LoginFailed { at } => json!({ "at": instant(at) }),
        A::SessionStarted { session, at } => json!({
            "session": {
                "id": session.id.to_string(),
                "tokenDigest": redacted(),
                "expiresAt": instant(&session.expires_at),
                "idleTimeoutSeconds": session.idle_timeout_seconds,
            },
            "at": instant(at),
        }),
        A::PasswordRehashed { at, .. } | A::PasswordChanged { at, .. } => {
            json!({ "passwordPhc": redacted(), "at": instant(at) })
        }
        A::SessionEnded { session, at } => json!({
            "session": session.to_string(),
            "at": instant(at),
        }),
        A::PurgeWarningIssued { deletion_after, at } => json!({
            "deletionAfter": instant(deletion_after),
            "at": instant(at),
        }),
        A::AccountDeleted { reason, at } => json!({
            "reason": match reason {
                DeletionReason::Inactivity => "INACTIVITY",
            },
            "at": instant(at),
        }),
    }
}

fn code(code: &IssuedCode) -> Value {
    json!({
        "nonce": redacted(),
        "digest": redacted(),
        "expiresAt": instant(&code.expires_at),
    })
}

fn flow(event: &F, disclosure: Disclosure) -> Value {
    match event {
        F::Started {
            kind,
            email,
            account,
            code: issued,
            at,
        } => json!({
            "kind": match kind {
                FlowKind::Registration => "REGISTRATION",
                FlowKind::Recovery => "RECOVERY",
            },
            "email": disclosure.personal(email.as_str()),
            "account": account.map(|id| id.to_string()),
            "code": code(issued),
            "at": instant(at),
        }),
        F::CodeResent { code: issued, at } => json!({
            "code": code(issued),
            "at": instant(at),
        }),
        F::CodeRejected { attempts_left, at } => json!({
            "attemptsLeft": attempts_left,
            "at": instant(at),
        }),
        F::CodeVerified { at } => json!({ "at": instant(at) }),
        F::Completed { account, at } => json!({
            "account": account.to_string(),
            "at": instant(at),
        }),
    }
}

fn reservation(event: &R) -> Value {
    match event {
        R::Reserved { account, flow } => json!({
            "account": account.to_string(),
            "flow": flow.map(|id| id.to_string()),
        }),
        R::Released { account } => json!({ "account": account.to_string() }),
    }
}

/// Device ids are never shown: with the server secret they would be a
/// browser's credential against throttling.
fn address(event: &domain::address::Event) -> Value {
    use domain::address::Event as Ad;
    match event {
        Ad::Mailed { at } => json!({ "at": instant(at) }),
        Ad::LoginFailed { device, at } | Ad::LoginSucceeded { device, at } => json!({
            "knownDevice": device.is_some(),
            "at": instant(at),
        }),
    }
}

fn purpose(purpose: AppointmentPurpose) -> &'static str {
    purpose.as_str()
}

fn applicant(applicant: &Applicant, disclosure: Disclosure) -> Value {
    let birth_date = applicant.birth_date.format("%Y-%m-%d").to_string();
    json!({
        "name": disclosure.personal(applicant.name.as_str()),
        "birthDate": disclosure.personal(&birth_date),
        "nationality": disclosure.personal(applicant.nationality.as_str()),
    })
}

fn appointment(appointment: &Appointment) -> Value {
    json!({
        "meetingPoint": appointment.meeting_point.as_str(),
        "location": appointment.location,
        "startsAt": instant(&appointment.starts_at),
        "purpose": purpose(appointment.purpose),
    })
}

fn application(event: &P, disclosure: Disclosure) -> Value {
    match event {
        P::Created {
            id,
            owner,
            owner_method,
            kind,
            relation,
            applicant: person,
            at,
        } => json!({
            "id": id.to_string(),
            "owner": owner.to_string(),
            "ownerMethod": login_method(*owner_method),
            "kind": kind.as_str(),
            "relation": relation.as_str(),
            "applicant": applicant(person, disclosure),
            "at": instant(at),
        }),
        P::Submitted { at } | P::DocumentsReceived { at } | P::RefundRequested { at } => {
            json!({ "at": instant(at) })
        }
        P::AppointmentBooked {
            appointment: booked,
            at,
        }
        | P::AppointmentRescheduled {
            appointment: booked,
            at,
        } => json!({
            "appointment": appointment(booked),
            "at": instant(at),
        }),
        P::AppointmentCancelled { purpose: p, at } => json!({
            "purpose": purpose(*p),
            "at": instant(at),
        }),
        P::FeePaid { amount_nok, at } => json!({
            "amountNok": amount_nok,
            "at": instant(at),
        }),
        P::DecisionMade {
            outcome,
            channel,
            at,
        } => json!({
            "outcome": match outcome {
                DecisionOutcome::Granted => "GRANTED",
                DecisionOutcome::Refused => "REFUSED",
            },
            "channel": match channel {
                DeliveryChannel::Digipost => "DIGIPOST",
                DeliveryChannel::Post => "POST",
            },
            "at": instant(at),
        }),
    }
}

fn legacy(event: &L) -> Value {
    match event {
        L::LegacyApplicationImported {
            record,
            imported_at,
        } => {
            let owner = match &record.owner {
                LegacyOwner::EmailHash(hash) => json!({ "emailHash": hex(hash) }),
                LegacyOwner::PidHash(hash) => json!({ "pidHash": hex(hash) }),
            };
            json!({
                "record": {
                    "reference": record.reference,
                    "submittedAt": instant(&record.submitted_at),
                    "kind": record.kind.as_str(),
                    "owner": owner,
                },
                "importedAt": instant(imported_at),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_renders_as_an_object_with_rfc3339_instants() {
        for (type_name, version, event) in crate::samples::all() {
            let value = to_json(&event);
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("{type_name} v{version} is not an object"));
            for (key, field) in object {
                if key == "at" || key.ends_with("At") || key == "deletionAfter" {
                    let text = field.as_str().expect("an instant is a string");
                    assert!(
                        DateTime::parse_from_rfc3339(text).is_ok(),
                        "{type_name}.{key} = {text} is not RFC 3339"
                    );
                }
            }
        }
    }

    #[test]
    fn application_created_reads_like_the_contract() {
        let created = crate::samples::all()
            .into_iter()
            .find(|(name, version, _)| *name == "ApplicationCreated" && *version == 2)
            .map(|(_, _, event)| event)
            .expect("a v2 sample");
        let value = to_json(&created);
        assert_eq!(value["kind"], "FAMILY");
        assert_eq!(value["relation"], "FAMILY_MEMBER");
        assert_eq!(value["applicant"]["birthDate"], "2019-05-17");
        let masked = to_json_with(&created, Disclosure::Masked);
        assert_eq!(masked["applicant"]["birthDate"], MASKED);
        assert_eq!(masked["kind"], "FAMILY");
        assert_eq!(value["at"], "2026-03-02T09:00:00Z");
    }

    #[test]
    fn masked_renderings_hold_no_personal_data_and_shown_ones_do() {
        let personal = [
            "kari.nordmann@example.no",
            "Kari Nordmann",
            "Ola Nordmann",
            "Nora Nordmann",
            "2019-05-17",
        ];
        let mut shown_seen = Vec::new();
        for (type_name, version, event) in crate::samples::all() {
            let masked = to_json_with(&event, Disclosure::Masked).to_string();
            for value in personal {
                assert!(
                    !masked.contains(value),
                    "{type_name} v{version} shows {value} masked"
                );
            }
            let shown = to_json_with(&event, Disclosure::Shown).to_string();
            shown_seen.extend(personal.iter().filter(|value| shown.contains(*value)));
        }
        for value in personal {
            assert!(shown_seen.contains(&value), "{value} never shown");
        }
    }

    #[test]
    fn credential_verifiers_are_always_redacted() {
        for (type_name, version, event) in crate::samples::all() {
            for disclosure in [Disclosure::Masked, Disclosure::Shown] {
                let text = to_json_with(&event, disclosure).to_string();
                assert!(!text.contains("$argon2id"), "{type_name} v{version}");
                assert!(!text.contains(&"22".repeat(32)), "{type_name} v{version}");
                assert!(!text.contains(&"44".repeat(32)), "{type_name} v{version}");
                assert!(!text.contains(&"11".repeat(16)), "{type_name} v{version}");
            }
        }
    }

    #[test]
    fn hashes_are_lowercase_hex() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
