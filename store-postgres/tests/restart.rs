//! Appenders and subscriptions survive a restart of PostgreSQL: the test
//! starts a server of its own (it must control it), appends from several
//! tasks while a live subscriber follows from another store, restarts the
//! server (`pg_ctl restart -m fast`) in the middle, and checks that every
//! acknowledged event is stored and delivered exactly once, in order.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use store::{EventStore, ExpectedRevision, StoreError, SubscriptionItem};
use store_postgres::{PostgresOptions, PostgresStore};
use test_support::conformance::{HANG_GUARD, event, events, read_all_from};

/// `.ci/postgres`, which starts and stops throwaway servers.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/postgres")
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A server of this test's own, stopped and removed with the guard.
struct OwnServer {
    dir: tempfile::TempDir,
    url: String,
    bin: PathBuf,
}

impl OwnServer {
    fn start() -> OwnServer {
        // The shared server's variable says the tests have PostgreSQL.
        support::server_url();
        let bin = match std::env::var("CASELEDGER_TEST_POSTGRES_BIN") {
            Ok(bin) if !bin.is_empty() => PathBuf::from(bin),
            _ => PathBuf::from(run(Command::new("bash").arg(script()).arg("bin"))),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let url = run(Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path()));
        OwnServer { dir, url, bin }
    }

    fn restart(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.path().join("data");
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            Command::new(pg_ctl)
        };
        run(command
            .arg("restart")
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-m", "fast", "-w", "-t", "60"]));
    }
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")) == "0"
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

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
    assert_eq!(
        stored
            .iter()
            .map(|event| event.position)
            .collect::<Vec<_>>(),
        (1..=stored.len() as u64).collect::<Vec<_>>()
    );
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
