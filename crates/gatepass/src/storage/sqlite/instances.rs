//! SQLite implementation of [`InstanceStore`]: the shared queries in one transaction.

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::instances::{InstanceBeat, InstanceStore};

#[async_trait]
impl InstanceStore for SqliteStorage {
    async fn heartbeat(&self, beat: &InstanceBeat, forget_before: i64) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::heartbeat_in_tx(&mut tx, beat, forget_before).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn instances(&self) -> StorageResult<Vec<InstanceBeat>> {
        Q::instances(&self.pool).await
    }
}
