//! Registering and managing OAuth clients (admin API and `gatepass clients`): metadata in
//! and out in RFC 7591 terms, secrets shown once and stored as digests, changes applied
//! by compare-and-swap on the client's version, deletion revoking every grant the client
//! holds.

use serde::{Deserialize, Serialize};

use super::{DEVICE_GRANT, GRANT_TYPES, KNOWN_SCOPES, valid_scope_token};
use crate::auth::oauth::{self as primitives, SECRET_PREFIX};
use crate::error::{Error, Result};
use crate::service::{Actor, Core, now};
use crate::storage::StorageError;
use crate::storage::{IdTokenAlg, OAuthClient};

/// Client metadata as RFC 7591 names it, plus gatepass's `first_party` and `resource`.
/// In a registration every field is optional but `client_name` and (for the code flow)
/// `redirect_uris`; in a change, absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientMetadata {
    /// Shown to users on the consent page.
    pub client_name: Option<String>,
    /// Exact redirect URIs: `https`, `http` on loopback (any port matches), or a private-use
    /// scheme containing a dot.
    pub redirect_uris: Option<Vec<String>>,
    /// Where a logout request (`/oauth/logout`) may send the browser back to: exact URIs,
    /// under the same rules as `redirect_uris`.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Of `authorization_code` (default), `refresh_token`, `client_credentials`,
    /// `urn:ietf:params:oauth:grant-type:device_code` (RFC 8628; public clients too).
    pub grant_types: Option<Vec<String>>,
    /// Only `["code"]`.
    pub response_types: Option<Vec<String>>,
    /// Space-separated scopes the client may ask for (default `openid profile email`).
    pub scope: Option<String>,
    /// `client_secret_basic` (default) or `client_secret_post`: a confidential client with a
    /// secret (either method works); `none`: a public client (native or browser app).
    pub token_endpoint_auth_method: Option<String>,
    /// Skips the consent page (for applications of the same operator).
    pub first_party: Option<bool>,
    /// Set on clients registered through `/oauth/register`: public, PKCE,
    /// `authorization_code` and `refresh_token` only (neither `client_credentials` nor the
    /// device grant), never first-party. An administrator
    /// promotes one with `false`.
    pub limited: Option<bool>,
    /// The audience of its access tokens (default: the client id).
    pub resource: Option<String>,
    /// Further resources (RFC 8707: absolute URIs, no fragment) the client may name with
    /// the `resource` parameter; the token's `aud` is then that resource.
    pub resources: Option<Vec<String>>,
    /// `RS256` (default) or `ES256`: what its ID tokens are signed with (OpenID Connect
    /// Dynamic Client Registration).
    pub id_token_signed_response_alg: Option<String>,
}

/// A client as RFC 7591 describes it in answers (never its secret, except once).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientView {
    /// The client id.
    pub client_id: String,
    /// Only in the answer that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Registration time (epoch seconds).
    pub client_id_issued_at: i64,
    /// `0`: the secret does not expire (present with a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// Name.
    pub client_name: String,
    /// Redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Where a logout request may send the browser back to.
    pub post_logout_redirect_uris: Vec<String>,
    /// Grant types.
    pub grant_types: Vec<String>,
    /// `["code"]` when the code flow is allowed.
    pub response_types: Vec<String>,
    /// Scopes, space-separated.
    pub scope: String,
    /// `client_secret_basic` (confidential) or `none` (public).
    pub token_endpoint_auth_method: &'static str,
    /// Whether consent is skipped.
    pub first_party: bool,
    /// Registered dynamically and not promoted yet (see [`ClientMetadata::limited`]).
    pub limited: bool,
    /// The audience of its access tokens, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Further resources it may ask tokens for (RFC 8707).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// `RS256` or `ES256`: what its ID tokens are signed with.
    pub id_token_signed_response_alg: &'static str,
}

