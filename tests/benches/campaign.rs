//! The long randomised campaign against one running server: at least
//! 100 000 generated GraphQL documents, variable sets and malformed
//! requests from eight clients; fails on any 5xx, any request without an
//! answer, a slow `/healthz` between batches, or a panic in the server's
//! log. `CAMPAIGN_SEED` replays a run, `CAMPAIGN_CASES` sets its length.

#[path = "../support/campaign.rs"]
mod campaign;
#[path = "../tests/common/mod.rs"]
mod common;

use std::process::ExitCode;

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; a filter that does not name this
    // bench skips it.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| "campaign".contains(f.as_str())) {
        return ExitCode::SUCCESS;
    }
    let settings = campaign::Settings::from_env(100_000);
    println!(
        "campaign: seed {} ({} requests; replay with CAMPAIGN_SEED={})",
        settings.seed, settings.requests, settings.seed
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(async {
        let server = common::Server::start(&[
            "--mail",
            "file",
            "--rate-limit-mail",
            "0",
            "--rate-limit-password",
            "0",
        ]);
        campaign::run(&server, settings).await
    });
    println!("{}", report.summary(&settings));
    if report.failures.is_empty() && report.sent >= settings.requests {
        println!("campaign passed");
        ExitCode::SUCCESS
    } else {
        println!("campaign FAILED");
        ExitCode::FAILURE
    }
}
