//! What the PostgreSQL tests share: the server named by
//! `CASELEDGER_TEST_POSTGRES`, a fresh database per test (dropped with its
//! guard), and a runtime of its own for the store's tasks, so a store can be
//! made inside or outside a test's runtime alike.

#![allow(dead_code)]

use std::future::Future;

use store::RecordedEvent;
use store_postgres::{PostgresOptions, PostgresStore};

pub use test_support::postgres::{server_url, with_database};

/// Run `future` to completion on a thread of its own (so it may be called
/// from inside a runtime as well as outside one).
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(future)
            })
            .join()
            .expect("helper thread")
    })
}

/// Run `sql` on the server's own database.
pub async fn admin(server: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    result
}

/// A database of its own, dropped (connections and all) with the guard.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    server: String,
}

impl TestDatabase {
    /// `CREATE DATABASE <prefix>_<random>` on the test server.
    pub fn create(prefix: &str) -> TestDatabase {
        let server = server_url();
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let sql = format!("CREATE DATABASE {name}");
        block_on(admin(&server, &sql))
            .unwrap_or_else(|error| panic!("cannot create a test database on {server}: {error}"));
        TestDatabase {
            url: with_database(&server, &name),
            name,
            server,
        }
    }

    /// A database that may or may not exist yet (the crash test's children
    /// create it): only dropped.
    pub fn named(name: &str) -> TestDatabase {
        let server = server_url();
        TestDatabase {
            url: with_database(&server, name),
            name: name.to_owned(),
            server,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = block_on(admin(&self.server, &sql)) {
            eprintln!("cannot drop test database {}: {error}", self.name);
        }
    }
}

/// A runtime that the store's own tasks run on, shut down with the guard.
pub struct StoreRuntime(Option<tokio::runtime::Runtime>);

impl StoreRuntime {
    pub fn new() -> StoreRuntime {
        StoreRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime"),
        ))
    }

    /// Run `future` on this runtime and wait for it, from any thread.
    pub fn run<F>(&self, future: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        let handle = self.0.as_ref().expect("runtime").handle().clone();
        std::thread::scope(|scope| {
            scope
                .spawn(move || handle.block_on(future))
                .join()
                .expect("helper thread")
        })
    }

    /// Connect a store whose tasks live on this runtime.
    pub fn connect(&self, url: &str, options: PostgresOptions) -> PostgresStore {
        self.run(PostgresStore::connect(url, options))
            .unwrap_or_else(|error| panic!("connect to {url}: {error}"))
    }
}

impl Drop for StoreRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// `events`, a log read from its start, hold the positions 1, 2, 3, …
/// without a hole: more than the port promises (positions only strictly
/// increase), what PostgreSQL's serialised writers give (ADR 0007).
pub fn assert_dense_from_one(events: &[RecordedEvent]) {
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(test_support::conformance::positions(events), expected);
}
