//! axum extractors: [`Authenticated`] for any valid access token, [`RequireRole`] for
//! routes that need a role and [`RequireMfa`] for routes that need a second factor; for
//! services that take access tokens gatepass's OAuth provider issues to other applications,
//! [`OAuthAuthenticated`] and [`RequireScope`] (which need the verifier's audience set).
//!
//! The router state must provide an `Arc<Verifier>` through `FromRef`:
//!
//! ```
//! use axum::{Router, routing::get, extract::FromRef};
//! use gatepass_verify::{Verifier, VerifierConfig, extract::{Authenticated, RequireRole, Admin}};
//! use std::sync::Arc;
//!
//! #[derive(Clone, FromRef)]
//! struct AppState { verifier: Arc<Verifier> }
//!
//! async fn me(Authenticated(claims): Authenticated) -> String { claims.username }
//! async fn admin(_: RequireRole<Admin>) -> &'static str { "hello, admin" }
//!
//! let verifier = Verifier::hs256(&[7u8; 32], VerifierConfig::new("gatepass")).unwrap();
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/admin", get(admin))
//!     .with_state(AppState { verifier: Arc::new(verifier) });
//! ```

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::{AccessClaims, OAuthAccessClaims, Verifier, VerifyError, token_from_headers};

/// The claims of a valid access token taken from the `Authorization` header or the
/// `session` cookie. Rejects with 401 and an RFC 6750 `WWW-Authenticate` header.
///
/// This checks signature and claims; it knows about logouts only when the verifier has a
/// revocation feed attached (feature `revocation-feed`), and then answers 401
/// `token_revoked` for a revoked session or key and 503 `revocation_feed_stale` while the
/// feed is stale and fails closed. Without a feed, services that must honour revocation
/// immediately ask the gatepass server (`/api/introspect`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub AccessClaims);

impl<S> FromRequestParts<S> for Authenticated
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        let (token, _) =
            token_from_headers(&parts.headers).map_err(AuthRejection::Token)?.ok_or(AuthRejection::Missing)?;
        verifier.verify_access_async(&token).await.map(Authenticated).map_err(AuthRejection::Token)
    }
}

/// A role name usable with [`RequireRole`].
pub trait RoleName: Send + Sync + 'static {
    /// The role as it appears in the token's `roles` claim.
    const NAME: &'static str;
}

/// The `admin` role.
#[derive(Debug)]
pub struct Admin;
impl RoleName for Admin {
    const NAME: &'static str = "admin";
}

/// Like [`Authenticated`], and additionally requires role `R`: 401 when not
/// authenticated, 403 `insufficient_role` when authenticated without the role.
#[derive(Debug)]
pub struct RequireRole<R: RoleName>(pub AccessClaims, PhantomData<R>);

impl<R: RoleName> RequireRole<R> {
    /// The verified claims.
    pub fn claims(&self) -> &AccessClaims {
        &self.0
    }
}

impl<S, R> FromRequestParts<S> for RequireRole<R>
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
    R: RoleName,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(claims) = Authenticated::from_request_parts(parts, state).await?;
        if !claims.has_role(R::NAME) {
            return Err(AuthRejection::InsufficientRole);
        }
        Ok(RequireRole(claims, PhantomData))
    }
}

/// Like [`Authenticated`], and additionally requires that the session was authenticated
/// with a second factor (`amr` contains `mfa`): 401 when not authenticated, 403
/// `mfa_required` otherwise.
#[derive(Debug)]
pub struct RequireMfa(pub AccessClaims);

impl<S> FromRequestParts<S> for RequireMfa
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated(claims) = Authenticated::from_request_parts(parts, state).await?;
        if !claims.is_mfa() {
            return Err(AuthRejection::MfaRequired);
        }
        Ok(RequireMfa(claims))
    }
}

/// The claims of a valid access token issued by gatepass's OAuth provider to a client
/// (RFC 9068), for this service's audience ([`Verifier::verify_oauth_access`]), taken
/// from the `Authorization: Bearer` header only (never a cookie: such tokens are sent by
/// clients, not browsers). Rejects with 401 and an RFC 6750 `WWW-Authenticate` header.
#[derive(Debug, Clone)]
pub struct OAuthAuthenticated(pub OAuthAccessClaims);