impl ClientView {
    /// The view of `c`, carrying `secret` when one was just made.
    pub fn of(c: &OAuthClient, secret: Option<String>) -> Self {
        let has_code = c.grant_types.iter().any(|g| g == "authorization_code");
        Self {
            client_id: c.client_id.clone(),
            client_secret_expires_at: secret.as_ref().map(|_| 0),
            client_secret: secret,
            client_id_issued_at: c.created_at,
            client_name: c.name.clone(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            grant_types: c.grant_types.clone(),
            response_types: if has_code { vec!["code".into()] } else { Vec::new() },
            scope: c.scopes.join(" "),
            token_endpoint_auth_method: if c.is_public() { "none" } else { "client_secret_basic" },
            first_party: c.first_party,
            limited: c.limited,
            resource: c.resource.clone(),
            resources: c.resources.clone(),
            id_token_signed_response_alg: c.id_token_alg.as_str(),
        }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::BadRequest(msg.into())
}

/// Checks a list of redirect URIs (`what` names them in the message).
fn check_uris(what: &str, uris: &[String]) -> Result<()> {
    if uris.len() > 20 {
        return Err(bad(format!("at most 20 {what}s")));
    }
    if let Some(u) = uris.iter().find(|u| !primitives::valid_redirect_uri(u)) {
        return Err(bad(format!(
            "{what} {u:?} is not allowed: use https, http on a loopback address, or an app's own scheme \
             (with a dot), without a fragment"
        )));
    }
    Ok(())
}

/// Applies `meta` to `c` and checks the whole result.
fn apply(c: &mut OAuthClient, meta: ClientMetadata) -> Result<()> {
    if let Some(name) = meta.client_name {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(bad("client_name must be 1 to 100 printable characters"));
        }
        c.name = name;
    }
    if let Some(uris) = meta.redirect_uris {
        check_uris("redirect_uri", &uris)?;
        c.redirect_uris = uris;
    }
    if let Some(uris) = meta.post_logout_redirect_uris {
        check_uris("post_logout_redirect_uri", &uris)?;
        c.post_logout_redirect_uris = uris;
    }
    if let Some(grants) = meta.grant_types {
        if let Some(g) = grants.iter().find(|g| !GRANT_TYPES.contains(&g.as_str())) {
            return Err(bad(format!(
                "unsupported grant type {g:?} (authorization_code, refresh_token, client_credentials, {DEVICE_GRANT})"
            )));
        }
        let mut grants = grants;
        grants.sort();
        grants.dedup();
        c.grant_types = grants;
    }
    if let Some(types) = meta.response_types
        && types.iter().any(|t| t != "code")
    {
        return Err(bad("the only response type is \"code\""));
    }
    if let Some(scope) = meta.scope {
        let scopes = super::scope_set(&scope);
        if let Some(s) = scopes.iter().find(|s| !valid_scope_token(s)) {
            return Err(bad(format!("invalid scope {s:?}")));
        }
        c.scopes = scopes;
    }
    if let Some(fp) = meta.first_party {
        c.first_party = fp;
    }
    if let Some(limited) = meta.limited {
        c.limited = limited;
    }
    if let Some(resource) = meta.resource {
        c.resource = if resource.is_empty() { None } else { Some(resource) };
    }
    if let Some(r) = &c.resource
        && (r.len() > 2000 || r.chars().any(char::is_control))
    {
        return Err(bad("resource must be a URI or name of at most 2000 characters"));
    }
    if let Some(alg) = meta.id_token_signed_response_alg {
        c.id_token_alg =
            IdTokenAlg::parse(&alg).ok_or_else(|| bad("id_token_signed_response_alg must be RS256 or ES256"))?;
    }
    if let Some(resources) = meta.resources {
        if resources.len() > 20 {
            return Err(bad("at most 20 resources"));
        }
        if let Some(r) = resources.iter().find(|r| !super::resource::valid_resource(r)) {
            return Err(bad(format!("resource {r:?} is not an absolute URI without a fragment")));
        }
        let mut resources = resources;
        resources.sort();
        resources.dedup();
        c.resources = resources;
    }
    // The whole client must make sense, whatever changed.
    if c.grant_types.is_empty() {
        return Err(bad("a client needs at least one grant type"));
    }
    let has = |g: &str| c.grant_types.iter().any(|x| x == g);
    if has("authorization_code") && c.redirect_uris.is_empty() {
        return Err(bad("the authorization_code grant needs at least one redirect_uri"));
    }
    // The grants through which a user authorizes the client.
    let user_grant = has("authorization_code") || has(DEVICE_GRANT);
    if has("refresh_token") && !user_grant {
        return Err(bad("refresh_token comes with authorization_code or the device grant"));
    }
    if c.is_public() && has("client_credentials") {
        return Err(bad("a public client cannot use client_credentials"));
    }
    // Like client_credentials, the device grant is for clients an administrator vouched
    // for: a self-registered client could otherwise show users any name on the page that
    // asks them to let a device in.
    if c.limited && (!c.is_public() || has("client_credentials") || has(DEVICE_GRANT) || c.first_party) {
        return Err(bad(
            "a dynamically registered client is public, uses only authorization_code and refresh_token and is not \
             first-party until it is promoted (\"limited\": false)",
        ));
    }
    let scoped = |s: &str| c.scopes.iter().any(|x| x == s);
    if scoped("offline_access") && !has("refresh_token") {
        return Err(bad("the offline_access scope needs the refresh_token grant"));
    }
    if KNOWN_SCOPES.iter().filter(|k| **k != "offline_access").any(|k| scoped(k)) && !user_grant {
        return Err(bad("user scopes (openid, profile, email, roles) need the authorization_code or the device grant"));
    }
    Ok(())
}

impl Core {
    /// Registers a client; answers it with its secret (confidential clients), shown once.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for metadata that breaks a rule; storage errors.
    pub async fn register_client(&self, meta: ClientMetadata, by: &Actor) -> Result<ClientView> {
        self.add_client(meta, by, false).await
    }

