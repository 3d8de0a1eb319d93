//! PostgreSQL implementation of [`AuditStore`]: appends take an exclusive table lock in
//! their transaction, read the last entry and insert the next one, so concurrent writers on
//! every instance queue and the chain stays linear; the anchor is sealed under the same
//! lock.

use async_trait::async_trait;

use super::{PostgresStorage, Q, Tx, map_err};
use crate::storage::StorageResult;
use crate::storage::audit::{AuditAnchor, AuditEntry, AuditEvent, AuditKey, AuditQuery, AuditStore};

/// Appends `event` inside `tx`, taking the table lock that keeps the chain linear; the lock
/// is held until `tx` ends.
pub(super) async fn append_in_tx(
    tx: &mut Tx,
    key: &AuditKey,
    event: &AuditEvent,
    at: i64,
) -> StorageResult<AuditEntry> {
    lock(tx).await?;
    Q::append_audit_in_tx(tx, key, event, at).await
}

/// Appends `events` (each with its time) in order inside `tx`, under one take of the table
/// lock, which is held until `tx` ends.
pub(super) async fn append_all_in_tx(tx: &mut Tx, key: &AuditKey, events: &[(AuditEvent, i64)]) -> StorageResult<()> {
    lock(tx).await?;
    let mut head = None;
    for (event, at) in events {
        Q::append_audit_after(tx, key, event, *at, &mut head).await?;
    }
    Ok(())
}

/// Takes the lock that orders appends (and the anchor's sealing) until `tx` ends.
async fn lock(tx: &mut Tx) -> StorageResult<()> {
    // Row locks cannot order appends across instances; the table lock does. Readers are
    // not blocked; only other appends wait.
    sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE").execute(&mut **tx).await.map_err(map_err)?;
    Ok(())
}

#[async_trait]
impl AuditStore for PostgresStorage {
    async fn append_audit(&self, event: &AuditEvent, at: i64) -> StorageResult<AuditEntry> {
        let key = self.audit_key.get()?;
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let entry = append_in_tx(&mut tx, &key, event, at).await?;
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
        // Instances starting together queue on the lock; the first seals, the others read
        // its seal.
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock(&mut tx).await?;
        let anchor = Q::seal_audit_anchor_in_tx(&mut tx, key, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(anchor)
    }

    fn enable_audit_appends(&self, key: AuditKey) {
        self.audit_key.set(key);
    }
}
