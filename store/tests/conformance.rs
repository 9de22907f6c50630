//! The conformance kit (`test_support::conformance`) run against the
//! in-memory and the embedded SQLite adapter, plus the SQLite-only cases
//! (schema versioning, two stores on one file) in `sqlite_file::*`.

use std::sync::Arc;

use futures::StreamExt;
use store::memory::MemoryStore;
use store::sqlite::{SqliteOptions, SqliteStore};
use store::{CurrentRevision, EventStore, ExpectedRevision, StoreError, SubscriptionItem};
use test_support::conformance::{
    HANG_GUARD, Harness, assert_conflict, cases, events, positions, read_all_from,
    read_whole_stream,
};

fn memory_harness() -> Harness {
    Harness::new(Arc::new(MemoryStore::new()))
}

fn sqlite_harness() -> Harness {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("events.db"), SqliteOptions::default())
        .expect("open sqlite store");
    Harness::with_guard(Arc::new(store), dir)
}

test_support::conformance_suite!(memory, crate::memory_harness, 64);
test_support::conformance_suite!(sqlite, crate::sqlite_harness, 16);

/// Cases only the file-backed adapter has.
mod sqlite_file {
    use super::*;

    fn open(path: &std::path::Path) -> SqliteStore {
        SqliteStore::open(path, SqliteOptions::default()).expect("open")
    }

