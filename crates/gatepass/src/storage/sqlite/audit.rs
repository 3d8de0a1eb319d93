//! SQLite implementation of [`AuditStore`]: appends run in a `BEGIN IMMEDIATE`
//! transaction that reads the last entry and inserts the next one, so concurrent writers
//! (several requests, the CLI) queue and the chain stays linear.

use crate::storage::rows::AuditRow;
use async_trait::async_trait;

use super::{SqliteStorage, Tx, map_err};
use crate::storage::StorageResult;
use crate::storage::audit::{AuditEntry, AuditEvent, AuditQuery, AuditStore, GENESIS_HASH, entry_hash};

/// Id and hash of the newest entry ([`GENESIS_HASH`] before the first), read inside `tx`.
async fn last_audit_entry(tx: &mut Tx) -> StorageResult<(i64, String)> {
    Ok(sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?
        .unwrap_or((0, GENESIS_HASH.to_owned())))
}

/// The chain link of the entry that appends `event` at `at`: its id, the previous entry's
/// hash and its own hash. The position comes from `head` when known, else from the table
/// (inside `tx`, which must hold the write lock); `head` moves to the new entry, so several
/// appends in one transaction read the table only once.
pub(super) async fn next_audit_link(
    tx: &mut Tx,
    event: &AuditEvent,
    at: i64,
    head: &mut Option<(i64, String)>,
) -> StorageResult<(i64, String, String)> {
    let (last_id, prev_hash) = match head.take() {
        Some(h) => h,
        None => last_audit_entry(tx).await?,
    };
    let id = last_id + 1;
    let hash = entry_hash(id, at, event, &prev_hash);
    *head = Some((id, hash.clone()));
    Ok((id, prev_hash, hash))
}

/// Appends `event` inside `tx`, which must hold the write lock (`BEGIN IMMEDIATE`).
async fn append_in_tx(tx: &mut Tx, event: &AuditEvent, at: i64) -> StorageResult<AuditEntry> {
    let (id, prev_hash, hash) = next_audit_link(tx, event, at, &mut None).await?;
    sqlx::query(
        "INSERT INTO audit_log (id, at, event, actor, subject, ip, user_agent, outcome, detail, prev_hash, hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )
    .bind(id)
    .bind(at)
    .bind(&event.event)
    .bind(&event.actor)
    .bind(&event.subject)
    .bind(&event.ip)
    .bind(&event.user_agent)
    .bind(&event.outcome)
    .bind(&event.detail)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    Ok(AuditEntry { id, at, event: event.clone(), prev_hash, hash })
}

const COLUMNS: &str = "id, at, event, actor, subject, ip, user_agent, outcome, detail, prev_hash, hash";

#[async_trait]
impl AuditStore for SqliteStorage {
    async fn append_audit(&self, event: &AuditEvent, at: i64) -> StorageResult<AuditEntry> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let entry = append_in_tx(&mut tx, event, at).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(entry)
    }

    async fn audit_entries(&self, q: &AuditQuery) -> StorageResult<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE \
               (?1 IS NULL OR actor = ?1 OR subject = ?1) \
               AND (?2 IS NULL OR event = ?2) \
               AND (?3 IS NULL OR at >= ?3) \
               AND (?4 IS NULL OR at <= ?4) \
               AND (?5 IS NULL OR id < ?5) \
             ORDER BY id DESC LIMIT ?6"
        );
        let rows = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
            .bind(&q.user)
            .bind(&q.event)
            .bind(q.from)
            .bind(q.to)
            .bind(q.before_id)
            .bind(q.limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    async fn audit_chain(&self, after_id: i64, limit: i64) -> StorageResult<Vec<AuditEntry>> {
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2");
        let rows = sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(sql))
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}
