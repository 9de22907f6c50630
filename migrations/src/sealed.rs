//! Personal data sealed under per-subject data keys (crypto-shredding).
//!
//! An event that carries an email or a person's name is stored as an
//! envelope: the event with those fields replaced by [`domain::ERASED`]
//! (the "inner" payload, at the type's usual schema version), plus the
//! fields themselves encrypted under the data key of their subject. The
//! schema version of such an event has [`SEALED`] set. Destroying the
//! subject's keys erases the fields for good while the log stays as it was:
//! the inner event still decodes, with the fields reading as erased.
//!
//! Layout of a sealed payload: the key id (16 bytes), the sealed fields'
//! length (u32, little-endian), the sealed fields, then the inner payload.
//! What is sealed is the postcard encoding of the fields' strings, in the
//! event's field order. The cipher itself lives with the keys (`keys`).

use domain::account::Event as A;
use domain::flow::Event as F;
use domain::{ERASED, Email};
use uuid::Uuid;

use crate::{CodecError, DomainEvent, Encoded};

/// Set in the schema version of an event stored as a sealed envelope.
pub const SEALED: u16 = 0x8000;

/// Whose personal data a sealed event carries: what its data key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The person behind an email address (a password account, its flows).
    Email(&'a Email),
    /// An ID-porten person, by the keyed digest of their subject.
    IdPorten(&'a [u8; 32]),
}

/// Seals personal fields: the server's key ring.
pub trait Sealer {
    /// Encrypt `plaintext` under the current data key of `subject`, bound
    /// to `event_id`; returns the key's id and the ciphertext.
    fn seal(
        &self,
        subject: Subject<'_>,
        event_id: Uuid,
        plaintext: &[u8],
    ) -> Result<(Uuid, Vec<u8>), String>;
}

/// Opens sealed fields.
pub trait Opener {
    /// Decrypt `ciphertext`, sealed under data key `key` for `event_id`.
    fn open(&self, key: Uuid, event_id: Uuid, ciphertext: &[u8]) -> Opened;
}

/// What [`Opener::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The fields, decrypted.
    Clear(Vec<u8>),
    /// The key was destroyed: the fields are erased.
    Destroyed,
    /// The opener does not hold the key (it has not been loaded).
    Unknown,
    /// The key is there but the ciphertext does not open under it.
    Invalid,
}

/// The subject and personal fields of `event`, if it carries any.
pub fn personal(event: &DomainEvent) -> Option<(Subject<'_>, Vec<&str>)> {
    match event {
        DomainEvent::Account(A::PasswordAccountRegistered { email, name, .. }) => {
            Some((Subject::Email(email), vec![email.as_str(), name.as_str()]))
        }
        DomainEvent::Account(A::IdPortenAccountCreated { subject, name, .. }) => {
            Some((Subject::IdPorten(subject), vec![name.as_str()]))
        }
        DomainEvent::Flow(F::Started { email, .. }) => {
            Some((Subject::Email(email), vec![email.as_str()]))
        }
        _ => None,
    }
}

/// `event` with its personal fields read as erased: what a sealed event
/// decodes to once its data key is destroyed.
pub fn redact(event: &DomainEvent) -> DomainEvent {
    let mut event = event.clone();
    match &mut event {
        DomainEvent::Account(A::PasswordAccountRegistered { email, name, .. }) => {
            *email = Email::erased();
            *name = ERASED.to_owned();
        }
        DomainEvent::Account(A::IdPortenAccountCreated { name, .. }) => *name = ERASED.to_owned(),
        DomainEvent::Flow(F::Started { email, .. }) => *email = Email::erased(),
        _ => {}
    }
    event
}

