//! A real browser for page tests: headless Chromium driven over WebDriver
//! by its `chromedriver`, both from Debian's packages (`chromium`,
//! `chromium-driver`). [`ChromeDriver::start`] fails, saying how to install
//! them, when either is missing: a page test is never skipped silently.
//! Each browser gets a fresh profile directory; screenshots go under
//! `target/portal-screenshots/`.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// Where Debian installs chromedriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How to get both on Debian (what `.ci/run` does when they are missing).
pub const INSTALL_HINT: &str =
    "apt-get update -qq && apt-get install -y -qq chromium chromium-driver";

/// The flags of a headless, quiet Chromium that needs no sandbox, GPU or
/// shared memory and talks to no other host on its own.
pub const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1024,900",
];

/// The Chromium binary to drive (`CASELEDGER_TEST_CHROMIUM` overrides
/// [`CHROMIUM`]) and chromedriver (`CASELEDGER_TEST_CHROMEDRIVER`
/// overrides [`CHROMEDRIVER`]); panics with [`INSTALL_HINT`] when either
/// is missing.
pub fn binaries() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("CASELEDGER_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHROMIUM));
    let driver = std::env::var_os("CASELEDGER_TEST_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHROMEDRIVER));
    for (what, path) in [("Chromium", &chromium), ("chromedriver", &driver)] {
        assert!(
            path.is_file(),
            "the browser tests need {what} at {}; install Chromium and its driver from \
             Debian's packages (as root): {INSTALL_HINT}  (or run `bash .ci/run`, which \
             installs them when missing)",
            path.display()
        );
    }
    (chromium, driver)
}

/// A running chromedriver on a free local port, stopped on drop.
pub struct ChromeDriver {
    child: Child,
    /// `http://127.0.0.1:<port>`, for the WebDriver client.
    pub url: String,
    /// The Chromium binary its sessions should start.
    pub chromium: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ChromeDriver {
    /// Start chromedriver and wait until it answers (at most 20 s).
    pub fn start() -> ChromeDriver {
        let (chromium, driver) = binaries();
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("chromedriver.log");
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", driver.display()));
        let url = format!("http://127.0.0.1:{port}");
        let driver = ChromeDriver {
            child,
            url,
            chromium,
            log,
            _dir: dir,
        };
        driver.wait_ready(Duration::from_secs(20));
        driver
    }

    fn wait_ready(&self, timeout: Duration) {
        let began = Instant::now();
        let address = self.url.trim_start_matches("http://").to_owned();
        loop {
            if let Ok(mut stream) = std::net::TcpStream::connect(&address) {
                use std::io::Write;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let request =
                    format!("GET /status HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
                if stream.write_all(request.as_bytes()).is_ok() {
                    let mut answer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut chunk) {
                        if n == 0 {
                            break;
                        }
                        answer.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&answer).replace(' ', "");
                        if text.contains("\"ready\":true") {
                            return;
                        }
                    }
                }
            }
            assert!(
                began.elapsed() < timeout,
                "chromedriver did not become ready; its log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The driver's log so far (for failure messages).
    pub fn log(&self) -> String {
        let Ok(file) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The arguments of one Chromium: [`CHROMIUM_FLAGS`], a fresh profile in
/// `profile`, and the language `lang` (what `navigator.languages` then
/// reports first, and `Accept-Language` says).
pub fn chromium_args(profile: &Path, lang: &str) -> Vec<String> {
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!("--lang={lang}"));
    args.push(format!("--accept-lang={lang}"));
    args
}

/// The directory of a test's screenshots: `<workspace>/target/portal-screenshots/<name>`
/// (`CARGO_TARGET_DIR` when set), created empty.
pub fn screenshot_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the workspace")
                .join("target")
        });
    let dir = target.join("portal-screenshots").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the screenshot dir");
    dir
}
