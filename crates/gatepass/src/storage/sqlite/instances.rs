//! SQLite implementation of [`InstanceStore`].

use async_trait::async_trait;

use super::{SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::instances::{FORGET_SQL, HEARTBEAT_SQL, InstanceBeat, InstanceStore, LIST_SQL};

#[async_trait]
impl InstanceStore for SqliteStorage {
    async fn heartbeat(&self, beat: &InstanceBeat, forget_before: i64) -> StorageResult<()> {
        let mut tx = self.writer.begin().await.map_err(map_err)?;
        sqlx::query(HEARTBEAT_SQL)
            .bind(&beat.id)
            .bind(&beat.listen)
            .bind(&beat.version)
            .bind(beat.started_at)
            .bind(beat.last_seen)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query(FORGET_SQL).bind(forget_before).execute(&mut *tx).await.map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn instances(&self) -> StorageResult<Vec<InstanceBeat>> {
        sqlx::query_as(LIST_SQL).fetch_all(&self.pool).await.map_err(map_err)
    }
}
