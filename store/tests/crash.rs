//! Crash test of the SQLite adapter (driver: `test_support::crash`): after
//! every kill -9 of an appending child the file holds every acknowledged
//! event, intact, and no half-written one.

use std::path::Path;
use std::sync::Arc;

use store::EventStore;
use store::sqlite::{SqliteOptions, SqliteStore};

fn database(dir: &Path) -> std::path::PathBuf {
    dir.join("events.db")
}

fn open(dir: &Path) -> Arc<dyn EventStore> {
    Arc::new(SqliteStore::open(&database(dir), SqliteOptions::default()).expect("open the store"))
}

fn main() {
    test_support::crash::main(test_support::crash::Target {
        test_name: "sqlite_keeps_every_acknowledged_event_across_sigkill",
        open,
        created: |dir| database(dir).exists(),
    });
}
