//! Golden vectors, round trips and garbage-input properties of the codec.

use std::path::PathBuf;

use proptest::prelude::*;

use crate::{CodecError, decode, encode, known_types, samples};

fn vector_path(type_name: &str, version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("test_data")
        .join(format!("{type_name}.v{version}.bin"))
}

/// Released vectors decode forever to today's events, and today's encoder
/// writes exactly the released bytes of the current version. Set
/// `CASELEDGER_BLESS_VECTORS=1` once to write the vector of a NEW type.
#[test]
fn golden_vectors_decode_forever_and_wire_types_are_frozen() {
    let bless = std::env::var_os("CASELEDGER_BLESS_VECTORS").is_some();
    let mut failures = Vec::new();
    for (type_name, version, expected) in samples::all() {
        let path = vector_path(type_name, version);
        if !path.exists() {
            if bless {
                let encoded = encode(&expected);
                let bytes = if (encoded.type_name, encoded.schema_version) == (type_name, version) {
                    encoded.payload
                } else {
                    samples::old_version_bytes(type_name, version, &expected)
                        .expect("old version writer")
                };
                std::fs::write(&path, bytes).unwrap();
            } else {
                failures.push(format!(
                    "{}: missing vector (bless a new type once)",
                    path.display()
                ));
            }
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        match decode(type_name, version, &bytes) {
            Ok(decoded) if decoded == expected => {}
            Ok(decoded) => failures.push(format!("{type_name} v{version} decodes to {decoded:?}")),
            Err(e) => failures.push(format!("{type_name} v{version}: {e}")),
        }
        let current = encode(&expected);
        if current.type_name == type_name
            && current.schema_version == version
            && current.payload != bytes
        {
            failures.push(format!("{type_name} v{version}: the wire type changed (encoding differs from the released vector)"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_current_type_has_a_sample() {
    let sampled: Vec<(&str, u16)> = samples::all().into_iter().map(|(t, v, _)| (t, v)).collect();
    for known in crate::readable_types() {
        assert!(sampled.contains(&known), "{known:?} has no sample");
    }
}

#[test]
fn every_sample_round_trips() {
    for (_, _, event) in samples::all() {
        let enc = encode(&event);
        assert!(known_types().contains(&(enc.type_name, enc.schema_version)));
        assert_eq!(
            decode(enc.type_name, enc.schema_version, &enc.payload),
            Ok(event)
        );
    }
}

#[test]
fn unknown_type_and_version_are_typed_errors() {
    assert_eq!(
        decode("NoSuchEvent", 1, &[]),
        Err(CodecError::UnknownType("NoSuchEvent".into()))
    );
    assert!(matches!(
        decode("LoginFailed", 99, &[]),
        Err(CodecError::UnknownVersion { .. })
    ));
}

#[test]
fn trailing_bytes_are_refused() {
    let (_, _, event) = samples::all().remove(2);
    let mut enc = encode(&event);
    enc.payload.push(0);
    assert!(matches!(
        decode(enc.type_name, enc.schema_version, &enc.payload),
        Err(CodecError::Malformed { .. })
    ));
}

proptest! {
    /// Garbage bytes under any known type give a typed error or an event, never a panic.
    #[test]
    fn garbage_never_panics(index in 0usize..64, bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let types = crate::readable_types();
        let (type_name, version) = types[index % types.len()];
        let _ = decode(type_name, version, &bytes);
    }

    /// Flipping any byte of a valid payload never panics.
    #[test]
    fn corrupted_payloads_never_panic(index in 0usize..64, at in 0usize..512, flip in 1u8..=255) {
        let samples = samples::all();
        let (_, _, event) = &samples[index % samples.len()];
        let mut enc = encode(event);
        let at = at % enc.payload.len().max(1);
        if let Some(b) = enc.payload.get_mut(at) { *b ^= flip; }
        let _ = decode(enc.type_name, enc.schema_version, &enc.payload);
    }
}

#[test]
fn application_created_v1_upcasts_with_the_password_method() {
    let bytes = std::fs::read(vector_path("ApplicationCreated", 1)).unwrap();
    match decode("ApplicationCreated", 1, &bytes).unwrap() {
        crate::DomainEvent::Application(domain::application::Event::Created {
            owner_method,
            ..
        }) => {
            assert_eq!(owner_method, domain::LoginMethod::Password)
        }
        other => panic!("decoded to {other:?}"),
    }
}

/// Every current type but the rare ones has a hand decoder, and it gives
/// the sample event.
#[test]
fn frequent_types_take_the_hand_decoder() {
    let rare = [
        "PasswordRehashed",
        "PasswordChanged",
        "PurgeWarningIssued",
        "AccountDeleted",
        "CodeResent",
        "CodeRejected",
        "LegacyApplicationImported",
        "AddressMailed",
        "AddressLoginFailed",
        "AddressLoginSucceeded",
    ];
    for (_, _, event) in samples::all() {
        let enc = encode(&event);
        let fast = crate::fast::decode(enc.type_name, enc.schema_version, &enc.payload);
        if rare.contains(&enc.type_name) {
            assert_eq!(fast, None, "{}", enc.type_name);
        } else {
            assert_eq!(fast, Some(event), "{}", enc.type_name);
        }
    }
}

/// The hand decoders and the serde path agree on every payload of every
/// sample with any one byte set to a telling value (variant indexes,
/// option tags, varint continuation bits, lengths), cut short or extended.
#[test]
fn hand_decoders_agree_with_serde_on_altered_payloads() {
    let mut checked = 0;
    for (type_name, version, event) in samples::all() {
        let enc = encode(&event);
        let payload = if (enc.type_name, enc.schema_version) == (type_name, version) {
            enc.payload
        } else {
            samples::old_version_bytes(type_name, version, &event).expect("old version writer")
        };
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for at in 0..payload.len() {
            let original = payload[at];
            for value in [
                0,
                1,
                2,
                3,
                4,
                5,
                6,
                15,
                16,
                17,
                0x7f,
                0x80,
                0x81,
                0xc0,
                0xff,
                original ^ 1,
                original ^ 0x80,
            ] {
                let mut altered = payload.clone();
                altered[at] = value;
                variants.push(altered);
            }
            variants.push(payload[..at].to_vec());
        }
        for extra in [0u8, 1, 0x80] {
            let mut longer = payload.clone();
            longer.push(extra);
            variants.push(longer);
        }
        for bytes in variants {
            assert_eq!(
                decode(type_name, version, &bytes),
                crate::decode_serde(type_name, version, &bytes),
                "{type_name} v{version} {bytes:02x?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 10_000, "{checked}");
}

proptest! {
    /// Random bytes under any readable type: the hand decoders and the
    /// serde path agree.
    #[test]
    fn hand_decoders_agree_with_serde_on_garbage(index in 0usize..64, bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let types = crate::readable_types();
        let (type_name, version) = types[index % types.len()];
        prop_assert_eq!(
            decode(type_name, version, &bytes),
            crate::decode_serde(type_name, version, &bytes)
        );
    }
}
