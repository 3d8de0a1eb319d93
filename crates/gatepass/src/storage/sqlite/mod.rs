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

use super::rows::{SessionRow, UserRow};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

use super::{
    REVOCATION_MARGIN_SECS, RevokedSession, RotateRequest, Rotation, SessionFilter, SessionRecord, Storage,
    StorageError, StorageResult, UserPatch, reason_from_str, reason_to_str,
};
use crate::domain::{Revocation, Roles, User, UserId};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

// Capability-sized impls of further storage traits live in sibling files of this module.
mod audit;
mod events;
mod keys;
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
    rotator: rotation::Rotator,
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
        Ok(Self { pool, rotator: rotation::Rotator::spawn(writer.clone()), writer })
    }
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

const USER_COLUMNS: &str = "id, username, email, password_hash, roles, disabled, created_at";
const SESSION_COLUMNS: &str =
    "id, user_id, created_at, last_used_at, expires_at, auth_time, access_expires_at, user_agent, ip, revoked_at";

type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Marks the selected live sessions revoked and persists their revocations, inside `tx`.
async fn revoke_in_tx(
    tx: &mut Tx,
    user_id: &str,
    filter: SessionFilter<'_>,
    now: i64,
    reason: Revocation,
) -> StorageResult<Vec<RevokedSession>> {
    let (sql, sid) = match filter {
        SessionFilter::One(sid) => (
            "UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL AND id = ?3 \
             RETURNING id, access_expires_at",
            Some(sid),
        ),
        SessionFilter::All => (
            "UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL \
             RETURNING id, access_expires_at",
            None,
        ),
        SessionFilter::AllExcept(sid) => (
            "UPDATE sessions SET revoked_at = ?1 WHERE user_id = ?2 AND revoked_at IS NULL AND id != ?3 \
             RETURNING id, access_expires_at",
            Some(sid),
        ),
    };
    let mut q = sqlx::query_as::<_, (String, i64)>(sql).bind(now).bind(user_id);
    if let Some(sid) = sid {
        q = q.bind(sid);
    }
    let rows = q.fetch_all(&mut **tx).await.map_err(map_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for (sid, access_exp) in rows {
        let until = access_exp + REVOCATION_MARGIN_SECS;
        sqlx::query(
            "INSERT INTO revocations (session_id, until, reason) VALUES (?1, ?2, ?3) \
             ON CONFLICT (session_id) DO UPDATE SET until = excluded.until, reason = excluded.reason",
        )
        .bind(&sid)
        .bind(until)
        .bind(reason_to_str(reason))
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
        out.push(RevokedSession { sid, until, reason });
    }
    Ok(out)
}

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
        sqlx::query(
            "INSERT INTO users (id, username, username_canonical, email, password_hash, roles, disabled, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        )
        .bind(user.id.as_str())
        .bind(user.username.as_str())
        .bind(user.username.canonical())
        .bind(user.email.as_ref().map(|e| e.as_str()))
        .bind(&user.password_hash)
        .bind(user.roles.to_stored())
        .bind(user.disabled)
        .bind(user.created_at)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn user_by_id(&self, id: &UserId) -> StorageResult<Option<User>> {
        let sql = const_format("SELECT ", USER_COLUMNS, " FROM users WHERE id = ?1");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn user_by_username(&self, canonical: &str) -> StorageResult<Option<User>> {
        let sql = const_format("SELECT ", USER_COLUMNS, " FROM users WHERE username_canonical = ?1");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(canonical)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn list_users(&self, prefix: Option<&str>, limit: i64, offset: i64) -> StorageResult<Vec<User>> {
        // The prefix is matched with substr(), not LIKE, so `%` and `_` in it mean themselves.
        let sql = const_format(
            "SELECT ",
            USER_COLUMNS,
            " FROM users WHERE (?1 IS NULL OR substr(username_canonical, 1, length(?1)) = ?1) \
             ORDER BY username_canonical LIMIT ?2 OFFSET ?3",
        );
        let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(prefix.map(str::to_ascii_lowercase))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    async fn count_users(&self) -> StorageResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await.map_err(map_err)
    }

    async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> StorageResult<bool> {
        let r = sqlx::query("UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3")
            .bind(hash)
            .bind(now)
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn update_user(&self, id: &UserId, patch: &UserPatch, now: i64) -> StorageResult<bool> {
        let email = patch.email.as_ref().map(|e| e.as_ref().map(|e| e.as_str().to_owned()));
        let r = sqlx::query(
            "UPDATE users SET \
               roles = COALESCE(?1, roles), \
               disabled = COALESCE(?2, disabled), \
               email = CASE WHEN ?3 THEN ?4 ELSE email END, \
               updated_at = ?5 \
             WHERE id = ?6",
        )
        .bind(patch.roles.as_ref().map(Roles::to_stored))
        .bind(patch.disabled)
        .bind(email.is_some())
        .bind(email.flatten())
        .bind(now)
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId, now: i64) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        // Every session, live or not: an access token may outlive a refresh-ended session.
        sqlx::query("UPDATE sessions SET revoked_at = NULL WHERE user_id = ?1 AND access_expires_at > ?2")
            .bind(id.as_str())
            .bind(now - REVOCATION_MARGIN_SECS)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let revoked = revoke_in_tx(&mut tx, id.as_str(), SessionFilter::All, now, Revocation::UserDeleted).await?;
        let r = sqlx::query("DELETE FROM users WHERE id = ?1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(revoked))
    }

    async fn create_session(
        &self,
        s: &SessionRecord,
        refresh_hash: &str,
        refresh_expires_at: i64,
    ) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, auth_time, access_expires_at, user_agent, ip) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at)
        .bind(s.auth_time)
        .bind(s.access_expires_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(refresh_hash)
        .bind(&s.id)
        .bind(s.created_at)
        .bind(refresh_expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn rotate_refresh(&self, req: RotateRequest<'_>) -> StorageResult<Rotation> {
        self.rotator.rotate(req).await
    }

    async fn note_access_issued(&self, sid: &str, exp: i64) -> StorageResult<()> {
        sqlx::query("UPDATE sessions SET access_expires_at = MAX(access_expires_at, ?1) WHERE id = ?2")
            .bind(exp)
            .bind(sid)
            .execute(&self.writer)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn session(&self, sid: &str) -> StorageResult<Option<SessionRecord>> {
        let sql = const_format("SELECT ", SESSION_COLUMNS, " FROM sessions WHERE id = ?1");
        Ok(sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(Into::into))
    }

    async fn live_sessions(&self, user_id: &str, now: i64) -> StorageResult<Vec<SessionRecord>> {
        let sql = const_format(
            "SELECT ",
            SESSION_COLUMNS,
            " FROM sessions WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2 \
             ORDER BY created_at DESC, id DESC",
        );
        let rows = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn count_live_sessions(&self, now: i64) -> StorageResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1")
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn revoke_sessions(
        &self,
        user_id: &str,
        filter: SessionFilter<'_>,
        now: i64,
    ) -> StorageResult<Vec<RevokedSession>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let revoked = revoke_in_tx(&mut tx, user_id, filter, now, Revocation::Revoked).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn live_revocations(&self, now: i64) -> StorageResult<Vec<RevokedSession>> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT session_id, until, reason FROM revocations WHERE until > ?1")
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|(sid, until, reason)| RevokedSession { sid, until, reason: reason_from_str(&reason) })
            .collect())
    }

    async fn purge_expired(&self, now: i64) -> StorageResult<u64> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let mut n = 0;
        for sql in [
            "DELETE FROM revocations WHERE until <= ?1",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?1",
            // A session row is kept while its revocation matters or it is still live.
            "DELETE FROM sessions WHERE (expires_at <= ?1 OR revoked_at IS NOT NULL) AND access_expires_at + 60 <= ?1",
        ] {
            n += sqlx::query(sql).bind(now).execute(&mut *tx).await.map_err(map_err)?.rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn settings(&self) -> StorageResult<Vec<(String, String)>> {
        sqlx::query_as("SELECT key, value FROM settings ORDER BY key").fetch_all(&self.pool).await.map_err(map_err)
    }

    async fn put_settings(&self, values: &[(String, String)]) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        for (k, v) in values {
            sqlx::query("INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
}

fn const_format(a: &str, b: &str, c: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len() + c.len());
    s.push_str(a);
    s.push_str(b);
    s.push_str(c);
    s
}
