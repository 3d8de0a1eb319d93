//! `gatepass import`: users from a seed-style SQLite database can log in afterwards.

use crate::common::{TestApp, expect_error};
use serde_json::json;
use sqlx::Connection;

async fn seed_source(path: &std::path::Path) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT UNIQUE NOT NULL, password TEXT NOT NULL, email TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    let bcrypt = bcrypt::hash("bcrypt-password", 4).unwrap();
    let werkzeug =
        "pbkdf2:sha256:1000$zcELMtBtnSQvnAe7$932c8f3b3ec0fc618d76ca8e766544e367687d08f1498ed0f097d6bcc8dbbf2b";
    for (u, p, e) in [
        ("admin", "1234", None),                           // seed 002 stores plaintext
        ("bee", bcrypt.as_str(), Some("bee@example.com")), // seed 003 uses bcrypt
        ("flask", werkzeug, None),                         // werkzeug generate_password_hash
        ("bad name", "whatever-password", None),           // invalid username
        ("Admin2", "", None),                              // empty password
        ("md5user", "md5$abc$def", None),                  // unsupported hash
        ("mail", "mail-password", Some("not-an-email")),   // invalid email
    ] {
        sqlx::query("INSERT INTO users (username, password, email) VALUES (?1, ?2, ?3)")
            .bind(u)
            .bind(p)
            .bind(e)
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn imported_users_log_in_and_bad_rows_are_reported() {
    let app = TestApp::spawn().await;
    let src = app.data_dir().join("seed.db");
    seed_source(&src).await;
    let storage = app.storage.clone();
    let core = app.state.service.core();

    let dry = gatepass::service::import::import_sqlite(core, &src, &Default::default(), true, |_, _| {}).await.unwrap();
    assert_eq!((dry.read, dry.imported, dry.skipped.len()), (7, 3, 4));
    assert_eq!(storage.count_users().await.unwrap(), 0, "dry run writes nothing");

    let mut ticks = 0;
    let report = gatepass::service::import::import_sqlite(core, &src, &Default::default(), false, |_, _| ticks += 1)
        .await
        .unwrap();
    assert_eq!(ticks, 7);
    assert_eq!(report.imported, 3);
    let reasons: Vec<String> = report.skipped.iter().map(|(u, r)| format!("{u}: {r}")).collect();
    assert!(reasons.iter().any(|r| r.starts_with("bad name: invalid username")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("Admin2: empty password")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("md5user: unsupported")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.starts_with("mail: invalid email")), "{reasons:?}");

    // Every imported account is audited as a creation, like any other.
    let audit: serde_json::Value =
        app.get_auth("/api/admin/audit?event=user_created", app.operator()).await.json().await.unwrap();
    let entries = audit["entries"].as_array().unwrap();
    let mut created: Vec<&str> = entries.iter().map(|e| e["detail"]["username"].as_str().unwrap()).collect();
    created.sort_unstable();
    assert_eq!(created, ["admin", "bee", "flask"], "{audit}");
    for e in entries {
        assert_eq!(e["actor"], "cli");
        assert_eq!(e["detail"]["imported"], true);
        assert!(e["subject"].as_str().is_some_and(|s| !s.is_empty()));
    }

    // Plaintext was hashed at import; legacy hashes are upgraded at first login.
    let admin = storage.user_by_username("admin").await.unwrap().unwrap();
    assert!(admin.password_hash.starts_with("$argon2id$"));
    app.login("admin", "1234").await;
    app.login("bee", "bcrypt-password").await;
    app.login("flask", "flask-password").await;
    for name in ["bee", "flask"] {
        let u = storage.user_by_username(name).await.unwrap().unwrap();
        assert!(u.password_hash.starts_with("$argon2id$"), "{name} upgraded");
    }
    expect_error(
        app.post("/api/login", json!({"username": "flask", "password": "wrong"})).await,
        401,
        "invalid_credentials",
    )
    .await;

    // Importing again skips everyone as existing.
    let again =
        gatepass::service::import::import_sqlite(core, &src, &Default::default(), false, |_, _| {}).await.unwrap();
    assert_eq!(again.imported, 0);
}

#[tokio::test]
async fn absurd_legacy_hash_costs_are_skipped_with_the_reason() {
    let app = TestApp::spawn().await;
    let src = app.data_dir().join("costly.db");
    let url = format!("sqlite://{}?mode=rwc", src.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE users (username TEXT, password TEXT)").execute(&mut conn).await.unwrap();
    let werkzeug =
        "pbkdf2:sha256:1000$zcELMtBtnSQvnAe7$932c8f3b3ec0fc618d76ca8e766544e367687d08f1498ed0f097d6bcc8dbbf2b";
    for (u, p) in [
        ("fine", werkzeug),
        (
            "onepass",
            "pbkdf2:sha256:1$zcELMtBtnSQvnAe7$932c8f3b3ec0fc618d76ca8e766544e367687d08f1498ed0f097d6bcc8dbbf2b",
        ),
        ("hugescrypt", "scrypt:1048576:32:1$Zmyrsq3N1yWAEsaT$b238c1cf8e9e854ac860bae6cc68ddebb9c238fe"),
        ("hugeargon", "$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"),
        ("slowbcrypt", "$2b$31$KIXQJBQJjmbC6dS8ZkFuVOiNC3dL2iRw4u2vnlGNbZcXlCPjOQ2Bu"),
    ] {
        sqlx::query("INSERT INTO users VALUES (?1, ?2)").bind(u).bind(p).execute(&mut conn).await.unwrap();
    }
    let core = app.state.service.core();
    let report =
        gatepass::service::import::import_sqlite(core, &src, &Default::default(), false, |_, _| {}).await.unwrap();
    assert_eq!((report.read, report.imported), (5, 1));
    let reasons: Vec<String> = report.skipped.iter().map(|(u, r)| format!("{u}: {r}")).collect();
    for name in ["onepass", "hugescrypt", "hugeargon", "slowbcrypt"] {
        let why = reasons.iter().find(|r| r.starts_with(&format!("{name}: "))).expect("skipped");
        assert!(why.contains("password hash cost refused"), "{why}");
    }
    assert_eq!(app.storage.count_users().await.unwrap(), 1);
    app.login("fine", "flask-password").await;
}

/// A Flask-SQLAlchemy app's database: a `user` table with `password_hash`, named by a
/// SQLAlchemy URI relative to where the command runs; the real CLI imports it, prints
/// progress lines off a terminal, and names the file when something is wrong.
#[tokio::test]
async fn flask_sqlalchemy_databases_import_through_the_cli() {
    let app = TestApp::spawn().await;
    let work = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", work.path().join("site.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE user (id INTEGER PRIMARY KEY, username VARCHAR(80) UNIQUE NOT NULL, \
         email VARCHAR(120), password_hash VARCHAR(256))",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let werkzeug =
        "pbkdf2:sha256:1000$zcELMtBtnSQvnAe7$932c8f3b3ec0fc618d76ca8e766544e367687d08f1498ed0f097d6bcc8dbbf2b";
    sqlx::query("INSERT INTO user (username, email, password_hash) VALUES ('flasky', 'f@example.com', ?1)")
        .bind(werkzeug)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("CREATE TABLE accounts (login TEXT, secret TEXT)").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO accounts VALUES ('renamed', 'renamed-password')").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();

    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_gatepass"));
        cmd.current_dir(work.path())
            .arg("import")
            .args(args)
            .args(["--data-dir", app.data_dir().to_str().unwrap(), "--jwt-secret", crate::common::SECRET])
            .args(["--argon2-memory-kib", "1024", "--argon2-iterations", "1"])
            .env_remove("GATEPASS_DATABASE_URL")
            .env("GATEPASS_LOG", "warn");
        if let Some(db) = &app.db {
            cmd.args(["--database-url", &db.url, "--master-key", crate::common::MASTER_KEY]);
        }
        cmd.output().expect("gatepass runs")
    };
    let out = run(&["--from", "sqlite:///site.db"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("read 1 rows; imported 1; skipped 0"), "{stdout}");
    assert!(stderr.contains("progress: 1/1 rows"), "progress off a terminal: {stderr}");
    let r = app.post("/api/login", json!({"username": "flasky", "password": "flask-password"})).await;
    assert_eq!(r.status(), 200, "the werkzeug hash from password_hash works");

    // Any table and columns, by name.
    let named = ["--table", "accounts", "--username-column", "login", "--password-column", "secret"];
    let out = run(&[&["--from", "site.db"][..], &named[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        app.post("/api/login", json!({"username": "renamed", "password": "renamed-password"})).await.status(),
        200
    );

    // Errors name the file (absolute) and what was looked for.
    let site = std::path::absolute(work.path().join("site.db")).unwrap();
    let out = run(&["--from", "sqlite:///site.db", "--table", "people"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(&site.display().to_string()), "{stderr}");
    assert!(stderr.contains("no table \"people\"") && stderr.contains("accounts, user"), "{stderr}");
    let out = run(&["--from", "sqlite:///missing.db"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let missing = std::path::absolute(work.path().join("missing.db")).unwrap();
    assert!(stderr.contains(&format!("{}: no such file", missing.display())), "{stderr}");
}

#[test]
fn source_uris_name_the_right_file() {
    use gatepass::service::import::source_path;
    use std::path::PathBuf;
    assert_eq!(source_path("sqlite:///site.db"), PathBuf::from("site.db"));
    assert_eq!(source_path("sqlite:////srv/app/site.db"), PathBuf::from("/srv/app/site.db"));
    assert_eq!(source_path("sqlite:seed.db"), PathBuf::from("seed.db"));
    assert_eq!(source_path("sqlite://seed.db"), PathBuf::from("seed.db"));
    assert_eq!(source_path("/tmp/x.db"), PathBuf::from("/tmp/x.db"));
}
