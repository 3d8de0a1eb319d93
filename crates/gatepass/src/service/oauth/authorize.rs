//! The authorization request (`/oauth/authorize`): checks the client and redirect URI
//! (an unknown client or unregistered URI is shown an error page, never redirected to),
//! then everything else (errors go back to the client with `state` and `iss`), asks the
//! browser to sign in or consent where needed, and issues a code: 256 random bits, kept as
//! a digest, valid 60 s, bound to the client, the redirect URI, the PKCE challenge, the
//! nonce and the browser session.

use gatepass_verify::AccessClaims;
use serde::{Deserialize, Serialize};

use super::{CODE_TTL, KNOWN_SCOPES, describe_scope, scope_set};
use crate::auth::oauth::{self as primitives, CODE_PREFIX};
use crate::error::Result;
use crate::service::{AuthService, amr_of, now};
use crate::storage::{AuthCode, OAuthClient};

/// The parameters of an authorization request (query of `GET /oauth/authorize`, or the
/// hidden fields of the consent form). `auth_after` is gatepass's own: a sign-in it asked
/// for must be newer than that time (how `prompt=login` and `max_age` come back satisfied).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AuthorizeRequest {
    /// Must be `code`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_type: Option<String>,
    /// The client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// One of the client's registered redirect URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// Space-separated scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Returned as it came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Echoed in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE challenge (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_method: Option<String>,
    /// `none`, `login`, `consent` (space-separated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Seconds since the last sign-in beyond which the user signs in again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// Prefills the username on the sign-in page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// The resource (RFC 8707 absolute URI) the access token is for; one of the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Set by gatepass when it sends the browser to sign in again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_after: Option<String>,
}

/// A scope as the consent page lists it.
#[derive(Debug, Clone)]
pub struct ScopeLine {
    /// The scope.
    pub scope: String,
    /// In plain words.
    pub text: String,
}

/// What the browser is shown next.
#[derive(Debug, Clone)]
pub enum AuthorizeOutcome {
    /// The client or redirect URI is not one gatepass can send the browser back to: an
    /// error page on gatepass, with this message.
    ErrorPage(String),
    /// Back to the client (a code or an OAuth error): this URL.
    Redirect(String),
    /// The user must sign in, then come back to `return_to` (a local path).
    Login {
        /// `/oauth/authorize?…` to come back to.
        return_to: String,
        /// A username to prefill.
        login_hint: Option<String>,
    },
    /// The user is asked to allow the client the scopes.
    Consent {
        /// The client's name.
        client_name: String,
        /// What the client asks for.
        scopes: Vec<ScopeLine>,
        /// The request, for the form's hidden fields.
        request: Box<AuthorizeRequest>,
    },
}

/// A redirect to the client carrying an error (RFC 6749 §4.1.2.1) with `state` and `iss`.
fn error_redirect(
    redirect_uri: &str,
    error: &str,
    description: &str,
    state: Option<&str>,
    iss: &str,
) -> AuthorizeOutcome {
    let mut pairs: Vec<(&str, &str)> = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", iss));
    AuthorizeOutcome::Redirect(with_query(redirect_uri, &pairs))
}

/// `uri` with `pairs` appended to its query.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs.iter());
            url.to_string()
        }
        // A registered URI always parses; never fall back to something else.
        Err(_) => uri.to_owned(),
    }
}

impl AuthorizeRequest {
    /// The local path that repeats this request (the page comes back to it after sign-in).
    pub fn path(&self) -> String {
        format!("/oauth/authorize?{}", serde_urlencoded::to_string(self).unwrap_or_default())
    }
}

