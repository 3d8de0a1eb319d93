//! The audit trail capability: an append-only, chained log of security events.
//!
//! Each entry stores `prev_hash`, the link of the entry before it ([`GENESIS_HASH`] for the
//! first), and `hash`, its own link; ids run contiguously from 1, so an edited entry no
//! longer matches its link and a removed one leaves a gap or a broken link.
//!
//! A link is HMAC-SHA256 under [`AuditKey`] (derived from the master key, which is never in
//! the database) over the previous link and the entry's canonical bytes ([`AuditKey::link`]),
//! so whoever can write the database but lacks the key cannot recompute the links after an
//! edit. Databases written by versions before the keyed chain hold entries linked by plain
//! SHA-256 ([`plain_hash`]), which anyone can recompute. Where the keyed chain begins is
//! recorded once in [`AuditAnchor`], sealed with the key together with the last plain link,
//! so that neither the starting point nor anything before it can be changed afterwards
//! without the key; [`ChainCheck`] checks both parts. Backends must append under a write
//! lock (read the last link and insert in one transaction) so that concurrent appends keep
//! the chain linear, and seal the anchor under the same lock.

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{StorageError, StorageResult};

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

/// The link of an entry written before the keyed chain began: SHA-256 (hex) of its
/// canonical JSON form, previous link last. Anyone can recompute it, which is why entries
/// after [`AuditAnchor::keyed_from`] are linked with [`AuditKey::link`] instead.
pub fn plain_hash(id: i64, at: i64, ev: &AuditEvent, prev_hash: &str) -> String {
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

/// Constant-time equality of two link strings.
fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Label of the anchor seal's message; link messages are 10-element arrays, the seal's
/// has 4, so no link can be passed off as a seal or the other way round.
const ANCHOR_LABEL: &str = "gatepass audit anchor v1";

/// The key of the audit chain: HMAC-SHA256, derived from the master key by the caller
/// (`auth::keys::audit_chain_key`). It never reaches the database or a log.
#[derive(Clone)]
pub struct AuditKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// Wraps derived key bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self { key: Zeroizing::new(*bytes) }
    }

    fn mac(&self, message: &serde_json::Value) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.as_ref()).expect("HMAC accepts keys of any length");
        mac.update(message.to_string().as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// The link of entry `id`: HMAC-SHA256 over the previous link and the entry's canonical
    /// bytes, framed as one JSON array so that no field can bleed into another.
    pub fn link(&self, id: i64, at: i64, ev: &AuditEvent, prev_hash: &str) -> String {
        self.mac(&serde_json::json!([
            prev_hash,
            id,
            at,
            ev.event,
            ev.actor,
            ev.subject,
            ev.ip,
            ev.user_agent,
            ev.outcome,
            ev.detail
        ]))
    }

    /// The seal of an anchor: the keyed chain starts at entry `keyed_from`, whose
    /// predecessor's link is `prev_hash`, as sealed at `sealed_at`.
    pub fn seal(&self, keyed_from: i64, prev_hash: &str, sealed_at: i64) -> String {
        self.mac(&serde_json::json!([ANCHOR_LABEL, keyed_from, prev_hash, sealed_at]))
    }

    /// Checks the stored anchor (`None`: the row is missing) and returns its sealed values.
    ///
    /// # Errors
    /// Why the anchor cannot be trusted.
    pub fn check_anchor(&self, anchor: Option<&AuditAnchor>) -> Result<SealedAnchor, AnchorBreak> {
        let a = anchor.ok_or(AnchorBreak::Missing)?;
        let (Some(keyed_from), Some(prev_hash), Some(sealed_at), Some(seal)) =
            (a.keyed_from, a.prev_hash.as_deref(), a.sealed_at, a.seal.as_deref())
        else {
            return Err(AnchorBreak::Unsealed);
        };
        let genesis_ok = keyed_from > 1 || prev_hash == GENESIS_HASH;
        if keyed_from < 1 || !genesis_ok || !same(&self.seal(keyed_from, prev_hash, sealed_at), seal) {
            return Err(AnchorBreak::Invalid);
        }
        Ok(SealedAnchor { keyed_from, prev_hash: prev_hash.to_owned(), sealed_at })
    }
}

/// The `audit_chain` row as stored: where the keyed chain begins. The migration that
/// introduced the keyed chain creates it unsealed (SQL has no key); the first gatepass
/// process that opens the database seals it, under the append lock, at the entry after the
/// last one then present.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditAnchor {
    /// Id of the first keyed entry (entries before it are plain-hash linked).
    pub keyed_from: Option<i64>,
    /// Link of the entry before `keyed_from` ([`GENESIS_HASH`] when it is 1).
    pub prev_hash: Option<String>,
    /// When it was sealed.
    pub sealed_at: Option<i64>,
    /// [`AuditKey::seal`] of the three values above.
    pub seal: Option<String>,
}

