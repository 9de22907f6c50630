//! Log in with ID-porten against a real OpenID provider: the `oidc-provider`
//! package (tests/oidc/provider.mjs) on loopback as an ID-porten stand-in,
//! the real server, and a small browser (cookies per origin, redirects
//! followed one by one so that a test can stop or alter a step).
//!
//! Needs Node.js 20 or later and the stand-in's package:
//! `npm ci --prefix tests/oidc` (set `NODE` to use another node binary).
//! Without them the tests fail and say how to install them.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{Server, error_code};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

const CLIENT_ID: &str = "caseledger";
const CLIENT_SECRET: &str = "caseledger-test-secret";
const PASSWORD: &str = "Sommer2026abc";

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// Fails loudly when the stand-in cannot run here.
fn require_stand_in() {
    let node = node();
    match Command::new(&node).arg("--version").output() {
        Ok(output) if output.status.success() => {}
        _ => panic!(
            "\n\n*** The ID-porten tests need Node.js 20 or later (`{node}` cannot be run): install it (e.g. `apt-get install nodejs npm`), or point NODE at a node binary, then run `npm ci --prefix tests/oidc`.\n"
        ),
    }
    let package = oidc_dir().join("node_modules/oidc-provider/package.json");
    assert!(
        package.exists(),
        "\n\n*** The ID-porten tests need the npm package oidc-provider, which is not installed in {}: run `npm ci --prefix tests/oidc --no-audit --no-fund`.\n",
        oidc_dir().display()
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The running ID-porten stand-in.
struct StandIn {
    child: Child,
    issuer: String,
    dir: tempfile::TempDir,
    redirect_uri: String,
    post_logout_redirect_uri: String,
}

impl StandIn {
    fn start(redirect_uri: &str, post_logout_redirect_uri: &str) -> StandIn {
        require_stand_in();
        let dir = tempfile::tempdir().expect("temp dir");
        let (child, issuer) = StandIn::spawn(&dir, redirect_uri, post_logout_redirect_uri, 0);
        StandIn {
            child,
            issuer,
            dir,
            redirect_uri: redirect_uri.to_owned(),
            post_logout_redirect_uri: post_logout_redirect_uri.to_owned(),
        }
    }

    /// Stop and start again under the same issuer: the same clients, but
    /// new signing keys and no sessions.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = Url::parse(&self.issuer).unwrap().port().unwrap();
        let (child, issuer) = StandIn::spawn(
            &self.dir,
            &self.redirect_uri,
            &self.post_logout_redirect_uri,
            port,
        );
        assert_eq!(issuer, self.issuer);
        self.child = child;
    }

    fn spawn(
        dir: &tempfile::TempDir,
        redirect_uri: &str,
        post_logout_redirect_uri: &str,
        port: u16,
    ) -> (Child, String) {
        let log_path = dir.path().join("provider.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let mut child = Command::new(node())
            .arg(oidc_dir().join("provider.mjs"))
            .current_dir(oidc_dir())
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_REDIRECT_URI", redirect_uri)
            .env("OIDC_POST_LOGOUT_REDIRECT_URI", post_logout_redirect_uri)
            .env("OIDC_PRIVATE_KEY_FILE", dir.path().join("client-key.pem"))
            .env("OIDC_PORT", port.to_string())
            .env(
                "OIDC_FRONTCHANNEL_LOGOUT_URI",
                redirect_uri.replace("/callback", "/frontchannel-logout"),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the ID-porten stand-in: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the issuer line");
        let issuer = line.trim().to_owned();
        assert!(
            issuer.starts_with("http://127.0.0.1:"),
            "the stand-in did not start: {line:?}; its log: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        (child, issuer)
    }

    fn private_key(&self) -> PathBuf {
        self.dir.path().join("client-key.pem")
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stand-in and a server logging in with it.
struct Setup {
    provider: StandIn,
    server: Server,
    post_logout: String,
}

enum Auth {
    Secret,
    PrivateKey,
}

fn setup_with(auth: Auth, extra: &[&str]) -> Setup {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/auth/idporten/callback");
    let post_logout = format!("{base}/logged-out");
    let provider = StandIn::start(&redirect, &post_logout);
    let key = provider.private_key().display().to_string();
    let jwt_client = format!("{CLIENT_ID}-jwt");
    let mut flags: Vec<&str> = vec![
        "--idporten-issuer",
        &provider.issuer,
        "--idporten-redirect-uri",
        &redirect,
        "--idporten-post-logout-redirect-uri",
        &post_logout,
    ];
    match auth {
        Auth::Secret => flags.extend([
            "--idporten-client-id",
            CLIENT_ID,
            "--idporten-client-secret",
            CLIENT_SECRET,
        ]),
        Auth::PrivateKey => flags.extend([
            "--idporten-client-id",
            &jwt_client,
            "--idporten-private-key",
            &key,
            "--idporten-key-id",
            "caseledger-test",
        ]),
    }
    flags.extend(extra);
    let server = Server::start_listening(&format!("127.0.0.1:{port}"), &flags);
    Setup {
        provider,
        server,
        post_logout,
    }
}

fn setup(extra: &[&str]) -> Setup {
    setup_with(Auth::Secret, extra)
}

/// A browser: cookies per origin (attributes other than removal ignored),
/// redirects followed one at a time.
struct Browser {
    client: reqwest::Client,
    jar: Mutex<HashMap<String, HashMap<String, String>>>,
    accept_language: Option<&'static str>,
    /// Ask this origin for JSON.
    json_from: Option<String>,
}

/// Where a walk through redirects ended.
#[derive(Debug)]
struct Walk {
    /// Every URL fetched, in order.
    visited: Vec<String>,
    /// The URL the walk was told to stop at (not fetched).
    stopped_at: Option<String>,
    /// The last response, when the walk did not stop early.
    status: Option<StatusCode>,
    body: String,
}

impl Walk {
    fn went_through(&self, needle: &str) -> bool {
        self.visited.iter().any(|u| u.contains(needle))
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

impl Browser {
    fn new() -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            jar: Mutex::new(HashMap::new()),
            accept_language: None,
            json_from: None,
        }
    }

    /// A browser that logs in as `persona` at the stand-in.
    fn as_persona(provider: &StandIn, persona: &str) -> Browser {
        let browser = Browser::new();
        browser.set_cookie(&provider.issuer, "persona", persona);
        browser
    }

    fn set_cookie(&self, url: &str, name: &str, value: &str) {
        let url = Url::parse(url).expect("URL");
        self.jar
            .lock()
            .unwrap()
            .entry(origin(&url))
            .or_default()
            .insert(name.to_owned(), value.to_owned());
    }

    fn cookie(&self, url: &str, name: &str) -> Option<String> {
        let url = Url::parse(url).expect("URL");
        self.jar
            .lock()
            .unwrap()
            .get(&origin(&url))
            .and_then(|c| c.get(name).cloned())
    }

    fn store(&self, url: &Url, response: &reqwest::Response) {
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(origin(url)).or_default();
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let mut parts = value.split(';');
            let Some((name, val)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let removed = parts
                .map(|p| p.trim().to_ascii_lowercase())
                .any(|p| p == "max-age=0" || p.starts_with("expires=thu, 01 jan 1970"));
            if removed || val.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), val.to_owned());
            }
        }
    }

    fn request(&self, method: reqwest::Method, url: &Url) -> reqwest::RequestBuilder {
        let mut request = self.client.request(method, url.clone());
        let cookies = self
            .jar
            .lock()
            .unwrap()
            .get(&origin(url))
            .map(|c| {
                c.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        if !cookies.is_empty() {
            request = request.header(reqwest::header::COOKIE, cookies);
        }
        if let Some(lang) = self.accept_language {
            request = request.header(reqwest::header::ACCEPT_LANGUAGE, lang);
        }
        let accept = if self.json_from.as_deref() == Some(origin(url).as_str()) {
            "application/json"
        } else {
            "text/html,application/xhtml+xml,*/*;q=0.8"
        };
        request.header(reqwest::header::ACCEPT, accept)
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        let url = Url::parse(url).expect("URL");
        let response = self
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        self.store(&url, &response);
        response
    }

    async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let url = Url::parse(url).expect("URL");
        let response = self
            .request(reqwest::Method::POST, &url)
            .form(form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        self.store(&url, &response);
        response
    }

    /// Follow redirects from `start`; stop before fetching a URL for which
    /// `stop` holds.
    async fn walk(&self, start: &str, stop: impl Fn(&str) -> bool) -> Walk {
        let mut url = start.to_owned();
        let mut visited = Vec::new();
        for _ in 0..20 {
            if stop(&url) {
                return Walk {
                    visited,
                    stopped_at: Some(url),
                    status: None,
                    body: String::new(),
                };
            }
            visited.push(url.clone());
            let response = self.get(&url).await;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .expect("a Location");
                url = Url::parse(&url)
                    .and_then(|base| base.join(location))
                    .expect("a URL")
                    .to_string();
                continue;
            }
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Walk {
                visited,
                stopped_at: None,
                status: Some(status),
                body,
            };
        }
        panic!("more than 20 redirects from {start}");
    }
}

/// Where a browser lands after a successful login (the post-login URL `/`).
fn landed_home(server: &Server) -> impl Fn(&str) -> bool + '_ {
    move |url: &str| url == format!("{}/", server.url)
}

impl Setup {
    fn login_url(&self) -> String {
        format!("{}/auth/idporten/login", self.server.url)
    }

    fn callback_prefix(&self) -> String {
        format!("{}/auth/idporten/callback", self.server.url)
    }

    /// Log in with the browser; the session token, or the refusal walk.
    async fn login(&self, browser: &Browser) -> Result<String, Walk> {
        let walk = browser
            .walk(&self.login_url(), landed_home(&self.server))
            .await;
        if walk.stopped_at.is_none() {
            return Err(walk);
        }
        Ok(browser
            .cookie(&self.server.url, "caseledger_session")
            .expect("a session cookie after a login"))
    }

    /// Log in as `persona` in a fresh browser; the session token.
    async fn login_as(&self, persona: &str) -> String {
        let browser = Browser::as_persona(&self.provider, persona);
        self.login(&browser)
            .await
            .unwrap_or_else(|walk| panic!("the {persona} login failed: {walk:?}"))
    }

    /// Walk up to the callback, without fetching it.
    async fn until_callback(&self, browser: &Browser) -> String {
        let prefix = self.callback_prefix();
        let walk = browser
            .walk(&self.login_url(), |u: &str| u.starts_with(&prefix))
            .await;
        match walk.stopped_at {
            Some(url) => url,
            None => panic!(
                "the login never reached the callback: {:?} {:?} {}",
                walk.visited, walk.status, walk.body
            ),
        }
    }

    async fn accounts(&self) -> u64 {
        self.server.metric("caseledger_accounts").await
    }
}

/// Submit the provider's logout form found in `page` ("yes, log out").
async fn submit_provider_logout(browser: &Browser, issuer: &str, page: &str) -> reqwest::Response {
    let xsrf = page
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no logout form: {page}"))
        .to_owned();
    browser
        .post_form(
            &format!("{issuer}/session/end/confirm"),
            &[("xsrf", &xsrf), ("logout", "yes")],
        )
        .await
}

/// Confirm the provider's logout page at `end_session` in `browser`: the
/// provider ends its session and sends the browser back to the portal.
async fn confirm_provider_logout(browser: &Browser, setup: &Setup, end_session: &str) {
    let page = browser.get(end_session).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let confirmed = submit_provider_logout(browser, &setup.provider.issuer, &page).await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    let back = confirmed.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(back.starts_with(&setup.post_logout), "{back}");
}

async fn me(server: &Server, token: &str) -> Value {
    server
        .gql(
            Some(token),
            "{ me { id name email loginMethod } }",
            json!({}),
        )
        .await["data"]["me"]
        .clone()
}

async fn my_application_ids(server: &Server, token: &str) -> Vec<String> {
    let answer = server
        .gql(
            Some(token),
            "{ myApplications(first: 50) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    answer["data"]["myApplications"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("myApplications: {answer}"))
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Replace (or add) one query parameter of a URL.
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = Url::parse(url).expect("URL");
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(name, value);
    url.to_string()
}

fn param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn refusal_code(walk: &Walk) -> (StatusCode, String, String) {
    let body = &walk.body;
    let attribute = |name: &str| {
        body.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
            .to_owned()
    };
    (
        walk.status.expect("a refusal page"),
        attribute("data-code"),
        attribute("data-reason"),
    )
}

#[tokio::test]
async fn a_bank_id_login_creates_the_account_a_second_login_reuses_it_and_it_sees_only_its_own_applications()
 {
    let setup = setup(&[]);
    let server = &setup.server;
    let first = setup.login_as("BankID").await;
    let viewer = me(server, &first).await;
    assert_eq!(viewer["loginMethod"], "IDPORTEN", "{viewer}");
    assert_eq!(viewer["name"], "Kari Nordmann");
    assert!(viewer["email"].is_null());
    assert_eq!(setup.accounts().await, 1);
    let own = server.create_application(&first, "SELF", false).await;

    let second = setup.login_as("BankID").await;
    assert_ne!(first, second, "a new session");
    assert_eq!(
        me(server, &second).await["id"],
        viewer["id"],
        "the same account"
    );
    assert_eq!(setup.accounts().await, 1, "no second account");
    assert_eq!(my_application_ids(server, &second).await, vec![own.clone()]);

    // Another person's ID-porten identity is another account, seeing nothing.
    let other = server
        .register("other@example.no", PASSWORD, "Per Hansen")
        .await;
    let theirs = server.create_application(&other, "SELF", false).await;
    assert_eq!(my_application_ids(server, &first).await, vec![own.clone()]);
    let peek = server
        .gql(
            Some(&first),
            "query($id: ID!) { application(id: $id) { id } }",
            json!({"id": theirs}),
        )
        .await;
    assert!(peek["data"]["application"].is_null(), "{peek}");
    assert_eq!(my_application_ids(server, &other).await, vec![theirs]);
    let log = server.log();
    assert!(!log.contains("12345678901"), "the pid is never logged");
    assert!(
        !log.contains(&first) && !log.contains(&second),
        "nor tokens"
    );
    assert!(log.contains("ID-porten login"), "the outcome is logged");
}

#[tokio::test]
async fn a_password_account_with_the_same_name_is_never_linked() {
    let setup = setup(&[]);
    let server = &setup.server;
    let password = server
        .register("kari@example.no", PASSWORD, "Kari Nordmann")
        .await;
    let password_app = server.create_application(&password, "SELF", false).await;
    let idporten = setup.login_as("BankID").await;
    let (a, b) = (me(server, &password).await, me(server, &idporten).await);
    assert_eq!(a["name"], b["name"]);
    assert_ne!(a["id"], b["id"], "two accounts: {a} {b}");
    assert_eq!(b["loginMethod"], "IDPORTEN");
    assert!(my_application_ids(server, &idporten).await.is_empty());
    let idporten_app = server.create_application(&idporten, "SELF", false).await;
    assert_eq!(
        my_application_ids(server, &password).await,
        vec![password_app]
    );
    assert_eq!(
        my_application_ids(server, &idporten).await,
        vec![idporten_app]
    );
}

#[tokio::test]
async fn min_id_is_refused_with_insufficient_level_and_a_reason_in_english_and_bokmal() {
    let setup = setup(&[]);
    let browser = Browser::as_persona(&setup.provider, "MinID");
    let walk = setup.login(&browser).await.unwrap_err();
    let (status, code, _) = refusal_code(&walk);
    assert_eq!(status, StatusCode::FORBIDDEN, "{walk:?}");
    assert_eq!(code, "INSUFFICIENT_LEVEL");
    assert!(walk.body.contains("MinID is not enough"), "{}", walk.body);
    assert!(
        browser
            .cookie(&setup.server.url, "caseledger_session")
            .is_none()
    );

    let mut norwegian = Browser::as_persona(&setup.provider, "MinID");
    norwegian.accept_language = Some("nb-NO,nb;q=0.9,en;q=0.5");
    let walk = setup.login(&norwegian).await.unwrap_err();
    assert_eq!(refusal_code(&walk).1, "INSUFFICIENT_LEVEL");
    assert!(walk.body.contains("MinID er ikke nok"), "{}", walk.body);
    assert!(walk.body.contains("lang=\"nb\""));
    assert!(
        walk.visited.iter().any(|u| u.contains("ui_locales=nb")),
        "ID-porten is asked to speak bokmål too: {:?}",
        walk.visited
    );

    let mut json = Browser::as_persona(&setup.provider, "MinID");
    json.json_from = Some(setup.server.url.clone());
    let walk = setup.login(&json).await.unwrap_err();
    assert_eq!(walk.status, Some(StatusCode::FORBIDDEN));
    let answer: Value = serde_json::from_str(&walk.body).expect("a JSON refusal");
    assert_eq!(answer["error"]["code"], "INSUFFICIENT_LEVEL", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("BankID")
    );
    assert_eq!(setup.accounts().await, 0, "no account for a refused login");
}

#[tokio::test]
async fn a_login_without_a_pid_is_refused() {
    let setup = setup(&[]);
    let walk = setup
        .login(&Browser::as_persona(&setup.provider, "NoPid"))
        .await
        .unwrap_err();
    let (status, code, _) = refusal_code(&walk);
    assert_eq!(status, StatusCode::FORBIDDEN, "{walk:?}");
    assert_eq!(code, "INSUFFICIENT_LEVEL");
    assert!(
        walk.body.contains("national identity number"),
        "{}",
        walk.body
    );
    assert_eq!(setup.accounts().await, 0);
}

#[tokio::test]
async fn a_forged_state_a_replayed_callback_and_a_callback_in_another_browser_are_refused() {
    let setup = setup(&[]);
    let browser = Browser::as_persona(&setup.provider, "BankID");
    let callback = setup.until_callback(&browser).await;
    assert!(param(&callback, "code").is_some(), "{callback}");

    // Forged state: refused, and the real login is untouched by it.
    let forged = with_param(&callback, "state", "forged-state-value");
    let walk = browser.walk(&forged, |_| false).await;
    assert_eq!(
        refusal_code(&walk),
        (
            StatusCode::BAD_REQUEST,
            "UNAUTHENTICATED".into(),
            "STATE_MISMATCH".into()
        ),
        "{walk:?}"
    );
    let missing = with_param(&callback, "state", "");
    let walk = browser.walk(&missing, |_| false).await;
    assert_eq!(refusal_code(&walk).2, "STATE_MISMATCH");

    // The same callback in a browser that did not start the login.
    let stranger = Browser::new();
    let walk = stranger.walk(&callback, |_| false).await;
    assert_eq!(refusal_code(&walk).2, "STATE_MISMATCH", "{walk:?}");
    assert!(
        stranger
            .cookie(&setup.server.url, "caseledger_session")
            .is_none()
    );

    // That used the login up: even its own browser cannot complete it now.
    let walk = browser.walk(&callback, |_| false).await;
    assert_eq!(refusal_code(&walk).2, "STATE_MISMATCH");
    assert_eq!(setup.accounts().await, 0);

    // A fresh login completes once, and its callback cannot be replayed.
    let callback = setup.until_callback(&browser).await;
    let walk = browser.walk(&callback, landed_home(&setup.server)).await;
    assert!(walk.stopped_at.is_some(), "{walk:?}");
    let token = browser
        .cookie(&setup.server.url, "caseledger_session")
        .unwrap();
    assert_eq!(me(&setup.server, &token).await["loginMethod"], "IDPORTEN");
    let walk = browser.walk(&callback, |_| false).await;
    assert_eq!(refusal_code(&walk).2, "STATE_MISMATCH");
}

#[tokio::test]
async fn an_id_token_with_another_logins_nonce_is_refused() {
    let setup = setup(&[]);
    let browser = Browser::as_persona(&setup.provider, "BankID");
    // Alter the nonce on its way to the provider: the ID token then carries
    // a nonce this login never made.
    let authorize = format!("{}/auth?", setup.provider.issuer);
    let walk = browser
        .walk(&setup.login_url(), |u: &str| u.starts_with(&authorize))
        .await;
    let to_provider = walk.stopped_at.expect("the redirect to the provider");
    assert_eq!(
        param(&to_provider, "acr_values").as_deref(),
        Some("idporten-loa-high")
    );
    assert_eq!(
        param(&to_provider, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        param(&to_provider, "scope").as_deref(),
        Some("openid profile")
    );
    assert!(param(&to_provider, "state").is_some());
    let altered = with_param(&to_provider, "nonce", "a-nonce-of-another-login");
    let walk = browser.walk(&altered, landed_home(&setup.server)).await;
    assert_eq!(
        refusal_code(&walk),
        (
            StatusCode::BAD_REQUEST,
            "UNAUTHENTICATED".into(),
            "NONCE_MISMATCH".into()
        ),
        "{walk:?}"
    );

    // Another login's code under this login's state: its nonce and PKCE
    // verifier are not this login's, so it is refused.
    let first = setup.until_callback(&browser).await;
    let second = setup.until_callback(&browser).await;
    let mixed = with_param(&second, "state", &param(&first, "state").unwrap());
    let walk = browser.walk(&mixed, |_| false).await;
    // The provider refuses the code for the wrong PKCE verifier.
    assert_eq!(
        refusal_code(&walk),
        (
            StatusCode::BAD_REQUEST,
            "UNAUTHENTICATED".into(),
            "PROVIDER_ERROR".into()
        ),
        "{walk:?}"
    );
    assert!(
        browser
            .cookie(&setup.server.url, "caseledger_session")
            .is_none()
    );
    assert_eq!(setup.accounts().await, 0);
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused() {
    let setup = setup(&[]);
    let browser = Browser::as_persona(&setup.provider, "BankID");
    let callback = setup.until_callback(&browser).await;
    assert_eq!(
        param(&callback, "iss").as_deref(),
        Some(setup.provider.issuer.as_str())
    );
    let walk = browser
        .walk(
            &with_param(&callback, "iss", "https://evil.example"),
            |_| false,
        )
        .await;
    assert_eq!(refusal_code(&walk).2, "ISSUER_MISMATCH", "{walk:?}");
}

#[tokio::test]
async fn an_employer_application_from_an_id_porten_session_is_refused_end_to_end() {
    let setup = setup(&[]);
    let server = &setup.server;
    let token = setup.login_as("BankID").await;
    let refused = server
        .gql(
            Some(&token),
            "mutation { createApplication(input: { kind: WORK, relation: EMPLOYEE, applicant: { name: \"Ansatt Person\", birthDate: \"1990-05-17\", nationality: \"SWE\" } }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&refused),
        "LOGIN_METHOD_NOT_ALLOWED",
        "{refused}"
    );
    assert!(my_application_ids(server, &token).await.is_empty());
    server
        .create_application(&token, "FAMILY_MEMBER", true)
        .await;
    assert_eq!(my_application_ids(server, &token).await.len(), 1);
}

#[tokio::test]
async fn starting_logins_is_limited_per_address() {
    let setup = setup(&["--rate-limit-password", "3"]);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..3 {
        let started = client.get(setup.login_url()).send().await.unwrap();
        assert_eq!(
            started.status(),
            reqwest::StatusCode::SEE_OTHER,
            "{started:?}"
        );
    }
    let refused = client
        .get(setup.login_url())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_ATTEMPTS", "{body}");
    assert!(
        body["error"]["retryAfterSeconds"].as_i64().unwrap() >= 1,
        "{body}"
    );
}

#[tokio::test]
async fn the_idle_timeout_ends_an_id_porten_session() {
    let setup = setup(&["--session-idle-timeout", "2s"]);
    let token = setup.login_as("BankID").await;
    assert_eq!(me(&setup.server, &token).await["loginMethod"], "IDPORTEN");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(
        me(&setup.server, &token).await.is_null(),
        "an ID-porten session idle for 3 s of 2 s ended"
    );
}

#[tokio::test]
async fn logout_ends_the_session_here_and_at_the_provider() {
    let setup = setup(&[]);
    let server = &setup.server;
    let browser = Browser::as_persona(&setup.provider, "BankID");
    let token = setup.login(&browser).await.expect("a login");
    assert!(!me(server, &token).await.is_null());
    // While the provider's session lasts, a new login needs no login step.
    let again = browser.walk(&setup.login_url(), landed_home(server)).await;
    assert!(again.stopped_at.is_some(), "{again:?}");
    assert!(!again.went_through("/interaction/"), "{again:?}");
    let token = browser.cookie(&server.url, "caseledger_session").unwrap();

    // A logout naming a position this node has not reached is put off, the
    // session untouched.
    let position = browser
        .cookie(&server.url, "caseledger_position")
        .expect("the login's position");
    browser.set_cookie(&server.url, "caseledger_position", "1000000000");
    let early = browser
        .get(&format!("{}/auth/idporten/logout", server.url))
        .await;
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(early.headers()[reqwest::header::RETRY_AFTER], "1");
    assert!(!me(server, &token).await.is_null(), "the session stays");
    browser.set_cookie(&server.url, "caseledger_position", &position);

    let response = browser
        .get(&format!("{}/auth/idporten/logout", server.url))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let end_session = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        end_session.starts_with(&format!("{}/session/end?", setup.provider.issuer)),
        "{end_session}"
    );
    assert!(
        param(&end_session, "id_token_hint").is_some(),
        "{end_session}"
    );
    assert_eq!(
        param(&end_session, "post_logout_redirect_uri").as_deref(),
        Some(setup.post_logout.as_str())
    );
    assert!(
        me(server, &token).await.is_null(),
        "the local session ended"
    );
    assert!(browser.cookie(&server.url, "caseledger_session").is_none());

    // The provider asks to confirm; confirming ends its session and returns.
    confirm_provider_logout(&browser, &setup, &end_session).await;

    // The provider's session is gone: the next login logs in again.
    let fresh = browser.walk(&setup.login_url(), landed_home(server)).await;
    assert!(fresh.stopped_at.is_some(), "{fresh:?}");
    assert!(fresh.went_through("/interaction/"), "{fresh:?}");
}

#[tokio::test]
async fn logout_at_the_provider_ends_the_sessions_started_under_it_here_too() {
    let setup = setup(&[]);
    let server = &setup.server;
    let browser = Browser::as_persona(&setup.provider, "BankID");
    let token = setup.login(&browser).await.expect("a login");
    let again = browser.walk(&setup.login_url(), landed_home(server)).await;
    assert!(again.stopped_at.is_some(), "{again:?}");
    let same_browser = browser.cookie(&server.url, "caseledger_session").unwrap();
    let elsewhere = setup.login_as("BankID").await;

    // The person logs out at ID-porten itself (or at another service).
    let issuer = &setup.provider.issuer;
    let page = browser
        .get(&format!("{issuer}/session/end"))
        .await
        .text()
        .await
        .unwrap();
    let confirmed = submit_provider_logout(&browser, issuer, &page).await;
    let done = Url::parse(issuer)
        .unwrap()
        .join(
            confirmed.headers()[reqwest::header::LOCATION]
                .to_str()
                .unwrap(),
        )
        .unwrap();
    let done = browser.get(done.as_str()).await.text().await.unwrap();
    let frames: Vec<String> = done
        .split("<iframe hidden src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|src| src.replace("&#38;", "&"))
        .collect();
    assert_eq!(frames.len(), 1, "one front-channel logout: {done}");
    assert!(frames[0].starts_with(&format!(
        "{}/auth/idporten/frontchannel-logout?",
        server.url
    )));
    assert!(
        !me(server, &token).await.is_null(),
        "not before the frame loads"
    );

    // The provider loads it in a hidden frame: no cookie of ours goes along.
    let forged = with_param(&frames[0], "iss", "https://evil.example");
    assert_eq!(
        Browser::new().get(&forged).await.status(),
        StatusCode::BAD_REQUEST
    );
    let response = Browser::new().get(&frames[0]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        me(server, &token).await.is_null(),
        "the session ended here too"
    );
    assert!(
        me(server, &same_browser).await.is_null(),
        "and its SSO sibling"
    );
    assert!(
        !me(server, &elsewhere).await.is_null(),
        "a session under another provider session stays"
    );
}

#[tokio::test]
async fn json_clients_get_the_session_as_json() {
    let setup = setup(&[]);
    let mut browser = Browser::as_persona(&setup.provider, "BankID");
    browser.json_from = Some(setup.server.url.clone());
    let walk = browser.walk(&setup.login_url(), |_| false).await;
    assert_eq!(walk.status, Some(StatusCode::OK), "{walk:?}");
    let session: Value = serde_json::from_str(&walk.body).expect("JSON");
    let token = session["token"].as_str().expect("a token");
    assert_eq!(session["viewer"]["loginMethod"], "IDPORTEN");
    assert_eq!(
        me(&setup.server, token).await["id"],
        session["viewer"]["id"]
    );

    let logout = setup
        .server
        .client
        .get(format!("{}/auth/idporten/logout", setup.server.url))
        .header("authorization", format!("Bearer {token}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    let answer: Value = logout.json().await.unwrap();
    assert_eq!(answer["loggedOut"], true, "{answer}");
    assert!(
        answer["endSessionUrl"]
            .as_str()
            .unwrap()
            .starts_with(&setup.provider.issuer)
    );
    assert!(me(&setup.server, token).await.is_null());
}

#[tokio::test]
async fn new_signing_keys_at_the_provider_are_read_when_an_id_token_needs_them() {
    let mut setup = setup(&[]);
    let token = setup.login_as("BankID").await;
    let account = me(&setup.server, &token).await["id"].clone();
    setup.provider.restart();
    let token = setup.login_as("BankID").await;
    assert_eq!(
        me(&setup.server, &token).await["id"],
        account,
        "the same account"
    );
    assert!(
        setup
            .server
            .log()
            .contains("ID-porten signing keys refreshed"),
        "the keys were read again"
    );
}

#[tokio::test]
async fn private_key_jwt_client_authentication_logs_in() {
    let setup = setup_with(Auth::PrivateKey, &[]);
    let token = setup.login_as("BankID").await;
    assert_eq!(me(&setup.server, &token).await["loginMethod"], "IDPORTEN");
}

#[tokio::test]
async fn an_incomplete_configuration_refuses_to_start_and_none_runs_without_id_porten() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(common::program())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .args(["--idporten-issuer", "https://idporten.example"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--idporten-client-id")
            && stderr.contains("--idporten-redirect-uri")
            && stderr.contains("--idporten-client-secret or --idporten-private-key"),
        "{stderr}"
    );

    // Complete, but the provider cannot be reached: no start either.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let output = Command::new(common::program())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("CASELEDGER_IDPORTEN_ISSUER", &closed)
        .env("CASELEDGER_IDPORTEN_CLIENT_ID", CLIENT_ID)
        .env("CASELEDGER_IDPORTEN_CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "CASELEDGER_IDPORTEN_REDIRECT_URI",
            "http://127.0.0.1:1/auth/idporten/callback",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("discovery document"), "{stderr}");
    assert!(
        !stderr.contains(CLIENT_SECRET),
        "the secret is never printed"
    );

    let server = Server::start(&[]);
    for route in ["login", "callback", "logout"] {
        let response = server
            .client
            .get(format!("{}/auth/idporten/{route}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response.text().await.unwrap();
        assert!(body.contains("not configured"), "{body}");
    }
}

/// Two nodes of one PostgreSQL store and one secret, as behind a load
/// balancer: the setup's server and another (the secret's directory lives
/// as long as they do).
fn two_nodes() -> (Setup, Server, tempfile::TempDir) {
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("cluster.key");
    let made = common::new_secret(&secret);
    assert!(made.status.success(), "{made:?}");
    let database = common::postgres_database();
    let secret = secret.to_str().unwrap().to_owned();
    let shared = ["--store", &database, "--secret-file", &secret];
    let setup = setup(&shared);
    let redirect = setup.callback_prefix();
    let mut flags: Vec<&str> = vec![
        "--idporten-issuer",
        &setup.provider.issuer,
        "--idporten-redirect-uri",
        &redirect,
        "--idporten-post-logout-redirect-uri",
        &setup.post_logout,
        "--idporten-client-id",
        CLIENT_ID,
        "--idporten-client-secret",
        CLIENT_SECRET,
    ];
    flags.extend(shared);
    let other = Server::start(&flags);
    (setup, other, secret_dir)
}

#[tokio::test]
async fn a_login_started_on_one_node_is_called_back_on_another() {
    // The browser starts on the first node and the provider's callback
    // reaches the second.
    let (setup, other, _secret) = two_nodes();
    let browser = Browser::as_persona(&setup.provider, "BankID");
    let callback = setup.until_callback(&browser).await;
    // One origin for the browser: the login cookie goes along.
    let binding = browser
        .cookie(&setup.server.url, "caseledger_idporten_login")
        .expect("a login cookie");
    browser.set_cookie(&other.url, "caseledger_idporten_login", &binding);
    let on_other = callback.replacen(&setup.server.url, &other.url, 1);
    assert_ne!(on_other, callback);
    let walk = browser.walk(&on_other, landed_home(&other)).await;
    assert!(
        walk.stopped_at.is_some(),
        "the callback on the other node failed: {walk:?}"
    );
    let token = browser
        .cookie(&other.url, "caseledger_session")
        .expect("a session cookie");
    assert_eq!(me(&other, &token).await["loginMethod"], "IDPORTEN");

    // Used once, on any node: the same callback on the first node is refused.
    browser.set_cookie(&setup.server.url, "caseledger_idporten_login", &binding);
    let replay = browser.walk(&callback, landed_home(&setup.server)).await;
    assert!(
        replay.stopped_at.is_none(),
        "a replayed callback was accepted"
    );
    assert_eq!(
        refusal_code(&replay).0,
        StatusCode::BAD_REQUEST,
        "{replay:?}"
    );
}

/// The claims of a JWT (its middle part), unverified.
fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let claims = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .expect("base64url claims");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[tokio::test]
async fn a_logout_on_another_node_than_the_login_sends_the_login_s_id_token_to_the_provider() {
    let (setup, other, _secret) = two_nodes();
    let browser = Browser::as_persona(&setup.provider, "BankID");
    let token = setup
        .login(&browser)
        .await
        .expect("a login on the first node");
    // One origin for the browser: its session cookie goes to the other node,
    // and with it the position of the login, which that node waits for.
    browser.set_cookie(&other.url, "caseledger_session", &token);
    let position = browser
        .cookie(&setup.server.url, "caseledger_position")
        .expect("the login's position");
    assert!(position.parse::<u64>().is_ok_and(|p| p > 0), "{position}");
    browser.set_cookie(&other.url, "caseledger_position", &position);
    let response = browser
        .get(&format!("{}/auth/idporten/logout", other.url))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let end_session = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        end_session.starts_with(&format!("{}/session/end?", setup.provider.issuer)),
        "{end_session}"
    );
    let hint = param(&end_session, "id_token_hint")
        .unwrap_or_else(|| panic!("no id_token_hint: {end_session}"));
    let claims = jwt_claims(&hint);
    assert_eq!(claims["iss"], json!(setup.provider.issuer), "{claims}");
    assert_eq!(claims["aud"], json!(CLIENT_ID), "{claims}");
    assert!(claims["sid"].is_string(), "{claims}");
    assert!(me(&other, &token).await.is_null(), "the session ended");

    // The provider accepts the hint (a forged one is refused): it asks to
    // confirm, and confirming ends its session.
    let forged = with_param(&end_session, "id_token_hint", &format!("{hint}x"));
    let refused = browser.get(&forged).await;
    assert!(
        refused.status().is_client_error(),
        "a forged hint was accepted: {}",
        refused.status()
    );
    confirm_provider_logout(&browser, &setup, &end_session).await;
    let fresh = browser
        .walk(&setup.login_url(), landed_home(&setup.server))
        .await;
    assert!(fresh.went_through("/interaction/"), "{fresh:?}");
}
