//! SQLite storage: the embedded default. WAL mode, foreign keys on, a busy timeout so the
//! CLI can write while the server runs, and `BEGIN IMMEDIATE` for multi-statement writes
//! so concurrent transactions queue instead of failing on lock upgrade.
//!
//! Reads and writes use separate pools. SQLite admits one writer at a time, and a writer
//! that finds the lock taken sleeps in the busy handler (1, 2, 5, … up to 100 ms) rather
//! than being woken when it frees; with several pooled connections writing, requests spent
//! most of their time in those sleeps. All of this process's writes therefore go through a
//! single connection, where they queue in the pool without sleeping; the busy timeout only
//! comes into play against other processes (the CLI) writing the same file, and the
//! database lock stays what serializes writers.

use async_trait::async_trait;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

use super::audit::AppendKey;
use super::rotation_group::Rotator;
use super::shared::{Backend, Shared};
use super::{
    NewSession, PasswordReplace, RevokedSession, RotateRequest, Rotation, SessionFilter, SessionRecord, Storage,
    StorageError, StorageResult, UserPatch,
};
use crate::domain::{Revocation, User, UserId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

// Capability-sized impls of further storage traits live in sibling files of this module.
mod audit;
mod console;
mod device;
mod events;
mod failures;
mod instances;
mod keys;
mod mail;
mod mfa;
mod oauth;
mod passkeys;
mod revocation_feed;
mod rotation;

/// SQLite-backed [`Storage`].
#[derive(Clone)]
pub struct SqliteStorage {
    /// Read-only work: any number of connections read concurrently in WAL mode.
    pub(super) pool: SqlitePool,
    /// Every write: one connection (see the module documentation).
    pub(super) writer: SqlitePool,
    /// Refresh-token rotations, committed in groups on `writer`.
    rotator: Rotator,
    /// The key new audit entries are linked with.
    pub(super) audit_key: AppendKey,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and migrates it.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode; only an OS crash can
            // lose the last transactions, never corrupt the database.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // An embedded connection cannot drop like a network one; pinging it before each use
        // would only add a round trip to its worker thread.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        let pool = SqlitePoolOptions::new().max_connections(8).test_before_acquire(false).connect_with(options).await?;
        let audit_key = AppendKey::default();
        let rotator = Rotator::spawn(rotation::Groups { writer: writer.clone(), audit_key: audit_key.clone() });
        Ok(Self { pool, rotator, writer, audit_key })
    }
}

/// Runs `delete` (`DELETE FROM … WHERE kid = ?`) for each of `kids`: SQLite has no array
/// parameters (PostgreSQL uses `ANY`).
async fn delete_keys(writer: &SqlitePool, delete: &'static str, kids: &[String]) -> StorageResult<u64> {
    let mut removed = 0;
    for kid in kids {
        removed += sqlx::query(delete).bind(kid).execute(writer).await.map_err(map_err)?.rows_affected();
    }
    Ok(removed)
}

fn map_err(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            StorageError::Unavailable(e.to_string())
        }
        _ => StorageError::Other(e.to_string()),
    }
}

impl Backend for Sqlite {
    fn map_err(e: sqlx::Error) -> StorageError {
        map_err(e)
    }

    fn rows_affected(r: &Self::QueryResult) -> u64 {
        r.rows_affected()
    }
}

/// The queries both backends share, on SQLite.
type Q = Shared<Sqlite>;
type Tx = super::shared::Tx<Sqlite>;

// Transactions here start with `BEGIN IMMEDIATE` on the writer: SQLite then takes the
// database write lock up front, where PostgreSQL relies on row and table locks.
#[async_trait]
impl Storage for SqliteStorage {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn insert_user(&self, user: &User) -> StorageResult<()> {
        Q::insert_user(&self.writer, user).await
    }

    async fn user_by_id(&self, id: &UserId) -> StorageResult<Option<User>> {
        Q::user_where(&self.pool, "id", id.as_str()).await
    }

