//! Refresh-token rotation on PostgreSQL, committed in groups ([`crate::storage::rotation_group`]).
//!
//! An audited rotation appends to the hash-chained audit log under the table lock that keeps
//! the chain linear across instances, held through the commit's flush, so one transaction
//! per rotation ran them one at a time. A group does the row work of each rotation in
//! arrival order, then appends the group's audit entries under one take of the lock, then
//! commits once. Locks are taken in the order every other transaction takes them (rows,
//! then the audit table, which nothing locks before rows), so groups of different instances
//! and single writers cannot deadlock through it; and a group locks all its tokens, then
//! all their sessions, each in one sorted order, before any rotation, so two instances'
//! groups cannot deadlock on rows either. The presented token's row lock still serializes
//! two instances presenting one token, and a waiter re-reads the row after the holder
//! commits.

use async_trait::async_trait;
use sqlx::PgPool;

use super::{Q, Tx, audit, map_err, note_live};
use crate::domain::Revocation;
use crate::storage::audit::{AppendKey, AuditEvent};
use crate::storage::rotation_group::{ApplyGroup, GroupError, Job};
use crate::storage::rows::SessionRow;
use crate::storage::{Rotation, SessionFilter, SessionRecord, StorageResult};

/// Applies groups on a pooled connection.
pub(super) struct Groups {
    pub(super) pool: PgPool,
    pub(super) audit_key: AppendKey,
}

#[async_trait]
impl ApplyGroup for Groups {
    async fn apply(&self, group: &[Job]) -> Result<Vec<Rotation>, GroupError> {
        let mut tx = self.pool.begin().await.map_err(|e| GroupError::All(map_err(e)))?;
        lock_in_order(&mut tx, group).await.map_err(GroupError::All)?;
        let mut outcomes = Vec::with_capacity(group.len());
        let mut events = Vec::new();
        for (i, job) in group.iter().enumerate() {
            let (outcome, event) = rotate_in_tx(&mut tx, job).await.map_err(|e| GroupError::Job(i, e))?;
            outcomes.push(outcome);
            events.extend(event.map(|e| (e, job.now)));
        }
        // No entry, no lock: the chain's lock is the one every instance's appends share.
        if !events.is_empty() {
            let key = self.audit_key.get().map_err(GroupError::All)?;
            audit::append_all_in_tx(&mut tx, &key, &events).await.map_err(GroupError::All)?;
        }
        tx.commit().await.map_err(|e| GroupError::All(map_err(e)))?;
        Ok(outcomes)
    }
}

/// Locks every presented token, then their sessions, each in one order all instances
/// share. Two instances' groups can hold the same tokens in different arrival orders;
/// taking the row locks one by one in those orders deadlocked them. A group of one takes
/// its two locks in the same order as any single rotation and needs no more.
async fn lock_in_order(tx: &mut Tx, group: &[Job]) -> StorageResult<()> {
    if group.len() < 2 {
        return Ok(());
    }
    let presented: Vec<&str> = group.iter().map(|j| j.presented_hash.as_str()).collect();
    sqlx::query(SQL_LOCK_IN_ORDER).bind(&presented).execute(&mut **tx).await.map_err(map_err)?;
    Ok(())
}

/// One round trip: the CTE locks the tokens in sorted order (a locking CTE is run once, in
/// full, before the query that reads it), then the query locks their sessions likewise.
const SQL_LOCK_IN_ORDER: &str = "WITH t AS MATERIALIZED (SELECT session_id FROM refresh_tokens WHERE token_hash = ANY($1) \
       ORDER BY token_hash COLLATE \"C\" FOR UPDATE) \
     SELECT 1 FROM sessions WHERE id IN (SELECT session_id FROM t) ORDER BY id COLLATE \"C\" FOR UPDATE";

/// The presented token (locked), its session and whether the owner is disabled (`None`:
/// no owner), in one query.
#[derive(sqlx::FromRow)]
struct Locked {
    token_expires_at: i64,
    token_rotated_at: Option<i64>,
    owner_disabled: Option<bool>,
    #[sqlx(flatten)]
    session: SessionRow,
}

