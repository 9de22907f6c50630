//! Where a command's data lives: the event store (`--store`: the embedded
//! SQLite file in the data dir, another SQLite file, PostgreSQL, or
//! KurrentDB when built with the `kurrentdb` feature) and the
//! server secret (`--secret-file`), which the store remembers by its
//! fingerprint so that a node or job with another secret is refused.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use keys::Keyer;
use store::EventStore;
use store::location::{is_kurrentdb_url, is_postgres_url, redacted};
use store::sqlite::{SqliteOptions, SqliteStore};

/// Name of the embedded store's file in the data dir.
pub const EMBEDDED_FILE: &str = "events.sqlite3";
/// How long an append waits for a PostgreSQL server that went away before
/// the request is answered 503.
pub const POSTGRES_OUTAGE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// The value beside the log that holds the secret's fingerprint.
pub const SECRET_FINGERPRINT_VALUE: &str = "secret.fingerprint";

/// Which event store a command uses.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL.
    Postgres(String),
    /// A KurrentDB (EventStoreDB) cluster, by its connection string.
    #[cfg(feature = "kurrentdb")]
    KurrentDb(String),
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl StoreLocation {
    /// Read `--store`; without it, the embedded store in `data_dir`.
    pub fn parse(raw: Option<&str>, data_dir: &Path) -> anyhow::Result<StoreLocation> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return Ok(StoreLocation::Sqlite(data_dir.join(EMBEDDED_FILE)));
        };
        if let Some(path) = raw.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            anyhow::ensure!(
                !path.is_empty(),
                "--store sqlite:<path> needs the path of the file"
            );
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        if is_postgres_url(raw) {
            return Ok(StoreLocation::Postgres(raw.to_owned()));
        }
        if is_kurrentdb_url(raw) {
            #[cfg(feature = "kurrentdb")]
            return Ok(StoreLocation::KurrentDb(raw.to_owned()));
            #[cfg(not(feature = "kurrentdb"))]
            anyhow::bail!(
                "--store {}: this caseledger was built without KurrentDB support; build it with `cargo build --release -p api --features kurrentdb`",
                redacted(raw)
            );
        }
        anyhow::bail!(
            "--store takes sqlite:<path>, postgres://user@host:port/db or esdb://host:port (kurrentdb://, +discover), not {:?}",
            redacted(raw)
        )
    }

    /// The location for messages: a URL without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => redacted(url),
            #[cfg(feature = "kurrentdb")]
            StoreLocation::KurrentDb(url) => redacted(url),
        }
    }
}

/// Everything a command needs to reach its data.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Node-local files: snapshots, the file outbox, the serve lock.
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    /// The server secret (default `<data-dir>/secret.key`).
    pub secret_file: PathBuf,
    /// `synchronous=FULL` on an embedded store.
    pub durable: bool,
}

impl StoreConfig {
    /// The embedded store and secret of `data_dir`.
    pub fn embedded(data_dir: &Path) -> StoreConfig {
        StoreConfig {
            data_dir: data_dir.to_path_buf(),
            store: StoreLocation::Sqlite(data_dir.join(EMBEDDED_FILE)),
            secret_file: data_dir.join(keys::SECRET_FILE),
            durable: true,
        }
    }

    /// Load (or, on first use, create) the secret, open the store, and
    /// check that the store was initialised with this secret.
    pub async fn open(&self) -> anyhow::Result<(Keyer, Arc<dyn EventStore>)> {
        if let Some(dir) = self
            .secret_file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let keyer = Keyer::load_or_create_file(&self.secret_file)
            .with_context(|| format!("the server secret {}", self.secret_file.display()))?;
        let store = self.open_store().await?;
        check_secret(store.as_ref(), &keyer, &self.secret_file).await?;
        Ok((keyer, store))
    }

    async fn open_store(&self) -> anyhow::Result<Arc<dyn EventStore>> {
        match &self.store {
            StoreLocation::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let (path, durable) = (path.clone(), self.durable);
                let store = tokio::task::spawn_blocking(move || open_sqlite(&path, durable))
                    .await
                    .context("opening the event store")??;
                Ok(Arc::new(store))
            }
            StoreLocation::Postgres(url) => open_postgres(url).await,
            #[cfg(feature = "kurrentdb")]
            StoreLocation::KurrentDb(url) => open_kurrentdb(url).await,
        }
    }
}

/// Open (creating when new) the embedded store in the file at `path`.
pub fn open_sqlite(path: &Path, durable: bool) -> anyhow::Result<SqliteStore> {
    let options = SqliteOptions {
        synchronous_full: durable,
        ..SqliteOptions::default()
    };
    SqliteStore::open(path, options)
        .with_context(|| format!("opening the event store {}", path.display()))
}

