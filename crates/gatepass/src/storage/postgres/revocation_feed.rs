//! PostgreSQL implementation of [`RevocationFeed`].

use async_trait::async_trait;

use super::{PostgresStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::revocation_feed::{FeedEntry, RevocationFeed};

type Q = crate::storage::shared::Shared<sqlx::Postgres>;

#[async_trait]
impl RevocationFeed for PostgresStorage {
    async fn revocations_version(&self) -> StorageResult<i64> {
        // `last_value` of a sequence never advanced is 1 with `is_called` false; both
        // together tell "never" from "once".
        sqlx::query_scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM revocations_version")
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
        Q::record_key_revocation(&self.pool, kid, until).await
    }
}
