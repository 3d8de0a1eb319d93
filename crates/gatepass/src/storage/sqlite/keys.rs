//! SQLite implementation of [`KeyStore`].

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::domain::StoredKey;
use crate::storage::{KeyRevocation, KeyStore, StorageResult};

#[async_trait]
impl KeyStore for SqliteStorage {
    async fn insert_signing_key(&self, key: &StoredKey) -> StorageResult<()> {
        Q::insert_signing_key(&self.writer, key).await
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let outcome = Q::revoke_signing_key_in_tx(&mut tx, kid, now, replacement, announce_until).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(outcome)
    }

    async fn signing_keys_version(&self) -> StorageResult<i64> {
        sqlx::query_scalar("SELECT version FROM signing_keys_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> StorageResult<u64> {
        super::delete_keys(&self.writer, "DELETE FROM signing_keys WHERE kid = ?", kids).await
    }

    async fn session_of_refresh_token(&self, token_hash: &str, now: i64) -> StorageResult<Option<(String, String)>> {
        Q::session_of_refresh_token(&self.pool, token_hash, now).await
    }
}
