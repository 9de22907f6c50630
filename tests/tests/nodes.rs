//! Several nodes over one PostgreSQL store, as behind a load balancer: a
//! journey whose steps land on different nodes, read-your-writes by the
//! position header, mail sent once by the cluster, a kill -9 of the node
//! that sends it, and sessions whose idle timeout counts activity on any
//! node. Needs `CASELEDGER_TEST_POSTGRES` (see README).

mod common;

use std::time::{Duration, Instant};

use common::{Mail, Server, new_secret, postgres_database};
use serde_json::{Value, json};

const PASSWORD: &str = "Sommer2026abc";

/// A cluster's shared flags: the store and the secret file (kept alive
/// with the cluster).
struct Cluster {
    args: Vec<String>,
    _secret_dir: tempfile::TempDir,
}

impl Cluster {
    /// A fresh database and a secret made by `caseledger new-secret`.
    fn new(extra: &[&str]) -> Cluster {
        let secret_dir = tempfile::tempdir().unwrap();
        let secret = secret_dir.path().join("cluster.key");
        let made = new_secret(&secret);
        assert!(made.status.success(), "{made:?}");
        let mut args = vec![
            "--store".to_owned(),
            postgres_database(),
            "--secret-file".to_owned(),
            secret.to_str().unwrap().to_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        Cluster {
            args,
            _secret_dir: secret_dir,
        }
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// `n` nodes started at the same moment on the (possibly empty) store.
    fn start(&self, n: usize) -> Vec<Server> {
        std::thread::scope(|scope| {
            let starting: Vec<_> = (0..n)
                .map(|_| scope.spawn(|| Server::start(&self.args())))
                .collect();
            starting
                .into_iter()
                .map(|node| node.join().expect("a node starts"))
                .collect()
        })
    }
}

/// Every mail in the outboxes of `nodes`.
fn all_mails(nodes: &[&Server]) -> Vec<Mail> {
    nodes.iter().flat_map(|node| node.mails()).collect()
}

/// The mails of `kind` to `to` across `nodes`, once there are at least
/// `n`, waiting up to `within`.
async fn wait_mails(
    nodes: &[&Server],
    to: &str,
    kind: &str,
    n: usize,
    within: Duration,
) -> Vec<Mail> {
    let deadline = Instant::now() + within;
    loop {
        let found: Vec<Mail> = all_mails(nodes)
            .into_iter()
            .filter(|m| m.to == to && m.kind == kind)
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} mail #{n} to {to} within {within:?}; outboxes: {:?}",
            all_mails(nodes)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POST a GraphQL request with headers; the answer and its position header.
async fn gql(
    node: &Server,
    headers: &[(&str, String)],
    query: &str,
    variables: Value,
) -> (Value, Option<u64>) {
    let mut request = node
        .client
        .post(format!("{}/graphql", node.url))
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("HTTP request");
    let position = response
        .headers()
        .get("caseledger-position")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (response.json().await.expect("JSON answer"), position)
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

fn min_position(position: u64) -> (&'static str, String) {
    ("caseledger-min-position", position.to_string())
}

/// The node that holds the mail lease, waiting for one to hold it.
async fn lease_holder(nodes: &[&Server]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut holders = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if node.metric("caseledger_outbox_lease_held").await == 1 {
                holders.push(i);
            }
        }
        assert!(
            holders.len() <= 1,
            "two nodes hold the mail lease: {holders:?}"
        );
        if let [holder] = holders[..] {
            return holder;
        }
        assert!(Instant::now() < deadline, "no node holds the mail lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Start a registration on `start`, verify its code on `verify` and
/// complete it on `complete`: the session token and the position written.
async fn register_across(
    nodes: &[&Server],
    start: &Server,
    verify: &Server,
    complete: &Server,
    email: &str,
    mail_within: Duration,
) -> (String, u64) {
    let (started, started_at) = gql(
        start,
        &[],
        "mutation($e: String!) { startRegistration(email: $e) { flowId } }",
        json!({"e": email}),
    )
    .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap_or_else(|| panic!("startRegistration: {started}"))
        .to_owned();
    let started_at = started_at.expect("a position on a write");
    let mails = wait_mails(nodes, email, "registration-code", 1, mail_within).await;
    let code = mails[0].code().expect("a code");
    let (verified, verified_at) = gql(
        verify,
        &[min_position(started_at)],
        "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }",
        json!({"f": flow, "c": code}),
    )
    .await;
    assert_eq!(
        verified["data"]["verifyRegistrationCode"],
        json!(true),
        "{verified}"
    );
    let (done, done_at) = gql(
        complete,
        &[min_position(verified_at.expect("a position on a write"))],
        "mutation($f: ID!, $p: String!, $n: String!) { completeRegistration(flowId: $f, password: $p, name: $n) { token } }",
        json!({"f": flow, "p": PASSWORD, "n": "Kari Nordmann"}),
    )
    .await;
    let token = done["data"]["completeRegistration"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("completeRegistration: {done}"))
        .to_owned();
    (token, done_at.expect("a position on a write"))
}

/// Log in as the cluster tests' person: the token and the position written.
async fn login(node: &Server) -> (String, u64) {
    let (answer, position) = gql(
        node,
        &[],
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
        json!({"e": "ida@example.no", "p": PASSWORD}),
    )
    .await;
    let token = answer["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("login: {answer}"))
        .to_owned();
    (token, position.expect("a position on a write"))
}

async fn me(node: &Server, token: &str, at: Option<u64>) -> Value {
    let mut headers = vec![bearer(token)];
    headers.extend(at.map(min_position));
    gql(node, &headers, "{ me { email name } }", json!({}))
        .await
        .0["data"]["me"]
        .clone()
}

#[tokio::test]
async fn three_nodes_share_one_journey_send_each_mail_once_and_survive_the_sender_dying() {
    let cluster = Cluster::new(&[]);
    let mut nodes = cluster.start(3);
    let all: Vec<&Server> = nodes.iter().collect();

    // A registration whose steps land on three nodes; the session is read
    // on the first right after, naming the position the last step wrote.
    let (token, position) = register_across(
        &all,
        all[0],
        all[1],
        all[2],
        "kari@example.no",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        me(all[0], &token, Some(position)).await["email"],
        "kari@example.no"
    );

    // An application created on node 2 (which reads the new session once
    // it has applied the position that wrote it) is listed on node 3.
    let (created, created_at) = gql(
        all[1],
        &[bearer(&token), min_position(position)],
        "mutation { createApplication(input: { kind: WORK, relation: SELF, applicant: { name: \"Nora Nordmann\", birthDate: \"1990-05-17\", nationality: \"SWE\" } }) { id } }",
        json!({}),
    )
    .await;
    let id = created["data"]["createApplication"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("createApplication: {created}"))
        .to_owned();
    let (listed, _) = gql(
        all[2],
        &[
            bearer(&token),
            min_position(created_at.expect("a position")),
        ],
        "{ myApplications { edges { node { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        listed["data"]["myApplications"]["edges"][0]["node"]["id"],
        json!(id),
        "{listed}"
    );

    // One code mail for that registration across the three outboxes, and
    // it stays one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let codes: Vec<Mail> = all_mails(&all)
        .into_iter()
        .filter(|m| m.kind == "registration-code")
        .collect();
    assert_eq!(codes.len(), 1, "{codes:?}");

    // kill -9 of the node that sends mail: the next registration's mail
    // still goes out, exactly once, within 15 s.
    let holder = lease_holder(&all).await;
    drop(all);
    let killed = nodes.remove(holder);
    let killed_dir = killed.stop();
    let killed_at = Instant::now();
    let survivors: Vec<&Server> = nodes.iter().collect();
    let (started, _) = gql(
        survivors[0],
        &[],
        "mutation($e: String!) { startRegistration(email: $e) { flowId } }",
        json!({"e": "ola@example.no"}),
    )
    .await;
    assert!(
        started["data"]["startRegistration"]["flowId"].is_string(),
        "{started}"
    );
    let sent = wait_mails(
        &survivors,
        "ola@example.no",
        "registration-code",
        1,
        Duration::from_secs(15).saturating_sub(killed_at.elapsed()),
    )
    .await;
    assert!(killed_at.elapsed() < Duration::from_secs(15));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again: Vec<Mail> = all_mails(&survivors)
        .into_iter()
        .filter(|m| m.to == "ola@example.no")
        .collect();
    assert_eq!(again.len(), 1, "{again:?} (first seen: {sent:?})");
    lease_holder(&survivors).await;

    // The killed node restarts and serves the old session; no mail goes
    // out again from any node.
    let restarted = Server::start_in(killed_dir, &cluster.args());
    assert_eq!(
        me(&restarted, &token, Some(position)).await["email"],
        "kari@example.no"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut everyone: Vec<&Server> = nodes.iter().collect();
    everyone.push(&restarted);
    let mails = all_mails(&everyone);
    for to in ["kari@example.no", "ola@example.no"] {
        assert_eq!(mails.iter().filter(|m| m.to == to).count(), 1, "{mails:?}");
    }
}

#[tokio::test]
async fn idle_timeouts_wrong_codes_and_login_throttling_count_on_every_node() {
    let cluster = Cluster::new(&["--session-idle-timeout", "2s"]);
    let nodes = cluster.start(3);
    let all: Vec<&Server> = nodes.iter().collect();
    let (first, position) = register_across(
        &all,
        all[0],
        all[1],
        all[2],
        "ida@example.no",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        me(all[0], &first, Some(position)).await["email"],
        "ida@example.no"
    );

    // A session used only on node 2 for longer than the idle timeout is
    // still alive on node 1, which has not seen it used since it started;
    // a session used nowhere has ended everywhere.
    let (quiet, _) = login(all[0]).await;
    let (busy, logged_in) = login(all[0]).await;
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(3) {
        assert!(
            !me(all[1], &busy, Some(logged_in)).await.is_null(),
            "used on node 2"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !me(all[0], &busy, None).await.is_null(),
        "activity on node 2 kept the session alive on node 1"
    );
    for node in &all {
        assert!(
            me(node, &quiet, None).await.is_null(),
            "a quiet session ended"
        );
    }
    // Then quiet everywhere for longer than the timeout: ended everywhere.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    for node in &all {
        assert!(
            me(node, &busy, None).await.is_null(),
            "an idle session ended"
        );
    }

    // Five wrong codes spread over the nodes kill the flow on every node.
    let (started, _) = gql(
        all[0],
        &[],
        "mutation($e: String!) { startRegistration(email: $e) { flowId } }",
        json!({"e": "lise@example.no"}),
    )
    .await;
    let flow = started["data"]["startRegistration"]["flowId"]
        .as_str()
        .unwrap_or_else(|| panic!("startRegistration: {started}"))
        .to_owned();
    let code = wait_mails(
        &all,
        "lise@example.no",
        "registration-code",
        1,
        Duration::from_secs(10),
    )
    .await[0]
        .code()
        .expect("a code");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let verify = "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }";
    let mut at = 0;
    for left in (0..5).rev() {
        let (answer, written) = gql(
            all[left % 3],
            &[min_position(at)],
            verify,
            json!({"f": flow, "c": wrong}),
        )
        .await;
        assert_eq!(common::error_code(&answer), "CODE_INVALID", "{answer}");
        assert_eq!(answer["errors"][0]["extensions"]["attemptsLeft"], left);
        at = written.unwrap_or(at);
    }
    let (answer, _) = gql(
        all[2],
        &[min_position(at)],
        verify,
        json!({"f": flow, "c": code}),
    )
    .await;
    assert_eq!(common::error_code(&answer), "TOO_MANY_ATTEMPTS", "{answer}");

    // Wrong passwords spread over the nodes throttle the account on every node.
    for n in 0..5 {
        let answer = all[n % 3]
            .login("ida@example.no", "Wrong2026abc")
            .await
            .unwrap_err();
        assert_eq!(
            common::error_code(&answer),
            "INVALID_CREDENTIALS",
            "{answer}"
        );
    }
    for node in &all {
        let answer = node.login("ida@example.no", PASSWORD).await.unwrap_err();
        assert_eq!(common::error_code(&answer), "TOO_MANY_ATTEMPTS", "{answer}");
    }
}
