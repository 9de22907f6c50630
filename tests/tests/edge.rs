//! The public edge, attacked over HTTP as an attacker would: fragment
//! fan-out, cross-site requests, CSRF tokens of other sessions, missing
//! headers, open metrics, Rust text in error bodies, wide file modes and a
//! second server on one data dir.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{METRICS_TOKEN, Server, error_code};
use serde_json::{Value, json};

const PASSWORD: &str = "Sommer2026abc";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }";

/// `query { ...F0 }` where each fragment spreads the next twice, down to
/// `F{levels - 1}`: validation would expand it to 2^levels fields.
fn fan_out(levels: usize) -> String {
    let mut query = String::from(
        "query { ...F0 } fragment F0 on QueryRoot { passwordPolicy { kind } ...F1 ...F1 }",
    );
    for level in 1..levels - 1 {
        query.push_str(&format!(
            " fragment F{level} on QueryRoot {{ ...F{next} ...F{next} }}",
            next = level + 1
        ));
    }
    query.push_str(&format!(
        " fragment F{} on QueryRoot {{ passwordPolicy {{ kind }} }}",
        levels - 1
    ));
    query
}

fn post(server: &Server) -> reqwest::RequestBuilder {
    server.client.post(format!("{}/graphql", server.url))
}

/// The body of a login as JSON text.
fn login_body(email: &str, password: &str) -> String {
    json!({"query": LOGIN, "variables": {"e": email, "p": password}}).to_string()
}

/// Status, headers and JSON body of a response.
async fn answer(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {status} {text:?}"));
    (status, headers, body)
}

/// A GraphQL-shaped error body with `code`, served as JSON.
fn assert_graphql_refusal(headers: &reqwest::header::HeaderMap, body: &Value, code: &str) {
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{headers:?}"
    );
    assert_eq!(error_code(body), code, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.is_empty());
    assert!(
        !message.contains("Error(") && !message.contains("InvalidRequest"),
        "{message}"
    );
}