    async fn user_by_username(&self, canonical: &str) -> StorageResult<Option<User>> {
        Q::user_where(&self.pool, "username_canonical", canonical).await
    }

    async fn list_users(&self, prefix: Option<&str>, limit: i64, offset: i64) -> StorageResult<Vec<User>> {
        // The prefix is matched with substr(), not LIKE, so `%` and `_` in it mean themselves;
        // TEXT compares bytewise (BINARY) by default.
        let filter = "WHERE ($1 IS NULL OR substr(username_canonical, 1, length($1)) = $1) \
                      ORDER BY username_canonical LIMIT $2 OFFSET $3";
        Q::list_users(&self.pool, filter, prefix, limit, offset).await
    }

    async fn count_users(&self) -> StorageResult<i64> {
        Q::count_users(&self.pool).await
    }

    async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> StorageResult<bool> {
        Q::set_password_hash(&self.writer, id, hash, now).await
    }

    async fn replace_password(&self, req: PasswordReplace<'_>) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::replace_password_in_tx(&mut tx, &req).await?;
        if out.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn update_user(&self, id: &UserId, patch: &UserPatch, now: i64) -> StorageResult<Option<User>> {
        // The write lock, taken first, keeps other writers out between the read and the write.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let Some(before) = Q::user_where(&mut *tx, "id", id.as_str()).await? else { return Ok(None) };
        Q::update_user(&mut *tx, id, patch, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(before))
    }

    async fn delete_user(&self, id: &UserId, now: i64) -> StorageResult<Option<Vec<RevokedSession>>> {
        // The write lock keeps logins of this user out until the commit.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let revoked = Q::delete_user_in_tx(&mut tx, id, now).await?;
        if revoked.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(revoked)
    }

    async fn create_session(&self, new: NewSession<'_>) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::create_session_in_tx(&mut tx, &new, "").await?;
        if out.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn rotate_refresh(&self, req: RotateRequest<'_>) -> StorageResult<Rotation> {
        self.rotator.rotate(req).await
    }

    async fn note_access_issued(&self, sid: &str, exp: i64) -> StorageResult<bool> {
        // SQLite's two-argument MAX() is PostgreSQL's GREATEST().
        let r = sqlx::query(
            "UPDATE sessions SET access_expires_at = MAX(access_expires_at, ?1) WHERE id = ?2 AND revoked_at IS NULL",
        )
        .bind(exp)
        .bind(sid)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn session(&self, sid: &str) -> StorageResult<Option<SessionRecord>> {
        Q::session(&self.pool, sid).await
    }

    async fn live_sessions(&self, user_id: &str, now: i64) -> StorageResult<Vec<SessionRecord>> {
        Q::live_sessions(&self.pool, "created_at DESC, id DESC", user_id, now).await
    }

    async fn count_live_sessions(&self, now: i64) -> StorageResult<i64> {
        Q::count_live_sessions(&self.pool, now).await
    }

    async fn revoke_sessions(
        &self,
        user_id: &str,
        filter: SessionFilter<'_>,
        now: i64,
    ) -> StorageResult<Vec<RevokedSession>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let revoked = Q::revoke_in_tx(&mut tx, user_id, filter, now, Revocation::Revoked).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn live_revocations(&self, now: i64) -> StorageResult<Vec<RevokedSession>> {
        Q::live_revocations(&self.pool, now).await
    }

    async fn purge_expired(&self, now: i64) -> StorageResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let n = Q::purge_in_tx(&mut tx, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn settings(&self) -> StorageResult<Vec<(String, String)>> {
        // Bytewise order is SQLite's default; PostgreSQL needs COLLATE "C".
        sqlx::query_as("SELECT key, value FROM settings ORDER BY key").fetch_all(&self.pool).await.map_err(map_err)
    }

    async fn put_settings(&self, values: &[(String, String)]) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::put_settings_in_tx(&mut tx, values).await?;
        tx.commit().await.map_err(map_err)
    }
}
