//! The keyed audit chain: opening the trail for appends and checking it.
//!
//! Links are HMACs under a key derived from the master key (see
//! [`crate::storage::audit`]). When a process opens the database, the anchor that says
//! where the keyed chain begins is sealed if no process did so yet (a new database, or one
//! just upgraded from plain SHA-256 links), and must verify under this process's key;
//! otherwise nothing is appended, since entries linked under another key would only look
//! like tampering later. [`Core::verify_audit_chain`] checks the whole trail for
//! `gatepass audit verify` and the admin API; [`Core::recent_audit_verdict`] gives the
//! console's audit page a check at most a minute old, so that browsing the trail does not
//! read all of it on every page.

use std::time::Duration;
use tokio::time::Instant;

use super::{Core, now};
use crate::error::Result;
use crate::storage::Storage;
use crate::storage::audit::{AuditKey, ChainBreak, ChainCheck, ChainReport};

/// Entries read per page while checking the chain.
const PAGE: i64 = 1000;

/// How old a verdict the console's audit page may show.
pub const PAGE_VERDICT_MAX_AGE: Duration = Duration::from_secs(60);

/// A whole-chain check's verdict.
pub type Verdict = std::result::Result<ChainReport, ChainBreak>;

/// The last whole-chain check on this instance: its verdict and when it ran.
#[derive(Default)]
pub struct LastCheck(tokio::sync::Mutex<Option<(Instant, Verdict)>>);

/// Seals the anchor if needed, checks it under `key`, and lets appends use `key`.
///
/// # Errors
/// When storage fails, or the anchor is missing or does not verify under `key`: a
/// different `GATEPASS_MASTER_KEY` from the one the chain was keyed with, or an altered
/// `audit_chain` row.
pub(super) async fn open(storage: &dyn Storage, key: &AuditKey) -> anyhow::Result<()> {
    let was_sealed = storage.audit_anchor().await?.is_some_and(|a| a.seal.is_some());
    let anchor = storage.seal_audit_anchor(key, now()).await?;
    let sealed = key.check_anchor(anchor.as_ref()).map_err(|broken| {
        anyhow::anyhow!(
            "{}; refusing to append to the audit trail (check GATEPASS_MASTER_KEY; `gatepass audit verify` \
             reports the state of the chain)",
            ChainBreak::Anchor(broken).describe()
        )
    })?;
    if !was_sealed {
        if sealed.keyed_from > 1 {
            // Worth a line in every log: the keyed part's start should only ever be set once,
            // at the upgrade. Seeing this again means the anchor was reset.
            tracing::warn!(
                keyed_from = sealed.keyed_from,
                "audit trail: entries from {} on are linked with the audit key; the {} before keep their plain \
                 SHA-256 links, now pinned by the sealed anchor",
                sealed.keyed_from,
                sealed.keyed_from - 1
            );
        } else {
            tracing::info!("audit trail: every entry is linked with the audit key");
        }
    }
    storage.enable_audit_appends(key.clone());
    Ok(())
}

impl Core {
    /// Checks the audit trail from the anchor and the first entry on: returns what it
    /// holds, or where it breaks. The console shows this verdict next.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn verify_audit_chain(&self) -> Result<Verdict> {
        Ok(self.audit_verdict(None).await?.0)
    }

    /// The verdict of a whole-chain check that ran at most `max_age` ago, and how long
    /// ago: the last one, or a new one when it is older. Callers arriving during a check
    /// wait for it instead of starting their own.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn recent_audit_verdict(&self, max_age: Duration) -> Result<(Verdict, Duration)> {
        self.audit_verdict(Some(max_age)).await
    }

    /// The last whole-chain check's verdict while younger than `reuse_within`, else (and
    /// always without it) a new check, which becomes the last one.
    async fn audit_verdict(&self, reuse_within: Option<Duration>) -> Result<(Verdict, Duration)> {
        let mut last = self.chain_check.0.lock().await;
        if let (Some(max_age), Some((at, verdict))) = (reuse_within, last.as_ref())
            && at.elapsed() <= max_age
        {
            return Ok((verdict.clone(), at.elapsed()));
        }
        let verdict = self.check_audit_chain().await?;
        *last = Some((Instant::now(), verdict.clone()));
        Ok((verdict, Duration::ZERO))
    }

    async fn check_audit_chain(&self) -> Result<Verdict> {
        let anchor = self.storage.audit_anchor().await?;
        let mut check = match ChainCheck::new(&self.audit_key, anchor.as_ref()) {
            Ok(check) => check,
            Err(broken) => return Ok(Err(broken)),
        };
        loop {
            let page = self.storage.audit_chain(check.last_id(), PAGE).await?;
            if page.is_empty() {
                return Ok(check.finish());
            }
            if let Err(broken) = check.feed(&page) {
                return Ok(Err(broken));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::passwords::{HashCost, PasswordHasher};
    use crate::service::settings::RuntimeSettings;
    use crate::storage::audit::AuditEvent;
    use std::sync::Arc;

    #[tokio::test]
    async fn the_page_verdict_is_reused_while_young_and_an_explicit_check_renews_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("audit.db").display());
        let storage: Arc<dyn Storage> = Arc::new(crate::storage::SqliteStorage::connect(&url).await.unwrap());
        let hasher = PasswordHasher::new(HashCost { memory_kib: 1024, iterations: 1, parallelism: 1 }, 1).unwrap();
        let core =
            Core::open(storage, hasher, RuntimeSettings::default(), AuditKey::from_bytes(&[7; 32])).await.unwrap();
        core.audit(AuditEvent::new("test_event", "success")).await;
        let (verdict, age) = core.recent_audit_verdict(PAGE_VERDICT_MAX_AGE).await.unwrap();
        assert_eq!((verdict.unwrap().entries, age), (1, Duration::ZERO));

        // Young enough: the same verdict, however many entries were added since.
        core.audit(AuditEvent::new("test_event", "success")).await;
        let (verdict, age) = core.recent_audit_verdict(PAGE_VERDICT_MAX_AGE).await.unwrap();
        assert_eq!(verdict.unwrap().entries, 1);
        assert!(age > Duration::ZERO);

        // Too old: a new check.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let (verdict, age) = core.recent_audit_verdict(Duration::from_millis(1)).await.unwrap();
        assert_eq!((verdict.unwrap().entries, age), (2, Duration::ZERO));

        // An explicit whole check is what the page shows next.
        core.audit(AuditEvent::new("test_event", "success")).await;
        assert_eq!(core.verify_audit_chain().await.unwrap().unwrap().entries, 3);
        let (verdict, _) = core.recent_audit_verdict(PAGE_VERDICT_MAX_AGE).await.unwrap();
        assert_eq!(verdict.unwrap().entries, 3);
    }
}
