//! Keeps this instance's in-memory state (revoked sessions, runtime settings, signing
//! keys) in step with changes made by other writers: other instances on the same database,
//! or the command line.
//!
//! Protected requests consult memory only, so the guarantee "a revocation made anywhere is
//! enforced everywhere within a second" rests on these tasks:
//! - with a backend that pushes changes (PostgreSQL `LISTEN/NOTIFY`) each change is applied
//!   as it arrives, and everything is reloaded after the subscription is (re)established,
//!   because notifications sent while it was down are lost ([`spawn_follower`]);
//! - on every backend, a once-a-second maintenance tick reloads revocations when their
//!   version changed, reloads the settings, and sweeps expired rows every minute
//!   ([`spawn_maintenance`]); on SQLite (one machine, possibly a CLI writing beside the
//!   server) that tick is what picks changes up.
//!
//! None of this ever makes a request fail: while storage is unreachable it logs, backs off
//! and retries, and the last known state stays in force.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

use super::{AuthService, Core, now};
use crate::error::Result;
use crate::storage::{Change, ChangeSubscription};

/// Longest wait between attempts to re-subscribe while the database is unreachable; short,
/// because until the subscription is back, other instances' revocations are not seen.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Starts following the backend's change feed, if it has one; abort the handle to stop.
pub fn spawn_follower(service: Arc<AuthService>) -> JoinHandle<()> {
    tokio::spawn(async move { follow_feed(service.core()).await })
}

async fn follow_feed(core: &Core) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match core.storage.subscribe().await {
            Ok(Some(sub)) => {
                tracing::debug!("change feed subscribed");
                backoff = Duration::from_millis(250);
                if let Err(e) = follow(core, sub).await {
                    tracing::warn!(error = %e, "change feed lost; resubscribing");
                }
            }
            // Without a change feed (SQLite), the maintenance tick keeps revocations and
            // settings current.
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to the change feed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Applies pushed changes until the subscription fails.
async fn follow(core: &Core, mut sub: Box<dyn ChangeSubscription>) -> Result<()> {
    // Changes made between start-up (or the previous subscription's end) and now were not
    // seen by anyone on our behalf: reload once the subscription is live.
    resync(core).await?;
    loop {
        match sub.next().await? {
            Change::Revoked(r) => {
                // A revocation whose tokens have all expired needs no entry.
                if r.until > now() {
                    core.apply_revocations(vec![r]);
                }
            }
            Change::SettingsChanged => core.reload_settings().await?,
            Change::Resync => {
                tracing::info!("change feed reconnected; reloading revocations and settings");
                resync(core).await?;
            }
        }
    }
}

/// Reloads every live revocation and the runtime settings.
async fn resync(core: &Core) -> Result<()> {
    core.load_revocations().await?;
    core.reload_settings().await
}

/// Starts the once-a-second maintenance tick; `on_tick` runs first on every tick (the
/// composition root drains metrics buffers there). Abort the handle to stop.
pub fn spawn_maintenance(service: Arc<AuthService>, on_tick: impl Fn() + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut seen = None;
        for n in 0u64.. {
            tick.tick().await;
            on_tick();
            let core = service.core();
            // Read the version before reloading: a revocation committed in between changes
            // it again, so the next tick reloads once more.
            match core.storage.revocations_version().await {
                Ok(version) if seen == Some(version) => {}
                Ok(version) => match core.load_revocations().await {
                    Ok(_) => seen = Some(version),
                    Err(e) => tracing::warn!(error = %e, "revocation reload failed"),
                },
                Err(e) => tracing::warn!(error = %e, "revocation check failed"),
            }
            if let Err(e) = core.reload_settings().await {
                tracing::warn!(error = %e, "settings reload failed");
            }
            if n % 60 == 59
                && let Err(e) = service.sweep().await
            {
                tracing::warn!(error = %e, "sweep failed");
            }
        }
    })
}

/// Starts reloading the signing keys every `every` (rotations made elsewhere, keys that
/// become active or expire). Abort the handle to stop.
pub fn spawn_key_reload(service: Arc<AuthService>, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = service.reload_keys().await {
                tracing::warn!(error = %e, "signing-key reload failed; keeping the current keys");
            }
        }
    })
}
