//! Arbitrary bytes into `migrations::decode`: random payloads under every
//! readable (type, version) and under unknown ones, and golden vectors
//! mutated (bit flips, byte changes, truncations, extensions, insertions):
//! a typed error or an event that survives a round trip, never a panic.
//! The campaign bench includes this file for its long run.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use migrations::{CodecError, decode, encode, readable_types};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// One input: a stored (type name, version) and payload bytes.
#[derive(Debug, Clone)]
pub struct PayloadInput {
    pub type_name: String,
    pub version: u16,
    pub payload: Vec<u8>,
}

/// The golden vectors of `migrations/test_data/`: (type, version, bytes).
pub fn golden_vectors() -> &'static [(String, u16, Vec<u8>)] {
    static VECTORS: OnceLock<Vec<(String, u16, Vec<u8>)>> = OnceLock::new();
    VECTORS.get_or_init(|| {
        // The path holds from this crate and from a sibling crate that
        // includes this file.
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../migrations/test_data"
        ));
        let mut vectors: Vec<(String, u16, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?.strip_suffix(".bin")?.to_owned();
                let (type_name, version) = name.rsplit_once(".v")?;
                let bytes = std::fs::read(&path).ok()?;
                Some((type_name.to_owned(), version.parse().ok()?, bytes))
            })
            .collect();
        vectors.sort();
        assert!(
            vectors.len() >= readable_types().len(),
            "a golden vector for every readable type in {}",
            dir.display()
        );
        vectors
    })
}

/// A (type name, version): mostly readable ones, some with a wrong version,
/// some names nobody stores.
fn stored_type() -> impl Strategy<Value = (String, u16)> {
    let types = readable_types();
    let known = types.clone();
    prop_oneof![
        6 => proptest::sample::select(types).prop_map(|(t, v)| (t.to_owned(), v)),
        1 => (proptest::sample::select(known), any::<u16>()).prop_map(|((t, _), v)| (t.to_owned(), v)),
        1 => ("\\PC{0,30}", any::<u16>()),
    ]
}

/// How a golden vector is altered.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: prop::sample::Index,
        bit: u8,
    },
    SetByte {
        at: prop::sample::Index,
        byte: u8,
    },
    Truncate {
        at: prop::sample::Index,
    },
    Extend {
        tail: Vec<u8>,
    },
    Insert {
        at: prop::sample::Index,
        bytes: Vec<u8>,
    },
    Remove {
        at: prop::sample::Index,
        len: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        any::<prop::sample::Index>().prop_map(|at| Mutation::Truncate { at }),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(|tail| Mutation::Extend { tail }),
        (
            any::<prop::sample::Index>(),
            proptest::collection::vec(any::<u8>(), 1..12)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<prop::sample::Index>(), 1usize..16)
            .prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match mutation {
        Mutation::FlipBit { at, bit } if len > 0 => bytes[at.index(len)] ^= 1 << bit,
        Mutation::SetByte { at, byte } if len > 0 => bytes[at.index(len)] = *byte,
        Mutation::Truncate { at } => bytes.truncate(at.index(len + 1)),
        Mutation::Extend { tail } => bytes.extend_from_slice(tail),
        Mutation::Insert { at, bytes: insert } => {
            let at = at.index(len + 1);
            bytes.splice(at..at, insert.iter().copied());
        }
        Mutation::Remove { at, len: n } if len > 0 => {
            let at = at.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        _ => {}
    }
}

/// Every kind of input: random bytes under a stored type, a golden vector
/// altered one to three times, a golden vector under another type.
pub fn payload_inputs() -> impl Strategy<Value = PayloadInput> {
    let vectors = golden_vectors();
    let random = (
        stored_type(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|((type_name, version), payload)| PayloadInput {
            type_name,
            version,
            payload,
        });
    let mutated = (
        proptest::sample::select(vectors),
        proptest::collection::vec(mutation(), 1..4),
    )
        .prop_map(|((type_name, version, bytes), mutations)| {
            let mut payload = bytes.clone();
            for m in &mutations {
                mutate(&mut payload, m);
            }
            PayloadInput {
                type_name,
                version,
                payload,
            }
        });
    let swapped = (proptest::sample::select(vectors), stored_type()).prop_map(
        |((_, _, bytes), (type_name, version))| PayloadInput {
            type_name,
            version,
            payload: bytes,
        },
    );
    prop_oneof![3 => random, 5 => mutated, 1 => swapped]
}

/// What decoding one input gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    Event,
    Error,
}

/// Decode one input: an event must encode and decode again to itself; an
/// error must name the input's type (and version, for a known type).
pub fn check_payload(input: &PayloadInput) -> Result<Decoded, TestCaseError> {
    // A sealed envelope (`migrations::sealed`) of a readable version is
    // readable too.
    let base = input.version & !migrations::sealed::SEALED;
    let readable = readable_types()
        .iter()
        .any(|(t, v)| *t == input.type_name && *v == base);
    match decode(&input.type_name, input.version, &input.payload) {
        Err(CodecError::KeyNotLoaded(_)) => {
            prop_assert!(false, "a keyless decode never asks for a key: {input:?}");
            Ok(Decoded::Error)
        }
        Ok(event) => {
            prop_assert!(readable, "decoded an unreadable type: {input:?}");
            let again = encode(&event);
            let decoded = decode(again.type_name, again.schema_version, &again.payload);
            prop_assert_eq!(decoded.as_ref(), Ok(&event), "round trip of {:?}", input);
            Ok(Decoded::Event)
        }
        Err(CodecError::Malformed {
            type_name, version, ..
        }) => {
            prop_assert!(readable, "malformed for an unreadable type: {input:?}");
            prop_assert_eq!(&type_name, &input.type_name);
            prop_assert_eq!(version, input.version);
            Ok(Decoded::Error)
        }
        Err(CodecError::UnknownVersion { type_name, version }) => {
            prop_assert!(!readable, "unknown version of a readable type: {input:?}");
            prop_assert_eq!(&type_name, &input.type_name);
            prop_assert_eq!(version, input.version);
            Ok(Decoded::Error)
        }
        Err(CodecError::UnknownType(type_name)) => {
            prop_assert!(!readable, "unknown type that is readable: {input:?}");
            prop_assert_eq!(&type_name, &input.type_name);
            Ok(Decoded::Error)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Any stored bytes decode to an event or a typed error naming them.
    #[test]
    fn any_payload_decodes_or_is_a_typed_error(input in payload_inputs()) {
        check_payload(&input)?;
    }
}

#[test]
fn every_golden_vector_is_an_input_and_decodes() {
    for (type_name, version, payload) in golden_vectors() {
        let input = PayloadInput {
            type_name: type_name.clone(),
            version: *version,
            payload: payload.clone(),
        };
        match check_payload(&input) {
            Ok(decoded) => assert_eq!(decoded, Decoded::Event, "{type_name} v{version}"),
            Err(e) => panic!("{type_name} v{version}: {e}"),
        }
    }
}
