//! Refresh-token rotations committed in groups, for both backends.
//!
//! One task per storage handle takes every rotation that is waiting and gives them to the
//! backend's [`ApplyGroup`], which applies them one after another in arrival order inside
//! one transaction (each reads what the previous ones wrote, so two presentations of one
//! token still give one successor and an old token still revokes its session) and commits
//! once. A rotation is a write with an audit entry, and both the entry's chain and the
//! commit's flush are serial; a group pays for them once instead of once per rotation.
//!
//! A rotation that fails takes no one else down: the transaction is rolled back, that
//! caller gets the error, and the rest of the group is applied again without it.

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::audit::AuditEvent;
use super::{RotateRequest, Rotation, StorageError, StorageResult};

/// Most rotations committed in one transaction; bounds how long one group holds its locks.
const MAX_GROUP: usize = 64;
/// Rotations that may wait for the writer before callers are held back.
const QUEUE: usize = 1024;

/// A rotation waiting for the writer task ([`RotateRequest`], owned).
pub(super) struct Job {
    pub(super) presented_hash: String,
    pub(super) successor_hash: String,
    pub(super) now: i64,
    pub(super) grace_secs: i64,
    pub(super) refresh_ttl_secs: i64,
    pub(super) access_expires_at: i64,
    pub(super) audit: Option<AuditEvent>,
    reply: oneshot::Sender<StorageResult<Rotation>>,
}

/// Why a group could not be committed.
pub(super) enum GroupError {
    /// Rotation `i` failed; the others may succeed without it.
    Job(usize, StorageError),
    /// Beginning or committing failed: nothing was applied.
    All(StorageError),
}

/// A backend's way of applying a group in one transaction.
#[async_trait]
pub(super) trait ApplyGroup: Send + Sync + 'static {
    /// Applies every job of `group` in order and commits, returning each outcome; or
    /// applies nothing.
    async fn apply(&self, group: &[Job]) -> Result<Vec<Rotation>, GroupError>;
}

/// Handle to the task that commits rotations in groups.
#[derive(Clone)]
pub(super) struct Rotator {
    jobs: mpsc::Sender<Job>,
}

impl Rotator {
    /// Starts the writer task on the current Tokio runtime; it ends when the last handle
    /// is dropped.
    pub(super) fn spawn(backend: impl ApplyGroup) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(backend, rx));
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

async fn run(backend: impl ApplyGroup, mut rx: mpsc::Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        commit_group(&backend, &mut group).await;
    }
}

/// Applies and answers every job in `group`, leaving it empty.
async fn commit_group(backend: &impl ApplyGroup, group: &mut Vec<Job>) {
    while !group.is_empty() {
        match backend.apply(group).await {
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
