//! TLS when the URL asks for it: on a server of the test's own with a
//! certificate for `localhost` signed by a test CA, `sslmode=require`
//! encrypts, `verify-full` with `sslrootcert` checks chain and host name,
//! and a host name the certificate does not name is refused.

mod support;

use std::path::Path;
use std::process::Command;

use store::{EventStore, ExpectedRevision, StoreError};
use store_postgres::{PostgresOptions, PostgresStore};
use test_support::conformance::events;

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a tool");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A CA, and a server certificate for `localhost` signed by it, in `dir`.
fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| run(Command::new("openssl").current_dir(dir).args(args));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=caseledger test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").expect("write");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

struct OwnServer(tempfile::TempDir);

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(test_support::postgres::ci_script())
            .arg("stop")
            .arg(self.0.path())
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_and_verify_full_checks_the_certificate() {
    support::server_url();
    let server = OwnServer(tempfile::tempdir().expect("temp dir"));
    let url = run(Command::new("bash")
        .arg(test_support::postgres::ci_script())
        .arg("start")
        .arg(server.0.path()));
    let port = url
        .rsplit(':')
        .next()
        .and_then(|tail| tail.split('/').next())
        .expect("port")
        .to_owned();
    let certs = tempfile::tempdir().expect("temp dir");
    certificates(certs.path());
    let data = server.0.path().join("data");
    for file in ["server.crt", "server.key"] {
        std::fs::copy(certs.path().join(file), data.join(file)).expect("copy");
    }
    let owner = run(Command::new("stat").args(["-c", "%U"]).arg(&data));
    run(Command::new("chown")
        .arg(&owner)
        .arg(data.join("server.crt"))
        .arg(data.join("server.key")));
    run(Command::new("chmod")
        .arg("600")
        .arg(data.join("server.key")));
    for sql in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
        support::admin(&url, sql).await.expect("turn TLS on");
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let ca = certs.path().join("ca.pem");
    let urls = [
        format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=require"),
        format!(
            "postgres://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}",
            ca.display()
        ),
    ];
    for (round, url) in urls.iter().enumerate() {
        let store = PostgresStore::connect(url, PostgresOptions::default())
            .await
            .unwrap_or_else(|error| panic!("connect with {url}: {error}"));
        store
            .append(
                &format!("tls-{round}"),
                ExpectedRevision::NoStream,
                events(1),
            )
            .await
            .expect("append over TLS");
        let plain = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let (client, connection) = tokio_postgres::connect(&plain, tokio_postgres::NoTls)
            .await
            .expect("connect plainly");
        tokio::spawn(connection);
        let all_encrypted: bool = client
            .query_one(
                "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.backend_type = 'client backend' AND s.pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("ask")
            .get(0);
        assert!(
            all_encrypted,
            "every connection of the store is encrypted ({url})"
        );
        drop(store);
    }

    // The certificate names localhost, not 127.0.0.1; and without the test
    // CA the chain is unknown.
    for url in [
        format!(
            "postgres://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
            ca.display()
        ),
        format!("postgres://postgres@localhost:{port}/postgres?sslmode=verify-full"),
    ] {
        match PostgresStore::connect(&url, PostgresOptions::default()).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains(&format!(":{port}")), "{message}");
            }
            other => panic!("expected a refused certificate with {url}, got {other:?}"),
        }
    }
}