/// An anchor whose seal verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedAnchor {
    /// Id of the first keyed entry.
    pub keyed_from: i64,
    /// Link of the entry before it.
    pub prev_hash: String,
    /// When it was sealed.
    pub sealed_at: i64,
}

/// Why the anchor cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorBreak {
    /// The `audit_chain` row is gone.
    Missing,
    /// The row was reset to its unsealed state after a process had sealed it.
    Unsealed,
    /// The seal does not match: the row was altered, or this process's master key is not
    /// the one the chain was sealed with.
    Invalid,
}

/// Where a chain check stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// The anchor cannot be trusted, so no entry can be.
    Anchor(AnchorBreak),
    /// An entry's stored link does not match its content (edited, or its link recomputed
    /// without the key).
    Tampered {
        /// Id of the entry.
        id: i64,
    },
    /// An entry does not link to its predecessor, or ids skip (an entry was removed).
    Unlinked {
        /// Id of the first entry after the gap.
        id: i64,
    },
    /// The plain-hash entries from before the keyed chain were rewritten consistently: the
    /// last of them no longer has the link the anchor sealed.
    PlainPartRewritten {
        /// Id of the last plain-hash entry.
        id: i64,
    },
    /// Entries the anchor says existed are gone (the trail ends before the keyed chain).
    Missing {
        /// Id of the first missing entry.
        id: i64,
    },
}

impl ChainBreak {
    /// Id of the first entry found broken (none for a broken anchor).
    pub fn id(&self) -> Option<i64> {
        match self {
            ChainBreak::Anchor(_) => None,
            ChainBreak::Tampered { id }
            | ChainBreak::Unlinked { id }
            | ChainBreak::PlainPartRewritten { id }
            | ChainBreak::Missing { id } => Some(*id),
        }
    }

    /// A short machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            ChainBreak::Anchor(AnchorBreak::Missing) => "anchor_missing",
            ChainBreak::Anchor(AnchorBreak::Unsealed) => "anchor_unsealed",
            ChainBreak::Anchor(AnchorBreak::Invalid) => "anchor_invalid",
            ChainBreak::Tampered { .. } => "edited",
            ChainBreak::Unlinked { .. } => "unlinked",
            ChainBreak::PlainPartRewritten { .. } => "plain_part_rewritten",
            ChainBreak::Missing { .. } => "missing",
        }
    }

    /// What an operator reads.
    pub fn describe(&self) -> String {
        match self {
            ChainBreak::Anchor(AnchorBreak::Missing) => {
                "the audit chain's anchor (table audit_chain) was removed".into()
            }
            ChainBreak::Anchor(AnchorBreak::Unsealed) => {
                "the audit chain's anchor was reset after it was sealed".into()
            }
            ChainBreak::Anchor(AnchorBreak::Invalid) => "the audit chain's anchor does not verify: it was altered, \
                 or GATEPASS_MASTER_KEY is not the one the chain was keyed with"
                .into(),
            ChainBreak::Tampered { id } => {
                format!("audit chain broken at entry {id}: entry was edited (its link does not match)")
            }
            ChainBreak::Unlinked { id } => {
                format!("audit chain broken at entry {id}: an entry before it was removed or replaced")
            }
            ChainBreak::PlainPartRewritten { id } => format!(
                "audit chain broken at entry {id}: the entries up to it (plain SHA-256, from before the keyed \
                 chain) were rewritten"
            ),
            ChainBreak::Missing { id } => {
                format!("audit chain broken at entry {id}: it and the entries after it were removed")
            }
        }
    }
}

/// What an intact chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries checked (the id of the last one).
    pub entries: i64,
    /// Id of the first keyed entry; entries before it are plain-hash linked.
    pub keyed_from: i64,
    /// When the anchor was sealed.
    pub sealed_at: i64,
}

impl ChainReport {
    /// Entries from before the keyed chain (plain SHA-256 links).
    pub fn plain_entries(&self) -> i64 {
        (self.keyed_from - 1).min(self.entries)
    }

    /// Entries linked with the key.
    pub fn keyed_entries(&self) -> i64 {
        self.entries - self.plain_entries()
    }
}

/// Checks the chain page by page, oldest first, against a sealed anchor.
pub struct ChainCheck<'k> {
    key: &'k AuditKey,
    anchor: SealedAnchor,
    last_id: i64,
    last_hash: String,
}

