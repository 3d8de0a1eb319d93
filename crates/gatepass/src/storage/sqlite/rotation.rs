//! Refresh-token rotation on SQLite, committed in groups ([`crate::storage::rotation_group`]).
//!
//! A refresh is a write, and SQLite admits one writer at a time, so concurrent refreshes
//! queue anyway. The group goes into one `BEGIN IMMEDIATE` transaction on the write
//! connection, and each rotation's writes go to the connection's thread as one statement
//! batch. The database transaction stays the only arbiter: other processes writing the
//! file wait on the same lock.

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::{Q, Tx, map_err};
use crate::domain::Revocation;
use crate::storage::audit::{AppendKey, AuditEvent};
use crate::storage::rotation_group::{ApplyGroup, GroupError, Job};
use crate::storage::rows::SessionRow;
use crate::storage::{Rotation, SessionFilter, SessionRecord, StorageResult};

/// Applies groups on the write connection.
pub(super) struct Groups {
    pub(super) writer: SqlitePool,
    pub(super) audit_key: AppendKey,
}

#[async_trait]
impl ApplyGroup for Groups {
    async fn apply(&self, group: &[Job]) -> Result<Vec<Rotation>, GroupError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(|e| GroupError::All(map_err(e)))?;
        let mut audit_head = None;
        let mut outcomes = Vec::with_capacity(group.len());
        for (i, job) in group.iter().enumerate() {
            outcomes.push(
                rotate_in_tx(&mut tx, &self.audit_key, job, &mut audit_head)
                    .await
                    .map_err(|e| GroupError::Job(i, e))?,
            );
        }
        tx.commit().await.map_err(|e| GroupError::All(map_err(e)))?;
        Ok(outcomes)
    }
}

/// The presented token, its session, whether the owner is disabled (`None`: no owner) and
/// whether the successor is current, in one query.
#[derive(sqlx::FromRow)]
struct Presented {
    token_expires_at: i64,
    token_rotated_at: Option<i64>,
    owner_disabled: Option<bool>,
    successor_current: bool,
    #[sqlx(flatten)]
    session: SessionRow,
}

const SQL_PRESENTED: &str = "SELECT r.expires_at AS token_expires_at, r.rotated_at AS token_rotated_at, \
       u.disabled AS owner_disabled, \
       EXISTS (SELECT 1 FROM refresh_tokens n WHERE n.token_hash = ?2 AND n.rotated_at IS NULL AND n.expires_at > ?3) \
         AS successor_current, \
       s.id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.auth_time, s.access_expires_at, \
       s.user_agent, s.ip, s.revoked_at, s.amr, s.client_id, s.scope, s.resource \
     FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id LEFT JOIN users u ON u.id = s.user_id \
     WHERE r.token_hash = ?1";

// The writes of one rotation go to the connection's thread as one statement batch, with
// numbered parameters shared by its statements: ?1 now, ?2 presented hash, ?3 successor
// hash, ?4 session id, ?5 successor expiry, ?6 access-token expiry, ?7… the audit entry.

/// Marks the token rotated, inserts its successor and records the refresh on the session.
macro_rules! rotate_sql {
    () => {
        "UPDATE refresh_tokens SET rotated_at = ?1 WHERE token_hash = ?2; \
         INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at) VALUES (?3, ?4, ?1, ?5); \
         UPDATE sessions SET last_used_at = ?1, access_expires_at = MAX(access_expires_at, ?6) WHERE id = ?4"
    };
}
/// Records the replayed successor's access token on the session.
macro_rules! replay_sql {
    () => {
        "UPDATE sessions SET access_expires_at = MAX(access_expires_at, ?6) WHERE id = ?4"
    };
}
/// Appends the audit entry (its id, prev_hash and hash computed under the write lock).
macro_rules! audit_sql {
    () => {
        "; INSERT INTO audit_log (id, at, event, actor, subject, ip, user_agent, outcome, detail, prev_hash, hash) \
         VALUES (?7, ?1, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    };
}
const SQL_ROTATE: &str = rotate_sql!();
const SQL_ROTATE_AUDITED: &str = concat!(rotate_sql!(), audit_sql!());
const SQL_REPLAY: &str = replay_sql!();
const SQL_REPLAY_AUDITED: &str = concat!(replay_sql!(), audit_sql!());

/// One rotation inside the group's transaction; the same decisions as a transaction of
/// its own would take.
async fn rotate_in_tx(
    tx: &mut Tx,
    audit_key: &AppendKey,
    job: &Job,
    audit_head: &mut Option<(i64, String)>,
) -> StorageResult<Rotation> {
    let row: Option<Presented> = sqlx::query_as(SQL_PRESENTED)
        .bind(&job.presented_hash)
        .bind(&job.successor_hash)
        .bind(job.now)
        .fetch_optional(&mut **tx)
        .await
        .map_err(map_err)?;
    let Some(row) = row else { return Ok(Rotation::Invalid) };
    let session = SessionRecord::from(row.session);
    if session.revoked_at.is_some() || session.expires_at <= job.now || row.token_expires_at <= job.now {
        return Ok(Rotation::Invalid);
    }
    let (outcome, sql, audited) = match row.token_rotated_at {
        None => (
            Rotation::Rotated(SessionRecord { last_used_at: job.now, ..session.clone() }),
            SQL_ROTATE,
            SQL_ROTATE_AUDITED,
        ),
        Some(at) if job.now - at <= job.grace_secs && row.successor_current => {
            (Rotation::Replayed(session.clone()), SQL_REPLAY, SQL_REPLAY_AUDITED)
        }
        Some(_) => {
            let mut revoked =
                Q::revoke_in_tx(tx, &session.user_id, SessionFilter::One(&session.id), job.now, Revocation::Revoked)
                    .await?;
            return Ok(match revoked.pop() {
                Some(r) => Rotation::Reused(r),
                None => Rotation::Invalid,
            });
        }
    };
    // Audited only for an existing, enabled owner: for any other, the service refuses the
    // refresh after the rotation.
    let event = match (&job.audit, row.owner_disabled) {
        (Some(event), Some(false)) => Some(AuditEvent {
            actor: Some(session.user_id.clone()),
            subject: Some(session.user_id.clone()),
            ..event.clone()
        }),
        _ => None,
    };
    let q = sqlx::query(if event.is_some() { audited } else { sql })
        .bind(job.now)
        .bind(&job.presented_hash)
        .bind(&job.successor_hash)
        .bind(&session.id)
        .bind((job.now + job.refresh_ttl_secs).min(session.expires_at))
        .bind(job.access_expires_at);
    let Some(event) = event else {
        q.execute(&mut **tx).await.map_err(map_err)?;
        return Ok(outcome);
    };
    let (id, prev_hash, hash) = Q::next_audit_link(tx, &*audit_key.get()?, &event, job.now, audit_head).await?;
    Q::bind_audit(q.bind(id), &event, &prev_hash, &hash).execute(&mut **tx).await.map_err(map_err)?;
    Ok(outcome)
}
