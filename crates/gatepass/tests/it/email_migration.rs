//! Migration 0008 on a database that already holds accounts sharing an address (allowed
//! before it): the account that has had the address longest keeps it, the others lose it,
//! and every address starts unverified. Runs the migration scripts in order on SQLite and,
//! when `GATEPASS_TEST_POSTGRES_URL` is set, on PostgreSQL.

use crate::common::pg::{TestDb, admin_url};
use std::path::PathBuf;

/// The `backend`'s migration scripts before `version` (e.g. `"0008"`), in order, and that
/// migration itself.
pub(crate) fn scripts_until(backend: &str, version: &str) -> (Vec<String>, String) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations").join(backend);
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    let before = names.iter().filter(|p| name(p).as_str() < version).map(read).collect();
    let this = names.iter().find(|p| name(p).starts_with(&format!("{version}_"))).map(read).expect(version);
    (before, this)
}

fn scripts(backend: &str) -> (Vec<String>, String) {
    scripts_until(backend, "0008")
}

const USERS: &str = "INSERT INTO users (id, username, username_canonical, email, password_hash, created_at, updated_at) VALUES \
    ('00000000-0000-0000-0000-000000000003', 'c', 'c', 'Shared@Example.com', 'x', 30, 30), \
    ('00000000-0000-0000-0000-000000000001', 'a', 'a', 'shared@example.com', 'x', 10, 10), \
    ('00000000-0000-0000-0000-000000000002', 'b', 'b', 'SHARED@example.com', 'x', 20, 20), \
    ('00000000-0000-0000-0000-000000000004', 'd', 'd', 'own@example.com', 'x', 40, 40), \
    ('00000000-0000-0000-0000-000000000005', 'e', 'e', NULL, 'x', 50, 50)";

const CHECK: &str = "SELECT username, email, email_canonical FROM users ORDER BY username";

fn expected() -> Vec<(String, Option<String>, Option<String>)> {
    let s = |v: &str| Some(v.to_owned());
    vec![
        ("a".into(), s("shared@example.com"), s("shared@example.com")),
        ("b".into(), None, None),
        ("c".into(), None, None),
        ("d".into(), s("own@example.com"), s("own@example.com")),
        ("e".into(), None, None),
    ]
}

#[tokio::test]
async fn duplicate_addresses_stay_with_the_oldest_account_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (before, this) = scripts("sqlite");
    for sql in before {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    sqlx::raw_sql(USERS).execute(&pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(this)).execute(&pool).await.unwrap();
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(CHECK).fetch_all(&pool).await.unwrap();
    assert_eq!(rows, expected());
    let verified: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE email_verified").fetch_one(&pool).await.unwrap();
    assert_eq!(verified, 0);
}

#[tokio::test]
async fn duplicate_addresses_stay_with_the_oldest_account_on_postgres() {
    let Some(admin) = admin_url() else {
        eprintln!("SKIPPED email_migration postgres: GATEPASS_TEST_POSTGRES_URL is unset");
        return;
    };
    let db = TestDb::create(&admin).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let (before, this) = scripts("postgres");
    for sql in before {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    }
    sqlx::raw_sql(USERS).execute(&pool).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(this)).execute(&pool).await.unwrap();
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(CHECK).fetch_all(&pool).await.unwrap();
    assert_eq!(rows, expected());
    pool.close().await;
}
