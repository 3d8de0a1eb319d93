//! SQLite implementation of [`RevocationFeed`].

use async_trait::async_trait;

use super::{SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::revocation_feed::RevocationFeed;

#[async_trait]
impl RevocationFeed for SqliteStorage {
    async fn revocations_version(&self) -> StorageResult<i64> {
        sqlx::query_scalar("SELECT version FROM revocations_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}
