//! The driver of an adapter's crash test: a child process appends in a loop
//! and is killed with SIGKILL at random moments; after every kill the store
//! must hold every acknowledged event, intact, and no half-written one.
//!
//! The test binary (`harness = false`) is its own child: its `main` calls
//! [`main`], which runs the appender when `CRASH_CHILD_DIR` is set and the
//! test otherwise.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use store::{EventMetadata, EventStore, ExpectedRevision, NewEvent, RecordedEvent};
use uuid::Uuid;

/// The adapter under test.
#[derive(Clone, Copy)]
pub struct Target {
    /// The test's name, as `cargo test` lists and filters it.
    pub test_name: &'static str,
    /// Open (creating when needed) the store kept in a directory.
    pub open: fn(&Path) -> Arc<dyn EventStore>,
    /// Whether the child got as far as creating the store in a directory.
    pub created: fn(&Path) -> bool,
}
const CHILD_DIR: &str = "CRASH_CHILD_DIR";
const CHILD_TRIAL: &str = "CRASH_CHILD_TRIAL";
const TRIALS: u32 = 24;
const WRITERS: usize = 4;
const STREAMS_PER_WRITER: usize = 3;
/// Only there so that a child that never starts fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Run the crash test of `target` (or, in the child, its appender).
pub fn main(target: Target) {
    let test_name = target.test_name;
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let trial: u32 = std::env::var(CHILD_TRIAL)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        child(target, Path::new(&dir), trial);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "--list") {
        println!("{test_name}: test");
        return;
    }
    let filters = free_arguments(&args);
    if !filters.is_empty() && !filters.iter().any(|f| test_name.contains(f.as_str())) {
        println!("running 0 tests (filtered out: {test_name})");
        return;
    }
    println!("running 1 test");
    parent(target);
    println!("test {test_name} ... ok");
}

/// libtest-style filters: arguments that are neither flags nor flag values.
fn free_arguments(args: &[String]) -> Vec<String> {
    const TAKES_VALUE: &[&str] = &[
        "--test-threads",
        "--skip",
        "--format",
        "--color",
        "--logfile",
        "-Z",
    ];
    let mut free = Vec::new();
    let mut skip_next = false;
    for arg in args {
        if skip_next {
            skip_next = false;
        } else if TAKES_VALUE.contains(&arg.as_str()) {
            skip_next = true;
        } else if !arg.starts_with('-') {
            free.push(arg.clone());
        }
    }
    free
}

/// FNV-1a, 64 bits: enough to notice a torn or mixed-up payload.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn sealed_payload(rng: &mut impl Rng) -> Vec<u8> {
    let len = if rng.random_ratio(1, 10) {
        rng.random_range(4096..65536)
    } else {
        rng.random_range(16..512)
    };
    let mut payload = vec![0u8; len];
    rng.fill(payload.as_mut_slice());
    let sum = checksum(&payload);
    payload.extend_from_slice(&sum.to_le_bytes());
    payload
}

fn payload_is_intact(payload: &[u8]) -> bool {
    let Some(split) = payload.len().checked_sub(8) else {
        return false;
    };
    let (body, sum) = payload.split_at(split);
    sum == checksum(body).to_le_bytes()
}

// ------------------------------------------------------------------ child

/// Append forever from several tasks, printing each acknowledged append as
/// `ACK <stream> <first revision> <id>,<id>,...` and flushing.
fn child(target: Target, dir: &Path, trial: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = (target.open)(dir);
        let stdout = Arc::new(std::sync::Mutex::new(std::io::stdout()));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = Arc::clone(&store);
                let stdout = Arc::clone(&stdout);
                tokio::spawn(async move {
                    let mut next_revision = [0u64; STREAMS_PER_WRITER];
                    loop {
                        let (k, count, events) = {
                            let mut rng = rand::rng();
                            let k = rng.random_range(0..STREAMS_PER_WRITER);
                            let count = rng.random_range(1..=3);
                            let events: Vec<NewEvent> = (0..count)
                                .map(|_| NewEvent {
                                    id: Uuid::now_v7(),
                                    type_name: "CrashTested".to_owned(),
                                    schema_version: 1,
                                    metadata: EventMetadata {
                                        actor: format!("job:crash-{writer}").into(),
                                        correlation_id: Uuid::now_v7(),
                                        causation_id: None,
                                        occurred_at: chrono::Utc::now(),
                                    },
                                    payload: sealed_payload(&mut rng),
                                })
                                .collect();
                            (k, count, events)
                        };
                        let stream = format!("trial{trial}-w{writer}-s{k}");
                        let expected = match next_revision[k] {
                            0 => ExpectedRevision::NoStream,
                            next => ExpectedRevision::Exact(next - 1),
                        };
                        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
                        let result = store
                            .append(&stream, expected, events)
                            .await
                            .expect("child append");
                        assert_eq!(
                            result.next_expected_revision,
                            next_revision[k] + count as u64 - 1
                        );
                        {
                            let mut out = stdout.lock().expect("stdout");
                            writeln!(out, "ACK {stream} {} {}", next_revision[k], ids.join(","))
                                .and_then(|()| out.flush())
                                .expect("write ack");
                        }
                        next_revision[k] += count as u64;
                    }
                })
            })
            .collect();
        // The writers only stop when one fails (or the parent kills us).
        let (failed, _, _) = futures::future::select_all(writers).await;
        let Err(error) = failed;
        panic!("a writer failed: {error}");
    });
}