    /// Registers a client, `limited` or not (see [`ClientMetadata::limited`]).
    pub(crate) async fn add_client(&self, meta: ClientMetadata, by: &Actor, limited: bool) -> Result<ClientView> {
        let public = match meta.token_endpoint_auth_method.as_deref() {
            None | Some("client_secret_basic") | Some("client_secret_post") => false,
            Some("none") => true,
            Some(other) => return Err(bad(format!("unsupported token_endpoint_auth_method {other:?}"))),
        };
        if meta.client_name.is_none() {
            return Err(bad("client_name is required"));
        }
        let t = now();
        let secret = (!public).then(|| primitives::generate(SECRET_PREFIX));
        let mut client = OAuthClient {
            client_id: uuid::Uuid::now_v7().simple().to_string(),
            secret_hash: secret.as_deref().map(primitives::digest),
            name: String::new(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec!["authorization_code".into()],
            scopes: vec!["email".into(), "openid".into(), "profile".into()],
            first_party: false,
            limited,
            resource: None,
            resources: Vec::new(),
            created_at: t,
            updated_at: t,
            version: 1,
            id_token_alg: IdTokenAlg::Rs256,
        };
        apply(&mut client, meta)?;
        self.storage.insert_client(&client).await.map_err(|e| match e {
            StorageError::Conflict => Error::Internal("client id collision".into()),
            other => other.into(),
        })?;
        self.audit(
            by.event("client_registered")
                .detail(serde_json::json!({ "client_id": client.client_id, "name": client.name, "limited": limited })),
        )
        .await;
        Ok(ClientView::of(&client, secret))
    }

    /// Every client.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn clients(&self) -> Result<Vec<ClientView>> {
        Ok(self.storage.list_clients().await?.iter().map(|c| ClientView::of(c, None)).collect())
    }

    /// One client; [`Error::NotFound`] when unknown.
    ///
    /// # Errors
    /// Not found; storage errors.
    pub async fn client(&self, client_id: &str) -> Result<ClientView> {
        Ok(ClientView::of(&self.stored_client(client_id).await?, None))
    }

    pub(crate) async fn stored_client(&self, client_id: &str) -> Result<OAuthClient> {
        if client_id.is_empty() || client_id.len() > 128 {
            return Err(Error::NotFound);
        }
        self.storage.client(client_id).await?.ok_or(Error::NotFound)
    }

    /// Changes a client's metadata (absent fields stay). Public and confidential do not
    /// swap: register a new client instead.
    ///
    /// # Errors
    /// Not found; [`Error::BadRequest`] for metadata that breaks a rule, or when another
    /// change came in between (retry); storage errors.
    pub async fn update_client(&self, client_id: &str, meta: ClientMetadata, by: &Actor) -> Result<ClientView> {
        let mut client = self.stored_client(client_id).await?;
        if let Some(method) = &meta.token_endpoint_auth_method {
            let wants_public = method == "none";
            if wants_public != client.is_public() {
                return Err(bad("a client cannot switch between public and confidential; register a new one"));
            }
        }
        let expected = client.version;
        apply(&mut client, meta)?;
        client.version = expected + 1;
        client.updated_at = now();
        if !self.storage.update_client(&client, expected).await? {
            return Err(bad("the client changed meanwhile; read it again and retry"));
        }
        self.audit(by.event("client_updated").detail(serde_json::json!({ "client_id": client.client_id }))).await;
        Ok(ClientView::of(&client, None))
    }

    /// Gives a confidential client a new secret (shown once); the old one stops working.
    ///
    /// # Errors
    /// Not found; [`Error::BadRequest`] for a public client or a concurrent change.
    pub async fn rotate_client_secret(&self, client_id: &str, by: &Actor) -> Result<ClientView> {
        let mut client = self.stored_client(client_id).await?;
        if client.is_public() {
            return Err(bad("a public client has no secret"));
        }
        let secret = primitives::generate(SECRET_PREFIX);
        let expected = client.version;
        client.secret_hash = Some(primitives::digest(&secret));
        client.version = expected + 1;
        client.updated_at = now();
        if !self.storage.update_client(&client, expected).await? {
            return Err(bad("the client changed meanwhile; read it again and retry"));
        }
        self.audit(by.event("client_secret_rotated").detail(serde_json::json!({ "client_id": client.client_id })))
            .await;
        Ok(ClientView::of(&client, Some(secret)))
    }

    /// Deletes a client; every grant it holds is revoked at once (its tokens are refused).
    /// Returns how many grants ended.
    ///
    /// # Errors
    /// Not found; storage errors.
    pub async fn delete_client(&self, client_id: &str, by: &Actor) -> Result<usize> {
        if client_id.is_empty() || client_id.len() > 128 {
            return Err(Error::NotFound);
        }
        let revoked = self.storage.delete_client(client_id, now()).await?.ok_or(Error::NotFound)?;
        let n = revoked.len();
        self.apply_revocations(revoked);
        self.audit(
            by.event("client_deleted").detail(serde_json::json!({ "client_id": client_id, "grants_revoked": n })),
        )
        .await;
        Ok(n)
    }
}
