//! The port's types in KurrentDB's terms and back, as pure functions:
//! expected revisions and stream states, global positions and `$all`
//! positions, the envelope in an event's metadata, which events of `$all`
//! are the port's, where a stream read starts, and whether an append is the
//! retry of one already stored.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use kurrentdb::{Position, StreamPosition, StreamState};
use store::{
    CurrentRevision, Direction, EventMetadata, ExpectedRevision, NewEvent, RecordedEvent,
    StoreError, StreamStart,
};
use uuid::Uuid;

use crate::names::Names;

/// The envelope's format, its first byte.
pub const ENVELOPE_FORMAT: u8 = 1;

/// The stream state KurrentDB checks for the port's expectation; one to one.
pub fn stream_state(expected: ExpectedRevision) -> StreamState {
    match expected {
        ExpectedRevision::Any => StreamState::Any,
        ExpectedRevision::NoStream => StreamState::NoStream,
        ExpectedRevision::StreamExists => StreamState::StreamExists,
        ExpectedRevision::Exact(revision) => StreamState::StreamRevision(revision),
    }
}

/// The port's view of the revision KurrentDB reports in a conflict.
pub fn current_revision(current: kurrentdb::CurrentRevision) -> CurrentRevision {
    match current {
        kurrentdb::CurrentRevision::Current(revision) => CurrentRevision::Current(revision),
        kurrentdb::CurrentRevision::NoStream => CurrentRevision::NoStream,
    }
}

/// The stream state that pins an append to what was just read: the
/// adapter's way of making an append that expects
/// [`ExpectedRevision::Any`] idempotent (KurrentDB promises idempotency by
/// event id for every state but `Any`).
pub fn pinned_state(current: CurrentRevision) -> StreamState {
    match current {
        CurrentRevision::NoStream => StreamState::NoStream,
        CurrentRevision::Current(revision) => StreamState::StreamRevision(revision),
    }
}

/// The `$all` position of the port's global position `position`: its
/// commit position. The adapter's events are single appends, never
/// explicit transactions, so their prepare position is their commit
/// position. 0 ("before the first event") is the start of `$all`.
pub fn all_position(position: u64) -> StreamPosition<Position> {
    if position == 0 {
        StreamPosition::Start
    } else {
        StreamPosition::Position(Position {
            commit: position,
            prepare: position,
        })
    }
}

/// The port's global position of an event at `$all` position `position`:
/// its commit position. Commit positions are byte offsets in KurrentDB's
/// transaction log: they strictly increase in commit order but are not
/// dense (they grow by each record's size, and other streams' records lie
/// between), so the port's positions have gaps. The log starts with the
/// server's own records, so no event of the port is at commit position 0.
pub fn port_position(position: Position) -> Result<u64, StoreError> {
    if position.commit == 0 {
        return Err(StoreError::Backend(
            "an event at commit position 0 of $all: the port's positions start at 1".to_owned(),
        ));
    }
    Ok(position.commit)
}

/// Where a stream read starts and whether it goes forwards.
pub fn stream_read_start(start: StreamStart, direction: Direction) -> (StreamPosition<u64>, bool) {
    let forwards = direction == Direction::Forwards;
    let position = match start {
        StreamStart::Edge if forwards => StreamPosition::Start,
        StreamStart::Edge => StreamPosition::End,
        StreamStart::Revision(revision) => StreamPosition::Position(revision),
    };
    (position, forwards)
}

/// The event's custom metadata: the envelope format, the schema version
/// (2 bytes, big-endian) and the port's stored metadata
/// ([`store::encode_metadata`]), which is what the hash chain covers.
pub fn encode_envelope(schema_version: u16, metadata: &EventMetadata) -> Vec<u8> {
    let stored = store::encode_metadata(metadata);
    let mut envelope = Vec::with_capacity(3 + stored.len());
    envelope.push(ENVELOPE_FORMAT);
    envelope.extend_from_slice(&schema_version.to_be_bytes());
    envelope.extend_from_slice(&stored);
    envelope
}

