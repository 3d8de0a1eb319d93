//! Test harness: spawns the real server on a random port with a fresh data directory and
//! drives it over HTTP like a client.
#![allow(dead_code)]

pub mod pg;
pub mod smtp;

use clap::Parser;
use gatepass::app::Application;
use gatepass::config::ServeArgs;
use gatepass::http::AppState;
use serde_json::{Value, json};
use std::path::PathBuf;
use tokio::sync::oneshot;

/// `/metrics` is process-wide (one recorder for every server in this test binary), and a
/// scrape sets gauges from the scraped server's state: tests that scrape it take turns.
pub static METRICS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fixed master key for servers on PostgreSQL.
pub const MASTER_KEY: &str = "3c1d5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d";

/// A fixed test secret (random-looking, 64 hex chars).
pub const SECRET: &str = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: ServeArgs,
}

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// A client without a cookie store.
    pub client: reqwest::Client,
    /// Server state, for white-box assertions.
    pub state: AppState,
    /// The server's storage, for white-box assertions (the one place that knows where it
    /// comes from).
    pub storage: std::sync::Arc<dyn gatepass::storage::Storage>,
    /// Data directory (deleted on drop unless kept by `restart`).
    pub dir: std::sync::Arc<tempfile::TempDir>,
    /// This run's operator token (what the start-up banner prints).
    pub operator_token: Option<String>,
    /// The PostgreSQL database this server uses (`None`: SQLite in `dir`).
    pub db: Option<std::sync::Arc<pg::TestDb>>,
    extra: Vec<String>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

/// Routes the server's logs through the test harness's output capture (shown for failing
/// tests, or with `--nocapture`). Installed before any server starts, so the global
/// subscriber that `gatepass::cli::run` installs (`telemetry::init`, which ignores later
/// calls) cannot make every test in this binary log straight to stderr.
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("GATEPASS_LOG")
            .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

