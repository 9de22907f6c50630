//! The harness: spawn the real program on port 0 with a temp data dir,
//! talk GraphQL over HTTP like the frontend, read mails from the outbox.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The `/metrics` token every server of the harness is started with
/// (through the environment, so a test's own `--metrics-token` wins).
pub const METRICS_TOKEN: &str = "harness-metrics-token";

/// The `--store` flag among a server's flags, for its commands.
fn store_args(extra: &[&str]) -> Vec<String> {
    extra
        .windows(2)
        .find(|pair| pair[0] == "--store")
        .map(|pair| vec![pair[0].to_owned(), pair[1].to_owned()])
        .unwrap_or_default()
}

/// A fresh database on the test PostgreSQL server; its URL.
pub fn postgres_database() -> String {
    test_support::postgres::fresh_database("caseledger_http")
}

/// Run `serve` with `args` (on port 0) to its end: it must refuse to
/// start, within 30 s. Its stderr.
pub fn refused_serve(args: &[&str]) -> String {
    let mut child = Command::new(program())
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for serve") {
            assert!(!status.success(), "serve exited successfully");
            let output = child.wait_with_output().expect("serve's output");
            return String::from_utf8_lossy(&output.stderr).into_owned();
        }
        if began.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("serve started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `caseledger new-secret --out path`.
pub fn new_secret(path: &Path) -> Output {
    Command::new(program())
        .args(["new-secret", "--out"])
        .arg(path)
        .output()
        .expect("run new-secret")
}

/// Path of the program under test.
pub fn program() -> &'static str {
    env!("CARGO_BIN_EXE_caseledger-under-test")
}

/// A running server.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pub log_path: PathBuf,
    pub client: reqwest::Client,
    /// Flags every command of this server's data takes (`--store`).
    pub store_args: Vec<String>,
}

/// One mail read from the outbox.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: String,
    pub to: String,
    pub kind: String,
    pub body: String,
}

impl Mail {
    /// The 6-digit code on its own line.
    pub fn code(&self) -> Option<String> {
        self.body
            .lines()
            .map(str::trim)
            .find(|l| l.len() == 6 && l.chars().all(|c| c.is_ascii_digit()))
            .map(str::to_owned)
    }
}

impl Server {
    /// Start with extra flags (besides `--listen` and `--data-dir`).
    pub fn start(extra: &[&str]) -> Server {
        let data_dir = tempfile::tempdir().expect("temp dir");
        Server::start_in(data_dir, extra)
    }

