//! Replay benchmark of the read models, on one thread (the snapshot load
//! alone decodes on two, as the server does).
//!
//! `cargo bench -p projections --bench replay` runs every phase, each in a
//! fresh child process so memory numbers do not mix:
//!
//! - `throughput`: 10 M generated events (registrations with their flow and
//!   reservation, logins, logouts, applications through their lifecycle,
//!   bookings, fees, decisions, legacy imports, purges) through
//!   `ReadModel::apply`, and again with postcard decoding (`migrations::decode`
//!   of bytes encoded once beforehand). Generation and encoding are not timed.
//!   The apply rate is also given per CPU second of the thread.
//! - `accounts`, `load-accounts`: a state with 1 M accounts and no
//!   applications, saved, then loaded in a fresh process: bytes per account.
//! - `state`: the state with 1 M accounts and 3 M applications: resident
//!   memory, digest time, snapshot save time and file size.
//! - `load`: cold start (a fresh process) from that snapshot: load time,
//!   resident memory, bytes per application (minus the accounts-only state).
//!
//! `REPLAY_BENCH_SCALE=0.05` scales every size down for a quick run.
//! The server's allocator (mimalloc) is used, as in the `caseledger` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use projections::ReadModel;
use projections::snapshot;
use test_support::workload::{Targets, Workload};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SEED: u64 = 0x5eed_2026;
const CHUNK: usize = 200_000;

fn scale() -> f64 {
    std::env::var("REPLAY_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0)
}

fn scaled(n: usize) -> usize {
    ((n as f64 * scale()) as usize).max(1)
}

/// (VmRSS, VmHWM) in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time of the calling thread so far (user and system time from
/// `/proc/thread-self/stat`, in clock ticks of 10 ms; zero where that is
/// not available). Unlike the wall clock it does not count time the thread
/// waited for a CPU on a busy machine; summed over many chunks the tick
/// sampling evens out.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn rate(events: usize, took: Duration) -> String {
    format!("{:.2} M events/s", events as f64 / took.as_secs_f64() / 1e6)
}

fn targets() -> Targets {
    Targets {
        accounts: scaled(1_000_000),
        applications: scaled(3_000_000),
    }
}

fn throughput() {
    let total = scaled(10_000_000);
    let mut workload = Workload::new(SEED, targets());
    let mut plain = ReadModel::default();
    let mut decoded = ReadModel::default();
    let (mut apply_time, mut decode_time) = (Duration::ZERO, Duration::ZERO);
    let mut apply_cpu = Duration::ZERO;
    let mut done = 0;
    while done < total {
        let chunk = workload.take(CHUNK.min(total - done));
        let (started, cpu) = (Instant::now(), thread_cpu());
        for (position, stream, event) in &chunk {
            plain.apply(*position, stream, event);
        }
        apply_time += started.elapsed();
        apply_cpu += thread_cpu().saturating_sub(cpu);

        let encoded: Vec<(u64, &str, migrations::Encoded)> = chunk
            .iter()
            .map(|(p, s, e)| (*p, s.as_str(), migrations::encode(e)))
            .collect();
        let started = Instant::now();
        for (position, stream, e) in &encoded {
            let event = migrations::decode(e.type_name, e.schema_version, &e.payload)
                .expect("generated events decode");
            decoded.apply(*position, stream, &event);
        }
        decode_time += started.elapsed();
        done += chunk.len();
    }
    assert_eq!(plain.digest(), decoded.digest());
    let (accounts, sessions) = plain.counts();
    println!("throughput.events {done}");
    println!(
        "throughput.state {accounts} accounts, {} applications, {sessions} live sessions",
        plain.total_applications()
    );
    println!(
        "throughput.apply {} ({:.2} s)",
        rate(done, apply_time),
        apply_time.as_secs_f64()
    );
    println!(
        "throughput.apply_cpu {} ({:.2} s on a CPU)",
        rate(done, apply_cpu),
        apply_cpu.as_secs_f64()
    );
    println!(
        "throughput.decode_and_apply {} ({:.2} s)",
        rate(done, decode_time),
        decode_time.as_secs_f64()
    );
}

/// Fold the workload until the targets are reached; returns the model and
/// the number of events.
fn build(targets: Targets) -> (ReadModel, usize, Duration) {
    let mut workload = Workload::new(SEED, targets);
    let mut model = ReadModel::default();
    let mut events = 0;
    let mut apply_time = Duration::ZERO;
    loop {
        let (accounts, applications) = workload.counts();
        if accounts >= targets.accounts && applications >= targets.applications {
            break;
        }
        let chunk = workload.take(CHUNK);
        let started = Instant::now();
        for (position, stream, event) in &chunk {
            model.apply(*position, stream, event);
        }
        apply_time += started.elapsed();
        events += chunk.len();
    }
    (model, events, apply_time)
}

