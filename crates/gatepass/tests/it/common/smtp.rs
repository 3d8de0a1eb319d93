//! A real SMTP server for tests: `tests/smtp_capture.py` (aiosmtpd, pinned in
//! `tests/requirements.txt`) run by the Python in `GATEPASS_TEST_SMTP_PYTHON`, on a free
//! port, capturing every mail as JSON in a temporary directory.
//!
//! Without `GATEPASS_TEST_SMTP_PYTHON` the tests that need it say they were skipped; with
//! it set, a server that cannot start fails the test.

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Where the Python with aiosmtpd is.
pub const PYTHON_ENV: &str = "GATEPASS_TEST_SMTP_PYTHON";

/// A running capture server (stopped on drop).
pub struct SmtpServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    python: String,
    child: Option<tokio::process::Child>,
}

/// One captured mail.
#[derive(Debug, Clone)]
pub struct Mail(pub Value);

impl Mail {
    /// A header or part (`to`, `subject`, `message_id`, `text`, `html`, `from`).
    pub fn get(&self, key: &str) -> &str {
        self.0[key].as_str().unwrap_or_default()
    }

    /// The envelope recipients.
    pub fn rcpt(&self) -> Vec<String> {
        self.0["rcpt_tos"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
    }

    /// The one link in the text part that starts with `prefix` (panics otherwise).
    pub fn link(&self, prefix: &str) -> String {
        let text = self.get("text");
        let links: Vec<&str> = text.split_whitespace().filter(|w| w.starts_with(prefix)).collect();
        assert_eq!(links.len(), 1, "one link starting with {prefix} in: {text}");
        links[0].to_owned()
    }

    /// The `token` query parameter of the link starting with `prefix`.
    pub fn token(&self, prefix: &str) -> String {
        let link = self.link(prefix);
        let (_, token) = link.split_once("token=").unwrap_or_else(|| panic!("no token in {link}"));
        token.to_owned()
    }
}

impl SmtpServer {
    /// The Python to run, or `None` (and a note on stderr) when the variable is unset.
    pub fn python(test: &str) -> Option<String> {
        match std::env::var(PYTHON_ENV) {
            Ok(p) if !p.is_empty() => Some(p),
            _ => {
                eprintln!("SKIPPED {test}: set {PYTHON_ENV} to a python with aiosmtpd (tests/requirements.txt)");
                None
            }
        }
    }

    /// Starts a server on a free port; `None` when skipped (see [`Self::python`]).
    pub async fn start(test: &str) -> Option<Self> {
        let python = Self::python(test)?;
        let port = free_port();
        let mut server = SmtpServer { port, dir: tempfile::tempdir().expect("temp dir"), python, child: None };
        server.up().await;
        Some(server)
    }

    /// A server that is not running yet, with its port reserved by number (for tests that
    /// start it later).
    pub fn down(test: &str) -> Option<Self> {
        let python = Self::python(test)?;
        Some(SmtpServer { port: free_port(), dir: tempfile::tempdir().expect("temp dir"), python, child: None })
    }

    /// (Re)starts the server on its port; panics if it does not come up.
    pub async fn up(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_capture.py");
        let mut child = tokio::process::Command::new(&self.python)
            .arg(&script)
            .arg(self.port.to_string())
            .arg(self.dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON_ENV}={} cannot run {}: {e}", self.python, script.display()));
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line == "ready" => {}
            other => panic!("the SMTP capture server did not start ({PYTHON_ENV}={}): {other:?}", self.python),
        }
        self.child = Some(child);
    }

    /// Stops the server (connections are then refused).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
            let _ = c.wait().await;
        }
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail captured so far, in arrival order.
    pub fn mails(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("capture dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|p| Mail(serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("json")))
            .collect()
    }

    /// Mails to `to` so far.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.rcpt().iter().any(|r| r.eq_ignore_ascii_case(to))).collect()
    }

    /// Waits until `n` mails to `to` have arrived (panics after three minutes: a mail
    /// whose sender was killed mid-delivery waits out its one-minute lease); returns them.
    pub async fn wait_for(&self, to: &str, n: usize) -> Vec<Mail> {
        for _ in 0..3600 {
            let mails = self.mails_to(to);
            if mails.len() >= n {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} mail(s) to {to}; got {:?}", self.mails_to(to));
    }

    /// Waits until `n` mails in all have arrived (panics after two minutes).
    pub async fn wait_total(&self, n: usize) -> Vec<Mail> {
        for _ in 0..2400 {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} mail(s); got {}", self.mails().len());
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}
