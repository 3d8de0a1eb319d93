//! Storage for passkeys ([`PasskeyStore`]): an account's WebAuthn credentials (the
//! serialised credential the service hands over, never interpreted here) and the state of
//! ceremonies between their start and their finish. Every check-then-act is one
//! compare-and-swap statement or one transaction: a ceremony is taken once (delete with
//! `RETURNING`), a sign counter moves only from the value it was read at.

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::StorageResult;
use super::mfa::MfaChallenge;
use super::shared::{Backend, Shared, Tx};

/// A passkey as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PasskeyRecord {
    /// Its id (a UUID), what the owner's API names it by.
    pub id: String,
    /// The account.
    pub user_id: String,
    /// The name its owner gave it, unique per account.
    pub name: String,
    /// The authenticator's credential id, base64url; unique across accounts.
    pub credential_id: String,
    /// The serialised credential (public key, algorithm, flags).
    pub credential: String,
    /// The signature counter last accepted.
    pub sign_count: i64,
    /// Whether the authenticator may sync the credential (backup eligible).
    pub backup_eligible: bool,
    /// Whether the credential is synced now (backup state), as last seen.
    pub backup_state: bool,
    /// Added at.
    pub created_at: i64,
    /// Last used to sign in.
    pub last_used_at: Option<i64>,
}

/// A ceremony between its start and its finish.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PasskeyCeremony {
    /// Hex SHA-256 of the handle given to the client.
    pub id: String,
    /// What it is for (`registration`, `login`, `mfa`); a ceremony is taken only as its kind.
    pub kind: String,
    /// The account it is bound to, when it is bound to one.
    pub user_id: Option<String>,
    /// Digest of the client that started it.
    pub client_hash: String,
    /// The serialised ceremony state (the challenge and what the finish checks).
    pub state: String,
    /// Started at.
    pub created_at: i64,
    /// Refused from this time on.
    pub expires_at: i64,
}

/// A passkey's use, written only if its counter is still what it was read as.
#[derive(Debug, Clone, Copy)]
pub struct PasskeyUse<'a> {
    /// The passkey.
    pub id: &'a str,
    /// The counter the check was made against.
    pub old_count: i64,
    /// The counter the authenticator reported.
    pub new_count: i64,
    /// The credential with its updated counter and flags.
    pub credential: &'a str,
    /// The backup state the authenticator reported.
    pub backup_state: bool,
    /// When.
    pub now: i64,
}

/// Passkeys and the state of their ceremonies.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// The account's passkeys, oldest first.
    async fn passkeys(&self, user_id: &str) -> StorageResult<Vec<PasskeyRecord>>;
    /// The passkey with this credential id, whoever owns it.
    async fn passkey_by_credential_id(&self, credential_id: &str) -> StorageResult<Option<PasskeyRecord>>;
    /// Number of the account's passkeys.
    async fn passkey_count(&self, user_id: &str) -> StorageResult<i64>;
    /// Adds a passkey and, when the account has no recovery codes at all, stores `codes`
    /// (digests) as its recovery codes, in one transaction. Returns whether the codes were
    /// stored. [`super::StorageError::Conflict`], with nothing changed, when the account
    /// has a passkey of that name or the credential id is known.
    async fn add_passkey(&self, passkey: &PasskeyRecord, codes: &[String]) -> StorageResult<bool>;
    /// Renames one of the account's passkeys; false when it has no such passkey;
    /// [`super::StorageError::Conflict`] when another of its passkeys has the name.
    async fn rename_passkey(&self, user_id: &str, id: &str, name: &str) -> StorageResult<bool>;
    /// Removes one of the account's passkeys, and its recovery codes when that leaves it
    /// with no second factor at all, in one transaction; false when it has no such passkey.
    async fn remove_passkey(&self, user_id: &str, id: &str) -> StorageResult<bool>;
    /// Records a use (compare-and-swap on the counter): false, with nothing changed, when
    /// the passkey is gone or its counter moved since it was read.
    async fn record_passkey_use(&self, used: PasskeyUse<'_>) -> StorageResult<bool>;
    /// Stores a ceremony, replacing one with the same id (and drops expired ones).
    async fn put_passkey_ceremony(&self, ceremony: &PasskeyCeremony) -> StorageResult<()>;
    /// Takes a ceremony of `kind`: deletes it and returns it if it had not expired. Of
    /// concurrent takes of one ceremony, exactly one gets it.
    async fn take_passkey_ceremony(&self, id: &str, kind: &str, now: i64) -> StorageResult<Option<PasskeyCeremony>>;
}

const PASSKEY_SELECT: &str = "SELECT id, user_id, name, credential_id, credential, sign_count, backup_eligible, \
     backup_state, created_at, last_used_at FROM passkeys";
const CEREMONY_COLUMNS: &str = "id, kind, user_id, client_hash, state, created_at, expires_at";

