//! The token endpoint's grants: `authorization_code` (with PKCE), `refresh_token`
//! (rotating, with the sessions' reuse detection), `client_credentials` and the device
//! code (in [`super::device`]), behind client
//! authentication (`client_secret_basic`, `client_secret_post`, or none for public
//! clients). Every refusal is an RFC 6749 error and changes nothing, except a replayed
//! code or refresh token, which revokes the grant it belongs to.

use serde::{Deserialize, Serialize};

use super::{ClientAccessClaims, IdTokenClaims, scope_set};
use crate::auth::oauth::{self as primitives, CODE_PREFIX};
use crate::auth::refresh::RefreshTokens;
use crate::domain::{User, UserId};
use crate::error::{OAuthCode, OAuthError};
use crate::service::{AuthService, ClientInfo, event, now};
use crate::storage::audit::FAILURE;
use crate::storage::{CodeRedemption, NewSession, OAuthClient, RotateRequest, Rotation, SessionRecord};

type OResult<T> = Result<T, OAuthError>;

/// What the user approved, from the code or device code a grant is issued for.
#[derive(Debug, Clone, Copy)]
pub(super) struct GrantOrigin<'a> {
    /// The granted scopes, space-separated.
    pub scope: &'a str,
    /// When the approving user authenticated.
    pub auth_time: i64,
    /// How (RFC 8176 values, space-separated).
    pub amr: &'a str,
    /// The resource the authorization named.
    pub resource: Option<&'a str>,
}

/// A grant about to be stored: its session row and first refresh token.
pub(super) struct PendingGrant {
    /// The grant's session row.
    pub record: SessionRecord,
    refresh_token: String,
    refresh_hash: String,
    refresh_expires_at: i64,
    offline: bool,
}

impl PendingGrant {
    /// The session to store, for `user` (whose roles its first access token carries).
    pub fn new_session<'a>(&'a self, user: &'a User) -> NewSession<'a> {
        NewSession {
            record: &self.record,
            roles: &user.roles,
            refresh_hash: &self.refresh_hash,
            refresh_expires_at: self.refresh_expires_at,
            replaces: None,
        }
    }

    /// The refresh token to hand out: only with `offline_access` and when the client may
    /// use the refresh grant.
    pub fn refresh_for(&self, client: &OAuthClient) -> Option<String> {
        (self.offline && client.grant_types.iter().any(|g| g == "refresh_token")).then(|| self.refresh_token.clone())
    }
}

fn err(code: OAuthCode, description: &str) -> OAuthError {
    OAuthError::new(code, description)
}

/// A token request's parameters (form body; RFC 6749 §4.1.3, §4.4.2, §6).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token`, `client_credentials` or
    /// `urn:ietf:params:oauth:grant-type:device_code`.
    pub grant_type: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The device code (RFC 8628 §3.4).
    pub device_code: Option<String>,
    /// The redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// Requested scopes (a subset of the granted ones).
    pub scope: Option<String>,
    /// The client (`client_secret_post` and public clients).
    pub client_id: Option<String>,
    /// The secret (`client_secret_post`).
    pub client_secret: Option<String>,
    /// The resource (RFC 8707) the access token is for: one of the client's, and for a
    /// code or refresh token the one it was authorized for, if any.
    pub resource: Option<String>,
}

/// How the client authenticated itself.
#[derive(Debug, Clone, Default)]
pub struct ClientCredentials {
    /// HTTP Basic `(id, secret)`, when sent.
    pub basic: Option<(String, String)>,
    /// An `Authorization` header was sent but is not valid Basic.
    pub malformed: bool,
}

/// A successful token response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// RFC 9068 JWT.
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// With `offline_access`: the rotating refresh token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// With `openid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Granted scopes.
    pub scope: String,
}

impl AuthService {
    /// Serves a token request.
    ///
    /// # Errors
    /// The RFC 6749 error; storage failures as `server_error`/`temporarily_unavailable`.
    pub async fn token(
        &self,
        req: TokenRequest,
        creds: ClientCredentials,
        info: &ClientInfo,
    ) -> OResult<TokenResponse> {
        if self.oauth.issuer().is_none() || self.oauth.keys().is_none() {
            return Err(err(OAuthCode::InvalidRequest, "this server does not act as an OAuth provider"));
        }
        let client = self.authenticate_client(&req, &creds).await?;
        let grant_type = req.grant_type.as_deref().unwrap_or("");
        if !super::GRANT_TYPES.contains(&grant_type) {
            return Err(err(OAuthCode::UnsupportedGrantType, "unsupported grant_type"));
        }
        if !client.grant_types.iter().any(|g| g == grant_type) {
            return Err(err(OAuthCode::UnauthorizedClient, "this client may not use this grant type"));
        }
        match grant_type {
            "authorization_code" => self.code_grant(&client, &req, info).await,
            "refresh_token" => self.refresh_grant(&client, &req, info).await,
            super::DEVICE_GRANT => self.device_code_grant(&client, &req, info).await,
            _ => self.client_credentials_grant(&client, &req),
        }
    }

