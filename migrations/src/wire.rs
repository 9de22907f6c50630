//! postcard's primitive encodings read by hand, for the decoders that skip
//! serde on hot paths (stored events in `fast`, the store's metadata, the
//! read model snapshot): LEB128 varints, zigzag for signed integers,
//! length-prefixed bytes; and [`DayCache`], instants from stored numbers.
//!
//! Each reader takes its value from the front of a byte slice and advances
//! the slice past it. It gives `None` exactly where postcard's own decoding
//! of that type gives an error (too few bytes, a varint longer than the
//! type allows or wider than it, text that is not UTF-8), and never panics;
//! after `None` the slice is left anywhere, so callers give up on the
//! input. Property tests hold every reader to postcard.

mod day_cache;

pub use day_cache::DayCache;

/// Bytes of the longest varint (a `u64`).
pub const MAX_VARINT_LEN: usize = 10;

/// A LEB128 varint of at most `MAX` bytes whose last byte, when it is the
/// `MAX`th, is at most `last` (postcard's limits for a type of that width).
#[inline]
fn varint<const MAX: usize>(input: &mut &[u8], last: u8) -> Option<u64> {
    let mut out = 0u64;
    for i in 0..MAX {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        out |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (i + 1 < MAX || byte <= last).then_some(out);
        }
    }
    None
}

/// One raw byte.
#[inline]
pub fn read_u8(input: &mut &[u8]) -> Option<u8> {
    let (&byte, rest) = input.split_first()?;
    *input = rest;
    Some(byte)
}

/// `n` raw bytes (a `u8` array's or a uuid's form, or the body after a
/// length).
#[inline]
pub fn read_raw<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = input.split_at_checked(n)?;
    *input = rest;
    Some(head)
}

/// A `[u8; N]`: its `N` bytes, raw.
#[inline]
pub fn read_array<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    read_raw(input, N)?.try_into().ok()
}

/// A `u64` (at most 10 bytes, the 10th at most `0x01`).
#[inline]
pub fn read_u64(input: &mut &[u8]) -> Option<u64> {
    varint::<10>(input, 0x01)
}

/// A `u32` (at most 5 bytes, the 5th at most `0x0f`).
#[inline]
pub fn read_u32(input: &mut &[u8]) -> Option<u32> {
    varint::<5>(input, 0x0f).map(|v| v as u32)
}

/// An `i64`: a zigzag `u64`.
#[inline]
pub fn read_i64(input: &mut &[u8]) -> Option<i64> {
    let v = read_u64(input)?;
    Some(((v >> 1) as i64) ^ -((v & 1) as i64))
}

/// An `i32`: a zigzag `u32`.
#[inline]
pub fn read_i32(input: &mut &[u8]) -> Option<i32> {
    let v = read_u32(input)?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// A length (a `usize`, which postcard writes as a `u64` varint on 64-bit
/// targets).
#[inline]
pub fn read_len(input: &mut &[u8]) -> Option<usize> {
    usize::try_from(read_u64(input)?).ok()
}

/// Length-prefixed bytes (a `&[u8]`'s or a string's form), not checked.
#[inline]
pub fn read_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = read_len(input)?;
    read_raw(input, len)
}

/// A length-prefixed UTF-8 string.
#[inline]
pub fn read_str<'a>(input: &mut &'a [u8]) -> Option<&'a str> {
    std::str::from_utf8(read_bytes(input)?).ok()
}

