//! Keeps this instance's in-memory state (revoked sessions, runtime settings) in step with
//! changes made by other writers: other instances on the same database, or the CLI.
//!
//! Protected requests consult memory only, so the guarantee "a revocation made anywhere is
//! enforced everywhere within a second" rests on this task:
//! - with a backend that pushes changes (PostgreSQL `LISTEN/NOTIFY`) each change is applied
//!   as it arrives, and everything is reloaded after the subscription is (re)established,
//!   because notifications sent while it was down are lost;
//! - otherwise (SQLite: one machine, possibly a CLI writing beside the server) the server's
//!   once-a-second maintenance task in `app.rs` reloads whatever changed.
//!
//! It never makes a request fail: while storage is unreachable it logs, backs off and
//! retries, and the last known state stays in force.

use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

use crate::service::{AuthService, now};
use crate::storage::{Change, ChangeSubscription, StorageError};

/// Longest wait between attempts to re-subscribe while the database is unreachable; short,
/// because until the subscription is back, other instances' revocations are not seen.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Starts the synchronisation task for `service`; abort the handle to stop it.
pub fn spawn(service: Arc<AuthService>) -> JoinHandle<()> {
    tokio::spawn(run(service))
}

async fn run(service: Arc<AuthService>) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match service.storage().subscribe().await {
            Ok(Some(sub)) => {
                tracing::debug!("change feed subscribed");
                backoff = Duration::from_millis(250);
                if let Err(e) = follow(&service, sub).await {
                    tracing::warn!(error = %e, "change feed lost; resubscribing");
                }
            }
            // Without a change feed (SQLite), the once-a-second reload in `app.rs` keeps
            // revocations and settings current.
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to the change feed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Applies pushed changes until the subscription fails.
async fn follow(service: &AuthService, mut sub: Box<dyn ChangeSubscription>) -> Result<(), StorageError> {
    // Changes made between start-up (or the previous subscription's end) and now were not
    // seen by anyone on our behalf: reload once the subscription is live.
    resync(service).await?;
    loop {
        match sub.next().await? {
            Change::Revoked(r) => {
                // A revocation whose tokens have all expired needs no entry.
                if r.until > now() {
                    service.revoked(vec![r]);
                }
            }
            Change::SettingsChanged => reload_settings(service).await?,
            Change::Resync => {
                tracing::info!("change feed reconnected; reloading revocations and settings");
                resync(service).await?;
            }
        }
    }
}

/// Reloads every live revocation and the runtime settings.
async fn resync(service: &AuthService) -> Result<(), StorageError> {
    let list = service.storage().live_revocations(now()).await?;
    service.revoked(list);
    reload_settings(service).await
}

async fn reload_settings(service: &AuthService) -> Result<(), StorageError> {
    // Under the update lock, so a concurrent PATCH on this instance is never undone.
    let _guard = crate::settings::UPDATES.lock().await;
    let stored = service.storage().settings().await?;
    let mut settings = service.settings();
    crate::settings::apply_stored(&mut settings, &stored);
    service.set_settings(settings);
    Ok(())
}
