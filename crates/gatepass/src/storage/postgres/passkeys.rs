//! PostgreSQL implementation of [`PasskeyStore`]: the queries are shared; the transactions
//! that look at an account's factors before changing them hold the account's row
//! (`FOR UPDATE`), so two of them on one account run one after the other.

use async_trait::async_trait;

use super::{PostgresStorage, Q, map_err};
use crate::storage::StorageResult;
use crate::storage::passkeys::{PasskeyCeremony, PasskeyRecord, PasskeyStore, PasskeyUse};

/// Holds the account's row until the transaction ends.
async fn lock_user(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, user_id: &str) -> StorageResult<()> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl PasskeyStore for PostgresStorage {
    async fn passkeys(&self, user_id: &str) -> StorageResult<Vec<PasskeyRecord>> {
        Q::passkeys(&self.pool, user_id).await
    }

    async fn passkey_by_credential_id(&self, credential_id: &str) -> StorageResult<Option<PasskeyRecord>> {
        Q::passkey_by_credential_id(&self.pool, credential_id).await
    }

    async fn passkey_count(&self, user_id: &str) -> StorageResult<i64> {
        Q::passkey_count(&self.pool, user_id).await
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord, codes: &[String]) -> StorageResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_user(&mut tx, &passkey.user_id).await?;
        let stored = Q::add_passkey_in_tx(&mut tx, passkey, codes).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn rename_passkey(&self, user_id: &str, id: &str, name: &str) -> StorageResult<bool> {
        Q::rename_passkey(&self.pool, user_id, id, name).await
    }

    async fn remove_passkey(&self, user_id: &str, id: &str) -> StorageResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_user(&mut tx, user_id).await?;
        let done = Q::remove_passkey_in_tx(&mut tx, user_id, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn record_passkey_use(&self, used: PasskeyUse<'_>) -> StorageResult<bool> {
        Q::record_passkey_use(&self.pool, used).await
    }

    async fn put_passkey_ceremony(&self, ceremony: &PasskeyCeremony) -> StorageResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        Q::put_ceremony_in_tx(&mut tx, ceremony).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn take_passkey_ceremony(&self, id: &str, kind: &str, now: i64) -> StorageResult<Option<PasskeyCeremony>> {
        Q::take_ceremony(&self.pool, id, kind, now).await
    }
}
