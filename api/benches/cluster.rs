//! Load benchmark of a cluster over loopback HTTP: one node against three
//! nodes over the same PostgreSQL database, alternated in one run.
//!
//! Run with a PostgreSQL server named by `CASELEDGER_TEST_POSTGRES` (a
//! throwaway one: `.ci/postgres start DIR` prints its URL):
//! `cargo bench -p api --bench cluster`. Steps:
//! 1. a fresh database on that server, a fresh secret file, and
//!    `BENCH_ACCOUNTS` password accounts (default 100 000) seeded through
//!    the store port, each with three applications;
//! 2. three release `caseledger serve` nodes on that database, each with
//!    its own data dir (and file outbox), waited for at `/readyz`;
//!    `BENCH_TOKENS` (default 200) accounts logged in;
//! 3. `BENCH_ROUNDS` rounds (default 3), each measuring both set-ups, one
//!    after the other (the order alternates from round to round): *one
//!    node* (the first; the other two are stopped with `SIGTERM`, so that the first node takes the mail lease)
//!    and *three nodes* (the other two started again on their data dirs and
//!    caught up; each client turns to the next node for each step). In
//!    each set-up:
//!    - `myApplications(first: 20)` from `BENCH_CONNECTIONS` (default 16)
//!      keep-alive connections for `BENCH_SECONDS` (default 10);
//!    - then, for as long again, a mixed load: `BENCH_JOURNEY_CLIENTS`
//!      (default 4) clients each running registration journeys
//!      (`startRegistration`, the code read from the outbox file of the
//!      node that sent it, `verifyRegistrationCode`, `completeRegistration`,
//!      each step on the next node and naming the position the step before
//!      wrote); 8 clients querying `myApplications` with 5 ms pauses; and
//!      `BENCH_PROBE_CLIENTS` (default 2) read-your-writes probes:
//!      `createApplication` on node A, then at once `myApplications` on
//!      node B with `Caseledger-Min-Position` (which must list the new
//!      application), then the same query on B without the header. The
//!      extra wait of a probe is the first read's latency less the
//!      second's.
//!
//! Prints a markdown report: every round's figures, then the medians of
//! the rounds per set-up. `BENCH_SERVER_BINARY=<path>` drives another
//! build of `caseledger`. The machine's cores are shared by the nodes,
//! PostgreSQL and this load generator: the three-node set-up measures what
//! the cluster costs on one machine, not what more machines would add.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{PASSWORD, Run, email, env_count};

const MY_APPLICATIONS: &str = "{ myApplications(first: 20) { edges { cursor node { id kind relation applicantName status createdAt submittedAt } } pageInfo { hasNextPage endCursor } } }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token expiresAt } }";
const CREATE_APPLICATION: &str = "mutation { createApplication(input: { kind: WORK, relation: SELF, applicant: { name: \"Nora Nordmann\", birthDate: \"1990-05-17\", nationality: \"SWE\" } }) { id } }";
const START_REGISTRATION: &str =
    "mutation($e: String!) { startRegistration(email: $e) { flowId } }";
const VERIFY_CODE: &str =
    "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }";
const COMPLETE_REGISTRATION: &str = "mutation($f: ID!, $p: String!, $n: String!) { completeRegistration(flowId: $f, password: $p, name: $n) { token } }";
/// The password of the accounts the journeys register.
const NEW_PASSWORD: &str = "Sommer2026abc";
const METRICS_TOKEN: &str = "cluster-bench-metrics";
const MIN_POSITION: &str = "caseledger-min-position";
const POSITION: &str = "caseledger-position";

/// The server to drive: this build's `caseledger`, or `BENCH_SERVER_BINARY`.
fn server_binary() -> PathBuf {
    std::env::var_os("BENCH_SERVER_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_caseledger")),
        PathBuf::from,
    )
}

/// One `caseledger serve` node of the cluster: its own port and data dir
/// (and file outbox), kept across restarts.
struct Node {
    child: Option<Child>,
    url: String,
    listen: String,
    store: String,
    secret: PathBuf,
    data_dir: tempfile::TempDir,
}