/// Append `v` as a varint (the form [`read_u64`] reads, and [`read_u32`]
/// for values that fit).
#[inline]
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Append `v` zigzagged (the form [`read_i64`] reads).
#[inline]
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    write_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;

    /// postcard's answer for `T` at the front of `bytes`: the value and the
    /// bytes left, or `None` on any error.
    fn postcard<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<(T, &'a [u8])> {
        postcard::take_from_bytes::<T>(bytes).ok()
    }

    /// Ours, in the same shape.
    fn ours<'a, T>(
        bytes: &'a [u8],
        read: impl FnOnce(&mut &'a [u8]) -> Option<T>,
    ) -> Option<(T, &'a [u8])> {
        let mut input = bytes;
        read(&mut input).map(|v| (v, input))
    }

    /// Each reader against postcard on `bytes`.
    fn agree_on(bytes: &[u8]) -> Result<(), TestCaseError> {
        prop_assert_eq!(ours(bytes, read_u8), postcard::<u8>(bytes));
        prop_assert_eq!(ours(bytes, read_u32), postcard::<u32>(bytes));
        prop_assert_eq!(ours(bytes, read_u64), postcard::<u64>(bytes));
        prop_assert_eq!(ours(bytes, read_i32), postcard::<i32>(bytes));
        prop_assert_eq!(ours(bytes, read_i64), postcard::<i64>(bytes));
        prop_assert_eq!(ours(bytes, read_len), postcard::<usize>(bytes));
        prop_assert_eq!(ours(bytes, read_bytes), postcard::<&[u8]>(bytes));
        prop_assert_eq!(ours(bytes, read_str), postcard::<&str>(bytes));
        prop_assert_eq!(ours(bytes, read_array::<16>), postcard::<[u8; 16]>(bytes));
        Ok(())
    }

    /// postcard's bytes of `value` read back by `read`, with a tail left
    /// alone.
    fn round_trip<T>(
        value: T,
        read: impl for<'a> FnOnce(&mut &'a [u8]) -> Option<T>,
    ) -> Result<(), TestCaseError>
    where
        T: serde::Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Clone,
    {
        let mut bytes = postcard::to_stdvec(&value).expect("encodes");
        bytes.extend_from_slice(&[0xff, 0x00]);
        let mut input = &bytes[..];
        prop_assert_eq!(read(&mut input), Some(value));
        prop_assert_eq!(input, &[0xff, 0x00][..]);
        Ok(())
    }

    /// Bytes that look like varints of every length more often than
    /// uniform bytes would.
    fn varint_like() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(0x80u8..=0xff, 0..11),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..4),
        )
            .prop_map(|(continued, last, tail)| {
                let mut bytes = continued;
                bytes.push(last);
                bytes.extend(tail);
                bytes
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn every_reader_agrees_with_postcard_on_any_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            agree_on(&bytes)?;
        }

        #[test]
        fn every_reader_agrees_with_postcard_on_varint_like_bytes(bytes in varint_like()) {
            agree_on(&bytes)?;
        }

        #[test]
        fn postcards_encodings_read_back(
            (a, b, c, d, text, blob) in (
                any::<u64>(), any::<u32>(), any::<i64>(), any::<i32>(),
                ".{0,20}", proptest::collection::vec(any::<u8>(), 0..300),
            ),
        ) {
            round_trip(a, read_u64)?;
            round_trip(b, read_u32)?;
            round_trip(c, read_i64)?;
            round_trip(d, read_i32)?;
            round_trip(a as usize, read_len)?;
            let text_bytes = postcard::to_stdvec(&text).expect("encodes");
            prop_assert_eq!(read_str(&mut &text_bytes[..]), Some(text.as_str()));
            let blob_bytes = postcard::to_stdvec(&serde_bytes_like(&blob)).expect("encodes");
            prop_assert_eq!(read_bytes(&mut &blob_bytes[..]), Some(&blob[..]));
        }

        #[test]
        fn the_writers_write_postcards_bytes(a in any::<u64>(), b in any::<i64>()) {
            let mut out = Vec::new();
            write_u64(&mut out, a);
            prop_assert_eq!(&out, &postcard::to_stdvec(&a).expect("encodes"));
            out.clear();
            write_i64(&mut out, b);
            prop_assert_eq!(&out, &postcard::to_stdvec(&b).expect("encodes"));
        }
    }

    /// A byte slice serialised as bytes (postcard: length, then raw), as
    /// `serde_bytes` would, without the dependency.
    fn serde_bytes_like(bytes: &[u8]) -> impl serde::Serialize + '_ {
        struct Bytes<'a>(&'a [u8]);
        impl serde::Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        Bytes(bytes)
    }

    #[test]
    fn every_width_at_its_edges_reads_as_postcard_reads_it() {
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for len in 1..=11 {
            for last in [0x00, 0x01, 0x02, 0x0f, 0x10, 0x7f, 0x80] {
                let mut bytes = vec![0xff; len - 1];
                bytes.push(last);
                cases.push(bytes.clone());
                // Non-minimal: continuation bytes of zeros.
                let mut zeros = vec![0x80; len - 1];
                zeros.push(last);
                cases.push(zeros);
            }
        }
        for bytes in cases {
            agree_on(&bytes).unwrap_or_else(|e| panic!("{bytes:02x?}: {e}"));
        }
    }
}
