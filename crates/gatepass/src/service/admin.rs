//! Administration: listing and changing accounts and reading the audit trail, for the
//! admin API and the `gatepass user`/`gatepass audit` commands alike. Every change is
//! audited, and every change that takes powers away (disable, delete, role change) ends
//! the account's sessions and puts their revocations in force before it returns.

use super::{ClientInfo, Core, now};
use crate::domain::{Roles, User, UserId, Username};
use crate::error::{Error, Result};
use crate::storage::audit::{AuditEntry, AuditEvent, AuditQuery, SUCCESS};
use crate::storage::{SessionFilter, UserPatch};

/// Largest page of the listings.
pub const MAX_PAGE: i64 = 200;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 50;

/// Who performs an action, for the audit trail.
#[derive(Debug, Clone)]
pub struct Actor {
    /// A user id, `operator` or `cli`.
    pub id: String,
    /// Client IP, when over HTTP.
    pub ip: Option<String>,
    /// Client user agent, when over HTTP.
    pub user_agent: Option<String>,
}

impl Actor {
    /// The command line on this machine.
    pub fn cli() -> Self {
        Self { id: "cli".into(), ip: None, user_agent: None }
    }

    /// `id` (a user id or `operator`) calling over the network.
    pub fn user(id: &str, client: &ClientInfo) -> Self {
        Self { id: id.to_owned(), ip: client.ip.clone(), user_agent: client.user_agent.clone() }
    }

    /// A successful event performed by this actor.
    pub(crate) fn event(&self, name: &str) -> AuditEvent {
        AuditEvent::new(name, SUCCESS).actor(&self.id).client(self.ip.as_deref(), self.user_agent.as_deref())
    }
}

/// Which accounts a listing shows.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    /// Only usernames starting with this (at most 64 characters).
    pub prefix: Option<String>,
    /// Page size, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
    pub limit: Option<i64>,
    /// Accounts to skip.
    pub offset: Option<i64>,
}

/// A page of accounts.
#[derive(Debug)]
pub struct UserPage {
    /// Accounts in username order.
    pub users: Vec<User>,
    /// Page size used.
    pub limit: i64,
    /// Offset used.
    pub offset: i64,
    /// Offset of the next page, if this one was full.
    pub next_offset: Option<i64>,
    /// All accounts.
    pub total: i64,
}

/// A page size as asked for, checked.
///
/// # Errors
/// [`Error::BadRequest`] outside 1 to [`MAX_PAGE`].
pub fn page_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(Error::BadRequest(format!("limit must be from 1 to {MAX_PAGE}"))),
    }
}