impl<'k> ChainCheck<'k> {
    /// Starts a check; the anchor must verify under `key`.
    ///
    /// # Errors
    /// [`ChainBreak::Anchor`].
    pub fn new(key: &'k AuditKey, anchor: Option<&AuditAnchor>) -> Result<Self, ChainBreak> {
        let anchor = key.check_anchor(anchor).map_err(ChainBreak::Anchor)?;
        Ok(Self { key, anchor, last_id: 0, last_hash: GENESIS_HASH.to_owned() })
    }

    /// Id of the last entry checked (to read the next page after it).
    pub fn last_id(&self) -> i64 {
        self.last_id
    }

    /// Checks the next entries, which must follow the last one checked.
    ///
    /// # Errors
    /// The first break found.
    pub fn feed(&mut self, entries: &[AuditEntry]) -> Result<(), ChainBreak> {
        let keyed_from = self.anchor.keyed_from;
        for e in entries {
            if e.id != self.last_id + 1 || !same(&e.prev_hash, &self.last_hash) {
                return Err(ChainBreak::Unlinked { id: e.id });
            }
            let expected = if e.id < keyed_from {
                plain_hash(e.id, e.at, &e.event, &e.prev_hash)
            } else {
                self.key.link(e.id, e.at, &e.event, &e.prev_hash)
            };
            if !same(&expected, &e.hash) {
                return Err(ChainBreak::Tampered { id: e.id });
            }
            // The plain part is recomputable: what pins it is the link the anchor sealed.
            if e.id == keyed_from - 1 && !same(&e.hash, &self.anchor.prev_hash) {
                return Err(ChainBreak::PlainPartRewritten { id: e.id });
            }
            self.last_id = e.id;
            self.last_hash = e.hash.clone();
        }
        Ok(())
    }

    /// Ends the check after the last page.
    ///
    /// # Errors
    /// [`ChainBreak::Missing`] when the trail ends before the entries the anchor sealed.
    pub fn finish(self) -> Result<ChainReport, ChainBreak> {
        if self.last_id < self.anchor.keyed_from - 1 {
            return Err(ChainBreak::Missing { id: self.last_id + 1 });
        }
        Ok(ChainReport { entries: self.last_id, keyed_from: self.anchor.keyed_from, sealed_at: self.anchor.sealed_at })
    }
}

/// The key appends link with, once [`AuditStore::enable_audit_appends`] set it; shared by a
/// backend's connections and tasks.
#[derive(Clone, Default)]
pub(crate) struct AppendKey(Arc<RwLock<Option<Arc<AuditKey>>>>);

impl AppendKey {
    pub(crate) fn set(&self, key: AuditKey) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(key));
    }

    /// The key, or an error: without it an append would be unverifiable, so none is made.
    pub(crate) fn get(&self) -> StorageResult<Arc<AuditKey>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or_else(|| {
            StorageError::Other("the audit trail is closed for appends (no verified audit chain key)".into())
        })
    }
}

