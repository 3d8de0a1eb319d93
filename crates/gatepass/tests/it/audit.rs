//! Issue: the audit trail. Each security event is recorded with actor, subject, client
//! and outcome; the admin API filters and pages it; `gatepass audit verify` (and the admin
//! API's check) detects edited and removed entries, also when whoever edited them
//! recomputed the plain SHA-256 links, since links are keyed with the master key;
//! a trail from before the keyed chain keeps its plain part, pinned by the sealed anchor;
//! concurrent appends keep the chain linear.

use crate::common::{self, TestApp, expect_error, s};
use serde_json::{Value, json};

async fn events(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app.get_auth(&format!("/api/admin/audit{query}"), app.operator()).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["entries"].as_array().unwrap().clone()
}

async fn one(app: &TestApp, event: &str) -> Value {
    let list = events(app, &format!("?event={event}")).await;
    assert!(!list.is_empty(), "no `{event}` entry");
    list[0].clone()
}

fn gatepass(app: &TestApp, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
    cmd.args(args).args(["--data-dir", app.data_dir().to_str().unwrap()]);
    if let Some(db) = &app.db {
        cmd.args(["--database-url", &db.url, "--master-key", common::MASTER_KEY]);
    }
    cmd.env_remove("GATEPASS_DATABASE_URL").env("GATEPASS_LOG", "warn").output().expect("gatepass runs")
}

