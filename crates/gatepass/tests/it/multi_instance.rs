//! End to end: three `gatepass serve` processes on one PostgreSQL database behind nginx
//! (configured by `docs/nginx.conf`, ports filled in), driven through the load balancer
//! and each instance directly.
//!
//! Needs `GATEPASS_TEST_POSTGRES_URL` and an `nginx` binary; prints SKIPPED otherwise.

use crate::common::pg::{TestDb, admin_url};
use crate::common::{MASTER_KEY, SECRET, expect_error, s};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const NGINX_CONF: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/nginx.conf"));

pub(crate) fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"].iter().map(PathBuf::from).find(|p| p.exists())
}

/// A port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// nginx running as our child; stopped gracefully on drop.
pub(crate) struct Nginx {
    child: Child,
    prefix: PathBuf,
}

impl Nginx {
    pub(crate) fn start(binary: &Path, prefix: &Path, lb_port: u16, upstreams: &[u16]) -> Self {
        let mut conf = NGINX_CONF.replace("listen 127.0.0.1:8080;", &format!("listen 127.0.0.1:{lb_port};"));
        for (i, port) in upstreams.iter().enumerate() {
            conf = conf.replace(&format!("127.0.0.1:{}", 8081 + i), &format!("127.0.0.1:{port}"));
        }
        // Keep nginx's scratch files inside the test's prefix (the packaged defaults are
        // system directories).
        let p = prefix.display();
        conf = conf.replacen(
            "http {",
            &format!(
                "http {{\n    client_body_temp_path {p}/body;\n    proxy_temp_path {p}/proxy;\n    \
                 fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;"
            ),
            1,
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(binary)
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(prefix.join("error.log"))
            .arg("-g")
            .arg(format!("daemon off; pid {}/nginx.pid;", prefix.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        Nginx { child, prefix: prefix.to_path_buf() }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM via the pid file: nginx's master then stops its workers too (a SIGKILL
        // would orphan them, still holding the port).
        if let Ok(pid) = std::fs::read_to_string(self.prefix.join("nginx.pid")) {
            let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.trim()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.start_kill();
    }
}

fn start_instance(port: u16, db_url: &str, data_dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gatepass"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", db_url, "--jwt-secret", SECRET])
        .args(["--master-key", MASTER_KEY])
        .args(["--argon2-memory-kib", "1024", "--argon2-iterations", "1", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start gatepass")
}

pub(crate) async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{base} never became healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until every instance answers `status` for `token` (propagation), with a generous
/// deadline that only guards against hanging.
async fn eventually_everywhere(client: &reqwest::Client, instances: &[String], token: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for base in instances {
        loop {
            let r = client.get(format!("{base}/api/protected")).bearer_auth(token).send().await.expect("request");
            if r.status() == status {
                break;
            }
            assert!(Instant::now() < deadline, "{base} still answers {} instead of {status}", r.status());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> reqwest::Response {
    client.post(url).json(&body).send().await.expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_behind_nginx_act_as_one() {
    let Some(admin) = admin_url() else { return };
    let Some(nginx) = nginx_binary() else {
        eprintln!("SKIPPED: nginx not installed");
        return;
    };
    let db = TestDb::create(&admin).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut children = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let dir = tmp.path().join(format!("instance{i}"));
        children.push(start_instance(*port, &db.url, &dir));
    }
    let client = reqwest::Client::new();
    let instances: Vec<String> = ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
    for base in &instances {
        wait_healthy(&client, base).await;
    }
    let lb_port = free_port();
    let prefix = tmp.path().join("nginx");
    std::fs::create_dir_all(&prefix).expect("nginx prefix");
    let _nginx = Nginx::start(&nginx, &prefix, lb_port, &ports);
    let lb = format!("http://127.0.0.1:{lb_port}");
    wait_healthy(&client, &lb).await;

    // Accounts made through the balancer; every token works on every instance.
    let mut grants = Vec::new();
    for i in 0..6 {
        let r = post(
            &client,
            format!("{lb}/api/register"),
            json!({"username": format!("user{i}"), "password": "password-1"}),
        )
        .await;
        assert_eq!(r.status(), 201);
        grants.push(r.json::<Value>().await.expect("json"));
    }
    for g in &grants {
        eventually_everywhere(&client, &instances, s(g, "token"), 200).await;
    }

    // One name registered concurrently through the balancer: exactly one 201.
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{lb}/api/register"));
            let name = if i % 2 == 0 { "Racer" } else { "racer" };
            tokio::spawn(async move { post(&client, url, json!({"username": name, "password": "password-1"})).await })
        })
        .collect();
    let mut created = 0;
    for a in attempts {
        let r = a.await.expect("task");
        match r.status().as_u16() {
            201 => created += 1,
            _ => {
                expect_error(r, 409, "username_taken").await;
            }
        }
    }
    assert_eq!(created, 1);

    // Logout through the balancer is enforced by every instance.
    let token = s(&grants[0], "token");
    let r = client.post(format!("{lb}/api/logout")).bearer_auth(token).json(&json!({})).send().await.expect("logout");
    assert!(r.status().is_success());
    eventually_everywhere(&client, &instances, token, 401).await;

    // Refresh-token reuse presented to two instances at once: detected, and the session's
    // access tokens are refused everywhere.
    let g = &grants[1];
    let first = s(g, "refresh_token").to_owned();
    let r = post(&client, format!("{}/api/refresh", instances[0]), json!({"refresh_token": first})).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.expect("json");
    let r =
        post(&client, format!("{}/api/refresh", instances[0]), json!({"refresh_token": s(&second, "refresh_token")}))
            .await;
    assert_eq!(r.status(), 200);
    let third: Value = r.json().await.expect("json");
    let (r1, r2) = tokio::join!(
        post(&client, format!("{}/api/refresh", instances[1]), json!({"refresh_token": first})),
        post(&client, format!("{}/api/refresh", instances[2]), json!({"refresh_token": first})),
    );
    let mut codes = Vec::new();
    for r in [r1, r2] {
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.expect("json");
        codes.push(s(&v, "code").to_owned());
    }
    assert!(codes.iter().any(|c| c == "refresh_token_reused"), "{codes:?}");
    eventually_everywhere(&client, &instances, s(&third, "token"), 401).await;
    let r = post(&client, format!("{lb}/api/refresh"), json!({"refresh_token": s(&third, "refresh_token")})).await;
    assert_eq!(r.status(), 401, "the whole session is over");

    // One instance gone: the balancer keeps serving from the others.
    let mut gone = children.remove(0);
    let _ = gone.kill().await;
    for i in 0..6 {
        let r =
            post(&client, format!("{lb}/api/login"), json!({"username": format!("user{i}"), "password": "password-1"}))
                .await;
        assert_eq!(r.status(), 200, "login {i} with one instance down");
    }
    for mut c in children {
        let _ = c.kill().await;
    }
}