/// Append-only audit storage.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `event` at time `at`, linking it to the last entry atomically with the key
    /// given to [`Self::enable_audit_appends`]; fails without one.
    async fn append_audit(&self, event: &AuditEvent, at: i64) -> StorageResult<AuditEntry>;
    /// Entries matching `query`, newest first.
    async fn audit_entries(&self, query: &AuditQuery) -> StorageResult<Vec<AuditEntry>>;
    /// Up to `limit` entries with id greater than `after_id`, oldest first (chain checks).
    async fn audit_chain(&self, after_id: i64, limit: i64) -> StorageResult<Vec<AuditEntry>>;
    /// The anchor row; `None` when it is missing.
    async fn audit_anchor(&self) -> StorageResult<Option<AuditAnchor>>;
    /// Seals the anchor if it is still unsealed (under the append lock: the keyed chain
    /// starts after the last entry present, whose link the seal covers); returns the row.
    async fn seal_audit_anchor(&self, key: &AuditKey, now: i64) -> StorageResult<Option<AuditAnchor>>;
    /// From now on, appends link with `key`. Call it only once the anchor verified under it.
    fn enable_audit_appends(&self, key: AuditKey);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AuditKey {
        AuditKey::from_bytes(&[7; 32])
    }

    /// `n` entries, the first `plain` of them plain-hash linked, and the matching anchor.
    fn chain(n: i64, plain: i64) -> (Vec<AuditEntry>, AuditAnchor) {
        let k = key();
        let mut prev = GENESIS_HASH.to_owned();
        let mut anchor = None;
        let entries = (1..=n)
            .map(|id| {
                if id == plain + 1 {
                    anchor = Some(AuditAnchor {
                        keyed_from: Some(id),
                        prev_hash: Some(prev.clone()),
                        sealed_at: Some(50),
                        seal: Some(k.seal(id, &prev, 50)),
                    });
                }
                let event = AuditEvent::new("login", SUCCESS).actor(format!("u{id}"));
                let hash = if id <= plain {
                    plain_hash(id, 100 + id, &event, &prev)
                } else {
                    k.link(id, 100 + id, &event, &prev)
                };
                let e = AuditEntry { id, at: 100 + id, event, prev_hash: prev.clone(), hash: hash.clone() };
                prev = hash;
                e
            })
            .collect();
        (entries, anchor.expect("anchor"))
    }

    fn check(entries: &[AuditEntry], anchor: &AuditAnchor) -> Result<ChainReport, ChainBreak> {
        let k = key();
        let mut c = ChainCheck::new(&k, Some(anchor))?;
        c.feed(entries)?;
        c.finish()
    }

    /// Recomputes plain links from entry `from` on, as a database writer without the key can.
    fn replain(entries: &mut [AuditEntry], from: i64) {
        for i in (from - 1) as usize..entries.len() {
            let prev = if i == 0 { GENESIS_HASH.to_owned() } else { entries[i - 1].hash.clone() };
            let e = &mut entries[i];
            e.prev_hash = prev;
            e.hash = plain_hash(e.id, e.at, &e.event, &e.prev_hash);
        }
    }

    #[test]
    fn intact_chains_verify_and_breaks_are_located() {
        let (c, anchor) = chain(4, 0);
        assert_eq!(check(&c, &anchor), Ok(ChainReport { entries: 4, keyed_from: 1, sealed_at: 50 }));

        let mut edited = c.clone();
        edited[2].event.outcome = FAILURE.into();
        assert_eq!(check(&edited, &anchor), Err(ChainBreak::Tampered { id: 3 }));

        let mut removed = c.clone();
        removed.remove(1);
        assert_eq!(check(&removed, &anchor), Err(ChainBreak::Unlinked { id: 3 }));

        let mut first_removed = c.clone();
        first_removed.remove(0);
        assert_eq!(check(&first_removed, &anchor).unwrap_err().id(), Some(2));

        // An edit whose links are recomputed the plain way is found at the edited entry.
        let mut recomputed = c;
        recomputed[1].event.ip = Some("10.9.9.9".into());
        replain(&mut recomputed, 2);
        assert_eq!(check(&recomputed, &anchor), Err(ChainBreak::Tampered { id: 2 }));
    }

    #[test]
    fn the_plain_part_of_an_upgraded_trail_is_pinned_by_the_anchor() {
        let (c, anchor) = chain(6, 3);
        let report = check(&c, &anchor).unwrap();
        assert_eq!((report.plain_entries(), report.keyed_entries()), (3, 3));

        // The plain part rewritten consistently: caught where it meets the anchor.
        let mut rewritten = c.clone();
        rewritten[1].event.actor = Some("someone-else".into());
        replain(&mut rewritten[..3], 2);
        assert_eq!(check(&rewritten, &anchor), Err(ChainBreak::PlainPartRewritten { id: 3 }));

        // Everything turned plain, the anchor untouched: the first keyed entry fails.
        let mut all_plain = c.clone();
        replain(&mut all_plain, 1);
        assert_eq!(check(&all_plain, &anchor), Err(ChainBreak::Tampered { id: 4 }));

        // The anchor moved past the end, or reset, or dropped: refused.
        let moved = AuditAnchor { keyed_from: Some(7), ..anchor.clone() };
        assert_eq!(check(&all_plain, &moved), Err(ChainBreak::Anchor(AnchorBreak::Invalid)));
        assert_eq!(check(&c, &AuditAnchor::default()), Err(ChainBreak::Anchor(AnchorBreak::Unsealed)));
        let k = key();
        assert!(matches!(ChainCheck::new(&k, None), Err(ChainBreak::Anchor(AnchorBreak::Missing))));
        // Another key does not verify the anchor.
        let other = AuditKey::from_bytes(&[8; 32]);
        assert!(matches!(ChainCheck::new(&other, Some(&anchor)), Err(ChainBreak::Anchor(AnchorBreak::Invalid))));

        // The trail cut short before the keyed part.
        assert_eq!(check(&c[..2], &anchor), Err(ChainBreak::Missing { id: 3 }));
    }
}
