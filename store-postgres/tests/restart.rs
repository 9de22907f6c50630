//! Appenders and subscriptions survive a restart of PostgreSQL: the test
//! starts a server of its own (it must control it), appends from several
//! tasks while a live subscriber follows from another store, restarts the
//! server (`pg_ctl restart -m fast`) in the middle, and checks that every
//! acknowledged event is stored and delivered exactly once, in order.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use store::{EventStore, ExpectedRevision, StoreError, SubscriptionItem};
use store_postgres::{PostgresOptions, PostgresStore};
use test_support::conformance::{HANG_GUARD, event, events, read_all_from};

use test_support::postgres::OwnServer;

async fn started_at(store: &PostgresStore, url: &str) -> String {
    let _ = store;
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
        .query_one("SELECT pg_postmaster_start_time()::text", &[])
        .await
        .expect("start time")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appenders_and_a_subscriber_ride_out_a_restart_of_the_server() {
    let server = OwnServer::start();
    let options = PostgresOptions {
        live_poll_interval: Duration::from_millis(200),
        outage_timeout: Duration::from_secs(30),
        ..PostgresOptions::default()
    };
    let writer = Arc::new(
        PostgresStore::connect(&server.url, options.clone())
            .await
            .expect("connect the writer"),
    );
    let follower = PostgresStore::connect(&server.url, options.clone())
        .await
        .expect("connect the follower");
    let before = started_at(&writer, &server.url).await;

    let mut subscription = follower.subscribe_all(0);
    let subscriber = tokio::spawn(async move {
        let mut delivered = Vec::new();
        loop {
            let item = tokio::time::timeout(HANG_GUARD, subscription.next())
                .await
                .expect("subscription stalled")
                .expect("subscription ended")
                .expect("subscription failed");
            if let SubscriptionItem::Event(event) = item {
                let done = event.type_name.as_ref() == "Done";
                delivered.push(event);
                if done {
                    return delivered;
                }
            }
        }
    });

    let appenders: Vec<_> = (0..4)
        .map(|task| {
            let writer = Arc::clone(&writer);
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut retried = 0;
                for append in 0..40 {
                    let batch = events(1 + append % 2);
                    let stream = format!("r-{task}");
                    // An append that fails for the outage is sent again
                    // with the same ids: it must not be written twice.
                    let result = loop {
                        match writer
                            .append(&stream, ExpectedRevision::Any, batch.clone())
                            .await
                        {
                            Err(StoreError::Unavailable(_)) if retried < 100 => {
                                retried += 1;
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                            other => break other,
                        }
                    };
                    result.expect("append across the restart");
                    acknowledged.extend(batch.iter().map(|event| event.id));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                acknowledged
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(150)).await;
    let restarting = Arc::new(server);
    let restart = {
        let server = Arc::clone(&restarting);
        tokio::task::spawn_blocking(move || server.restart())
    };
    restart.await.expect("restart");

    let mut acknowledged = Vec::new();
    for appender in appenders {
        acknowledged.extend(appender.await.expect("appender"));
    }
    writer
        .append(
            "r-done",
            ExpectedRevision::NoStream,
            vec![event("Done", b"")],
        )
        .await
        .expect("the last append");
    let after = started_at(&writer, &restarting.url).await;
    assert_ne!(before, after, "the server did restart");

    let delivered = subscriber.await.expect("subscriber");
    let stored = read_all_from(&*writer, 0).await;
    assert_eq!(delivered, stored, "the subscriber saw exactly the log");
    support::assert_dense_from_one(&stored);
    let stored_ids: HashSet<_> = stored.iter().map(|event| event.id).collect();
    assert_eq!(stored_ids.len(), stored.len(), "an event was written twice");
    assert!(
        acknowledged.iter().all(|id| stored_ids.contains(id)),
        "an acknowledged event is missing"
    );
    assert_eq!(stored.len(), acknowledged.len() + 1);
    drop(writer);
    drop(follower);
    drop(restarting);
}
