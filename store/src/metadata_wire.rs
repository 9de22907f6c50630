//! The stored form of [`EventMetadata`] in the embedded store: postcard
//! bytes of the frozen `StoredMetadataV1`.
//!
//! Encoding goes through serde and postcard. Decoding is written out by hand
//! for the same bytes (with the readers of `migrations::wire`), because a scan of the log decodes one metadata blob
//! per event and serde's visitor for two `[u8; 16]` arrays costs more than
//! the rest of the row. A property test holds the hand decoder to postcard's
//! answer for every input, valid or not.

use std::hash::Hasher;
use std::sync::Arc;

use chrono::Datelike;
use migrations::wire;
pub(crate) use migrations::wire::DayCache;
use uuid::Uuid;

use crate::EventMetadata;

/// Stored form of [`EventMetadata`]. Frozen: a change is a new version.
/// The actor is written the same from a `&str` as from a `String`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredMetadataV1<A = String> {
    pub(crate) actor: A,
    pub(crate) correlation_id: [u8; 16],
    pub(crate) causation_id: Option<[u8; 16]>,
    pub(crate) occurred_at_seconds: i64,
    pub(crate) occurred_at_nanos: u32,
}

/// postcard bytes of `metadata` as `StoredMetadataV1`.
pub(crate) fn encode(metadata: &EventMetadata) -> Vec<u8> {
    let stored = StoredMetadataV1 {
        actor: &*metadata.actor,
        correlation_id: metadata.correlation_id.into_bytes(),
        causation_id: metadata.causation_id.map(Uuid::into_bytes),
        occurred_at_seconds: metadata.occurred_at.timestamp(),
        occurred_at_nanos: metadata.occurred_at.timestamp_subsec_nanos(),
    };
    // Serialising a plain struct into a Vec cannot fail.
    postcard::to_stdvec(&stored).unwrap_or_default()
}

/// The fields of `StoredMetadataV1`, borrowed from its bytes.
struct Parts<'a> {
    /// The actor's bytes, not yet checked to be UTF-8.
    actor: &'a [u8],
    correlation_id: [u8; 16],
    causation_id: Option<[u8; 16]>,
    seconds: i64,
    nanos: u32,
}

/// Split `StoredMetadataV1` bytes into fields (postcard's rules: LEB128
/// varints, zigzag for signed integers, `0`/`1` before an option, raw bytes
/// for `u8` arrays; trailing bytes ignored), without checking the instant.
fn parts(bytes: &[u8]) -> Option<Parts<'_>> {
    let mut input = bytes;
    let actor = wire::read_bytes(&mut input)?;
    let correlation_id = wire::read_array(&mut input)?;
    let causation_id = match wire::read_u8(&mut input)? {
        0 => None,
        1 => Some(wire::read_array(&mut input)?),
        _ => return None,
    };
    let seconds = wire::read_i64(&mut input)?;
    let nanos = wire::read_u32(&mut input)?;
    Some(Parts {
        actor,
        correlation_id,
        causation_id,
        seconds,
        nanos,
    })
}

/// Decode `StoredMetadataV1` bytes; `None` when they are not valid.
pub(crate) fn decode(bytes: &[u8]) -> Option<EventMetadata> {
    decode_with(
        bytes,
        |actor: &[u8]| std::str::from_utf8(actor).ok().map(Arc::from),
        &mut DayCache::default(),
    )
}

/// [`decode`] for a reader of many events: the actor's shared string comes
/// from `actor` (an [`Interner`]; `None` when the bytes are not UTF-8) and
/// the day of the instant from `days`, so that a run of events by one actor
/// on one day allocates and converts nothing per event.
pub(crate) fn decode_with(
    bytes: &[u8],
    actor: impl FnOnce(&[u8]) -> Option<Arc<str>>,
    days: &mut DayCache,
) -> Option<EventMetadata> {
    let parts = parts(bytes)?;
    Some(EventMetadata {
        actor: actor(parts.actor)?,
        correlation_id: Uuid::from_bytes(parts.correlation_id),
        causation_id: parts.causation_id.map(Uuid::from_bytes),
        occurred_at: days.instant(parts.seconds, parts.nanos)?,
    })
}

