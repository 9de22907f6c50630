//! Arbitrary bytes into the decoder of stored event metadata, through the
//! rows a reader of the store file hands out (`store::sqlite::EventRef`):
//! random bytes and valid encodings altered give an error naming the
//! position, never a panic, and the cheap check agrees with the decoding.
//! The campaign bench includes this file for its long run.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use store::sqlite::EventRef;

/// postcard bytes of the stored metadata, written out here by its rules
/// (LEB128 varints, zigzag for signed numbers, raw `u8` arrays), so the
/// inputs start from valid blobs.
pub fn valid_metadata(
    actor: &str,
    correlation: [u8; 16],
    causation: Option<[u8; 16]>,
    seconds: i64,
    nanos: u32,
) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    let mut out = Vec::new();
    varint(&mut out, actor.len() as u64);
    out.extend_from_slice(actor.as_bytes());
    out.extend_from_slice(&correlation);
    match causation {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id);
        }
    }
    varint(&mut out, ((seconds << 1) ^ (seconds >> 63)) as u64);
    varint(&mut out, u64::from(nanos));
    out
}

fn valid_blob() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just("system".to_owned()),
            Just("job:purge-inactive".to_owned()),
            "\\PC{0,40}"
        ],
        any::<[u8; 16]>(),
        proptest::option::of(any::<[u8; 16]>()),
        prop_oneof![any::<i64>(), -62_000_000_000i64..250_000_000_000],
        prop_oneof![0u32..1_000_000_000, any::<u32>()],
    )
        .prop_map(|(actor, correlation, causation, seconds, nanos)| {
            valid_metadata(&actor, correlation, causation, seconds, nanos)
        })
}

/// Random bytes, valid blobs, and valid blobs with a byte changed, cut
/// short, or extended.
pub fn metadata_inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..96),
        1 => valid_blob(),
        4 => (valid_blob(), any::<prop::sample::Index>(), any::<u8>(), 0u8..3, proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(mut bytes, at, byte, how, tail)| {
                let i = at.index(bytes.len());
                match how {
                    0 => bytes[i] = byte,
                    1 => bytes.truncate(i),
                    _ => bytes.extend_from_slice(&tail),
                }
                bytes
            }),
    ]
}

/// A stored row with these metadata bytes (the other fields intact).
fn row(metadata_bytes: &[u8]) -> EventRef<'_> {
    EventRef {
        position: 4242,
        stream: "account-0190c0de-0000-7000-8000-000000000001",
        stream_number: 7,
        revision: 3,
        type_name: "SessionStarted",
        schema_version: 1,
        id_bytes: &[0x42; 16],
        recorded_at_micros: 1_767_225_600_000_000,
        metadata_bytes,
        payload: &[],
        chain: &[],
    }
}

/// Decode one blob: `Ok(true)` when it is valid metadata, `Ok(false)` when
/// the decoder refused it with an error naming the position.
pub fn check_metadata(bytes: &[u8]) -> Result<bool, TestCaseError> {
    let event = row(bytes);
    let decoded = event.metadata();
    prop_assert_eq!(
        event.check_metadata().is_ok(),
        decoded.is_ok(),
        "the check and the decoding disagree on {:02x?}",
        bytes
    );
    match decoded {
        Ok(metadata) => {
            prop_assert!(bytes.len() >= metadata.actor.len() + 19);
            let owned = event
                .to_recorded()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(owned.metadata, metadata);
            Ok(true)
        }
        Err(error) => {
            prop_assert!(
                error.to_string().contains("4242"),
                "the error names the position: {error}"
            );
            prop_assert!(event.to_recorded().is_err());
            Ok(false)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    /// Any stored metadata bytes decode or give an error naming the row.
    #[test]
    fn any_metadata_decodes_or_is_an_error(bytes in metadata_inputs()) {
        check_metadata(&bytes)?;
    }
}

#[test]
fn a_valid_blob_decodes_and_a_cut_one_does_not() {
    let bytes = valid_metadata("system", [1; 16], Some([2; 16]), 1_767_225_600, 5);
    assert!(check_metadata(&bytes).expect("checked"));
    assert!(!check_metadata(&bytes[..bytes.len() - 1]).expect("checked"));
    assert!(!check_metadata(&[]).expect("checked"));
}
