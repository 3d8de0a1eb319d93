//! Which instances serve this database: each process writes a heartbeat every
//! [`HEARTBEAT_EVERY`], and the admin console's overview lists them, up or not seen for a
//! while. With SQLite that is this process (and any other on the same file).

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

use super::{AuthService, now};
use crate::error::Result;
use crate::storage::InstanceBeat;

/// How often an instance says it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// An instance not heard from for longer than this is shown as down.
pub const DOWN_AFTER_SECS: i64 = 35;
/// An instance not heard from for longer than this is forgotten.
const FORGET_AFTER_SECS: i64 = 86_400;

/// This process, as the other instances see it.
#[derive(Debug, Clone)]
pub struct ThisInstance {
    /// A UUID chosen at start-up.
    pub id: String,
    /// The address it listens on.
    pub listen: String,
    /// When it started (epoch seconds).
    pub started_at: i64,
}

impl ThisInstance {
    /// This process, listening on `listen`, starting now.
    pub fn new(listen: std::net::SocketAddr) -> Self {
        Self { id: uuid::Uuid::new_v4().to_string(), listen: listen.to_string(), started_at: now() }
    }
}

/// An instance as the overview shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceHealth {
    /// Its latest heartbeat.
    pub beat: InstanceBeat,
    /// Heard from within [`DOWN_AFTER_SECS`].
    pub up: bool,
    /// Whether it is the process answering.
    pub this: bool,
}

impl AuthService {
    /// Writes this process's heartbeat (and forgets instances silent for a day).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn heartbeat(&self, me: &ThisInstance) -> Result<()> {
        let t = now();
        let beat = InstanceBeat {
            id: me.id.clone(),
            listen: me.listen.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: me.started_at,
            last_seen: t,
        };
        Ok(self.core.storage.heartbeat(&beat, t - FORGET_AFTER_SECS).await?)
    }

    /// The instances remembered, the most recently seen first; `this` marks `me`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn instances(&self, me: Option<&str>) -> Result<Vec<InstanceHealth>> {
        let t = now();
        let beats = self.core.storage.instances().await?;
        Ok(beats
            .into_iter()
            .map(|beat| InstanceHealth {
                up: t - beat.last_seen <= DOWN_AFTER_SECS,
                this: Some(beat.id.as_str()) == me,
                beat,
            })
            .collect())
    }
}

/// Writes `me`'s heartbeat now and every [`HEARTBEAT_EVERY`]. Abort the handle to stop.
pub fn spawn_heartbeat(service: Arc<AuthService>, me: ThisInstance) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
        loop {
            tick.tick().await;
            if let Err(e) = service.heartbeat(&me).await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
    })
}
