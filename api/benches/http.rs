//! Load benchmark of the server over loopback HTTP: `myApplications`
//! throughput and latency with a large population loaded, then a login
//! storm measured against what argon2 alone does on the same core.
//!
//! Run with `cargo bench -p api --bench http`. Steps:
//! 1. seed a temp data dir through the store port with `BENCH_ACCOUNTS`
//!    password accounts (default 1 000 000), each with three applications
//!    (two of them submitted), and one real argon2id hash shared by all;
//! 2. start the release `caseledger serve` binary on it (its own process,
//!    pinned to CPU 0 with one tokio worker when the machine has two or
//!    more CPUs, so the numbers are per core) and wait for `/readyz`;
//! 3. log in `TOKENS` accounts, then drive `myApplications(first: 20)`
//!    from `BENCH_CONNECTIONS` keep-alive connections (default 16) for
//!    `BENCH_SECONDS` (default 10) from this process (pinned to CPU 1);
//! 4. measure argon2id alone on one thread (the server's hashing core),
//!    then login storms: `BENCH_STORM_CLIENTS` (default 8) clients logging
//!    in with the right password while 8 clients query `myApplications`,
//!    each pausing between queries; one storm per pacing in
//!    `BENCH_STORM_QUERY_PACES_MS` (default `50,5`: a latency probe of some
//!    150 queries/s, then a heavy load of some 1 100 queries/s), with
//!    argon2id alone measured again after each (the host's speed drifts:
//!    each storm is compared with the mean of the measurements on either
//!    side of it), and the server's resident memory throughout.
//!
//! `BENCH_SERVER_BINARY=<path>` drives another build of `caseledger`, to
//! compare two builds in one sitting.
//!
//! Prints a markdown report. Every latency is measured by the load
//! generator from request start to full body.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use keys::Keyer;
use serde_json::{Value, json};

mod common;
use common::{PASSWORD, Run, email, env_count};

const TOKENS: usize = 200;
const MY_APPLICATIONS: &str = "{ myApplications(first: 20) { edges { cursor node { id kind relation applicantName status createdAt submittedAt } } pageInfo { hasNextPage endCursor } } }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token expiresAt } }";

/// Fill `data_dir` with `accounts` accounts; returns the number of events.
async fn seed(data_dir: &Path, accounts: usize, phc: &str) -> u64 {
    let keyer = Keyer::load_or_create(data_dir).expect("secret");
    let store = api::server::open_store(data_dir, false).expect("store");
    common::seed_accounts(store, &keyer, accounts, phc).await
}

