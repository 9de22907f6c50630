//! `caseledger seal-log` on data dirs made by the previous release (events
//! with emails and names in clear): afterwards no byte of them is in any
//! file of the data dir but the kept old log, the history replays with the
//! keys, the server runs on it, and a purge erases the person for good.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use migrations::sealed::Opener;
use store::sqlite::{SqliteLogReader, SqliteOptions, SqliteStore};
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent, StoreError};

const PASSWORD: &str = "Sommer2026abc";
const EMAIL: &str = "gunnhild.gammel@example.no";
const NAME: &str = "Gunnhild Gammelsen";

fn caseledger(args: &[&str], data_dir: &Path) -> Output {
    Command::new(program())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run caseledger")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The old logs `seal-log` kept in `dir`.
fn kept_logs(dir: &Path) -> Vec<PathBuf> {
    let mut kept: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().contains(".before-seal-"))
        })
        .collect();
    kept.sort();
    kept
}

/// Files holding `needle` besides the kept old logs.
fn outside_kept(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let kept = kept_logs(dir);
    files_holding(dir, needle.as_bytes())
        .into_iter()
        .filter(|path| !kept.contains(path))
        .collect()
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: "previous-release".into(),
        correlation_id: uuid::Uuid::now_v7(),
        causation_id: None,
        occurred_at: chrono::Utc::now(),
    }
}

/// Write the log of `source` (a data dir of this release) into `target` as
/// the previous release wrote it: the same events, streams, ids and
/// metadata, in the same order, each in its unsealed form; the values the
/// server keeps beside the log; no key table entries.
async fn as_previous_release(source: &Path, target: &Path) {
    let keyer = keys::Keyer::load_file(&source.join("secret.key")).expect("source secret");
    std::fs::copy(source.join("secret.key"), target.join("secret.key")).expect("copy secret");
    let from = SqliteStore::open(&source.join("events.sqlite3"), SqliteOptions::default())
        .expect("source log");
    let ring = keys::KeyRing::new(keyer);
    ring.load_all(&from).await.expect("source keys");
    let to = SqliteStore::open(&target.join("events.sqlite3"), SqliteOptions::default())
        .expect("target log");
    let mut after = 0;
    loop {
        let page = from.read_all(after, 500).await.expect("read source");
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page {
            let decoded = migrations::sealed::decode_opened(
                &event.type_name,
                event.schema_version,
                &event.payload,
                event.id,
                Some(&ring as &dyn Opener),
            )
            .expect("decode with keys");
            let clear = migrations::encode(&decoded);
            let written = to
                .append(
                    &event.stream,
                    ExpectedRevision::Any,
                    vec![NewEvent {
                        id: event.id,
                        type_name: clear.type_name.to_owned(),
                        schema_version: clear.schema_version,
                        metadata: event.metadata.clone(),
                        payload: clear.payload,
                    }],
                )
                .await
                .expect("append clear");
            assert_eq!(written.position, event.position);
        }
    }
    for name in ["secret.fingerprint", "outbox.position"] {
        if let Some(value) = from.read_value(name).await.expect("read value") {
            assert!(
                to.swap_value(name, None, &value)
                    .await
                    .expect("write value")
            );
        }
    }
}

