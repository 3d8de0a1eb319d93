//! SQLite implementation of [`RevocationFeed`].

use async_trait::async_trait;

use super::{SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::revocation_feed::RevocationFeed;

#[async_trait]
impl RevocationFeed for SqliteStorage {
    async fn revocations_fingerprint(&self) -> StorageResult<(i64, i64)> {
        sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(until), 0) FROM revocations")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}