/// The passkey queries both backends share; each backend opens the transaction (and takes
/// the locks) its own way.
impl<DB> Shared<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'r> PasskeyRecord: FromRow<'r, DB::Row>,
    for<'r> PasskeyCeremony: FromRow<'r, DB::Row>,
    for<'r> MfaChallenge: FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
{
    pub(super) async fn passkeys<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> StorageResult<Vec<PasskeyRecord>> {
        let sql = format!("{PASSKEY_SELECT} WHERE user_id = $1 ORDER BY created_at, id");
        sqlx::query_as::<DB, PasskeyRecord>(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_all(ex)
            .await
            .map_err(DB::map_err)
    }

    pub(super) async fn passkey_by_credential_id<'c>(
        ex: impl Executor<'c, Database = DB>,
        credential_id: &str,
    ) -> StorageResult<Option<PasskeyRecord>> {
        let sql = format!("{PASSKEY_SELECT} WHERE credential_id = $1");
        sqlx::query_as::<DB, PasskeyRecord>(sqlx::AssertSqlSafe(sql))
            .bind(credential_id)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)
    }

    pub(super) async fn passkey_count<'c>(ex: impl Executor<'c, Database = DB>, user_id: &str) -> StorageResult<i64> {
        let (n,) = sqlx::query_as::<DB, (i64,)>("SELECT COUNT(*) FROM passkeys WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(n)
    }

    pub(super) async fn add_passkey_in_tx(tx: &mut Tx<DB>, p: &PasskeyRecord, codes: &[String]) -> StorageResult<bool> {
        sqlx::query::<DB>(
            "INSERT INTO passkeys (id, user_id, name, credential_id, credential, sign_count, backup_eligible, \
             backup_state, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(p.id.as_str())
        .bind(p.user_id.as_str())
        .bind(p.name.as_str())
        .bind(p.credential_id.as_str())
        .bind(p.credential.as_str())
        .bind(p.sign_count)
        .bind(p.backup_eligible)
        .bind(p.backup_state)
        .bind(p.created_at)
        .bind(p.last_used_at)
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        let (existing,) = sqlx::query_as::<DB, (i64,)>("SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(p.user_id.as_str())
            .fetch_one(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        if existing > 0 {
            return Ok(false);
        }
        for code in codes {
            sqlx::query::<DB>("INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
                .bind(p.user_id.as_str())
                .bind(code.as_str())
                .bind(p.created_at)
                .execute(&mut **tx)
                .await
                .map_err(DB::map_err)?;
        }
        Ok(!codes.is_empty())
    }

    pub(super) async fn rename_passkey<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        id: &str,
        name: &str,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>("UPDATE passkeys SET name = $1 WHERE user_id = $2 AND id = $3")
            .bind(name)
            .bind(user_id)
            .bind(id)
            .execute(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn remove_passkey_in_tx(tx: &mut Tx<DB>, user_id: &str, id: &str) -> StorageResult<bool> {
        let r = sqlx::query::<DB>("DELETE FROM passkeys WHERE user_id = $1 AND id = $2")
            .bind(user_id)
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        // Recovery codes stand in for a factor; with none left (no passkey, no active
        // app) they would be a way in that nothing else backs.
        sqlx::query::<DB>(
            "DELETE FROM mfa_recovery_codes WHERE user_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = $1 AND active = TRUE)",
        )
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(true)
    }

    pub(super) async fn record_passkey_use<'c>(
        ex: impl Executor<'c, Database = DB>,
        u: PasskeyUse<'_>,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE passkeys SET sign_count = $1, credential = $2, backup_state = $3, last_used_at = $4 \
             WHERE id = $5 AND sign_count = $6",
        )
        .bind(u.new_count)
        .bind(u.credential)
        .bind(u.backup_state)
        .bind(u.now)
        .bind(u.id)
        .bind(u.old_count)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn put_ceremony_in_tx(tx: &mut Tx<DB>, c: &PasskeyCeremony) -> StorageResult<()> {
        sqlx::query::<DB>("DELETE FROM passkey_ceremonies WHERE expires_at <= $1 OR id = $2")
            .bind(c.created_at)
            .bind(c.id.as_str())
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        let sql = format!("INSERT INTO passkey_ceremonies ({CEREMONY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)");
        sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .bind(c.id.as_str())
            .bind(c.kind.as_str())
            .bind(c.user_id.as_deref())
            .bind(c.client_hash.as_str())
            .bind(c.state.as_str())
            .bind(c.created_at)
            .bind(c.expires_at)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn take_ceremony<'c>(
        ex: impl Executor<'c, Database = DB>,
        id: &str,
        kind: &str,
        now: i64,
    ) -> StorageResult<Option<PasskeyCeremony>> {
        // Deleting is the compare-and-swap: only one statement can return the row.
        let sql = format!("DELETE FROM passkey_ceremonies WHERE id = $1 AND kind = $2 RETURNING {CEREMONY_COLUMNS}");
        let taken = sqlx::query_as::<DB, PasskeyCeremony>(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(kind)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)?;
        Ok(taken.filter(|c| c.expires_at > now))
    }
}