    /// Client authentication (RFC 6749 §2.3): exactly one method; a secret is checked in
    /// constant time, and against a dummy digest when the client is unknown.
    pub(super) async fn authenticate_client(
        &self,
        req: &TokenRequest,
        creds: &ClientCredentials,
    ) -> OResult<OAuthClient> {
        let invalid = || err(OAuthCode::InvalidClient, "client authentication failed");
        if creds.malformed {
            return Err(invalid());
        }
        let (id, secret) = match (&creds.basic, &req.client_secret) {
            (Some(_), Some(_)) => return Err(err(OAuthCode::InvalidRequest, "use one client authentication method")),
            (Some((id, secret)), None) => {
                if req.client_id.as_deref().is_some_and(|c| c != id) {
                    return Err(err(OAuthCode::InvalidRequest, "client_id differs from the authenticated client"));
                }
                (id.as_str(), Some(secret.as_str()))
            }
            (None, secret) => (req.client_id.as_deref().ok_or_else(invalid)?, secret.as_deref()),
        };
        let client = if id.is_empty() || id.len() > 128 { None } else { self.core.storage.client(id).await? };
        const DUMMY: &str = "0000000000000000000000000000000000000000000000000000000000000000";
        match (client, secret) {
            (Some(c), Some(s)) => {
                let ok = c.secret_hash.as_deref().is_some_and(|h| primitives::secret_matches(s, h));
                if ok { Ok(c) } else { Err(invalid()) }
            }
            (Some(c), None) if c.is_public() => Ok(c),
            (None, Some(s)) => {
                let _ = primitives::secret_matches(s, DUMMY);
                Err(invalid())
            }
            _ => Err(invalid()),
        }
    }

    async fn code_grant(&self, client: &OAuthClient, req: &TokenRequest, info: &ClientInfo) -> OResult<TokenResponse> {
        let invalid = |d: &str| err(OAuthCode::InvalidGrant, d);
        let code = req.code.as_deref().ok_or_else(|| err(OAuthCode::InvalidRequest, "code is required"))?;
        if !primitives::looks_generated(code, CODE_PREFIX) {
            return Err(invalid("the code is invalid, expired or used"));
        }
        let code_hash = primitives::digest(code);
        let stored =
            self.core.storage.code(&code_hash).await?.ok_or_else(|| invalid("the code is invalid, expired or used"))?;
        if stored.client_id != client.client_id {
            return Err(invalid("the code was issued to another client"));
        }
        let t = now();
        let user = self
            .core
            .storage
            .user_by_id(&UserId::from_trusted(stored.user_id.clone()))
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(|| invalid("the account is no longer available"))?;
        let audience = super::resource::audience(client, req.resource.as_deref(), stored.resource.as_deref())
            .map_err(|why| err(OAuthCode::InvalidTarget, &why))?;
        let pending = self.pending_grant(
            client,
            &user,
            info,
            t,
            GrantOrigin {
                scope: &stored.scope,
                auth_time: stored.auth_time,
                amr: &stored.amr,
                resource: stored.resource.as_deref(),
            },
            req.resource.as_deref(),
        );
        if stored.used_at.is_none() {
            // Checks that change nothing when they fail: the code stays usable by its owner.
            if req.redirect_uri.as_deref() != Some(stored.redirect_uri.as_str()) {
                return Err(invalid("redirect_uri differs from the authorization request"));
            }
            let verifier = req
                .code_verifier
                .as_deref()
                .ok_or_else(|| err(OAuthCode::InvalidRequest, "code_verifier is required"))?;
            if !primitives::pkce_matches(verifier, &stored.code_challenge) {
                return Err(invalid("the code_verifier does not match the code_challenge"));
            }
            if stored.expires_at <= t {
                return Err(invalid("the code has expired"));
            }
        }
        match self.core.storage.redeem_code(&code_hash, t, pending.new_session(&user)).await? {
            CodeRedemption::Issued => {}
            CodeRedemption::Replayed(revoked) => {
                let detail = serde_json::json!({
                    "client_id": client.client_id,
                    "grants_revoked": revoked.iter().map(|r| r.sid.clone()).collect::<Vec<_>>(),
                });
                self.core.apply_revocations(revoked);
                self.core
                    .audit(event("oauth_code_replayed", FAILURE, info).subject(&stored.user_id).detail(detail))
                    .await;
                return Err(invalid("the code was already used; what it issued is revoked"));
            }
            CodeRedemption::Refused => return Err(invalid("the code is invalid, expired or used")),
        }
        let refresh = pending.refresh_for(client);
        self.client_tokens(client, &user, &pending.record, &audience, &stored.scope, stored.nonce.clone(), refresh, t)
    }

