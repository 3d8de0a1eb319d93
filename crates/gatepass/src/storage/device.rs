//! Storage for the OAuth 2.0 Device Authorization Grant (RFC 8628, [`DeviceStore`]): the
//! device and user codes (digests only), the user's decision, the device's polls and the
//! redemption that issues the grant.
//!
//! As with authorization codes, every check-then-act is one compare-and-swap statement
//! inside one transaction: a code is decided once (approve and deny race, one wins) and
//! redeemed once (of any number of concurrent polls, one issues tokens).

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::oauth::ConsentRecord;
use super::shared::{Backend, Shared, Tx};
use super::{NewSession, StorageResult};

/// Waiting for the user.
pub const DEVICE_PENDING: &str = "pending";
/// The user approved; the next poll issues the grant.
pub const DEVICE_APPROVED: &str = "approved";
/// The user denied.
pub const DEVICE_DENIED: &str = "denied";
/// The grant was issued.
pub const DEVICE_USED: &str = "used";

/// A device authorization as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DeviceCode {
    /// Hex SHA-256 of the device code handed to the device.
    pub device_hash: String,
    /// Hex SHA-256 of the normalised user code (upper case, no dash).
    pub user_code_hash: String,
    /// The client that asked.
    pub client_id: String,
    /// The scopes asked for, sorted, space-separated.
    pub scope: String,
    /// The `resource` (RFC 8707) asked for.
    pub resource: Option<String>,
    /// Issued at.
    pub created_at: i64,
    /// Refused from this time on (`expired_token`).
    pub expires_at: i64,
    /// Seconds the device must wait between polls (grows by 5 with every `slow_down`).
    pub interval_secs: i64,
    /// The device's last poll while pending.
    pub last_poll_at: Option<i64>,
    /// [`DEVICE_PENDING`], [`DEVICE_APPROVED`], [`DEVICE_DENIED`] or [`DEVICE_USED`].
    pub status: String,
    /// The user who decided.
    pub user_id: Option<String>,
    /// The browser session that approved; the grant is refused once it has ended.
    pub browser_sid: Option<String>,
    /// When the approving user last authenticated.
    pub auth_time: Option<i64>,
    /// How (RFC 8176 values, space-separated).
    pub amr: Option<String>,
    /// When the user decided.
    pub decided_at: Option<i64>,
    /// When the grant was issued.
    pub used_at: Option<i64>,
    /// The grant (session id) issued.
    pub issued_sid: Option<String>,
}

/// The user's approval of a device code: who, from which sign-in.
#[derive(Debug, Clone, Copy)]
pub struct DeviceApproval<'a> {
    /// The user.
    pub user_id: &'a str,
    /// The browser session approving.
    pub browser_sid: &'a str,
    /// When that session authenticated.
    pub auth_time: i64,
    /// How (RFC 8176 values, space-separated).
    pub amr: &'a str,
}

/// What redeeming an approved device code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRedemption {
    /// The code was approved and unused: it is now used and the grant is stored.
    Issued,
    /// Not approved, already used, expired, the approving session has ended, or the
    /// account was disabled, deleted or changed roles: nothing was stored.
    Refused,
}

/// Device codes.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Stores a new device authorization (and drops those expired for an hour);
    /// [`super::StorageError::Conflict`] when the user code is taken (draw another).
    async fn insert_device_code(&self, code: &DeviceCode) -> StorageResult<()>;
    /// A device authorization by the digest of its device code.
    async fn device_code(&self, device_hash: &str) -> StorageResult<Option<DeviceCode>>;
    /// A device authorization by the digest of its normalised user code.
    async fn device_code_by_user_code(&self, user_code_hash: &str) -> StorageResult<Option<DeviceCode>>;
    /// Records a poll of a pending code if its last poll is still `seen_last_poll`
    /// (compare-and-swap), setting the interval to `interval_secs`; false, with nothing
    /// changed, when another poll came in between or the code is no longer pending.
    async fn record_device_poll(
        &self,
        device_hash: &str,
        seen_last_poll: Option<i64>,
        now: i64,
        interval_secs: i64,
    ) -> StorageResult<bool>;
    /// Decides a pending, unexpired code once (compare-and-swap): approves it for
    /// `approval` (remembering the user's consent to its scopes for the client, in the
    /// same transaction) or, with `None`, denies it for `user_id`. False, with nothing
    /// changed, when the code is unknown, expired or already decided.
    async fn decide_device_code(
        &self,
        user_code_hash: &str,
        user_id: &str,
        approval: Option<DeviceApproval<'_>>,
        now: i64,
    ) -> StorageResult<bool>;
    /// Redeems an approved code for `grant` in one transaction: marks it used
    /// (compare-and-swap), checks that the approving browser session is live, creates the
    /// grant's session (refused like [`super::Storage::create_session`]) and records it on
    /// the code.
    async fn redeem_device_code(
        &self,
        device_hash: &str,
        now: i64,
        grant: NewSession<'_>,
    ) -> StorageResult<DeviceRedemption>;
}

const DEVICE_SELECT: &str = "SELECT device_hash, user_code_hash, client_id, scope, resource, created_at, expires_at, \
     interval_secs, last_poll_at, status, user_id, browser_sid, auth_time, amr, decided_at, used_at, issued_sid \
     FROM oauth_device_codes";

