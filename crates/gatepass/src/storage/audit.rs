//! The audit trail capability: an append-only, hash-chained log of security events.
//!
//! Each entry's `hash` is the SHA-256 of its canonical form, which includes the previous
//! entry's hash (`prev_hash`) and its own id; ids run contiguously from 1. Editing an
//! entry changes its hash, removing one leaves a gap or a broken link, so
//! [`verify_chain`] finds both. Backends must append under a write lock (read the last
//! hash and insert in one transaction) so that concurrent appends keep the chain linear.

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::StorageResult;

/// `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Outcome of an audited action.
pub const SUCCESS: &str = "success";
/// Outcome of a refused action.
pub const FAILURE: &str = "failure";

/// A security event about to be recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEvent {
    /// Event name, e.g. `login_failed`, `user_disabled`.
    pub event: String,
    /// Who acted: a user id, `operator` or `cli`; `None` for anonymous callers.
    pub actor: Option<String>,
    /// The account acted upon, if any (user id).
    pub subject: Option<String>,
    /// Client IP address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// [`SUCCESS`] or [`FAILURE`].
    pub outcome: String,
    /// Event-specific details as JSON text (kept internal: e.g. why a login failed).
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event named `event` with outcome `outcome`.
    pub fn new(event: &str, outcome: &str) -> Self {
        Self { event: event.to_owned(), outcome: outcome.to_owned(), ..Self::default() }
    }

    /// Sets the actor.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the subject.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets client IP and user agent.
    pub fn client(mut self, ip: Option<&str>, user_agent: Option<&str>) -> Self {
        self.ip = ip.map(str::to_owned);
        self.user_agent = user_agent.map(str::to_owned);
        self
    }

    /// Sets the details (a JSON value).
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail.to_string());
        self
    }
}

/// A recorded entry (read from a row of `audit_log` as it is).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub id: i64,
    /// When, seconds since the epoch.
    pub at: i64,
    /// What was recorded.
    #[sqlx(flatten)]
    pub event: AuditEvent,
    /// Hash of the previous entry ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// Hash of this entry's canonical form.
    pub hash: String,
}

/// Filters for reading the trail, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Entries whose actor or subject is this user id.
    pub user: Option<String>,
    /// Entries of this event name.
    pub event: Option<String>,
    /// At or after this time.
    pub from: Option<i64>,
    /// At or before this time.
    pub to: Option<i64>,
    /// Only entries with an id below this (keyset paging).
    pub before_id: Option<i64>,
    /// Page size.
    pub limit: i64,
}

/// The hash an entry must carry: SHA-256 (hex) of its canonical JSON form.
pub fn entry_hash(id: i64, at: i64, ev: &AuditEvent, prev_hash: &str) -> String {
    let canonical = serde_json::json!([
        id,
        at,
        ev.event,
        ev.actor,
        ev.subject,
        ev.ip,
        ev.user_agent,
        ev.outcome,
        ev.detail,
        prev_hash
    ])
    .to_string();
    hex(&Sha256::digest(canonical.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a chain check stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// An entry's stored hash does not match its content (edited).
    Tampered {
        /// Id of the entry.
        id: i64,
    },
    /// An entry does not link to its predecessor, or ids skip (an entry was removed).
    Unlinked {
        /// Id of the first entry after the gap.
        id: i64,
    },
}

impl ChainBreak {
    /// Id of the first entry found broken.
    pub fn id(&self) -> i64 {
        match self {
            ChainBreak::Tampered { id } | ChainBreak::Unlinked { id } => *id,
        }
    }
}

/// Checks one page of the chain, given the id and hash of the entry before it (`0` and
/// [`GENESIS_HASH`] at the start). Returns the last id and hash, to continue from.
pub fn verify_chain(
    entries: &[AuditEntry],
    mut last_id: i64,
    mut last_hash: String,
) -> Result<(i64, String), ChainBreak> {
    for e in entries {
        if e.id != last_id + 1 || e.prev_hash != last_hash {
            return Err(ChainBreak::Unlinked { id: e.id });
        }
        if entry_hash(e.id, e.at, &e.event, &e.prev_hash) != e.hash {
            return Err(ChainBreak::Tampered { id: e.id });
        }
        last_id = e.id;
        last_hash = e.hash.clone();
    }
    Ok((last_id, last_hash))
}

/// Append-only audit storage.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `event` at time `at`, chaining it to the last entry atomically.
    async fn append_audit(&self, event: &AuditEvent, at: i64) -> StorageResult<AuditEntry>;
    /// Entries matching `query`, newest first.
    async fn audit_entries(&self, query: &AuditQuery) -> StorageResult<Vec<AuditEntry>>;
    /// Up to `limit` entries with id greater than `after_id`, oldest first (chain checks).
    async fn audit_chain(&self, after_id: i64, limit: i64) -> StorageResult<Vec<AuditEntry>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_owned();
        (1..=n)
            .map(|id| {
                let event = AuditEvent::new("login", SUCCESS).actor(format!("u{id}"));
                let hash = entry_hash(id, 100 + id, &event, &prev);
                let e = AuditEntry { id, at: 100 + id, event, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies_and_breaks_are_located() {
        let c = chain(4);
        assert!(verify_chain(&c, 0, GENESIS_HASH.into()).is_ok());

        let mut edited = c.clone();
        edited[2].event.outcome = FAILURE.into();
        assert_eq!(verify_chain(&edited, 0, GENESIS_HASH.into()), Err(ChainBreak::Tampered { id: 3 }));

        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(verify_chain(&removed, 0, GENESIS_HASH.into()), Err(ChainBreak::Unlinked { id: 3 }));

        // Removing the very first entry is found as well.
        let mut first_removed = c;
        first_removed.remove(0);
        assert_eq!(verify_chain(&first_removed, 0, GENESIS_HASH.into()).unwrap_err().id(), 2);
    }
}