#[tokio::test]
async fn every_security_event_is_recorded_with_its_context() {
    let app = TestApp::spawn_with(&["--refresh-reuse-grace", "0s"]).await;
    let ua = "audit-test-agent/1.0";
    let post = |path: &str, body: Value| app.client.post(app.url(path)).header("user-agent", ua).json(&body).send();

    // register, login ok, login failed (reasons stay internal)
    let reg: Value = post("/api/register", json!({"username": "aud", "password": "plum-kettle-71"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uid = s(&reg["user"], "id").to_owned();
    let login: Value = post("/api/login", json!({"username": "aud", "password": "plum-kettle-71"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let wrong = post("/api/login", json!({"username": "aud", "password": "wrong-password"})).await.unwrap();
    let wrong_body = expect_error(wrong, 401, "invalid_credentials").await;
    let unknown = post("/api/login", json!({"username": "ghost", "password": "wrong-password"})).await.unwrap();
    let unknown_body = expect_error(unknown, 401, "invalid_credentials").await;
    assert_eq!(wrong_body, unknown_body, "the client cannot tell the reasons apart");
    assert!(!wrong_body.to_string().contains("wrong_password"));

    let e = one(&app, "register").await;
    assert_eq!((e["actor"].clone(), e["subject"].clone()), (json!(uid), json!(uid)));
    assert_eq!(e["user_agent"], ua);
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["outcome"], "success");
    assert_eq!(one(&app, "login").await["subject"], json!(uid));
    let failed = events(&app, "?event=login_failed").await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["detail"]["reason"], "unknown_user");
    assert_eq!(failed[0]["subject"], Value::Null);
    assert_eq!(failed[0]["outcome"], "failure");
    assert_eq!(failed[1]["detail"]["reason"], "wrong_password");
    assert_eq!(failed[1]["subject"], json!(uid));

    // refresh, then reuse of the rotated token
    let old_refresh = s(&login, "refresh_token").to_owned();
    let refreshed: Value =
        post("/api/refresh", json!({"refresh_token": old_refresh})).await.unwrap().json().await.unwrap();
    assert!(refreshed["access_token"].is_string());
    assert_eq!(one(&app, "refresh").await["subject"], json!(uid));
    // Past the (zero-second) grace window, the rotated token counts as reuse.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reuse = post("/api/refresh", json!({"refresh_token": old_refresh})).await.unwrap();
    expect_error(reuse, 401, "refresh_token_reused").await;
    let e = one(&app, "refresh_reuse_detected").await;
    assert_eq!(e["subject"], json!(uid));
    assert_eq!(e["outcome"], "failure");
    let payload = s(&login, "access_token").split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(e["detail"]["session"], claims["sid"]);

    // password change and logout
    let token = s(&app.login("aud", "plum-kettle-71").await, "access_token").to_owned();
    let changed: Value = app
        .post_auth(
            "/api/password",
            &token,
            json!({"current_password": "plum-kettle-71", "new_password": "plum-kettle-72"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one(&app, "password_changed").await["actor"], json!(uid));
    let r = app
        .post_auth(
            "/api/password",
            s(&changed, "access_token"),
            json!({"current_password": "not-it-at-all", "new_password": "plum-kettle-73"}),
        )
        .await;
    expect_error(r, 401, "invalid_credentials").await;
    let e = one(&app, "password_change_failed").await;
    assert_eq!(e["detail"]["reason"], "wrong_password");
    assert_eq!(e["outcome"], "failure");
    let r = app.post_auth("/api/logout", s(&changed, "access_token"), json!({})).await;
    assert_eq!(r.status(), 200);
    let e = one(&app, "logout").await;
    assert_eq!(e["detail"]["scope"], "local");
    assert_eq!(e["detail"]["sessions_ended"], 1);

    // admin actions, by an admin user
    let admin = app.create_and_login("auditor", "brisk-meadow-55", &["admin"]).await;
    let admin_id = s(&admin["user"], "id").to_owned();
    let admin_token = s(&admin, "access_token").to_owned();
    let path = format!("/api/admin/users/{uid}");
    app.patch_auth(&path, &admin_token, json!({"roles": ["editor"]})).await;
    app.patch_auth(&path, &admin_token, json!({"disabled": true})).await;
    app.patch_auth(&path, &admin_token, json!({"disabled": false})).await;
    app.patch_auth("/api/info", &admin_token, json!({"registration_open": false})).await;
    app.delete_auth(&path, &admin_token).await;

    let e = one(&app, "user_created").await;
    assert_eq!(e["actor"], "operator");
    assert_eq!(e["subject"], json!(admin_id));
    let e = one(&app, "roles_changed").await;
    assert_eq!((e["actor"].clone(), e["subject"].clone()), (json!(admin_id), json!(uid)));
    assert_eq!(e["detail"]["to"], json!(["editor", "user"]));
    assert_eq!(one(&app, "user_disabled").await["subject"], json!(uid));
    assert_eq!(one(&app, "user_enabled").await["subject"], json!(uid));
    let e = one(&app, "settings_changed").await;
    assert_eq!(e["detail"]["to"]["registration_open"], false);
    assert_eq!(e["detail"]["from"]["registration_open"], true);
    assert_eq!(one(&app, "user_deleted").await["subject"], json!(uid));
    let e = one(&app, "operator_token_used").await;
    assert_eq!(e["actor"], "operator");
    assert_eq!(e["detail"]["path"], "/api/admin/audit");

    // Non-admins cannot read the trail.
    let plain = s(&app.login("auditor", "brisk-meadow-55").await, "access_token").to_owned();
    assert_eq!(app.get_auth("/api/admin/audit", &plain).await.status(), 200);
    app.patch_auth(&format!("/api/admin/users/{admin_id}"), app.operator(), json!({"roles": []})).await;
    let demoted = s(&app.login("auditor", "brisk-meadow-55").await, "access_token").to_owned();
    expect_error(app.get_auth("/api/admin/audit", &demoted).await, 403, "insufficient_role").await;

    // The whole chain verifies.
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit chain intact"));
    let out = gatepass(&app, &["audit", "--limit", "5"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6, "a header and five entries");
}

/// Checks that every row starts each column where the header does.
fn assert_aligned(table: &str) {
    let mut lines = table.lines();
    let header: Vec<char> = lines.next().expect("header").chars().collect();
    let starts: Vec<usize> =
        (1..header.len()).filter(|&i| header[i - 1] == ' ' && header[i - 2] == ' ' && header[i] != ' ').collect();
    assert!(starts.len() >= 8, "{table}");
    for line in lines {
        let row: Vec<char> = line.chars().collect();
        for &at in &starts {
            assert!(row.len() > at && row[at - 1] == ' ' && row[at] != ' ', "column at {at} misaligned:\n{table}");
        }
    }
}

/// `2026-12-05 03:52:18Z`
fn is_human_utc(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn audit_cli_shows_usernames_filters_by_name_and_aligns_columns() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice", "coral-lantern-38").await;
    let aid = s(&alice["user"], "id").to_owned();
    let bob = app.register("bobby", "dusk-violin-64").await;
    let bid = s(&bob["user"], "id").to_owned();
    app.login("alice", "coral-lantern-38").await;
    let r = app.patch_auth(&format!("/api/admin/users/{bid}"), app.operator(), json!({"disabled": true})).await;
    assert_eq!(r.status(), 200);

    let out = gatepass(&app, &["audit"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("id "), "{table}");
    assert_aligned(&table);
    let cells = |line: &str| -> Vec<String> {
        line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect()
    };
    for line in table.lines().skip(1) {
        let c = cells(line);
        assert!(is_human_utc(&c[1]), "{line}");
        for who in &c[4..6] {
            assert!(["alice", "bobby", "operator", "-"].contains(&who.as_str()), "names, not ids: {line}");
        }
    }
    let disabled = table.lines().find(|l| l.contains("user_disabled")).expect("user_disabled row");
    assert_eq!(cells(disabled)[4..6], ["operator", "bobby"], "{disabled}");
    assert!(disabled.contains("{\"sessions_ended\":1}"), "details stay readable JSON: {disabled}");

    // --user takes a username and matches it as actor or subject.
    let out = gatepass(&app, &["audit", "--user", "bobby"]);
    assert!(out.status.success());
    let only_bob = String::from_utf8(out.stdout).unwrap();
    assert_aligned(&only_bob);
    let rows: Vec<&str> = only_bob.lines().skip(1).collect();
    assert!(rows.iter().any(|l| l.contains("register")) && rows.iter().any(|l| l.contains("user_disabled")));
    assert!(rows.iter().all(|l| l.contains("bobby") && !l.contains("alice")), "{only_bob}");

    let out = gatepass(&app, &["audit", "--user", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account named \"nobody\""));

    // A deleted account's events are still found by its id, which stands in for the name.
    let out = gatepass(&app, &["user", "delete", "alice", "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = gatepass(&app, &["audit", "--user", &aid]);
    assert!(out.status.success());
    let gone = String::from_utf8(out.stdout).unwrap();
    assert!(gone.lines().skip(1).any(|l| l.contains("login") && l.contains(&aid)), "{gone}");
    assert!(gone.lines().any(|l| l.contains("user_deleted")), "{gone}");
}

#[tokio::test]
async fn audit_listing_filters_by_user_event_and_time_and_pages() {
    let app = TestApp::spawn().await;
    let a = app.register("alice", "coral-lantern-38").await;
    let aid = s(&a["user"], "id").to_owned();
    app.register("bobby", "dusk-violin-64").await;
    for _ in 0..3 {
        app.login("alice", "coral-lantern-38").await;
    }

    let mine = events(&app, &format!("?user={aid}")).await;
    assert_eq!(mine.len(), 4);
    assert!(mine.iter().all(|e| e["actor"] == json!(aid) || e["subject"] == json!(aid)));

    let page1: Value = app.get_auth("/api/admin/audit?event=login&limit=2", app.operator()).await.json().await.unwrap();
    let ids: Vec<i64> = page1["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "newest first");
    let before = page1["next_before"].as_i64().unwrap();
    let page2 = events(&app, &format!("?event=login&limit=2&before={before}")).await;
    assert_eq!(page2.len(), 1);
    assert!(page2[0]["id"].as_i64().unwrap() < ids[1]);

    assert!(events(&app, "?from=2000000000").await.is_empty());
    assert!(events(&app, "?to=2000-01-01T00:00:00Z").await.is_empty());
    assert!(!events(&app, "?from=2000-01-01T00:00:00Z&event=register").await.is_empty());
    for bad in ["?from=yesterday", "?limit=0", "?limit=1000", "?before=x", "?colour=red"] {
        let r = app.get_auth(&format!("/api/admin/audit{bad}"), app.operator()).await;
        expect_error(r, 400, "invalid_request").await;
    }
}

async fn raw_db(app: &TestApp) -> sqlx::SqlitePool {
    let url = format!("sqlite://{}", app.data_dir().join("gatepass.db").display());
    sqlx::SqlitePool::connect(&url).await.expect("open database")
}

#[tokio::test]
async fn edited_or_removed_entries_are_detected_and_the_table_refuses_changes() {
    let app = TestApp::spawn().await;
    if app.db.is_some() {
        // The tampering below is SQLite SQL; the chain check itself is backend-independent.
        println!("SKIPPED on PostgreSQL: tampering test edits the SQLite file directly");
        return;
    }
    for i in 0..4 {
        app.register(&format!("user{i}"), "a-long-password").await;
    }
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 4 entries"));

    let db = raw_db(&app).await;
    // Ordinary writes are refused by the database.
    assert!(sqlx::query("UPDATE audit_log SET outcome = 'failure' WHERE id = 2").execute(&db).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_log WHERE id = 2").execute(&db).await.is_err());

    // Someone with file access drops the guards and edits an entry.
    sqlx::query("DROP TRIGGER audit_log_no_update").execute(&db).await.unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_delete").execute(&db).await.unwrap();
    sqlx::query("UPDATE audit_log SET ip = '10.9.9.9' WHERE id = 2").execute(&db).await.unwrap();
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken at entry 2: entry was edited"));

    // Put it back; then remove one instead.
    sqlx::query("UPDATE audit_log SET ip = '127.0.0.1' WHERE id = 2").execute(&db).await.unwrap();
    assert!(gatepass(&app, &["audit", "verify"]).status.success());
    sqlx::query("DELETE FROM audit_log WHERE id = 3").execute(&db).await.unwrap();
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken at entry 4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_console_shows_a_recent_verdict_and_an_explicit_check_renews_it() {
    let app = TestApp::spawn().await;
    if app.db.is_some() {
        println!("SKIPPED on PostgreSQL: tampering test edits the SQLite file directly");
        return;
    }
    crate::admin_console::create(&app, "auditor", &["admin"]).await;
    let mut b = crate::admin_console::signed_in(&app, "auditor").await;
    assert!(b.page("/admin/audit").await.contains("The chain is intact"));

    // An entry edited now is not seen by the next pages, which show the verdict of a
    // minute ago instead of reading the whole trail on every visit ...
    let db = raw_db(&app).await;
    sqlx::query("DROP TRIGGER audit_log_no_update").execute(&db).await.unwrap();
    sqlx::query("UPDATE audit_log SET ip = '10.9.9.9' WHERE id = 1").execute(&db).await.unwrap();
    assert!(b.page("/admin/audit?event=user_created").await.contains("The chain is intact"));
    // ... but by an explicit check, whose verdict the page then shows.
    let r = app.get_auth("/api/admin/audit/verify", app.operator()).await;
    assert_eq!(r.json::<Value>().await.unwrap()["intact"], false);
    let html = b.page("/admin/audit").await;
    assert!(html.contains("The chain is broken"), "{html}");
    assert!(html.contains("broken at entry 1"), "{html}");
}

#[tokio::test]
async fn concurrent_events_keep_the_chain_linear() {
    // Throttling off: this test is about the chain under concurrency, not about limits.
    let app = TestApp::spawn_with(&["--rate-limit", "false"]).await;
    app.register("target", "a-long-password").await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = app.client.clone();
        let url = app.url("/api/login");
        tasks.push(tokio::spawn(async move {
            let password = if i % 2 == 0 { "a-long-password" } else { "not-the-password" };
            client.post(url).json(&json!({"username": "target", "password": password})).send().await.map(|r| r.status())
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().unwrap().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 12);
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 12);
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 25 entries"));
    assert_eq!(events(&app, "?event=login&limit=200").await.len(), 12);
    assert_eq!(events(&app, "?event=login_failed&limit=200").await.len(), 12);
}

/// The database behind a server, opened directly, as someone with write access to it
/// (not through gatepass) would.
enum RawDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

type Row = (i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, String, Option<String>);

impl RawDb {
    async fn open(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            RawDb::Sqlite(sqlx::SqlitePool::connect(url).await.expect("open database"))
        } else {
            RawDb::Postgres(sqlx::PgPool::connect(url).await.expect("open database"))
        }
    }

    async fn of(app: &TestApp) -> Self {
        match &app.db {
            Some(db) => Self::open(&db.url).await,
            None => Self::open(&format!("sqlite://{}", app.data_dir().join("gatepass.db").display())).await,
        }
    }

    async fn exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self {
            RawDb::Sqlite(p) => sqlx::query(sql).execute(p).await.map(drop),
            RawDb::Postgres(p) => sqlx::query(sql).execute(p).await.map(drop),
        }
    }

    /// Drops the append-only guards of `audit_log` and `audit_chain`.
    async fn drop_guards(&self) {
        let statements: &[&str] = match self {
            RawDb::Sqlite(_) => &[
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
                "DROP TRIGGER IF EXISTS audit_chain_sealed",
            ],
            RawDb::Postgres(_) => &[
                "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
                "ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_sealed",
            ],
        };
        for sql in statements {
            self.exec(sql).await.expect(sql);
        }
    }

    async fn rows(&self) -> Vec<Row> {
        const SQL: &str =
            "SELECT id, at, event, actor, subject, ip, user_agent, outcome, detail FROM audit_log ORDER BY id";
        match self {
            RawDb::Sqlite(p) => sqlx::query_as(SQL).fetch_all(p).await.expect("rows"),
            RawDb::Postgres(p) => sqlx::query_as(SQL).fetch_all(p).await.expect("rows"),
        }
    }

    /// Relinks every entry from `from` on with plain SHA-256, as anyone can compute it.
    async fn recompute_plain_links(&self, from: i64) {
        let mut prev = GENESIS.to_owned();
        for row in self.rows().await {
            if row.0 >= from {
                let hash = plain_link(&row, &prev);
                let sql = format!("UPDATE audit_log SET prev_hash = '{prev}', hash = '{hash}' WHERE id = {}", row.0);
                self.exec(&sql).await.expect("relink");
                prev = hash;
            } else {
                prev = self.link_of(row.0).await;
            }
        }
    }

    async fn link_of(&self, id: i64) -> String {
        let sql = format!("SELECT hash FROM audit_log WHERE id = {id}");
        let sql = sqlx::AssertSqlSafe(sql);
        match self {
            RawDb::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("hash"),
            RawDb::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.expect("hash"),
        }
    }

    /// Appends an entry linked the plain way (what versions before the keyed chain wrote).
    async fn append_plain(&self, id: i64, event: &str, prev: &str) -> String {
        let row: Row =
            (id, 1_800_000_000 + id, event.into(), Some("cli".into()), None, None, None, "success".into(), None);
        let hash = plain_link(&row, prev);
        let sql = format!(
            "INSERT INTO audit_log (id, at, event, actor, outcome, prev_hash, hash) \
             VALUES ({id}, {}, '{event}', 'cli', 'success', '{prev}', '{hash}')",
            row.1
        );
        self.exec(&sql).await.expect("insert");
        hash
    }
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 of an entry's canonical JSON with the previous link last: the plain link, which
/// needs no key.
fn plain_link(r: &Row, prev: &str) -> String {
    use sha2::Digest as _;
    let canonical = json!([r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, prev]).to_string();
    sha2::Sha256::digest(canonical.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

async fn api_verdict(app: &TestApp) -> Value {
    let r = app.get_auth("/api/admin/audit/verify", app.operator()).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn an_edit_with_recomputed_plain_links_is_caught() {
    let app = TestApp::spawn().await;
    for i in 0..4 {
        app.register(&format!("user{i}"), "a-long-password").await;
    }
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 4 entries"));
    let verdict = api_verdict(&app).await;
    assert_eq!((verdict["intact"].clone(), verdict["keyed_from"].clone()), (json!(true), json!(1)));

    // Someone with write access to the database edits entry 2 and recomputes every link
    // after it the way a plain hash chain is computed.
    let db = RawDb::of(&app).await;
    db.drop_guards().await;
    db.exec("UPDATE audit_log SET ip = '10.9.9.9' WHERE id = 2").await.unwrap();
    db.recompute_plain_links(2).await;
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken at entry 2: entry was edited"), "{stderr}");
    let verdict = api_verdict(&app).await;
    assert_eq!(verdict["intact"], false);
    assert_eq!((verdict["broken_at"].clone(), verdict["reason"].clone()), (json!(2), json!("edited")));

    // Moving the start of the keyed chain past the end, to pass everything off as plain,
    // breaks the anchor's seal.
    db.exec("UPDATE audit_chain SET keyed_from = 100 WHERE id = 1").await.unwrap();
    db.recompute_plain_links(1).await;
    let out = gatepass(&app, &["audit", "verify"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("anchor does not verify"));
    let verdict = api_verdict(&app).await;
    assert_eq!((verdict["intact"].clone(), verdict["reason"].clone()), (json!(false), json!("anchor_invalid")));
}

/// A database written before the keyed chain: its plain entries stay as they were and are
/// checked as such; the keyed chain starts after them, and the anchor's seal pins them.
#[tokio::test]
async fn an_upgraded_trail_keeps_its_plain_part_and_pins_it() {
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("GATEPASS_TEST_BACKEND").as_deref() == Ok("postgres");
    let (url, _db, backend) = if postgres {
        let db = common::pg::TestDb::create(&common::pg::admin_url().expect("postgres configured")).await;
        (db.url.clone(), Some(db), "postgres")
    } else {
        (format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display()), None, "sqlite")
    };
    // The schema as the version before the keyed chain left it (migrations 1 to 5).
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    for entry in std::fs::read_dir(format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"))).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0006" {
            std::fs::copy(&path, old.join(name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    let db = RawDb::open(&url).await;
    match &db {
        RawDb::Sqlite(p) => migrator.run(p).await.unwrap(),
        RawDb::Postgres(p) => migrator.run(p).await.unwrap(),
    }
    let mut prev = GENESIS.to_owned();
    for id in 1..=3 {
        prev = db.append_plain(id, "user_created", &prev).await;
    }

    let app = TestApp::spawn_on_database(&url, &["--master-key", common::MASTER_KEY]).await;
    app.register("after", "a-long-password").await;
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"))
            .args(["audit", "verify", "--database-url", &url, "--master-key", common::MASTER_KEY])
            .args(["--data-dir", app.data_dir().to_str().unwrap()])
            .env("GATEPASS_LOG", "warn")
            .output()
            .expect("gatepass runs")
    };
    let out = verify();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("intact: 4 entries"), "{stdout}");
    assert!(stdout.contains("entries 1-3: plain SHA-256"), "{stdout}");
    assert!(stdout.contains("keyed chain (HMAC under the master key) from entry 4"), "{stdout}");
    let verdict = api_verdict(&app).await;
    assert_eq!((verdict["plain_entries"].clone(), verdict["keyed_from"].clone()), (json!(3), json!(4)));

    // The plain part rewritten consistently, and the first keyed entry relinked to it: the
    // anchor still holds the old last link.
    db.drop_guards().await;
    db.exec("UPDATE audit_log SET actor = 'someone-else' WHERE id = 1").await.unwrap();
    db.recompute_plain_links(1).await;
    let out = verify();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken at entry"), "{stderr}");
    assert_eq!(api_verdict(&app).await["intact"], false);
}