    /// The grant (session row and first refresh token) a code or an approved device code
    /// is exchanged for, built the same way for both.
    pub(super) fn pending_grant(
        &self,
        client: &OAuthClient,
        user: &User,
        info: &ClientInfo,
        t: i64,
        origin: GrantOrigin<'_>,
        asked_resource: Option<&str>,
    ) -> PendingGrant {
        let offline = scope_set(origin.scope).iter().any(|s| s == "offline_access");
        let settings = self.settings();
        let exp = t + settings.access_token_ttl;
        let record = SessionRecord {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user.id.as_str().to_owned(),
            created_at: t,
            last_used_at: t,
            // Without offline_access the grant lives as long as its access token.
            expires_at: if offline { t + self.policy.session_max_age } else { exp },
            auth_time: origin.auth_time,
            access_expires_at: exp,
            user_agent: info.user_agent.clone(),
            ip: info.ip.clone(),
            revoked_at: None,
            amr: origin.amr.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            client_id: Some(client.client_id.clone()),
            scope: Some(origin.scope.to_owned()),
            // A resource named at the token endpoint narrows the grant to it, as one named
            // in the authorization request does.
            resource: asked_resource.filter(|r| !r.is_empty()).or(origin.resource).map(str::to_owned),
        };
        let refresh_token = self.refresh.generate_for_client();
        PendingGrant {
            refresh_hash: RefreshTokens::hash(&refresh_token),
            refresh_expires_at: (t + settings.refresh_token_ttl).min(record.expires_at),
            record,
            refresh_token,
            offline,
        }
    }

