//! SQLite implementation of [`KeyStore`].

use crate::storage::rows::KeyRow;
use async_trait::async_trait;

use super::{SqliteStorage, map_err};
use crate::domain::StoredKey;
use crate::storage::{KeyStore, StorageResult};

#[async_trait]
impl KeyStore for SqliteStorage {
    async fn insert_signing_key(&self, key: &StoredKey) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, created_at, activates_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.public_jwk)
        .bind(&key.private_key)
        .bind(key.created_at)
        .bind(key.activates_at)
        .execute(&self.writer)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn signing_keys(&self) -> StorageResult<Vec<StoredKey>> {
        let rows = sqlx::query_as::<_, KeyRow>(
            "SELECT kid, alg, public_jwk, private_key, created_at, activates_at FROM signing_keys",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|r| StoredKey {
                kid: r.kid,
                alg: r.alg,
                public_jwk: r.public_jwk,
                private_key: r.private_key,
                created_at: r.created_at,
                activates_at: r.activates_at,
            })
            .collect())
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> StorageResult<u64> {
        let mut removed = 0;
        for kid in kids {
            removed += sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
                .bind(kid)
                .execute(&self.writer)
                .await
                .map_err(map_err)?
                .rows_affected();
        }
        Ok(removed)
    }

    async fn session_of_refresh_token(&self, token_hash: &str, now: i64) -> StorageResult<Option<(String, String)>> {
        sqlx::query_as::<_, (String, String)>(
            "SELECT s.id, s.user_id FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id \
             WHERE r.token_hash = ? AND r.expires_at > ? AND s.revoked_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)
    }
}
