//! PostgreSQL storage: for several gatepass instances sharing one database.
//!
//! Same semantics as the SQLite backend, method for method (the conformance suite in
//! `tests/storage_conformance.rs` runs against both). Concurrency comes from row locks
//! rather than a database-wide write lock: `rotate_refresh` locks the presented token's
//! row (`SELECT … FOR UPDATE`), so two instances presenting one token at once serialize
//! and the second sees the first's rotation. Connection-level failures map to
//! [`StorageError::Unavailable`] (503 with Retry-After); writes to `revocations` and
//! `settings` are announced to every instance by triggers (see `events.rs`).

mod audit;
mod events;
mod keys;
mod revocation_feed;

use async_trait::async_trait;

use super::rows::{SessionRow, UserRow};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

use super::{
    REVOCATION_MARGIN_SECS, RevokedSession, RotateRequest, Rotation, SessionFilter, SessionRecord, Storage,
    StorageError, StorageResult, UserPatch, reason_from_str, reason_to_str,
};
use crate::domain::{Revocation, Roles, User, UserId};
use crate::storage::audit::AuditEvent;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// PostgreSQL-backed [`Storage`].
#[derive(Clone)]
pub struct PostgresStorage {
    pub(super) pool: PgPool,
}

impl PostgresStorage {
    /// Connects to `url` (`postgres://…` or `postgresql://…`) and migrates the schema.
    ///
    /// Several instances may start at once: sqlx serializes migrations with an advisory lock.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("gatepass");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // While the database is down, a request waits at most this long before it is
            // answered 503; short enough that clients retry instead of piling up.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// The connection pool (tests and tooling).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// SQLSTATE classes meaning "the server is not there right now" rather than "your query
/// is wrong": connection exceptions (08), operator intervention such as shutdown (57P0x),
/// too many connections (53300).
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P") || code == "53300"
}

pub(super) fn map_err(e: sqlx::Error) -> StorageError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
        sqlx::Error::Database(db) if db.code().is_some_and(|c| is_unavailable_state(&c)) => {
            StorageError::Unavailable(e.to_string())
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StorageError::Unavailable(e.to_string()),
        _ => StorageError::Other(e.to_string()),
    }
}

const USER_SELECT: &str = "SELECT id, username, email, password_hash, roles, disabled, created_at FROM users";
const SESSION_SELECT: &str = "SELECT id, user_id, created_at, last_used_at, expires_at, auth_time, \
     access_expires_at, user_agent, ip, revoked_at FROM sessions";

const SQL_INSERT_USER: &str = "INSERT INTO users (id, username, username_canonical, email, password_hash, roles, \
     disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
// Byte order ("C" collation) so the listing order matches SQLite's, whatever the
// database's default collation is. starts_with() treats `%` and `_` literally.
const SQL_LIST_USERS: &str = "SELECT id, username, email, password_hash, roles, disabled, created_at FROM users \
     WHERE ($1::text IS NULL OR starts_with(username_canonical, $1)) \
     ORDER BY username_canonical COLLATE \"C\" LIMIT $2 OFFSET $3";
const SQL_UPDATE_USER: &str = "UPDATE users SET \
       roles = COALESCE($1, roles), \
       disabled = COALESCE($2, disabled), \
       email = CASE WHEN $3 THEN $4 ELSE email END, \
       updated_at = $5 \
     WHERE id = $6";
const SQL_UNREVOKE_FOR_DELETE: &str =
    "UPDATE sessions SET revoked_at = NULL WHERE user_id = $1 AND access_expires_at > $2";
const SQL_INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, \
     auth_time, access_expires_at, user_agent, ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const SQL_INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
const SQL_LOCK_REFRESH: &str =
    "SELECT session_id, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE";
const SQL_NOTE_ACCESS: &str = "UPDATE sessions SET access_expires_at = GREATEST(access_expires_at, $1) WHERE id = $2";
const SQL_SUCCESSOR_CURRENT: &str =
    "SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > $2";