/// Put the opened `fields` back into a redacted `event`.
fn restore(event: &mut DomainEvent, fields: Vec<String>) -> Result<(), String> {
    let wrong = || "the sealed fields do not fit the event".to_owned();
    let mut fields = fields.into_iter();
    match event {
        DomainEvent::Account(A::PasswordAccountRegistered {
            email: stored,
            name,
            ..
        }) => {
            // Sealed by this system after parsing, authenticated on opening.
            *stored = Email::from_authenticated(fields.next().ok_or_else(wrong)?);
            *name = fields.next().ok_or_else(wrong)?;
        }
        DomainEvent::Account(A::IdPortenAccountCreated { name, .. }) => {
            *name = fields.next().ok_or_else(wrong)?;
        }
        DomainEvent::Flow(F::Started { email: stored, .. }) => {
            *stored = Email::from_authenticated(fields.next().ok_or_else(wrong)?);
        }
        _ => return Err(wrong()),
    }
    if fields.next().is_some() {
        return Err(wrong());
    }
    Ok(())
}

/// Encode `event` (to be stored with id `event_id`): sealed under its
/// subject's data key when it carries personal data, as [`crate::encode`]
/// otherwise.
pub fn encode_sealed(
    event: &DomainEvent,
    event_id: Uuid,
    sealer: &dyn Sealer,
) -> Result<Encoded, String> {
    let Some((subject, fields)) = personal(event) else {
        return Ok(crate::encode(event));
    };
    let plaintext = postcard::to_allocvec(&fields).map_err(|e| e.to_string())?;
    let (key, sealed) = sealer.seal(subject, event_id, &plaintext)?;
    let inner = crate::encode(&redact(event));
    let sealed_len = u32::try_from(sealed.len()).map_err(|_| "sealed fields too large")?;
    let mut payload = Vec::with_capacity(20 + sealed.len() + inner.payload.len());
    payload.extend_from_slice(key.as_bytes());
    payload.extend_from_slice(&sealed_len.to_le_bytes());
    payload.extend_from_slice(&sealed);
    payload.extend_from_slice(&inner.payload);
    Ok(Encoded {
        type_name: inner.type_name,
        schema_version: inner.schema_version | SEALED,
        payload,
    })
}

/// A sealed payload's parts.
struct Envelope<'a> {
    key: Uuid,
    sealed: &'a [u8],
    inner: &'a [u8],
}

fn envelope(payload: &[u8]) -> Option<Envelope<'_>> {
    let key = Uuid::from_slice(payload.get(..16)?).ok()?;
    let len = u32::from_le_bytes(payload.get(16..20)?.try_into().ok()?) as usize;
    let end = 20usize.checked_add(len)?;
    Some(Envelope {
        key,
        sealed: payload.get(20..end)?,
        inner: payload.get(end..)?,
    })
}

/// The data key a stored event is sealed under (`None` when it is not
/// sealed, or its envelope is malformed).
pub fn sealed_key(version: u16, payload: &[u8]) -> Option<Uuid> {
    if version & SEALED == 0 {
        return None;
    }
    envelope(payload).map(|envelope| envelope.key)
}