    /// Every other case runs on a multi-threaded runtime; the store serves
    /// reads and subscriptions on a current-thread one all the same.
    #[tokio::test(flavor = "current_thread")]
    async fn a_current_thread_runtime_is_served_too() {
        let Harness { store, guard: dir } = sqlite_harness();
        cases::subscription_catches_up_then_follows_live(Arc::clone(&store)).await;
        let stream = read_whole_stream(&*store, "sub").await;
        assert_eq!(stream.len(), 7);
        assert_eq!(read_all_from(&*store, 0).await, stream);
        drop(store);
        drop(dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reopened_store_keeps_its_events() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        let appended = {
            let store = open(&path);
            store
                .append("kept", ExpectedRevision::NoStream, events(3))
                .await
                .expect("append");
            store
                .tombstone("gone", ExpectedRevision::Any)
                .await
                .expect("tombstone");
            read_all_from(&store, 0).await
        };
        let store = open(&path);
        assert_eq!(read_all_from(&store, 0).await, appended);
        assert_eq!(store.head_position().await.expect("head"), 3);
        assert!(matches!(
            store.append("gone", ExpectedRevision::Any, events(1)).await,
            Err(StoreError::StreamDeleted { .. })
        ));
        let next = store
            .append("kept", ExpectedRevision::Exact(2), events(1))
            .await
            .expect("append after reopen");
        assert_eq!(next.position, 4);
    }

    #[test]
    fn a_file_from_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        drop(open(&path));
        let newer = store::sqlite::SCHEMA_VERSION + 1;
        rusqlite::Connection::open(&path)
            .expect("open raw")
            .execute_batch(&format!("PRAGMA user_version = {newer}"))
            .expect("bump version");
        match SqliteStore::open(&path, SqliteOptions::default()) {
            Err(error @ StoreError::SchemaTooNew { .. }) => {
                let StoreError::SchemaTooNew {
                    path: shown,
                    found,
                    supported,
                } = &error
                else {
                    unreachable!()
                };
                assert_eq!(*found, newer);
                assert_eq!(*supported, store::sqlite::SCHEMA_VERSION);
                assert_eq!(shown, &path.display().to_string());
                let message = error.to_string();
                assert!(message.contains("newer"), "{message}");
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }

        // An empty file that claims a newer version is refused as well.
        let other = dir.path().join("other.db");
        rusqlite::Connection::open(&other)
            .expect("open raw")
            .execute_batch("PRAGMA user_version = 99")
            .expect("set version");
        assert!(matches!(
            SqliteStore::open(&other, SqliteOptions::default()),
            Err(StoreError::SchemaTooNew { found: 99, .. })
        ));
    }

    #[tokio::test]
    async fn a_stream_head_one_store_knows_is_not_trusted_after_the_other_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        let server = open(&path);
        let job = open(&path);

        // Both writers meet the stream, so both know its head.
        server
            .append("shared", ExpectedRevision::NoStream, events(1))
            .await
            .expect("server appends");
        job.append("shared", ExpectedRevision::Exact(0), events(1))
            .await
            .expect("job appends after the server");
        // The server last saw revision 0; the file says 1.
        assert_conflict(
            server
                .append("shared", ExpectedRevision::Exact(0), events(1))
                .await,
            "shared",
            ExpectedRevision::Exact(0),
            CurrentRevision::Current(1),
        );
        let any = server
            .append("shared", ExpectedRevision::Any, events(1))
            .await
            .expect("server appends at the head");
        assert_eq!(any.next_expected_revision, 2);
        assert_eq!(any.position, 3);

        // A tombstone by one writer stops the other's appends.
        job.tombstone("shared", ExpectedRevision::Exact(2))
            .await
            .expect("job tombstones");
        match server
            .append("shared", ExpectedRevision::Any, events(1))
            .await
        {
            Err(StoreError::StreamDeleted { stream }) => assert_eq!(stream, "shared"),
            other => panic!("expected StreamDeleted, got {other:?}"),
        }
        assert_eq!(read_all_from(&job, 0).await.len(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_see_each_others_appends() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("events.db");
        // Like the server and a batch job: two stores, two writer threads.
        let server = open(&path);
        let job = open(&path);

        let mut subscription = server.subscribe_all(0);
        let first = tokio::time::timeout(HANG_GUARD, subscription.next())
            .await
            .expect("stalled")
            .expect("ended")
            .expect("failed");
        assert_eq!(first, SubscriptionItem::CaughtUp);

        let appended = job
            .append("shared", ExpectedRevision::NoStream, events(2))
            .await
            .expect("job appends");
        // Only the head poll can tell the server about this append.
        for revision in 0..2 {
            let item = tokio::time::timeout(HANG_GUARD, subscription.next())
                .await
                .expect("the server never noticed the job's append")
                .expect("ended")
                .expect("failed");
            match item {
                SubscriptionItem::Event(event) => {
                    assert_eq!(&*event.stream, "shared");
                    assert_eq!(event.revision, revision);
                    assert_eq!(event.position, revision + 1);
                }
                other => panic!("expected an event, got {other:?}"),
            }
        }

        // The expected-revision check reads the file, not a cache.
        assert_conflict(
            server
                .append("shared", ExpectedRevision::NoStream, events(1))
                .await,
            "shared",
            ExpectedRevision::NoStream,
            CurrentRevision::Current(1),
        );
        let next = server
            .append("shared", ExpectedRevision::Exact(1), events(1))
            .await
            .expect("server appends after the job");
        assert_eq!(next.position, appended.position + 1);
        assert_eq!(read_whole_stream(&job, "shared").await.len(), 3);
        assert_eq!(job.head_position().await.expect("head"), 3);

        // Concurrent appends from both stores interleave without loss.
        let a = async {
            for _ in 0..20 {
                server
                    .append("from-server", ExpectedRevision::Any, events(1))
                    .await
                    .expect("server");
            }
        };
        let b = async {
            for _ in 0..20 {
                job.append("from-job", ExpectedRevision::Any, events(1))
                    .await
                    .expect("job");
            }
        };
        tokio::join!(a, b);
        let all = read_all_from(&server, 0).await;
        // More than the port promises: the embedded store numbers its log
        // 1, 2, 3, … without a hole.
        assert_eq!(positions(&all), (1..=43).collect::<Vec<u64>>());
        let mut seen = 2;
        while seen < 43 {
            let item = tokio::time::timeout(HANG_GUARD, subscription.next())
                .await
                .expect("stalled")
                .expect("ended")
                .expect("failed");
            if let SubscriptionItem::Event(event) = item {
                seen += 1;
                assert_eq!(event.position, seen);
            }
        }
    }
}