/// The schema version and the stored metadata bytes of an envelope;
/// `None` when it is not one.
pub fn split_envelope(envelope: &[u8]) -> Option<(u16, &[u8])> {
    match envelope {
        [ENVELOPE_FORMAT, high, low, stored @ ..] => {
            Some((u16::from_be_bytes([*high, *low]), stored))
        }
        _ => None,
    }
}

/// An event as KurrentDB returns it, borrowed.
#[derive(Debug, Clone)]
pub struct KurrentEvent<'a> {
    pub stream: &'a str,
    pub revision: u64,
    pub id: Uuid,
    pub event_type: &'a str,
    pub data: &'a Bytes,
    pub custom_metadata: &'a [u8],
    pub position: Position,
    pub created: DateTime<Utc>,
}

impl<'a> KurrentEvent<'a> {
    /// The parts of an event the client read.
    pub fn of(event: &'a kurrentdb::RecordedEvent) -> KurrentEvent<'a> {
        KurrentEvent {
            stream: event.stream_id(),
            revision: event.revision,
            id: event.id,
            event_type: &event.event_type,
            data: &event.data,
            custom_metadata: &event.custom_metadata,
            position: event.position,
            created: event.created,
        }
    }
}

/// A system event: KurrentDB's own (`$`-prefixed types: a tombstone's
/// `$streamDeleted`, `$metadata`, links `$>`, projections' `$`-events).
pub fn is_system_event(event_type: &str) -> bool {
    event_type.starts_with('$')
}

/// One shared `Arc<str>` per distinct stream and type name of a page.
#[derive(Default)]
pub struct Interner {
    names: HashMap<String, Arc<str>>,
}

impl Interner {
    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = name.into();
        self.names.insert(name.to_owned(), Arc::clone(&shared));
        shared
    }
}

/// The port's event of a KurrentDB event; `None` for what is not the
/// port's: a stream outside the namespace's events, or a system event.
pub fn port_event(
    names: &Names,
    event: &KurrentEvent<'_>,
    interner: &mut Interner,
) -> Result<Option<RecordedEvent>, StoreError> {
    let Some(stream) = names.port_stream(event.stream) else {
        return Ok(None);
    };
    if is_system_event(event.event_type) {
        return Ok(None);
    }
    let undecodable = || {
        StoreError::Backend(format!(
            "event {} of {} (revision {}) has no caseledger envelope in its metadata",
            event.id, event.stream, event.revision
        ))
    };
    let (schema_version, stored) = split_envelope(event.custom_metadata).ok_or_else(undecodable)?;
    let metadata = store::decode_metadata(stored).ok_or_else(undecodable)?;
    Ok(Some(RecordedEvent {
        id: event.id,
        stream: interner.get(stream),
        revision: event.revision,
        position: port_position(event.position)?,
        type_name: interner.get(event.event_type),
        schema_version,
        recorded_at: recorded_at(event.created),
        metadata,
        payload: event.data.clone(),
    }))
}

/// When an event was recorded, to the microsecond (what the hash chain
/// covers and every adapter keeps).
pub fn recorded_at(created: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(created.timestamp_micros()).unwrap_or(created)
}

/// What an append is, next to the events at the end of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// None of its ids is stored: a new append.
    Fresh,
    /// It repeats the stored events ending at this index of the tail.
    Repeat { last: usize },
    /// Some of its ids are stored, but not as this append.
    Mismatch,
}

/// Whether `batch` repeats events of `tail` (the end of its stream, in
/// revision order): its first id is stored and the whole batch matches the
/// stored events from there, in order and content (id, type, schema
/// version, payload).
pub fn retry_of(batch: &[NewEvent], tail: &[RecordedEvent]) -> Retry {
    let Some(first) = batch.first() else {
        return Retry::Fresh;
    };
    match tail.iter().position(|stored| stored.id == first.id) {
        Some(start) => {
            let stored = &tail[start..];
            let same = stored.len() >= batch.len()
                && batch.iter().zip(stored).all(|(new, stored)| {
                    stored.id == new.id
                        && *stored.type_name == *new.type_name
                        && stored.schema_version == new.schema_version
                        && stored.payload == new.payload
                });
            if same {
                Retry::Repeat {
                    last: start + batch.len() - 1,
                }
            } else {
                Retry::Mismatch
            }
        }
        None if batch
            .iter()
            .any(|new| tail.iter().any(|stored| stored.id == new.id)) =>
        {
            Retry::Mismatch
        }
        None => Retry::Fresh,
    }
}

