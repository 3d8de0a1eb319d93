//! SQLite implementation of [`RevocationFeed`].

use async_trait::async_trait;

use super::{SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::revocation_feed::{FeedEntry, RevocationFeed};

type Q = crate::storage::shared::Shared<sqlx::Sqlite>;

#[async_trait]
impl RevocationFeed for SqliteStorage {
    async fn revocations_version(&self) -> StorageResult<i64> {
        sqlx::query_scalar("SELECT version FROM revocations_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn revocation_log(&self, after: i64, now: i64, limit: i64) -> StorageResult<Vec<FeedEntry>> {
        Q::revocation_log(&self.pool, after, now, limit).await
    }

    async fn revocation_log_head(&self) -> StorageResult<i64> {
        Q::revocation_log_head(&self.pool).await
    }

    async fn record_key_revocation(&self, kid: &str, until: i64) -> StorageResult<()> {
        Q::record_key_revocation(&self.writer, kid, until).await
    }
}
