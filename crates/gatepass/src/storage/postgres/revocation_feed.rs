//! PostgreSQL implementation of [`RevocationFeed`].

use async_trait::async_trait;

use super::{PostgresStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::revocation_feed::RevocationFeed;

#[async_trait]
impl RevocationFeed for PostgresStorage {
    async fn revocations_fingerprint(&self) -> StorageResult<(i64, i64)> {
        sqlx::query_as("SELECT COUNT(*)::BIGINT, COALESCE(SUM(until), 0)::BIGINT FROM revocations")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)
    }
}
