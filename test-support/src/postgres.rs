//! PostgreSQL for tests: the server named by `CASELEDGER_TEST_POSTGRES`
//! (a test without it fails, saying how to start one), fresh databases on
//! it, and throwaway servers of a test's own that it may stop, start and
//! restart (through `.ci/postgres` and `pg_ctl`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a run without a server is told.
pub const HOW_TO_START: &str = "CASELEDGER_TEST_POSTGRES is not set: these tests need a \
PostgreSQL server where they may create and drop databases. Start a throwaway one as README.md \
(\"PostgreSQL tests\") shows:\n  \
dir=$(mktemp -d)\n  \
export CASELEDGER_TEST_POSTGRES=$(.ci/postgres start \"$dir\")\n  \
export CASELEDGER_TEST_POSTGRES_BIN=$(.ci/postgres bin)\n\
and afterwards `.ci/postgres stop \"$dir\"`. (.ci/run does exactly this.)";

/// The test server's URL; panics with [`HOW_TO_START`] when it is not set.
pub fn server_url() -> String {
    match std::env::var("CASELEDGER_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("{HOW_TO_START}"),
    }
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{database}{query}", &base[..path_start])
}

/// Run `sql` on the database at `url`, on a thread of its own (callable
/// inside or outside a runtime).
pub fn execute(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                let driver = tokio::spawn(connection);
                let result = client.batch_execute(&sql).await;
                drop(client);
                let _ = driver.await;
                result
            })
    })
    .join()
    .expect("a PostgreSQL helper thread")
}

/// A fresh database `<prefix>_<random>` on the test server; its URL.
pub fn fresh_database(prefix: &str) -> String {
    let server = server_url();
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    execute(&server, &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|error| panic!("creating a database on the test server: {error}"));
    with_database(&server, &name)
}

/// `.ci/postgres`, which installs PostgreSQL and starts throwaway servers.
pub fn ci_script() -> PathBuf {
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

/// A server of a test's own, stopped and removed with it.
pub struct OwnServer {
    dir: tempfile::TempDir,
    /// Its `postgres` database.
    pub url: String,
    bin: PathBuf,
}

impl OwnServer {
    /// Start one (the shared server's variable must say that this machine
    /// has PostgreSQL).
    pub fn start() -> OwnServer {
        server_url();
        let bin = match std::env::var("CASELEDGER_TEST_POSTGRES_BIN") {
            Ok(bin) if !bin.is_empty() => PathBuf::from(bin),
            _ => PathBuf::from(run(Command::new("bash").arg(ci_script()).arg("bin"))),
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let url = run(Command::new("bash")
            .arg(ci_script())
            .arg("start")
            .arg(dir.path()));
        OwnServer { dir, url, bin }
    }

    /// The directory that holds its data, socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut command = if run(Command::new("id").arg("-u")) == "0" {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            Command::new(pg_ctl)
        };
        run(command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(args));
    }

    /// `pg_ctl restart -m fast`.
    pub fn restart(&self) {
        self.pg_ctl(&["restart", "-m", "fast", "-w", "-t", "60"]);
    }

    /// Stop it (fast shutdown); [`OwnServer::start_again`] brings it back.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Start it again on its port after [`OwnServer::stop`].
    pub fn start_again(&self) {
        let port = self
            .url
            .rsplit(':')
            .next()
            .and_then(|tail| tail.split('/').next())
            .expect("a port in the URL");
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            self.dir.path().display()
        );
        self.pg_ctl(&["start", "-w", "-t", "60", "-o", &options]);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(ci_script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
