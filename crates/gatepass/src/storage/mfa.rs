//! Storage for second factors ([`MfaStore`]): an account's TOTP factor (its secret sealed
//! by the service before it gets here), its recovery codes (digests only) and the
//! challenges of the second login step (digests only). Every check-then-act here is one
//! compare-and-swap statement or one transaction, so that of two concurrent uses of a
//! code, a time step or a challenge exactly one wins.

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::StorageResult;
use super::shared::{Backend, Shared, Tx};

/// An account's TOTP factor as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TotpFactor {
    /// The account.
    pub user_id: String,
    /// The secret, sealed with the master key (never the plain secret).
    pub secret: String,
    /// Whether enrolment was confirmed with a code; a pending factor is not a factor yet.
    pub active: bool,
    /// When enrolment started.
    pub created_at: i64,
    /// When it was confirmed.
    pub confirmed_at: Option<i64>,
    /// The highest time step accepted so far; codes of this step and earlier are refused.
    pub last_step: Option<i64>,
}

/// A challenge of the second login step, as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MfaChallenge {
    /// Hex SHA-256 of the challenge handed to the client.
    pub challenge_hash: String,
    /// The account whose password was proved.
    pub user_id: String,
    /// Digest of the first step's client (address and user agent).
    pub client_hash: String,
    /// Issued at.
    pub created_at: i64,
    /// Refused from this time on.
    pub expires_at: i64,
}

/// Second factors and the challenges of the second login step.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// The account's TOTP factor, pending or active.
    async fn totp_factor(&self, user_id: &str) -> StorageResult<Option<TotpFactor>>;
    /// Starts (or restarts) enrolment with a new sealed secret; false, with nothing
    /// changed, when the account already has an active factor.
    async fn put_pending_totp(&self, user_id: &str, sealed: &str, now: i64) -> StorageResult<bool>;
    /// Activates the pending factor whose sealed secret is still `sealed`, records `step`
    /// as used and replaces the recovery codes with `codes` (digests), in one transaction;
    /// false, with nothing changed, when there is no such pending factor (another
    /// enrolment or confirmation won).
    async fn activate_totp(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        now: i64,
        codes: &[String],
    ) -> StorageResult<bool>;
    /// Records `step` as used if it is later than every step accepted before (compare-and-
    /// swap): false when the factor is gone, not active, or the step was already used.
    async fn accept_totp_step(&self, user_id: &str, step: i64) -> StorageResult<bool>;
    /// Removes the factor and the recovery codes in one transaction; false when there was
    /// no factor.
    async fn remove_totp(&self, user_id: &str) -> StorageResult<bool>;
    /// Removes every second factor of the account (the app, its passkeys and the recovery
    /// codes) in one transaction: an administrator's reset. False when it had none.
    async fn remove_all_factors(&self, user_id: &str) -> StorageResult<bool>;
    /// Replaces the recovery codes with `codes` (digests) while the account has a factor
    /// (an active app or a passkey), in one transaction; false, with nothing changed, when
    /// it has none.
    async fn replace_recovery_codes(&self, user_id: &str, codes: &[String], now: i64) -> StorageResult<bool>;
    /// Uses an unused recovery code (compare-and-swap): false when it is unknown or used.
    async fn use_recovery_code(&self, user_id: &str, code_hash: &str, now: i64) -> StorageResult<bool>;
    /// Unused recovery codes of the account.
    async fn recovery_codes_left(&self, user_id: &str) -> StorageResult<i64>;
    /// Stores a challenge (and drops expired ones).
    async fn insert_mfa_challenge(&self, challenge: &MfaChallenge) -> StorageResult<()>;
    /// Takes a challenge: deletes it and returns it if it had not expired. Of concurrent
    /// takes of one challenge, exactly one gets it.
    async fn take_mfa_challenge(&self, challenge_hash: &str, now: i64) -> StorageResult<Option<MfaChallenge>>;
    /// Reads a challenge without taking it, if it has not expired (the enrolment step that
    /// shows a new secret before the challenge is taken by its confirmation).
    async fn peek_mfa_challenge(&self, challenge_hash: &str, now: i64) -> StorageResult<Option<MfaChallenge>>;
}

const TOTP_SELECT: &str = "SELECT user_id, secret, active, created_at, confirmed_at, last_step FROM mfa_totp";

