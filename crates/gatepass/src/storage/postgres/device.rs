//! PostgreSQL implementation of [`DeviceStore`]: the queries are shared; a decision or redemption holds the code's row by its `UPDATE`, and a redemption the browser session and the owner with `FOR SHARE`, until it commits.

use async_trait::async_trait;

use super::{PostgresStorage, Q, map_err};
use crate::storage::device::{DeviceApproval, DeviceCode, DeviceRedemption, DeviceStore};
use crate::storage::{NewSession, StorageResult};

#[async_trait]
impl DeviceStore for PostgresStorage {
    async fn insert_device_code(&self, code: &DeviceCode) -> StorageResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        Q::insert_device_code_in_tx(&mut tx, code).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn device_code(&self, device_hash: &str) -> StorageResult<Option<DeviceCode>> {
        Q::device_code_where(&self.pool, "device_hash", device_hash).await
    }

    async fn device_code_by_user_code(&self, user_code_hash: &str) -> StorageResult<Option<DeviceCode>> {
        Q::device_code_where(&self.pool, "user_code_hash", user_code_hash).await
    }

    async fn record_device_poll(
        &self,
        device_hash: &str,
        seen_last_poll: Option<i64>,
        now: i64,
        interval_secs: i64,
    ) -> StorageResult<bool> {
        Q::record_device_poll(&self.pool, device_hash, seen_last_poll, now, interval_secs).await
    }

    async fn decide_device_code(
        &self,
        user_code_hash: &str,
        user_id: &str,
        approval: Option<DeviceApproval<'_>>,
        now: i64,
    ) -> StorageResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let won = Q::decide_device_code_in_tx(&mut tx, user_code_hash, user_id, approval, now).await?;
        if won {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(won)
    }

    async fn redeem_device_code(
        &self,
        device_hash: &str,
        now: i64,
        grant: NewSession<'_>,
    ) -> StorageResult<DeviceRedemption> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let out = Q::redeem_device_code_in_tx(&mut tx, device_hash, now, &grant, "FOR SHARE").await?;
        if out == DeviceRedemption::Issued {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }
}
