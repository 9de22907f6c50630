//! The conformance kit of the EventStore port: every case an adapter must
//! pass, run by an adapter crate's tests with one call of
//! [`conformance_suite!`](crate::conformance_suite), giving one test per case.
//!
//! Positions are held only to what the port promises, strictly increasing
//! (see [`assert_positions_increase`]): the cases read or subscribe after 0
//! or a position the store handed out, never after one they computed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use store::command::{Codec, CodecFailure, EncodedEvent, ExecuteOptions};
use store::{
    AppendResult, CurrentRevision, Direction, EventMetadata, EventStore, ExpectedRevision,
    NewEvent, RecordedEvent, StoreError, StreamStart, SubscriptionItem,
};
use uuid::Uuid;

/// Only there so that a broken subscription fails instead of hanging the
/// run; nothing is asserted about how long anything takes.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// A store under test and whatever must live as long as it (a temp dir, a
/// database's guard): dropped after the store.
pub struct Harness {
    pub store: Arc<dyn EventStore>,
    pub guard: Option<Box<dyn std::any::Any + Send>>,
}

impl Harness {
    /// A store that needs nothing kept beside it.
    pub fn new(store: Arc<dyn EventStore>) -> Harness {
        Harness { store, guard: None }
    }

    /// A store and what must outlive it.
    pub fn with_guard(store: Arc<dyn EventStore>, guard: impl std::any::Any + Send) -> Harness {
        Harness {
            store,
            guard: Some(Box::new(guard)),
        }
    }
}

/// What an adapter's run of the suite may relax, each for a reason its ADR
/// gives. [`Capabilities::STRICT`], the default, relaxes nothing; an
/// adapter's test file passes anything else as the fourth argument of
/// [`conformance_suite!`](crate::conformance_suite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// An event id stored in one stream is refused in every other one
    /// ([`StoreError::IdempotencyMismatch`]). When `false` (KurrentDB, ADR
    /// 0010: ids are checked within their own stream only), an append
    /// reusing another stream's ids may be refused or written; either
    /// way it is written whole or not at all, once, and fails nothing
    /// else. Ids reused within their own stream are refused all the same.
    pub event_ids_unique_across_streams: bool,
}

impl Capabilities {
    /// Every case as strict as the port allows.
    pub const STRICT: Capabilities = Capabilities {
        event_ids_unique_across_streams: true,
    };
}

impl Default for Capabilities {
    fn default() -> Capabilities {
        Capabilities::STRICT
    }
}

pub fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "system".into(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        occurred_at: DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid time"),
    }
}

pub fn event(type_name: &str, payload: &[u8]) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        type_name: type_name.to_owned(),
        schema_version: 1,
        metadata: metadata(),
        payload: payload.to_vec(),
    }
}

pub fn events(count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| event("Happened", format!("event {i}").as_bytes()))
        .collect()
}

pub async fn read_whole_stream(store: &dyn EventStore, stream: &str) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, StreamStart::Edge, Direction::Forwards, usize::MAX)
        .await
        .expect("read stream")
}

pub async fn read_all_from(store: &dyn EventStore, after: u64) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = after;
    loop {
        let page = store.read_all(after, 100).await.expect("read all");
        match page.last() {
            Some(last) => after = last.position,
            None => return all,
        }
        all.extend(page);
    }
}

/// Every stored link is the one after the event before it, from the
/// genesis link on; returns the links as stored.
pub async fn assert_every_link(store: &dyn EventStore) -> Vec<store::chain::ChainLink> {
    let recorded = read_all_from(store, 0).await;
    let links = store.read_chain(0, 100_000).await.expect("read the chain");
    assert_eq!(links.len(), recorded.len());
    let mut previous = store::chain::genesis();
    for (event, stored) in recorded.iter().zip(&links) {
        assert_eq!(stored.position, event.position);
        let expected = store::chain::link_recorded(&previous, event);
        assert_eq!(stored.link, expected, "the link at {}", event.position);
        previous = expected;
    }
    links
}

pub fn assert_conflict(
    result: Result<AppendResult, StoreError>,
    stream: &str,
    expected: ExpectedRevision,
    actual: CurrentRevision,
) {
    match result {
        Err(StoreError::Conflict {
            stream: s,
            expected: e,
            actual: a,
        }) => {
            assert_eq!(s, stream);
            assert_eq!(e, expected);
            assert_eq!(a, actual);
        }
        other => panic!("expected a conflict (actual {actual}), got {other:?}"),
    }
}

/// The positions of `events`, in their order.
pub fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|event| event.position).collect()
}

/// The events' positions strictly increase: all the port promises of them.
/// They need not be dense nor start at 1 (KurrentDB's are `$all` commit
/// positions), so the kit computes nothing from a position: it compares
/// what the store reports (appends' results, `read_all`'s order) instead.
pub fn assert_positions_increase(events: &[RecordedEvent]) {
    assert!(
        events
            .windows(2)
            .all(|pair| pair[0].position < pair[1].position),
        "positions do not strictly increase: {:?}",
        positions(events)
    );
}

/// `log` is the whole global log, read from position 0: positions
/// strictly increase, and each stream's revisions count up from 0 in log
/// order, without a gap or an event id twice in one stream.
pub fn assert_whole_log(log: &[RecordedEvent]) {
    assert_positions_increase(log);
    let mut streams: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for event in log {
        let ids = streams.entry(&event.stream).or_default();
        assert_eq!(
            event.revision,
            ids.len() as u64,
            "revision of {} at position {}",
            event.stream,
            event.position
        );
        assert!(
            !ids.contains(&event.id),
            "event {} twice in {}",
            event.id,
            event.stream
        );
        ids.push(event.id);
    }
}

/// The append to `stream` that returned `result` ended with the event that
/// `log` holds at `result.position`: that stream's event at revision
/// `result.next_expected_revision`.
pub fn assert_appended_at(log: &[RecordedEvent], stream: &str, result: AppendResult) {
    let Some(event) = log.iter().find(|event| event.position == result.position) else {
        panic!(
            "no event at position {} (appended to {stream}): {:?}",
            result.position,
            positions(log)
        )
    };
    assert_eq!(
        (&*event.stream, event.revision),
        (stream, result.next_expected_revision),
        "the event at position {}",
        result.position
    );
}