/// Whether [`decode`] would decode `bytes`, without building the metadata:
/// for scans that only check the log.
pub(crate) fn is_valid(bytes: &[u8]) -> bool {
    parts(bytes).is_some_and(|parts| {
        std::str::from_utf8(parts.actor).is_ok() && is_instant(parts.seconds, parts.nanos)
    })
}

/// Whether `DateTime::from_timestamp(seconds, nanos)` is `Some`: the day is
/// within chrono's calendar, and nanoseconds past one second only on the
/// last second of a minute (a leap second).
fn is_instant(seconds: i64, nanos: u32) -> bool {
    const UNIX_EPOCH_DAY_FROM_CE: i64 = 719_163;
    let day = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let first = i64::from(chrono::NaiveDate::MIN.num_days_from_ce());
    let last = i64::from(chrono::NaiveDate::MAX.num_days_from_ce());
    day.checked_add(UNIX_EPOCH_DAY_FROM_CE)
        .is_some_and(|day| (first..=last).contains(&day))
        && (nanos < 1_000_000_000 || (nanos < 2_000_000_000 && second_of_day % 60 == 59))
}

/// Slots of an [`Interner`] (a power of two).
const INTERNER_SLOTS: usize = 256;

/// A small direct-mapped cache of shared strings: a text met again while
/// still in its slot is handed out as the same `Arc` (no allocation). A log
/// holds few actors at a time (a person's request writes several events, a
/// job thousands), so a few hundred slots catch most repeats.
#[derive(Default)]
pub(crate) struct Interner {
    /// Empty until the first text.
    slots: Vec<Option<Arc<str>>>,
}

