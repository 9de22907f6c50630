//! The short randomised campaign: the long one's generators (GraphQL
//! documents from the schema, variable sets, malformed requests) for about
//! 2 000 requests against one server; no 5xx, no stall, no panic, and
//! `/healthz` fast between batches. `CAMPAIGN_SEED` replays a run.

#[path = "../support/campaign.rs"]
mod campaign;
mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_get_no_server_error_and_the_server_stays_responsive() {
    let mut settings = campaign::Settings::from_env(2_000);
    settings.batch = 500;
    println!(
        "campaign: seed {} (replay with CAMPAIGN_SEED={})",
        settings.seed, settings.seed
    );
    let server = common::Server::start(&[
        "--mail",
        "file",
        "--rate-limit-mail",
        "0",
        "--rate-limit-password",
        "0",
    ]);
    let report = campaign::run(&server, settings).await;
    let summary = report.summary(&settings);
    println!("{summary}");
    assert!(report.failures.is_empty(), "{summary}");
    assert_eq!(report.sent, settings.requests, "{summary}");
    // A tenth of the GraphQL documents (the other kinds never can) must
    // get past the edge's checks and reach the resolvers, or the
    // generators have stopped exercising the code.
    let documents = report.by_kind.get("graphql").copied().unwrap_or(0);
    assert!(
        report.served * 10 > documents,
        "a good share of the documents reach the resolvers: {summary}"
    );
}

/// A value nested thousands of levels deep (which once overflowed a worker
/// thread's stack and aborted the server) is refused as bad input.
#[tokio::test]
async fn a_deeply_nested_value_is_refused_and_the_server_lives_on() {
    let server = common::Server::start(&[]);
    let depth = 20_000;
    let query = format!(
        "{{ application(id: {}\"x\"{}) {{ id }} }}",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let answer = server.gql(None, &query, serde_json::json!({})).await;
    assert_eq!(common::error_code(&answer), "INVALID_INPUT", "{answer}");
    let answer = server
        .gql(None, "{ passwordPolicy { kind } }", serde_json::json!({}))
        .await;
    assert!(
        answer["data"]["passwordPolicy"]["kind"].is_string(),
        "{answer}"
    );
}
