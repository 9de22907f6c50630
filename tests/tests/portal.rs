//! The portal at `/`, as people use it: in headless Chromium driven over
//! WebDriver (chromedriver), against the real server. Each journey saves
//! screenshots under `target/portal-screenshots/` and runs axe-core on each
//! screen, failing on any serious or critical violation. Without Chromium
//! and chromedriver the browser tests fail and say how to install them.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Server;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use test_support::browser::{ChromeDriver, chromium_args, screenshot_dir};

const EMAIL: &str = "kari@example.no";
const GOOD_PASSWORD: &str = "Sommer2026abc";
const NEW_PASSWORD: &str = "Vinter2027xyz";
const SERVICE_TOKEN: &str = "caseworker-credential";
const AXE: &str = include_str!("../vendor/axe-core/axe.min.js");
/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(15);
/// One browser at a time: the tests of this file take turns, so that a
/// small machine is not asked to run several Chromiums at once.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// How long a caseworker's change may take to appear: the polling
/// fallback asks every 10 s.
const LIVE_WAIT: Duration = Duration::from_secs(30);

/// One browser window on the portal, with its screenshots.
struct Page {
    client: Client,
    base: String,
    shots: PathBuf,
    taken: usize,
    _profile: tempfile::TempDir,
}

impl Page {
    async fn open(driver: &ChromeDriver, base: &str, journey: &str, lang: &str) -> Page {
        let profile = tempfile::tempdir().expect("a profile dir");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": driver.chromium,
                "args": chromium_args(profile.path(), lang),
                "prefs": { "intl.accept_languages": lang },
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no Chromium session: {e}; chromedriver's log:\n{}",
                    driver.log()
                )
            });
        Page {
            client,
            base: base.to_owned(),
            shots: screenshot_dir(journey),
            taken: 0,
            _profile: profile,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("navigate");
    }

    /// Run `script` (a function body) and return its value.
    async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .expect("run a script")
    }

    /// Wait until `condition` (a JavaScript expression) is true.
    async fn wait_until(&mut self, what: &str, condition: &str, timeout: Duration) {
        let began = Instant::now();
        let script = format!("return !!({condition});");
        loop {
            if self.js(&script, vec![]).await == json!(true) {
                return;
            }
            if began.elapsed() > timeout {
                let name: String = what
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                    .collect();
                self.shot(&format!("failed-{name}")).await;
                let main = self.js("return document.body.innerText;", vec![]).await;
                panic!("waited {timeout:?} for {what} ({condition}); the page says:\n{main}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until the element `css` is there and its text contains `needle`.
    async fn wait_text(&mut self, css: &str, needle: &str) {
        let condition = format!(
            "document.querySelector({css:?}) && document.querySelector({css:?}).innerText.includes({needle:?})"
        );
        self.wait_until(&format!("{needle:?} in {css}"), &condition, WAIT)
            .await;
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .expect("its text")
    }

    /// Type `text` into the field `css`, as a person would (after clearing it).
    async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Click `css` (found again if the page redrew it meanwhile).
    async fn click(&self, css: &str) {
        let mut tries = 0;
        loop {
            let element = self
                .client
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no {css}: {e}"));
            match element.click().await {
                Ok(()) => return,
                Err(e) if tries < 3 && e.to_string().contains("stale element") => tries += 1,
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    async fn choose(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choose {value} in {css}: {e}"));
    }

    async fn exists(&self, css: &str) -> bool {
        self.js(
            "return document.querySelector(arguments[0]) !== null;",
            vec![json!(css)],
        )
        .await
            == json!(true)
    }

    /// Keys typed into whatever has the focus.
    async fn press(&self, keys: &str) {
        self.client
            .active_element()
            .await
            .expect("the focused element")
            .send_keys(keys)
            .await
            .expect("type");
    }

    /// The id of the element that has the keyboard focus.
    async fn focused(&self) -> String {
        self.js("return document.activeElement.id;", vec![])
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn shot(&mut self, name: &str) {
        self.taken += 1;
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, png).expect("save the screenshot");
    }

    /// A screenshot, then axe-core on the screen: no serious or critical
    /// violation.
    async fn screen(&mut self, name: &str) {
        self.shot(name).await;
        let words = self.js("return document.body.innerText;", vec![]).await;
        let words = words.as_str().unwrap_or("");
        assert!(
            !words.contains("null") && !words.contains("undefined") && !words.contains("[object"),
            "the {name} screen shows a programming value: {words}"
        );
        if self.js("return typeof window.axe;", vec![]).await != json!("object") {
            self.js(AXE, vec![]).await;
        }
        let found = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, { resultTypes: ['violations'] })
                   .then((r) => done(r.violations.map((v) => ({
                     id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.map((n) => n.target.join(' ')) }))))
                   .catch((e) => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));",
                vec![],
            )
            .await
            .expect("run axe-core");
        let violations = found.as_array().expect("a list of violations");
        let bad: Vec<&Value> = violations
            .iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .collect();
        assert!(
            bad.is_empty(),
            "axe-core on the {name} screen: {}",
            serde_json::to_string_pretty(&bad).unwrap()
        );
    }

    async fn wait_heading(&mut self, text: &str) {
        self.wait_text("h1", text).await;
    }
}

/// The server with a caseworker credential, for the caseworker's change.
fn server() -> Server {
    Server::start(&["--service-token", SERVICE_TOKEN])
}

async fn password_policy(server: &Server) -> Value {
    server
        .gql(None, "{ passwordPolicy { rules ruleCodes } }", json!({}))
        .await["data"]["passwordPolicy"]
        .clone()
}

/// The text of rule `code` of the policy in force.
fn rule(policy: &Value, code: &str) -> String {
    let index = policy["ruleCodes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == code)
        .unwrap_or_else(|| panic!("no rule {code} in {policy}"));
    policy["rules"][index].as_str().unwrap().to_owned()
}

fn in_two_weeks() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::days(14)).date_naive()
}

#[tokio::test]
async fn the_portal_page_is_served_with_strict_headers_and_cacheable_assets() {
    let server = Server::start(&[]);
    let page = server
        .client
        .get(format!("{}/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(
        header("content-security-policy"),
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("cross-origin-opener-policy"), "same-origin");
    assert!(header("permissions-policy").contains("camera=()"));
    assert_eq!(header("cache-control"), "no-cache");
    let etag = header("etag");
    let html = page.text().await.unwrap();
    assert!(html.contains("data-idporten=\"off\""), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"));

    let again = server
        .client
        .get(format!("{}/", server.url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    // Every script and the style sheet, by the versioned name the page uses.
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.starts_with("/portal/"))
        .collect();
    assert_eq!(assets.len(), 4, "{assets:?}");
    for asset in assets {
        let response = server
            .client
            .get(format!("{}{asset}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        let headers = response.headers();
        assert_eq!(
            headers["cache-control"], "public, max-age=31536000, immutable",
            "{asset}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let kind = headers["content-type"].to_str().unwrap();
        assert!(
            kind == "text/css; charset=utf-8" || kind == "text/javascript; charset=utf-8",
            "{asset}: {kind}"
        );
        let etag = headers["etag"].clone();
        let unversioned = asset.split('?').next().unwrap();
        let cached = server
            .client
            .get(format!("{}{unversioned}", server.url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(cached.status(), 304, "{unversioned}");
        assert_eq!(cached.headers()["cache-control"], "no-cache");
    }
    let missing = server
        .client
        .get(format!("{}/portal/nothing.js", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn journeys_through_the_portal_in_a_real_browser() {
    let _turn = ONE_BROWSER.lock().await;
    let driver = ChromeDriver::start();
    let server = server();
    let policy = password_policy(&server).await;
    // An application from the old portal (before April 2022) with this email.
    let legacy = server.data_path().join("legacy.jsonl");
    std::fs::write(
        &legacy,
        format!(
            "{{\"reference\": \"UDI-2021-0001\", \"submittedAt\": \"2021-06-01T10:00:00Z\", \"kind\": \"WORK\", \"email\": \"{EMAIL}\"}}\n"
        ),
    )
    .expect("the legacy file");
    let imported = server.cli(&["import-legacy", "--file", legacy.to_str().unwrap()]);
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    let mut page = Page::open(&driver, &server.url, "journeys", "en-GB").await;

    // ---- Register: email, the code from the outbox, password and name.
    page.goto("/").await;
    page.wait_heading("Log in").await;
    assert!(page.js("return location.hash;", vec![]).await == json!("#/login"));
    assert!(
        !page.exists("#idporten-login").await,
        "no ID-porten button without ID-porten"
    );
    page.screen("login").await;
    page.click("#register-link").await;
    page.wait_heading("Create a user account").await;
    page.fill("#email", "not an address").await;
    page.click("#register-email-form button[type=submit]").await;
    page.wait_text("#email-error", "email").await;
    assert_eq!(
        page.focused().await,
        "email",
        "the refused field has the focus"
    );
    assert_eq!(
        page.js(
            "return document.getElementById('email').getAttribute('aria-invalid');",
            vec![]
        )
        .await,
        json!("true")
    );
    page.screen("register-bad-email").await;
    page.fill("#email", EMAIL).await;
    page.click("#register-email-form button[type=submit]").await;
    page.wait_text("#step", "Step 2 of 3").await;
    page.wait_text("#code-validity", "The code is valid for")
        .await;
    let code = server
        .wait_mail(EMAIL, "registration-code")
        .await
        .code()
        .expect("a code in the mail");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    page.fill("#code", wrong).await;
    page.click("#register-code-form button[type=submit]").await;
    page.wait_text("#code-error", "attempts left").await;
    page.screen("register-wrong-code").await;
    page.fill("#code", &code).await;
    page.click("#register-code-form button[type=submit]").await;
    page.wait_text("#step", "Step 3 of 3").await;

    // A password that breaks rules: the checklist says which while typing,
    // and the refusal names every rule broken, next to the field.
    page.fill("#new-password", "abc@æ").await;
    page.fill("#name", "Kari Nordmann").await;
    let unmet = page
        .js(
            "return Array.from(document.querySelectorAll('#new-password-rules li.unmet')).map((li) => li.dataset.rule);",
            vec![],
        )
        .await;
    let broken = [
        "TOO_SHORT",
        "MISSING_UPPERCASE",
        "MISSING_DIGIT",
        "FORBIDDEN_CHARACTER",
    ];
    assert_eq!(unmet, json!(broken), "the live checklist");
    page.click("#register-complete-form button[type=submit]")
        .await;
    page.wait_text("#new-password-error", "breaks 4 rules")
        .await;
    let error = page.text("#new-password-error").await;
    for code in broken {
        assert!(
            error.contains(&rule(&policy, code)),
            "{code} is not shown in: {error}"
        );
    }
    assert!(!error.contains(&rule(&policy, "MISSING_LOWERCASE")));
    assert_eq!(page.focused().await, "new-password");
    page.screen("register-password-rules").await;
    page.fill("#new-password", GOOD_PASSWORD).await;
    let unmet = page
        .js(
            "return document.querySelectorAll('#new-password-rules li.unmet').length;",
            vec![],
        )
        .await;
    assert_eq!(unmet, json!(0));
    page.shot("register-good-password").await;
    page.click("#register-complete-form button[type=submit]")
        .await;

    // ---- My applications: empty, then a new application.
    page.wait_heading("My applications").await;
    page.wait_text("#notice", "Your user account is created")
        .await;
    page.wait_text("#no-applications", "no applications").await;
    page.wait_text("#legacy", "Applications submitted before April 2022")
        .await;
    page.wait_text("#legacy", "UDI-2021-0001").await;
    page.wait_text("#legacy .guidance", "police").await;
    page.wait_text("#nav", "Logged in as Kari Nordmann").await;
    page.screen("my-applications-empty").await;
    page.click("#new-application").await;
    page.wait_heading("New application").await;
    page.choose("#kind", "FAMILY").await;
    page.click("#relation-FAMILY_MEMBER").await;
    page.fill("#applicant-name", "Nora Nordmann").await;
    page.fill("#birth-date-day", "31").await;
    page.fill("#birth-date-month", "02").await;
    page.fill("#birth-date-year", "2015").await;
    page.fill("#nationality", "swe").await;
    page.click("#new-application-form button[type=submit]")
        .await;
    page.wait_text("#birth-date-error", "date").await;
    page.screen("new-application-bad-date").await;
    page.fill("#birth-date-day", "28").await;
    page.click("#new-application-form button[type=submit]")
        .await;
    page.wait_heading("Application for Nora Nordmann").await;
    page.wait_text("[data-fact=status]", "Draft").await;
    page.screen("application-draft").await;

    // Submit, book an appointment, cancel it.
    page.click("#submit-form button").await;
    page.wait_text("[data-fact=status]", "Submitted").await;
    page.wait_text("#notice", "Book an appointment next").await;
    let date = in_two_weeks();
    page.choose("#meeting-point", "POLICE").await;
    page.fill("#location", "Oslo politidistrikt").await;
    page.fill("#book-date-day", &date.format("%d").to_string())
        .await;
    page.fill("#book-date-month", &date.format("%m").to_string())
        .await;
    page.fill("#book-date-year", &date.format("%Y").to_string())
        .await;
    page.choose("#book-time", "10:30").await;
    page.screen("booking-form").await;
    page.click("#book-form button[type=submit]").await;
    page.wait_text("[data-fact=status]", "Appointment booked")
        .await;
    page.wait_text("[data-fact=appointment]", "Oslo politidistrikt")
        .await;
    page.wait_text("[data-fact=appointment]", "10:30").await;
    page.wait_text(
        "[data-fact=appointment]",
        "Hand in the application documents",
    )
    .await;
    let mail = server.wait_mail(EMAIL, "appointment-confirmation").await;
    assert!(mail.body.contains("Oslo politidistrikt"));
    page.screen("appointment-booked").await;
    page.click("#cancel-form button").await;
    page.wait_text("#notice", "The appointment is cancelled")
        .await;
    page.wait_text("[data-fact=status]", "Submitted").await;
    page.wait_text("[data-fact=appointment]", "No appointment booked")
        .await;
    page.screen("appointment-cancelled").await;

    // ---- A caseworker's change appears without a reload.
    page.click("#back-to-list").await;
    page.wait_heading("My applications").await;
    page.wait_text(".application [data-fact=status]", "Submitted")
        .await;
    let id = page
        .js(
            "return document.querySelector('.application').dataset.id;",
            vec![],
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    page.js("window.stillTheSamePage = true;", vec![]).await;
    let service = [("x-service-token", SERVICE_TOKEN)];
    let fee = server
        .gql_with(
            &service,
            "mutation($id: ID!) { registerFeePaid(applicationId: $id, amountNok: 6300) { feePaid } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(fee["data"]["registerFeePaid"]["feePaid"], true, "{fee}");
    let received = server
        .gql_with(
            &service,
            "mutation($id: ID!) { registerDocumentsReceived(applicationId: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        received["data"]["registerDocumentsReceived"]["status"], "DOCUMENTS_RECEIVED",
        "{received}"
    );
    page.wait_until(
        "the caseworker's change",
        "document.querySelector('.application').dataset.status === 'DOCUMENTS_RECEIVED'",
        LIVE_WAIT,
    )
    .await;
    assert_eq!(
        page.js("return window.stillTheSamePage === true;", vec![])
            .await,
        json!(true),
        "the page was not reloaded"
    );
    page.wait_text(".application [data-fact=status]", "Documents received")
        .await;
    // Through the subscription socket when the server offers one, else by
    // polling.
    let socket_offered = server
        .client
        .get(format!("{}/graphql/ws", server.url))
        .send()
        .await
        .expect("GET /graphql/ws")
        .status()
        != 404;
    let live = page
        .js("return document.documentElement.dataset.live;", vec![])
        .await;
    let expected = if socket_offered { "socket" } else { "polling" };
    assert_eq!(live, json!(expected), "how the page heard of the change");
    page.screen("caseworker-change-live").await;

    // The fee was registered as paid: ask for it back.
    page.click(&format!("#open-{id}")).await;
    page.wait_heading("Application for Nora Nordmann").await;
    page.wait_text("[data-fact=fee]", "Paid").await;
    page.click("#refund-form button").await;
    page.wait_text("#notice", "refund is registered").await;
    page.wait_text("[data-fact=fee]", "Refund requested").await;
    assert!(!page.exists("#refund-form").await);
    page.screen("refund-requested").await;

    // ---- Paging: twelve applications, ten a page.
    let token = page
        .client
        .get_all_cookies()
        .await
        .expect("the cookies")
        .into_iter()
        .find(|c| c.name() == "caseledger_session")
        .expect("the session cookie")
        .value()
        .to_owned();
    for _ in 0..11 {
        server.create_application(&token, "SELF", false).await;
    }
    page.click("#nav-applications").await;
    page.wait_heading("My applications").await;
    page.wait_text("#apps-count", "Showing 10 of 12").await;
    page.screen("my-applications-page-1").await;
    page.click("#more-applications").await;
    page.wait_text("#apps-count", "Showing 12 of 12").await;
    assert!(!page.exists("#more-applications").await);
    let focused = page.focused().await;
    assert!(
        focused.starts_with("open-"),
        "focus on the first new one: {focused}"
    );

    // ---- Log out.
    page.click("#logout").await;
    page.wait_heading("Log in").await;
    page.wait_text("#notice", "You are logged out").await;
    let me = server.gql(Some(&token), "{ me { id } }", json!({})).await;
    assert!(me["data"]["me"].is_null(), "the session ended: {me}");
    page.screen("logged-out").await;

    // ---- Forgotten password.
    page.click("#forgot-link").await;
    page.wait_heading("Forgotten password").await;
    page.screen("forgot-password").await;
    page.fill("#email", EMAIL).await;
    page.click("#forgot-email-form button[type=submit]").await;
    page.wait_text("#step", "Step 2 of 3").await;
    page.wait_text("#code-validity", "valid for").await;
    // A new code only after a while: the refusal says how long to wait.
    let code = server
        .wait_mail(EMAIL, "recovery-code")
        .await
        .code()
        .expect("a code");
    page.click("#forgot-resend-form button[type=submit]").await;
    page.wait_text("#forgot-resend-form .error-summary", "You can try again in")
        .await;
    page.screen("forgot-code").await;
    page.fill("#code", &code).await;
    page.click("#forgot-code-form button[type=submit]").await;
    page.wait_text("#step", "Step 3 of 3").await;
    page.fill("#new-password", NEW_PASSWORD).await;
    page.screen("forgot-new-password").await;
    page.click("#forgot-complete-form button[type=submit]")
        .await;
    page.wait_heading("Log in").await;
    page.wait_text("#notice", "Your password is changed").await;
    page.fill("#login-email", EMAIL).await;
    page.fill("#login-password", GOOD_PASSWORD).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_text(
        "#login-password-error",
        "The email address or the password is wrong",
    )
    .await;
    page.screen("login-refused").await;
    page.fill("#login-password", NEW_PASSWORD).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_heading("My applications").await;
    page.wait_text("#apps-count", "Showing 10 of 12").await;

    // ---- Norwegian: switched on the page, remembered after a reload.
    page.click("#lang-switch").await;
    page.wait_heading("Mine søknader").await;
    assert_eq!(
        page.js("return document.documentElement.lang;", vec![])
            .await,
        json!("nb")
    );
    assert_eq!(page.focused().await, "lang-switch");
    page.wait_text(".application [data-fact=status]", "Utkast")
        .await;
    page.screen("mine-soknader").await;
    page.client.refresh().await.expect("reload");
    page.wait_heading("Mine søknader").await;
    page.wait_text("#lang-switch", "English").await;
    page.wait_text("#apps-count", "Viser 10 av 12").await;
    page.click("#nav-new").await;
    page.wait_heading("Ny søknad").await;
    page.screen("ny-soknad").await;
    page.client.close().await.expect("close the browser");

    // A browser that prefers Norwegian gets Norwegian at once.
    let mut norwegian = Page::open(&driver, &server.url, "norwegian", "nb-NO").await;
    norwegian.goto("/").await;
    norwegian.wait_heading("Logg inn").await;
    assert_eq!(
        norwegian
            .js("return document.documentElement.lang;", vec![])
            .await,
        json!("nb")
    );
    norwegian
        .wait_text("#forgot-link", "Har du glemt passordet?")
        .await;
    norwegian.screen("logg-inn").await;
    // With the keyboard alone: the heading has the focus after the page
    // loads, Tab goes through the form in order, Enter sends it.
    assert_eq!(norwegian.focused().await, "page-heading");
    norwegian.press(&Key::Tab.to_string()).await;
    assert_eq!(norwegian.focused().await, "login-email");
    norwegian.press(EMAIL).await;
    norwegian.press(&Key::Tab.to_string()).await;
    assert_eq!(norwegian.focused().await, "login-password");
    norwegian.press("Feil1passord").await;
    norwegian.press(&Key::Enter.to_string()).await;
    norwegian
        .wait_text(
            "#login-password-error",
            "E-postadressen eller passordet er feil",
        )
        .await;
    assert_eq!(norwegian.focused().await, "login-password");
    norwegian.screen("logg-inn-feil").await;
    norwegian.click("#forgot-link").await;
    norwegian.wait_heading("Glemt passord").await;
    norwegian.fill("#email", "ukjent").await;
    norwegian
        .click("#forgot-email-form button[type=submit]")
        .await;
    norwegian.wait_text("#email-error", "e-post").await;
    norwegian.screen("glemt-passord-feil").await;
    norwegian.client.close().await.expect("close the browser");
}

/// The ID-porten stand-in (tests/oidc/provider.mjs, the npm package
/// `oidc-provider` on Node), stopped on drop.
struct IdPortenStandIn {
    child: std::process::Child,
    issuer: String,
    _dir: tempfile::TempDir,
}

impl IdPortenStandIn {
    const CLIENT_ID: &str = "caseledger";
    const CLIENT_SECRET: &str = "caseledger-test-secret";

    fn start(redirect_uri: &str, post_logout_redirect_uri: &str) -> IdPortenStandIn {
        use std::io::BufRead;
        let oidc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc");
        let node = std::env::var("NODE").unwrap_or_else(|_| "node".to_owned());
        assert!(
            oidc.join("node_modules/oidc-provider/package.json")
                .exists(),
            "the ID-porten browser test needs Node.js and the npm package oidc-provider: \
             run `npm ci --prefix tests/oidc --no-audit --no-fund` (or `bash .ci/run`)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let log = std::fs::File::create(dir.path().join("provider.log")).expect("log file");
        let mut child = std::process::Command::new(&node)
            .arg(oidc.join("provider.mjs"))
            .current_dir(&oidc)
            .env("OIDC_CLIENT_ID", Self::CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", Self::CLIENT_SECRET)
            .env("OIDC_REDIRECT_URI", redirect_uri)
            .env("OIDC_POST_LOGOUT_REDIRECT_URI", post_logout_redirect_uri)
            .env("OIDC_PRIVATE_KEY_FILE", dir.path().join("client-key.pem"))
            .env("OIDC_PORT", "0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("starting the ID-porten stand-in with {node}: {e}"));
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the issuer line");
        let issuer = line.trim().to_owned();
        assert!(
            issuer.starts_with("http://127.0.0.1:"),
            "the stand-in did not start: {line:?}; its log: {}",
            std::fs::read_to_string(dir.path().join("provider.log")).unwrap_or_default()
        );
        IdPortenStandIn {
            child,
            issuer,
            _dir: dir,
        }
    }
}

impl Drop for IdPortenStandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn log_in_with_id_porten_in_a_real_browser() {
    let _turn = ONE_BROWSER.lock().await;
    let driver = ChromeDriver::start();
    let port = test_support::browser::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let redirect = format!("{base}/auth/idporten/callback");
    let provider = IdPortenStandIn::start(&redirect, &format!("{base}/"));
    let server = Server::start_listening(
        &format!("127.0.0.1:{port}"),
        &[
            "--idporten-issuer",
            &provider.issuer,
            "--idporten-client-id",
            IdPortenStandIn::CLIENT_ID,
            "--idporten-client-secret",
            IdPortenStandIn::CLIENT_SECRET,
            "--idporten-redirect-uri",
            &redirect,
        ],
    );
    let mut page = Page::open(&driver, &server.url, "idporten", "en-GB").await;
    page.goto("/").await;
    page.wait_heading("Log in").await;
    page.wait_text("#idporten-login", "Log in with ID-porten")
        .await;
    // The stand-in logs in as the persona its cookie names (cookies are
    // per host, so the portal's page can set it for the provider too).
    let persona = |name: &str| format!("document.cookie = 'persona={name}; path=/';");

    // MinID (level substantial) is refused, and the page says why.
    page.js(&persona("MinID"), vec![]).await;
    page.click("#idporten-login").await;
    page.wait_text("#message", "MinID is not enough").await;
    assert_eq!(
        page.js(
            "return document.querySelector('main').dataset.code;",
            vec![]
        )
        .await,
        json!("INSUFFICIENT_LEVEL")
    );
    page.screen("idporten-level-refused").await;

    // BankID (level high) logs in; an employer may not apply for an
    // employee with ID-porten, and the form says so next to the choice.
    // A fresh start at the provider too (cookies are per host: this
    // clears the provider's session as well).
    page.goto("/").await;
    page.wait_heading("Log in").await;
    page.client
        .delete_all_cookies()
        .await
        .expect("clear the cookies");
    page.js(&persona("BankID"), vec![]).await;
    page.click("#idporten-login").await;
    page.wait_heading("My applications").await;
    page.wait_text("#nav", "Logged in as Kari Nordmann").await;
    page.click("#nav-new").await;
    page.wait_heading("New application").await;
    page.wait_text("#relation-hint", "must log in with a username and password")
        .await;
    page.click("#relation-EMPLOYEE").await;
    page.fill("#applicant-name", "Per Hansen").await;
    page.fill("#birth-date-day", "01").await;
    page.fill("#birth-date-month", "06").await;
    page.fill("#birth-date-year", "1988").await;
    page.fill("#nationality", "IND").await;
    page.click("#new-application-form button[type=submit]")
        .await;
    page.wait_text("#relation-error", "ID-porten").await;
    let refusal = page.text("#relation-error").await;
    assert!(!refusal.contains("null"), "{refusal}");
    assert_eq!(page.focused().await, "relation-SELF");
    page.screen("idporten-employer-refused").await;
    page.client.close().await.expect("close the browser");
}

/// A Chrome DevTools command through chromedriver (`goog/cdp/execute`).
#[derive(Debug)]
struct DevTools {
    method: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for DevTools {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, <reqwest::Url as std::str::FromStr>::Err> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

#[tokio::test]
async fn without_a_socket_the_page_polls_and_still_shows_a_caseworker_change() {
    let _turn = ONE_BROWSER.lock().await;
    let driver = ChromeDriver::start();
    let server = server();
    let token = server.register(EMAIL, GOOD_PASSWORD, "Kari Nordmann").await;
    let id = server.create_application(&token, "SELF", true).await;
    let mut page = Page::open(&driver, &server.url, "polling", "en-GB").await;
    // A browser (or a proxy) without WebSockets.
    page.client
        .issue_cmd(DevTools {
            method: "Page.addScriptToEvaluateOnNewDocument",
            params: json!({ "source": "window.WebSocket = undefined;" }),
        })
        .await
        .expect("hide WebSocket from the page");
    page.goto("/").await;
    page.wait_heading("Log in").await;
    page.fill("#login-email", EMAIL).await;
    page.fill("#login-password", GOOD_PASSWORD).await;
    page.click("#login-form button[type=submit]").await;
    page.wait_heading("My applications").await;
    page.wait_text(".application [data-fact=status]", "Submitted")
        .await;
    page.js("window.stillTheSamePage = true;", vec![]).await;
    let received = server
        .gql_with(
            &[("x-service-token", SERVICE_TOKEN)],
            "mutation($id: ID!) { registerDocumentsReceived(applicationId: $id) { status } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        received["data"]["registerDocumentsReceived"]["status"], "DOCUMENTS_RECEIVED",
        "{received}"
    );
    page.wait_until(
        "the caseworker's change",
        "document.querySelector('.application').dataset.status === 'DOCUMENTS_RECEIVED'",
        LIVE_WAIT,
    )
    .await;
    assert_eq!(
        page.js("return window.stillTheSamePage === true;", vec![])
            .await,
        json!(true),
        "the page was not reloaded"
    );
    assert_eq!(
        page.js("return document.documentElement.dataset.live;", vec![])
            .await,
        json!("polling")
    );
    page.screen("polled-change").await;
    page.client.close().await.expect("close the browser");
}
