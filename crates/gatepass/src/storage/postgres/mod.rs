//! PostgreSQL storage: for several gatepass instances sharing one database.
//!
//! Same semantics as the SQLite backend, method for method (the conformance suite in
//! `tests/it/storage_conformance.rs` runs against both). Concurrency comes from row locks
//! rather than a database-wide write lock: `rotate_refresh` locks the presented token's
//! row (`SELECT … FOR UPDATE`), so two instances presenting one token at once serialize
//! and the second sees the first's rotation; each instance commits its waiting rotations
//! in groups (`rotation.rs`). Connection-level failures map to
//! [`StorageError::Unavailable`] (503 with Retry-After); writes to `revocations` and
//! `settings` are announced to every instance by triggers (see `events.rs`).

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

use async_trait::async_trait;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// PostgreSQL-backed [`Storage`].
#[derive(Clone)]
pub struct PostgresStorage {
    pub(super) pool: PgPool,
    /// The key new audit entries are linked with.
    pub(super) audit_key: AppendKey,
    /// Refresh-token rotations, committed in groups.
    rotator: Rotator,
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
        let audit_key = AppendKey::default();
        let rotator = Rotator::spawn(rotation::Groups { pool: pool.clone(), audit_key: audit_key.clone() });
        Ok(Self { pool, audit_key, rotator })
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

/// Runs `delete` (`DELETE FROM … WHERE kid = ANY($1)`) once for all of `kids`: an array
/// parameter, which SQLite lacks.
async fn delete_keys(pool: &PgPool, delete: &'static str, kids: &[String]) -> StorageResult<u64> {
    let r = sqlx::query(delete).bind(kids).execute(pool).await.map_err(map_err)?;
    Ok(r.rows_affected())
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

impl Backend for Postgres {
    fn map_err(e: sqlx::Error) -> StorageError {
        map_err(e)
    }

    fn rows_affected(r: &Self::QueryResult) -> u64 {
        r.rows_affected()
    }
}

/// The queries both backends share, on PostgreSQL.
type Q = Shared<Postgres>;
type Tx = super::shared::Tx<Postgres>;

// PostgreSQL-only statements: GREATEST() (SQLite's MAX()).
/// Raises the access-token expiry of `sid` (and, given `used_at`, its last use) if the
/// session is not revoked; false when it is. `revoked_at IS NULL` sits in the same
/// statement: an UPDATE waits for a concurrent revocation's row lock and then re-checks the
/// row, so a token is never noted for a revoked session.
async fn note_live<'c>(
    ex: impl sqlx::Executor<'c, Database = Postgres>,
    sid: &str,
    exp: i64,
    used_at: Option<i64>,
) -> StorageResult<bool> {
    let r = sqlx::query(
        "UPDATE sessions SET last_used_at = COALESCE($1, last_used_at), \
         access_expires_at = GREATEST(access_expires_at, $2) WHERE id = $3 AND revoked_at IS NULL",
    )
    .bind(used_at)
    .bind(exp)
    .bind(sid)
    .execute(ex)
    .await
    .map_err(map_err)?;
    Ok(r.rows_affected() == 1)
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
        Q::insert_user(&self.pool, user).await
    }

    async fn user_by_id(&self, id: &UserId) -> StorageResult<Option<User>> {
        Q::user_where(&self.pool, "id", id.as_str()).await
    }

    async fn user_by_username(&self, canonical: &str) -> StorageResult<Option<User>> {
        Q::user_where(&self.pool, "username_canonical", canonical).await
    }

    async fn list_users(&self, prefix: Option<&str>, limit: i64, offset: i64) -> StorageResult<Vec<User>> {
        // Byte order ("C" collation) so the listing order matches SQLite's, whatever the
        // database's default collation is. starts_with() treats `%` and `_` literally.
        let filter = "WHERE ($1::text IS NULL OR starts_with(username_canonical, $1)) \
                      ORDER BY username_canonical COLLATE \"C\" LIMIT $2 OFFSET $3";
        Q::list_users(&self.pool, filter, prefix, limit, offset).await
    }

    async fn count_users(&self) -> StorageResult<i64> {
        Q::count_users(&self.pool).await
    }

    async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> StorageResult<bool> {
        Q::set_password_hash(&self.pool, id, hash, now).await
    }

    async fn replace_password(&self, req: PasswordReplace<'_>) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let out = Q::replace_password_in_tx(&mut tx, &req).await?;
        if out.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn update_user(&self, id: &UserId, patch: &UserPatch, now: i64) -> StorageResult<Option<User>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The row lock makes a concurrent update wait, so the state read here is the one
        // this update replaces.
        let Some(before) = Q::user_where_locked(&mut *tx, "id", id.as_str(), " FOR UPDATE").await? else {
            return Ok(None);
        };
        Q::update_user(&mut *tx, id, patch, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(before))
    }

    async fn delete_user(&self, id: &UserId, now: i64) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Lock the account first so a concurrent login cannot add a session that escapes
        // the revocation below (SQLite's database lock does this there).
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?;
        if exists.is_none() {
            return Ok(None);
        }
        let revoked = Q::delete_user_in_tx(&mut tx, id, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn create_session(&self, new: NewSession<'_>) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // A concurrent disable or role change (an UPDATE of the owner's row) waits for this
        // commit, and its revocation then sees this session; the replaced session's row
        // lock orders this against a concurrent logout of it.
        let out = Q::create_session_in_tx(&mut tx, &new, "FOR SHARE").await?;
        if out.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn rotate_refresh(&self, req: RotateRequest<'_>) -> StorageResult<Rotation> {
        self.rotator.rotate(req).await
    }

    async fn note_access_issued(&self, sid: &str, exp: i64) -> StorageResult<bool> {
        note_live(&self.pool, sid, exp, None).await
    }

    async fn session(&self, sid: &str) -> StorageResult<Option<SessionRecord>> {
        Q::session(&self.pool, sid).await
    }

    async fn live_sessions(&self, user_id: &str, now: i64) -> StorageResult<Vec<SessionRecord>> {
        // Byte order for ids, as SQLite compares them.
        Q::live_sessions(&self.pool, "created_at DESC, id COLLATE \"C\" DESC", user_id, now).await
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let revoked = Q::revoke_in_tx(&mut tx, user_id, filter, now, Revocation::Revoked).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(revoked)
    }

    async fn live_revocations(&self, now: i64) -> StorageResult<Vec<RevokedSession>> {
        Q::live_revocations(&self.pool, now).await
    }

    async fn purge_expired(&self, now: i64) -> StorageResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let n = Q::purge_in_tx(&mut tx, now).await?;
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
        Q::put_settings_in_tx(&mut tx, values).await?;
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
