//! SQLite implementation of [`FailureStore`] (the queries are shared).

use async_trait::async_trait;

use super::{Q, SqliteStorage};
use crate::storage::StorageResult;
use crate::storage::failures::FailureStore;

#[async_trait]
impl FailureStore for SqliteStorage {
    async fn failure_record(&self, key: &str) -> StorageResult<Option<String>> {
        Q::failure_record(&self.pool, key).await
    }

    async fn swap_failure_record(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        expires_at: i64,
    ) -> StorageResult<bool> {
        Q::swap_failure_record(&self.writer, key, expected, new, expires_at).await
    }
}
