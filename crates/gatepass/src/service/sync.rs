//! Keeps this instance's in-memory state (revoked sessions, runtime settings, signing
//! keys) in step with changes made by other writers: other instances on the same database,
//! or the command line.
//!
//! Protected requests consult memory only, so the guarantee "a revocation made anywhere is
//! enforced everywhere within a second" (of a session or of a signing key) rests on these
//! tasks:
//! - with a backend that pushes changes (PostgreSQL `LISTEN/NOTIFY`) each change is applied
//!   as it arrives, and everything is reloaded after the subscription is (re)established,
//!   because notifications sent while it was down are lost ([`spawn_follower`]);
//! - on every backend, a once-a-second maintenance tick reloads revocations and signing keys
//!   when their versions changed, reloads the settings, and sweeps expired rows every minute
//!   ([`spawn_maintenance`]); on SQLite (one machine, possibly a CLI writing beside the
//!   server) that tick is what picks changes up;
//! - a slower tick reloads the signing keys whatever happened, for keys whose activation or
//!   expiry time came ([`spawn_key_reload`]).
//!
//! None of this ever makes a request fail: while storage is unreachable it logs, backs off
//! and retries, and the last known state stays in force.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

use super::{AuthService, now};
use crate::error::Result;
use crate::storage::{Change, ChangeSubscription};

/// Longest wait between attempts to re-subscribe while the database is unreachable; short,
/// because until the subscription is back, other instances' revocations are not seen.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Starts following the backend's change feed, if it has one; abort the handle to stop.
pub fn spawn_follower(service: Arc<AuthService>) -> JoinHandle<()> {
    tokio::spawn(async move { follow_feed(&service).await })
}

async fn follow_feed(service: &AuthService) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match service.core().storage.subscribe().await {
            Ok(Some(sub)) => {
                tracing::debug!("change feed subscribed");
                backoff = Duration::from_millis(250);
                if let Err(e) = follow(service, sub).await {
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
async fn follow(service: &AuthService, mut sub: Box<dyn ChangeSubscription>) -> Result<()> {
    let core = service.core();
    // Changes made between start-up (or the previous subscription's end) and now were not
    // seen by anyone on our behalf: reload once the subscription is live.
    resync(service).await?;
    loop {
        match sub.next().await? {
            Change::Revoked(r) => {
                // A revocation whose tokens have all expired needs no entry.
                if r.until > now() {
                    core.apply_revocations(vec![r]);
                }
            }
            Change::SettingsChanged => core.reload_settings().await?,
            Change::KeysChanged => reload_keys(service).await,
            Change::Resync => {
                tracing::info!("change feed reconnected; reloading revocations, settings and keys");
                resync(service).await?;
            }
        }
    }
}

/// Reloads every live revocation, the runtime settings and the signing keys.
async fn resync(service: &AuthService) -> Result<()> {
    let core = service.core();
    core.load_revocations().await?;
    core.reload_settings().await?;
    reload_keys(service).await;
    Ok(())
}

/// Reloads the signing keys. A failure (a key that cannot be decrypted, say) is logged and
/// left to the next tick: it says nothing about the feed, which must go on delivering
/// session revocations.
async fn reload_keys(service: &AuthService) {
    if let Err(e) = service.reload_keys().await {
        tracing::warn!(error = %e, "signing-key reload failed; keeping the current keys");
    }
}

/// Runs `reload` when `version` differs from the last one seen, remembering it once the
/// reload succeeded. The version is read before reloading: a change committed in between
/// changes it again, so the next tick reloads once more.
async fn reload_on_change<F: std::future::Future<Output = Result<()>>>(
    what: &str,
    version: crate::storage::StorageResult<i64>,
    seen: &mut Option<i64>,
    reload: impl FnOnce() -> F,
) {
    match version {
        Ok(version) if *seen == Some(version) => {}
        Ok(version) => match reload().await {
            Ok(()) => *seen = Some(version),
            Err(e) => tracing::warn!(error = %e, "{what} reload failed"),
        },
        Err(e) => tracing::warn!(error = %e, "{what} check failed"),
    }
}

/// Starts the once-a-second maintenance tick; `on_tick` runs first on every tick (the
/// composition root drains metrics buffers there). Abort the handle to stop.
pub fn spawn_maintenance(service: Arc<AuthService>, on_tick: impl Fn() + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let (mut seen, mut seen_keys) = (None, None);
        for n in 0u64.. {
            tick.tick().await;
            on_tick();
            let core = service.core();
            let version = core.storage.revocations_version().await;
            reload_on_change("revocation", version, &mut seen, || async { core.load_revocations().await.map(drop) })
                .await;
            // A key revoked (or added) by another process: refused here within the second.
            let version = core.storage.signing_keys_version().await;
            reload_on_change("signing-key", version, &mut seen_keys, || service.reload_keys()).await;
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
