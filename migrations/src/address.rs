//! Wire types (v1) of address events: mails sent to an address and logins
//! tried with it.

use domain::address::Event as Ad;
use serde::{Deserialize, Serialize};

use crate::{CodecError, DomainEvent, Encoded, from_bytes, instant, micros, to_bytes};

pub(crate) const TYPES: &[(&str, u16)] = &[
    ("AddressMailed", 1),
    ("AddressLoginFailed", 1),
    ("AddressLoginSucceeded", 1),
];

#[derive(Serialize, Deserialize)]
struct AddressMailedV1 {
    at: i64,
}

#[derive(Serialize, Deserialize)]
struct AddressLoginV1 {
    device: Option<[u8; 16]>,
    at: i64,
}

fn enc(type_name: &'static str, payload: Vec<u8>) -> Encoded {
    Encoded {
        type_name,
        schema_version: 1,
        payload,
    }
}

pub(crate) fn encode(event: &Ad) -> Encoded {
    match event {
        Ad::Mailed { at } => enc(
            "AddressMailed",
            to_bytes(&AddressMailedV1 { at: micros(at) }),
        ),
        Ad::LoginFailed { device, at } => enc(
            "AddressLoginFailed",
            to_bytes(&AddressLoginV1 {
                device: *device,
                at: micros(at),
            }),
        ),
        Ad::LoginSucceeded { device, at } => enc(
            "AddressLoginSucceeded",
            to_bytes(&AddressLoginV1 {
                device: *device,
                at: micros(at),
            }),
        ),
    }
}

/// Decode one of this module's types; `None` when the type is not ours.
pub(crate) fn decode(
    type_name: &str,
    version: u16,
    p: &[u8],
) -> Option<Result<DomainEvent, CodecError>> {
    if !TYPES.iter().any(|(t, _)| *t == type_name) {
        return None;
    }
    if version != 1 {
        return Some(Err(CodecError::UnknownVersion {
            type_name: type_name.to_owned(),
            version,
        }));
    }
    Some(decode_v1(type_name, p))
}

fn decode_v1(ty: &str, p: &[u8]) -> Result<DomainEvent, CodecError> {
    let t = |us: i64| instant(ty, 1, us);
    Ok(DomainEvent::Address(match ty {
        "AddressMailed" => {
            let w: AddressMailedV1 = from_bytes(ty, 1, p)?;
            Ad::Mailed { at: t(w.at)? }
        }
        "AddressLoginFailed" => {
            let w: AddressLoginV1 = from_bytes(ty, 1, p)?;
            Ad::LoginFailed {
                device: w.device,
                at: t(w.at)?,
            }
        }
        "AddressLoginSucceeded" => {
            let w: AddressLoginV1 = from_bytes(ty, 1, p)?;
            Ad::LoginSucceeded {
                device: w.device,
                at: t(w.at)?,
            }
        }
        other => return Err(CodecError::UnknownType(other.to_owned())),
    }))
}
