//! PostgreSQL implementation of [`KeyStore`].

use async_trait::async_trait;

use super::{PostgresStorage, Q, map_err};
use crate::domain::StoredKey;
use crate::storage::{KeyRevocation, KeyStore, StorageResult};

#[async_trait]
impl KeyStore for PostgresStorage {
    async fn insert_signing_key(&self, key: &StoredKey) -> StorageResult<()> {
        Q::insert_signing_key(&self.pool, key).await
    }

    async fn signing_keys(&self) -> StorageResult<Vec<StoredKey>> {
        Q::signing_keys(&self.pool).await
    }

    async fn revoke_signing_key(
        &self,
        kid: &str,
        now: i64,
        replacement: Option<&StoredKey>,
        announce_until: i64,
    ) -> StorageResult<KeyRevocation> {
        // The UPDATE's row lock makes a concurrent revocation of the same key wait, then
        // find it revoked.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let outcome = Q::revoke_signing_key_in_tx(&mut tx, kid, now, replacement, announce_until).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn signing_keys_version(&self) -> StorageResult<i64> {
        // As for revocations_version: `is_called` tells "never advanced" from "once".
        sqlx::query_scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM signing_keys_version")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> StorageResult<u64> {
        super::delete_keys(&self.pool, "DELETE FROM signing_keys WHERE kid = ANY($1)", kids).await
    }

    async fn session_of_refresh_token(&self, token_hash: &str, now: i64) -> StorageResult<Option<(String, String)>> {
        Q::session_of_refresh_token(&self.pool, token_hash, now).await
    }
}
