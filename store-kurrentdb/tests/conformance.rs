//! The conformance kit (`test_support::conformance`) on a real KurrentDB,
//! one fresh namespace per case, when `CASELEDGER_TEST_KURRENTDB` names a
//! server (a connection string) at build time, plus what only this adapter
//! has: several stores (processes) linking one chain, destroyed keys.
//! Without a server the kit is not compiled in: a single test says loudly
//! that it did not run, and none of its cases is counted as passed.

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
    use test_support::conformance::{Capabilities, Harness};

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

    /// KurrentDB checks event ids within their own stream only, and the
    /// adapter sees no further (ADR 0010, "Idempotency"): an append reusing
    /// another stream's ids need not be refused. Nothing else is relaxed.
    pub const CAPABILITIES: Capabilities = Capabilities {
        event_ids_unique_across_streams: false,
    };

    test_support::conformance_suite!(
        kurrentdb,
        crate::with_server::harness,
        8,
        crate::with_server::CAPABILITIES
    );

    mod kurrentdb_only {
        use super::*;
        use store::{EventStore, ExpectedRevision, StoredKey};
        use test_support::conformance::{events, read_all_from};

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn stores_of_several_processes_link_one_chain_in_all_order() {
            let url = fresh_namespace_url();
            let stores: Vec<Arc<KurrentStore>> = vec![
                Arc::new(KurrentStore::connect(&url).await.expect("connect")),
                Arc::new(KurrentStore::connect(&url).await.expect("connect")),
                Arc::new(KurrentStore::connect(&url).await.expect("connect")),
            ];
            let writers: Vec<_> = (0..12)
                .map(|i| {
                    let store = Arc::clone(&stores[i % stores.len()]);
                    tokio::spawn(async move {
                        for round in 0..3 {
                            store
                                .append(&format!("w-{i}"), ExpectedRevision::Any, events(round + 1))
                                .await
                                .expect("append");
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.await.expect("writer");
            }
            let all = read_all_from(&*stores[0], 0).await;
            assert_eq!(all.len(), 12 * (1 + 2 + 3));
            assert!(
                all.windows(2)
                    .all(|pair| pair[0].position < pair[1].position)
            );
            let links = stores[1].read_chain(0, 10_000).await.expect("chain");
            assert_eq!(links.len(), all.len());
            let mut previous = store::chain::genesis();
            for (event, stored) in all.iter().zip(&links) {
                previous = store::chain::link_recorded(&previous, event);
                assert_eq!(stored.position, event.position);
                assert_eq!(stored.link, previous, "the link at {}", event.position);
            }
            // Paging from any linked position finds the next link.
            for (index, link) in links.iter().enumerate().step_by(7) {
                let page = stores[2].read_chain(link.position, 3).await.expect("page");
                let end = (index + 4).min(links.len());
                assert_eq!(page.as_slice(), &links[index + 1..end]);
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_destroyed_key_reads_as_gone_from_every_store_and_its_id_is_spent() {
            let url = fresh_namespace_url();
            let one = KurrentStore::connect(&url).await.expect("connect");
            let other = KurrentStore::connect(&url).await.expect("connect");
            let key = StoredKey {
                id: uuid::Uuid::now_v7(),
                subject: "subject-a".to_owned(),
                wrapped: vec![7; 40],
            };
            one.put_key(&key).await.expect("put");
            assert_eq!(
                other.read_key(key.id).await.expect("read"),
                Some(key.clone())
            );
            assert_eq!(other.destroy_keys("subject-a").await.expect("destroy"), 1);
            assert_eq!(one.read_key(key.id).await.expect("read"), None);
            assert!(one.read_keys(None, 10).await.expect("list").is_empty());
            assert!(matches!(
                one.put_key(&key).await,
                Err(store::StoreError::InvalidInput(_))
            ));
            // Nothing of the key table is an event of the log.
            assert_eq!(one.head_position().await.expect("head"), 0);
        }
    }
}