impl<S> FromRequestParts<S> for OAuthAuthenticated
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        let token = match token_from_headers(&parts.headers).map_err(AuthRejection::Token)? {
            Some((token, crate::TokenSource::Header)) => token,
            _ => return Err(AuthRejection::Missing),
        };
        verifier.verify_oauth_access_async(&token).await.map(OAuthAuthenticated).map_err(AuthRejection::Token)
    }
}

/// A scope name usable with [`RequireScope`].
///
/// ```
/// use gatepass_verify::extract::ScopeName;
/// struct ReportsRead;
/// impl ScopeName for ReportsRead {
///     const NAME: &'static str = "reports:read";
/// }
/// ```
pub trait ScopeName: Send + Sync + 'static {
    /// The scope as it appears in the token's space-separated `scope` claim.
    const NAME: &'static str;
}

/// Like [`OAuthAuthenticated`], and additionally requires that the token was granted
/// scope `S`: 401 when not authenticated, 403 `insufficient_scope` with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` (RFC 6750 §3.1)
/// when the scope is missing.
///
/// ```
/// use axum::{Router, routing::get, extract::FromRef};
/// use gatepass_verify::{Verifier, VerifierConfig, extract::{RequireScope, ScopeName}};
/// use std::sync::Arc;
///
/// struct ReportsRead;
/// impl ScopeName for ReportsRead {
///     const NAME: &'static str = "reports:read";
/// }
///
/// #[derive(Clone, FromRef)]
/// struct AppState { verifier: Arc<Verifier> }
///
/// async fn reports(s: RequireScope<ReportsRead>) -> String { format!("reports for {}", s.claims().sub) }
///
/// let mut config = VerifierConfig::new("https://auth.example.com");
/// config.audience = Some("https://reports.example.com".into());
/// // In a service: the provider's JWKS, `Verifier::from_jwks_url` (feature `remote`).
/// let verifier = Verifier::new(Vec::new(), config);
/// let app: Router = Router::new().route("/reports", get(reports)).with_state(AppState { verifier: Arc::new(verifier) });
/// ```
pub struct RequireScope<S: ScopeName>(pub OAuthAccessClaims, PhantomData<S>);

// By hand: a scope marker type need not be `Debug`.
impl<S: ScopeName> std::fmt::Debug for RequireScope<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RequireScope").field(&S::NAME).field(&self.0).finish()
    }
}

impl<S: ScopeName> RequireScope<S> {
    /// The verified claims.
    pub fn claims(&self) -> &OAuthAccessClaims {
        &self.0
    }
}

impl<St, S> FromRequestParts<St> for RequireScope<S>
where
    Arc<Verifier>: FromRef<St>,
    St: Send + Sync,
    S: ScopeName,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Self::Rejection> {
        let OAuthAuthenticated(claims) = OAuthAuthenticated::from_request_parts(parts, state).await?;
        if !claims.has_scope(S::NAME) {
            return Err(AuthRejection::InsufficientScope(S::NAME));
        }
        Ok(RequireScope(claims, PhantomData))
    }
}

/// Why an extractor refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRejection {
    /// No token at all.
    Missing,
    /// A token that failed verification.
    Token(VerifyError),
    /// Authenticated, but without the role the route needs.
    InsufficientRole,
    /// Authenticated, but without a second factor.
    MfaRequired,
    /// A client token without the scope the route needs (the scope).
    InsufficientScope(&'static str),
}