const SQL_INSERT_REVOCATION: &str = "INSERT INTO revocations (session_id, until, reason) VALUES ($1, $2, $3) \
     ON CONFLICT (session_id) DO UPDATE SET until = excluded.until, reason = excluded.reason";
const SQL_PUT_SETTING: &str =
    "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const SQL_PURGE: [&str; 3] = [
    "DELETE FROM revocations WHERE until <= $1",
    "DELETE FROM refresh_tokens WHERE expires_at <= $1",
    // A session row is kept while its revocation matters or it is still live.
    "DELETE FROM sessions WHERE (expires_at <= $1 OR revoked_at IS NOT NULL) AND access_expires_at + 60 <= $1",
];

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

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
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id = $3 \
             RETURNING id, access_expires_at",
            Some(sid),
        ),
        SessionFilter::All => (
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
             RETURNING id, access_expires_at",
            None,
        ),
        SessionFilter::AllExcept(sid) => (
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3 \
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
        sqlx::query(SQL_INSERT_REVOCATION)
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
impl Storage for PostgresStorage {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StorageResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn insert_user(&self, user: &User) -> StorageResult<()> {
        sqlx::query(SQL_INSERT_USER)
            .bind(user.id.as_str())
            .bind(user.username.as_str())
            .bind(user.username.canonical())
            .bind(user.email.as_ref().map(|e| e.as_str()))
            .bind(&user.password_hash)
            .bind(user.roles.to_stored())
            .bind(user.disabled)
            .bind(user.created_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn user_by_id(&self, id: &UserId) -> StorageResult<Option<User>> {
        let sql = format!("{USER_SELECT} WHERE id = $1");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn user_by_username(&self, canonical: &str) -> StorageResult<Option<User>> {
        let sql = format!("{USER_SELECT} WHERE username_canonical = $1");
        sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(canonical)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    async fn list_users(&self, prefix: Option<&str>, limit: i64, offset: i64) -> StorageResult<Vec<User>> {
        let rows = sqlx::query_as::<_, UserRow>(SQL_LIST_USERS)
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
        let r = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn update_user(&self, id: &UserId, patch: &UserPatch, now: i64) -> StorageResult<bool> {
        let email = patch.email.as_ref().map(|e| e.as_ref().map(|e| e.as_str().to_owned()));
        let r = sqlx::query(SQL_UPDATE_USER)
            .bind(patch.roles.as_ref().map(Roles::to_stored))
            .bind(patch.disabled)
            .bind(email.is_some())
            .bind(email.flatten())
            .bind(now)
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn delete_user(&self, id: &UserId, now: i64) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Lock the account first so a concurrent login cannot add a session that escapes
        // the revocation below.
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Ok(None);
        }
        // Every session, live or not: an access token may outlive a refresh-ended session.
        sqlx::query(SQL_UNREVOKE_FOR_DELETE)
            .bind(id.as_str())
            .bind(now - REVOCATION_MARGIN_SECS)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let revoked = revoke_in_tx(&mut tx, id.as_str(), SessionFilter::All, now, Revocation::UserDeleted).await?;
        sqlx::query("DELETE FROM users WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(revoked))
    }

    async fn create_session(
        &self,
        s: &SessionRecord,
        refresh_hash: &str,
        refresh_expires_at: i64,
    ) -> StorageResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        sqlx::query(SQL_INSERT_SESSION)
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
        sqlx::query(SQL_INSERT_REFRESH)
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The row lock serializes every rotation of this token across instances; a waiter
        // re-reads the row after the holder commits and so sees `rotated_at` set.
        let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(SQL_LOCK_REFRESH)
            .bind(req.presented_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        let Some((sid, token_exp, rotated_at)) = row else { return Ok(Rotation::Invalid) };
        let sql = format!("{SESSION_SELECT} WHERE id = $1");
        let session: Option<SessionRecord> = sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(&sid)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
            .map(Into::into);
        let Some(session) = session else { return Ok(Rotation::Invalid) };
        if session.revoked_at.is_some() || session.expires_at <= req.now || token_exp <= req.now {
            return Ok(Rotation::Invalid);
        }

        let outcome = match rotated_at {
            None => {
                sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2")
                    .bind(req.now)
                    .bind(req.presented_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(SQL_INSERT_REFRESH)
                    .bind(req.successor_hash)
                    .bind(&sid)
                    .bind(req.now)
                    .bind((req.now + req.refresh_ttl_secs).min(session.expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "UPDATE sessions SET last_used_at = $1, access_expires_at = GREATEST(access_expires_at, $2) \
                     WHERE id = $3",
                )
                .bind(req.now)
                .bind(req.access_expires_at)
                .bind(&sid)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Rotation::Rotated(SessionRecord { last_used_at: req.now, ..session })
            }
            Some(at) => {
                let successor_current: Option<i32> = sqlx::query_scalar(SQL_SUCCESSOR_CURRENT)
                    .bind(req.successor_hash)
                    .bind(req.now)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if req.now - at <= req.grace_secs && successor_current.is_some() {
                    sqlx::query(SQL_NOTE_ACCESS)
                        .bind(req.access_expires_at)
                        .bind(&sid)
                        .execute(&mut *tx)
                        .await
                        .map_err(map_err)?;
                    Rotation::Replayed(session)
                } else {
                    let mut revoked =
                        revoke_in_tx(&mut tx, &session.user_id, SessionFilter::One(&sid), req.now, Revocation::Revoked)
                            .await?;
                    match revoked.pop() {
                        Some(r) => Rotation::Reused(r),
                        None => Rotation::Invalid,
                    }
                }
            }
        };
        // Locks are taken in one order, the token's row and then the audit table (other
        // appends take only the table), so this cannot deadlock with them.
        if let (Some(event), Rotation::Rotated(s) | Rotation::Replayed(s)) = (req.audit, &outcome) {
            let enabled: Option<bool> = sqlx::query_scalar("SELECT NOT disabled FROM users WHERE id = $1")
                .bind(&s.user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_err)?;
            if enabled == Some(true) {
                let event =
                    AuditEvent { actor: Some(s.user_id.clone()), subject: Some(s.user_id.clone()), ..event.clone() };
                audit::append_in_tx(&mut tx, &event, req.now).await?;
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn note_access_issued(&self, sid: &str, exp: i64) -> StorageResult<()> {
        sqlx::query(SQL_NOTE_ACCESS).bind(exp).bind(sid).execute(&self.pool).await.map_err(map_err)?;
        Ok(())
    }

    async fn session(&self, sid: &str) -> StorageResult<Option<SessionRecord>> {
        let sql = format!("{SESSION_SELECT} WHERE id = $1");
        Ok(sqlx::query_as::<_, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(sid)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(Into::into))
    }

    async fn live_sessions(&self, user_id: &str, now: i64) -> StorageResult<Vec<SessionRecord>> {
        let sql = format!(
            "{SESSION_SELECT} WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id COLLATE \"C\" DESC"
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
        sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1")
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let revoked = revoke_in_tx(&mut tx, user_id, filter, now, Revocation::Revoked).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn live_revocations(&self, now: i64) -> StorageResult<Vec<RevokedSession>> {
        let rows: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT session_id, until, reason FROM revocations WHERE until > $1")
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let mut n = 0;
        for sql in SQL_PURGE {
            n += sqlx::query(sql).bind(now).execute(&mut *tx).await.map_err(map_err)?.rows_affected();
        }
        tx.commit().await.map_err(map_err)?;
        Ok(n)
    }

    async fn settings(&self) -> StorageResult<Vec<(String, String)>> {
        sqlx::query_as("SELECT key, value FROM settings ORDER BY key COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn put_settings(&self, values: &[(String, String)]) -> StorageResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        for (k, v) in values {
            sqlx::query(SQL_PUT_SETTING).bind(k).bind(v).execute(&mut *tx).await.map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::is_unavailable_state;

    #[test]
    fn unavailable_states() {
        assert!(is_unavailable_state("08006"));
        assert!(is_unavailable_state("57P01"));
        assert!(is_unavailable_state("53300"));
        assert!(!is_unavailable_state("23505"));
        assert!(!is_unavailable_state("42P01"));
    }
}