/// The ids of `events`, in their order.
pub fn ids(events: &[RecordedEvent]) -> Vec<Uuid> {
    events.iter().map(|event| event.id).collect()
}

/// The ids of events about to be appended, in their order.
pub fn new_ids(events: &[NewEvent]) -> Vec<Uuid> {
    events.iter().map(|event| event.id).collect()
}

pub async fn next_item(
    subscription: &mut futures::stream::BoxStream<'static, Result<SubscriptionItem, StoreError>>,
) -> SubscriptionItem {
    tokio::time::timeout(HANG_GUARD, subscription.next())
        .await
        .expect("subscription stalled")
        .expect("subscription ended")
        .expect("subscription failed")
}

/// The cases, each generic over the store.
pub mod cases {
    use super::*;

    pub async fn the_chain_links_every_event_to_the_one_before(store: Arc<dyn EventStore>) {
        for round in 0..3u64 {
            for stream in ["chain-a", "chain-b"] {
                let expected = if round == 0 {
                    ExpectedRevision::NoStream
                } else {
                    ExpectedRevision::Any
                };
                store
                    .append(stream, expected, events(2))
                    .await
                    .expect("append");
            }
        }
        let links = assert_every_link(&*store).await;
        let tail = store
            .read_chain(links[2].position, 2)
            .await
            .expect("a page");
        assert_eq!(tail.as_slice(), &links[3..5]);
    }