/// Refuse event type names KurrentDB keeps for itself: a `$` type would be
/// filtered out of every read as a system event.
pub fn validate_types(events: &[NewEvent]) -> Result<(), StoreError> {
    match events
        .iter()
        .find(|event| event.type_name.is_empty() || is_system_event(&event.type_name))
    {
        Some(event) => Err(StoreError::InvalidInput(format!(
            "event type {:?}: KurrentDB keeps empty and '$' types for itself",
            event.type_name
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> EventMetadata {
        EventMetadata {
            actor: "account:0190c0de-0000-7000-8000-000000000000".into(),
            correlation_id: Uuid::from_u128(11),
            causation_id: Some(Uuid::from_u128(12)),
            occurred_at: DateTime::from_timestamp(1_700_000_000, 123_456_000).unwrap(),
        }
    }

    fn new_event(id: u128, payload: &[u8]) -> NewEvent {
        NewEvent {
            id: Uuid::from_u128(id),
            type_name: "Happened".to_owned(),
            schema_version: 1,
            metadata: metadata(),
            payload: payload.to_vec(),
        }
    }

    fn stored(id: u128, revision: u64, payload: &[u8]) -> RecordedEvent {
        RecordedEvent {
            id: Uuid::from_u128(id),
            stream: "s".into(),
            revision,
            position: 100 + revision,
            type_name: "Happened".into(),
            schema_version: 1,
            recorded_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            metadata: metadata(),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn every_expected_revision_is_its_stream_state() {
        assert_eq!(stream_state(ExpectedRevision::Any), StreamState::Any);
        assert_eq!(
            stream_state(ExpectedRevision::NoStream),
            StreamState::NoStream
        );
        assert_eq!(
            stream_state(ExpectedRevision::StreamExists),
            StreamState::StreamExists
        );
        assert_eq!(
            stream_state(ExpectedRevision::Exact(0)),
            StreamState::StreamRevision(0)
        );
        assert_eq!(
            stream_state(ExpectedRevision::Exact(u64::MAX - 1)),
            StreamState::StreamRevision(u64::MAX - 1)
        );
    }

    #[test]
    fn a_conflict_reports_the_revision_kurrentdb_saw() {
        assert_eq!(
            current_revision(kurrentdb::CurrentRevision::NoStream),
            CurrentRevision::NoStream
        );
        assert_eq!(
            current_revision(kurrentdb::CurrentRevision::Current(41)),
            CurrentRevision::Current(41)
        );
    }

    #[test]
    fn an_append_expecting_any_is_pinned_to_the_revision_just_read() {
        assert_eq!(
            pinned_state(CurrentRevision::NoStream),
            StreamState::NoStream
        );
        assert_eq!(
            pinned_state(CurrentRevision::Current(3)),
            StreamState::StreamRevision(3)
        );
    }

    #[test]
    fn global_positions_are_commit_positions() {
        assert_eq!(all_position(0), StreamPosition::Start);
        assert_eq!(
            all_position(4_242),
            StreamPosition::Position(Position {
                commit: 4_242,
                prepare: 4_242
            })
        );
        assert_eq!(
            port_position(Position {
                commit: 4_242,
                prepare: 4_242
            })
            .unwrap(),
            4_242
        );
        // The round trip holds for every position the port can hold.
        for position in [1, 2, 1 << 40, u64::MAX] {
            match all_position(position) {
                StreamPosition::Position(p) => assert_eq!(port_position(p).unwrap(), position),
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            port_position(Position::start()),
            Err(StoreError::Backend(_))
        ));
    }

    #[test]
    fn commit_positions_keep_the_order_of_all_but_not_its_density() {
        // Three events of one append and one of another, as KurrentDB
        // places them: each at its own record's offset.
        let commits = [1_024_u64, 1_391, 1_758, 2_306];
        let positions: Vec<u64> = commits
            .iter()
            .map(|&commit| {
                port_position(Position {
                    commit,
                    prepare: commit,
                })
                .unwrap()
            })
            .collect();
        assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(positions.windows(2).any(|pair| pair[1] - pair[0] > 1));
    }

    #[test]
    fn stream_reads_start_at_the_edge_or_the_revision() {
        use Direction::{Backwards, Forwards};
        assert_eq!(
            stream_read_start(StreamStart::Edge, Forwards),
            (StreamPosition::Start, true)
        );
        assert_eq!(
            stream_read_start(StreamStart::Edge, Backwards),
            (StreamPosition::End, false)
        );
        assert_eq!(
            stream_read_start(StreamStart::Revision(5), Forwards),
            (StreamPosition::Position(5), true)
        );
        assert_eq!(
            stream_read_start(StreamStart::Revision(5), Backwards),
            (StreamPosition::Position(5), false)
        );
    }

    #[test]
    fn the_envelope_round_trips_and_refuses_what_is_not_one() {
        let envelope = encode_envelope(513, &metadata());
        assert_eq!(envelope[..3], [ENVELOPE_FORMAT, 2, 1]);
        let (schema, stored) = split_envelope(&envelope).unwrap();
        assert_eq!(schema, 513);
        assert_eq!(stored, store::encode_metadata(&metadata()).as_slice());
        assert_eq!(store::decode_metadata(stored), Some(metadata()));
        for bad in [&b""[..], &[ENVELOPE_FORMAT, 0], &[2, 0, 1], b"{\"json\":1}"] {
            assert_eq!(split_envelope(bad), None, "{bad:?}");
        }
    }

    fn kurrent<'a>(
        stream: &'a str,
        event_type: &'a str,
        data: &'a Bytes,
        custom_metadata: &'a [u8],
    ) -> KurrentEvent<'a> {
        KurrentEvent {
            stream,
            revision: 4,
            id: Uuid::from_u128(9),
            event_type,
            data,
            custom_metadata,
            position: Position {
                commit: 7_000,
                prepare: 7_000,
            },
            created: DateTime::from_timestamp(1_700_000_001, 987_654_321).unwrap(),
        }
    }

    #[test]
    fn a_port_event_comes_back_whole() {
        let names = Names::new("ns").unwrap();
        let data = Bytes::from_static(&[0, 1, 255]);
        let envelope = encode_envelope(3, &metadata());
        let mut interner = Interner::default();
        let event = port_event(
            &names,
            &kurrent("ns/account-1", "RegistrationStarted", &data, &envelope),
            &mut interner,
        )
        .unwrap()
        .unwrap();
        assert_eq!(&*event.stream, "account-1");
        assert_eq!(&*event.type_name, "RegistrationStarted");
        assert_eq!(event.id, Uuid::from_u128(9));
        assert_eq!(event.revision, 4);
        assert_eq!(event.position, 7_000);
        assert_eq!(event.schema_version, 3);
        assert_eq!(event.metadata, metadata());
        assert_eq!(event.payload, data);
        // Recorded to the microsecond.
        assert_eq!(
            event.recorded_at,
            DateTime::from_timestamp(1_700_000_001, 987_654_000).unwrap()
        );
        // A page shares its names.
        let again = port_event(
            &names,
            &kurrent("ns/account-1", "RegistrationStarted", &data, &envelope),
            &mut interner,
        )
        .unwrap()
        .unwrap();
        assert!(Arc::ptr_eq(&event.stream, &again.stream));
        assert!(Arc::ptr_eq(&event.type_name, &again.type_name));
    }

    #[test]
    fn system_events_and_foreign_streams_are_filtered_out() {
        let names = Names::new("ns").unwrap();
        let data = Bytes::new();
        let envelope = encode_envelope(1, &metadata());
        let mut interner = Interner::default();
        for (stream, event_type) in [
            // A tombstone in one of the port's streams.
            ("ns/account-1", "$streamDeleted"),
            ("ns/account-1", "$metadata"),
            ("ns/account-1", "$>"),
            ("$$ns/account-1", "$metadata"),
            ("$stats-127.0.0.1:2113", "$statsCollected"),
            ("$scavenges", "$scavengeStarted"),
            ("$ce-account", "$>"),
            ("ns~chain", "ChainLink"),
            ("ns~value/outbox", "Value"),
            ("other/account-1", "RegistrationStarted"),
            ("account-1", "RegistrationStarted"),
        ] {
            assert_eq!(
                port_event(
                    &names,
                    &kurrent(stream, event_type, &data, &envelope),
                    &mut interner
                )
                .unwrap(),
                None,
                "{stream} {event_type}"
            );
        }
    }

    #[test]
    fn a_port_stream_event_without_an_envelope_is_a_backend_error() {
        let names = Names::new("ns").unwrap();
        let data = Bytes::new();
        let mut interner = Interner::default();
        for metadata in [&b""[..], b"{}", &[ENVELOPE_FORMAT, 0, 1, 0xff]] {
            assert!(matches!(
                port_event(
                    &names,
                    &kurrent("ns/a", "Happened", &data, metadata),
                    &mut interner
                ),
                Err(StoreError::Backend(_))
            ));
        }
    }

    #[test]
    fn a_repeated_append_is_recognised_from_the_tail() {
        let tail = vec![stored(1, 0, b"a"), stored(2, 1, b"b"), stored(3, 2, b"c")];
        assert_eq!(
            retry_of(&[new_event(1, b"a"), new_event(2, b"b")], &tail),
            Retry::Repeat { last: 1 }
        );
        assert_eq!(
            retry_of(&[new_event(2, b"b"), new_event(3, b"c")], &tail),
            Retry::Repeat { last: 2 }
        );
        assert_eq!(
            retry_of(&[new_event(1, b"a")], &tail),
            Retry::Repeat { last: 0 }
        );
        assert_eq!(retry_of(&[new_event(4, b"d")], &tail), Retry::Fresh);
        assert_eq!(retry_of(&[new_event(4, b"d")], &[]), Retry::Fresh);
    }

    #[test]
    fn ids_stored_otherwise_are_a_mismatch() {
        let tail = vec![stored(1, 0, b"a"), stored(2, 1, b"b")];
        let cases = [
            // First id matches, the second does not.
            vec![new_event(1, b"a"), new_event(9, b"z")],
            // Same ids, other order.
            vec![new_event(2, b"b"), new_event(1, b"a")],
            // A new first id, then one already stored.
            vec![new_event(9, b"z"), new_event(2, b"b")],
            // Longer than what was stored.
            vec![new_event(1, b"a"), new_event(2, b"b"), new_event(9, b"z")],
            // Same id, other payload.
            vec![new_event(1, b"other")],
        ];
        for batch in cases {
            assert_eq!(retry_of(&batch, &tail), Retry::Mismatch, "{batch:?}");
        }
        let mut other_type = new_event(1, b"a");
        other_type.type_name = "Other".to_owned();
        assert_eq!(retry_of(&[other_type], &tail), Retry::Mismatch);
        let mut other_schema = new_event(1, b"a");
        other_schema.schema_version = 2;
        assert_eq!(retry_of(&[other_schema], &tail), Retry::Mismatch);
    }

    #[test]
    fn system_type_names_are_refused() {
        assert!(validate_types(&[new_event(1, b"a")]).is_ok());
        let mut system = new_event(2, b"b");
        system.type_name = "$streamDeleted".to_owned();
        assert!(matches!(
            validate_types(&[new_event(1, b"a"), system]),
            Err(StoreError::InvalidInput(_))
        ));
        let mut empty = new_event(3, b"c");
        empty.type_name.clear();
        assert!(matches!(
            validate_types(&[empty]),
            Err(StoreError::InvalidInput(_))
        ));
    }
}
