//! The conformance kit (`test_support::conformance`) on a real KurrentDB,
//! one fresh namespace per case, when `CASELEDGER_TEST_KURRENTDB` names a
//! server (a connection string) at build time. Without one the kit is not
//! compiled in: a single test says loudly that it did not run, and none of
//! its cases is counted as passed.

/// The command that starts a server for these tests on a developer's
/// machine (README, "Tests").
pub const HOW_TO_START: &str = "docker run --rm -p 2113:2113 docker.kurrent.io/kurrent-latest/kurrentdb:latest --insecure --run-projections=All --max-append-size=16777216";

#[cfg(not(kurrentdb_server))]
#[test]
fn kurrentdb_conformance_did_not_run_because_no_server_is_named() {
    use std::io::Write as _;
    // Straight to the process's stderr: the test harness captures
    // `eprintln!` of a passing test.
    let _ = writeln!(
        std::io::stderr().lock(),
        "\nKURRENTDB CONFORMANCE DID NOT RUN: set CASELEDGER_TEST_KURRENTDB=esdb://localhost:2113?tls=false \
         and build the tests again (start a server with: {HOW_TO_START})\n"
    );
}

#[cfg(kurrentdb_server)]
mod with_server {
    use std::sync::Arc;

    use store_kurrentdb::KurrentStore;
    use test_support::conformance::Harness;

    /// A runtime for the store's client, shut down without blocking when
    /// the case ends (inside or outside the case's own runtime).
    struct ClientRuntime(Option<tokio::runtime::Runtime>);

    impl Drop for ClientRuntime {
        fn drop(&mut self) {
            if let Some(runtime) = self.0.take() {
                runtime.shutdown_background();
            }
        }
    }

    /// The server's connection string with a namespace of its own.
    fn fresh_namespace_url() -> String {
        let url = std::env::var("CASELEDGER_TEST_KURRENTDB")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .unwrap_or_else(|| panic!("set CASELEDGER_TEST_KURRENTDB ({})", super::HOW_TO_START));
        let separator = if url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}caseledgerNamespace=t{}",
            url.trim(),
            uuid::Uuid::new_v4().simple()
        )
    }

    pub fn harness() -> Harness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let store = KurrentStore::open(&fresh_namespace_url(), runtime.handle().clone())
            .expect("a KurrentDB connection string");
        Harness::with_guard(Arc::new(store), ClientRuntime(Some(runtime)))
    }

    test_support::conformance_suite!(kurrentdb, crate::with_server::harness, 8);
}