const SQL_LOCK_PRESENTED: &str = "SELECT r.expires_at AS token_expires_at, r.rotated_at AS token_rotated_at, \
       u.disabled AS owner_disabled, \
       s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.auth_time, s.access_expires_at, \
       s.user_agent, s.ip, s.revoked_at, s.amr, s.client_id, s.scope, s.resource \
     FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id LEFT JOIN users u ON u.id = s.user_id \
     WHERE r.token_hash = $1 FOR UPDATE OF r";

/// Rotates in one statement, all or nothing: the session is noted used only if it is not
/// revoked (the UPDATE waits for a concurrent revocation's row lock and re-checks), and
/// only then is the token marked rotated and its successor inserted. Returns 1 when it
/// rotated. $1 now, $2 presented, $3 successor, $4 session, $5 successor expiry, $6 the
/// access token's expiry.
const SQL_ROTATE: &str = "WITH live AS ( \
       UPDATE sessions SET last_used_at = $1, access_expires_at = GREATEST(access_expires_at, $6) \
       WHERE id = $4 AND revoked_at IS NULL RETURNING id), \
     rotated AS (UPDATE refresh_tokens SET rotated_at = $1 WHERE token_hash = $2 AND EXISTS (SELECT 1 FROM live)), \
     successor AS (INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) \
       SELECT $3, id, $1, $5 FROM live) \
     SELECT count(*) FROM live";

/// Whether `$1` (the successor) is current at `$2`.
const SQL_SUCCESSOR_CURRENT: &str =
    "SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND rotated_at IS NULL AND expires_at > $2";

/// One rotation inside the group's transaction, taking the decisions a transaction of its
/// own would; returns the outcome and the audit entry to append for it.
async fn rotate_in_tx(tx: &mut Tx, job: &Job) -> StorageResult<(Rotation, Option<AuditEvent>)> {
    let row: Option<Locked> = sqlx::query_as(SQL_LOCK_PRESENTED)
        .bind(&job.presented_hash)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
    let Some(row) = row else { return Ok((Rotation::Invalid, None)) };
    let session = SessionRecord::from(row.session);
    // A group of one has not locked the session: a revocation committed since this read is
    // caught by the conditional writes below.
    if session.revoked_at.is_some() || session.expires_at <= job.now || row.token_expires_at <= job.now {
        return Ok((Rotation::Invalid, None));
    }
    let owner = session.user_id.clone();
    let outcome = match row.token_rotated_at {
        None => {
            let rotated: i64 = sqlx::query_scalar(SQL_ROTATE)
                .bind(job.now)
                .bind(&job.presented_hash)
                .bind(&job.successor_hash)
                .bind(&session.id)
                .bind((job.now + job.refresh_ttl_secs).min(session.expires_at))
                .bind(job.access_expires_at)
                .fetch_one(&mut **tx)
                .await
                .map_err(map_err)?;
            if rotated != 1 {
                return Ok((Rotation::Invalid, None));
            }
            Rotation::Rotated(SessionRecord { last_used_at: job.now, ..session })
        }
        Some(at) => {
            // A separate statement, so it sees a rotation committed while this one waited
            // for the token's lock.
            let successor_current: Option<i32> = sqlx::query_scalar(SQL_SUCCESSOR_CURRENT)
                .bind(&job.successor_hash)
                .bind(job.now)
                .fetch_optional(&mut **tx)
                .await
                .map_err(map_err)?;
            if job.now - at <= job.grace_secs && successor_current.is_some() {
                if !note_live(&mut **tx, &session.id, job.access_expires_at, None).await? {
                    return Ok((Rotation::Invalid, None));
                }
                Rotation::Replayed(session)
            } else {
                let mut revoked = Q::revoke_in_tx(
                    tx,
                    &session.user_id,
                    SessionFilter::One(&session.id),
                    job.now,
                    Revocation::Revoked,
                )
                .await?;
                return Ok((revoked.pop().map_or(Rotation::Invalid, Rotation::Reused), None));
            }
        }
    };
    // Audited only for an existing, enabled owner: for any other, the service refuses the
    // refresh after the rotation.
    let event = match (&job.audit, row.owner_disabled) {
        (Some(event), Some(false)) => {
            Some(AuditEvent { actor: Some(owner.clone()), subject: Some(owner), ..event.clone() })
        }
        _ => None,
    };
    Ok((outcome, event))
}