fn accounts_only(path: &Path) {
    let (model, events, _) = build(Targets {
        accounts: scaled(1_000_000),
        applications: 0,
    });
    let (accounts, sessions) = model.counts();
    println!("accounts.state {accounts} accounts, {sessions} live sessions, {events} events");
    snapshot::save(path, &model).expect("save");
}

/// Resident memory of a model loaded in a fresh process: the model alone,
/// without the generator or freed buffers.
fn loaded_rss(path: &Path) -> (ReadModel, u64, Duration) {
    let before = memory().0;
    let started = Instant::now();
    let model = snapshot::load(path).expect("load").expect("a snapshot");
    let took = started.elapsed();
    (model, memory().0 - before, took)
}

fn load_accounts(path: &Path) {
    let (model, rss, _) = loaded_rss(path);
    let (accounts, _) = model.counts();
    println!(
        "accounts.rss {} loaded ({:.0} bytes per account, directories, index and sessions included)",
        mib(rss),
        rss as f64 / accounts as f64
    );
    std::fs::write(path.with_extension("rss"), rss.to_string()).expect("rss file");
}

fn state(path: &Path) {
    let before = memory().0;
    let (model, events, apply_time) = build(targets());
    let after = memory();
    let (accounts, sessions) = model.counts();
    let applications = model.total_applications();
    println!(
        "state.state {accounts} accounts, {applications} applications, {sessions} live sessions, {events} events ({} while building)",
        rate(events, apply_time)
    );
    println!(
        "state.sizes AccountView {} B, Application {} B, SessionView {} B",
        std::mem::size_of::<projections::AccountView>(),
        std::mem::size_of::<projections::ApplicationView>(),
        std::mem::size_of::<projections::SessionView>()
    );
    println!(
        "state.rss {} while building (generator and freed chunk buffers included; VmHWM {})",
        mib(after.0 - before),
        mib(after.1)
    );
    let started = Instant::now();
    let digest = model.digest();
    println!(
        "state.digest {:.2} s ({})",
        started.elapsed().as_secs_f64(),
        hex::encode(&digest[..8])
    );
    let started = Instant::now();
    snapshot::save(path, &model).expect("save");
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    println!(
        "state.save {:.2} s, file {}",
        started.elapsed().as_secs_f64(),
        mib(size)
    );
    std::fs::write(path.with_extension("digest"), hex::encode(digest)).expect("digest file");
}

fn load(path: &Path, accounts_path: &Path) {
    let (model, rss, took) = loaded_rss(path);
    let hwm = memory().1;
    let (accounts, _) = model.counts();
    let applications = model.total_applications();
    println!(
        "load.time {:.2} s ({accounts} accounts, {applications} applications)",
        took.as_secs_f64()
    );
    println!("load.rss {} (VmHWM {})", mib(rss), mib(hwm));
    let accounts_rss: u64 = std::fs::read_to_string(accounts_path.with_extension("rss"))
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    println!(
        "load.bytes_per_application {:.0} (state minus the accounts-only state, per application)",
        rss.saturating_sub(accounts_rss) as f64 / applications.max(1) as f64
    );
    let expected = std::fs::read_to_string(path.with_extension("digest")).expect("digest file");
    assert_eq!(hex::encode(model.digest()), expected, "loaded = saved");
    println!("load.digest equal to the saved model's");
}

fn accounts_path(dir: &Path) -> PathBuf {
    dir.join("accounts-only.snapshot")
}

fn run_child(phase: &str, dir: &Path) {
    let status = Command::new(std::env::current_exe().expect("own path"))
        .env("REPLAY_BENCH_PHASE", phase)
        .env("REPLAY_BENCH_DIR", dir)
        .status()
        .expect("run a phase");
    assert!(status.success(), "phase {phase} failed");
}

fn main() {
    // Cargo passes `--bench`; nothing else is expected.
    let dir = std::env::var_os("REPLAY_BENCH_DIR").map(PathBuf::from);
    match std::env::var("REPLAY_BENCH_PHASE").ok().as_deref() {
        Some("throughput") => throughput(),
        Some("accounts") => accounts_only(&accounts_path(&dir.expect("dir"))),
        Some("load-accounts") => load_accounts(&accounts_path(&dir.expect("dir"))),
        Some("state") => state(&snapshot::snapshot_path(&dir.expect("dir"))),
        Some("load") => {
            let dir = dir.expect("dir");
            load(&snapshot::snapshot_path(&dir), &accounts_path(&dir));
        }
        Some(other) => panic!("unknown phase {other}"),
        None => {
            println!(
                "replay benchmark, scale {} (REPLAY_BENCH_SCALE), one thread per phase",
                scale()
            );
            let dir = tempfile::tempdir().expect("temp dir");
            for phase in ["throughput", "accounts", "load-accounts", "state", "load"] {
                run_child(phase, dir.path());
            }
        }
    }
}