/// The release server binary next to this bench.
/// The server to drive: this build's `caseledger`, or `BENCH_SERVER_BINARY`
/// (to compare two builds in one sitting).
fn server_binary() -> PathBuf {
    std::env::var_os("BENCH_SERVER_BINARY").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_caseledger")),
        PathBuf::from,
    )
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether the server and the load generator get a CPU each (decided once,
/// before this process pins itself).
fn pinned() -> bool {
    static PINNED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PINNED.get_or_init(|| cpus() >= 2 && Path::new("/usr/bin/taskset").exists())
}

/// Start the server on `data_dir`; returns the child and its address.
fn start_server(data_dir: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut command = if pinned() {
        let mut c = Command::new("/usr/bin/taskset");
        c.args(["-c", "0"]).arg(server_binary());
        c.env("TOKIO_WORKER_THREADS", "1");
        c
    } else {
        Command::new(server_binary())
    };
    command
        .arg("serve")
        .args(["--listen", &listen])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--rate-limit-password", "0", "--rate-limit-mail", "0"])
        .env("CASELEDGER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let child = command.spawn().expect("start the server");
    (child, format!("http://{listen}"))
}

/// VmRSS and VmHWM of `pid` in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds (user + system) `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends with the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
    (ticks(11) + ticks(12)) / 100.0
}

/// Pin this process (the load generator) to CPU 1.
fn pin_self() {
    if pinned() {
        let _ = Command::new("/usr/bin/taskset")
            .args(["-a", "-p", "-c", "1", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
    }
}

async fn gql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = client
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> Duration {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `connections` loops of `myApplications` for `duration`; with `pace`,
/// each loop waits that long between requests.
async fn my_applications_load(
    client: reqwest::Client,
    base: Arc<str>,
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
            let base = base.clone();
            let tokens = tokens.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = c;
                let body = serde_json::to_vec(&json!({"query": MY_APPLICATIONS})).unwrap();
                while Instant::now() < deadline {
                    let token = &tokens[n % tokens.len()];
                    n += connections;
                    let t = Instant::now();
                    let ok = match client
                        .post(format!("{base}/graphql"))
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
                        latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
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
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Run {
        latencies,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
    }
}

/// [`argon2_per_second`] on a thread pinned to the server's core (CPU 0)
/// when the server is pinned; cores of a shared machine differ by several
/// percent from run to run.
fn argon2_on_server_core(seconds: f64) -> f64 {
    std::thread::spawn(move || {
        if pinned() {
            // "/proc/thread-self" links to "<pid>/task/<tid>".
            let tid = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|link| link.file_name().map(|t| t.to_string_lossy().into_owned()));
            if let Some(tid) = tid {
                let _ = Command::new("/usr/bin/taskset")
                    .args(["-p", "-c", "0", &tid])
                    .stdout(Stdio::null())
                    .status();
            }
        }
        argon2_per_second(seconds)
    })
    .join()
    .expect("argon2 thread")
}

/// argon2id hashes per second on one thread, at the server's parameters,
/// at its best: one working memory reused for every hash.
fn argon2_per_second(seconds: f64) -> f64 {
    let argon2 = argon2::Argon2::default();
    let mut memory = vec![argon2::Block::default(); argon2.params().block_count()];
    let mut output = [0u8; 32];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        argon2
            .hash_password_into_with_memory(
                PASSWORD.as_bytes(),
                b"benchmark-salt-1",
                &mut output,
                &mut memory,
            )
            .expect("hash");
        std::hint::black_box(&output);
        n += 1;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// argon2id alone on the server's core, on a blocking thread of the bench.
async fn argon2_alone() -> f64 {
    tokio::task::spawn_blocking(|| argon2_on_server_core(5.0))
        .await
        .expect("argon2")
}

/// What a login storm is run with.
struct StormSettings {
    accounts: usize,
    clients: usize,
    seconds: u64,
    pace_ms: u64,
    pid: u32,
}

/// What a login storm gave.
struct Storm {
    pace_ms: u64,
    logins_per_second: f64,
    refused: u64,
    /// Share of one core the server used.
    cpu_busy: f64,
    /// The paced `myApplications` queries run meanwhile.
    queries: Run,
    rss_hwm: f64,
}

/// `settings.clients` clients logging in with the right password, while 8
/// clients query `myApplications`, each pausing `settings.pace_ms` between
/// queries, for `settings.seconds`.
async fn login_storm(
    client: &reqwest::Client,
    base: &Arc<str>,
    tokens: &Arc<Vec<String>>,
    settings: StormSettings,
) -> Storm {
    let StormSettings {
        accounts,
        clients,
        seconds,
        pace_ms,
        pid,
    } = settings;
    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let cpu_before = cpu_seconds(pid);
    let storm: Vec<_> = (0..clients)
        .map(|c| {
            let client = client.clone();
            let base = base.clone();
            let stop = stop.clone();
            let logins = logins.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let answer = gql(
                        &client,
                        &base,
                        None,
                        LOGIN,
                        json!({"e": email(i % accounts), "p": PASSWORD}),
                    )
                    .await;
                    if answer["data"]["login"]["token"].is_string() {
                        logins.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    i += clients * 7919;
                }
            })
        })
        .collect();
    let queries = my_applications_load(
        client.clone(),
        base.clone(),
        tokens.clone(),
        8,
        Duration::from_secs(seconds),
        Some(Duration::from_millis(pace_ms)),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in storm {
        task.await.expect("storm task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (_, rss_hwm) = memory_mib(pid);
    Storm {
        pace_ms,
        logins_per_second: logins.load(Ordering::Relaxed) as f64 / elapsed,
        refused: refused.load(Ordering::Relaxed),
        cpu_busy: (cpu_seconds(pid) - cpu_before) / elapsed,
        queries,
        rss_hwm,
    }
}

fn main() {
    pinned();
    let accounts = env_count("BENCH_ACCOUNTS", 1_000_000).max(TOKENS);
    let connections = env_count("BENCH_CONNECTIONS", 16);
    let seconds = env_count("BENCH_SECONDS", 10) as u64;
    let storm_clients = env_count("BENCH_STORM_CLIENTS", 8);
    let storm_paces: Vec<u64> = std::env::var("BENCH_STORM_QUERY_PACES_MS")
        .unwrap_or_else(|_| "50,5".to_owned())
        .split(',')
        .map(|pace| {
            pace.trim()
                .parse()
                .expect("BENCH_STORM_QUERY_PACES_MS: milliseconds, comma-separated")
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // One real hash shared by every seeded account.
    let phc = common::shared_phc();
    eprintln!(
        "seeding {accounts} accounts and {} applications",
        3 * accounts
    );
    let seed_started = Instant::now();
    let events = runtime.block_on(seed(dir.path(), accounts, &phc));
    let seed_seconds = seed_started.elapsed().as_secs_f64();
    eprintln!("seeded {events} events in {seed_seconds:.0} s");

    let (mut server, base) = start_server(dir.path());
    pin_self();
    let pid = server.id();
    let report = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .expect("client");
        let ready = wait_ready(&client, &base).await;
        let (rss_ready, _) = memory_mib(pid);
        eprintln!("server ready in {:.1} s", ready.as_secs_f64());

        let mut tokens = Vec::with_capacity(TOKENS);
        for i in 0..TOKENS {
            let i = i * (accounts / TOKENS);
            let answer = gql(
                &client,
                &base,
                None,
                LOGIN,
                json!({"e": email(i), "p": PASSWORD}),
            )
            .await;
            let token = answer["data"]["login"]["token"]
                .as_str()
                .unwrap_or_else(|| panic!("login failed: {answer}"))
                .to_owned();
            tokens.push(token);
        }
        let check = gql(&client, &base, Some(&tokens[0]), MY_APPLICATIONS, json!({})).await;
        let edges = check["data"]["myApplications"]["edges"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(edges, 3, "each account sees its three applications: {check}");
        let tokens = Arc::new(tokens);
        let base: Arc<str> = base.clone().into();

        // Warm up, then measure.
        my_applications_load(
            client.clone(),
            base.clone(),
            tokens.clone(),
            connections,
            Duration::from_secs(2),
            None,
        )
        .await;
        let steady = my_applications_load(
            client.clone(),
            base.clone(),
            tokens.clone(),
            connections,
            Duration::from_secs(seconds),
            None,
        )
        .await;
        let (rss_steady, _) = memory_mib(pid);

        // argon2 alone on one thread, on the core the server hashes on
        // (idle now), so that each storm is compared with the same core;
        // measured again after each storm, as the host's speed drifts, and
        // each storm is compared with the mean of the measurements on either
        // side of it.
        let mut argon2 = vec![argon2_alone().await];
        let mut storms = Vec::new();
        for &pace in &storm_paces {
            let storm = login_storm(
                &client,
                &base,
                &tokens,
                StormSettings {
                    accounts,
                    clients: storm_clients,
                    seconds,
                    pace_ms: pace,
                    pid,
                },
            )
            .await;
            argon2.push(argon2_alone().await);
            storms.push(storm);
        }

        let mut report = format!(
            "\
| measure | value |
|---|---|
| accounts / applications / events seeded | {accounts} / {apps} / {events} (in {seed_seconds:.0} s) |
| server start to `/readyz` (replays every event) | {ready:.1} s |
| server CPU | {server_cpu} |
| `myApplications` throughput ({connections} connections) | {rps:.0} req/s |
| `myApplications` latency p50 / p99 / max | {p50:.2} / {p99:.2} / {max:.2} ms |
| `myApplications` errors | {errors} |
| argon2id alone, one thread on the server's core, memory reused (m=19 MiB, t=2, p=1), before and after each storm | {argon2_runs} hashes/s |
",
            apps = 3 * accounts,
            ready = ready.as_secs_f64(),
            server_cpu = if pinned() {
                "pinned to CPU 0, one tokio worker (load generator on CPU 1)"
            } else {
                "unpinned (fewer than two CPUs)"
            },
            rps = steady.per_second(),
            p50 = steady.percentile_ms(0.50),
            p99 = steady.percentile_ms(0.99),
            max = steady.percentile_ms(1.0),
            errors = steady.errors,
            argon2_runs = argon2
                .iter()
                .map(|rate| format!("{rate:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
        );
        let mut peak = 0.0f64;
        for (n, storm) in storms.iter().enumerate() {
            let alone = (argon2[n] + argon2[n + 1]) / 2.0;
            let during = &storm.queries;
            peak = peak.max(storm.rss_hwm);
            report.push_str(&format!(
                "\
| storm {k}: {clients} clients logging in, 8 clients querying `myApplications` with {pace} ms pacing | {logins:.1} logins/s ({refused} refused), {qps:.0} queries/s |
| storm {k}: logins/s as a fraction of argon2 alone (mean of before and after) | {fraction:.0} % |
| storm {k}: server CPU busy | {busy:.0} % of one core |
| storm {k}: `myApplications` p50 / p99 | {sp50:.2} / {sp99:.2} ms ({serrors} errors) |
",
                k = n + 1,
                clients = storm_clients,
                pace = storm.pace_ms,
                logins = storm.logins_per_second,
                refused = storm.refused,
                qps = during.per_second(),
                fraction = 100.0 * storm.logins_per_second / alone,
                busy = 100.0 * storm.cpu_busy,
                sp50 = during.percentile_ms(0.50),
                sp99 = during.percentile_ms(0.99),
                serrors = during.errors,
            ));
        }
        let (rss_end, hwm) = memory_mib(pid);
        report.push_str(&format!(
            "| server resident memory: ready / after load / after the storms / peak | {rss_ready:.0} / {rss_steady:.0} / {rss_end:.0} / {hwm:.0} MiB |\n",
            hwm = hwm.max(peak),
        ));
        report
    });
    let _ = server.kill();
    let _ = server.wait();
    println!("{report}");
}