/// Cheap Argon2 so tests stay fast; the real cost is exercised by benchmarks.
fn base_args(dir: &std::path::Path) -> Vec<String> {
    [
        "gatepass",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        dir.to_str().expect("utf-8 temp path"),
        "--jwt-secret",
        SECRET,
        "--argon2-memory-kib",
        "1024",
        "--argon2-iterations",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl TestApp {
    /// A server with default settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// A server with extra flags, e.g. `&["--access-token-ttl", "2s"]`.
    ///
    /// With `GATEPASS_TEST_BACKEND=postgres` the server gets a fresh PostgreSQL database
    /// (from `GATEPASS_TEST_POSTGRES_URL`, which must then be set) instead of SQLite.
    pub async fn spawn_with(extra: &[&str]) -> Self {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        let db = match std::env::var("GATEPASS_TEST_BACKEND").as_deref() {
            Ok("postgres") => {
                let admin = std::env::var(pg::URL_ENV)
                    .unwrap_or_else(|_| panic!("GATEPASS_TEST_BACKEND=postgres needs {}", pg::URL_ENV));
                Some(std::sync::Arc::new(pg::TestDb::create(&admin).await))
            }
            Ok("sqlite") | Ok("") | Err(_) => None,
            Ok(other) => panic!("unknown GATEPASS_TEST_BACKEND {other:?} (sqlite or postgres)"),
        };
        Self::start(dir, db, extra.iter().map(|s| s.to_string()).collect()).await
    }

    /// A server whose issuer is its own URL (`http://127.0.0.1:PORT`), which turns the
    /// OAuth / OpenID Connect provider on. The port is picked free just before.
    pub async fn spawn_provider(extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let listen = format!("127.0.0.1:{port}");
        let issuer = format!("http://127.0.0.1:{port}");
        let mut args = vec!["--listen", listen.as_str(), "--issuer", issuer.as_str()];
        args.extend_from_slice(extra);
        Self::spawn_with(&args).await
    }

    /// A second server sharing this one's database (the same SQLite file, or the same
    /// PostgreSQL database) and flags: another instance of one deployment.
    pub async fn spawn_peer(&self) -> Self {
        Self::start(self.dir.clone(), self.db.clone(), self.extra.clone()).await
    }

    /// A server on the database at `url` (whatever the backend selection says).
    pub async fn spawn_on_database(url: &str, extra: &[&str]) -> Self {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut args = vec!["--database-url".to_owned(), url.to_owned()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start(dir, None, args).await
    }

    async fn start(
        dir: std::sync::Arc<tempfile::TempDir>,
        db: Option<std::sync::Arc<pg::TestDb>>,
        extra: Vec<String>,
    ) -> Self {
        capture_logs();
        let mut argv = base_args(dir.path());
        if extra.iter().any(|a| a == "--listen") {
            // The caller picked the address (a provider whose issuer URL names its port).
            if let Some(i) = argv.iter().position(|a| a == "--listen") {
                argv.drain(i..i + 2);
            }
        }
        if let Some(db) = &db {
            // An external database needs an explicit master key (nothing is generated).
            argv.extend([
                "--database-url".to_owned(),
                db.url.clone(),
                "--master-key".to_owned(),
                MASTER_KEY.to_owned(),
            ]);
        }
        argv.extend(extra.iter().cloned());
        let args = Wrapper::try_parse_from(&argv).expect("valid test arguments").args;
        let storage = gatepass::app::open_storage(&args.store, true).await.expect("storage opens");
        let app = Application::build_on(args, storage.clone()).await.expect("server builds");
        let addr = app.local_addr().expect("bound");
        let state = app.state().clone();
        let operator_token = app.operator_token().map(str::to_owned);
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run_until(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestApp {
            base: format!("http://{addr}"),
            // Idle connections are dropped before the server's header-read timeout (10 s)
            // closes them: a test that waits for the next TOTP step would otherwise reuse
            // a connection the server is closing (`IncompleteMessage`).
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(std::time::Duration::from_secs(4))
                .build()
                .expect("client"),
            state,
            storage,
            dir,
            operator_token,
            db,
            extra,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// Stops the server and starts a new one on the same data directory and database.
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        let dir = self.dir.clone();
        let db = self.db.clone();
        let extra = self.extra.clone();
        Self::start(dir, db, extra).await
    }

    /// Stops the server, waiting for in-flight requests.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Data directory path.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.expect("request")
    }

    /// POST JSON with a bearer token.
    pub async fn post_auth(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).json(&body).send().await.expect("request")
    }

    /// GET with a bearer token.
    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// PATCH JSON with a bearer token.
    pub async fn patch_auth(&self, path: &str, token: &str, body: Value) -> reqwest::Response {
        self.client.patch(self.url(path)).bearer_auth(token).json(&body).send().await.expect("request")
    }

    /// DELETE with a bearer token.
    pub async fn delete_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client.delete(self.url(path)).bearer_auth(token).send().await.expect("request")
    }

    /// The operator token of this run; panics when disabled.
    pub fn operator(&self) -> &str {
        self.operator_token.as_deref().expect("operator token enabled")
    }

    /// Creates `username` with `roles` through the admin API (operator token) and logs in.
    /// Returns the login body.
    pub async fn create_and_login(&self, username: &str, password: &str, roles: &[&str]) -> Value {
        let body = json!({ "username": username, "password": password, "roles": roles });
        let r = self.post_auth("/api/admin/users", self.operator(), body).await;
        assert_eq!(r.status(), 201, "admin create {username}");
        self.login(username, password).await
    }

    /// GET without credentials.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// Registers `username` with `password`; panics unless 201. Returns the body.
    pub async fn register(&self, username: &str, password: &str) -> Value {
        let r = self.post("/api/register", json!({ "username": username, "password": password })).await;
        assert_eq!(r.status(), 201, "register {username}");
        r.json().await.expect("json")
    }

    /// Logs in; panics unless 200. Returns the body.
    pub async fn login(&self, username: &str, password: &str) -> Value {
        let r = self.post("/api/login", json!({ "username": username, "password": password })).await;
        assert_eq!(r.status(), 200, "login {username}");
        r.json().await.expect("json")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts status and error code of a response; returns the body.
pub async fn expect_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "status for expected `{code}`");
    let body: Value = r.json().await.expect("JSON error body");
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["error"].is_string(), "error message missing: {body}");
    body
}

/// `s` as a `&str` field of a JSON value.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// `gatepass serve` on a fresh data directory with `env` over a minimal test setup.
pub fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    cmd.arg("serve")
        .current_dir(dir)
        .env("GATEPASS_LISTEN", "127.0.0.1:0")
        .env("GATEPASS_DATA_DIR", dir.join("data"))
        .env("GATEPASS_JWT_SECRET", SECRET)
        .env("GATEPASS_ARGON2_MEMORY_KIB", "1024")
        .env("GATEPASS_ARGON2_ITERATIONS", "1")
        .env("GATEPASS_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("JWT_SECRET_KEY")
        .env_remove("GATEPASS_DATABASE_URL")
        .env_remove("GATEPASS_MASTER_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
