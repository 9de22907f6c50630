//! The conformance kit on the in-memory store seen through sparse
//! positions (`test_support::sparse`): every case passes where positions
//! are neither dense nor start at 1 and a foreign namespace's events lie
//! in between, as on KurrentDB. And the wrapper does what it claims, so
//! that this run shows something.

use std::sync::Arc;

use futures::StreamExt;
use store::memory::MemoryStore;
use store::{EventStore, ExpectedRevision, StoreError};
use test_support::conformance::{
    Capabilities, Harness, assert_whole_log, cases, event, events, positions, read_all_from,
    read_whole_stream,
};
use test_support::sparse::{FOREIGN_PREFIX, OFFSET, STRIDE, SparsePositions, shown_position};

fn harness() -> Harness {
    Harness::new(Arc::new(SparsePositions::new(MemoryStore::new())))
}

test_support::conformance_suite!(sparse_memory, crate::harness, 64);

/// The same store checking ids within their own stream only, run with what
/// KurrentDB's run relaxes: the relaxed branches of the kit are taken here.
fn harness_with_ids_per_stream() -> Harness {
    Harness::new(Arc::new(SparsePositions::with_ids_per_stream(
        MemoryStore::new(),
    )))
}

const IDS_PER_STREAM: Capabilities = Capabilities {
    event_ids_unique_across_streams: false,
};

test_support::conformance_suite!(
    sparse_memory_ids_per_stream,
    crate::harness_with_ids_per_stream,
    16,
    crate::IDS_PER_STREAM
);

mod sparse_only {
    use super::*;

    async fn appended_one_by_one() -> SparsePositions<MemoryStore> {
        let store = SparsePositions::new(MemoryStore::new());
        for i in 0..12 {
            store
                .append(&format!("s-{}", i % 3), ExpectedRevision::Any, events(1))
                .await
                .expect("append");
        }
        store
    }

    #[tokio::test]
    async fn positions_have_gaps_start_far_from_one_and_hide_the_foreign_namespace() {
        let store = appended_one_by_one().await;
        let log = read_all_from(&store, 0).await;
        assert_eq!(log.len(), 12);
        assert_whole_log(&log);
        assert!(log.iter().all(|event| event.stream.starts_with("s-")));
        assert!(log[0].position > OFFSET);
        let steps: Vec<u64> = log
            .windows(2)
            .map(|pair| pair[1].position - pair[0].position)
            .collect();
        assert!(steps.iter().all(|step| *step >= STRIDE), "{steps:?}");
        assert!(
            steps.iter().any(|step| *step > STRIDE),
            "foreign events lie in between: {steps:?}"
        );
        assert_eq!(store.head_position().await.expect("head"), log[11].position);
        // The inner store holds the foreign events the wrapper hides.
        let inner = read_all_from(store.inner(), 0).await;
        assert!(inner.len() > log.len());
        assert!(
            inner
                .iter()
                .any(|event| event.stream.starts_with(FOREIGN_PREFIX))
        );
        assert_eq!(
            inner
                .iter()
                .filter(|event| !event.stream.starts_with(FOREIGN_PREFIX))
                .map(|event| shown_position(event.position))
                .collect::<Vec<_>>(),
            positions(&log)
        );
        // Stream reads and subscriptions show the same positions.
        let stream = read_whole_stream(&store, "s-0").await;
        assert!(stream.iter().all(|event| log.contains(event)));
        let mut subscription = store.subscribe_all(log[5].position);
        for expected in &log[6..] {
            let item = subscription.next().await.expect("an item").expect("ok");
            assert_eq!(item, store::SubscriptionItem::Event(expected.clone()));
        }
    }

    /// The relaxed run above shows something only if the strict cases
    /// fail on a store that checks ids per stream.
    #[tokio::test]
    async fn ids_per_stream_fail_exactly_the_strict_cases_that_capability_relaxes() {
        let strict_ids = tokio::spawn(cases::event_ids_used_differently_are_a_mismatch(
            Arc::new(SparsePositions::with_ids_per_stream(MemoryStore::new())),
            Capabilities::STRICT,
        ))
        .await;
        assert!(strict_ids.is_err_and(|error| error.is_panic()));
        let strict_halfway = tokio::spawn(
            cases::an_append_failing_halfway_does_not_fail_its_neighbours(
                Arc::new(SparsePositions::with_ids_per_stream(MemoryStore::new())),
                Capabilities::STRICT,
            ),
        )
        .await;
        assert!(strict_halfway.is_err_and(|error| error.is_panic()));

        // Within one stream, ids are still checked.
        let store = SparsePositions::with_ids_per_stream(MemoryStore::new());
        let batch = events(2);
        let original = store
            .append("mine", ExpectedRevision::NoStream, batch.clone())
            .await
            .expect("append");
        assert_eq!(
            store
                .append("mine", ExpectedRevision::Any, batch.clone())
                .await
                .expect("retry"),
            original
        );
        assert!(matches!(
            store
                .append(
                    "mine",
                    ExpectedRevision::Any,
                    vec![batch[0].clone(), event("Happened", b"other")]
                )
                .await,
            Err(StoreError::IdempotencyMismatch { .. })
        ));
        let elsewhere = store
            .append("theirs", ExpectedRevision::NoStream, batch.clone())
            .await
            .expect("another stream's ids are new here");
        let log = read_all_from(&store, 0).await;
        assert_eq!(log.len(), 4);
        assert_eq!(log[3].position, elsewhere.position);
        assert_eq!(log[0].id, log[2].id, "ids are shown as appended");
    }

    #[tokio::test]
    async fn a_position_never_handed_out_is_refused() {
        let store = appended_one_by_one().await;
        let log = read_all_from(&store, 0).await;
        let inner = read_all_from(store.inner(), 0).await;
        let foreign = inner
            .iter()
            .find(|event| event.stream.starts_with(FOREIGN_PREFIX))
            .expect("a foreign event");
        let beyond = inner.len() as u64 + 1;
        for computed in [
            1,
            log[3].position + 1,
            log[3].position - 1,
            shown_position(foreign.position),
            shown_position(beyond),
        ] {
            assert!(
                matches!(
                    store.read_all(computed, 10).await,
                    Err(StoreError::InvalidInput(_))
                ),
                "read_all after {computed}"
            );
            assert!(
                matches!(
                    store.read_chain(computed, 10).await,
                    Err(StoreError::InvalidInput(_))
                ),
                "read_chain after {computed}"
            );
            assert!(
                matches!(
                    store.subscribe_all(computed).next().await,
                    Some(Err(StoreError::InvalidInput(_)))
                ),
                "subscribe_all after {computed}"
            );
        }
        assert!(
            matches!(
                store
                    .append(
                        &format!("{FOREIGN_PREFIX}0"),
                        ExpectedRevision::Any,
                        events(1)
                    )
                    .await,
                Err(StoreError::InvalidInput(_))
            ),
            "the foreign namespace is not the port's"
        );
    }
}