/// Whether `/readyz` answers 200 within ten seconds (a server is ready
/// once its read models have caught up with the log).
async fn ready(server: &Server) -> bool {
    for _ in 0..200 {
        let answer = server
            .client
            .get(format!("{}/readyz", server.url))
            .send()
            .await;
        if answer.is_ok_and(|response| response.status() == 200) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn an_old_data_dir_is_sealed_then_a_purge_erases_the_person_for_good() {
    // This release writes the story; it is then written again as the
    // previous release wrote it (emails and names in clear).
    let source = tempfile::tempdir().expect("temp dir");
    let made = new_secret(&source.path().join("secret.key"));
    assert!(made.status.success(), "{}", text(&made));
    let server = Server::start_in(source, &[]);
    let token = server.register(EMAIL, PASSWORD, NAME).await;
    server.create_application(&token, "SELF", true).await;
    let recovery = server
        .gql(
            None,
            "mutation($e: String!) { startPasswordRecovery(email: $e) { flowId } }",
            serde_json::json!({"e": EMAIL}),
        )
        .await;
    assert!(
        recovery["data"]["startPasswordRecovery"]["flowId"].is_string(),
        "{recovery}"
    );
    let source = server.stop_gracefully();
    let old = tempfile::tempdir().expect("temp dir");
    as_previous_release(source.path(), old.path()).await;
    let data = old.path().to_path_buf();
    let log = data.join("events.sqlite3");
    for needle in [EMAIL, NAME] {
        assert!(
            files_holding(&data, needle.as_bytes()).contains(&log),
            "{needle:?} is in clear in the old log"
        );
    }

    // The previous release's data dir still opens and works; a login writes
    // to it, and the server is then killed, leaving its WAL behind.
    let server = Server::start_in(old, &[]);
    assert!(ready(&server).await);
    server.login(EMAIL, PASSWORD).await.expect("log in");
    let old = server.stop_gracefully();
    let server = Server::start_in(old, &[]);
    server.login(EMAIL, PASSWORD).await.expect("log in again");
    let old = server.stop();
    let wal = std::fs::metadata(data.join("events.sqlite3-wal")).map_or(0, |m| m.len());
    assert!(wal > 0, "the killed server left its WAL");
    assert!(
        data.join("projections.snapshot").exists(),
        "a snapshot to remove"
    );
    // And one a server left half written when it was killed.
    std::fs::copy(
        data.join("projections.snapshot"),
        data.join("projections.snapshot.tmp-4242-0"),
    )
    .expect("a leftover snapshot");
    let verify = replay(&data, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));

    let sealed = caseledger(&["seal-log"], &data);
    let said = text(&sealed);
    assert!(sealed.status.success(), "{said}");
    assert!(
        said.contains("keys made 1") && !said.contains("sealed 0"),
        "{said}"
    );
    assert!(said.contains("replay-tool head --out"), "{said}");
    let kept = kept_logs(&data);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(said.contains(&kept[0].display().to_string()), "{said}");
    for needle in [EMAIL, NAME] {
        assert_eq!(
            outside_kept(&data, needle),
            Vec::<PathBuf>::new(),
            "{needle:?}"
        );
        assert_eq!(
            files_holding(&data, needle.as_bytes()),
            kept,
            "the old log is kept as it was"
        );
    }
    assert!(!data.join("projections.snapshot").exists());
    assert!(!data.join("events.sqlite3.sealing").exists());
    let verify = replay(&data, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    let history = replay(
        &data,
        &["history", "--email", EMAIL, "--show-personal-data"],
    );
    assert!(
        history.status.success() && text(&history).contains(NAME),
        "{}",
        text(&history)
    );

    // Again: nothing left to seal, nothing renamed.
    let again = caseledger(&["seal-log"], &data);
    assert!(again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("sealed 0"), "{}", text(&again));
    assert_eq!(kept_logs(&data), kept);

    // The server runs on the sealed log; seal-log refuses beside it.
    let server = Server::start_in(old, &[]);
    assert!(ready(&server).await);
    server
        .login(EMAIL, PASSWORD)
        .await
        .expect("log in after sealing");
    let refused = caseledger(&["seal-log"], &data);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("in use by another caseledger server")
            && text(&refused).contains("stop the server first"),
        "{}",
        text(&refused)
    );
    let old = server.stop_gracefully();
    let rebuild = replay(&data, &["rebuild"]);
    assert!(
        rebuild.status.success() && text(&rebuild).contains("MATCHES the snapshot"),
        "{}",
        text(&rebuild)
    );

    // A purge (with a server running to send the deletion mail) erases them.
    let server = Server::start_in(old, &[]);
    let far = (chrono::Utc::now() + chrono::Duration::days(3 * 366)).to_rfc3339();
    let purge = server.cli(&["purge-inactive", "--as-of", &far]);
    let purged = text(&purge);
    assert!(
        purge.status.success() && purged.contains("deleted 1") && purged.contains("released 1"),
        "{purged}"
    );
    let old = server.stop_gracefully();
    for needle in [EMAIL, NAME] {
        assert_eq!(
            outside_kept(old.path(), needle),
            Vec::<PathBuf>::new(),
            "{needle:?}"
        );
    }
    let verify = replay(&data, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    let history = replay(
        &data,
        &["history", "--email", EMAIL, "--show-personal-data"],
    );
    assert!(!text(&history).contains(NAME), "{}", text(&history));
}

/// The golden vectors' stored bytes of `type_name` at `version`.
fn golden(type_name: &str, version: u16) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations/test_data")
        .join(format!("{type_name}.v{version}.bin"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn golden_vectors_stored_in_clear_are_sealed_and_those_of_a_released_email_read_erased() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path();
    let made = new_secret(&data.join("secret.key"));
    assert!(made.status.success(), "{}", text(&made));
    let keyer = keys::Keyer::load_file(&data.join("secret.key")).expect("secret");
    let samples = migrations::samples::all();
    // The email of the registration sample was released (its account
    // deleted by a purge) after its registration and its flow.
    let released_stream = samples
        .iter()
        .find_map(|(_, _, event)| match migrations::sealed::personal(event) {
            Some((migrations::sealed::Subject::Email(email), _)) => {
                Some(keys::email_stream(&keyer.email_key(email)))
            }
            _ => None,
        })
        .expect("a sample with an email");
    let mut ids = Vec::new();
    let mut released_at = None;
    {
        let store =
            SqliteStore::open(&data.join("events.sqlite3"), SqliteOptions::default()).expect("log");
        for (index, (type_name, version, _)) in samples.iter().enumerate() {
            let id = uuid::Uuid::now_v7();
            ids.push(id);
            let stream = if *type_name == "IdentityReleased" {
                released_at = Some(index + 1);
                released_stream.clone()
            } else {
                format!("golden-{index}")
            };
            store
                .append(
                    &stream,
                    ExpectedRevision::Any,
                    vec![NewEvent {
                        id,
                        type_name: (*type_name).to_owned(),
                        schema_version: *version,
                        metadata: metadata(),
                        payload: golden(type_name, *version),
                    }],
                )
                .await
                .expect("append");
        }
    }
    let released_at = released_at.expect("a release sample") as u64;
    let personal: Vec<String> = samples
        .iter()
        .filter_map(|(_, _, event)| migrations::sealed::personal(event))
        .flat_map(|(_, fields)| fields.into_iter().map(str::to_owned))
        .collect();
    assert!(personal.len() >= 4, "{personal:?}");
    for field in &personal {
        assert!(
            !files_holding(data, field.as_bytes()).is_empty(),
            "{field:?} in clear"
        );
    }

    let sealed = caseledger(&["seal-log"], data);
    let said = text(&sealed);
    assert!(sealed.status.success(), "{said}");
    assert!(said.contains("sealed 3, keys made 1"), "{said}");
    assert!(said.contains("2 event(s) of deleted accounts"), "{said}");
    for field in &personal {
        assert_eq!(
            outside_kept(data, field),
            Vec::<PathBuf>::new(),
            "{field:?}"
        );
    }
    let verify = replay(data, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));

    // Every event decodes, with the new key table, to what it was; the
    // released email's person reads as erased.
    let mut reader = SqliteLogReader::open(&data.join("events.sqlite3")).expect("sealed log");
    let ring = keys::KeyRing::new(keyer);
    ring.hold(&reader.data_keys().expect("keys"))
        .expect("unwrap keys");
    ring.treat_missing_as_destroyed();
    let mut seen = 0;
    let mut erased = 0;
    reader
        .for_each_between::<StoreError>(0, u64::MAX, usize::MAX, |stored| {
            let index = (stored.position - 1) as usize;
            assert_eq!(stored.id().expect("id"), ids[index]);
            let decoded = migrations::sealed::decode_opened(
                stored.type_name,
                stored.schema_version,
                stored.payload,
                ids[index],
                Some(&ring as &dyn Opener),
            )
            .expect("decode");
            let sample = &samples[index].2;
            let sealed = stored.schema_version & migrations::sealed::SEALED != 0;
            assert_eq!(
                sealed,
                migrations::sealed::personal(sample).is_some(),
                "position {}",
                stored.position
            );
            let of_released = matches!(
                migrations::sealed::personal(sample),
                Some((migrations::sealed::Subject::Email(_), _))
            ) && stored.position < released_at;
            if of_released {
                erased += 1;
                assert_eq!(decoded, migrations::sealed::redact(sample));
                assert_ne!(decoded, *sample);
            } else {
                assert_eq!(decoded, *sample, "position {}", stored.position);
            }
            seen += 1;
            Ok(())
        })
        .expect("scan");
    assert_eq!((seen, erased), (samples.len(), 2));

    // A PostgreSQL store is not rewritten, and the refusal says why.
    let refused = Command::new(program())
        .args([
            "seal-log",
            "--store",
            "postgres://caseledger@127.0.0.1:1/none",
        ])
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("seal-log");
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("not supported yet"),
        "{}",
        text(&refused)
    );
}
