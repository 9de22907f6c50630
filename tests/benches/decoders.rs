//! The long run of the decoder fuzzers: arbitrary and mutated bytes into
//! every decoder of stored data (event payloads through
//! `migrations::decode`, stored metadata through the store's rows,
//! snapshot files through `projections::snapshot`), over a million inputs
//! in all, with the generators and checks of each crate's own fuzz test.
//! `CAMPAIGN_SEED` replays a run; `DECODER_INPUTS` sets the total.

#[path = "../support/campaign.rs"]
#[allow(unused)]
mod campaign;
#[path = "../tests/common/mod.rs"]
#[allow(unused)]
mod common;
#[path = "../../migrations/tests/decode_fuzz.rs"]
mod decode_fuzz;
#[path = "../../store/tests/metadata_fuzz.rs"]
mod metadata_fuzz;
#[path = "../../projections/tests/snapshot_fuzz.rs"]
mod snapshot_fuzz;

use std::process::ExitCode;
use std::time::Instant;

use proptest::strategy::Strategy;
use proptest::test_runner::{TestCaseError, TestRunner};

/// Draw `count` inputs of `strategy` and check each; returns (accepted,
/// refused) or the first failure with its input.
fn drive<S, F>(
    runner: &mut TestRunner,
    strategy: S,
    count: usize,
    mut check: F,
) -> Result<(usize, usize), String>
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: FnMut(&S::Value) -> Result<bool, TestCaseError>,
{
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..count {
        let input = campaign::draw(&strategy, runner);
        match check(&input) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(e) => return Err(format!("input #{i}: {e}\n{input:?}")),
        }
    }
    Ok((accepted, refused))
}

/// One decoder's run: draws and checks `count` inputs.
type Run<'a> = Box<dyn FnMut(&mut TestRunner, usize) -> Result<(usize, usize), String> + 'a>;

fn main() -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "decoders".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let seed = campaign::Settings::from_env(0).seed;
    let total: usize = std::env::var("DECODER_INPUTS")
        .ok()
        .map(|s| s.trim().parse().expect("DECODER_INPUTS is a count"))
        .unwrap_or(1_000_000);
    // Payloads are the most numerous stored bytes; snapshot files cost a
    // file write and read each.
    let payloads = total * 60 / 100;
    let metadata = total * 32 / 100;
    let snapshots = total - payloads - metadata;
    println!("decoders: seed {seed} (replay with CAMPAIGN_SEED={seed}), {total} inputs");
    // Snapshot files are written and read once per input: in memory when
    // the system has a tmpfs for it.
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temp dir");
    let path = projections::snapshot::snapshot_path(dir.path());
    let started = Instant::now();
    let mut failed = false;
    let runs: [(&str, usize, Run<'_>); 3] = [
        (
            "event payloads (migrations::decode)",
            payloads,
            Box::new(|runner, count| {
                drive(runner, decode_fuzz::payload_inputs(), count, |input| {
                    decode_fuzz::check_payload(input).map(|d| d == decode_fuzz::Decoded::Event)
                })
            }),
        ),
        (
            "stored metadata (store::sqlite::EventRef)",
            metadata,
            Box::new(|runner, count| {
                drive(runner, metadata_fuzz::metadata_inputs(), count, |bytes| {
                    metadata_fuzz::check_metadata(bytes)
                })
            }),
        ),
        (
            "snapshot files (projections::snapshot)",
            snapshots,
            Box::new(|runner, count| {
                drive(runner, snapshot_fuzz::snapshot_inputs(), count, |bytes| {
                    snapshot_fuzz::check_snapshot(&path, bytes)
                        .map(|r| r == snapshot_fuzz::Read::Model)
                })
            }),
        ),
    ];
    for (i, (name, count, mut run)) in runs.into_iter().enumerate() {
        let mut runner = campaign::runner(seed.wrapping_add(i as u64));
        let start = Instant::now();
        match run(&mut runner, count) {
            Ok((accepted, refused)) => println!(
                "{name}: {count} inputs, {accepted} decoded, {refused} refused with an error, 0 panics, {:.1} s",
                start.elapsed().as_secs_f64()
            ),
            Err(failure) => {
                println!("{name}: FAILED {failure}");
                failed = true;
            }
        }
    }
    println!(
        "decoders: {total} inputs in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