#[tokio::test]
async fn a_fragment_fan_out_is_refused_within_a_second_and_the_server_stays_responsive() {
    let server = Server::start(&[]);
    for levels in [28, 40] {
        let started = Instant::now();
        let refused = server.gql(None, &fan_out(levels), json!({})).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{levels} levels: {took:?}");
        assert_eq!(error_code(&refused), "INVALID_INPUT", "{refused}");
        let extensions = &refused["errors"][0]["extensions"];
        assert_eq!(extensions["reason"], "QUERY_TOO_LARGE", "{refused}");
        assert_eq!(extensions["limit"], 1000, "{refused}");
        assert!(refused["data"].is_null(), "{refused}");
    }

    // Four clients send the fan-out over and over; health answers fast.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..4 {
        let client = reqwest::Client::new();
        let url = format!("{}/graphql", server.url);
        let stop = stop.clone();
        attackers.push(tokio::spawn(async move {
            let body = json!({ "query": fan_out(28) });
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let response = client.post(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 200);
                let _ = response.bytes().await.unwrap();
                sent += 1;
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        let health = reqwest::get(format!("{}/healthz", server.url))
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = 0;
    for attacker in attackers {
        sent += attacker.await.unwrap();
    }
    assert!(sent >= 4, "the attack ran ({sent} requests)");
    assert!(
        slowest < Duration::from_millis(200),
        "/healthz took {slowest:?}"
    );

    // Ordinary queries, fragments included, still work.
    let policy = server
        .gql(
            None,
            "query { ...P } fragment P on QueryRoot { passwordPolicy { kind minLength } }",
            json!({}),
        )
        .await;
    assert_eq!(policy["data"]["passwordPolicy"]["kind"], "seed", "{policy}");
    let cycle = server
        .gql(
            None,
            "query { ...A } fragment A on QueryRoot { passwordPolicy { kind } ...A }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&cycle), "INVALID_INPUT", "{cycle}");
}

#[tokio::test]
async fn the_expansion_bound_and_the_request_budget_are_configurable() {
    let server = Server::start(&["--max-query-nodes", "4", "--request-budget", "1ms"]);
    let small = server
        .gql(None, "{ passwordPolicy { kind } }", json!({}))
        .await;
    // Fast enough or over the budget, never refused for its size.
    assert_ne!(
        small["errors"][0]["extensions"]["reason"], "QUERY_TOO_LARGE",
        "{small}"
    );
    let large = server
        .gql(
            None,
            "{ passwordPolicy { kind minLength rules requiresUppercase } }",
            json!({}),
        )
        .await;
    assert_eq!(
        large["errors"][0]["extensions"]["reason"], "QUERY_TOO_LARGE",
        "{large}"
    );
    assert_eq!(large["errors"][0]["extensions"]["limit"], 4, "{large}");

    // A login (four nodes) hashes a password, which takes tens of
    // milliseconds: over a 1 ms budget.
    let slow = server
        .gql(
            None,
            LOGIN,
            json!({"e": "nobody@example.no", "p": PASSWORD}),
        )
        .await;
    assert_eq!(error_code(&slow), "INVALID_INPUT", "{slow}");
    assert_eq!(
        slow["errors"][0]["extensions"]["reason"], "REQUEST_TOO_EXPENSIVE",
        "{slow}"
    );
}

#[tokio::test]
async fn cross_site_and_non_json_posts_are_refused_without_a_session() {
    let server = Server::start(&[]);
    server.register("site@example.no", PASSWORD, "Site").await;
    let body = login_body("site@example.no", PASSWORD);

    // The login CSRF of the attack: a cross-site form-like text/plain POST.
    let response = post(&server)
        .header("content-type", "text/plain")
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_none());
    let (status, headers, refused) = answer(response).await;
    assert_eq!(status, 403, "{refused}");
    assert_graphql_refusal(&headers, &refused, "INVALID_INPUT");

    // Without Origin, still not JSON: 415 and no session.
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/json; charset=latin1"),
        None,
    ] {
        let mut request = post(&server).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().get("set-cookie").is_none());
        let (status, headers, refused) = answer(response).await;
        assert_eq!(status, 415, "{content_type:?}: {refused}");
        assert_graphql_refusal(&headers, &refused, "INVALID_INPUT");
    }

    // JSON from another site's page, or any cross-site fetch: 403.
    for (origin, site) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, Some("cross-site")),
    ] {
        let mut request = post(&server)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        let response = request.send().await.unwrap();
        assert!(response.headers().get("set-cookie").is_none());
        let (status, headers, refused) = answer(response).await;
        assert_eq!(status, 403, "{origin:?} {site:?}: {refused}");
        assert_graphql_refusal(&headers, &refused, "INVALID_INPUT");
    }

    // The server's own pages, and JSON with a charset, are served.
    let own_origin = server.url.trim_end_matches('/').to_owned();
    let response = post(&server)
        .header("content-type", "application/json; charset=UTF-8")
        .header("origin", &own_origin)
        .header("sec-fetch-site", "same-origin")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("set-cookie").is_some());
    let (status, _, logged_in) = answer(response).await;
    assert_eq!(status, 200);
    assert!(
        logged_in["data"]["login"]["token"].is_string(),
        "{logged_in}"
    );
}

