//! The health check's verdict (`GET /healthz`): whether the database answers, probed at
//! most once per [`PROBE_INTERVAL`] however often the check is asked.
//!
//! `/healthz` is unauthenticated, so a database round trip per request would make it the
//! cheapest way to load the database from outside. Between probes the last verdict is
//! served; when it is older than the interval, one caller probes and every concurrent
//! caller waits for that probe instead of starting its own.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::AuthService;

/// How old a verdict may be before the next check probes the database again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The last verdict and when it was made.
pub(crate) struct HealthProbe {
    /// Process-relative origin of `checked_at_ms`.
    origin: Instant,
    /// Milliseconds after `origin` of the last probe's end, plus one (0: never probed).
    checked_at_ms: AtomicU64,
    ok: AtomicBool,
    /// Held while probing, so that concurrent checks share one probe.
    probing: Mutex<()>,
}

impl HealthProbe {
    pub(crate) fn new() -> Self {
        Self {
            origin: Instant::now(),
            checked_at_ms: AtomicU64::new(0),
            ok: AtomicBool::new(false),
            probing: Mutex::new(()),
        }
    }

    /// The last verdict, if it is recent enough to serve.
    fn fresh(&self) -> Option<bool> {
        let at = self.checked_at_ms.load(Ordering::Acquire);
        let now = self.origin.elapsed().as_millis() as u64 + 1;
        (at != 0 && now.saturating_sub(at) < PROBE_INTERVAL.as_millis() as u64).then(|| self.ok.load(Ordering::Acquire))
    }

    fn record(&self, ok: bool) {
        self.ok.store(ok, Ordering::Release);
        self.checked_at_ms.store(self.origin.elapsed().as_millis() as u64 + 1, Ordering::Release);
    }

    /// The verdict: the last one while it is fresh, else `probe`'s, run by one caller at a
    /// time.
    async fn verdict<F: Future<Output = bool>>(&self, probe: impl FnOnce() -> F) -> bool {
        if let Some(ok) = self.fresh() {
            return ok;
        }
        let _probing = self.probing.lock().await;
        // Another caller may have probed while this one waited.
        if let Some(ok) = self.fresh() {
            return ok;
        }
        let ok = probe().await;
        self.record(ok);
        ok
    }
}

impl AuthService {
    /// Whether the database answers, as of at most [`PROBE_INTERVAL`] ago.
    pub async fn healthy(&self) -> bool {
        let storage = &self.core.storage;
        self.core
            .health
            .verdict(|| async {
                match storage.ping().await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "health check failed");
                        false
                    }
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(start_paused = true)]
    async fn concurrent_checks_share_one_probe_per_interval() {
        let health = Arc::new(HealthProbe::new());
        let probes = Arc::new(AtomicUsize::new(0));
        let burst = |ok: bool| {
            let checks: Vec<_> = (0..100)
                .map(|_| {
                    let (health, probes) = (health.clone(), probes.clone());
                    tokio::spawn(async move {
                        health
                            .verdict(|| async {
                                probes.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                ok
                            })
                            .await
                    })
                })
                .collect();
            async move {
                let mut verdicts = Vec::new();
                for c in checks {
                    verdicts.push(c.await.unwrap());
                }
                verdicts
            }
        };
        assert!(burst(true).await.iter().all(|ok| *ok));
        assert_eq!(probes.load(Ordering::SeqCst), 1, "a hundred concurrent checks, one probe");
        // Within the interval the verdict is repeated, even if the database went away.
        assert!(burst(false).await.iter().all(|ok| *ok));
        assert_eq!(probes.load(Ordering::SeqCst), 1);
        // After it, the next check probes again and reports what it finds.
        tokio::time::sleep(PROBE_INTERVAL).await;
        assert!(burst(false).await.iter().all(|ok| !*ok));
        assert_eq!(probes.load(Ordering::SeqCst), 2);
    }
}
