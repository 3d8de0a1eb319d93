//! SQLite implementation of [`AuditStore`]: appends run in a `BEGIN IMMEDIATE`
//! transaction that reads the last entry and inserts the next one, so concurrent writers
//! (several requests, the CLI) queue and the chain stays linear.

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::audit::{AuditEntry, AuditEvent, AuditQuery, AuditStore};

#[async_trait]
impl AuditStore for SqliteStorage {
    async fn append_audit(&self, event: &AuditEvent, at: i64) -> StorageResult<AuditEntry> {
        // The database write lock taken by `BEGIN IMMEDIATE` keeps other appends out.
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let entry = Q::append_audit_in_tx(&mut tx, event, at).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(entry)
    }

    async fn audit_entries(&self, q: &AuditQuery) -> StorageResult<Vec<AuditEntry>> {
        Q::audit_entries(&self.pool, q).await
    }

    async fn audit_chain(&self, after_id: i64, limit: i64) -> StorageResult<Vec<AuditEntry>> {
        Q::audit_chain(&self.pool, after_id, limit).await
    }
}