    /// Start on a fresh database of the PostgreSQL server named by
    /// `CASELEDGER_TEST_POSTGRES` (fails, saying how to start one, without
    /// it); the URL of the database is in `store_args`.
    pub fn start_postgres(extra: &[&str]) -> Server {
        let url = postgres_database();
        let mut args: Vec<&str> = vec!["--store", &url];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// Start on an existing data dir.
    pub fn start_in(data_dir: tempfile::TempDir, extra: &[&str]) -> Server {
        Server::spawn(data_dir, "127.0.0.1:0", extra)
    }

    /// Start on a given address (e.g. a port chosen before the start, for
    /// a server whose own URL must be known in advance, as an OpenID
    /// redirect URI), with extra flags.
    pub fn start_listening(listen: &str, extra: &[&str]) -> Server {
        Server::spawn(tempfile::tempdir().expect("temp dir"), listen, extra)
    }

    fn spawn(data_dir: tempfile::TempDir, listen: &str, extra: &[&str]) -> Server {
        let log_path = data_dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = Command::new(program())
            .arg("serve")
            .args(["--listen", listen, "--data-dir"])
            .arg(data_dir.path())
            .args(extra)
            .env("CASELEDGER_LOG", "debug")
            .env("CASELEDGER_METRICS_TOKEN", METRICS_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn the server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the address line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| {
                panic!(
                    "no address in {line:?}; log: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                )
            })
            .to_owned();
        Server {
            child,
            url,
            data_dir,
            log_path,
            client: reqwest::Client::new(),
            store_args: store_args(extra),
        }
    }

    /// SIGTERM, wait for the clean exit, keep the data dir.
    pub fn stop_gracefully(mut self) -> tempfile::TempDir {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success());
        let exit = self
            .wait_exit(Duration::from_secs(30))
            .expect("the server stops on SIGTERM");
        assert!(exit.success(), "clean exit: {exit:?}");
        self.stop()
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    /// Stop the server (SIGKILL) and keep the data dir.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("placeholder");
        std::mem::replace(&mut self.data_dir, dir)
    }

    /// POST a GraphQL request and return the whole JSON answer.
    pub async fn gql_with(&self, headers: &[(&str, &str)], query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("HTTP request");
        response.json().await.expect("JSON answer")
    }

    /// POST with an optional bearer token.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        match token {
            Some(t) => {
                let auth = format!("Bearer {t}");
                self.gql_with(&[("authorization", &auth)], query, variables)
                    .await
            }
            None => self.gql_with(&[], query, variables).await,
        }
    }

    /// The text of `/metrics`, asked with the harness's token.
    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The value of the metric `name` at `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        self.metrics()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    /// Every mail in the outbox, in log order.
    pub fn mails(&self) -> Vec<Mail> {
        let dir = self.data_path().join("outbox");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .filter_map(|name| {
                let raw = std::fs::read_to_string(dir.join(&name)).ok()?;
                let raw = raw.replace("\r\n", "\n");
                let (head, body) = raw.split_once("\n\n")?;
                let header = |key: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(key))
                        .map(|v| v.trim().to_owned())
                        .unwrap_or_default()
                };
                Some(Mail {
                    file: name.clone(),
                    to: header("To:"),
                    kind: header("X-Caseledger-Kind:"),
                    body: body.to_owned(),
                })
            })
            .collect()
    }

    /// Wait for the `n`-th mail (1-based) of `kind` to `to`.
    pub async fn wait_mail_n(&self, to: &str, kind: &str, n: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|m| m.to == to && m.kind == kind)
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} mail #{n} to {to}; outbox: {:?}",
                self.mails()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_mail(&self, to: &str, kind: &str) -> Mail {
        self.wait_mail_n(to, kind, 1).await
    }

    /// Run a CLI command of the program on this server's data dir.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(program())
            .args(args)
            .arg("--data-dir")
            .arg(self.data_path())
            .args(&self.store_args)
            .output()
            .expect("run the CLI")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The server's log once it has a line containing `needle` (waiting up
    /// to five seconds: a mail's file is written before its log line).
    pub async fn wait_log(&self, needle: &str) -> String {
        for _ in 0..100 {
            let log = self.log();
            if log.lines().any(|line| line.contains(needle)) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.log()
    }

    /// Register `email` fully and return the session token.
    pub async fn register(&self, email: &str, password: &str, name: &str) -> String {
        let mailbox = email.trim().to_lowercase();
        let n = self
            .mails()
            .iter()
            .filter(|m| m.to == mailbox && m.kind == "registration-code")
            .count()
            + 1;
        let started = self
            .gql(
                None,
                "mutation($e: String!) { startRegistration(email: $e) { flowId } }",
                json!({"e": email}),
            )
            .await;
        let flow = started["data"]["startRegistration"]["flowId"]
            .as_str()
            .unwrap_or_else(|| panic!("startRegistration: {started}"))
            .to_owned();
        let code = self
            .wait_mail_n(&mailbox, "registration-code", n)
            .await
            .code()
            .expect("a code");
        let verified = self
            .gql(
                None,
                "mutation($f: ID!, $c: String!) { verifyRegistrationCode(flowId: $f, code: $c) }",
                json!({"f": flow, "c": code}),
            )
            .await;
        assert_eq!(
            verified["data"]["verifyRegistrationCode"],
            json!(true),
            "{verified}"
        );
        let done = self
            .gql(
                None,
                "mutation($f: ID!, $p: String!, $n: String!) { completeRegistration(flowId: $f, password: $p, name: $n) { token viewer { id email name loginMethod } } }",
                json!({"f": flow, "p": password, "n": name}),
            )
            .await;
        done["data"]["completeRegistration"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("completeRegistration: {done}"))
            .to_owned()
    }

    /// Log in and return the token, or the whole answer on refusal.
    pub async fn login(&self, email: &str, password: &str) -> Result<String, Value> {
        let answer = self
            .gql(
                None,
                "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
                json!({"e": email, "p": password}),
            )
            .await;
        answer["data"]["login"]["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or(answer)
    }

    /// Create (and optionally submit) an application; returns its id.
    pub async fn create_application(&self, token: &str, relation: &str, submit: bool) -> String {
        let created = self
            .gql(
                Some(token),
                "mutation($r: Relation!) { createApplication(input: { kind: WORK, relation: $r, applicant: { name: \"Nora Nordmann\", birthDate: \"1990-05-17\", nationality: \"SWE\" } }) { id status } }",
                json!({"r": relation}),
            )
            .await;
        let id = created["data"]["createApplication"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createApplication: {created}"))
            .to_owned();
        if submit {
            let submitted = self
                .gql(
                    Some(token),
                    "mutation($id: ID!) { submitApplication(id: $id) { status } }",
                    json!({"id": id}),
                )
                .await;
            assert_eq!(
                submitted["data"]["submitApplication"]["status"], "SUBMITTED",
                "{submitted}"
            );
        }
        id
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `extensions.code` of the first error.
pub fn error_code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {answer}"))
}

/// Process control of a running server.
impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait until the server exits on its own (e.g. after SIGTERM).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// The auditors' CLI, built beside the program under test.
pub fn replay_tool() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let tool = dir.join("replay-tool");
    assert!(
        tool.exists(),
        "{} is missing: build it with `cargo build -p replay-tool` (cargo test --workspace does)",
        tool.display()
    );
    tool
}

/// Run the auditors' CLI over `data_dir`.
pub fn replay(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(replay_tool())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run replay-tool")
}

/// Every file under `dir` (recursively) holding `needle`, the mail
/// outbox's `.eml` files aside.
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            if path.extension().is_some_and(|e| e == "eml") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap_or_default();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}