/// The device queries both backends share; each backend opens the transaction its own way.
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
    for<'r> DeviceCode: FromRow<'r, DB::Row>,
    for<'r> super::oauth::ClientRow: FromRow<'r, DB::Row>,
    for<'r> super::oauth::AuthCode: FromRow<'r, DB::Row>,
    for<'r> ConsentRecord: FromRow<'r, DB::Row>,
    for<'r> super::rows::UserRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::SessionRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::KeyRow: FromRow<'r, DB::Row>,
    for<'r> super::audit::AuditEntry: FromRow<'r, DB::Row>,
    for<'r> super::audit::AuditAnchor: FromRow<'r, DB::Row>,
    for<'r> super::rows::MailRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::TokenRow: FromRow<'r, DB::Row>,
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
    pub(super) async fn insert_device_code_in_tx(tx: &mut Tx<DB>, c: &DeviceCode) -> StorageResult<()> {
        // Kept an hour past expiry so that a late poll still hears `expired_token`.
        sqlx::query::<DB>("DELETE FROM oauth_device_codes WHERE expires_at + 3600 <= $1")
            .bind(c.created_at)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        sqlx::query::<DB>(
            "INSERT INTO oauth_device_codes (device_hash, user_code_hash, client_id, scope, resource, created_at, \
             expires_at, interval_secs, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.device_hash.as_str())
        .bind(c.user_code_hash.as_str())
        .bind(c.client_id.as_str())
        .bind(c.scope.as_str())
        .bind(c.resource.as_deref())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.interval_secs)
        .bind(DEVICE_PENDING)
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn device_code_where<'c>(
        ex: impl Executor<'c, Database = DB>,
        column: &'static str,
        hash: &str,
    ) -> StorageResult<Option<DeviceCode>> {
        let sql = format!("{DEVICE_SELECT} WHERE {column} = $1");
        sqlx::query_as::<DB, DeviceCode>(sqlx::AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)
    }

    pub(super) async fn record_device_poll<'c>(
        ex: impl Executor<'c, Database = DB>,
        device_hash: &str,
        seen_last_poll: Option<i64>,
        now: i64,
        interval_secs: i64,
    ) -> StorageResult<bool> {
        // -1 stands for "never polled" so that one comparison covers both cases on both
        // databases (no IS NOT DISTINCT FROM in SQLite).
        let r = sqlx::query::<DB>(
            "UPDATE oauth_device_codes SET last_poll_at = $1, interval_secs = $2 \
             WHERE device_hash = $3 AND status = $4 AND COALESCE(last_poll_at, -1) = $5",
        )
        .bind(now)
        .bind(interval_secs)
        .bind(device_hash)
        .bind(DEVICE_PENDING)
        .bind(seen_last_poll.unwrap_or(-1))
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn decide_device_code_in_tx(
        tx: &mut Tx<DB>,
        user_code_hash: &str,
        user_id: &str,
        approval: Option<DeviceApproval<'_>>,
        now: i64,
    ) -> StorageResult<bool> {
        // The compare-and-swap: of concurrent decisions, one statement moves it off pending.
        let status = if approval.is_some() { DEVICE_APPROVED } else { DEVICE_DENIED };
        let won = sqlx::query_as::<DB, (String, String)>(
            "UPDATE oauth_device_codes SET status = $1, user_id = $2, browser_sid = $3, auth_time = $4, amr = $5, \
             decided_at = $6 WHERE user_code_hash = $7 AND status = $8 AND expires_at > $6 \
             RETURNING client_id, scope",
        )
        .bind(status)
        .bind(user_id)
        .bind(approval.map(|a| a.browser_sid))
        .bind(approval.map(|a| a.auth_time))
        .bind(approval.map(|a| a.amr))
        .bind(now)
        .bind(user_code_hash)
        .bind(DEVICE_PENDING)
        .fetch_optional(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        let Some((client_id, scope)) = won else { return Ok(false) };
        if approval.is_some() {
            // The account page lists the client among the applications the user allowed,
            // and withdrawing it there ends what this approval issues.
            Self::grant_consent(&mut **tx, user_id, &client_id, &scope, now).await?;
        }
        Ok(true)
    }

    /// [`DeviceStore::redeem_device_code`] inside `tx`; the caller commits only on
    /// [`DeviceRedemption::Issued`]. `lock` ends the queries that read rows the outcome
    /// depends on (PostgreSQL's `FOR SHARE`; SQLite's write lock already holds them).
    pub(super) async fn redeem_device_code_in_tx(
        tx: &mut Tx<DB>,
        device_hash: &str,
        now: i64,
        grant: &NewSession<'_>,
        lock: &str,
    ) -> StorageResult<DeviceRedemption> {
        // The compare-and-swap: of concurrent polls, one statement sets `used_at`.
        let won = sqlx::query_as::<DB, (Option<String>,)>(
            "UPDATE oauth_device_codes SET status = $1, used_at = $2 \
             WHERE device_hash = $3 AND status = $4 AND expires_at > $2 RETURNING browser_sid",
        )
        .bind(DEVICE_USED)
        .bind(now)
        .bind(device_hash)
        .bind(DEVICE_APPROVED)
        .fetch_optional(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        let Some((Some(browser_sid),)) = won else { return Ok(DeviceRedemption::Refused) };
        let sql = format!(
            "SELECT CAST(1 AS BIGINT) FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 {lock}"
        );
        let live = sqlx::query_scalar::<DB, i64>(sqlx::AssertSqlSafe(sql))
            .bind(browser_sid.as_str())
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        if live.is_none() {
            return Ok(DeviceRedemption::Refused);
        }
        if Self::create_session_in_tx(tx, grant, lock).await?.is_none() {
            return Ok(DeviceRedemption::Refused);
        }
        sqlx::query::<DB>("UPDATE oauth_device_codes SET issued_sid = $1 WHERE device_hash = $2")
            .bind(grant.record.id.as_str())
            .bind(device_hash)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        Ok(DeviceRedemption::Issued)
    }
}
