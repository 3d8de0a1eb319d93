//! SQLite implementation of [`PasskeyStore`]: the queries are shared; transactions take the
//! database write lock up front (`BEGIN IMMEDIATE`) and single-statement writes go through
//! the one writer connection.

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::passkeys::{PasskeyCeremony, PasskeyRecord, PasskeyStore, PasskeyUse};

#[async_trait]
impl PasskeyStore for SqliteStorage {
    async fn passkeys(&self, user_id: &str) -> StorageResult<Vec<PasskeyRecord>> {
        Q::passkeys(&self.pool, user_id).await
    }

    async fn passkey_by_credential_id(&self, credential_id: &str) -> StorageResult<Option<PasskeyRecord>> {
        Q::passkey_by_credential_id(&self.pool, credential_id).await
    }

    async fn passkey_count(&self, user_id: &str) -> StorageResult<i64> {
        Q::passkey_count(&self.pool, user_id).await
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord, codes: &[String]) -> StorageResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let stored = Q::add_passkey_in_tx(&mut tx, passkey, codes).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(stored)
    }

    async fn rename_passkey(&self, user_id: &str, id: &str, name: &str) -> StorageResult<bool> {
        Q::rename_passkey(&self.writer, user_id, id, name).await
    }

    async fn remove_passkey(&self, user_id: &str, id: &str) -> StorageResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let done = Q::remove_passkey_in_tx(&mut tx, user_id, id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn record_passkey_use(&self, used: PasskeyUse<'_>) -> StorageResult<bool> {
        Q::record_passkey_use(&self.writer, used).await
    }

    async fn put_passkey_ceremony(&self, ceremony: &PasskeyCeremony) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::put_ceremony_in_tx(&mut tx, ceremony).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn take_passkey_ceremony(&self, id: &str, kind: &str, now: i64) -> StorageResult<Option<PasskeyCeremony>> {
        Q::take_ceremony(&self.writer, id, kind, now).await
    }
}
