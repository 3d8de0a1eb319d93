//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at `/oauth/logout`: a
//! client sends the browser here to end the user's gatepass sign-in.
//!
//! The request is checked before anything happens: an `id_token_hint` must be an ID token
//! gatepass issued (its expiry does not matter), a `client_id` must agree with it, and a
//! `post_logout_redirect_uri` must be one the client registered, character for character;
//! anything else gets an error page on gatepass and is never redirected to. The browser
//! session ends at once only when the hint names the signed-in user: the hint, which only
//! the client holds, is what shows the request comes from the client and not from a page
//! that wants to sign the user out. Without a hint, or with one for someone else, the user
//! confirms on a page (a same-origin form with the session's CSRF token). A matching hint
//! also ends the client's grant it names (its refresh and access tokens), in the same
//! transaction as the browser session.

use serde::{Deserialize, Serialize};

use crate::auth::oauth::{self as primitives, IdTokenHint};
use crate::error::Result;
use crate::service::{AuthService, ClientInfo, event, now};
use crate::storage::audit::SUCCESS;

/// A logout request's parameters (query of `GET /oauth/logout`, or its form body; the
/// confirmation form repeats them as hidden fields). Unknown parameters are ignored, as the
/// specification asks.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct LogoutRequest {
    /// An ID token gatepass issued to the client (expired ones count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_hint: Option<String>,
    /// The client; must be the hint's audience when both are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Where to send the browser afterwards: one of the client's registered
    /// `post_logout_redirect_uris`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_logout_redirect_uri: Option<String>,
    /// Returned to the client with the redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_hint: Option<String>,
    /// Accepted and ignored (gatepass's pages are in English).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui_locales: Option<String>,
}

/// The gatepass sign-in of the browser a logout request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    /// The session id.
    pub sid: String,
    /// Its user.
    pub user_id: String,
}

/// What the browser is shown next.
#[derive(Debug, Clone)]
pub enum LogoutOutcome {
    /// The request is not one gatepass acts on (or redirects for): an error page with this
    /// message.
    ErrorPage(String),
    /// The user is asked whether to sign out.
    Confirm {
        /// The client's name, when the request named a client.
        client_name: Option<String>,
        /// The request, for the form's hidden fields (without the hint).
        request: Box<LogoutRequest>,
    },
    /// Done (the session ended, or there was none): to this client URL, or, when `None`,
    /// gatepass's own "signed out" page.
    Done {
        /// The registered URI with `state`.
        redirect: Option<String>,
        /// Whether a browser session was ended now.
        ended: bool,
    },
}

fn error_page(message: &str) -> Result<LogoutOutcome> {
    Ok(LogoutOutcome::ErrorPage(message.to_owned()))
}

impl AuthService {
    /// Handles a logout request from the browser signed in as `session` (if any).
    /// `confirmed` is set by the confirmation form, which the caller has checked (same
    /// origin, the session's CSRF token).
    ///
    /// # Errors
    /// Storage errors only; everything the request gets wrong is an error page.
    pub async fn rp_logout(
        &self,
        req: &LogoutRequest,
        session: Option<&BrowserSession>,
        confirmed: bool,
        info: &ClientInfo,
    ) -> Result<LogoutOutcome> {
        let Some(issuer) = self.oauth.issuer() else {
            return error_page("This server does not act as an OAuth provider.");
        };
        let present = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
        let (hint_token, client_id, redirect) =
            (present(&req.id_token_hint), present(&req.client_id), present(&req.post_logout_redirect_uri));
        if req.state.as_deref().is_some_and(|s| s.len() > 2048) || client_id.as_deref().is_some_and(|c| c.len() > 128) {
            return error_page("The sign-out request is malformed.");
        }
        let hint: Option<IdTokenHint> = match hint_token {
            None => None,
            Some(token) => {
                // Each published key is checked against the token's `kid` first, so at most
                // the one it names verifies a signature.
                let jwks = self.oauth_id_jwks();
                match jwks.iter().find_map(|jwk| primitives::verify_id_token_hint(&token, jwk, issuer)) {
                    Some(h) => Some(h),
                    None => return error_page("The sign-out request carries an ID token gatepass did not issue."),
                }
            }
        };
        if let (Some(h), Some(c)) = (&hint, &client_id)
            && h.aud != *c
        {
            return error_page("The sign-out request names one application and carries another's ID token.");
        }
        let client_id = client_id.or_else(|| hint.as_ref().map(|h| h.aud.clone()));
        let client = match &client_id {
            Some(id) => match self.core.storage.client(id).await? {
                Some(c) => Some(c),
                None => return error_page("The application that sent you here is not registered."),
            },
            None => None,
        };
        let redirect = match (redirect, &client) {
            (None, _) => None,
            (Some(_), None) => {
                return error_page(
                    "The sign-out request asks to send you to an address but does not say which application it \
                     is, so gatepass stops here.",
                );
            }
            (Some(uri), Some(c)) if c.post_logout_redirect_uris.contains(&uri) => {
                let mut url = url::Url::parse(&uri).map_err(|_| crate::error::Error::Internal("bad URI".into()))?;
                if let Some(state) = req.state.as_deref() {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Some(url.to_string())
            }
            (Some(_), Some(_)) => {
                return error_page(
                    "The application asked to send you to an address it has not registered for signing out, so \
                     gatepass stops here.",
                );
            }
        };
        let Some(session) = session else {
            // Already signed out: nothing to end.
            return Ok(LogoutOutcome::Done { redirect, ended: false });
        };
        let hinted = hint.as_ref().filter(|h| h.sub == session.user_id);
        if hinted.is_none() && !confirmed {
            let request = LogoutRequest { id_token_hint: None, client_id, ..req.clone() };
            return Ok(LogoutOutcome::Confirm { client_name: client.map(|c| c.name), request: Box::new(request) });
        }
        let grant = hinted.and_then(|h| h.sid.as_deref());
        let revoked = self.core.storage.end_browser_session(&session.user_id, &session.sid, grant, now()).await?;
        let ended: Vec<String> = revoked.iter().map(|r| r.sid.clone()).collect();
        self.core.apply_revocations(revoked);
        let detail = serde_json::json!({
            "client_id": client_id,
            "confirmed": hinted.is_none(),
            "sessions_ended": ended.len(),
        });
        self.core
            .audit(
                event("oauth_logout", SUCCESS, info).actor(&session.user_id).subject(&session.user_id).detail(detail),
            )
            .await;
        Ok(LogoutOutcome::Done { redirect, ended: !ended.is_empty() })
    }
}