// ----------------------------------------------------------------- parent

struct Ack {
    stream: String,
    first_revision: u64,
    ids: Vec<Uuid>,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let stream = parts.next()?.to_owned();
    let first_revision = parts.next()?.parse().ok()?;
    let ids = parts
        .next()?
        .split(',')
        .map(|id| id.parse().ok())
        .collect::<Option<Vec<Uuid>>>()?;
    Some(Ack {
        stream,
        first_revision,
        ids,
    })
}

fn parent(target: Target) {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let exe = std::env::current_exe().expect("current exe");
    let mut rng = rand::rng();
    let mut acknowledged = 0usize;
    let mut acknowledged_by_trial = Vec::new();

    for trial in 0..TRIALS {
        let mut child = Command::new(&exe)
            .env(CHILD_DIR, dir.path())
            .env(CHILD_TRIAL, trial.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        let (lines, received) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line) {
                    // Only a whole line is an acknowledgement.
                    Ok(n) if n > 0 && line.ends_with(b"\n") => {
                        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                        if lines.send(text).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        });

        // Some kills land while the child is still opening the file; the
        // others after it has acknowledged appends.
        let early = rng.random_ratio(1, 5);
        let mut acks = Vec::new();
        if early {
            std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        } else {
            let first = received
                .recv_timeout(HANG_GUARD)
                .expect("the child never acknowledged an append");
            acks.push(first);
            std::thread::sleep(Duration::from_millis(rng.random_range(0..250)));
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().expect("reap the child");
        assert!(!status.success(), "the child was killed, not finished");
        reader.join().expect("reader thread");
        acks.extend(received.try_iter());

        let acks: Vec<Ack> = acks
            .iter()
            .map(|line| parse_ack(line).unwrap_or_else(|| panic!("bad child line {line:?}")))
            .collect();
        acknowledged += acks.iter().map(|ack| ack.ids.len()).sum::<usize>();
        acknowledged_by_trial.push(acks.len());
        runtime.block_on(verify(target, dir.path(), trial, &acks));
    }
    println!(
        "{TRIALS} kills, {acknowledged} acknowledged events verified (appends per trial: {acknowledged_by_trial:?})"
    );
}

/// Reopen after a kill and check the whole store.
async fn verify(target: Target, dir: &Path, trial: u32, acks: &[Ack]) {
    if !(target.created)(dir) {
        assert!(acks.is_empty(), "acknowledged appends but no store");
        return;
    }
    let store = (target.open)(dir);
    let mut all: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = all.last().map_or(0, |event| event.position);
        let page = store.read_all(after, 4096).await.expect("read all");
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    assert_eq!(
        store.head_position().await.expect("head"),
        all.last().map_or(0, |event| event.position)
    );

    // No half-written event: positions increase, revisions are contiguous
    // from 0 in every stream, every payload is whole.
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let mut next_revision: HashMap<&str, u64> = HashMap::new();
    for event in &all {
        let next = next_revision.entry(&*event.stream).or_default();
        assert_eq!(
            event.revision, *next,
            "revision gap in {} at position {}",
            event.stream, event.position
        );
        *next += 1;
        if &*event.type_name == "CrashTested" {
            assert!(
                payload_is_intact(&event.payload),
                "torn payload at position {}",
                event.position
            );
        }
    }

    // Every acknowledged event is there, where it was acknowledged.
    let by_id: HashMap<Uuid, &RecordedEvent> = all.iter().map(|event| (event.id, event)).collect();
    for ack in acks {
        for (offset, id) in ack.ids.iter().enumerate() {
            let event = by_id
                .get(id)
                .unwrap_or_else(|| panic!("trial {trial}: acknowledged event {id} is missing"));
            assert_eq!(*event.stream, *ack.stream);
            assert_eq!(event.revision, ack.first_revision + offset as u64);
        }
    }

    // The recovered file takes appends again.
    store
        .append(
            &format!("after-kill-{trial}"),
            ExpectedRevision::NoStream,
            vec![NewEvent {
                id: Uuid::now_v7(),
                type_name: "Recovered".to_owned(),
                schema_version: 1,
                metadata: EventMetadata {
                    actor: "system".into(),
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    occurred_at: chrono::Utc::now(),
                },
                payload: Vec::new(),
            }],
        )
        .await
        .expect("append after recovery");
}
