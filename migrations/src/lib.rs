//! The only crate that knows how events are stored: versioned postcard wire
//! types per (type name, schema version), upcasters from old versions, and
//! golden byte vectors that must decode forever (`test_data/`).
//!
//! Rules for wire types (postcard encodes by position): never reorder fields
//! or enum variants, never use `skip_serializing_if`, `flatten`, `untagged`
//! or `default`; a change is a new version plus an upcaster.

use chrono::{DateTime, TimeZone, Utc};

pub mod account;
mod address;
pub mod application;
mod fast;
pub mod json;
pub mod legacy;
pub mod samples;
pub mod sealed;
pub mod wire;

/// Every event the system stores, as today's domain types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    Account(domain::account::Event),
    Flow(domain::flow::Event),
    Reservation(domain::reservation::Event),
    Application(domain::application::Event),
    Legacy(domain::legacy::Event),
    /// Mails sent to an email address and logins tried with it.
    Address(domain::address::Event),
}

/// An event in its stored form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub type_name: &'static str,
    pub schema_version: u16,
    pub payload: Vec<u8>,
}

/// Why stored bytes did not become a domain event. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("unknown schema version {version} of {type_name}")]
    UnknownVersion { type_name: String, version: u16 },
    #[error("payload of {type_name} v{version} is not valid: {reason}")]
    Malformed {
        type_name: String,
        version: u16,
        reason: String,
    },
    /// A sealed event whose data key the reader has not loaded.
    #[error("data key {0} is not loaded")]
    KeyNotLoaded(uuid::Uuid),
}

/// Encode a domain event at the current schema version of its type.
pub fn encode(event: &DomainEvent) -> Encoded {
    match event {
        DomainEvent::Account(e) => account::encode_account(e),
        DomainEvent::Flow(e) => account::encode_flow(e),
        DomainEvent::Reservation(e) => account::encode_reservation(e),
        DomainEvent::Application(e) => application::encode(e),
        DomainEvent::Legacy(e) => legacy::encode(e),
        DomainEvent::Address(e) => address::encode(e),
    }
}

/// Decode stored bytes of (type name, version), upcasting old versions.
/// A sealed event ([`sealed`]) decodes with its personal fields erased:
/// [`sealed::decode_opened`] opens them.
pub fn decode(type_name: &str, version: u16, payload: &[u8]) -> Result<DomainEvent, CodecError> {
    if version & sealed::SEALED != 0 {
        return sealed::decode_opened(type_name, version, payload, uuid::Uuid::nil(), None);
    }
    if let Some(event) = fast::decode(type_name, version, payload) {
        return Ok(event);
    }
    decode_serde(type_name, version, payload)
}

/// [`decode`] through the serde wire types alone (the frequent types have a
/// hand decoder in front of it; this path words every error).
pub(crate) fn decode_serde(
    type_name: &str,
    version: u16,
    payload: &[u8],
) -> Result<DomainEvent, CodecError> {
    let decoded = account::decode(type_name, version, payload)
        .or_else(|| application::decode(type_name, version, payload))
        .or_else(|| legacy::decode(type_name, version, payload))
        .or_else(|| address::decode(type_name, version, payload));
    if let Some(result) = decoded {
        return result;
    }
    Err(CodecError::UnknownType(type_name.to_owned()))
}

/// Every (type name, current version) this build writes.
pub fn known_types() -> Vec<(&'static str, u16)> {
    [
        account::TYPES,
        application::TYPES,
        legacy::TYPES,
        address::TYPES,
    ]
    .concat()
}

/// Every (type name, version) this build can read, old versions included.
pub fn readable_types() -> Vec<(&'static str, u16)> {
    [
        account::TYPES,
        application::TYPES,
        application::OLD_TYPES,
        legacy::TYPES,
        address::TYPES,
    ]
    .concat()
}

pub(crate) fn to_bytes<T: serde::Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("wire types always serialise")
}

pub(crate) fn from_bytes<'a, T: serde::Deserialize<'a>>(
    type_name: &str,
    version: u16,
    payload: &'a [u8],
) -> Result<T, CodecError> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(malformed(
            type_name,
            version,
            format!("{} trailing bytes", rest.len()),
        )),
        Err(e) => Err(malformed(type_name, version, e.to_string())),
    }
}

pub(crate) fn malformed(type_name: &str, version: u16, reason: impl Into<String>) -> CodecError {
    CodecError::Malformed {
        type_name: type_name.to_owned(),
        version,
        reason: reason.into(),
    }
}

/// Instants are stored as microseconds since the Unix epoch.
pub(crate) fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn instant(type_name: &str, version: u16, us: i64) -> Result<DateTime<Utc>, CodecError> {
    Utc.timestamp_micros(us)
        .single()
        .ok_or_else(|| malformed(type_name, version, "instant out of range"))
}

#[cfg(test)]
mod tests;
