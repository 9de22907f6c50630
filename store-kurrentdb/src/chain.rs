//! The hash chain ([`store::chain`]) in a stream of its own: one event per
//! linked event, in `$all` order, holding that event's position and link.
//!
//! A link covers the event's global position, which KurrentDB hands out
//! only when it commits the append, so the link cannot travel in the event
//! itself. Instead the appender links right after its append: it reads the
//! chain's head, reads the namespace's events of `$all` after it up to its
//! own, and appends their links to the chain stream expecting the head's
//! revision. Two appenders (of one process or of many) that link at once
//! race on that expected revision: one wins, the other reads the new head
//! and carries on from there, so every event is linked once, in `$all`
//! order, whatever order the appends of different streams committed in
//! (docs/adr/0010-kurrentdb-adapter.md).

use store::chain::{ChainLink, LINK_BYTES, Link};
use store::{RecordedEvent, StoreError};

/// The type of a chain event.
pub const CHAIN_EVENT_TYPE: &str = "ChainLink";

/// Bytes of a chain event's data: the position, then the link.
pub const CHAIN_EVENT_BYTES: usize = 8 + LINK_BYTES;

/// The data of the chain event of `link`.
pub fn encode_link(link: &ChainLink) -> [u8; CHAIN_EVENT_BYTES] {
    let mut data = [0; CHAIN_EVENT_BYTES];
    data[..8].copy_from_slice(&link.position.to_be_bytes());
    data[8..].copy_from_slice(&link.link);
    data
}

/// The link a chain event holds.
pub fn decode_link(data: &[u8]) -> Result<ChainLink, StoreError> {
    if data.len() != CHAIN_EVENT_BYTES {
        return Err(StoreError::Backend(format!(
            "a chain event of {} bytes, not {CHAIN_EVENT_BYTES}",
            data.len()
        )));
    }
    let (position, link) = data.split_at(8);
    let position = u64::from_be_bytes(position.try_into().expect("8 bytes"));
    let link: Link = link.try_into().expect("32 bytes");
    Ok(ChainLink { position, link })
}

/// Where the chain ends: the position and link of the last linked event
/// and the chain stream's revision (`None`: nothing linked yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub revision: Option<u64>,
    pub position: u64,
    pub link: Link,
}

impl ChainHead {
    /// The head of an empty chain.
    pub fn genesis() -> ChainHead {
        ChainHead {
            revision: None,
            position: 0,
            link: store::chain::genesis(),
        }
    }

    /// The head after `link` was appended at the next revision.
    pub fn after(&self, link: &ChainLink) -> ChainHead {
        ChainHead {
            revision: Some(self.revision.map_or(0, |revision| revision + 1)),
            position: link.position,
            link: link.link,
        }
    }
}

/// The links of `events` (the namespace's events of `$all` after the head,
/// in order) chained onto `head`. Events at or before the head's position
/// are skipped; positions must increase.
pub fn links_after(
    head: &ChainHead,
    events: &[RecordedEvent],
) -> Result<Vec<ChainLink>, StoreError> {
    let mut previous = head.link;
    let mut position = head.position;
    let mut links = Vec::with_capacity(events.len());
    for event in events.iter().filter(|event| event.position > head.position) {
        if event.position <= position {
            return Err(StoreError::Backend(format!(
                "$all gave position {} after {position}",
                event.position
            )));
        }
        previous = store::chain::link_recorded(&previous, event);
        position = event.position;
        links.push(ChainLink {
            position,
            link: previous,
        });
    }
    Ok(links)
}

/// The first chain revision whose position is after `after`, by binary
/// search over revisions `0..count` with `position_at` (the position the
/// chain event at a revision holds; positions increase with revisions).
pub async fn first_revision_after<F, Fut>(
    after: u64,
    count: u64,
    mut position_at: F,
) -> Result<u64, StoreError>
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = Result<u64, StoreError>>,
{
    let (mut low, mut high) = (0, count);
    while low < high {
        let middle = low + (high - low) / 2;
        if position_at(middle).await? > after {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(low)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chrono::DateTime;
    use store::EventMetadata;
    use uuid::Uuid;

    fn event(position: u64, stream: &str, revision: u64) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::from_u128(u128::from(position)),
            stream: stream.into(),
            revision,
            position,
            type_name: "Happened".into(),
            schema_version: 1,
            recorded_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            metadata: EventMetadata {
                actor: "system".into(),
                correlation_id: Uuid::from_u128(1),
                causation_id: None,
                occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            },
            payload: Bytes::from(format!("payload {position}")),
        }
    }

    #[test]
    fn a_chain_event_round_trips_and_refuses_other_sizes() {
        let link = ChainLink {
            position: 0x0102_0304_0506_0708,
            link: [9; LINK_BYTES],
        };
        let data = encode_link(&link);
        assert_eq!(data[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(decode_link(&data).unwrap(), link);
        assert!(decode_link(&data[1..]).is_err());
        assert!(decode_link(&[]).is_err());
    }

    #[test]
    fn links_chain_onto_the_head_as_the_port_computes_them() {
        let events = vec![
            event(1_000, "a", 0),
            event(1_400, "b", 0),
            event(2_000, "a", 1),
        ];
        let links = links_after(&ChainHead::genesis(), &events).unwrap();
        let mut previous = store::chain::genesis();
        for (event, link) in events.iter().zip(&links) {
            previous = store::chain::link_recorded(&previous, event);
            assert_eq!(link.position, event.position);
            assert_eq!(link.link, previous);
        }
        // Linking in two goes gives the same chain as in one.
        let head = ChainHead::genesis().after(&links[0]);
        assert_eq!(head.revision, Some(0));
        assert_eq!(links_after(&head, &events).unwrap(), links[1..]);
        let head = head.after(&links[1]);
        assert_eq!(head.revision, Some(1));
        assert_eq!(head.position, 1_400);
        assert_eq!(links_after(&head, &events[2..]).unwrap(), links[2..]);
    }

    #[test]
    fn a_concurrent_linker_changes_nothing_already_linked() {
        let events = vec![event(10, "a", 0), event(20, "b", 0)];
        let links = links_after(&ChainHead::genesis(), &events).unwrap();
        let head = ChainHead::genesis().after(&links[0]).after(&links[1]);
        assert!(links_after(&head, &events).unwrap().is_empty());
    }

    #[test]
    fn positions_out_of_order_are_refused() {
        let events = vec![event(20, "a", 0), event(10, "b", 0)];
        assert!(links_after(&ChainHead::genesis(), &events).is_err());
    }

    #[tokio::test]
    async fn the_search_finds_the_first_revision_after_a_position() {
        let positions = [100_u64, 250, 260, 900];
        for (after, expected) in [
            (0, 0),
            (99, 0),
            (100, 1),
            (101, 1),
            (255, 2),
            (260, 3),
            (899, 3),
            (900, 4),
            (u64::MAX, 4),
        ] {
            let found =
                first_revision_after(after, positions.len() as u64, |revision| async move {
                    Ok(positions[revision as usize])
                })
                .await
                .unwrap();
            assert_eq!(found, expected, "after {after}");
        }
        let empty = first_revision_after(5, 0, |_| async { Ok(0) })
            .await
            .unwrap();
        assert_eq!(empty, 0);
    }
}