    pub async fn values_beside_the_log_are_compared_and_swapped(store: Arc<dyn EventStore>) {
        assert_eq!(store.read_value("outbox").await.expect("read"), None);
        assert!(
            !store
                .swap_value("outbox", Some(b"1"), b"2")
                .await
                .expect("swap"),
            "a value never written is not 1"
        );
        assert!(store.swap_value("outbox", None, b"1").await.expect("swap"));
        assert!(
            !store.swap_value("outbox", None, b"9").await.expect("swap"),
            "only one first writer"
        );
        assert!(
            store
                .swap_value("outbox", Some(b"1"), b"2")
                .await
                .expect("swap")
        );
        assert_eq!(
            store.read_value("outbox").await.expect("read").as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(store.read_value("other").await.expect("read"), None);
        // Values are not events.
        assert_eq!(store.head_position().await.expect("head"), 0);
        assert!(matches!(
            store.swap_value("", None, b"x").await,
            Err(StoreError::InvalidInput(_))
        ));
        let racers: Vec<_> = (0..8u8)
            .map(|n| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.swap_value("race", None, &[n]).await })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            won += usize::from(racer.await.expect("task").expect("swap"));
        }
        assert_eq!(won, 1, "exactly one racer sets a fresh value");
    }

    pub async fn data_keys_are_kept_listed_and_destroyed_by_subject(store: Arc<dyn EventStore>) {
        use store::StoredKey;
        let key = |n: u8, subject: &str| StoredKey {
            id: uuid::Uuid::now_v7(),
            subject: subject.to_owned(),
            wrapped: vec![n; 40],
        };
        let (a1, a2, b1) = (
            key(1, "subject-a"),
            key(2, "subject-a"),
            key(3, "subject-b"),
        );
        for k in [&a1, &a2, &b1] {
            store.put_key(k).await.expect("put");
        }
        store
            .put_key(&a1)
            .await
            .expect("putting the same key again is a no-op");
        assert!(
            matches!(
                store
                    .put_key(&StoredKey {
                        wrapped: vec![9; 40],
                        ..a1.clone()
                    })
                    .await,
                Err(StoreError::InvalidInput(_))
            ),
            "an id is never given other material"
        );
        assert!(matches!(
            store
                .put_key(&StoredKey {
                    wrapped: Vec::new(),
                    ..key(0, "s")
                })
                .await,
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(store.read_key(a2.id).await.expect("read"), Some(a2.clone()));
        assert_eq!(
            store.read_key(uuid::Uuid::now_v7()).await.expect("read"),
            None
        );
        assert_eq!(
            store.read_keys(None, 10).await.expect("list"),
            vec![a1.clone(), a2.clone(), b1.clone()]
        );
        assert_eq!(
            store.read_keys(Some(a1.id), 1).await.expect("list"),
            vec![a2.clone()],
            "paged by id"
        );
        assert_eq!(store.destroy_keys("subject-a").await.expect("destroy"), 2);
        assert_eq!(store.destroy_keys("subject-a").await.expect("destroy"), 0);
        assert_eq!(store.read_key(a1.id).await.expect("read"), None);
        assert_eq!(
            store.read_keys(None, 10).await.expect("list"),
            vec![b1.clone()]
        );
        assert_eq!(store.read_key(b1.id).await.expect("read"), Some(b1));
    }

    pub async fn keys_appended_with_their_events_are_kept_with_them(store: Arc<dyn EventStore>) {
        use store::StoredKey;
        let key = |n: u8| StoredKey {
            id: uuid::Uuid::now_v7(),
            subject: format!("subject-{n}"),
            wrapped: vec![n; 61],
        };
        let (first, second) = (key(1), key(2));
        let sent = events(2);
        let appended = store
            .append_with_keys(
                "sealed",
                ExpectedRevision::NoStream,
                sent.clone(),
                vec![first.clone(), second.clone()],
            )
            .await
            .expect("append with keys");
        assert_eq!(appended.next_expected_revision, 1);
        assert_appended_at(&read_all_from(store.as_ref(), 0).await, "sealed", appended);
        assert_eq!(
            store.read_key(first.id).await.expect("read"),
            Some(first.clone())
        );
        assert_eq!(
            store.read_key(second.id).await.expect("read"),
            Some(second.clone())
        );
        // Retried as a whole: the first result, nothing twice.
        let again = store
            .append_with_keys(
                "sealed",
                ExpectedRevision::NoStream,
                sent,
                vec![first.clone(), second.clone()],
            )
            .await
            .expect("retried");
        assert_eq!(again, appended);
        assert_eq!(read_whole_stream(store.as_ref(), "sealed").await.len(), 2);
        assert_eq!(
            store.read_keys(None, 10).await.expect("list"),
            vec![first.clone(), second]
        );
        // Without keys it is a plain append; a key of other material fails it.
        store
            .append_with_keys("sealed", ExpectedRevision::Exact(1), events(1), Vec::new())
            .await
            .expect("no keys");
        let clash = StoredKey {
            wrapped: vec![9; 61],
            ..first.clone()
        };
        assert!(matches!(
            store
                .append_with_keys("other", ExpectedRevision::Any, events(1), vec![clash])
                .await,
            Err(StoreError::InvalidInput(_))
        ));
        assert_eq!(store.read_key(first.id).await.expect("read"), Some(first));
    }

    pub async fn two_writers_racing_on_one_revision_exactly_one_wins(store: Arc<dyn EventStore>) {
        for round in 0..20u64 {
            let stream = format!("race-{round}");
            store
                .append(&stream, ExpectedRevision::NoStream, events(1))
                .await
                .expect("first event");
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let racers: Vec<_> = (0..2)
                .map(|_| {
                    let store = Arc::clone(&store);
                    let barrier = Arc::clone(&barrier);
                    let stream = stream.clone();
                    tokio::spawn(async move {
                        barrier.wait().await;
                        store
                            .append(&stream, ExpectedRevision::Exact(0), events(2))
                            .await
                    })
                })
                .collect();
            let mut wins = 0;
            let mut conflicts = 0;
            for racer in racers {
                match racer.await.expect("racer") {
                    Ok(result) => {
                        assert_eq!(result.next_expected_revision, 2);
                        wins += 1;
                    }
                    conflict => {
                        assert_conflict(
                            conflict,
                            &stream,
                            ExpectedRevision::Exact(0),
                            CurrentRevision::Current(2),
                        );
                        conflicts += 1;
                    }
                }
            }
            assert_eq!((wins, conflicts), (1, 1), "round {round}");
            assert_eq!(read_whole_stream(&*store, &stream).await.len(), 3);
        }
    }

    pub async fn expected_any_accepts_every_state(store: Arc<dyn EventStore>) {
        let first = store
            .append("any", ExpectedRevision::Any, events(2))
            .await
            .expect("any on a new stream");
        assert_eq!(first.next_expected_revision, 1);
        let second = store
            .append("any", ExpectedRevision::Any, events(1))
            .await
            .expect("any on an existing stream");
        assert_eq!(second.next_expected_revision, 2);
        assert!(second.position > first.position);
        let log = read_all_from(&*store, 0).await;
        assert_eq!(log.len(), 3);
        assert_whole_log(&log);
        assert_appended_at(&log, "any", first);
        assert_appended_at(&log, "any", second);
    }

    pub async fn expected_no_stream_accepts_only_a_new_stream(store: Arc<dyn EventStore>) {
        let result = store
            .append("fresh", ExpectedRevision::NoStream, events(3))
            .await
            .expect("no stream on a new stream");
        assert_eq!(result.next_expected_revision, 2);
        assert_conflict(
            store
                .append("fresh", ExpectedRevision::NoStream, events(1))
                .await,
            "fresh",
            ExpectedRevision::NoStream,
            CurrentRevision::Current(2),
        );
    }

    pub async fn expected_stream_exists_refuses_a_new_stream(store: Arc<dyn EventStore>) {
        assert_conflict(
            store
                .append("exists", ExpectedRevision::StreamExists, events(1))
                .await,
            "exists",
            ExpectedRevision::StreamExists,
            CurrentRevision::NoStream,
        );
        store
            .append("exists", ExpectedRevision::NoStream, events(1))
            .await
            .expect("create");
        let result = store
            .append("exists", ExpectedRevision::StreamExists, events(1))
            .await
            .expect("stream exists");
        assert_eq!(result.next_expected_revision, 1);
    }

    pub async fn expected_exact_revision_must_be_the_last_one(store: Arc<dyn EventStore>) {
        assert_conflict(
            store
                .append("exact", ExpectedRevision::Exact(0), events(1))
                .await,
            "exact",
            ExpectedRevision::Exact(0),
            CurrentRevision::NoStream,
        );
        store
            .append("exact", ExpectedRevision::NoStream, events(2))
            .await
            .expect("create");
        for stale in [0, 2, 7] {
            assert_conflict(
                store
                    .append("exact", ExpectedRevision::Exact(stale), events(1))
                    .await,
                "exact",
                ExpectedRevision::Exact(stale),
                CurrentRevision::Current(1),
            );
        }
        let result = store
            .append("exact", ExpectedRevision::Exact(1), events(1))
            .await
            .expect("exact");
        assert_eq!(result.next_expected_revision, 2);
        assert_eq!(read_whole_stream(&*store, "exact").await.len(), 3);
    }

    pub async fn retried_append_returns_the_original_result_and_appends_nothing(
        store: Arc<dyn EventStore>,
    ) {
        let batch = events(3);
        let original = store
            .append("retry", ExpectedRevision::NoStream, batch.clone())
            .await
            .expect("original");
        store
            .append("retry", ExpectedRevision::Exact(2), events(1))
            .await
            .expect("a later append");
        store
            .append("elsewhere", ExpectedRevision::Any, events(1))
            .await
            .expect("another stream");
        let head = store.head_position().await.expect("head");
        for expected in [
            ExpectedRevision::NoStream,
            ExpectedRevision::Any,
            ExpectedRevision::Exact(9),
        ] {
            let retried = store
                .append("retry", expected, batch.clone())
                .await
                .expect("idempotent retry");
            assert_eq!(retried, original);
        }
        let single = store
            .append("retry", ExpectedRevision::Any, vec![batch[0].clone()])
            .await
            .expect("retry of a prefix");
        assert_eq!(single.next_expected_revision, 0);
        assert_eq!(store.head_position().await.expect("head"), head);
        let stored = read_whole_stream(&*store, "retry").await;
        assert_eq!(stored.len(), 4);
        assert_eq!(ids(&stored[..3]), new_ids(&batch));
        // Each result names the position its last event was stored at.
        assert_eq!(single.position, stored[0].position);
        assert_eq!(original.position, stored[2].position);
    }

    pub async fn event_ids_used_differently_are_a_mismatch(
        store: Arc<dyn EventStore>,
        capabilities: Capabilities,
    ) {
        let batch = events(2);
        store
            .append("ids", ExpectedRevision::NoStream, batch.clone())
            .await
            .expect("original");
        let head = store.head_position().await.expect("head");
        let fresh = event("Happened", b"fresh");
        let attempts = [
            // First id matches, the second does not.
            ("ids", vec![batch[0].clone(), fresh.clone()]),
            // Same ids, other order.
            ("ids", vec![batch[1].clone(), batch[0].clone()]),
            // A new first id, then one already stored.
            ("ids", vec![fresh.clone(), batch[1].clone()]),
            // Longer than what was stored.
            (
                "ids",
                vec![batch[0].clone(), batch[1].clone(), fresh.clone()],
            ),
            // The ids belong to another stream.
            ("other", batch.clone()),
        ];
        let mut written_elsewhere = Vec::new();
        // With an expected revision that holds, and with one that does not:
        // a stored first id is looked into before a conflict is reported.
        for expected in [ExpectedRevision::Any, ExpectedRevision::Exact(7)] {
            for (stream, attempt) in attempts.clone() {
                let first_is_new = attempt[0].id == fresh.id;
                // Another stream's ids are new to a store that checks ids
                // within a stream only: it appends them (and repeats that
                // append on a retry) or reports the conflict.
                let new_here = stream != "ids" && !capabilities.event_ids_unique_across_streams;
                match store.append(stream, expected, attempt).await {
                    Err(StoreError::Conflict { .. })
                        if (first_is_new || new_here) && expected != ExpectedRevision::Any => {}
                    Err(StoreError::IdempotencyMismatch { stream: s }) => assert_eq!(s, stream),
                    Ok(result) if new_here => written_elsewhere.push(result),
                    other => panic!("expected a mismatch with {expected:?}, got {other:?}"),
                }
            }
        }
        assert_eq!(
            ids(&read_whole_stream(&*store, "ids").await),
            new_ids(&batch)
        );
        let elsewhere = read_whole_stream(&*store, "other").await;
        if capabilities.event_ids_unique_across_streams || written_elsewhere.is_empty() {
            assert!(elsewhere.is_empty(), "written elsewhere: {elsewhere:?}");
            assert_eq!(store.head_position().await.expect("head"), head);
        } else {
            // Written once and whole, as the other stream's first append.
            assert_eq!(ids(&elsewhere), new_ids(&batch));
            assert_eq!(elsewhere[1].revision, 1);
            let result = AppendResult {
                next_expected_revision: 1,
                position: elsewhere[1].position,
            };
            assert!(
                written_elsewhere.iter().all(|written| *written == result),
                "{written_elsewhere:?} for {result:?}"
            );
            assert_eq!(store.head_position().await.expect("head"), result.position);
        }
        let twice = event("Happened", b"twice");
        assert!(matches!(
            store
                .append("ids", ExpectedRevision::Any, vec![twice.clone(), twice])
                .await,
            Err(StoreError::InvalidInput(_))
        ));
    }

    pub async fn a_failing_append_does_not_fail_its_neighbours(store: Arc<dyn EventStore>) {
        for i in 0..16 {
            store
                .append(&format!("n-{i}"), ExpectedRevision::NoStream, events(1))
                .await
                .expect("create");
        }
        // Fired together so that a batching adapter commits them together.
        let attempts: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let expected = if i % 2 == 0 {
                        ExpectedRevision::Exact(0)
                    } else {
                        ExpectedRevision::Exact(5)
                    };
                    store.append(&format!("n-{i}"), expected, events(2)).await
                })
            })
            .collect();
        let mut written = Vec::new();
        for (i, attempt) in attempts.into_iter().enumerate() {
            let result = attempt.await.expect("task");
            if i % 2 == 0 {
                let result = result.expect("good append");
                assert_eq!(result.next_expected_revision, 2);
                written.push((format!("n-{i}"), result));
            } else {
                assert_conflict(
                    result,
                    &format!("n-{i}"),
                    ExpectedRevision::Exact(5),
                    CurrentRevision::Current(0),
                );
            }
        }
        let all = read_all_from(&*store, 0).await;
        assert_eq!(all.len(), 16 + 8 * 2);
        assert_whole_log(&all);
        for (stream, result) in written {
            assert_appended_at(&all, &stream, result);
        }
        for i in (1..16).step_by(2) {
            assert_eq!(read_whole_stream(&*store, &format!("n-{i}")).await.len(), 1);
        }
    }

    pub async fn an_append_failing_halfway_does_not_fail_its_neighbours(
        store: Arc<dyn EventStore>,
        capabilities: Capabilities,
    ) {
        let taken = events(2);
        store
            .append("taken", ExpectedRevision::NoStream, taken.clone())
            .await
            .expect("original");
        // Fired together so that a batching adapter commits them together.
        // The odd ones fail only after a part of them could be written: a
        // new stream whose first event is new and whose second is stored
        // already, or a new stream whose only event is another stream's.
        let batches: Vec<Vec<NewEvent>> = (0..16)
            .map(|i| match i % 4 {
                1 => vec![event("Happened", b"new"), taken[1].clone()],
                3 => vec![taken[0].clone()],
                _ => events(2),
            })
            .collect();
        let attempts: Vec<_> = batches
            .iter()
            .enumerate()
            .map(|(i, batch)| {
                let store = Arc::clone(&store);
                let batch = batch.clone();
                tokio::spawn(async move {
                    store
                        .append(&format!("h-{i}"), ExpectedRevision::NoStream, batch)
                        .await
                })
            })
            .collect();
        let mut written = Vec::new();
        for (i, attempt) in attempts.into_iter().enumerate() {
            match attempt.await.expect("task") {
                Ok(result) if i % 2 == 0 => {
                    assert_eq!(result.next_expected_revision, 1);
                    written.push((i, result));
                }
                Err(StoreError::IdempotencyMismatch { stream }) if i % 2 == 1 => {
                    assert_eq!(stream, format!("h-{i}"));
                }
                // Another stream's ids are new to a store that checks ids
                // within a stream only: the batch is written whole.
                Ok(result) if i % 2 == 1 && !capabilities.event_ids_unique_across_streams => {
                    assert_eq!(result.next_expected_revision, batches[i].len() as u64 - 1);
                    written.push((i, result));
                }
                other => panic!("append {i}: unexpected {other:?}"),
            }
        }
        let all = read_all_from(&*store, 0).await;
        let written_events: usize = written.iter().map(|(i, _)| batches[*i].len()).sum();
        assert_eq!(all.len(), 2 + written_events);
        assert_whole_log(&all);
        for (i, result) in &written {
            let stream = format!("h-{i}");
            assert_appended_at(&all, &stream, *result);
            assert_eq!(
                ids(&read_whole_stream(&*store, &stream).await),
                new_ids(&batches[*i])
            );
        }
        for i in (1..16).step_by(2) {
            if written.iter().any(|(written, _)| *written == i) {
                continue;
            }
            assert!(
                read_whole_stream(&*store, &format!("h-{i}"))
                    .await
                    .is_empty()
            );
            // Nothing of the failed append holds the stream: it can be created.
            store
                .append(&format!("h-{i}"), ExpectedRevision::NoStream, events(1))
                .await
                .expect("the stream is still new");
        }
    }

    pub async fn read_stream_forwards_and_backwards_with_start_and_limit(
        store: Arc<dyn EventStore>,
    ) {
        for chunk in 0..3 {
            store
                .append("reads", ExpectedRevision::Any, events(4))
                .await
                .expect("append");
            store
                .append(&format!("noise-{chunk}"), ExpectedRevision::Any, events(2))
                .await
                .expect("noise");
        }
        let revisions = |events: Vec<RecordedEvent>| -> Vec<u64> {
            assert!(events.iter().all(|event| *event.stream == *"reads"));
            events.iter().map(|event| event.revision).collect()
        };
        let read = |start, direction, limit| {
            let store = Arc::clone(&store);
            async move {
                store
                    .read_stream("reads", start, direction, limit)
                    .await
                    .expect("read")
            }
        };
        use Direction::{Backwards, Forwards};
        use StreamStart::{Edge, Revision};
        assert_eq!(
            revisions(read(Edge, Forwards, 100).await),
            (0..12).collect::<Vec<_>>()
        );
        assert_eq!(revisions(read(Edge, Forwards, 3).await), vec![0, 1, 2]);
        assert_eq!(
            revisions(read(Revision(5), Forwards, 3).await),
            vec![5, 6, 7]
        );
        assert_eq!(
            revisions(read(Revision(10), Forwards, 5).await),
            vec![10, 11]
        );
        assert!(read(Revision(12), Forwards, 5).await.is_empty());
        assert_eq!(
            revisions(read(Edge, Backwards, 100).await),
            (0..12).rev().collect::<Vec<_>>()
        );
        assert_eq!(revisions(read(Edge, Backwards, 2).await), vec![11, 10]);
        assert_eq!(
            revisions(read(Revision(5), Backwards, 3).await),
            vec![5, 4, 3]
        );
        assert_eq!(revisions(read(Revision(1), Backwards, 5).await), vec![1, 0]);
        assert_eq!(
            revisions(read(Revision(40), Backwards, 2).await),
            vec![11, 10]
        );
        assert!(read(Edge, Forwards, 0).await.is_empty());
        let positions: Vec<u64> = read(Edge, Forwards, 100)
            .await
            .iter()
            .map(|e| e.position)
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]));
        assert!(
            store
                .read_stream("never", Edge, Forwards, 10)
                .await
                .expect("read")
                .is_empty()
        );
    }

    pub async fn read_all_pages_through_the_global_log(store: Arc<dyn EventStore>) {
        assert_eq!(store.head_position().await.expect("head"), 0);
        assert!(store.read_all(0, 10).await.expect("read").is_empty());
        let mut appended = Vec::new();
        let mut results = Vec::new();
        for i in 0..10 {
            let batch = events(i % 3 + 1);
            appended.extend(batch.iter().map(|event| event.id));
            let stream = format!("page-{}", i % 4);
            let result = store
                .append(&stream, ExpectedRevision::Any, batch)
                .await
                .expect("append");
            results.push((stream, result));
        }
        let head = store.head_position().await.expect("head");
        let log = read_all_from(&*store, 0).await;
        assert_eq!(ids(&log), appended);
        assert_whole_log(&log);
        for (stream, result) in &results {
            assert_appended_at(&log, stream, *result);
        }
        assert_eq!(head, results.last().expect("appended").1.position);
        assert_eq!(head, log.last().expect("a log").position);
        for page_size in [1, 3, 7, 100] {
            let mut after = 0;
            let mut seen = Vec::new();
            loop {
                let page = store.read_all(after, page_size).await.expect("read");
                assert!(page.len() <= page_size);
                let Some(last) = page.last() else { break };
                after = last.position;
                seen.extend(page);
            }
            assert_eq!(seen, log, "pages of {page_size}");
        }
        // After any position handed out: exactly the events after it.
        for (index, event) in log.iter().enumerate() {
            let page = store.read_all(event.position, 4).await.expect("read");
            let end = (index + 5).min(log.len());
            assert_eq!(page.as_slice(), &log[index + 1..end], "after {index}");
        }
        assert!(store.read_all(head, 10).await.expect("read").is_empty());
        assert!(store.read_all(0, 0).await.expect("read").is_empty());
    }

    pub async fn envelope_round_trips(store: Arc<dyn EventStore>) {
        let before = Utc::now() - chrono::Duration::seconds(1);
        let mut new = event("RegistrationStarted", &[0, 1, 2, 255]);
        new.schema_version = 3;
        new.metadata.actor = "account:0190c0de-0000-7000-8000-000000000000".into();
        new.metadata.causation_id = Some(Uuid::now_v7());
        let result = store
            .append("envelope", ExpectedRevision::NoStream, vec![new.clone()])
            .await
            .expect("append");
        let stored = read_whole_stream(&*store, "envelope").await;
        let [stored] = stored.as_slice() else {
            panic!("one event expected, got {stored:?}")
        };
        assert_eq!(stored.id, new.id);
        assert_eq!(&*stored.stream, "envelope");
        assert_eq!(stored.revision, 0);
        assert_eq!(stored.position, result.position);
        assert_eq!(*stored.type_name, *new.type_name);
        assert_eq!(stored.schema_version, 3);
        assert_eq!(stored.metadata, new.metadata);
        assert_eq!(stored.payload, new.payload);
        assert!(stored.recorded_at >= before);
        let via_all = store.read_all(0, 10).await.expect("read all");
        assert_eq!(via_all, vec![stored.clone()]);
    }

    pub async fn subscription_catches_up_then_follows_live(store: Arc<dyn EventStore>) {
        store
            .append("sub", ExpectedRevision::Any, events(5))
            .await
            .expect("append");
        let committed = read_all_from(&*store, 0).await;
        assert_eq!(committed.len(), 5);
        let mut subscription = store.subscribe_all(committed[1].position);
        for expected in &committed[2..] {
            match next_item(&mut subscription).await {
                SubscriptionItem::Event(event) => assert_eq!(&event, expected),
                other => panic!("expected the event at {}, got {other:?}", expected.position),
            }
        }
        assert_eq!(
            next_item(&mut subscription).await,
            SubscriptionItem::CaughtUp
        );
        let live = store
            .append("sub", ExpectedRevision::Any, events(2))
            .await
            .expect("append");
        let appended = read_all_from(&*store, committed[4].position).await;
        assert_eq!(appended.len(), 2);
        assert_appended_at(&appended, "sub", live);
        for expected in &appended {
            match next_item(&mut subscription).await {
                SubscriptionItem::Event(event) => assert_eq!(&event, expected),
                other => panic!("expected the event at {}, got {other:?}", expected.position),
            }
        }
    }

    pub async fn subscription_ends_when_the_store_is_dropped(store: Arc<dyn EventStore>) {
        store
            .append("closing", ExpectedRevision::Any, events(3))
            .await
            .expect("append");
        let mut subscription = store.subscribe_all(0);
        drop(store);
        let mut items = Vec::new();
        loop {
            let item = tokio::time::timeout(HANG_GUARD, subscription.next())
                .await
                .expect("subscription stalled");
            match item {
                Some(Ok(item)) => items.push(item),
                Some(Err(StoreError::Closed)) => break,
                other => panic!("expected the end of the store, got {other:?}"),
            }
        }
        assert_eq!(items.len(), 4, "three events and CaughtUp: {items:?}");
        assert_eq!(items[3], SubscriptionItem::CaughtUp);
        assert!(subscription.next().await.is_none());
    }

    pub async fn tombstoned_stream_is_gone_forever(store: Arc<dyn EventStore>) {
        store
            .append("doomed", ExpectedRevision::NoStream, events(2))
            .await
            .expect("append");
        assert_conflict(
            store
                .tombstone("doomed", ExpectedRevision::Exact(0))
                .await
                .map(|()| AppendResult {
                    next_expected_revision: 0,
                    position: 0,
                }),
            "doomed",
            ExpectedRevision::Exact(0),
            CurrentRevision::Current(1),
        );
        store
            .tombstone("doomed", ExpectedRevision::Exact(1))
            .await
            .expect("tombstone");
        let is_deleted = |result: Result<(), StoreError>| matches!(result, Err(StoreError::StreamDeleted { stream }) if stream == "doomed");
        for expected in [
            ExpectedRevision::Any,
            ExpectedRevision::NoStream,
            ExpectedRevision::StreamExists,
            ExpectedRevision::Exact(1),
        ] {
            assert!(is_deleted(
                store.append("doomed", expected, events(1)).await.map(drop)
            ));
        }
        for direction in [Direction::Forwards, Direction::Backwards] {
            assert!(is_deleted(
                store
                    .read_stream("doomed", StreamStart::Edge, direction, 10)
                    .await
                    .map(drop)
            ));
        }
        assert!(is_deleted(
            store.tombstone("doomed", ExpectedRevision::Any).await
        ));
        // The events stay in the global log.
        let all = read_all_from(&*store, 0).await;
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|event| *event.stream == *"doomed"));

        // A name that never had events can be tombstoned too.
        store
            .tombstone("reserved", ExpectedRevision::NoStream)
            .await
            .expect("tombstone a new name");
        assert!(matches!(
            store
                .append("reserved", ExpectedRevision::NoStream, events(1))
                .await,
            Err(StoreError::StreamDeleted { .. })
        ));
        assert_conflict(
            store
                .tombstone("absent", ExpectedRevision::StreamExists)
                .await
                .map(|()| AppendResult {
                    next_expected_revision: 0,
                    position: 0,
                }),
            "absent",
            ExpectedRevision::StreamExists,
            CurrentRevision::NoStream,
        );
        store
            .append("absent", ExpectedRevision::NoStream, events(1))
            .await
            .expect("a failed tombstone leaves the name usable");
    }

    pub async fn large_payloads_round_trip(store: Arc<dyn EventStore>) {
        let payload = |seed: u8| -> Vec<u8> {
            (0..1024 * 1024)
                .map(|i: u32| (i.wrapping_mul(31) as u8) ^ seed)
                .collect()
        };
        let batch = vec![
            event("Big", &payload(1)),
            event("Big", &payload(2)),
            event("Small", b"x"),
        ];
        store
            .append("large", ExpectedRevision::NoStream, batch.clone())
            .await
            .expect("append");
        let stored = read_whole_stream(&*store, "large").await;
        assert_eq!(stored.len(), 3);
        for (stored, new) in stored.iter().zip(&batch) {
            assert_eq!(stored.id, new.id);
            assert!(stored.payload == new.payload, "payload differs");
        }
    }

    pub async fn empty_appends_are_refused(store: Arc<dyn EventStore>) {
        for expected in [
            ExpectedRevision::Any,
            ExpectedRevision::NoStream,
            ExpectedRevision::Exact(0),
        ] {
            assert!(matches!(
                store.append("empty", expected, Vec::new()).await,
                Err(StoreError::EmptyAppend)
            ));
        }
        assert_eq!(store.head_position().await.expect("head"), 0);
        assert!(read_whole_stream(&*store, "empty").await.is_empty());
    }

    pub async fn concurrent_commands_land_with_contiguous_revisions(store: Arc<dyn EventStore>) {
        const TASKS: u64 = 16;
        const COMMANDS_PER_TASK: u64 = 4;
        // Every lost attempt is another command's win, so this bound is
        // never reached however the tasks interleave.
        let options = ExecuteOptions {
            max_attempts: (TASKS * COMMANDS_PER_TASK + 1) as u32,
        };
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for _ in 0..COMMANDS_PER_TASK {
                        let executed = store::command::execute::<Counter, _>(
                            &*store,
                            &CounterCodec,
                            "counter",
                            &Increment,
                            &metadata(),
                            options,
                        )
                        .await
                        .expect("execute");
                        assert_eq!(executed.events.len(), 1);
                        let append = executed.append.expect("an append");
                        assert_eq!(executed.events[0].0, append.next_expected_revision + 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        let stored = read_whole_stream(&*store, "counter").await;
        assert_eq!(stored.len() as u64, TASKS * COMMANDS_PER_TASK);
        for (revision, recorded) in stored.iter().enumerate() {
            assert_eq!(recorded.revision, revision as u64);
            let value = CounterCodec.decode(recorded).expect("decode");
            assert_eq!(value.0, revision as u64 + 1);
        }
        let (state, expected) =
            store::command::load::<Counter, _>(&*store, &CounterCodec, "counter")
                .await
                .expect("load");
        assert_eq!(state, TASKS * COMMANDS_PER_TASK);
        assert_eq!(
            expected,
            ExpectedRevision::Exact(TASKS * COMMANDS_PER_TASK - 1)
        );
    }

    pub async fn a_preloaded_state_decides_once_and_a_stale_one_is_reloaded(
        store: Arc<dyn EventStore>,
    ) {
        let execute = |loaded| {
            let store = Arc::clone(&store);
            async move {
                store::command::execute_loaded::<Counter, _>(
                    &*store,
                    &CounterCodec,
                    "preloaded",
                    &Increment,
                    &metadata(),
                    ExecuteOptions::default(),
                    loaded,
                )
                .await
                .expect("execute")
            }
        };
        execute(None).await;
        let fresh = store::command::load::<Counter, _>(&*store, &CounterCodec, "preloaded")
            .await
            .expect("load");
        assert_eq!(fresh, (1, ExpectedRevision::Exact(0)));
        let executed = execute(Some(fresh)).await;
        assert_eq!(executed.events, vec![Incremented(2)]);
        // A state folded before another write: the append conflicts, the
        // retry reloads, and the counter still never repeats a value.
        let stale = (1, ExpectedRevision::Exact(0));
        let executed = execute(Some(stale)).await;
        assert_eq!(executed.events, vec![Incremented(3)]);
        let values: Vec<u64> = read_whole_stream(&*store, "preloaded")
            .await
            .iter()
            .map(|recorded| CounterCodec.decode(recorded).expect("decode").0)
            .collect();
        assert_eq!(values, vec![1, 2, 3]);
        // The first attempt decides on the state given, without a read: a
        // state the stream never had, at the right revision, is what decides.
        let executed = execute(Some((10, ExpectedRevision::Exact(2)))).await;
        assert_eq!(executed.events, vec![Incremented(11)]);
    }
}

/// A toy decider: a counter that only goes up.
struct Counter;
struct Increment;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Incremented(u64);

impl domain::Decider for Counter {
    type State = u64;
    type Command = Increment;
    type Event = Incremented;
    type Error = std::convert::Infallible;

    fn evolve(state: &mut u64, event: &Incremented) {
        *state = event.0;
    }

    fn decide(state: &u64, _: &Increment) -> Result<Vec<Incremented>, Self::Error> {
        Ok(vec![Incremented(state + 1)])
    }
}

/// A toy codec: the counter value as postcard.
struct CounterCodec;

#[async_trait::async_trait]
impl Codec<Incremented> for CounterCodec {
    fn encode(&self, _id: uuid::Uuid, event: &Incremented) -> Result<EncodedEvent, CodecFailure> {
        Ok(EncodedEvent {
            type_name: "Incremented",
            schema_version: 1,
            payload: postcard::to_stdvec(&event.0)?,
        })
    }

    fn decode(&self, recorded: &RecordedEvent) -> Result<Incremented, CodecFailure> {
        if *recorded.type_name != *"Incremented" || recorded.schema_version != 1 {
            return Err(format!("unknown event {}", recorded.type_name).into());
        }
        Ok(Incremented(postcard::from_bytes(&recorded.payload)?))
    }
}

/// One run of the subscription property: appends `before` sequentially,
/// subscribes from a checkpoint, appends `during` from several tasks at
/// once, and checks what the subscriber collected.
pub async fn subscription_under_concurrent_appends(
    harness: Harness,
    before: Vec<(usize, u8)>,
    during: Vec<(usize, usize, u8)>,
    checkpoint_per_mille: u64,
) {
    let store = Arc::clone(&harness.store);
    for (stream, count) in before {
        store
            .append(
                &format!("p-{stream}"),
                ExpectedRevision::Any,
                events(count.into()),
            )
            .await
            .expect("append before");
    }
    let head_before = store.head_position().await.expect("head");
    let log_before = read_all_from(&*store, 0).await;
    assert_eq!(
        log_before.last().map_or(0, |event| event.position),
        head_before
    );
    // A checkpoint is 0 or a position the store handed out: here the
    // position of an event some way into the log.
    let index = (log_before.len() as u64 * checkpoint_per_mille / 1000) as usize;
    let checkpoint = index
        .checked_sub(1)
        .map_or(0, |last_read| log_before[last_read].position);
    let committed_after_checkpoint = &log_before[index..];

    let mut subscription = store.subscribe_all(checkpoint);
    let (items, mut received) = tokio::sync::mpsc::unbounded_channel();
    let collector = tokio::spawn(async move {
        while let Some(item) = subscription.next().await {
            if items.send(item).is_err() {
                break;
            }
        }
    });

    let mut per_writer: HashMap<usize, Vec<(usize, u8)>> = HashMap::new();
    for (writer, stream, count) in during {
        per_writer.entry(writer).or_default().push((stream, count));
    }
    let writers: Vec<_> = per_writer
        .into_values()
        .map(|batches| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for (stream, count) in batches {
                    store
                        .append(
                            &format!("p-{stream}"),
                            ExpectedRevision::Any,
                            events(count.into()),
                        )
                        .await
                        .expect("append during");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let head_after = store.head_position().await.expect("head");
    let expected = read_all_from(&*store, checkpoint).await;

    let mut delivered = Vec::new();
    let mut caught_up_at = Vec::new();
    while caught_up_at.is_empty() || delivered.len() < expected.len() {
        let item = tokio::time::timeout(HANG_GUARD, received.recv())
            .await
            .expect("subscription stalled")
            .expect("subscription ended")
            .expect("subscription failed");
        match item {
            SubscriptionItem::Event(event) => delivered.push(event),
            SubscriptionItem::CaughtUp => caught_up_at.push(delivered.len()),
        }
    }
    collector.abort();
    while let Ok(item) = received.try_recv() {
        match item.expect("subscription failed") {
            SubscriptionItem::Event(event) => delivered.push(event),
            SubscriptionItem::CaughtUp => caught_up_at.push(delivered.len()),
        }
    }

    assert_eq!(caught_up_at.len(), 1, "CaughtUp exactly once");
    assert_eq!(
        expected.last().map_or(checkpoint, |event| event.position),
        head_after
    );
    // Every event exactly once, in global order, nothing else.
    assert_positions_increase(&expected);
    assert_eq!(delivered, expected);
    // Everything committed before subscribing came before CaughtUp.
    let before_caught_up = &delivered[..caught_up_at[0]];
    assert!(before_caught_up.len() >= committed_after_checkpoint.len());
    assert_eq!(
        &before_caught_up[..committed_after_checkpoint.len()],
        committed_after_checkpoint
    );
    drop(harness);
}

/// The whole suite for one adapter, as a module `$adapter` of tests: one
/// `#[tokio::test]` per case and the subscription property with
/// `$subscription_cases` runs. `$harness` is a `fn() -> Harness` that gives
/// a fresh, empty store. An optional fourth argument, a
/// [`Capabilities`](crate::conformance::Capabilities) named by a full path
/// (it is read inside the module), relaxes what the adapter's ADR says it
/// cannot promise; without it every case is held to
/// [`Capabilities::STRICT`](crate::conformance::Capabilities::STRICT). The
/// calling crate needs `tokio` (tests) among its dev-dependencies.
#[macro_export]
macro_rules! conformance_suite {
    ($adapter:ident, $harness:path, $subscription_cases:expr) => {
        $crate::conformance_suite!(
            $adapter,
            $harness,
            $subscription_cases,
            $crate::conformance::Capabilities::STRICT
        );
    };
    ($adapter:ident, $harness:path, $subscription_cases:expr, $capabilities:expr) => {
        $crate::conformance_suite!(@cases $adapter, $harness, $subscription_cases, $capabilities;
            [
                two_writers_racing_on_one_revision_exactly_one_wins,
                expected_any_accepts_every_state,
                expected_no_stream_accepts_only_a_new_stream,
                expected_stream_exists_refuses_a_new_stream,
                expected_exact_revision_must_be_the_last_one,
                retried_append_returns_the_original_result_and_appends_nothing,
                a_failing_append_does_not_fail_its_neighbours,
                read_stream_forwards_and_backwards_with_start_and_limit,
                read_all_pages_through_the_global_log,
                envelope_round_trips,
                subscription_catches_up_then_follows_live,
                subscription_ends_when_the_store_is_dropped,
                tombstoned_stream_is_gone_forever,
                large_payloads_round_trip,
                empty_appends_are_refused,
                concurrent_commands_land_with_contiguous_revisions,
                a_preloaded_state_decides_once_and_a_stale_one_is_reloaded,
                values_beside_the_log_are_compared_and_swapped,
                data_keys_are_kept_listed_and_destroyed_by_subject,
                keys_appended_with_their_events_are_kept_with_them,
                the_chain_links_every_event_to_the_one_before,
            ]
            // The cases a capability relaxes.
            [
                event_ids_used_differently_are_a_mismatch,
                an_append_failing_halfway_does_not_fail_its_neighbours,
            ]
        );
    };
    (@cases $adapter:ident, $harness:path, $subscription_cases:expr, $capabilities:expr;
        [$($case:ident),* $(,)?] [$($relaxable:ident),* $(,)?]) => {
        mod $adapter {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    // The case owns the only handle: dropping it closes the store.
                    let harness: $crate::conformance::Harness = $harness();
                    let guard = harness.guard;
                    $crate::conformance::cases::$case(harness.store).await;
                    drop(guard);
                }
            )*

            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $relaxable() {
                    let capabilities: $crate::conformance::Capabilities = $capabilities;
                    let harness: $crate::conformance::Harness = $harness();
                    let guard = harness.guard;
                    $crate::conformance::cases::$relaxable(harness.store, capabilities).await;
                    drop(guard);
                }
            )*

            $crate::proptest::proptest! {
                #![proptest_config($crate::proptest::prelude::ProptestConfig {
                    cases: $subscription_cases,
                    ..$crate::proptest::prelude::ProptestConfig::default()
                })]

                #[test]
                fn subscription_delivers_every_event_once_under_concurrent_appends(
                    before in $crate::proptest::collection::vec((0usize..5, 1u8..4), 0..12),
                    during in $crate::proptest::collection::vec((0usize..3, 0usize..5, 1u8..4), 0..30),
                    checkpoint_per_mille in 0u64..=1000,
                ) {
                    let runtime = $crate::tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("runtime");
                    runtime.block_on($crate::conformance::subscription_under_concurrent_appends(
                        $harness(),
                        before,
                        during,
                        checkpoint_per_mille,
                    ));
                }
            }
        }
    };
}
