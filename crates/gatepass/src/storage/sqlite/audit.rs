//! SQLite implementation of [`AuditStore`]: appends run in a `BEGIN IMMEDIATE`
//! transaction that reads the last entry and inserts the next one, so concurrent writers
//! (several requests, the CLI) queue and the chain stays linear; the anchor is sealed under
//! the same lock.

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::audit::{AuditAnchor, AuditEntry, AuditEvent, AuditKey, AuditQuery, AuditStore};

#[async_trait]
impl AuditStore for SqliteStorage {
    async fn append_audit(&self, event: &AuditEvent, at: i64) -> StorageResult<AuditEntry> {
        // The database write lock taken by `BEGIN IMMEDIATE` keeps other appends out.
        let key = self.audit_key.get()?;
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let entry = Q::append_audit_in_tx(&mut tx, &key, event, at).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(entry)
    }

    async fn audit_entries(&self, q: &AuditQuery) -> StorageResult<Vec<AuditEntry>> {
        Q::audit_entries(&self.pool, q).await
    }

    async fn audit_chain(&self, after_id: i64, limit: i64) -> StorageResult<Vec<AuditEntry>> {
        Q::audit_chain(&self.pool, after_id, limit).await
    }

    async fn audit_anchor(&self) -> StorageResult<Option<AuditAnchor>> {
        Q::audit_anchor(&self.pool).await
    }

    async fn seal_audit_anchor(&self, key: &AuditKey, now: i64) -> StorageResult<Option<AuditAnchor>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let anchor = Q::seal_audit_anchor_in_tx(&mut tx, key, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(anchor)
    }

    fn enable_audit_appends(&self, key: AuditKey) {
        self.audit_key.set(key);
    }
}