async fn open_postgres(url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    let options = store_postgres::PostgresOptions {
        // Well inside a request's time budget: a request during an outage
        // is answered 503, not cut off.
        outage_timeout: POSTGRES_OUTAGE_WAIT,
        ..store_postgres::PostgresOptions::default()
    };
    let store = store_postgres::PostgresStore::connect(url, options)
        .await
        .with_context(|| format!("opening the event store {}", redacted(url)))?;
    Ok(Arc::new(store))
}

#[cfg(feature = "kurrentdb")]
async fn open_kurrentdb(url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    let store = store_kurrentdb::KurrentStore::connect(url)
        .await
        .with_context(|| format!("opening the event store {}", redacted(url)))?;
    Ok(Arc::new(store))
}

/// The store remembers the fingerprint of the first secret it saw; any
/// other secret is refused, since every keyed stream name and code would
/// differ.
pub async fn check_secret(
    store: &dyn EventStore,
    keyer: &Keyer,
    secret_file: &Path,
) -> anyhow::Result<()> {
    let fingerprint = keyer.fingerprint();
    let recorded = store
        .read_value(SECRET_FINGERPRINT_VALUE)
        .await
        .context("reading the store's secret fingerprint")?;
    let recorded = match recorded {
        Some(recorded) => recorded,
        None => {
            if store
                .swap_value(SECRET_FINGERPRINT_VALUE, None, fingerprint.as_bytes())
                .await
                .context("recording the secret's fingerprint in the store")?
            {
                return Ok(());
            }
            store
                .read_value(SECRET_FINGERPRINT_VALUE)
                .await
                .context("reading the store's secret fingerprint")?
                .unwrap_or_default()
        }
    };
    anyhow::ensure!(
        recorded == fingerprint.as_bytes(),
        "the server secret {} is not the one this store was initialised with (fingerprint {} against the store's {}); give every node of a store the same --secret-file",
        secret_file.display(),
        fingerprint,
        String::from_utf8_lossy(&recorded)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_parse_and_never_show_a_password() {
        let dir = Path::new("/data");
        assert_eq!(
            StoreLocation::parse(None, dir).unwrap(),
            StoreLocation::Sqlite(dir.join(EMBEDDED_FILE))
        );
        assert_eq!(
            StoreLocation::parse(Some("sqlite:/tmp/x.db"), dir).unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/tmp/x.db"))
        );
        let pg = StoreLocation::parse(Some("postgres://app:hemmelig@db:5432/ledger"), dir).unwrap();
        assert_eq!(pg.describe(), "postgres://app:***@db:5432/ledger");
        let error = StoreLocation::parse(Some("mysql://root:pw@x/y"), dir).unwrap_err();
        assert!(!error.to_string().contains("pw"), "{error}");
        assert!(StoreLocation::parse(Some("sqlite:"), dir).is_err());
    }

    #[test]
    fn kurrentdb_urls_are_recognised_and_need_the_feature() {
        let dir = Path::new("/data");
        for url in [
            "esdb://admin:hemmelig@node:2113?tls=false",
            "esdb+discover://admin:hemmelig@cluster:2113",
            "kurrentdb://admin:hemmelig@node:2113",
            "kurrentdb+discover://admin:hemmelig@cluster:2113",
        ] {
            let parsed = StoreLocation::parse(Some(url), dir);
            #[cfg(feature = "kurrentdb")]
            {
                let location = parsed.unwrap();
                assert_eq!(location, StoreLocation::KurrentDb(url.to_owned()));
                assert!(location.describe().contains("admin:***@"), "{location:?}");
            }
            #[cfg(not(feature = "kurrentdb"))]
            {
                let error = parsed.unwrap_err().to_string();
                assert!(error.contains("--features kurrentdb"), "{error}");
                assert!(!error.contains("hemmelig"), "{error}");
            }
        }
        assert!(!is_kurrentdb_url("esdbx://node"));
        assert!(!is_kurrentdb_url("postgres://x@y/z"));
    }

    #[tokio::test]
    async fn a_store_refuses_a_second_secret() {
        let store = store::memory::MemoryStore::new();
        let path = Path::new("node.key");
        check_secret(&store, &Keyer::new([1; 32]), path)
            .await
            .unwrap();
        check_secret(&store, &Keyer::new([1; 32]), path)
            .await
            .unwrap();
        let error = check_secret(&store, &Keyer::new([2; 32]), path)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("not the one this store"),
            "{error}"
        );
    }
}