impl Interner {
    /// The shared string of these bytes; `None` when they are not UTF-8
    /// (bytes found in the cache are known to be).
    pub(crate) fn get(&mut self, bytes: &[u8]) -> Option<Arc<str>> {
        if self.slots.is_empty() {
            self.slots.resize(INTERNER_SLOTS, None);
        }
        let mut hasher = rustc_hash::FxHasher::default();
        hasher.write(bytes);
        let slot = &mut self.slots[hasher.finish() as usize & (INTERNER_SLOTS - 1)];
        match slot {
            Some(shared) if shared.as_bytes() == bytes => Some(Arc::clone(shared)),
            _ => {
                let text = std::str::from_utf8(bytes).ok()?;
                Some(Arc::clone(slot.insert(Arc::from(text))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn reference(bytes: &[u8]) -> Option<EventMetadata> {
        let stored: StoredMetadataV1 = postcard::from_bytes(bytes).ok()?;
        Some(EventMetadata {
            actor: stored.actor.into(),
            correlation_id: Uuid::from_bytes(stored.correlation_id),
            causation_id: stored.causation_id.map(Uuid::from_bytes),
            occurred_at: DateTime::from_timestamp(
                stored.occurred_at_seconds,
                stored.occurred_at_nanos,
            )?,
        })
    }

    fn metadata() -> impl Strategy<Value = EventMetadata> {
        (
            ".{0,40}",
            any::<u128>(),
            proptest::option::of(any::<u128>()),
            -62_000_000_000i64..250_000_000_000,
            0u32..1_000_000_000,
        )
            .prop_map(
                |(actor, correlation, causation, seconds, nanos)| EventMetadata {
                    actor: actor.into(),
                    correlation_id: Uuid::from_u128(correlation),
                    causation_id: causation.map(Uuid::from_u128),
                    occurred_at: DateTime::from_timestamp(seconds, nanos).expect("in range"),
                },
            )
    }

    proptest! {
        #[test]
        fn every_encoded_metadata_decodes_to_itself(metadata in metadata()) {
            let bytes = encode(&metadata);
            prop_assert_eq!(decode(&bytes), Some(metadata.clone()));
            prop_assert_eq!(reference(&bytes), Some(metadata));
        }

        #[test]
        fn the_hand_decoder_agrees_with_postcard_on_any_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..80)
        ) {
            prop_assert_eq!(decode(&bytes), reference(&bytes));
            prop_assert_eq!(is_valid(&bytes), reference(&bytes).is_some());
        }

        #[test]
        fn the_instant_check_agrees_with_chrono(
            seconds in prop_oneof![
                any::<i64>(),
                -8_300_000_000_000i64..8_300_000_000_000,
                (-140_000_000i64..140_000_000).prop_map(|minute| minute * 60 + 59),
            ],
            nanos in prop_oneof![any::<u32>(), 0u32..2_100_000_000],
        ) {
            prop_assert_eq!(
                is_instant(seconds, nanos),
                DateTime::from_timestamp(seconds, nanos).is_some()
            );
        }

        #[test]
        fn altered_encodings_decode_as_postcard_decodes_them(
            metadata in metadata(),
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = encode(&metadata);
            let i = index.index(bytes.len());
            bytes[i] = byte;
            prop_assert_eq!(decode(&bytes), reference(&bytes));
            prop_assert_eq!(is_valid(&bytes), reference(&bytes).is_some());
            bytes.truncate(i);
            prop_assert_eq!(decode(&bytes), reference(&bytes));
        }
    }

    #[test]
    fn the_instant_check_agrees_with_chrono_at_the_edges() {
        let first = DateTime::<Utc>::MIN_UTC.timestamp();
        let last = DateTime::<Utc>::MAX_UTC.timestamp();
        for seconds in [
            first - 1,
            first,
            first + 59,
            last - 1,
            last,
            last + 1,
            -1,
            0,
            59,
        ] {
            for nanos in [0, 999_999_999, 1_000_000_000, 1_999_999_999, 2_000_000_000] {
                assert_eq!(
                    is_instant(seconds, nanos),
                    DateTime::from_timestamp(seconds, nanos).is_some(),
                    "{seconds} s {nanos} ns"
                );
            }
        }
    }

    #[test]
    fn an_interned_text_is_shared_and_colliding_texts_stay_apart() {
        let mut interner = Interner::default();
        let first = interner.get(b"account:0190c0de-0000-7000-8000-000000000001");
        let again = interner.get(b"account:0190c0de-0000-7000-8000-000000000001");
        assert!(Arc::ptr_eq(&first.expect("utf-8"), &again.expect("utf-8")));
        assert_eq!(interner.get(&[b'a', 0xff]), None);
        // More texts than slots: some share a slot, each still comes back
        // equal to what was asked.
        for i in 0..4 * INTERNER_SLOTS {
            let text = format!("job:{i}");
            assert_eq!(interner.get(text.as_bytes()).as_deref(), Some(&*text));
        }
        assert_eq!(
            interner
                .get(b"account:0190c0de-0000-7000-8000-000000000001")
                .as_deref(),
            Some("account:0190c0de-0000-7000-8000-000000000001")
        );
    }

    #[test]
    fn metadata_decoded_through_the_caches_is_the_plain_decoding() {
        let mut actors = Interner::default();
        let mut days = DayCache::default();
        for (i, actor) in ["system", "job:purge-inactive", "system"]
            .iter()
            .enumerate()
        {
            let metadata = EventMetadata {
                actor: (*actor).into(),
                correlation_id: Uuid::from_u128(i as u128),
                causation_id: (i % 2 == 1).then(|| Uuid::from_u128(7)),
                occurred_at: DateTime::from_timestamp(1_700_000_000 + 40_000 * i as i64, 5)
                    .expect("in range"),
            };
            let bytes = encode(&metadata);
            let cached = decode_with(&bytes, |text| actors.get(text), &mut days);
            assert_eq!(cached, decode(&bytes));
            assert_eq!(cached, Some(metadata));
        }
    }

    #[test]
    fn overlong_and_non_minimal_varints_follow_postcard() {
        let base = encode(&EventMetadata {
            actor: "system".into(),
            correlation_id: Uuid::nil(),
            causation_id: None,
            occurred_at: Utc::now(),
        });
        // A non-minimal length prefix (0x86 0x00 = 6) and an overlong one.
        let mut non_minimal = vec![0x86, 0x00];
        non_minimal.extend_from_slice(&base[1..]);
        assert_eq!(decode(&non_minimal), reference(&non_minimal));
        let overlong = [0xff; 12];
        assert_eq!(decode(&overlong), None);
        assert_eq!(reference(&overlong), None);
    }
}