impl AuthRejection {
    /// HTTP status, machine code, message and `WWW-Authenticate` value (RFC 6750 §3).
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str, Option<String>) {
        const REALM: &str = "Bearer realm=\"gatepass\"";
        match self {
            AuthRejection::Missing => {
                (StatusCode::UNAUTHORIZED, "token_missing", "authentication required", Some(REALM.to_owned()))
            }
            #[cfg(feature = "revocation-feed")]
            AuthRejection::Token(VerifyError::Invalid(crate::feed::FEED_STALE)) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "revocation_feed_stale",
                "token revocations cannot be checked right now; retry shortly",
                None,
            ),
            #[cfg(feature = "revocation-feed")]
            AuthRejection::Token(VerifyError::Invalid(crate::feed::SESSION_REVOKED | crate::feed::KEY_REVOKED)) => (
                StatusCode::UNAUTHORIZED,
                "token_revoked",
                "token revoked",
                Some(format!("{REALM}, error=\"invalid_token\", error_description=\"token revoked\"")),
            ),
            AuthRejection::Token(e) => {
                let message = match e {
                    VerifyError::Malformed(_) => "malformed credentials",
                    VerifyError::Invalid(_) => "invalid token",
                    VerifyError::Expired => "token expired",
                };
                let header = format!("{REALM}, error=\"invalid_token\", error_description=\"{message}\"");
                (StatusCode::UNAUTHORIZED, e.code(), message, Some(header))
            }
            AuthRejection::InsufficientRole => (
                StatusCode::FORBIDDEN,
                "insufficient_role",
                "this route needs a role the token does not carry",
                Some(format!("{REALM}, error=\"insufficient_scope\"")),
            ),
            AuthRejection::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "this route needs a scope the token was not granted",
                // Scope tokens cannot contain `"` or `\` (RFC 6749 §3.3); a name that does
                // is left out rather than breaking the header.
                Some(if scope.bytes().all(|b| b != b'"' && b != b'\\' && (0x20..0x7f).contains(&b)) {
                    format!("{REALM}, error=\"insufficient_scope\", scope=\"{scope}\"")
                } else {
                    format!("{REALM}, error=\"insufficient_scope\"")
                }),
            ),
            AuthRejection::MfaRequired => (
                StatusCode::FORBIDDEN,
                "mfa_required",
                "this route needs a sign-in with a second factor",
                Some(format!("{REALM}, error=\"insufficient_user_authentication\"")),
            ),
        }
    }
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let (status, code, message, www) = self.parts();
        let body = serde_json::json!({ "error": message, "code": code });
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(value) = www.and_then(|w| HeaderValue::from_str(&w).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ACCESS_TOKEN_TYP, VerifierConfig, hs256_kid};
    use axum::http::Request;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn token(amr: &[&str]) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims = AccessClaims {
            iss: "gatepass".into(),
            sub: "u1".into(),
            username: "alice".into(),
            roles: vec!["user".into()],
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: "j1".into(),
            sid: "s1".into(),
            auth_time: now,
            email_verified: None,
            amr: amr.iter().map(|m| m.to_string()).collect(),
            aud: None,
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYP.into());
        header.kid = Some(hs256_kid(SECRET));
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap()
    }

    async fn require_mfa(token: &str) -> Result<RequireMfa, AuthRejection> {
        let verifier = Arc::new(Verifier::hs256(SECRET, VerifierConfig::new("gatepass")).unwrap());
        let request = Request::builder().header("authorization", format!("Bearer {token}")).body(()).unwrap();
        let (mut parts, ()) = request.into_parts();
        RequireMfa::from_request_parts(&mut parts, &verifier).await
    }

    const ISS: &str = "https://auth.example.com";
    const AUD: &str = "https://reports.example.com";

    struct ReportsRead;
    impl ScopeName for ReportsRead {
        const NAME: &'static str = "reports:read";
    }

    fn client_token(aud: &str, scope: &str, sid: Option<&str>) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims = OAuthAccessClaims {
            iss: ISS.into(),
            sub: "u1".into(),
            aud: aud.into(),
            client_id: "c1".into(),
            scope: scope.into(),
            iat: now,
            nbf: now,
            exp: now + 60,
            jti: "j1".into(),
            sid: sid.map(str::to_owned),
            auth_time: Some(now),
            roles: None,
        };
        sign(&claims, Some(ACCESS_TOKEN_TYP))
    }

    fn sign(claims: &impl serde::Serialize, typ: Option<&str>) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(hs256_kid(SECRET));
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn scoped_verifier(audience: Option<&str>) -> Arc<Verifier> {
        let mut config = VerifierConfig::new(ISS);
        config.audience = audience.map(str::to_owned);
        Arc::new(Verifier::hs256(SECRET, config).unwrap())
    }

    async fn require_scope(
        verifier: &Arc<Verifier>,
        header: Option<String>,
    ) -> Result<RequireScope<ReportsRead>, AuthRejection> {
        let mut request = Request::builder();
        if let Some(h) = header {
            request = request.header("authorization", h);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        RequireScope::<ReportsRead>::from_request_parts(&mut parts, verifier).await
    }

    #[tokio::test]
    async fn require_scope_admits_only_tokens_granted_the_scope_for_this_audience() {
        let v = scoped_verifier(Some(AUD));
        let bearer = |t: String| Some(format!("Bearer {t}"));
        let ok = require_scope(&v, bearer(client_token(AUD, "openid reports:read", Some("s1")))).await.unwrap();
        assert_eq!(ok.claims().client_id, "c1");
        assert!(ok.claims().has_scope("openid") && !ok.claims().is_client_only());

        for scope in ["", "openid", "reports:readx", "reports", "reports:read:all", "REPORTS:READ"] {
            let r = require_scope(&v, bearer(client_token(AUD, scope, None))).await.unwrap_err();
            assert_eq!(r, AuthRejection::InsufficientScope("reports:read"), "{scope:?}");
        }
        let (status, code, _, www) = AuthRejection::InsufficientScope("reports:read").parts();
        assert_eq!((status, code), (StatusCode::FORBIDDEN, "insufficient_scope"));
        assert_eq!(www.unwrap(), r#"Bearer realm="gatepass", error="insufficient_scope", scope="reports:read""#);

        // Another resource's token, a token without `typ: at+jwt`, and gatepass's own
        // session token are not this service's.
        for t in
            [client_token("https://other.example.com", "reports:read", None), client_token(ISS, "reports:read", None)]
        {
            assert!(matches!(require_scope(&v, bearer(t)).await, Err(AuthRejection::Token(VerifyError::Invalid(_)))));
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let untyped = sign(
            &serde_json::json!({"iss": ISS, "sub": "u1", "aud": AUD, "client_id": "c1", "scope": "reports:read",
                "iat": now, "nbf": now, "exp": now + 60, "jti": "j"}),
            Some("JWT"),
        );
        assert!(matches!(require_scope(&v, bearer(untyped)).await, Err(AuthRejection::Token(_))));
        let mut session = serde_json::to_value(claims_of(&token(&["pwd"]))).unwrap();
        session["iss"] = ISS.into();
        session["aud"] = AUD.into();
        let session = sign(&session, Some(ACCESS_TOKEN_TYP));
        assert!(matches!(require_scope(&v, bearer(session)).await, Err(AuthRejection::Token(_))));

        // No token, and a verifier without an audience.
        assert_eq!(require_scope(&v, None).await.unwrap_err(), AuthRejection::Missing);
        let unscoped = scoped_verifier(None);
        let r = require_scope(&unscoped, bearer(client_token(AUD, "reports:read", None))).await.unwrap_err();
        assert_eq!(r, AuthRejection::Token(VerifyError::Invalid("no audience configured")));
    }

    fn claims_of(token: &str) -> serde_json::Value {
        use base64::Engine as _;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn require_mfa_admits_only_tokens_with_a_second_factor() {
        let ok = require_mfa(&token(&["pwd", "otp", "mfa"])).await.unwrap();
        assert_eq!(ok.0.amr, ["pwd", "otp", "mfa"]);
        assert_eq!(require_mfa(&token(&["pwd"])).await.unwrap_err(), AuthRejection::MfaRequired);
        // A token from before second factors has no `amr` at all, and still verifies.
        assert_eq!(require_mfa(&token(&[])).await.unwrap_err(), AuthRejection::MfaRequired);
        let (status, code, _, www) = AuthRejection::MfaRequired.parts();
        assert_eq!((status, code), (StatusCode::FORBIDDEN, "mfa_required"));
        assert!(www.unwrap().contains("insufficient_user_authentication"));
    }
}