    async fn refresh_grant(
        &self,
        client: &OAuthClient,
        req: &TokenRequest,
        info: &ClientInfo,
    ) -> OResult<TokenResponse> {
        let invalid = || err(OAuthCode::InvalidGrant, "the refresh token is invalid, expired or revoked");
        let token =
            req.refresh_token.as_deref().ok_or_else(|| err(OAuthCode::InvalidRequest, "refresh_token is required"))?;
        if !RefreshTokens::looks_valid_for_client(token) {
            return Err(invalid());
        }
        let storage = &self.core.storage;
        let hash = RefreshTokens::hash(token);
        // Whose grant it is and which resource it is for, before anything changes: another
        // client's token, or a resource the grant may not have, is refused without rotating.
        if let Some((sid, _)) = storage.session_of_refresh_token(&hash, now()).await? {
            let grant = storage.session(&sid).await?;
            let owner = grant.as_ref().and_then(|s| s.client_id.as_deref());
            if owner != Some(client.client_id.as_str()) {
                return Err(invalid());
            }
            let bound = grant.as_ref().and_then(|s| s.resource.as_deref());
            super::resource::audience(client, req.resource.as_deref(), bound)
                .map_err(|why| err(OAuthCode::InvalidTarget, &why))?;
        }
        let t = now();
        let settings = self.settings();
        let successor = self.refresh.successor(token);
        let exp = t + settings.access_token_ttl;
        let outcome = storage
            .rotate_refresh(RotateRequest {
                presented_hash: &hash,
                successor_hash: &RefreshTokens::hash(&successor),
                now: t,
                // No grace window for clients (RFC 9700 §4.14.2): a token presented twice,
                // even within the same second, is a replay, and the grant ends. (Storage
                // replays while `now - rotated_at <= grace`, so 0 would still cover a second.)
                grace_secs: -1,
                refresh_ttl_secs: settings.refresh_token_ttl,
                access_expires_at: exp,
                audit: None,
            })
            .await?;
        let session = match outcome {
            Rotation::Rotated(s) | Rotation::Replayed(s) => s,
            Rotation::Reused(revoked) => {
                let detail = serde_json::json!({ "client_id": client.client_id, "session": revoked.sid });
                self.core.apply_revocations(vec![revoked]);
                self.core.audit(event("refresh_reuse_detected", FAILURE, info).detail(detail)).await;
                return Err(invalid());
            }
            Rotation::Invalid => return Err(invalid()),
        };
        if session.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Err(invalid());
        }
        let user = storage
            .user_by_id(&UserId::from_trusted(session.user_id.clone()))
            .await?
            .filter(|u| !u.disabled)
            .ok_or_else(invalid)?;
        let granted = scope_set(session.scope.as_deref().unwrap_or(""));
        let scope = match req.scope.as_deref() {
            None | Some("") => granted.join(" "),
            Some(asked) => {
                let asked = scope_set(asked);
                if asked.iter().any(|s| !granted.contains(s)) {
                    return Err(err(OAuthCode::InvalidScope, "a refresh can only narrow the granted scopes"));
                }
                asked.join(" ")
            }
        };
        // The access token issued here expires at `exp`, recorded on the session by the rotation.
        let session = SessionRecord { access_expires_at: exp, ..session };
        let audience = super::resource::audience(client, req.resource.as_deref(), session.resource.as_deref())
            .map_err(|why| err(OAuthCode::InvalidTarget, &why))?;
        self.client_tokens(client, &user, &session, &audience, &scope, None, Some(successor), t)
    }

    fn client_credentials_grant(&self, client: &OAuthClient, req: &TokenRequest) -> OResult<TokenResponse> {
        if client.is_public() {
            return Err(err(OAuthCode::UnauthorizedClient, "a public client cannot use client_credentials"));
        }
        let user_scopes = ["openid", "profile", "email", "roles", "offline_access"];
        let allowed: Vec<&String> = client.scopes.iter().filter(|s| !user_scopes.contains(&s.as_str())).collect();
        let scope = match req.scope.as_deref() {
            None | Some("") => allowed.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
            Some(asked) => {
                let asked = scope_set(asked);
                if let Some(s) = asked.iter().find(|s| !allowed.contains(s)) {
                    return Err(err(OAuthCode::InvalidScope, &format!("scope {s} is not available to this grant")));
                }
                asked.join(" ")
            }
        };
        let aud = super::resource::audience(client, req.resource.as_deref(), None)
            .map_err(|why| err(OAuthCode::InvalidTarget, &why))?;
        let t = now();
        let ttl = self.settings().access_token_ttl;
        let claims = ClientAccessClaims {
            iss: self.oauth.issuer().unwrap_or_default().to_owned(),
            sub: client.client_id.clone(),
            aud,
            client_id: client.client_id.clone(),
            scope: scope.clone(),
            iat: t,
            nbf: t,
            exp: t + ttl,
            jti: uuid::Uuid::now_v7().to_string(),
            sid: None,
            auth_time: None,
            roles: None,
        };
        let access_token = self.sign_client_access(&claims)?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ttl,
            refresh_token: None,
            id_token: None,
            scope,
        })
    }

    /// The access token (and ID token with `openid`) of a grant.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn client_tokens(
        &self,
        client: &OAuthClient,
        user: &User,
        session: &SessionRecord,
        audience: &str,
        scope: &str,
        nonce: Option<String>,
        refresh_token: Option<String>,
        t: i64,
    ) -> OResult<TokenResponse> {
        let iss = self.oauth.issuer().unwrap_or_default().to_owned();
        let has = |s: &str| scope.split(' ').any(|x| x == s);
        let claims = ClientAccessClaims {
            iss: iss.clone(),
            sub: user.id.as_str().to_owned(),
            aud: audience.to_owned(),
            client_id: client.client_id.clone(),
            scope: scope.to_owned(),
            iat: t,
            nbf: t,
            exp: session.access_expires_at,
            jti: uuid::Uuid::now_v7().to_string(),
            sid: Some(session.id.clone()),
            auth_time: Some(session.auth_time),
            roles: has("roles").then(|| user.roles.names()),
        };
        let access_token = self.sign_client_access(&claims)?;
        let id_token = if has("openid") {
            let id = IdTokenClaims {
                iss,
                sub: user.id.as_str().to_owned(),
                aud: client.client_id.clone(),
                exp: session.access_expires_at,
                iat: t,
                auth_time: session.auth_time,
                nonce,
                amr: session.amr.clone(),
                at_hash: Some(primitives::at_hash(&access_token)),
                sid: Some(session.id.clone()),
            };
            Some(self.sign_id_token(client.id_token_alg, &id)?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: session.access_expires_at - t,
            refresh_token,
            id_token,
            scope: scope.to_owned(),
        })
    }
}