#[tokio::test]
async fn an_allowed_origin_may_post_from_a_browser() {
    let server = Server::start(&[
        "--allowed-origin",
        "https://portal.example.no",
        "--allowed-origin",
        "https://other.example.no/",
    ]);
    for origin in ["https://portal.example.no", "https://other.example.no"] {
        let (status, _, body) = answer(
            post(&server)
                .header("origin", origin)
                .json(&json!({"query": "{ passwordPolicy { kind } }"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{origin}: {body}");
        assert_eq!(body["data"]["passwordPolicy"]["kind"], "seed");
    }
    let (status, _, _) = answer(
        post(&server)
            .header("origin", "https://portal.example.no.evil.example")
            .json(&json!({"query": "{ passwordPolicy { kind } }"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
}

/// Log in with cookies; the session and CSRF cookie values.
async fn cookie_login(server: &Server, email: &str) -> (String, String) {
    let response = post(server)
        .json(&json!({"query": LOGIN, "variables": {"e": email, "p": PASSWORD}}))
        .send()
        .await
        .unwrap();
    let cookie = |name: &str| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .find_map(|c| c.split(';').next()?.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} cookie"))
            .to_owned()
    };
    (cookie("caseledger_session"), cookie("caseledger_csrf"))
}

#[tokio::test]
async fn the_csrf_token_fits_its_own_session_only() {
    let server = Server::start(&[]);
    server.register("anna@example.no", PASSWORD, "Anna").await;
    server.register("bjorn@example.no", PASSWORD, "Bjørn").await;
    let (anna_session, anna_csrf) = cookie_login(&server, "anna@example.no").await;
    let (_, bjorn_csrf) = cookie_login(&server, "bjorn@example.no").await;
    assert_ne!(anna_csrf, bjorn_csrf);

    let me = |cookie: String, csrf: String| {
        let server = &server;
        async move {
            server
                .gql_with(
                    &[("cookie", &cookie), ("x-csrf-token", &csrf)],
                    "{ me { email } }",
                    json!({}),
                )
                .await["data"]["me"]
                .clone()
        }
    };
    let own = me(
        format!("caseledger_session={anna_session}; caseledger_csrf={anna_csrf}"),
        anna_csrf.clone(),
    )
    .await;
    assert_eq!(own["email"], "anna@example.no");
    let others = me(
        format!("caseledger_session={anna_session}; caseledger_csrf={bjorn_csrf}"),
        bjorn_csrf.clone(),
    )
    .await;
    assert!(others.is_null(), "another session's token: {others}");
    // A pair the attacker chose (cookie equal to header) is no token at all.
    let chosen = me(
        format!("caseledger_session={anna_session}; caseledger_csrf=00ff"),
        "00ff".into(),
    )
    .await;
    assert!(chosen.is_null(), "a chosen pair: {chosen}");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = Server::start(&[]);
    let get = |path: &str| server.client.get(format!("{}{path}", server.url)).send();
    let graphql = post(&server)
        .json(&json!({"query": "{ passwordPolicy { kind } }"}))
        .send()
        .await
        .unwrap();
    let responses = [
        ("POST /graphql", graphql),
        ("/healthz", get("/healthz").await.unwrap()),
        ("/no-such-page", get("/no-such-page").await.unwrap()),
        ("GET /graphql", get("/graphql").await.unwrap()),
    ];
    for (what, response) in &responses {
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .unwrap_or_else(|| panic!("{what}: no {name}"))
                .to_str()
                .unwrap()
        };
        assert_eq!(header("x-frame-options"), "DENY", "{what}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(
            header("cross-origin-opener-policy"),
            "same-origin",
            "{what}"
        );
        assert_eq!(header("cache-control"), "no-store", "{what}");
        assert!(
            header("content-security-policy").contains("frame-ancestors 'none'"),
            "{what}"
        );
        assert!(headers.get("strict-transport-security").is_none(), "{what}");
    }
    let api_csp = responses[0].1.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert_eq!(api_csp, "default-src 'none'; frame-ancestors 'none'");
    let page_csp = responses[3].1.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(page_csp.starts_with("default-src 'none'"), "{page_csp}");
    assert!(page_csp.contains("script-src 'self';"), "{page_csp}");
    assert!(!page_csp.contains("unsafe"), "{page_csp}");
    assert!(page_csp.contains("connect-src 'self'"), "{page_csp}");
    assert!(!page_csp.contains("'unsafe-eval'"), "{page_csp}");

    let hsts = Server::start(&["--hsts"]);
    let response = hsts
        .client
        .get(format!("{}/healthz", hsts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn metrics_need_the_flag_and_the_token() {
    let off = Server::start(&["--metrics-token", ""]);
    let (status, headers, body) = answer(
        off.client
            .get(format!("{}/metrics", off.url))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_graphql_refusal(&headers, &body, "NOT_FOUND");

    let on = Server::start(&["--metrics-token", "s3cret-metrics"]);
    let url = format!("{}/metrics", on.url);
    for token in [None, Some("wrong"), Some(METRICS_TOKEN)] {
        let mut request = on.client.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, headers, body) = answer(request.send().await.unwrap()).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        assert_graphql_refusal(&headers, &body, "UNAUTHENTICATED");
        assert!(!body.to_string().contains("caseledger_accounts"));
    }
    let response = on
        .client
        .get(&url)
        .bearer_auth("s3cret-metrics")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("caseledger_accounts")
    );
}

#[tokio::test]
async fn client_errors_of_the_http_layers_have_graphql_shaped_bodies() {
    let server = Server::start(&[]);
    let bad_json = post(&server)
        .header("content-type", "application/json")
        .body("{\"query\": ")
        .send()
        .await
        .unwrap();
    let (status, headers, body) = answer(bad_json).await;
    assert_eq!(status, 400);
    assert_graphql_refusal(&headers, &body, "INVALID_INPUT");

    let (status, headers, body) = answer(
        server
            .client
            .get(format!("{}/nowhere", server.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_graphql_refusal(&headers, &body, "NOT_FOUND");

    let (status, headers, body) = answer(
        server
            .client
            .delete(format!("{}/graphql", server.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert_graphql_refusal(&headers, &body, "INVALID_INPUT");

    // Its own connection: the server closes one whose body it refused unread.
    let huge = "x".repeat(200_000);
    let (status, headers, body) = answer(
        reqwest::Client::new()
            .post(format!("{}/graphql", server.url))
            .header("content-type", "application/json")
            .body(format!("{{\"query\": \"{huge}\"}}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 413);
    assert_graphql_refusal(&headers, &body, "INVALID_INPUT");
}

#[cfg(unix)]
#[tokio::test]
async fn data_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let data_dir = tempfile::tempdir().unwrap();
    // A data dir left wide by an older version or another umask.
    std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let stale = data_dir.path().join("notes.txt");
    std::fs::write(&stale, "x").unwrap();
    std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();

    let server = Server::start_in(data_dir, &[]);
    server.register("modes@example.no", PASSWORD, "Modes").await;
    assert!(!server.mails().is_empty());
    let data_dir = server.stop_gracefully();

    let mut seen = Vec::new();
    let mut pending = vec![data_dir.path().to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_dir() {
            assert_eq!(mode, 0o700, "{}", path.display());
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for expected in [
        "events.sqlite3",
        "secret.key",
        "serve.lock",
        "outbox",
        "projections.snapshot",
        "notes.txt",
    ] {
        assert!(
            seen.iter().any(|name| name == expected),
            "{expected} in {seen:?}"
        );
    }
    assert!(seen.iter().any(|name| name.ends_with(".eml")), "{seen:?}");
}

#[tokio::test]
async fn a_second_server_on_a_data_dir_in_use_exits_at_once() {
    let server = Server::start(&[]);
    let started = Instant::now();
    let mut second = Command::new(common::program())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(2) {
            let _ = second.kill();
            panic!("the second server is still running after 2 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = second.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success());
    assert!(
        stderr.contains("in use by another caseledger server"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", server.pid())),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "it never served"
    );

    // The first keeps serving, and a batch job still runs beside it.
    let policy = server
        .gql(None, "{ passwordPolicy { kind } }", json!({}))
        .await;
    assert_eq!(policy["data"]["passwordPolicy"]["kind"], "seed");
    let purge = server.cli(&["purge-inactive", "--dry-run"]);
    assert!(
        purge.status.success(),
        "{}",
        String::from_utf8_lossy(&purge.stderr)
    );
}