impl Core {
    /// Looks an account up by id or, failing that, by username.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn find_user(&self, id_or_name: &str) -> Result<User> {
        if let Some(id) = UserId::parse(id_or_name)
            && let Some(u) = self.storage.user_by_id(&id).await?
        {
            return Ok(u);
        }
        self.storage.user_by_username(&Username::lookup_key(id_or_name)).await?.ok_or(Error::NotFound)
    }

    /// The account with id `id`; a malformed id is not found either.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn user(&self, id: &str) -> Result<User> {
        let id = UserId::parse(id).ok_or(Error::NotFound)?;
        self.storage.user_by_id(&id).await?.ok_or(Error::NotFound)
    }

    /// A page of accounts.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a page size, offset or prefix out of range.
    pub async fn list_users(&self, q: &UserQuery) -> Result<UserPage> {
        let limit = page_limit(q.limit)?;
        let offset = q.offset.unwrap_or(0);
        if offset < 0 {
            return Err(Error::BadRequest("offset must not be negative".into()));
        }
        let prefix = q.prefix.as_deref().filter(|p| !p.is_empty());
        if prefix.is_some_and(|p| p.chars().count() > 64) {
            return Err(Error::BadRequest("prefix is at most 64 characters".into()));
        }
        // Matched against the canonical names, so `É`, `é` and `E\u{301}` find `Élodie`.
        let prefix = prefix.map(Username::lookup_key);
        let users = self.storage.list_users(prefix.as_deref(), limit, offset).await?;
        // `then`, not `then_some`: the sum is only formed for a full page, and saturates at
        // the largest offset a client can send.
        let next_offset = (users.len() as i64 == limit).then(|| offset.saturating_add(limit));
        let total = self.storage.count_users().await?;
        Ok(UserPage { users, limit, offset, next_offset, total })
    }

    /// All accounts.
    ///
    /// # Errors
    /// When storage cannot be read.
    pub async fn count_users(&self) -> Result<i64> {
        Ok(self.storage.count_users().await?)
    }

    /// How many live sessions `user` has.
    ///
    /// # Errors
    /// When storage cannot be read.
    pub async fn live_session_count(&self, user: &User) -> Result<usize> {
        Ok(self.storage.live_sessions(user.id.as_str(), now()).await?.len())
    }

    /// Applies `patch` to `user`. Disabling the account or changing its roles ends all of
    /// its sessions, so no token keeps powers the account no longer has. Returns the
    /// account after the change and how many sessions ended.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the account vanished; storage errors.
    pub async fn update_user(&self, by: &Actor, user: &User, patch: &UserPatch) -> Result<(User, usize)> {
        // Compared with the state this update replaced, not with the copy the caller read:
        // a concurrent change between the two must not hide a change of roles (its
        // sessions would survive) or its audit entry.
        let changed = self.storage.update_user(&user.id, patch, now()).await.map_err(super::email::address_conflict)?;
        let user = &changed.ok_or(Error::NotFound)?;
        let roles_changed = patch.roles.as_ref().is_some_and(|r| *r != user.roles);
        let disabling = patch.disabled == Some(true);
        let ended =
            if roles_changed || disabling { self.revoke(user.id.as_str(), SessionFilter::All).await? } else { 0 };
        let subject = user.id.as_str();
        if let Some(roles) = patch.roles.as_ref().filter(|_| roles_changed) {
            let detail =
                serde_json::json!({ "from": user.roles.names(), "to": roles.names(), "sessions_ended": ended });
            self.audit(by.event("roles_changed").subject(subject).detail(detail)).await;
        }
        match patch.disabled {
            Some(true) => {
                let detail = serde_json::json!({ "sessions_ended": ended });
                self.audit(by.event("user_disabled").subject(subject).detail(detail)).await;
            }
            Some(false) if user.disabled => self.audit(by.event("user_enabled").subject(subject)).await,
            _ => {}
        }
        if patch.email.is_some() {
            self.audit(by.event("email_changed").subject(subject)).await;
        }
        let updated = self.storage.user_by_id(&user.id).await?.ok_or(Error::NotFound)?;
        Ok((updated, ended))
    }

    /// Sets an account's roles (see [`Self::update_user`]).
    ///
    /// # Errors
    /// As [`Self::update_user`].
    pub async fn set_roles(&self, by: &Actor, user: &User, roles: Roles) -> Result<(User, usize)> {
        self.update_user(by, user, &UserPatch { roles: Some(roles), ..UserPatch::default() }).await
    }

    /// Deletes an account; its tokens stop working at once. Returns the sessions ended.
    ///
    /// # Errors
    /// [`Error::NotFound`]; storage errors.
    pub async fn delete_user(&self, by: &Actor, user: &User) -> Result<usize> {
        let revoked = self.storage.delete_user(&user.id, now()).await?.ok_or(Error::NotFound)?;
        let ended = revoked.len();
        self.apply_revocations(revoked);
        let detail = serde_json::json!({ "username": user.username.as_str(), "sessions_ended": ended });
        self.audit(by.event("user_deleted").subject(user.id.as_str()).detail(detail)).await;
        Ok(ended)
    }

    /// Ends every session of an account; returns how many ended.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn logout_user(&self, by: &Actor, user: &User) -> Result<usize> {
        let ended = self.revoke(user.id.as_str(), SessionFilter::All).await?;
        let detail = serde_json::json!({ "sessions_ended": ended });
        self.audit(by.event("sessions_revoked").subject(user.id.as_str()).detail(detail)).await;
        Ok(ended)
    }

    /// Entries of the audit trail, newest first.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for a page size out of range; storage errors.
    pub async fn audit_entries(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        Ok(self.storage.audit_entries(query).await?)
    }
}
