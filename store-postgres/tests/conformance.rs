//! The conformance kit (`test_support::conformance`) on PostgreSQL, one
//! fresh database per case, plus what only this adapter has: the schema
//! under concurrent start-up and a newer schema refused, an unreachable
//! server named in the error, the key-value table.

mod support;

use std::sync::Arc;

use futures::StreamExt;
use store::SubscriptionItem;
use store::{EventStore, ExpectedRevision, StoreError};
use store_postgres::{PostgresOptions, PostgresStore};
use support::{StoreRuntime, TestDatabase};
use test_support::conformance::{HANG_GUARD, Harness, events, read_all_from};

fn harness() -> Harness {
    let database = TestDatabase::create("caseledger_test");
    let runtime = StoreRuntime::new();
    let store = runtime.connect(&database.url, PostgresOptions::default());
    // The runtime stops before the database is dropped.
    Harness::with_guard(Arc::new(store), (runtime, database))
}

test_support::conformance_suite!(postgres, crate::harness, 16);

mod postgres_only {
    use super::*;

    /// Two stores on one fresh database, as two processes would be.
    async fn two_stores() -> (TestDatabase, PostgresStore, PostgresStore) {
        let database = TestDatabase::create("caseledger_test");
        let connect = || PostgresStore::connect(&database.url, PostgresOptions::default());
        let (a, b) = (connect().await.expect("a"), connect().await.expect("b"));
        (database, a, b)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn several_processes_starting_at_once_on_an_empty_database_agree_on_one_schema() {
        let database = TestDatabase::create("caseledger_test");
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let url = database.url.clone();
                tokio::spawn(async move {
                    PostgresStore::connect(&url, PostgresOptions::default()).await
                })
            })
            .collect();
        let mut stores = Vec::new();
        for start in starts {
            stores.push(start.await.expect("task").expect("connect"));
        }
        assert_eq!(
            stores.iter().filter(|store| store.created_schema()).count(),
            1,
            "exactly one start creates the schema"
        );
        stores[0]
            .append("one", ExpectedRevision::NoStream, events(2))
            .await
            .expect("append");
        stores[5]
            .append("one", ExpectedRevision::Exact(1), events(1))
            .await
            .expect("append through another store");
        assert_eq!(read_all_from(&stores[3], 0).await.len(), 3);
        drop(stores);
        // A reopened database keeps its events and does not create again.
        let again = PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("reconnect");
        assert!(!again.created_schema());
        assert_eq!(again.head_position().await.expect("head"), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_schema_4_is_upgraded_and_its_chain_goes_on() {
        let database = TestDatabase::create("caseledger_test");
        {
            let store = PostgresStore::connect(&database.url, PostgresOptions::default())
                .await
                .expect("connect");
            store
                .append("before", ExpectedRevision::NoStream, events(3))
                .await
                .expect("append");
        }
        // What versions 5 and 6 added: the fast paths that take the
        // writer's links, then its stream ids, and the index of tombstones.
        support::admin(
            &database.url,
            "DROP FUNCTION caseledger_append_fast(bigint, text[], int2[], int8[], int4[], \
             int4[], uuid[], text[], int4[], bytea[], bytea[], timestamptz, text, int8, bytea, \
             int8[], bytea[]); \
             DROP FUNCTION caseledger_append_fast(bigint, text[], int2[], int8[], int4[], \
             int4[], uuid[], text[], int4[], bytea[], bytea[], timestamptz, text, int8, bytea, \
             int8[], bytea[], int8[]); DROP INDEX caseledger_streams_deleted; \
             UPDATE caseledger_schema SET version = 4",
        )
        .await
        .expect("make it version 4");
        let store = PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("upgrade");
        assert!(store.created_schema(), "the current version is written");
        let store: Arc<dyn EventStore> = Arc::new(store);
        // Appends after the upgrade link on from the last link before it;
        // the case checks every link from the first event.
        test_support::conformance::cases::the_chain_links_every_event_to_the_one_before(
            Arc::clone(&store),
        )
        .await;
        assert_eq!(read_all_from(&*store, 0).await.len(), 3 + 12);
    }

    /// A scan reads its next page early; what it is given is still exactly
    /// what a read at that moment gives, however the log grew meanwhile.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scan_read_ahead_never_hands_out_a_stale_or_short_page() {
        let database = TestDatabase::create("caseledger_test");
        let store = PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("connect");
        store
            .append("scan", ExpectedRevision::NoStream, events(10))
            .await
            .expect("append");
        let page = |after: u64| {
            let store = &store;
            async move {
                store
                    .read_all(after, 4)
                    .await
                    .expect("read")
                    .iter()
                    .map(|event| event.position)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(page(0).await, [1, 2, 3, 4]);
        // The second full page in a row: the one after it (9, 10, then the
        // head) is read early.
        assert_eq!(page(4).await, [5, 6, 7, 8]);
        store
            .append("scan", ExpectedRevision::Exact(9), events(5))
            .await
            .expect("append more");
        assert_eq!(
            page(8).await,
            [9, 10, 11, 12],
            "not the short page read early"
        );
        assert_eq!(page(12).await, [13, 14, 15]);
        // Out of order and again from the start: the same pages.
        assert_eq!(page(2).await, [3, 4, 5, 6]);
        assert_eq!(page(6).await, [7, 8, 9, 10]);
        assert_eq!(page(10).await, [11, 12, 13, 14]);
        assert_eq!(page(14).await, [15]);
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let positions = page(after).await;
            let Some(&last) = positions.last() else { break };
            seen.extend(positions);
            after = last;
        }
        assert_eq!(seen, (1..=15).collect::<Vec<u64>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_database_of_a_newer_schema_is_refused() {
        let database = TestDatabase::create("caseledger_test");
        drop(
            PostgresStore::connect(&database.url, PostgresOptions::default())
                .await
                .expect("connect"),
        );
        let newer = store_postgres::SCHEMA_VERSION + 1;
        support::admin(
            &database.url,
            &format!("UPDATE caseledger_schema SET version = {newer}"),
        )
        .await
        .expect("bump the version");
        match PostgresStore::connect(&database.url, PostgresOptions::default()).await {
            Err(
                error @ StoreError::SchemaTooNew {
                    found, supported, ..
                },
            ) => {
                assert_eq!(found, newer);
                assert_eq!(supported, store_postgres::SCHEMA_VERSION);
                let message = error.to_string();
                assert!(message.contains("newer"), "{message}");
                assert!(message.contains(&database.name), "{message}");
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_named() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let url = format!("postgres://caseledger:secret@127.0.0.1:{port}/ledger");
        match PostgresStore::connect(&url, PostgresOptions::default()).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
                assert!(!message.contains("secret"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_with_a_nul_character_are_refused_and_do_not_fail_a_batch() {
        let Harness { store, guard } = harness();
        let bad = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .append("bad\0name", ExpectedRevision::Any, events(1))
                    .await
            })
        };
        let good = store
            .append("good", ExpectedRevision::NoStream, events(1))
            .await
            .expect("good append");
        assert_eq!(good.position, 1);
        assert!(matches!(
            bad.await.expect("task"),
            Err(StoreError::InvalidInput(_))
        ));
        drop(store);
        drop(guard);
    }

    /// A writer links a batch itself when it knows where the log ends (its
    /// own last commit) and the database links it when another store wrote
    /// since: either way every link is the one after the event before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn links_made_by_the_writer_or_by_the_database_chain_alike_across_two_stores() {
        let (_database, a, b) = two_stores().await;
        let exact = ExpectedRevision::Exact;
        // A learns the end from its first commit and links the second.
        a.append("a", ExpectedRevision::NoStream, events(1))
            .await
            .expect("a0");
        a.append("a", exact(0), events(2)).await.expect("a1");
        // B wrote since: A's knowledge is stale and the database links.
        b.append("b", ExpectedRevision::NoStream, events(1))
            .await
            .expect("b0");
        a.append("a", exact(2), events(1)).await.expect("a2");
        a.append("a", exact(3), events(3)).await.expect("a3");
        // A retry goes the full way; the next append links after it.
        let retried = events(2);
        let first = a
            .append("c", ExpectedRevision::NoStream, retried.clone())
            .await;
        let again = a.append("c", ExpectedRevision::NoStream, retried).await;
        assert_eq!(first.expect("c0"), again.expect("c0 again"));
        a.append("c", exact(1), events(1)).await.expect("c1");
        // Several appends in one batch, linked by the writer.
        let (x, y, z) = tokio::join!(
            a.append("x", ExpectedRevision::NoStream, events(2)),
            a.append("y", ExpectedRevision::NoStream, events(1)),
            a.append("a", exact(6), events(2)),
        );
        let (x, y, z) = (x.expect("x"), y.expect("y"), z.expect("z"));
        let revisions = [x, y, z].map(|result| result.next_expected_revision);
        assert_eq!(revisions, [1, 0, 8]);
        b.append("b", exact(0), events(1)).await.expect("b1");
        b.append("b", exact(1), events(1)).await.expect("b2");

        assert_eq!(
            test_support::conformance::assert_every_link(&b).await.len(),
            18
        );
    }

    /// A writer remembers the revisions it stored and writes on from them
    /// without reading; whatever another store wrote meanwhile (more
    /// revisions, a tombstone, a stream of the same name, the same ids)
    /// still decides the append, alone or in a batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_a_writer_remembers_of_its_streams_never_outranks_what_another_store_wrote() {
        let (_database, a, b) = two_stores().await;
        let exact = ExpectedRevision::Exact;
        let revision = |result: Result<store::AppendResult, StoreError>| {
            result.expect("append").next_expected_revision
        };
        let conflict = |result: Result<store::AppendResult, StoreError>| match result {
            Err(StoreError::Conflict { actual, .. }) => actual,
            other => panic!("expected a conflict, got {other:?}"),
        };
        use store::CurrentRevision::Current;

        // More revisions written by B after those A remembers.
        assert_eq!(
            revision(a.append("s", ExpectedRevision::NoStream, events(1)).await),
            0
        );
        assert_eq!(revision(b.append("s", exact(0), events(1)).await), 1);
        assert_eq!(
            conflict(a.append("s", exact(0), events(1)).await),
            Current(1)
        );
        assert_eq!(
            revision(a.append("s", ExpectedRevision::Any, events(1)).await),
            2
        );
        assert_eq!(revision(a.append("s", exact(2), events(1)).await), 3);
        assert_eq!(
            revision(
                a.append("s", ExpectedRevision::StreamExists, events(1))
                    .await
            ),
            4
        );
        assert_eq!(revision(b.append("s", exact(4), events(1)).await), 5);
        assert_eq!(
            revision(
                a.append("s", ExpectedRevision::StreamExists, events(2))
                    .await
            ),
            7
        );
        assert_eq!(
            revision(a.append("s", ExpectedRevision::Any, events(1)).await),
            8
        );

        // A stream A remembers, tombstoned by B.
        assert_eq!(
            revision(a.append("t", ExpectedRevision::NoStream, events(1)).await),
            0
        );
        b.tombstone("t", ExpectedRevision::Any)
            .await
            .expect("tombstone");
        for expected in [
            ExpectedRevision::Any,
            exact(0),
            ExpectedRevision::StreamExists,
        ] {
            assert!(
                matches!(
                    a.append("t", expected, events(1)).await,
                    Err(StoreError::StreamDeleted { .. })
                ),
                "{expected:?}"
            );
        }

        // A stream B made, new to A.
        assert_eq!(
            revision(b.append("u", ExpectedRevision::NoStream, events(2)).await),
            1
        );
        assert_eq!(
            conflict(a.append("u", ExpectedRevision::NoStream, events(1)).await),
            Current(1)
        );
        assert_eq!(
            revision(a.append("u", ExpectedRevision::Any, events(1)).await),
            2
        );

        // A retry of an append A remembers: the first result, once.
        let sent = events(2);
        let first = a
            .append("v", ExpectedRevision::NoStream, sent.clone())
            .await
            .expect("v");
        let again = a
            .append("v", ExpectedRevision::Any, sent)
            .await
            .expect("v again");
        assert_eq!(first, again);
        assert_eq!(revision(a.append("v", exact(1), events(1)).await), 2);

        // In one batch: a stale memory fails its own append only.
        assert_eq!(revision(b.append("u", exact(2), events(1)).await), 3);
        let (x, y, z) = tokio::join!(
            a.append("s", exact(8), events(1)),
            a.append("u", exact(2), events(1)),
            a.append("w", ExpectedRevision::Any, events(1)),
        );
        assert_eq!(revision(x), 9);
        assert_eq!(conflict(y), Current(3));
        assert_eq!(revision(z), 0);

        let links = test_support::conformance::assert_every_link(&b).await;
        assert_eq!(links.len() as u64, b.head_position().await.expect("head"));
        let s = test_support::conformance::read_whole_stream(&b, "s").await;
        assert_eq!(
            s.iter().map(|event| event.revision).collect::<Vec<_>>(),
            (0..=9).collect::<Vec<u64>>()
        );
    }

    /// Under load the writer notifies other processes now and then, not
    /// at every commit; what it left unannounced is announced when it is
    /// idle. A subscriber in another store that never polls sees it all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_commits_reaches_a_store_that_only_listens_to_the_last_event() {
        let database = TestDatabase::create("caseledger_test");
        // Long enough that the last commit is not due for announcing.
        let seldom = PostgresOptions {
            announce_interval: std::time::Duration::from_millis(1500),
            ..PostgresOptions::default()
        };
        let writer = Arc::new(
            PostgresStore::connect(&database.url, seldom)
                .await
                .expect("writer"),
        );
        let listening = PostgresOptions {
            live_poll_interval: std::time::Duration::from_secs(3600),
            ..PostgresOptions::default()
        };
        let reader = PostgresStore::connect(&database.url, listening)
            .await
            .expect("reader");
        let mut subscription = reader.subscribe_all(0);
        let caught_up = tokio::time::timeout(HANG_GUARD, subscription.next())
            .await
            .expect("catch-up stalled");
        assert!(matches!(caught_up, Some(Ok(SubscriptionItem::CaughtUp))));
        for round in 0..5 {
            let appends: Vec<_> = (0..16)
                .map(|n| {
                    let writer = Arc::clone(&writer);
                    tokio::spawn(async move {
                        writer
                            .append(
                                &format!("burst-{round}-{n}"),
                                ExpectedRevision::NoStream,
                                events(1),
                            )
                            .await
                    })
                })
                .collect();
            for append in appends {
                append.await.expect("task").expect("append");
            }
        }
        let burst = writer.head_position().await.expect("head");
        let (positions, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let follower = tokio::spawn(async move {
            while let Some(item) = subscription.next().await {
                match item {
                    Ok(SubscriptionItem::Event(event)) => {
                        if positions.send(event.position).is_err() {
                            return;
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        });
        let mut next = async || {
            tokio::time::timeout(HANG_GUARD, seen.recv())
                .await
                .expect("events were never announced")
                .expect("the subscription ended")
        };
        for position in 1..=burst {
            assert_eq!(next().await, position);
        }
        // The subscription has read all there is and waits to be told of
        // more. The last commit is not due for announcing; it is announced
        // once the writer has been idle long enough.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let last = writer
            .append("last", ExpectedRevision::NoStream, events(1))
            .await
            .expect("last");
        assert_eq!(next().await, last.position);
        follower.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_ids_with_other_content_are_a_mismatch() {
        let Harness { store, guard } = harness();
        let batch = events(2);
        let original = store
            .append("content", ExpectedRevision::NoStream, batch.clone())
            .await
            .expect("append");
        assert_eq!(
            store
                .append("content", ExpectedRevision::Any, batch.clone())
                .await
                .expect("retry"),
            original
        );
        let mut changed = batch.clone();
        changed[1].payload = b"other".to_vec();
        assert!(matches!(
            store
                .append("content", ExpectedRevision::Any, changed)
                .await,
            Err(StoreError::IdempotencyMismatch { .. })
        ));
        // In one batch: a retry of an append made earlier in the same batch.
        let twice = events(1);
        let (a, b) = tokio::join!(
            store.append("twice", ExpectedRevision::NoStream, twice.clone()),
            store.append("twice", ExpectedRevision::NoStream, twice.clone()),
        );
        assert_eq!(a.expect("first"), b.expect("second"));
        assert_eq!(store.head_position().await.expect("head"), 3);
        drop(store);
        drop(guard);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_key_value_table_sets_once_and_compares_and_sets() {
        let database = TestDatabase::create("caseledger_test");
        let one = PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("connect");
        let two = PostgresStore::connect(&database.url, PostgresOptions::default())
            .await
            .expect("connect");
        assert_eq!(one.kv_get("keys", "server").await.expect("get"), None);
        let (a, b) = tokio::join!(
            one.kv_insert_if_absent("keys", "server", b"from one"),
            two.kv_insert_if_absent("keys", "server", b"from two"),
        );
        let (a, b) = (a.expect("one"), b.expect("two"));
        assert_eq!(a, b, "both nodes end up with the same key");
        assert_eq!(two.kv_get("keys", "server").await.expect("get"), Some(a));

        assert!(
            one.kv_compare_and_set("outbox", "sent", None, b"1")
                .await
                .expect("cas")
        );
        assert!(
            !two.kv_compare_and_set("outbox", "sent", None, b"1")
                .await
                .expect("cas")
        );
        assert!(
            two.kv_compare_and_set("outbox", "sent", Some(b"1"), b"2")
                .await
                .expect("cas")
        );
        assert!(
            !one.kv_compare_and_set("outbox", "sent", Some(b"1"), b"3")
                .await
                .expect("cas")
        );
        one.kv_put("outbox", "sent", b"9").await.expect("put");
        assert_eq!(
            two.kv_get("outbox", "sent").await.expect("get"),
            Some(b"9".to_vec())
        );
        drop((one, two));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_same_key_put_at_once_through_several_stores_is_kept_once_without_error() {
        let database = TestDatabase::create("caseledger_test");
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(Arc::new(
                PostgresStore::connect(&database.url, PostgresOptions::default())
                    .await
                    .expect("connect"),
            ));
        }
        for n in 0..50u8 {
            let key = store::StoredKey {
                id: uuid::Uuid::now_v7(),
                subject: format!("subject-{n}"),
                wrapped: vec![n; 40],
            };
            let puts: Vec<_> = stores
                .iter()
                .map(|store| {
                    let (store, key) = (store.clone(), key.clone());
                    tokio::spawn(async move { store.put_key(&key).await })
                })
                .collect();
            for put in puts {
                put.await
                    .expect("task")
                    .expect("the same key again is a no-op");
            }
            assert_eq!(stores[0].read_key(key.id).await.unwrap(), Some(key));
        }
    }
}