impl AuthService {
    /// Handles an authorization request for the browser whose session is `session` (if
    /// any). `consent` is the answer of the consent form (`None` for the request itself).
    ///
    /// # Errors
    /// Storage errors only; everything the request gets wrong is an [`AuthorizeOutcome`].
    pub async fn authorize(
        &self,
        req: &AuthorizeRequest,
        session: Option<&AccessClaims>,
        consent: Option<bool>,
    ) -> Result<AuthorizeOutcome> {
        let Some(iss) = self.oauth.issuer() else {
            return Ok(AuthorizeOutcome::ErrorPage("This server does not act as an OAuth provider.".into()));
        };
        let client = match req.client_id.as_deref() {
            Some(id) if !id.is_empty() && id.len() <= 128 => self.core.storage.client(id).await?,
            _ => None,
        };
        let Some(client) = client else {
            return Ok(AuthorizeOutcome::ErrorPage("The application that sent you here is not registered.".into()));
        };
        let Some(redirect_uri) =
            req.redirect_uri.as_deref().filter(|r| primitives::redirect_matches(&client.redirect_uris, r))
        else {
            return Ok(AuthorizeOutcome::ErrorPage(
                "The application asked to send you to an address it has not registered, so gatepass stops here.".into(),
            ));
        };
        // From here on errors go back to the client.
        let state = req.state.as_deref();
        let fail = |error: &str, description: &str| Ok(error_redirect(redirect_uri, error, description, state, iss));
        if state.is_some_and(|s| s.len() > 2048) || req.nonce.as_deref().is_some_and(|n| n.len() > 512) {
            return fail("invalid_request", "state or nonce is too long");
        }
        if req.response_type.as_deref() != Some("code") {
            return fail("unsupported_response_type", "the only response type is code");
        }
        if !client.grant_types.iter().any(|g| g == "authorization_code") {
            return fail("unauthorized_client", "this client may not use the authorization code flow");
        }
        match (req.code_challenge.as_deref(), req.code_challenge_method.as_deref()) {
            (Some(c), Some("S256")) if primitives::valid_challenge(c) => {}
            (None, _) => return fail("invalid_request", "PKCE is required: send code_challenge with S256"),
            (Some(_), Some("S256")) => return fail("invalid_request", "code_challenge is not an S256 challenge"),
            _ => return fail("invalid_request", "code_challenge_method must be S256"),
        }
        let scopes = scope_set(req.scope.as_deref().unwrap_or(""));
        if scopes.is_empty() {
            return fail("invalid_scope", "scope is required");
        }
        if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
            let what = if KNOWN_SCOPES.contains(&s.as_str()) { "not allowed for this client" } else { "unknown" };
            return fail("invalid_scope", &format!("scope {s} is {what}"));
        }
        let resource = req.resource.clone().filter(|r| !r.is_empty());
        if let Some(r) = &resource
            && let Err(why) = super::resource::check(&client, r)
        {
            return fail("invalid_target", &why);
        }
        let prompts = scope_set(req.prompt.as_deref().unwrap_or(""));
        if prompts.iter().any(|p| !["none", "login", "consent", "select_account"].contains(&p.as_str())) {
            return fail("invalid_request", "unknown prompt value");
        }
        let prompt = |p: &str| prompts.iter().any(|x| x == p);
        if prompt("none") && prompts.len() > 1 {
            return fail("invalid_request", "prompt=none cannot be combined");
        }
        let max_age = match req.max_age.as_deref() {
            None | Some("") => None,
            Some(m) => match m.parse::<i64>() {
                Ok(v) if v >= 0 => Some(v),
                _ => return fail("invalid_request", "max_age must be a non-negative integer"),
            },
        };
        let auth_after = req.auth_after.as_deref().and_then(|a| a.parse::<i64>().ok());

        let t = now();
        let login = |prompt_login_done: bool| {
            let mut back = req.clone();
            if prompt_login_done {
                back.prompt = req
                    .prompt
                    .as_deref()
                    .map(|p| p.split(' ').filter(|x| *x != "login" && !x.is_empty()).collect::<Vec<_>>().join(" "));
                if back.prompt.as_deref() == Some("") {
                    back.prompt = None;
                }
            }
            back.max_age = None;
            back.auth_after = Some(t.to_string());
            AuthorizeOutcome::Login { return_to: back.path(), login_hint: req.login_hint.clone() }
        };
        let Some(session) = session else {
            if prompt("none") {
                return fail("login_required", "the user is not signed in");
            }
            return Ok(login(false));
        };
        let stale = auth_after.is_some_and(|a| session.auth_time < a)
            || max_age.is_some_and(|m| session.auth_time + m < t)
            || prompt("login");
        if stale {
            if prompt("none") {
                return fail("login_required", "the user must sign in again");
            }
            return Ok(login(prompt("login")));
        }

        let scope = scopes.join(" ");
        let consented = client.first_party
            || (!prompt("consent") && {
                let given = self.core.storage.consents(&session.sub, &client.client_id).await?;
                given.iter().any(|g| {
                    let g = scope_set(g);
                    scopes.iter().all(|s| g.contains(s))
                })
            });
        match consent {
            Some(false) => return fail("access_denied", "the user did not allow access"),
            Some(true) => {
                self.core.storage.grant_consent(&session.sub, &client.client_id, &scope, t).await?;
            }
            None if !consented => {
                if prompt("none") {
                    return fail("consent_required", "the user has not allowed this application");
                }
                return Ok(consent_page(&client, &scopes, req));
            }
            None => {}
        }

        let code = primitives::generate(CODE_PREFIX);
        let stored = AuthCode {
            code_hash: primitives::digest(&code),
            client_id: client.client_id.clone(),
            user_id: session.sub.clone(),
            browser_sid: session.sid.clone(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: req.code_challenge.clone().unwrap_or_default(),
            scope,
            nonce: req.nonce.clone().filter(|n| !n.is_empty()),
            auth_time: session.auth_time,
            amr: amr_of(session).join(" "),
            created_at: t,
            expires_at: t + CODE_TTL,
            used_at: None,
            issued_sid: None,
            resource,
        };
        self.core.storage.insert_code(&stored).await?;
        let mut pairs: Vec<(&str, &str)> = vec![("code", &code)];
        if let Some(s) = state {
            pairs.push(("state", s));
        }
        pairs.push(("iss", iss));
        Ok(AuthorizeOutcome::Redirect(with_query(redirect_uri, &pairs)))
    }
}

fn consent_page(client: &OAuthClient, scopes: &[String], req: &AuthorizeRequest) -> AuthorizeOutcome {
    AuthorizeOutcome::Consent {
        client_name: client.name.clone(),
        scopes: scopes.iter().map(|s| ScopeLine { scope: s.clone(), text: describe_scope(s) }).collect(),
        request: Box::new(req.clone()),
    }
}
