//! Abuse of the public flows, tried as an attacker would: mail bombing one
//! inbox through aliases and many requests, telling registered emails apart
//! (answers, timing, throttling), and locking the owner out.

mod common;

use std::time::{Duration, Instant};

use common::{Server, error_code};
use serde_json::{Value, json};

const PASSWORD: &str = "Sommer2026abc";

fn aliased(mutation: &str, email: &str, n: usize) -> String {
    let fields: Vec<String> = (0..n)
        .map(|i| format!("a{i}: {mutation}(email: \"{email}\") {{ flowId }}"))
        .collect();
    format!("mutation {{ {} }}", fields.join(" "))
}

fn mails_to(server: &Server, to: &str) -> usize {
    server.mails().iter().filter(|m| m.to == to).count()
}

/// Let the outbox catch up with what was written.
async fn settle_outbox(server: &Server, to: &str) -> usize {
    let mut last = usize::MAX;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = mails_to(server, to);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

fn codes(answer: &Value) -> Vec<String> {
    answer["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_hundred_aliased_registrations_send_at_most_the_per_request_cap() {
    let server = Server::start(&["--rate-limit-mail", "0"]);
    let answer = server
        .gql(
            None,
            &aliased("startRegistration", "victim@example.no", 100),
            json!({}),
        )
        .await;
    let refused = codes(&answer);
    assert_eq!(refused.len(), 98, "{answer}");
    assert!(refused.iter().all(|c| c == "TOO_MANY_ATTEMPTS"));
    assert_eq!(answer["errors"][0]["extensions"]["limit"], 2, "{answer}");
    assert_eq!(settle_outbox(&server, "victim@example.no").await, 2);
}

#[tokio::test]
async fn one_inbox_gets_at_most_its_limit_however_many_requests_ask() {
    // No cap per request and no limit per client address: only the
    // recipient's own limit stands between the attacker and the inbox.
    let server = Server::start(&[
        "--rate-limit-mail",
        "0",
        "--max-costly-per-request",
        "0",
        "--recipient-mail-limit",
        "4",
    ]);
    for mutation in ["startRegistration", "startPasswordRecovery"] {
        let answer = server
            .gql(None, &aliased(mutation, "victim@example.no", 50), json!({}))
            .await;
        assert!(
            codes(&answer).iter().all(|c| c == "TOO_MANY_ATTEMPTS"),
            "{answer}"
        );
    }
    for _ in 0..10 {
        let answer = server
            .gql(
                None,
                "mutation { startPasswordRecovery(email: \"VICTIM@example.no\") { flowId } }",
                json!({}),
            )
            .await;
        assert_eq!(error_code(&answer), "TOO_MANY_ATTEMPTS", "{answer}");
        assert!(
            answer["errors"][0]["extensions"]["retryAfterSeconds"]
                .as_i64()
                .unwrap()
                > 3000,
            "{answer}"
        );
    }
    assert_eq!(settle_outbox(&server, "victim@example.no").await, 4);
    // Another inbox is not affected.
    let other = server
        .gql(
            None,
            "mutation { startRegistration(email: \"other@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    assert!(other["errors"].is_null(), "{other}");
}

#[tokio::test]
async fn resends_count_against_the_inbox_too() {
    let server = Server::start(&["--recipient-mail-limit", "2"]);
    let started = server
        .gql(
            None,
            "mutation { startRegistration(email: \"anne@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = server
        .gql(
            None,
            "mutation { startRegistration(email: \"anne@example.no\") { flowId } }",
            json!({}),
        )
        .await;
    assert!(second["errors"].is_null(), "{second}");
    let resend = server
        .gql(
            None,
            "mutation($f: ID!) { resendCode(flowId: $f) { flowId } }",
            json!({"f": flow}),
        )
        .await;
    // The flow's own cool-down speaks first; after it, the inbox's limit.
    assert_eq!(error_code(&resend), "TOO_MANY_ATTEMPTS", "{resend}");
    assert_eq!(settle_outbox(&server, "anne@example.no").await, 2);
}

#[tokio::test]
async fn registration_answers_alike_for_taken_and_free_addresses() {
    let server = Server::start(&["--rate-limit-mail", "0", "--recipient-mail-limit", "1000"]);
    server.register("kari@example.no", PASSWORD, "Kari").await;
    let start = |email: String| {
        let server = &server;
        async move {
            let began = Instant::now();
            let answer = server
                .gql(
                    None,
                    "mutation($e: String!) { startRegistration(email: $e) { flowId expiresAt } }",
                    json!({"e": email}),
                )
                .await;
            (began.elapsed(), answer)
        }
    };
    let shape = |answer: &Value| {
        let started = &answer["data"]["startRegistration"];
        (
            answer["errors"].is_null(),
            started["flowId"].as_str().map(str::len),
            started["expiresAt"].as_str().map(str::len),
        )
    };
    let mut taken = Vec::new();
    let mut free = Vec::new();
    for i in 0..50 {
        let (t, a) = start("kari@example.no".into()).await;
        let (u, b) = start(format!("free{i}@example.no")).await;
        assert_eq!(shape(&a), shape(&b), "{a} {b}");
        assert_eq!(shape(&a), (true, Some(36), Some(20)));
        taken.push(t);
        free.push(u);
    }
    assert_alike("startRegistration", &mut taken, &mut free);
}

/// The medians of two timings differ by no more than noise.
fn assert_alike(what: &str, a: &mut [Duration], b: &mut [Duration]) {
    a.sort();
    b.sort();
    let (ma, mb) = (a[a.len() / 2], b[b.len() / 2]);
    let gap = ma.abs_diff(mb);
    let noise = Duration::from_millis(3) + ma.max(mb) / 5;
    assert!(
        gap <= noise,
        "{what}: median {ma:?} against {mb:?} (allowed gap {noise:?})"
    );
}

#[tokio::test]
async fn login_answers_alike_for_known_and_unknown_emails_in_body_and_time() {
    let server = Server::start(&["--rate-limit-password", "0", "--rate-limit-mail", "0"]);
    // Four tries per address stay below the throttle.
    let known: Vec<String> = (0..13).map(|i| format!("known{i}@example.no")).collect();
    for email in &known {
        server.register(email, PASSWORD, "Known").await;
    }
    let mut known_times = Vec::new();
    let mut unknown_times = Vec::new();
    let mut bodies = Vec::new();
    for (i, email) in known.iter().enumerate() {
        for _ in 0..4 {
            let began = Instant::now();
            let wrong = server.login(email, "Wrong2026abc").await.unwrap_err();
            known_times.push(began.elapsed());
            let began = Instant::now();
            let unknown = server
                .login(&format!("unknown{i}@example.no"), "Wrong2026abc")
                .await
                .unwrap_err();
            unknown_times.push(began.elapsed());
            assert_eq!(wrong, unknown);
            bodies.push(wrong);
        }
    }
    assert_eq!(error_code(&bodies[0]), "INVALID_CREDENTIALS");
    assert_alike("login", &mut known_times, &mut unknown_times);

    // The fifth failure throttles both alike.
    let known_fifth = server.login(&known[0], "Wrong2026abc").await.unwrap_err();
    let unknown_fifth = server
        .login("unknown0@example.no", "Wrong2026abc")
        .await
        .unwrap_err();
    assert_eq!(known_fifth, unknown_fifth);
    let known_sixth = server.login(&known[0], PASSWORD).await.unwrap_err();
    let unknown_sixth = server
        .login("unknown0@example.no", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(error_code(&known_sixth), "TOO_MANY_ATTEMPTS");
    assert_eq!(
        known_sixth["errors"][0]["message"],
        unknown_sixth["errors"][0]["message"]
    );
    assert_eq!(
        known_sixth["errors"][0]["extensions"]["code"],
        unknown_sixth["errors"][0]["extensions"]["code"]
    );
}

/// Log in as a browser would; the answer and the cookies it set.
async fn browser_login(
    server: &Server,
    email: &str,
    password: &str,
    cookie: Option<&str>,
) -> (Value, Vec<String>) {
    let mut request = server
        .client
        .post(format!("{}/graphql", server.url))
        .json(&json!({
            "query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            "variables": {"e": email, "p": password},
        }));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("HTTP request");
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .collect();
    (response.json().await.expect("JSON answer"), cookies)
}

#[tokio::test]
async fn the_owner_logs_in_from_a_known_browser_while_an_attacker_is_throttled() {
    let server = Server::start(&["--rate-limit-password", "0"]);
    server.register("eva@example.no", PASSWORD, "Eva").await;
    server.register("ola@example.no", PASSWORD, "Ola").await;
    let (answer, cookies) = browser_login(&server, "eva@example.no", PASSWORD, None).await;
    assert!(answer["data"]["login"]["token"].is_string(), "{answer}");
    let device = cookies
        .iter()
        .find(|c| c.starts_with("caseledger_device="))
        .cloned()
        .expect("a device cookie");
    let (_, ola_cookies) = browser_login(&server, "ola@example.no", PASSWORD, None).await;
    let ola_device = ola_cookies
        .iter()
        .find(|c| c.starts_with("caseledger_device="))
        .cloned()
        .expect("a device cookie");

    // The attack: wrong passwords from anywhere else.
    for _ in 0..12 {
        let (answer, _) = browser_login(&server, "eva@example.no", "Gjett2026abc", None).await;
        assert!(["INVALID_CREDENTIALS", "TOO_MANY_ATTEMPTS"].contains(&error_code(&answer)));
    }
    let (attacker, _) = browser_login(&server, "eva@example.no", PASSWORD, None).await;
    assert_eq!(error_code(&attacker), "TOO_MANY_ATTEMPTS", "{attacker}");
    // Another address's device cookie is no way around it.
    let (borrowed, _) = browser_login(&server, "eva@example.no", PASSWORD, Some(&ola_device)).await;
    assert_eq!(error_code(&borrowed), "TOO_MANY_ATTEMPTS", "{borrowed}");
    // The owner's browser gets in.
    let (owner, _) = browser_login(&server, "eva@example.no", PASSWORD, Some(&device)).await;
    assert!(owner["data"]["login"]["token"].is_string(), "{owner}");
}

#[tokio::test]
async fn aliased_logins_are_capped_per_request() {
    let server = Server::start(&["--rate-limit-password", "0"]);
    server.register("per@example.no", PASSWORD, "Per").await;
    let fields: Vec<String> = (0..10)
        .map(|i| {
            format!(
                "a{i}: login(email: \"per@example.no\", password: \"Gjett{i}2026abc\") {{ token }}"
            )
        })
        .collect();
    let answer = server
        .gql(
            None,
            &format!("mutation {{ {} }}", fields.join(" ")),
            json!({}),
        )
        .await;
    let refused = codes(&answer);
    assert_eq!(refused.len(), 10, "{answer}");
    assert_eq!(
        refused
            .iter()
            .filter(|c| *c == "INVALID_CREDENTIALS")
            .count(),
        2,
        "{answer}"
    );
    // Only two guesses counted: the owner is not throttled.
    assert!(server.login("per@example.no", PASSWORD).await.is_ok());
}
