//! No reader ever skips an event: many appenders in several stores (as
//! several processes would be) hold their transactions open for random
//! times before committing, while a live subscriber and a naive poller of
//! `position > checkpoint` read on other connections. Both must see every
//! event exactly once, in position order, with no gap.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use store::{EventStore, ExpectedRevision, SubscriptionItem};
use store_postgres::PostgresOptions;
use support::{StoreRuntime, TestDatabase};
use test_support::conformance::{HANG_GUARD, events, read_all_from};

const STORES: usize = 4;
const TASKS_PER_STORE: usize = 6;
const APPENDS_PER_TASK: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reader_sees_every_event_once_in_order_while_commits_land_out_of_step() {
    let database = TestDatabase::create("caseledger_test");
    let runtime = StoreRuntime::new();
    let delayed = PostgresOptions {
        commit_delay_for_tests: Some((Duration::ZERO, Duration::from_millis(6))),
        ..PostgresOptions::default()
    };
    let writers: Vec<Arc<dyn EventStore>> = (0..STORES)
        .map(|_| Arc::new(runtime.connect(&database.url, delayed.clone())) as Arc<dyn EventStore>)
        .collect();
    let reader: Arc<dyn EventStore> =
        Arc::new(runtime.connect(&database.url, PostgresOptions::default()));

    let mut subscription = reader.subscribe_all(0);
    let subscriber = tokio::spawn(async move {
        let mut delivered = Vec::new();
        loop {
            let item = tokio::time::timeout(HANG_GUARD, subscription.next())
                .await
                .expect("subscription stalled")
                .expect("subscription ended")
                .expect("subscription failed");
            match item {
                SubscriptionItem::Event(event) => {
                    let done = event.type_name.as_ref() == "Done";
                    delivered.push(event);
                    if done {
                        return delivered;
                    }
                }
                SubscriptionItem::CaughtUp => {}
            }
        }
    });
    // A naive poller: whatever it reads after its checkpoint must start
    // right after it, with no hole.
    let poller = {
        let reader = Arc::clone(&reader);
        tokio::spawn(async move {
            let mut checkpoint = 0;
            let mut pages = 0usize;
            loop {
                let page = reader.read_all(checkpoint, 50).await.expect("poll");
                for event in &page {
                    assert_eq!(
                        event.position,
                        checkpoint + 1,
                        "the poller skipped an event"
                    );
                    checkpoint = event.position;
                    if event.type_name.as_ref() == "Done" {
                        return pages;
                    }
                }
                pages += 1;
                if page.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };

    let tasks: Vec<_> = (0..STORES * TASKS_PER_STORE)
        .map(|task| {
            let store = Arc::clone(&writers[task % STORES]);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for append in 0..APPENDS_PER_TASK {
                    let batch = events(1 + (task + append) % 3);
                    ids.extend(batch.iter().map(|event| event.id));
                    store
                        .append(&format!("o-{}", append % 7), ExpectedRevision::Any, batch)
                        .await
                        .expect("append");
                }
                ids
            })
        })
        .collect();
    let mut appended = HashSet::new();
    for task in tasks {
        appended.extend(task.await.expect("task"));
    }
    writers[0]
        .append(
            "o-done",
            ExpectedRevision::NoStream,
            vec![test_support::conformance::event("Done", b"")],
        )
        .await
        .expect("last append");

    let delivered = subscriber.await.expect("subscriber");
    let polled_pages = poller.await.expect("poller");
    let stored = read_all_from(&*reader, 0).await;
    assert_eq!(delivered, stored, "the subscriber saw exactly the log");
    support::assert_dense_from_one(&delivered);
    let delivered_ids: HashSet<_> = delivered.iter().map(|event| event.id).collect();
    assert_eq!(delivered_ids.len(), delivered.len(), "an event came twice");
    assert!(appended.iter().all(|id| delivered_ids.contains(id)));
    assert_eq!(delivered.len(), appended.len() + 1);
    assert!(polled_pages > 1, "the poller read while commits landed");
    drop(writers);
    drop(reader);
    drop(runtime);
}
