//! Queries that are the same on SQLite and PostgreSQL, written once and generic over the
//! sqlx database.
//!
//! SQL here uses numbered `$n` placeholders: PostgreSQL's own form, and one SQLite accepts
//! as well (sqlx binds SQLite's `$n` by its number, exactly like `?n`). What really differs
//! between the backends stays in their modules: how a write transaction takes its locks,
//! dialect functions (`MAX` / `GREATEST`, `substr` / `starts_with`), collations, array
//! parameters, and the SQLite rotation batching.

use std::marker::PhantomData;

use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Type};

use super::audit::{AuditAnchor, AuditEntry, AuditEvent, AuditKey, AuditQuery, GENESIS_HASH};
use super::console::UserSearch;
use super::keys::KeyRevocation;
use super::mail::{EmailConfirmed, OneTimeToken, OutboxMail, TokenPurpose};
use super::revocation_feed::{FeedEntry, FeedItem};
use super::rows::{KeyRow, MailRow, SessionRow, TokenRow, UserRow};
use super::{
    REVOCATION_MARGIN_SECS, RevokedSession, SessionFilter, SessionRecord, StorageError, StorageResult, UserPatch,
    reason_from_str, reason_to_str,
};
use crate::domain::{Revocation, Roles, StoredKey, User, UserId};

/// How a signing key's revocation is keyed in the `revocations` table (migration 0009).
const KEY_PREFIX: &str = "key:";

/// A database gatepass stores in, with its own reading of driver errors.
pub(super) trait Backend: Database {
    /// Classifies a driver error; which conditions mean "unavailable" depends on the backend.
    fn map_err(e: sqlx::Error) -> StorageError;
    /// Rows a statement changed (sqlx has no common trait for query results).
    fn rows_affected(r: &Self::QueryResult) -> u64;
}

/// The dialect pieces of [`Shared::search_users`]: boolean SQL expressions over `$1`
/// (name prefix), `$2` (address prefix) and `$3` (role), and the `ORDER BY` list.
pub(super) struct SearchDialect {
    /// Whether `username_canonical` starts with `$1`.
    pub name_prefix: &'static str,
    /// Whether `email_canonical` starts with `$2`.
    pub email_prefix: &'static str,
    /// Whether the comma-separated `roles` column holds `$3`.
    pub role: &'static str,
    /// The listing order.
    pub order: &'static str,
}

/// The statement of `ConsoleStore::audit_hourly` for `n` event names (`$2`…), counting
/// from `$1`; the same on both databases, run by each backend on its own pool.
pub(super) fn audit_hourly_sql(n: usize) -> String {
    let list: Vec<String> = (0..n).map(|i| format!("${}", i + 2)).collect();
    format!(
        "SELECT event, (at - $1) / 3600 AS hour, COUNT(*) AS count FROM audit_log \
         WHERE at >= $1 AND event IN ({}) GROUP BY 1, 2 ORDER BY 1, 2",
        list.join(", ")
    )
}

/// The transaction type of a backend.
pub(super) type Tx<DB> = sqlx::Transaction<'static, DB>;

/// A query of `DB` with its arguments, as `sqlx::query` builds it.
pub(super) type Query<DB> = sqlx::query::Query<'static, DB, <DB as Database>::Arguments>;

const INSERT_USER: &str = "INSERT INTO users (id, username, username_canonical, email, password_hash, \
     roles, disabled, created_at, updated_at, email_canonical, email_verified) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)";
const USER_SELECT: &str =
    "SELECT id, username, email, email_verified, password_hash, roles, disabled, created_at FROM users";
const SET_PASSWORD_HASH: &str = "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3";
const UPDATE_USER: &str = "UPDATE users SET \
       roles = COALESCE($1, roles), \
       disabled = COALESCE($2, disabled), \
       email = CASE WHEN $3 THEN $4 ELSE email END, \
       email_canonical = CASE WHEN $3 THEN $7 ELSE email_canonical END, \
       email_verified = CASE WHEN $3 THEN FALSE ELSE email_verified END, \
       updated_at = $5 \
     WHERE id = $6";
const TOKEN_COLUMNS: &str = "token_hash, purpose, user_id, email, created_at, expires_at";
const MAIL_COLUMNS: &str = "id, kind, recipient, subject, text_body, html_body, created_at, attempts";
const INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, \
     auth_time, access_expires_at, user_agent, ip, amr, client_id, scope, resource) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
const SESSION_SELECT: &str = "SELECT id, user_id, created_at, last_used_at, expires_at, auth_time, \
     access_expires_at, user_agent, ip, revoked_at, amr, client_id, scope, resource FROM sessions";
const INSERT_REVOCATION: &str = "INSERT INTO revocations (session_id, until, reason) VALUES ($1, $2, $3) \
     ON CONFLICT (session_id) DO UPDATE SET until = excluded.until, reason = excluded.reason";
const PURGE: [&str; 4] = [
    "DELETE FROM revocations WHERE until <= $1",
    "DELETE FROM login_failures WHERE expires_at <= $1",
    "DELETE FROM refresh_tokens WHERE expires_at <= $1",
    // A session row is kept while its revocation matters or it is still live.
    "DELETE FROM sessions WHERE (expires_at <= $1 OR revoked_at IS NOT NULL) AND access_expires_at + 60 <= $1",
];
const AUDIT_COLUMNS: &str = "id, at, event, actor, subject, ip, user_agent, outcome, detail, prev_hash, hash";

