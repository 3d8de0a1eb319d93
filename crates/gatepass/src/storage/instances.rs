//! Heartbeats of the instances serving one database, for the admin console's overview.

use async_trait::async_trait;

use super::StorageResult;

/// One instance's latest heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstanceBeat {
    /// Chosen by the process at start-up (a UUID).
    pub id: String,
    /// The address it listens on.
    pub listen: String,
    /// Its gatepass version.
    pub version: String,
    /// When it started (epoch seconds).
    pub started_at: i64,
    /// Its latest heartbeat (epoch seconds).
    pub last_seen: i64,
}

/// The instances' heartbeats.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Records `beat` (inserting the instance or moving its `last_seen`), and forgets the
    /// instances last seen before `forget_before`, in one transaction.
    async fn heartbeat(&self, beat: &InstanceBeat, forget_before: i64) -> StorageResult<()>;
    /// Every instance remembered, the most recently seen first.
    async fn instances(&self) -> StorageResult<Vec<InstanceBeat>>;
}

/// The upsert both backends run.
pub(super) const HEARTBEAT_SQL: &str = "INSERT INTO instances (id, listen, version, started_at, last_seen) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, \
     listen = excluded.listen, version = excluded.version";
/// The pruning both backends run.
pub(super) const FORGET_SQL: &str = "DELETE FROM instances WHERE last_seen < $1";
/// The listing both backends run.
pub(super) const LIST_SQL: &str =
    "SELECT id, listen, version, started_at, last_seen FROM instances ORDER BY last_seen DESC, id";
