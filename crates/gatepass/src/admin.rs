//! Administration: account management and runtime settings, shared by the admin API and
//! the `gatepass user` commands. Every change is audited, and every change that takes
//! powers away (disable, delete, role change) ends the account's sessions at once.
//!
//! These functions work on storage alone so that the CLI can use them without a running
//! server; they return the revocations they persisted, which a server applies to its
//! in-memory set (other processes pick them up from storage within a second).

use crate::domain::{Roles, User, UserId};
use crate::error::{Error, Result};
use crate::service::{RuntimeSettings, now};
use crate::storage::audit::{AuditEvent, SUCCESS};
use crate::storage::{RevokedSession, SessionFilter, Storage, UserPatch};

/// Who performs an administrative action, for the audit trail.
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

    fn event(&self, name: &str) -> AuditEvent {
        AuditEvent::new(name, SUCCESS).actor(&self.id).client(self.ip.as_deref(), self.user_agent.as_deref())
    }
}

/// Appends `event`; a failure is logged (the recorded action already happened).
pub async fn audit(storage: &dyn Storage, event: AuditEvent) {
    if let Err(e) = storage.append_audit(&event, now()).await {
        tracing::error!(error = %e, event = %event.event, "could not append to the audit trail");
    }
}

/// Records an account created by an administrator.
pub async fn record_created(storage: &dyn Storage, by: &Actor, user: &User) {
    let detail = serde_json::json!({ "username": user.username.as_str(), "roles": user.roles.names() });
    audit(storage, by.event("user_created").subject(user.id.as_str()).detail(detail)).await;
}

/// Looks an account up by id or, failing that, by username.
pub async fn find_user(storage: &dyn Storage, id_or_name: &str) -> Result<User> {
    if let Some(id) = UserId::parse(id_or_name)
        && let Some(u) = storage.user_by_id(&id).await?
    {
        return Ok(u);
    }
    storage.user_by_username(&id_or_name.to_ascii_lowercase()).await?.ok_or(Error::NotFound)
}

/// Applies `patch` to `user`. Disabling the account or changing its roles ends all of
/// its sessions, so no token keeps powers the account no longer has.
pub async fn update_user(
    storage: &dyn Storage,
    by: &Actor,
    user: &User,
    patch: &UserPatch,
) -> Result<(User, Vec<RevokedSession>)> {
    let t = now();
    if !storage.update_user(&user.id, patch, t).await? {
        return Err(Error::NotFound);
    }
    let roles_changed = patch.roles.as_ref().is_some_and(|r| *r != user.roles);
    let disabling = patch.disabled == Some(true);
    let revoked = if roles_changed || disabling {
        storage.revoke_sessions(user.id.as_str(), SessionFilter::All, t).await?
    } else {
        Vec::new()
    };
    let ended = revoked.len();
    let subject = user.id.as_str();
    if let Some(roles) = patch.roles.as_ref().filter(|_| roles_changed) {
        let detail = serde_json::json!({ "from": user.roles.names(), "to": roles.names(), "sessions_ended": ended });
        audit(storage, by.event("roles_changed").subject(subject).detail(detail)).await;
    }
    match patch.disabled {
        Some(true) => {
            let detail = serde_json::json!({ "sessions_ended": ended });
            audit(storage, by.event("user_disabled").subject(subject).detail(detail)).await;
        }
        Some(false) if user.disabled => audit(storage, by.event("user_enabled").subject(subject)).await,
        _ => {}
    }
    if patch.email.is_some() {
        audit(storage, by.event("email_changed").subject(subject)).await;
    }
    let updated = storage.user_by_id(&user.id).await?.ok_or(Error::NotFound)?;
    Ok((updated, revoked))
}

/// Sets an account's roles (see [`update_user`]).
pub async fn set_roles(
    storage: &dyn Storage,
    by: &Actor,
    user: &User,
    roles: Roles,
) -> Result<(User, Vec<RevokedSession>)> {
    update_user(storage, by, user, &UserPatch { roles: Some(roles), ..UserPatch::default() }).await
}

/// Deletes an account; its tokens stop working at once.
pub async fn delete_user(storage: &dyn Storage, by: &Actor, user: &User) -> Result<Vec<RevokedSession>> {
    let revoked = storage.delete_user(&user.id, now()).await?.ok_or(Error::NotFound)?;
    let detail = serde_json::json!({ "username": user.username.as_str(), "sessions_ended": revoked.len() });
    audit(storage, by.event("user_deleted").subject(user.id.as_str()).detail(detail)).await;
    Ok(revoked)
}

/// Ends every session of an account.
pub async fn logout_user(storage: &dyn Storage, by: &Actor, user: &User) -> Result<Vec<RevokedSession>> {
    let revoked = storage.revoke_sessions(user.id.as_str(), SessionFilter::All, now()).await?;
    let detail = serde_json::json!({ "sessions_ended": revoked.len() });
    audit(storage, by.event("sessions_revoked").subject(user.id.as_str()).detail(detail)).await;
    Ok(revoked)
}

/// Replaces an account's password hash and ends its sessions (GP-18).
pub async fn set_password_hash(
    storage: &dyn Storage,
    by: &Actor,
    user: &User,
    hash: &str,
) -> Result<Vec<RevokedSession>> {
    let t = now();
    if !storage.set_password_hash(&user.id, hash, t).await? {
        return Err(Error::NotFound);
    }
    let revoked = storage.revoke_sessions(user.id.as_str(), SessionFilter::All, t).await?;
    let detail = serde_json::json!({ "sessions_ended": revoked.len() });
    audit(storage, by.event("password_reset").subject(user.id.as_str()).detail(detail)).await;
    Ok(revoked)
}

/// Validates a settings patch, persists it, and returns the new settings for the caller
/// to put in force. Invalid input changes nothing.
pub async fn update_settings(
    storage: &dyn Storage,
    by: &Actor,
    current: &RuntimeSettings,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> Result<RuntimeSettings> {
    let (next, persist) = crate::settings::apply_patch(current, patch)?;
    storage.put_settings(&persist).await?;
    let detail = serde_json::json!({
        "from": crate::settings::to_json(current),
        "to": crate::settings::to_json(&next),
    });
    audit(storage, by.event("settings_changed").detail(detail)).await;
    Ok(next)
}
