//! Crash test of the PostgreSQL adapter (driver: `test_support::crash`):
//! after every kill -9 of an appending child the database holds every
//! acknowledged event, intact, and no half-written one. The run's database
//! is named after the driver's directory, created by the first child that
//! gets that far, and dropped when the test ends.

mod support;

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use store::EventStore;
use store_postgres::{PostgresOptions, PostgresStore};

/// The database this process used, dropped at the end by the parent.
static DATABASE: Mutex<Option<String>> = Mutex::new(None);

/// The runtime the stores' own tasks run on.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// `caseledger_crash_<hash of the directory>`.
fn database_name(dir: &Path) -> String {
    let hash = dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    let name = format!("caseledger_crash_{hash:016x}");
    *DATABASE.lock().expect("database name") = Some(name.clone());
    name
}

fn open(dir: &Path) -> Arc<dyn EventStore> {
    let name = database_name(dir);
    let server = support::server_url();
    let url = support::with_database(&server, &name);
    let handle = runtime().handle().clone();
    let store = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                handle.block_on(async {
                    // An earlier child may have been killed while creating
                    // it; the server may still be at it (template1 in use).
                    let mut attempts = 0;
                    loop {
                        match support::admin(&server, &format!("CREATE DATABASE {name}")).await {
                            Ok(()) => break,
                            Err(error)
                                if error.code()
                                    == Some(
                                        &tokio_postgres::error::SqlState::DUPLICATE_DATABASE,
                                    ) =>
                            {
                                break;
                            }
                            Err(error) if attempts < 100 => {
                                attempts += 1;
                                eprintln!("CREATE DATABASE {name} again after: {error:?}");
                                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            }
                            Err(error) => panic!("create the crash test's database: {error}"),
                        }
                    }
                    settle(&server, &name).await;
                    PostgresStore::connect(&url, PostgresOptions::default()).await
                })
            })
            .join()
            .expect("connect thread")
    })
    .expect("open the store");
    Arc::new(store)
}

/// Wait until no session of a killed child is left on `name`: its backend
/// may still be running what the child sent before it died (a whole
/// pipelined transaction, commit included), and a check of the store must
/// not race with that commit.
async fn settle(server: &str, name: &str) {
    let Ok((client, connection)) = tokio_postgres::connect(server, tokio_postgres::NoTls).await
    else {
        return;
    };
    let driver = tokio::spawn(connection);
    for _ in 0..200 {
        let others: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                &[&name],
            )
            .await
            .map_or(0, |row| row.get(0));
        if others == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(client);
    let _ = driver.await;
}

fn created(dir: &Path) -> bool {
    let url = support::with_database(&support::server_url(), &database_name(dir));
    // A database that does not exist yet cannot be connected to: not created.
    support::block_on(store_postgres::schema_exists(&url)).unwrap_or(false)
}

/// Drops the run's database when the parent ends, passing or failing.
struct DropDatabase;

impl Drop for DropDatabase {
    fn drop(&mut self) {
        if let Some(name) = DATABASE.lock().ok().and_then(|name| name.clone()) {
            drop(support::TestDatabase::named(&name));
        }
    }
}

fn main() {
    let _drop_database = std::env::var_os("CRASH_CHILD_DIR")
        .is_none()
        .then_some(DropDatabase);
    test_support::crash::main(test_support::crash::Target {
        test_name: "postgres_keeps_every_acknowledged_event_across_sigkill",
        open,
        created,
    });
}
