//! The hash chain over the global log: each stored event's link is the
//! SHA-256 of the previous link, the event's place in the log and its
//! stored bytes, so that a changed, removed, inserted or reordered event
//! breaks the chain from there on (`docs/adr/0008-hash-chain.md`).

use sha2::{Digest, Sha256};

/// Bytes of a link.
pub const LINK_BYTES: usize = 32;

/// A link of the chain: a SHA-256 digest.
pub type Link = [u8; LINK_BYTES];

/// The link "before the first event" (`chain[0]`): the SHA-256 of a fixed
/// label, so that no log's chain starts from all zeros.
pub fn genesis() -> Link {
    Sha256::digest(b"caseledger event chain v1").into()
}

/// What the chain covers of one stored event: its place in the log and
/// every stored byte of it.
#[derive(Debug, Clone, Copy)]
pub struct ChainedEvent<'a> {
    pub position: u64,
    pub stream: &'a str,
    pub revision: u64,
    /// The stored event id bytes (16 in an intact store).
    pub id: &'a [u8],
    pub type_name: &'a str,
    pub schema_version: u16,
    /// Microseconds since the Unix epoch.
    pub recorded_at_micros: i64,
    /// The stored metadata bytes ([`crate::encode_metadata`]).
    pub metadata: &'a [u8],
    pub payload: &'a [u8],
}

/// [`link`] of an event as the port gives it back: its metadata hashed as
/// [`crate::encode_metadata`] stores it (the bytes every adapter keeps).
pub fn link_recorded(previous: &Link, event: &crate::RecordedEvent) -> Link {
    let metadata = crate::encode_metadata(&event.metadata);
    link(
        previous,
        &ChainedEvent {
            position: event.position,
            stream: &event.stream,
            revision: event.revision,
            id: event.id.as_bytes(),
            type_name: &event.type_name,
            schema_version: event.schema_version,
            recorded_at_micros: event.recorded_at.timestamp_micros(),
            metadata: &metadata,
            payload: &event.payload,
        },
    )
}

/// `chain[n] = SHA-256(chain[n-1] ‖ position ‖ stream ‖ revision ‖ id ‖
/// type name ‖ schema version ‖ recorded_at ‖ metadata ‖ payload)`: numbers
/// as 8 big-endian bytes (the schema version as 4), each byte string after
/// its length as 8 big-endian bytes, so no two events encode alike.
pub fn link(previous: &Link, event: &ChainedEvent<'_>) -> Link {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(event.position.to_be_bytes());
    bytes(&mut hasher, event.stream.as_bytes());
    hasher.update(event.revision.to_be_bytes());
    bytes(&mut hasher, event.id);
    bytes(&mut hasher, event.type_name.as_bytes());
    hasher.update(u32::from(event.schema_version).to_be_bytes());
    hasher.update(event.recorded_at_micros.to_be_bytes());
    bytes(&mut hasher, event.metadata);
    bytes(&mut hasher, event.payload);
    hasher.finalize().into()
}

fn bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The stored link of the event at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainLink {
    pub position: u64,
    pub link: Link,
}

/// A stored link as a [`Link`]; `None` when it is not 32 bytes.
pub fn stored_link(bytes: &[u8]) -> Option<Link> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(stream: &'a str, type_name: &'a str) -> ChainedEvent<'a> {
        ChainedEvent {
            position: 1,
            stream,
            revision: 0,
            id: &[7; 16],
            type_name,
            schema_version: 1,
            recorded_at_micros: 0,
            metadata: b"m",
            payload: b"p",
        }
    }

    #[test]
    fn moving_a_byte_from_one_field_to_the_next_changes_the_link() {
        let start = genesis();
        assert_ne!(
            link(&start, &event("ab", "c")),
            link(&start, &event("a", "bc"))
        );
    }

    #[test]
    fn every_field_and_the_previous_link_count() {
        let start = genesis();
        let base = event("s", "T");
        let original = link(&start, &base);
        let changed = [
            ChainedEvent {
                position: 2,
                ..base
            },
            ChainedEvent {
                revision: 1,
                ..base
            },
            ChainedEvent {
                id: &[8; 16],
                ..base
            },
            ChainedEvent {
                schema_version: 2,
                ..base
            },
            ChainedEvent {
                recorded_at_micros: 1,
                ..base
            },
            ChainedEvent {
                metadata: b"n",
                ..base
            },
            ChainedEvent {
                payload: b"q",
                ..base
            },
            event("t", "T"),
            event("s", "U"),
        ];
        for other in changed {
            assert_ne!(link(&start, &other), original, "{other:?}");
        }
        assert_ne!(link(&original, &base), original);
    }
}