/// Queries shared by both backends; `Shared::<Sqlite>` and `Shared::<Postgres>` are the
/// two instances. The bounds say which Rust types each database must bind and decode.
pub(super) struct Shared<DB>(PhantomData<DB>);

impl<DB> Shared<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> Option<bool>: Encode<'a, DB> + Type<DB>,
    for<'r> UserRow: FromRow<'r, DB::Row>,
    for<'r> SessionRow: FromRow<'r, DB::Row>,
    for<'r> AuditEntry: FromRow<'r, DB::Row>,
    for<'r> AuditAnchor: FromRow<'r, DB::Row>,
    for<'r> KeyRow: FromRow<'r, DB::Row>,
    for<'r> MailRow: FromRow<'r, DB::Row>,
    for<'r> TokenRow: FromRow<'r, DB::Row>,
    for<'r> (String, Option<String>): FromRow<'r, DB::Row>,
    for<'r> (Option<String>,): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Option<i64>,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> (String, String): FromRow<'r, DB::Row>,
    for<'r> (String, i64, String): FromRow<'r, DB::Row>,
    for<'r> (i64, String, i64, String, String): FromRow<'r, DB::Row>,
{
    pub(super) async fn insert_user<'c>(ex: impl Executor<'c, Database = DB>, user: &User) -> StorageResult<()> {
        sqlx::query::<DB>(INSERT_USER)
            .bind(user.id.as_str())
            .bind(user.username.as_str())
            .bind(user.username.canonical())
            .bind(user.email.as_ref().map(|e| e.as_str()))
            .bind(user.password_hash.as_str())
            .bind(user.roles.to_stored())
            .bind(user.disabled)
            .bind(user.created_at)
            .bind(user.email.as_ref().map(|e| e.canonical()))
            .bind(user.email_verified)
            .execute(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(())
    }

    /// The user whose `column` (`id` or `username_canonical`) equals `key`.
    pub(super) async fn user_where<'c>(
        ex: impl Executor<'c, Database = DB>,
        column: &'static str,
        key: &str,
    ) -> StorageResult<Option<User>> {
        Self::user_where_locked(ex, column, key, "").await
    }

    /// As [`Self::user_where`], with `lock` appended to the query (` FOR UPDATE` on
    /// PostgreSQL; empty where the database lock is held).
    pub(super) async fn user_where_locked<'c>(
        ex: impl Executor<'c, Database = DB>,
        column: &'static str,
        key: &str,
        lock: &'static str,
    ) -> StorageResult<Option<User>> {
        let sql = format!("{USER_SELECT} WHERE {column} = $1{lock}");
        sqlx::query_as::<DB, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)?
            .map(UserRow::into_user)
            .transpose()
    }

    /// Users matching `filter` (which may use the name prefix as `$1`, `NULL` for none),
    /// paged by `$2` (limit) and `$3` (offset); prefix matching and ordering are dialect.
    pub(super) async fn list_users<'c>(
        ex: impl Executor<'c, Database = DB>,
        filter: &'static str,
        prefix: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> StorageResult<Vec<User>> {
        let sql = format!("{USER_SELECT} {filter}");
        let rows = sqlx::query_as::<DB, UserRow>(sqlx::AssertSqlSafe(sql))
            .bind(prefix.map(str::to_ascii_lowercase))
            .bind(limit)
            .bind(offset)
            .fetch_all(ex)
            .await
            .map_err(DB::map_err)?;
        rows.into_iter().map(UserRow::into_user).collect()
    }

    pub(super) async fn count_users<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<i64> {
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM users").fetch_one(ex).await.map_err(DB::map_err)
    }

    /// The console's account search: `d` supplies the dialect's prefix, role and ordering
    /// expressions; the filters are bound as `$1` (name prefix), `$2` (address prefix),
    /// `$3` (role), `$4` (disabled) and `$5` (unverified only). Two statements, one page
    /// and its count; both read committed rows only, so a page may lag a concurrent change.
    pub(super) async fn search_users<'c, E: Executor<'c, Database = DB> + Copy>(
        pool: E,
        d: &SearchDialect,
        s: &UserSearch,
    ) -> StorageResult<(Vec<User>, i64)> {
        let filter = format!(
            "WHERE ((CAST($1 AS TEXT) IS NULL AND CAST($2 AS TEXT) IS NULL) OR {name} OR {email}) \
               AND (CAST($3 AS TEXT) IS NULL OR {role}) \
               AND (CAST($4 AS BOOLEAN) IS NULL OR disabled = $4) \
               AND ($5 = FALSE OR (email IS NOT NULL AND email_verified = FALSE))",
            name = d.name_prefix,
            email = d.email_prefix,
            role = d.role,
        );
        let page_sql = format!("{USER_SELECT} {filter} ORDER BY {} LIMIT $6 OFFSET $7", d.order);
        let rows = sqlx::query_as::<DB, UserRow>(sqlx::AssertSqlSafe(page_sql))
            .bind(s.name_prefix.as_deref())
            .bind(s.email_prefix.as_deref())
            .bind(s.role.as_deref())
            .bind(s.disabled)
            .bind(s.unverified)
            .bind(s.limit)
            .bind(s.offset)
            .fetch_all(pool)
            .await
            .map_err(DB::map_err)?;
        let users = rows.into_iter().map(UserRow::into_user).collect::<StorageResult<Vec<_>>>()?;
        let count_sql = format!("SELECT COUNT(*) FROM users {filter}");
        let total = sqlx::query_scalar::<DB, i64>(sqlx::AssertSqlSafe(count_sql))
            .bind(s.name_prefix.as_deref())
            .bind(s.email_prefix.as_deref())
            .bind(s.role.as_deref())
            .bind(s.disabled)
            .bind(s.unverified)
            .fetch_one(pool)
            .await
            .map_err(DB::map_err)?;
        Ok((users, total))
    }

    pub(super) async fn set_password_hash<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &UserId,
        hash: &str,
        now: i64,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(SET_PASSWORD_HASH)
            .bind(hash)
            .bind(now)
            .bind(id.as_str())
            .execute(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn update_user<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &UserId,
        patch: &UserPatch,
        now: i64,
    ) -> StorageResult<bool> {
        let email = patch.email.as_ref().map(|e| e.as_ref().map(|e| e.as_str().to_owned()));
        let canonical = patch.email.as_ref().and_then(|e| e.as_ref().map(|e| e.canonical()));
        let r = sqlx::query::<DB>(UPDATE_USER)
            .bind(patch.roles.as_ref().map(Roles::to_stored))
            .bind(patch.disabled)
            .bind(email.is_some())
            .bind(email.flatten())
            .bind(now)
            .bind(id.as_str())
            .bind(canonical)
            .execute(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Deletes a user inside `tx`, after revoking every session whose access tokens may
    /// still be valid; `None` (and nothing to commit) when there is no such user. The
    /// caller's transaction must already exclude concurrent logins of this user.
    pub(super) async fn delete_user_in_tx(
        tx: &mut Tx<DB>,
        id: &UserId,
        now: i64,
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        // Every session, live or not: an access token may outlive a refresh-ended session.
        sqlx::query::<DB>("UPDATE sessions SET revoked_at = NULL WHERE user_id = $1 AND access_expires_at > $2")
            .bind(id.as_str())
            .bind(now - REVOCATION_MARGIN_SECS)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        let revoked = Self::revoke_in_tx(tx, id.as_str(), SessionFilter::All, now, Revocation::UserDeleted).await?;
        let r = sqlx::query::<DB>("DELETE FROM users WHERE id = $1")
            .bind(id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        Ok((DB::rows_affected(&r) > 0).then_some(revoked))
    }

    /// Inserts a session and its first refresh token inside `tx`.
    /// [`super::Storage::replace_password`] inside `tx`, which the caller begins (with the
    /// backend's write lock) and commits only on `Some`.
    pub(super) async fn replace_password_in_tx(
        tx: &mut Tx<DB>,
        req: &super::PasswordReplace<'_>,
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        // Compare-and-swap: of racing changes from one current password, one matches. On
        // PostgreSQL a loser waits for the winner's row lock and then re-checks the hash.
        // A new session needs an enabled account; the row stays locked until commit, so a
        // concurrent disable waits and then ends that session too.
        let r = sqlx::query::<DB>(
            "UPDATE users SET password_hash = $1, updated_at = $2 \
             WHERE id = $3 AND (CAST($4 AS TEXT) IS NULL OR password_hash = $4) \
             AND (CAST($5 AS TEXT) IS NULL OR (NOT disabled AND roles = $5))",
        )
        .bind(req.new_hash)
        .bind(req.now)
        .bind(req.user_id.as_str())
        .bind(req.expected_hash)
        .bind(req.new_session.map(|n| n.roles.to_stored()))
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        if DB::rows_affected(&r) != 1 {
            return Ok(None);
        }
        let revoked =
            Self::revoke_in_tx(tx, req.user_id.as_str(), SessionFilter::All, req.now, Revocation::Revoked).await?;
        if let Some(new) = req.new_session {
            Self::insert_session(tx, new.record, new.refresh_hash, new.refresh_expires_at).await?;
        }
        Self::insert_mails(tx, req.mails).await?;
        Ok(Some(revoked))
    }

    /// [`super::Storage::create_session`] inside `tx`, which the caller commits only on
    /// `Some`. `owner_lock` ends the owner query: PostgreSQL's `FOR SHARE` holds the row
    /// against a concurrent disable or role change until commit; SQLite's write lock
    /// already does. The owner's row is locked before the replaced session's, the order an
    /// account disable takes too (user row, then its sessions), so the two cannot deadlock.
    pub(super) async fn create_session_in_tx(
        tx: &mut Tx<DB>,
        new: &super::NewSession<'_>,
        owner_lock: &str,
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        let sql =
            format!("SELECT CAST(1 AS BIGINT) FROM users WHERE id = $1 AND NOT disabled AND roles = $2 {owner_lock}");
        let owner = sqlx::query_scalar::<DB, i64>(sqlx::AssertSqlSafe(sql))
            .bind(new.record.user_id.as_str())
            .bind(new.roles.to_stored())
            .fetch_optional(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        if owner.is_none() {
            return Ok(None);
        }
        Self::insert_session(tx, new.record, new.refresh_hash, new.refresh_expires_at).await?;
        let Some(old) = new.replaces else { return Ok(Some(Vec::new())) };
        let ended =
            Self::revoke_in_tx(tx, old.user_id, SessionFilter::One(old.sid), old.now, Revocation::Revoked).await?;
        if old.must_be_live && ended.is_empty() {
            return Ok(None);
        }
        Ok(Some(ended))
    }

    pub(super) async fn insert_session(
        tx: &mut Tx<DB>,
        s: &SessionRecord,
        refresh_hash: &str,
        refresh_expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query::<DB>(INSERT_SESSION)
            .bind(s.id.as_str())
            .bind(s.user_id.as_str())
            .bind(s.created_at)
            .bind(s.last_used_at)
            .bind(s.expires_at)
            .bind(s.auth_time)
            .bind(s.access_expires_at)
            .bind(s.user_agent.as_deref())
            .bind(s.ip.as_deref())
            .bind(s.amr.join(" "))
            .bind(s.client_id.as_deref())
            .bind(s.scope.as_deref())
            .bind(s.resource.as_deref())
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        Self::insert_refresh(&mut **tx, refresh_hash, &s.id, s.created_at, refresh_expires_at).await
    }

    /// Inserts a refresh token of session `sid`.
    pub(super) async fn insert_refresh<'c>(
        ex: impl Executor<'c, Database = DB>,
        token_hash: &str,
        sid: &str,
        created_at: i64,
        expires_at: i64,
    ) -> StorageResult<()> {
        sqlx::query::<DB>(INSERT_REFRESH)
            .bind(token_hash)
            .bind(sid)
            .bind(created_at)
            .bind(expires_at)
            .execute(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn session<'c>(
        ex: impl Executor<'c, Database = DB>,
        sid: &str,
    ) -> StorageResult<Option<SessionRecord>> {
        let sql = format!("{SESSION_SELECT} WHERE id = $1");
        Ok(sqlx::query_as::<DB, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(sid)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)?
            .map(Into::into))
    }

    /// A user's live sessions in `order` (newest first; how ids compare bytewise is dialect).
    pub(super) async fn live_sessions<'c>(
        ex: impl Executor<'c, Database = DB>,
        order: &'static str,
        user_id: &str,
        now: i64,
    ) -> StorageResult<Vec<SessionRecord>> {
        let sql =
            format!("{SESSION_SELECT} WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY {order}");
        let rows = sqlx::query_as::<DB, SessionRow>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(now)
            .fetch_all(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub(super) async fn count_live_sessions<'c>(ex: impl Executor<'c, Database = DB>, now: i64) -> StorageResult<i64> {
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1")
            .bind(now)
            .fetch_one(ex)
            .await
            .map_err(DB::map_err)
    }

    /// Persists the revocation of session `sid` until `until`, inside `tx`.
    pub(super) async fn insert_revocation(
        tx: &mut Tx<DB>,
        sid: &str,
        until: i64,
        reason: Revocation,
    ) -> StorageResult<()> {
        sqlx::query::<DB>(INSERT_REVOCATION)
            .bind(sid)
            .bind(until)
            .bind(reason_to_str(reason))
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        Ok(())
    }

    /// Marks the selected live sessions revoked and persists their revocations, inside `tx`.
    pub(super) async fn revoke_in_tx(
        tx: &mut Tx<DB>,
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
        let mut q = sqlx::query_as::<DB, (String, i64)>(sql).bind(now).bind(user_id);
        if let Some(sid) = sid {
            q = q.bind(sid);
        }
        let rows = q.fetch_all(&mut **tx).await.map_err(DB::map_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for (sid, access_exp) in rows {
            let until = access_exp + REVOCATION_MARGIN_SECS;
            sqlx::query::<DB>(INSERT_REVOCATION)
                .bind(sid.as_str())
                .bind(until)
                .bind(reason_to_str(reason))
                .execute(&mut **tx)
                .await
                .map_err(DB::map_err)?;
            out.push(RevokedSession { sid, until, reason });
        }
        Ok(out)
    }

    pub(super) async fn live_revocations<'c>(
        ex: impl Executor<'c, Database = DB>,
        now: i64,
    ) -> StorageResult<Vec<RevokedSession>> {
        let rows = sqlx::query_as::<DB, (String, i64, String)>(
            "SELECT session_id, until, reason FROM revocations WHERE until > $1 AND kind = 'session'",
        )
        .bind(now)
        .fetch_all(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(rows
            .into_iter()
            .map(|(sid, until, reason)| RevokedSession { sid, until, reason: reason_from_str(&reason) })
            .collect())
    }

    /// The revocation log after `after` (see [`super::RevocationFeed::revocation_log`]).
    pub(super) async fn revocation_log<'c>(
        ex: impl Executor<'c, Database = DB>,
        after: i64,
        now: i64,
        limit: i64,
    ) -> StorageResult<Vec<FeedEntry>> {
        let rows = sqlx::query_as::<DB, (i64, String, i64, String, String)>(
            "SELECT seq, session_id, until, reason, kind FROM revocations \
             WHERE seq > $1 AND until > $2 ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(now)
        .bind(limit)
        .fetch_all(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, id, until, reason, kind)| {
                let item = match kind.as_str() {
                    "session" => FeedItem::Session(RevokedSession { sid: id, until, reason: reason_from_str(&reason) }),
                    "key" => FeedItem::Key { kid: id.strip_prefix(KEY_PREFIX)?.to_owned(), until },
                    // A kind a newer version wrote: not ours to announce.
                    _ => return None,
                };
                Some(FeedEntry { seq, item })
            })
            .collect())
    }

    /// The largest committed `seq` still stored.
    pub(super) async fn revocation_log_head<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<i64> {
        sqlx::query_scalar::<DB, i64>("SELECT COALESCE(MAX(seq), 0) FROM revocations")
            .fetch_one(ex)
            .await
            .map_err(DB::map_err)
    }

    /// Persists a signing key's revocation (a log entry of kind `key`).
    pub(super) async fn record_key_revocation<'c>(
        ex: impl Executor<'c, Database = DB>,
        kid: &str,
        until: i64,
    ) -> StorageResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO revocations (session_id, until, reason, kind) VALUES ($1, $2, 'key_revoked', 'key') \
             ON CONFLICT (session_id) DO UPDATE SET until = excluded.until, reason = excluded.reason",
        )
        .bind(format!("{KEY_PREFIX}{kid}"))
        .bind(until)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    /// Deletes expired revocations, refresh tokens and sessions inside `tx`.
    pub(super) async fn purge_in_tx(tx: &mut Tx<DB>, now: i64) -> StorageResult<u64> {
        let mut n = 0;
        for sql in PURGE {
            let r = sqlx::query::<DB>(sql).bind(now).execute(&mut **tx).await.map_err(DB::map_err)?;
            n += DB::rows_affected(&r);
        }
        Ok(n)
    }

    /// Upserts runtime settings inside `tx`.
    pub(super) async fn put_settings_in_tx(tx: &mut Tx<DB>, values: &[(String, String)]) -> StorageResult<()> {
        for (k, v) in values {
            sqlx::query::<DB>(
                "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(k.as_str())
            .bind(v.as_str())
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        }
        Ok(())
    }

    pub(super) async fn failure_record<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
    ) -> StorageResult<Option<String>> {
        sqlx::query_scalar::<DB, String>("SELECT record FROM login_failures WHERE key = $1")
            .bind(key)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)
    }

    /// Compare-and-swap of one failure record, in one statement: an insert that yields to
    /// any existing row, or an update that applies only while the row holds `expected`.
    /// On PostgreSQL a concurrent update waits for the first one's row lock and then
    /// re-checks `record = $4` against the committed row, so exactly one of them applies.
    pub(super) async fn swap_failure_record<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &str,
        expected: Option<&str>,
        new: &str,
        expires_at: i64,
    ) -> StorageResult<bool> {
        let q = match expected {
            None => sqlx::query::<DB>(
                "INSERT INTO login_failures (key, record, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(new)
            .bind(expires_at),
            Some(expected) => sqlx::query::<DB>(
                "UPDATE login_failures SET record = $2, expires_at = $3 WHERE key = $1 AND record = $4",
            )
            .bind(key)
            .bind(new)
            .bind(expires_at)
            .bind(expected),
        };
        let r = q.execute(ex).await.map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn insert_signing_key<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &StoredKey,
    ) -> StorageResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, activates_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(key.public_jwk.as_str())
        .bind(key.private_key.as_str())
        .bind(key.created_at)
        .bind(key.activates_at)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn signing_keys<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<Vec<StoredKey>> {
        let rows = sqlx::query_as::<DB, KeyRow>(
            "SELECT kid, alg, public_jwk, private_key, created_at, activates_at, revoked_at FROM signing_keys",
        )
        .fetch_all(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(rows.into_iter().map(StoredKey::from).collect())
    }

    /// Revokes `kid` inside `tx` unless it is already revoked, adding `replacement` in the
    /// same transaction when it did (see [`KeyStore::revoke_signing_key`]).
    pub(super) async fn revoke_signing_key_in_tx(
        tx: &mut Tx<DB>,
        kid: &str,
        now: i64,
        replacement: Option<&StoredKey>,
        announce_until: i64,
    ) -> StorageResult<KeyRevocation> {
        // Compare-and-swap: of concurrent revocations of one key, exactly one changes the
        // row (and so adds the one replacement); the others read its time.
        let r = sqlx::query::<DB>("UPDATE signing_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(kid)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        if DB::rows_affected(&r) == 0 {
            let at = sqlx::query_as::<DB, (Option<i64>,)>("SELECT revoked_at FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&mut **tx)
                .await
                .map_err(DB::map_err)?;
            return match at {
                None => Ok(KeyRevocation::Unknown),
                Some((Some(at),)) => Ok(KeyRevocation::AlreadyRevoked { at }),
                Some((None,)) => Err(StorageError::Other("signing key neither revoked nor revocable".into())),
            };
        }
        if let Some(key) = replacement {
            Self::insert_signing_key(&mut **tx, key).await?;
        }
        Self::record_key_revocation(&mut **tx, kid, announce_until).await?;
        Ok(KeyRevocation::Revoked)
    }

    pub(super) async fn session_of_refresh_token<'c>(
        ex: impl Executor<'c, Database = DB>,
        token_hash: &str,
        now: i64,
    ) -> StorageResult<Option<(String, String)>> {
        sqlx::query_as::<DB, (String, String)>(
            "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
             WHERE r.token_hash = $1 AND r.expires_at > $2 AND s.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(ex)
        .await
        .map_err(DB::map_err)
    }

    /// The chain link of the entry that appends `event` at `at`: its id, the previous
    /// entry's link and its own ([`AuditKey::link`]). The position comes from `head` when
    /// known, else from the table (inside `tx`, which must keep other appends out); `head`
    /// moves to the new entry, so several appends in one transaction read the table only
    /// once.
    pub(super) async fn next_audit_link(
        tx: &mut Tx<DB>,
        key: &AuditKey,
        event: &AuditEvent,
        at: i64,
        head: &mut Option<(i64, String)>,
    ) -> StorageResult<(i64, String, String)> {
        let (last_id, prev_hash) = match head.take() {
            Some(h) => h,
            None => Self::last_audit_link(tx).await?,
        };
        let id = last_id + 1;
        let hash = key.link(id, at, event, &prev_hash);
        *head = Some((id, hash.clone()));
        Ok((id, prev_hash, hash))
    }

    /// Id and link of the last entry (`0` and [`GENESIS_HASH`] for an empty trail).
    async fn last_audit_link(tx: &mut Tx<DB>) -> StorageResult<(i64, String)> {
        Ok(sqlx::query_as::<DB, (i64, String)>("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await
            .map_err(DB::map_err)?
            .unwrap_or((0, GENESIS_HASH.to_owned())))
    }

    /// Binds the audit columns after id (event … hash) to `q`, in table order.
    pub(super) fn bind_audit(q: Query<DB>, event: &AuditEvent, prev_hash: &str, hash: &str) -> Query<DB> {
        q.bind(event.event.as_str())
            .bind(event.actor.as_deref())
            .bind(event.subject.as_deref())
            .bind(event.ip.as_deref())
            .bind(event.user_agent.as_deref())
            .bind(event.outcome.as_str())
            .bind(event.detail.as_deref())
            .bind(prev_hash)
            .bind(hash)
    }

    /// Appends `event` inside `tx`, which must already keep other appends out (each
    /// backend takes its own lock for that).
    pub(super) async fn append_audit_in_tx(
        tx: &mut Tx<DB>,
        key: &AuditKey,
        event: &AuditEvent,
        at: i64,
    ) -> StorageResult<AuditEntry> {
        Self::append_audit_after(tx, key, event, at, &mut None).await
    }

    /// [`Self::append_audit_in_tx`] after `head` ([`Self::next_audit_link`]), for several
    /// appends in one transaction.
    pub(super) async fn append_audit_after(
        tx: &mut Tx<DB>,
        key: &AuditKey,
        event: &AuditEvent,
        at: i64,
        head: &mut Option<(i64, String)>,
    ) -> StorageResult<AuditEntry> {
        let (id, prev_hash, hash) = Self::next_audit_link(tx, key, event, at, head).await?;
        let q = sqlx::query::<DB>(
            "INSERT INTO audit_log (id, at, event, actor, subject, ip, user_agent, outcome, detail, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id)
        .bind(at);
        Self::bind_audit(q, event, &prev_hash, &hash).execute(&mut **tx).await.map_err(DB::map_err)?;
        Ok(AuditEntry { id, at, event: event.clone(), prev_hash, hash })
    }

    /// The anchor row, if it exists.
    pub(super) async fn audit_anchor<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<Option<AuditAnchor>> {
        sqlx::query_as::<DB, AuditAnchor>("SELECT keyed_from, prev_hash, sealed_at, seal FROM audit_chain WHERE id = 1")
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)
    }

    /// Seals the anchor inside `tx` if it is unsealed: the keyed chain starts after the
    /// last entry present. `tx` must keep appends out, so that no entry lands between
    /// reading the last link and sealing it.
    pub(super) async fn seal_audit_anchor_in_tx(
        tx: &mut Tx<DB>,
        key: &AuditKey,
        now: i64,
    ) -> StorageResult<Option<AuditAnchor>> {
        let Some(anchor) = Self::audit_anchor(&mut **tx).await? else { return Ok(None) };
        if anchor.seal.is_some() {
            return Ok(Some(anchor));
        }
        let (last_id, prev_hash) = Self::last_audit_link(tx).await?;
        let keyed_from = last_id + 1;
        let seal = key.seal(keyed_from, &prev_hash, now);
        sqlx::query::<DB>(
            "UPDATE audit_chain SET keyed_from = $1, prev_hash = $2, sealed_at = $3, seal = $4 \
             WHERE id = 1 AND seal IS NULL",
        )
        .bind(keyed_from)
        .bind(prev_hash.as_str())
        .bind(now)
        .bind(seal.as_str())
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(Some(AuditAnchor {
            keyed_from: Some(keyed_from),
            prev_hash: Some(prev_hash),
            sealed_at: Some(now),
            seal: Some(seal),
        }))
    }

    /// Audit entries matching `q`, newest first. The parameters are cast because
    /// PostgreSQL cannot type a parameter that is only compared with NULL; `CAST` is
    /// spelled the way both databases read.
    pub(super) async fn audit_entries<'c>(
        ex: impl Executor<'c, Database = DB>,
        q: &AuditQuery,
    ) -> StorageResult<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE \
               (CAST($1 AS TEXT) IS NULL OR actor = $1 OR subject = $1) \
               AND (CAST($2 AS TEXT) IS NULL OR event = $2) \
               AND (CAST($3 AS BIGINT) IS NULL OR at >= $3) \
               AND (CAST($4 AS BIGINT) IS NULL OR at <= $4) \
               AND (CAST($5 AS BIGINT) IS NULL OR id < $5) \
             ORDER BY id DESC LIMIT $6"
        );
        sqlx::query_as::<DB, AuditEntry>(sqlx::AssertSqlSafe(sql))
            .bind(q.user.as_deref())
            .bind(q.event.as_deref())
            .bind(q.from)
            .bind(q.to)
            .bind(q.before_id)
            .bind(q.limit)
            .fetch_all(ex)
            .await
            .map_err(DB::map_err)
    }

    /// Audit entries after `after_id`, oldest first.
    pub(super) async fn audit_chain<'c>(
        ex: impl Executor<'c, Database = DB>,
        after_id: i64,
        limit: i64,
    ) -> StorageResult<Vec<AuditEntry>> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2");
        sqlx::query_as::<DB, AuditEntry>(sqlx::AssertSqlSafe(sql))
            .bind(after_id)
            .bind(limit)
            .fetch_all(ex)
            .await
            .map_err(DB::map_err)
    }

    /// Queues `mails` inside `tx`.
    pub(super) async fn insert_mails(tx: &mut Tx<DB>, mails: &[OutboxMail]) -> StorageResult<()> {
        for m in mails {
            sqlx::query::<DB>(
                "INSERT INTO outbox (id, kind, recipient, subject, text_body, html_body, created_at, attempts, \
                 next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7)",
            )
            .bind(m.id.as_str())
            .bind(m.kind.as_str())
            .bind(m.recipient.as_str())
            .bind(m.subject.as_str())
            .bind(m.text_body.as_str())
            .bind(m.html_body.as_str())
            .bind(m.created_at)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        }
        Ok(())
    }

    /// Stores a one-time token inside `tx`; with `replace`, the account's unused tokens of
    /// the same purpose are used up first.
    pub(super) async fn insert_token(tx: &mut Tx<DB>, t: &OneTimeToken, replace: bool) -> StorageResult<()> {
        if replace {
            Self::void_tokens(tx, &t.user_id, t.purpose, t.created_at).await?;
        }
        sqlx::query::<DB>(
            "INSERT INTO one_time_tokens (token_hash, purpose, user_id, email, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.token_hash.as_str())
        .bind(t.purpose.as_str())
        .bind(t.user_id.as_str())
        .bind(t.email.as_deref())
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    /// Marks the account's unused tokens of `purpose` used.
    async fn void_tokens(tx: &mut Tx<DB>, user_id: &str, purpose: TokenPurpose, now: i64) -> StorageResult<()> {
        sqlx::query::<DB>(
            "UPDATE one_time_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(purpose.as_str())
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn tokens_issued_since<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        purpose: TokenPurpose,
        since: i64,
    ) -> StorageResult<i64> {
        sqlx::query_scalar::<DB, i64>(
            "SELECT COUNT(*) FROM one_time_tokens WHERE user_id = $1 AND purpose = $2 AND created_at >= $3",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(since)
        .fetch_one(ex)
        .await
        .map_err(DB::map_err)
    }

    pub(super) async fn peek_token<'c>(
        ex: impl Executor<'c, Database = DB>,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> StorageResult<Option<OneTimeToken>> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM one_time_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3"
        );
        let row = sqlx::query_as::<DB, TokenRow>(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .bind(purpose.as_str())
            .bind(now)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(row.and_then(TokenRow::into_token))
    }

    /// Uses the token inside `tx` (compare-and-swap on `used_at`): its owner and address,
    /// or `None` when it is not usable for `purpose` now.
    async fn consume_token(
        tx: &mut Tx<DB>,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> StorageResult<Option<(String, Option<String>)>> {
        sqlx::query_as::<DB, (String, Option<String>)>(
            "UPDATE one_time_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id, email",
        )
        .bind(now)
        .bind(token_hash)
        .bind(purpose.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(DB::map_err)
    }

    /// [`super::TokenStore::reset_password`] inside `tx`; commit only on `Some`.
    pub(super) async fn reset_password_in_tx(
        tx: &mut Tx<DB>,
        token_hash: &str,
        user_id: &crate::domain::UserId,
        new_hash: &str,
        now: i64,
        mails: &[OutboxMail],
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        match Self::consume_token(tx, token_hash, TokenPurpose::PasswordReset, now).await? {
            Some((owner, _)) if owner == user_id.as_str() => {}
            _ => return Ok(None),
        }
        Self::void_tokens(tx, user_id.as_str(), TokenPurpose::PasswordReset, now).await?;
        let req = super::PasswordReplace { user_id, expected_hash: None, new_hash, now, new_session: None, mails };
        Self::replace_password_in_tx(tx, &req).await
    }

    /// [`super::TokenStore::confirm_email`] inside `tx`; commit only on
    /// [`EmailConfirmed::Confirmed`].
    pub(super) async fn confirm_email_in_tx(
        tx: &mut Tx<DB>,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
        mails: &[OutboxMail],
    ) -> StorageResult<EmailConfirmed> {
        let Some((user_id, Some(email))) = Self::consume_token(tx, token_hash, purpose, now).await? else {
            return Ok(EmailConfirmed::Invalid);
        };
        let current: Option<Option<String>> =
            sqlx::query_scalar::<DB, Option<String>>("SELECT email FROM users WHERE id = $1")
                .bind(user_id.as_str())
                .fetch_optional(&mut **tx)
                .await
                .map_err(DB::map_err)?;
        let Some(previous) = current else { return Ok(EmailConfirmed::Invalid) };
        let canonical = email.to_ascii_lowercase();
        // A verification link proves the address it was sent to, and only while that is
        // still the account's address.
        if purpose == TokenPurpose::VerifyEmail
            && previous.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(canonical.as_str())
        {
            return Ok(EmailConfirmed::Invalid);
        }
        let r = sqlx::query::<DB>(
            "UPDATE users SET email = $1, email_canonical = $2, email_verified = TRUE, updated_at = $3 WHERE id = $4",
        )
        .bind(email.as_str())
        .bind(canonical.as_str())
        .bind(now)
        .bind(user_id.as_str())
        .execute(&mut **tx)
        .await;
        match r {
            Ok(_) => {}
            Err(e) => {
                return match DB::map_err(e) {
                    StorageError::Conflict => Ok(EmailConfirmed::AddressTaken),
                    other => Err(other),
                };
            }
        }
        Self::void_tokens(tx, &user_id, purpose, now).await?;
        Self::insert_mails(tx, mails).await?;
        Ok(EmailConfirmed::Confirmed { user_id, previous, email })
    }

    pub(super) async fn mark_email_verified<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &crate::domain::UserId,
        now: i64,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE users SET email_verified = TRUE, updated_at = $1 WHERE id = $2 AND email IS NOT NULL",
        )
        .bind(now)
        .bind(id.as_str())
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    /// Deletes tokens that can no longer be used, once they no longer count toward the
    /// hourly throttle.
    pub(super) async fn purge_tokens<'c>(ex: impl Executor<'c, Database = DB>, now: i64) -> StorageResult<u64> {
        let r = sqlx::query::<DB>(
            "DELETE FROM one_time_tokens WHERE created_at <= $1 - 3600 AND (used_at IS NOT NULL OR expires_at <= $1)",
        )
        .bind(now)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r))
    }

    /// Claims due mails; `lock` ends the inner selection (PostgreSQL's `FOR UPDATE SKIP
    /// LOCKED`, so concurrent claimers pass over each other's rows; SQLite's single writer
    /// needs nothing).
    pub(super) async fn claim_mails<'c>(
        ex: impl Executor<'c, Database = DB>,
        lock: &'static str,
        lease_id: &str,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> StorageResult<Vec<OutboxMail>> {
        let sql = format!(
            "UPDATE outbox SET lease_id = $1, lease_until = $2 \
             WHERE id IN (SELECT id FROM outbox WHERE failed_at IS NULL AND next_attempt_at <= $3 \
                          AND (lease_until IS NULL OR lease_until <= $3) ORDER BY created_at, id LIMIT $4 {lock}) \
             RETURNING {MAIL_COLUMNS}"
        );
        let mut rows = sqlx::query_as::<DB, MailRow>(sqlx::AssertSqlSafe(sql))
            .bind(lease_id)
            .bind(now + lease_secs)
            .bind(now)
            .bind(limit)
            .fetch_all(ex)
            .await
            .map_err(DB::map_err)?;
        rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub(super) async fn mail_sent<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        lease_id: &str,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>("DELETE FROM outbox WHERE id = $1 AND lease_id = $2")
            .bind(id)
            .bind(lease_id)
            .execute(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn mail_retry<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        lease_id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, \
             lease_id = NULL, lease_until = NULL WHERE id = $3 AND lease_id = $4",
        )
        .bind(next_attempt_at)
        .bind(error)
        .bind(id)
        .bind(lease_id)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn mail_failed<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        lease_id: &str,
        now: i64,
        error: &str,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE outbox SET attempts = attempts + 1, failed_at = $1, last_error = $2, text_body = '', \
             html_body = '', lease_id = NULL, lease_until = NULL WHERE id = $3 AND lease_id = $4",
        )
        .bind(now)
        .bind(error)
        .bind(id)
        .bind(lease_id)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn outbox_depth<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<i64> {
        sqlx::query_scalar::<DB, i64>("SELECT COUNT(*) FROM outbox WHERE failed_at IS NULL")
            .fetch_one(ex)
            .await
            .map_err(DB::map_err)
    }
}
