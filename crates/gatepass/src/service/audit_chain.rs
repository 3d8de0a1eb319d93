//! The keyed audit chain: opening the trail for appends and checking it.
//!
//! Links are HMACs under a key derived from the master key (see
//! [`crate::storage::audit`]). When a process opens the database, the anchor that says
//! where the keyed chain begins is sealed if no process did so yet (a new database, or one
//! just upgraded from plain SHA-256 links), and must verify under this process's key;
//! otherwise nothing is appended, since entries linked under another key would only look
//! like tampering later. [`Core::verify_audit_chain`] checks the whole trail for
//! `gatepass audit verify` and the admin API.

use super::{Core, now};
use crate::error::Result;
use crate::storage::Storage;
use crate::storage::audit::{AuditKey, ChainBreak, ChainCheck, ChainReport};

/// Entries read per page while checking the chain.
const PAGE: i64 = 1000;

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
    /// holds, or where it breaks.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn verify_audit_chain(&self) -> Result<std::result::Result<ChainReport, ChainBreak>> {
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
