//! PostgreSQL implementation of [`KeyStore`].

use async_trait::async_trait;

use super::{PostgresStorage, Q, map_err};
use crate::domain::StoredKey;
use crate::storage::{KeyStore, StorageResult};

#[async_trait]
impl KeyStore for PostgresStorage {
    async fn insert_signing_key(&self, key: &StoredKey) -> StorageResult<()> {
        Q::insert_signing_key(&self.pool, key).await
    }

    async fn signing_keys(&self) -> StorageResult<Vec<StoredKey>> {
        Q::signing_keys(&self.pool).await
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> StorageResult<u64> {
        // One statement with an array parameter, which SQLite lacks.
        let r = sqlx::query("DELETE FROM signing_keys WHERE kid = ANY($1)")
            .bind(kids)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected())
    }

    async fn session_of_refresh_token(&self, token_hash: &str, now: i64) -> StorageResult<Option<(String, String)>> {
        Q::session_of_refresh_token(&self.pool, token_hash, now).await
    }
}
