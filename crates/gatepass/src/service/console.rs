//! The admin console's own use cases: the overview, account search with filters, one
//! account's full picture, and ending one session of an account. Every other console
//! action calls the use case the admin API calls ([`admin`](super::admin),
//! [`keys`](super::keys), [`settings`](super::settings), [`oauth`](super::oauth), …), so a
//! change has one code path whichever door it comes through.

use super::admin::{Actor, page_limit};
use super::{AuthService, Core, now};
use crate::auth::keys::KeyStatus;
use crate::domain::{Role, User, Username};
use crate::error::{Error, Result};
use crate::storage::audit::{AuditEntry, AuditQuery};
use crate::storage::{HourlyCount, SessionFilter, SessionRecord, UserSearch};

/// The sign-in events the overview counts.
pub const SIGN_IN_EVENTS: [&str; 2] = ["login", "login_failed"];

/// A console search as asked for; [`Core::search_users`] checks it.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// A name or address prefix (at most 64 characters).
    pub q: Option<String>,
    /// A role name.
    pub role: Option<String>,
    /// Only disabled (`Some(true)`) or only enabled (`Some(false)`) accounts.
    pub disabled: Option<bool>,
    /// Only accounts whose address is not verified.
    pub unverified: bool,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Accounts to skip.
    pub offset: Option<i64>,
}

/// A page of search results.
#[derive(Debug)]
pub struct SearchPage {
    /// Accounts in name order.
    pub users: Vec<User>,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
    /// Accounts matching in all.
    pub total: i64,
}

/// One account as the console shows it.
#[derive(Debug)]
pub struct UserDetail {
    /// The account.
    pub user: User,
    /// Its live sessions.
    pub sessions: Vec<SessionRecord>,
    /// `None`: no authenticator app; `Some(false)`: enrolment pending; `Some(true)`: active.
    pub totp: Option<bool>,
    /// Registered passkeys.
    pub passkeys: i64,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
    /// OAuth clients the account consented to: (client id, name, scopes).
    pub consents: Vec<(String, String, Vec<String>)>,
    /// The newest entries of its audit trail.
    pub audit: Vec<AuditEntry>,
}

/// What the overview shows.
#[derive(Debug)]
pub struct Overview {
    /// Accounts.
    pub users: i64,
    /// Live sessions.
    pub live_sessions: i64,
    /// Mails waiting to be sent.
    pub outbox: i64,
    /// Sign-ins (`login`) and failures (`login_failed`) per hour over the last 24 h,
    /// oldest hour first.
    pub sign_ins: [i64; 24],
    /// Failures, as `sign_ins`.
    pub failures: [i64; 24],
    /// Signing keys and their states.
    pub keys: Vec<KeyStatus>,
    /// `local` or `redis`.
    pub rate_limit_backend: &'static str,
    /// Whether the shared rate-limit store answers (`None` without one).
    pub redis_up: Option<bool>,
    /// `sqlite` or `postgres`.
    pub storage_backend: &'static str,
    /// The instances serving this database, from their heartbeats.
    pub instances: Vec<super::instances::InstanceHealth>,
}

/// Per-hour counts of `event` into 24 slots, oldest first.
fn hours_of(counts: &[HourlyCount], event: &str) -> [i64; 24] {
    let mut out = [0i64; 24];
    for c in counts.iter().filter(|c| c.event == event) {
        if let Some(slot) = usize::try_from(c.hour).ok().and_then(|h| out.get_mut(h)) {
            *slot += c.count;
        }
    }
    out
}

impl Core {
    /// Accounts matching a console search.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a page, prefix or role out of range.
    pub async fn search_users(&self, q: &SearchQuery) -> Result<SearchPage> {
        let limit = page_limit(q.limit)?;
        let offset = q.offset.unwrap_or(0);
        if offset < 0 {
            return Err(Error::BadRequest("offset must not be negative".into()));
        }
        let text = q.q.as_deref().map(str::trim).filter(|p| !p.is_empty());
        if text.is_some_and(|p| p.chars().count() > 64) {
            return Err(Error::BadRequest("the search is at most 64 characters".into()));
        }
        let role = q.role.as_deref().filter(|r| !r.is_empty());
        if let Some(r) = role {
            Role::parse(r)?;
        }
        let search = UserSearch {
            // Matched against canonical names, so `É`, `é` and `E\u{301}` find `Élodie`.
            name_prefix: text.map(Username::lookup_key),
            email_prefix: text.map(str::to_lowercase),
            role: role.map(str::to_owned),
            disabled: q.disabled,
            unverified: q.unverified,
            limit,
            offset,
        };
        let (users, total) = self.storage.search_users(&search).await?;
        Ok(SearchPage { users, limit, offset, total })
    }

    /// Everything the console shows about `user`.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn user_detail(&self, user: User) -> Result<UserDetail> {
        let id = user.id.as_str().to_owned();
        let sessions = self.storage.live_sessions(&id, now()).await?;
        let totp = self.storage.totp_factor(&id).await?.map(|f| f.active);
        let passkeys = self.storage.passkey_count(&id).await?;
        let recovery_codes_left = self.storage.recovery_codes_left(&id).await?;
        let mut consents = Vec::new();
        for client in self.storage.list_clients().await? {
            let scopes = self.storage.consents(&id, &client.client_id).await?;
            if !scopes.is_empty() {
                consents.push((client.client_id.clone(), client.name.clone(), scopes));
            }
        }
        let query = AuditQuery { user: Some(id), limit: 20, ..AuditQuery::default() };
        let audit = self.storage.audit_entries(&query).await?;
        Ok(UserDetail { user, sessions, totp, passkeys, recovery_codes_left, consents, audit })
    }

    /// Ends one session of `user` (audited as `session_revoked` with the acting admin).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the session is not one of the account's live sessions.
    pub async fn end_user_session(&self, by: &Actor, user: &User, sid: &str) -> Result<()> {
        if self.revoke(user.id.as_str(), SessionFilter::One(sid)).await? == 0 {
            return Err(Error::NotFound);
        }
        let detail = serde_json::json!({ "session": sid });
        self.audit(by.event("session_revoked").subject(user.id.as_str()).detail(detail)).await;
        Ok(())
    }
}

impl AuthService {
    /// The overview: counts, the last 24 hours of sign-ins, keys and the rate-limit backend.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn overview(&self, me: Option<&str>) -> Result<Overview> {
        let core = &self.core;
        // Whole hours, so the chart's slots line up with the clock.
        let from = (now() / 3600 - 23) * 3600;
        let counts = core.storage.audit_hourly(&SIGN_IN_EVENTS, from).await?;
        Ok(Overview {
            users: core.count_users().await?,
            live_sessions: core.count_live_sessions().await?,
            outbox: core.outbox_depth().await?,
            sign_ins: hours_of(&counts, "login"),
            failures: hours_of(&counts, "login_failed"),
            keys: self.key_statuses().await?,
            rate_limit_backend: self.limiter.backend().as_str(),
            redis_up: self.limiter.shared_store_up(),
            storage_backend: core.backend(),
            instances: self.instances(me).await?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_counts_land_in_their_slots() {
        let c = |event: &str, hour, count| HourlyCount { event: event.into(), hour, count };
        let counts = [c("login", 0, 2), c("login", 23, 5), c("login_failed", 3, 1), c("login", 24, 9)];
        let hours = hours_of(&counts, "login");
        assert_eq!((hours[0], hours[23], hours.iter().sum::<i64>()), (2, 5, 7));
        assert_eq!(hours_of(&counts, "login_failed")[3], 1);
    }
}
