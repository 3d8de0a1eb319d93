//! Refresh-token rotation on SQLite, committed in groups.
//!
//! A refresh is a write, and SQLite admits one writer at a time, so concurrent refreshes
//! queue anyway. Instead of one transaction each, a single task takes every rotation that
//! is waiting and applies them one after another inside one `BEGIN IMMEDIATE` transaction
//! on the write connection, then answers each caller. The outcome is exactly that of
//! running them one by one in arrival order: each rotation reads what the previous ones in
//! the group wrote, so two presentations of one token still give one successor (the second
//! replays it) and an old token still revokes its session. The database transaction stays
//! the only arbiter: other processes writing the file wait on the same lock.
//!
//! A rotation that fails takes no one else down: the transaction is rolled back, that
//! caller gets the error, and the rest of the group is applied again without it.

use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::{Q, Tx, map_err};
use crate::domain::Revocation;
use crate::storage::audit::{AppendKey, AuditEvent};
use crate::storage::rows::SessionRow;
use crate::storage::{RotateRequest, Rotation, SessionFilter, SessionRecord, StorageError, StorageResult};

/// Most rotations committed in one transaction; bounds how long one group holds the lock.
const MAX_GROUP: usize = 64;
/// Rotations that may wait for the writer before callers are held back.
const QUEUE: usize = 1024;

/// A rotation waiting for the writer task, with the channel its outcome goes back on.
struct Job {
    presented_hash: String,
    successor_hash: String,
    now: i64,
    grace_secs: i64,
    refresh_ttl_secs: i64,
    access_expires_at: i64,
    audit: Option<AuditEvent>,
    reply: oneshot::Sender<StorageResult<Rotation>>,
}

/// Handle to the task that commits rotations in groups.
#[derive(Clone)]
pub(super) struct Rotator {
    jobs: mpsc::Sender<Job>,
}

impl Rotator {
    /// Starts the writer task on the current Tokio runtime; it ends when the last handle
    /// is dropped.
    pub(super) fn spawn(writer: SqlitePool, audit_key: AppendKey) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, audit_key, rx));
        Self { jobs }
    }

    /// Queues `req` and waits for its outcome.
    pub(super) async fn rotate(&self, req: RotateRequest<'_>) -> StorageResult<Rotation> {
        let (reply, outcome) = oneshot::channel();
        let job = Job {
            presented_hash: req.presented_hash.to_owned(),
            successor_hash: req.successor_hash.to_owned(),
            now: req.now,
            grace_secs: req.grace_secs,
            refresh_ttl_secs: req.refresh_ttl_secs,
            access_expires_at: req.access_expires_at,
            audit: req.audit.cloned(),
            reply,
        };
        let stopped = || StorageError::Unavailable("refresh-token writer stopped".into());
        self.jobs.send(job).await.map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

async fn run(pool: SqlitePool, audit_key: AppendKey, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        commit_group(&pool, &audit_key, &mut group).await;
    }
}

/// Why a group could not be committed.
enum GroupError {
    /// Rotation `i` failed; the others may succeed without it.
    Job(usize, StorageError),
    /// Beginning or committing failed: nothing was applied.
    All(StorageError),
}

/// Applies and answers every job in `group`, leaving it empty.
async fn commit_group(pool: &SqlitePool, audit_key: &AppendKey, group: &mut Vec<Job>) {
    while !group.is_empty() {
        match try_group(pool, audit_key, group).await {
            Ok(outcomes) => {
                for (job, outcome) in group.drain(..).zip(outcomes) {
                    // A caller that went away still had its rotation applied; retrying the
                    // old token within the grace window replays the same successor.
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(GroupError::Job(i, e)) => {
                let _ = group.remove(i).reply.send(Err(e));
            }
            Err(GroupError::All(e)) => {
                for job in group.drain(..) {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

async fn try_group(pool: &SqlitePool, audit_key: &AppendKey, group: &[Job]) -> Result<Vec<Rotation>, GroupError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(|e| GroupError::All(map_err(e)))?;
    let mut audit_head = None;
    let mut outcomes = Vec::with_capacity(group.len());
    for (i, job) in group.iter().enumerate() {
        outcomes.push(rotate_in_tx(&mut tx, audit_key, job, &mut audit_head).await.map_err(|e| GroupError::Job(i, e))?);
    }
    tx.commit().await.map_err(|e| GroupError::All(map_err(e)))?;
    Ok(outcomes)
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
