//! Throw-away PostgreSQL databases, one per test, so tests run in parallel without
//! seeing each other's rows. Created from `GATEPASS_TEST_POSTGRES_URL`, dropped (with
//! `FORCE`, ending lingering connections) when the guard goes out of scope, panics included.

use sqlx::{Connection, Executor, PgConnection};

/// Env var naming the server tests may create databases on.
pub const URL_ENV: &str = "GATEPASS_TEST_POSTGRES_URL";

/// The admin URL, or `None` after printing the skip notice.
pub fn admin_url() -> Option<String> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED: {URL_ENV} not set");
            None
        }
    }
}

/// `url` with its database name replaced by `db` (query string kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = base[authority_start..].find('/').map(|i| i + authority_start).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A fresh, empty database; dropped on drop.
pub struct TestDb {
    /// URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates `gp_test_<random>` on the server at `admin_url`. Panics (loudly) when the
    /// server cannot be reached: a configured but absent PostgreSQL is a test failure.
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("gp_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("{URL_ENV} is set but PostgreSQL is unreachable: {e}"));
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await.expect("create test database");
        let _ = conn.close().await;
        TestDb { url: with_database(admin_url, &name), name, admin_url: admin_url.to_owned() }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread
        // with its own small runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
