//! Values beside the log: one stream per value, whose last event is the
//! value. Compare-and-swap is an append expecting the revision the current
//! value was read at (or no stream for a value never written): a writer
//! that raced and lost gets a wrong expected version, which is "it held
//! something else". The stream keeps only its last event (`$maxCount` 1),
//! so older values go at the next scavenge.

use kurrentdb::{AppendToStreamOptions, Client, StreamMetadata, StreamState};

/// The type of a value's events.
pub const VALUE_EVENT_TYPE: &str = "Value";

/// The stream state a swap appends with, or `None` when the value does not
/// hold `expected` now (`current`: the value's revision and bytes, `None`
/// when never written).
pub fn swap_state(expected: Option<&[u8]>, current: Option<(u64, &[u8])>) -> Option<StreamState> {
    match (expected, current) {
        (None, None) => Some(StreamState::NoStream),
        (Some(expected), Some((revision, held))) if expected == held => {
            Some(StreamState::StreamRevision(revision))
        }
        _ => None,
    }
}

/// Set a value stream's `$maxCount` to 1, right after it was created.
pub async fn keep_only_the_last(client: &Client, stream: &str) -> Result<(), kurrentdb::Error> {
    let metadata: StreamMetadata = StreamMetadata::builder().max_count(1).build();
    client
        .set_stream_metadata(stream, &AppendToStreamOptions::default(), &metadata)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_never_written_is_created_only_by_expecting_none() {
        assert_eq!(swap_state(None, None), Some(StreamState::NoStream));
        assert_eq!(swap_state(Some(b"1"), None), None);
    }

    #[test]
    fn a_written_value_is_swapped_at_its_revision_only_when_it_holds_the_expected() {
        assert_eq!(
            swap_state(Some(b"1"), Some((4, b"1"))),
            Some(StreamState::StreamRevision(4))
        );
        assert_eq!(swap_state(Some(b"1"), Some((4, b"2"))), None);
        assert_eq!(swap_state(None, Some((0, b"1"))), None);
        assert_eq!(
            swap_state(Some(b""), Some((0, b""))),
            Some(StreamState::StreamRevision(0))
        );
    }
}
