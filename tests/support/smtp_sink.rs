//! A real SMTP server for tests: aiosmtpd (Python) on loopback, started and
//! stopped by the test itself. Shared by the mail tests of `api` and the
//! black-box tests (included with `#[path]`).
//!
//! Needs `python3` with the `aiosmtpd` package (`pip install aiosmtpd`, or
//! Debian's `python3-aiosmtpd`); set `PYTHON` to use another interpreter.
//! Without it the tests that need it fail and say how to install it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A minimal SMTP sink: accepts every recipient except those starting with
/// `reject` (550), and writes each message as `<n>.eml` into the output
/// directory, atomically, prefixed with an `X-Test-Rcpt-To:` line naming the
/// envelope recipients.
const SERVER_SCRIPT: &str = r#"
import os, sys, threading
from aiosmtpd.controller import Controller

host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Sink:
    def __init__(self):
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        tmp = os.path.join(out, ".%04d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(("X-Test-Rcpt-To: " + ",".join(envelope.rcpt_tos) + "\r\n").encode())
            f.write(data)
        os.rename(tmp, os.path.join(out, "%04d.eml" % n))
        return "250 Message accepted for delivery"

controller = Controller(Sink(), hostname=host, port=port)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
"#;

const INSTALL_HINT: &str = "install it with `pip install aiosmtpd` \
     (or `apt-get install python3-aiosmtpd` on Debian/Ubuntu), \
     or point the PYTHON environment variable at an interpreter that has it";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// Fails loudly when the real SMTP server cannot be run here.
pub fn require_aiosmtpd() {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import aiosmtpd.controller"])
        .output();
    match probe {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "\n\n*** The SMTP tests need the Python package aiosmtpd, which `{python}` cannot import: {INSTALL_HINT}.\n{}\n",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!(
            "\n\n*** The SMTP tests need `{python}` with the package aiosmtpd, but `{python}` cannot be run ({error}): install Python 3, then {INSTALL_HINT}.\n"
        ),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running aiosmtpd on 127.0.0.1, killed when dropped.
pub struct SmtpServer {
    child: Child,
    inbox: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    pub async fn start(port: u16) -> SmtpServer {
        require_aiosmtpd();
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let log = dir.path().join("server.log");
        let child = Command::new(python())
            .args(["-c", SERVER_SCRIPT, "127.0.0.1", &port.to_string()])
            .arg(&inbox)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", python()));
        let mut server = SmtpServer {
            child,
            inbox,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!(
                    "aiosmtpd exited ({status}) before accepting connections:\n{}",
                    server.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not accept connections on port {port} within 15 s:\n{}",
                server.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The messages received so far, oldest first.
    pub fn received(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.inbox)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|path| String::from_utf8(std::fs::read(path).unwrap()).unwrap())
            .collect()
    }

    /// Waits until `count` messages have arrived (the server writes each
    /// one after acknowledging it).
    pub async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} message(s), got {}:\n{}",
                received.len(),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
