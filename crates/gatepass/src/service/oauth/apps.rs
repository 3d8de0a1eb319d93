//! The applications a user has allowed, for the account page: every client the user gave
//! consent to or that holds a live grant of the user (first-party clients are never asked,
//! but hold grants all the same), and withdrawing one. Withdrawing forgets the consent and
//! revokes every grant the client holds for the user in one transaction, through the
//! sessions' revocation (so the revocation set, every instance and the revocation feed
//! refuse the client's access and refresh tokens at once).

use gatepass_verify::AccessClaims;

use super::scope_set;
use crate::error::{Error, Result};
use crate::service::{AuthService, ClientInfo, event, now};
use crate::storage::audit::SUCCESS;

/// An application the user has allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedApp {
    /// The client id.
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// What it was allowed (the union of the scope sets consented to and granted).
    pub scopes: Vec<String>,
    /// When it was last allowed or signed in.
    pub since: i64,
    /// How many live grants it holds.
    pub grants: usize,
}

impl AuthService {
    /// The applications the signed-in user has allowed, most recent first.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn allowed_apps(&self, claims: &AccessClaims) -> Result<Vec<AllowedApp>> {
        let storage = &self.core.storage;
        let mut apps: Vec<AllowedApp> = Vec::new();
        for c in storage.user_consents(&claims.sub).await? {
            match apps.iter_mut().find(|a| a.client_id == c.client_id) {
                Some(app) => merge(app, &c.scope, c.granted_at),
                None => apps.push(AllowedApp {
                    client_id: c.client_id,
                    name: c.client_name,
                    scopes: scope_set(&c.scope),
                    since: c.granted_at,
                    grants: 0,
                }),
            }
        }
        for s in storage.live_sessions(&claims.sub, now()).await? {
            let Some(client_id) = s.client_id else { continue };
            let scope = s.scope.unwrap_or_default();
            if let Some(app) = apps.iter_mut().find(|a| a.client_id == client_id) {
                merge(app, &scope, s.created_at);
                app.grants += 1;
                continue;
            }
            let Some(client) = storage.client(&client_id).await? else { continue };
            apps.push(AllowedApp {
                client_id,
                name: client.name,
                scopes: scope_set(&scope),
                since: s.created_at,
                grants: 1,
            });
        }
        apps.sort_by(|a, b| b.since.cmp(&a.since).then_with(|| a.client_id.cmp(&b.client_id)));
        Ok(apps)
    }

    /// Withdraws the signed-in user's consent to a client: the consent is forgotten and
    /// every grant the client holds for the user ends at once. Returns how many grants ended.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the user had neither consent nor grant for the client;
    /// storage errors.
    pub async fn revoke_app(&self, claims: &AccessClaims, client_id: &str, info: &ClientInfo) -> Result<usize> {
        if client_id.is_empty() || client_id.len() > 128 {
            return Err(Error::NotFound);
        }
        let revoked =
            self.core.storage.withdraw_consent(&claims.sub, client_id, now()).await?.ok_or(Error::NotFound)?;
        let n = revoked.len();
        self.core.apply_revocations(revoked);
        let detail = serde_json::json!({ "client_id": client_id, "grants_revoked": n });
        self.core
            .audit(
                event("oauth_consent_withdrawn", SUCCESS, info).actor(&claims.sub).subject(&claims.sub).detail(detail),
            )
            .await;
        Ok(n)
    }
}

fn merge(app: &mut AllowedApp, scope: &str, at: i64) {
    for s in scope_set(scope) {
        if !app.scopes.contains(&s) {
            app.scopes.push(s);
        }
    }
    app.scopes.sort();
    app.since = app.since.max(at);
}