/// Decode stored bytes, opening sealed fields with `opener`. Without an
/// opener (or when the key was destroyed) sealed fields read as erased; a
/// key the opener does not hold is [`CodecError::KeyNotLoaded`].
pub fn decode_opened(
    type_name: &str,
    version: u16,
    payload: &[u8],
    event_id: Uuid,
    opener: Option<&dyn Opener>,
) -> Result<DomainEvent, CodecError> {
    if version & SEALED == 0 {
        return crate::decode(type_name, version, payload);
    }
    let malformed = |reason: &str| CodecError::Malformed {
        type_name: type_name.to_owned(),
        version,
        reason: reason.to_owned(),
    };
    let inner = |bytes: &[u8]| {
        crate::decode(type_name, version & !SEALED, bytes).map_err(|error| match error {
            CodecError::Malformed { reason, .. } => malformed(&reason),
            CodecError::UnknownVersion { .. } => CodecError::UnknownVersion {
                type_name: type_name.to_owned(),
                version,
            },
            other => other,
        })
    };
    let Some(envelope) = envelope(payload) else {
        // An unknown type or version says so before a cut envelope does.
        inner(&[])?;
        return Err(malformed("a sealed envelope that is cut"));
    };
    let mut event = inner(envelope.inner)?;
    let Some(opener) = opener else {
        return Ok(event);
    };
    match opener.open(envelope.key, event_id, envelope.sealed) {
        Opened::Clear(plaintext) => {
            let fields: Vec<String> =
                postcard::from_bytes(&plaintext).map_err(|e| malformed(&e.to_string()))?;
            restore(&mut event, fields).map_err(|reason| malformed(&reason))?;
            Ok(event)
        }
        Opened::Destroyed => Ok(event),
        Opened::Unknown => Err(CodecError::KeyNotLoaded(envelope.key)),
        Opened::Invalid => Err(malformed("the sealed fields do not open under their key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;
    use std::cell::RefCell;

    /// A toy cipher for the envelope's tests: XOR with the key's first byte.
    struct Toy {
        destroyed: bool,
        sealed: RefCell<Vec<Uuid>>,
    }

    impl Sealer for Toy {
        fn seal(
            &self,
            _: Subject<'_>,
            _: Uuid,
            plaintext: &[u8],
        ) -> Result<(Uuid, Vec<u8>), String> {
            let key = Uuid::from_u128(0x42);
            self.sealed.borrow_mut().push(key);
            Ok((key, plaintext.iter().map(|b| b ^ 0x42).collect()))
        }
    }

    impl Opener for Toy {
        fn open(&self, key: Uuid, _: Uuid, ciphertext: &[u8]) -> Opened {
            if key != Uuid::from_u128(0x42) {
                return Opened::Unknown;
            }
            if self.destroyed {
                return Opened::Destroyed;
            }
            Opened::Clear(ciphertext.iter().map(|b| b ^ 0x42).collect())
        }
    }

    fn toy(destroyed: bool) -> Toy {
        Toy {
            destroyed,
            sealed: RefCell::new(Vec::new()),
        }
    }

    #[test]
    fn personal_events_round_trip_sealed_and_read_as_erased_once_the_key_is_gone() {
        let mut sealed_kinds = 0;
        for (_, _, event) in samples::all() {
            let id = Uuid::now_v7();
            let encoded = encode_sealed(&event, id, &toy(false)).expect("seal");
            let Some(_) = personal(&event) else {
                assert_eq!(
                    encoded,
                    crate::encode(&event),
                    "no personal data: stored as before"
                );
                continue;
            };
            sealed_kinds += 1;
            assert_ne!(encoded.schema_version & SEALED, 0);
            assert_eq!(
                sealed_key(encoded.schema_version, &encoded.payload),
                Some(Uuid::from_u128(0x42))
            );
            let open = |opener: Option<&dyn Opener>| {
                decode_opened(
                    encoded.type_name,
                    encoded.schema_version,
                    &encoded.payload,
                    id,
                    opener,
                )
            };
            assert_eq!(open(Some(&toy(false))).expect("open"), event);
            let erased = open(Some(&toy(true))).expect("erased");
            assert_eq!(erased, redact(&event));
            assert_ne!(erased, event);
            assert_eq!(open(None).expect("keyless"), redact(&event));
            for (field, value) in personal(&event).expect("personal").1.iter().enumerate() {
                assert!(
                    !encoded
                        .payload
                        .windows(value.len())
                        .any(|w| w == value.as_bytes()),
                    "field {field} of {} is not in clear",
                    encoded.type_name
                );
            }
        }
        assert_eq!(
            sealed_kinds, 3,
            "registration, ID-porten account, flow start"
        );
    }

    #[test]
    fn an_unknown_key_or_a_cut_envelope_is_an_error_not_a_panic() {
        let (_, _, event) = samples::all()
            .into_iter()
            .find(|(_, _, e)| personal(e).is_some())
            .expect("a personal sample");
        let id = Uuid::now_v7();
        let encoded = encode_sealed(&event, id, &toy(false)).expect("seal");
        struct Nobody;
        impl Opener for Nobody {
            fn open(&self, _: Uuid, _: Uuid, _: &[u8]) -> Opened {
                Opened::Unknown
            }
        }
        assert!(matches!(
            decode_opened(
                encoded.type_name,
                encoded.schema_version,
                &encoded.payload,
                id,
                Some(&Nobody)
            ),
            Err(CodecError::KeyNotLoaded(_))
        ));
        for cut in 0..encoded.payload.len() {
            let _ = decode_opened(
                encoded.type_name,
                encoded.schema_version,
                &encoded.payload[..cut],
                id,
                Some(&toy(false)),
            );
        }
    }
}