impl Node {
    fn start(store: &str, secret: &Path) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut node = Node {
            child: None,
            url: format!("http://{listen}"),
            listen,
            store: store.to_owned(),
            secret: secret.to_path_buf(),
            data_dir: tempfile::tempdir().expect("data dir"),
        };
        node.run();
        node
    }

    /// Start the process (again, on the same data dir) unless it runs.
    fn run(&mut self) {
        if self.child.is_some() {
            return;
        }
        let child = Command::new(server_binary())
            .arg("serve")
            .args(["--listen", &self.listen, "--store", &self.store])
            .arg("--secret-file")
            .arg(&self.secret)
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--rate-limit-password", "0", "--rate-limit-mail", "0"])
            .env("CASELEDGER_LOG", "warn")
            .env("CASELEDGER_METRICS_TOKEN", METRICS_TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a node");
        self.child = Some(child);
    }

    /// Stop the process cleanly (`SIGTERM`: it releases the mail lease).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn outbox(&self) -> PathBuf {
        self.data_dir.path().join("outbox")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// POST a GraphQL request: the answer (`None` on a transport failure or a
/// body that is not JSON) and the position it wrote.
async fn gql(
    client: &reqwest::Client,
    base: &str,
    headers: &[(&str, String)],
    query: &str,
    variables: Value,
) -> (Option<Value>, Option<u64>) {
    let mut request = client
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let Ok(response) = request.send().await else {
        return (None, None);
    };
    let position = response
        .headers()
        .get(POSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (response.json().await.ok(), position)
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn min_position(position: u64) -> (&'static str, String) {
    (MIN_POSITION, position.to_string())
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{base} not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the node at `base` holds the mail lease.
async fn holds_lease(client: &reqwest::Client, base: &str) -> bool {
    let Ok(response) = client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
    else {
        return false;
    };
    response.text().await.unwrap_or_default().lines().any(|l| {
        l.strip_prefix("caseledger_outbox_lease_held ")
            .is_some_and(|v| v.trim() == "1")
    })
}

/// The codes of the registration mails in the nodes' outboxes, by
/// recipient: one watcher reads each new file once.
#[derive(Default)]
struct Codes {
    by_recipient: Mutex<HashMap<String, String>>,
}

impl Codes {
    /// Read the outboxes every 10 ms until `stop`.
    async fn watch(self: Arc<Codes>, outboxes: Vec<PathBuf>, stop: Arc<AtomicBool>) {
        let mut seen = HashSet::new();
        while !stop.load(Ordering::Relaxed) {
            for dir in &outboxes {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.filter_map(Result::ok) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.ends_with(".eml")
                        || !name.contains("-registration-code-")
                        || seen.contains(&name)
                    {
                        continue;
                    }
                    let Ok(raw) = std::fs::read_to_string(entry.path()) else {
                        continue;
                    };
                    seen.insert(name);
                    let raw = raw.replace("\r\n", "\n");
                    let Some((head, body)) = raw.split_once("\n\n") else {
                        continue;
                    };
                    let to = head
                        .lines()
                        .find_map(|l| l.strip_prefix("To:"))
                        .map(|v| v.trim().to_owned());
                    let code = body
                        .lines()
                        .map(str::trim)
                        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()));
                    if let (Some(to), Some(code)) = (to, code) {
                        self.by_recipient
                            .lock()
                            .expect("codes lock")
                            .insert(to, code.to_owned());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The code mailed to `to`, waiting up to 15 s.
    async fn wait(&self, to: &str) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(code) = self.by_recipient.lock().expect("codes lock").remove(to) {
                return Some(code);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

fn micros(elapsed: Duration) -> u32 {
    elapsed.as_micros().min(u32::MAX as u128) as u32
}

fn finish(mut latencies: Vec<u32>, errors: u64, elapsed: Duration) -> Run {
    latencies.sort_unstable();
    Run {
        latencies,
        errors,
        elapsed,
    }
}

/// `myApplications` from `connections` loops over `nodes` (connection `c`
/// on node `c % n`) for `duration`; with `pace`, each loop waits that long
/// between requests.
async fn my_applications_load(
    client: reqwest::Client,
    nodes: Arc<Vec<String>>,
    tokens: Arc<Vec<String>>,
    connections: usize,
    duration: Duration,
    pace: Option<Duration>,
) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let errors = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let client = client.clone();
            let base = nodes[c % nodes.len()].clone();
            let tokens = tokens.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = c;
                let body = serde_json::to_vec(&json!({"query": MY_APPLICATIONS})).unwrap();
                let url = format!("{base}/graphql");
                while Instant::now() < deadline {
                    let token = &tokens[n % tokens.len()];
                    n += connections;
                    let t = Instant::now();
                    let ok = match client
                        .post(&url)
                        .bearer_auth(token)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(response) => match response.bytes().await {
                            Ok(bytes) => bytes.starts_with(b"{\"data\":{\"myApplications\""),
                            Err(_) => false,
                        },
                        Err(_) => false,
                    };
                    if ok {
                        latencies.push(micros(t.elapsed()));
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(pace) = pace {
                        tokio::time::sleep(pace).await;
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("load task"));
    }
    finish(latencies, errors.load(Ordering::Relaxed), started.elapsed())
}

/// One registration journey, each step on the next node: whether it
/// completed.
async fn journey(
    client: &reqwest::Client,
    nodes: &[String],
    first: usize,
    codes: &Codes,
    to: &str,
) -> bool {
    let node = |step: usize| nodes[(first + step) % nodes.len()].as_str();
    let (started, at) = gql(client, node(0), &[], START_REGISTRATION, json!({"e": to})).await;
    let (Some(flow), Some(at)) = (
        started
            .as_ref()
            .and_then(|s| s["data"]["startRegistration"]["flowId"].as_str()),
        at,
    ) else {
        return false;
    };
    let Some(code) = codes.wait(to).await else {
        return false;
    };
    let (verified, at) = gql(
        client,
        node(1),
        &[min_position(at)],
        VERIFY_CODE,
        json!({"f": flow, "c": code}),
    )
    .await;
    let (Some(true), Some(at)) = (
        verified.and_then(|v| v["data"]["verifyRegistrationCode"].as_bool()),
        at,
    ) else {
        return false;
    };
    let (done, _) = gql(
        client,
        node(2),
        &[min_position(at)],
        COMPLETE_REGISTRATION,
        json!({"f": flow, "p": NEW_PASSWORD, "n": "Kari Nordmann"}),
    )
    .await;
    done.is_some_and(|d| d["data"]["completeRegistration"]["token"].is_string())
}

/// What one read-your-writes probe gave: the read with the position's
/// latency and that of the same read after it, in microseconds.
struct Probe {
    with_position: u32,
    after: u32,
}

/// `createApplication` on `a`, then `myApplications` on `b` naming its
/// position (it must list the new application), then the same without.
async fn probe(client: &reqwest::Client, a: &str, b: &str, token: &str) -> Option<Probe> {
    let (created, at) = gql(client, a, &[bearer(token)], CREATE_APPLICATION, json!({})).await;
    let id = created?["data"]["createApplication"]["id"]
        .as_str()?
        .to_owned();
    let t = Instant::now();
    let (read, _) = gql(
        client,
        b,
        &[bearer(token), min_position(at?)],
        MY_APPLICATIONS,
        json!({}),
    )
    .await;
    let with_position = micros(t.elapsed());
    let listed = read?["data"]["myApplications"]["edges"]
        .as_array()?
        .iter()
        .any(|edge| edge["node"]["id"] == id.as_str());
    if !listed {
        eprintln!("a read on another node with the position did not list the new application");
        return None;
    }
    let t = Instant::now();
    let (again, _) = gql(client, b, &[bearer(token)], MY_APPLICATIONS, json!({})).await;
    let after = micros(t.elapsed());
    again?["data"]["myApplications"].as_object()?;
    Some(Probe {
        with_position,
        after,
    })
}

/// What the mixed load of one set-up gave.
struct Mixed {
    journeys: Run,
    /// Extra wait of each probe (the read with the position less the read
    /// after it), in microseconds, sorted; negative differences count as 0.
    extra_wait: Run,
    with_position: Run,
    reads: Run,
}

/// Journeys, paced reads and probes together for `duration`.
async fn mixed_load(
    client: &reqwest::Client,
    nodes: &Arc<Vec<String>>,
    tokens: &Arc<Vec<String>>,
    codes: &Arc<Codes>,
    settings: &Settings,
    set_up: &str,
    round: usize,
) -> Mixed {
    let duration = Duration::from_secs(settings.seconds);
    let started = Instant::now();
    let deadline = started + duration;
    let journeys: Vec<_> = (0..settings.journey_clients)
        .map(|c| {
            let client = client.clone();
            let nodes = nodes.clone();
            let codes = codes.clone();
            // No space in an address.
            let set_up = set_up.replace(' ', "-");
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0);
                let mut n = 0usize;
                while Instant::now() < deadline {
                    let to = format!("journey-{set_up}-{round}-{c}-{n}@bench.example");
                    let t = Instant::now();
                    if journey(&client, &nodes, c + n, &codes, &to).await {
                        latencies.push(micros(t.elapsed()));
                    } else {
                        errors += 1;
                    }
                    n += 1;
                }
                (latencies, errors)
            })
        })
        .collect();
    let probes: Vec<_> = (0..settings.probe_clients)
        .map(|c| {
            let client = client.clone();
            let nodes = nodes.clone();
            // Tokens of their own: the other loads read other accounts.
            let token = tokens[tokens.len() - 1 - c].clone();
            tokio::spawn(async move {
                let (mut probes, mut errors) = (Vec::new(), 0);
                let mut n = c;
                while Instant::now() < deadline {
                    let a = &nodes[n % nodes.len()];
                    let b = &nodes[(n + 1) % nodes.len()];
                    match probe(&client, a, b, &token).await {
                        Some(p) => probes.push(p),
                        None => errors += 1,
                    }
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (probes, errors)
            })
        })
        .collect();
    let reads = my_applications_load(
        client.clone(),
        nodes.clone(),
        tokens.clone(),
        8,
        duration,
        Some(Duration::from_millis(5)),
    )
    .await;
    let (mut journey_latencies, mut journey_errors) = (Vec::new(), 0);
    for task in journeys {
        let (latencies, errors) = task.await.expect("journey task");
        journey_latencies.extend(latencies);
        journey_errors += errors;
    }
    let (mut extra, mut with_position, mut probe_errors) = (Vec::new(), Vec::new(), 0);
    for task in probes {
        let (probes, errors) = task.await.expect("probe task");
        for p in probes {
            extra.push(p.with_position.saturating_sub(p.after));
            with_position.push(p.with_position);
        }
        probe_errors += errors;
    }
    let elapsed = started.elapsed();
    Mixed {
        journeys: finish(journey_latencies, journey_errors, elapsed),
        extra_wait: finish(extra, probe_errors, elapsed),
        with_position: finish(with_position, probe_errors, elapsed),
        reads,
    }
}

/// The figures of one set-up in one round.
struct Measured {
    set_up: &'static str,
    round: usize,
    reads: Run,
    mixed: Mixed,
}

struct Settings {
    connections: usize,
    seconds: u64,
    journey_clients: usize,
    probe_clients: usize,
}

/// Wait until every node of `nodes` has applied the log's head (one write
/// on the first, then a read naming its position on each).
async fn caught_up(client: &reqwest::Client, nodes: &[String], token: &str) {
    let (answer, at) = gql(
        client,
        &nodes[0],
        &[bearer(token)],
        CREATE_APPLICATION,
        json!({}),
    )
    .await;
    let at = at.unwrap_or_else(|| panic!("no position on a write: {answer:?}"));
    for node in nodes {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (read, _) = gql(
                client,
                node,
                &[bearer(token), min_position(at)],
                MY_APPLICATIONS,
                json!({}),
            )
            .await;
            if read.is_some_and(|r| r["data"]["myApplications"].is_object()) {
                break;
            }
            assert!(Instant::now() < deadline, "{node} does not catch up");
        }
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn main() {
    let accounts = env_count("BENCH_ACCOUNTS", 100_000);
    let token_count = env_count("BENCH_TOKENS", 200).clamp(8, accounts);
    let rounds = env_count("BENCH_ROUNDS", 3).max(1);
    let settings = Settings {
        connections: env_count("BENCH_CONNECTIONS", 16),
        seconds: env_count("BENCH_SECONDS", 10) as u64,
        journey_clients: env_count("BENCH_JOURNEY_CLIENTS", 4),
        probe_clients: env_count("BENCH_PROBE_CLIENTS", 2).clamp(1, token_count / 2),
    };
    let store_url = test_support::postgres::fresh_database("caseledger_bench");
    let secret_dir = tempfile::tempdir().expect("temp dir");
    let secret = secret_dir.path().join("cluster.key");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    eprintln!(
        "seeding {accounts} accounts and {} applications into PostgreSQL",
        3 * accounts
    );
    let seed_started = Instant::now();
    let events = runtime.block_on(async {
        let config = api::stores::StoreConfig {
            data_dir: secret_dir.path().to_path_buf(),
            store: api::stores::StoreLocation::Postgres(store_url.clone()),
            secret_file: secret.clone(),
            durable: true,
        };
        let (keyer, store) = config.open().await.expect("open the store");
        common::seed_accounts(store, &keyer, accounts, &common::shared_phc()).await
    });
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    eprintln!("seeded {events} events in {seed_seconds:.0} s");

    let mut nodes: Vec<Node> = (0..3).map(|_| Node::start(&store_url, &secret)).collect();
    let report = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut ready = Vec::new();
        for node in &nodes {
            ready.push(wait_ready(&client, &node.url).await);
        }
        eprintln!("nodes ready in {ready:.1?}");
        let all: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.url.clone()).collect());

        let mut tokens = Vec::with_capacity(token_count);
        for i in 0..token_count {
            let (answer, _) = gql(
                &client,
                &all[i % all.len()],
                &[],
                LOGIN,
                json!({"e": email(i * (accounts / token_count)), "p": PASSWORD}),
            )
            .await;
            let answer = answer.expect("login answer");
            tokens.push(
                answer["data"]["login"]["token"]
                    .as_str()
                    .unwrap_or_else(|| panic!("login failed: {answer}"))
                    .to_owned(),
            );
        }
        let tokens = Arc::new(tokens);

        let stop = Arc::new(AtomicBool::new(false));
        let codes = Arc::new(Codes::default());
        let watcher = tokio::spawn(
            codes
                .clone()
                .watch(nodes.iter().map(Node::outbox).collect(), stop.clone()),
        );

        let mut measured = Vec::new();
        for round in 1..=rounds {
            let order: [&'static str; 2] = if round % 2 == 1 {
                ["one node", "three nodes"]
            } else {
                ["three nodes", "one node"]
            };
            for set_up in order {
                let targets = if set_up == "one node" {
                    for node in &mut nodes[1..] {
                        node.stop();
                    }
                    // The lease is released at a clean stop: the first node
                    // sends the mail now.
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !holds_lease(&client, &nodes[0].url).await {
                        assert!(
                            Instant::now() < deadline,
                            "the first node never took the mail lease"
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Arc::new(vec![all[0].clone()])
                } else {
                    for node in &mut nodes {
                        node.run();
                    }
                    for node in &nodes {
                        wait_ready(&client, &node.url).await;
                    }
                    caught_up(&client, &all, &tokens[0]).await;
                    all.clone()
                };
                eprintln!("round {round}: {set_up}");
                // Warm up, then measure.
                my_applications_load(
                    client.clone(),
                    targets.clone(),
                    tokens.clone(),
                    settings.connections,
                    Duration::from_secs(2),
                    None,
                )
                .await;
                let reads = my_applications_load(
                    client.clone(),
                    targets.clone(),
                    tokens.clone(),
                    settings.connections,
                    Duration::from_secs(settings.seconds),
                    None,
                )
                .await;
                let mixed =
                    mixed_load(&client, &targets, &tokens, &codes, &settings, set_up, round).await;
                measured.push(Measured {
                    set_up,
                    round,
                    reads,
                    mixed,
                });
            }
        }
        stop.store(true, Ordering::Relaxed);
        watcher.await.expect("mail watcher");
        render(
            &measured,
            &settings,
            accounts,
            events,
            seed_seconds,
            token_count,
        )
    });
    drop(nodes);
    // The database is large; the server is a throwaway one, but its disk is not.
    let server = test_support::postgres::server_url();
    let database = store_url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap_or_default()
        .to_owned();
    if let Err(error) =
        test_support::postgres::execute(&server, &format!("DROP DATABASE {database} WITH (FORCE)"))
    {
        eprintln!("dropping the bench database {database}: {error}");
    }
    println!("{report}");
}

fn render(
    measured: &[Measured],
    settings: &Settings,
    accounts: usize,
    events: u64,
    seed_seconds: f64,
    tokens: usize,
) -> String {
    let mut report = format!(
        "\
{accounts} accounts / {apps} applications / {events} events seeded into PostgreSQL in {seed_seconds:.0} s; {tokens} callers logged in.
`myApplications(first: 20)` from {connections} connections for {seconds} s; then for {seconds} s: {journeys} clients running registration journeys, 8 clients reading `myApplications` with 5 ms pauses, {probes} read-your-writes probes (20 ms pauses).

| round | set-up | `myApplications` req/s | p50 / p99 ms | errors | journeys/s | journey p50 / p99 ms | journey errors | reads beside them p99 ms | read with `Caseledger-Min-Position` p99 ms | extra wait p50 / p99 ms (probes) | probe errors |
|---|---|---|---|---|---|---|---|---|---|---|---|
",
        apps = 3 * accounts,
        connections = settings.connections,
        seconds = settings.seconds,
        journeys = settings.journey_clients,
        probes = settings.probe_clients,
    );
    for m in measured {
        let x = &m.mixed;
        report.push_str(&format!(
            "| {round} | {set_up} | {rps:.0} | {p50:.2} / {p99:.2} | {errors} | {jps:.1} | {jp50:.0} / {jp99:.0} | {jerrors} | {rp99:.2} | {wp99:.2} | {ep50:.2} / {ep99:.2} ({n}) | {perrors} |\n",
            round = m.round,
            set_up = m.set_up,
            rps = m.reads.per_second(),
            p50 = m.reads.percentile_ms(0.50),
            p99 = m.reads.percentile_ms(0.99),
            errors = m.reads.errors,
            jps = x.journeys.per_second(),
            jp50 = x.journeys.percentile_ms(0.50),
            jp99 = x.journeys.percentile_ms(0.99),
            jerrors = x.journeys.errors,
            rp99 = x.reads.percentile_ms(0.99),
            wp99 = x.with_position.percentile_ms(0.99),
            ep50 = x.extra_wait.percentile_ms(0.50),
            ep99 = x.extra_wait.percentile_ms(0.99),
            n = x.extra_wait.latencies.len(),
            perrors = x.extra_wait.errors,
        ));
    }
    report.push_str(
        "\nMedians over the rounds:\n\n| set-up | `myApplications` req/s | `myApplications` p99 ms | journeys/s | extra wait p99 ms |\n|---|---|---|---|---|\n",
    );
    let mut medians = HashMap::new();
    for set_up in ["one node", "three nodes"] {
        let of = |f: &dyn Fn(&Measured) -> f64| {
            median(
                measured
                    .iter()
                    .filter(|m| m.set_up == set_up)
                    .map(f)
                    .collect(),
            )
        };
        let row = [
            of(&|m| m.reads.per_second()),
            of(&|m| m.reads.percentile_ms(0.99)),
            of(&|m| m.mixed.journeys.per_second()),
            of(&|m| m.mixed.extra_wait.percentile_ms(0.99)),
        ];
        report.push_str(&format!(
            "| {set_up} | {:.0} | {:.2} | {:.1} | {:.2} |\n",
            row[0], row[1], row[2], row[3]
        ));
        medians.insert(set_up, row);
    }
    let (one, three) = (medians["one node"], medians["three nodes"]);
    report.push_str(&format!(
        "| three / one | {:.2} | {:.2} | {:.2} | |\n",
        three[0] / one[0],
        three[1] / one[1],
        three[2] / one[2],
    ));
    report
}