/// The MFA queries both backends share; each backend opens the transaction its own way.
impl<DB> Shared<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'r> TotpFactor: FromRow<'r, DB::Row>,
    for<'r> MfaChallenge: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    pub(super) async fn totp_factor<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> StorageResult<Option<TotpFactor>> {
        let sql = format!("{TOTP_SELECT} WHERE user_id = $1");
        sqlx::query_as::<DB, TotpFactor>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)
    }

    pub(super) async fn put_pending_totp<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        sealed: &str,
        now: i64,
    ) -> StorageResult<bool> {
        // One statement: an active factor is never overwritten, however enrolments race.
        let r = sqlx::query::<DB>(
            "INSERT INTO mfa_totp (user_id, secret, active, created_at) VALUES ($1, $2, FALSE, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, \
             confirmed_at = NULL, last_step = NULL WHERE mfa_totp.active = FALSE",
        )
        .bind(user_id)
        .bind(sealed)
        .bind(now)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn activate_totp_in_tx(
        tx: &mut Tx<DB>,
        user_id: &str,
        sealed: &str,
        step: i64,
        now: i64,
        codes: &[String],
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE mfa_totp SET active = TRUE, confirmed_at = $1, last_step = $2 \
             WHERE user_id = $3 AND secret = $4 AND active = FALSE",
        )
        .bind(now)
        .bind(step)
        .bind(user_id)
        .bind(sealed)
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        Self::put_codes(tx, user_id, codes, now).await?;
        Ok(true)
    }

    pub(super) async fn accept_totp_step<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        step: i64,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE mfa_totp SET last_step = $1 \
             WHERE user_id = $2 AND active = TRUE AND (last_step IS NULL OR last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn remove_totp_in_tx(tx: &mut Tx<DB>, user_id: &str) -> StorageResult<bool> {
        let r = sqlx::query::<DB>("DELETE FROM mfa_totp WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        // Passkeys are a factor too: their recovery codes stay while they do.
        sqlx::query::<DB>(
            "DELETE FROM mfa_recovery_codes WHERE user_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1)",
        )
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn remove_all_factors_in_tx(tx: &mut Tx<DB>, user_id: &str) -> StorageResult<bool> {
        let mut removed = 0;
        // Recovery codes alone are no factor (they come with one): not counted.
        for (sql, counts) in [
            ("DELETE FROM mfa_totp WHERE user_id = $1", true),
            ("DELETE FROM passkeys WHERE user_id = $1", true),
            ("DELETE FROM mfa_recovery_codes WHERE user_id = $1", false),
        ] {
            let r = sqlx::query::<DB>(sql).bind(user_id).execute(&mut **tx).await.map_err(DB::map_err)?;
            if counts {
                removed += DB::rows_affected(&r);
            }
        }
        Ok(removed > 0)
    }

    pub(super) async fn replace_codes_in_tx(
        tx: &mut Tx<DB>,
        user_id: &str,
        codes: &[String],
        now: i64,
    ) -> StorageResult<bool> {
        // No-op writes: take the factors' row locks (PostgreSQL) while checking there is
        // one (an active app or a passkey), so a concurrent removal cannot leave codes
        // without a factor.
        let mut factors = 0;
        for sql in [
            "UPDATE mfa_totp SET user_id = user_id WHERE user_id = $1 AND active = TRUE",
            "UPDATE passkeys SET user_id = user_id WHERE user_id = $1",
        ] {
            let r = sqlx::query::<DB>(sql).bind(user_id).execute(&mut **tx).await.map_err(DB::map_err)?;
            factors += DB::rows_affected(&r);
        }
        if factors == 0 {
            return Ok(false);
        }
        Self::put_codes(tx, user_id, codes, now).await?;
        Ok(true)
    }

    /// Replaces the account's recovery codes inside `tx`.
    async fn put_codes(tx: &mut Tx<DB>, user_id: &str, codes: &[String], now: i64) -> StorageResult<()> {
        sqlx::query::<DB>("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        for code in codes {
            sqlx::query::<DB>("INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(code.as_str())
                .bind(now)
                .execute(&mut **tx)
                .await
                .map_err(DB::map_err)?;
        }
        Ok(())
    }

    pub(super) async fn use_recovery_code<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        code_hash: &str,
        now: i64,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE mfa_recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn recovery_codes_left<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> StorageResult<i64> {
        let (n,) = sqlx::query_as::<DB, (i64,)>(
            "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(n)
    }

    pub(super) async fn insert_mfa_challenge_in_tx(tx: &mut Tx<DB>, c: &MfaChallenge) -> StorageResult<()> {
        sqlx::query::<DB>("DELETE FROM mfa_challenges WHERE expires_at <= $1")
            .bind(c.created_at)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        sqlx::query::<DB>(
            "INSERT INTO mfa_challenges (challenge_hash, user_id, client_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.challenge_hash.as_str())
        .bind(c.user_id.as_str())
        .bind(c.client_hash.as_str())
        .bind(c.created_at)
        .bind(c.expires_at)
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn peek_mfa_challenge<'c>(
        ex: impl Executor<'c, Database = DB>,
        challenge_hash: &str,
        now: i64,
    ) -> StorageResult<Option<MfaChallenge>> {
        sqlx::query_as::<DB, MfaChallenge>(
            "SELECT challenge_hash, user_id, client_hash, created_at, expires_at FROM mfa_challenges \
             WHERE challenge_hash = $1 AND expires_at > $2",
        )
        .bind(challenge_hash)
        .bind(now)
        .fetch_optional(ex)
        .await
        .map_err(DB::map_err)
    }

    pub(super) async fn take_mfa_challenge<'c>(
        ex: impl Executor<'c, Database = DB>,
        challenge_hash: &str,
        now: i64,
    ) -> StorageResult<Option<MfaChallenge>> {
        // Deleting is the compare-and-swap: only one statement can return the row.
        let taken = sqlx::query_as::<DB, MfaChallenge>(
            "DELETE FROM mfa_challenges WHERE challenge_hash = $1 \
             RETURNING challenge_hash, user_id, client_hash, created_at, expires_at",
        )
        .bind(challenge_hash)
        .fetch_optional(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(taken.filter(|c| c.expires_at > now))
    }
}
