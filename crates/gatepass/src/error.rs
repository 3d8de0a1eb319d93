//! The one error type of the HTTP edge, and the one place that maps errors to responses.
//!
//! Every error body is `{"error": "<message>", "code": "<machine_code>"}`. 401s carry an
//! RFC 6750 `WWW-Authenticate` header. Internal details go to the log, never to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatepass_verify::VerifyError;

use crate::domain::ValidationError;
use crate::storage::StorageError;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 `validation_failed`: a field broke a rule.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// 400 `invalid_json`: the body is not the JSON expected (message says where).
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// 400 `invalid_request`: a malformed request other than JSON.
    #[error("{0}")]
    BadRequest(String),
    /// 400 `refresh_token_required`: refresh was called without a refresh token.
    #[error("refresh token required")]
    RefreshTokenRequired,
    /// 401 `invalid_credentials`: wrong username or password (never says which).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 401 `token_missing`.
    #[error("token missing")]
    TokenMissing,
    /// 401 `token_malformed`, `token_invalid` or `token_expired`.
    #[error(transparent)]
    Token(#[from] VerifyError),
    /// 401 `token_revoked`: the session was ended.
    #[error("token revoked")]
    TokenRevoked,
    /// 401 `refresh_token_invalid`.
    #[error("refresh token invalid")]
    RefreshTokenInvalid,
    /// 401 `refresh_token_reused`: an already-rotated refresh token came back; the session
    /// has been ended.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// 401 `fresh_login_required`: the action needs a recent password entry.
    #[error("fresh login required")]
    FreshLoginRequired,
    /// 401 `invalid_client`: a service credential (HTTP Basic) is missing or wrong.
    #[error("invalid client")]
    InvalidClient,
    /// 401 `mfa_required`: the password was right, but the account has a second factor and
    /// this way of signing in cannot ask for it (use `/api/login` and `/api/login/mfa`).
    #[error("second factor required")]
    MfaRequired,
    /// 403 `mfa_enrollment_required`: the account's roles require a second factor it does
    /// not have (or this session was started without one): sign in again and set one up.
    #[error("second factor enrolment required")]
    MfaEnrollmentRequired,
    /// 403 `insufficient_role`.
    #[error("insufficient role")]
    InsufficientRole,
    /// 403 `csrf_failed`.
    #[error("CSRF check failed")]
    CsrfFailed,
    /// 403 `registration_closed`.
    #[error("registration closed")]
    RegistrationClosed,
    /// 403 `email_not_verified`: login needs a verified address (`require_verified_email`).
    #[error("e-mail address not verified")]
    EmailNotVerified,
    /// 400 `link_invalid`: a mailed link's token is unknown, used or expired.
    #[error("link invalid")]
    LinkInvalid,
    /// 409 `email_taken`: another account has this address.
    #[error("e-mail address taken")]
    EmailTaken,
    /// 404 `not_found`.
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408 `request_timeout`: the request took longer than the configured limit.
    #[error("request timeout")]
    RequestTimeout,
    /// 409 `username_taken`.
    #[error("username taken")]
    UsernameTaken,
    /// 409 `mfa_already_enabled`: the account already has an active TOTP factor.
    #[error("second factor already enabled")]
    MfaAlreadyEnabled,
    /// 409 `passkey_name_taken`: another of the account's passkeys has this name.
    #[error("passkey name taken")]
    PasskeyNameTaken,
    /// 503 `passkeys_unavailable`: the public URL cannot be a WebAuthn relying party (an IP
    /// address rather than a host name), so passkeys are off.
    #[error("passkeys unavailable")]
    PasskeysUnavailable,
    /// 413 `payload_too_large`.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`.
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// 429 `rate_limited`, with the seconds to wait.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after: u64,
    },
    /// 503 `storage_unavailable`.
    #[error("storage unavailable")]
    StorageUnavailable,
    /// 500 `internal_error`; the cause is logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict => Error::Internal("unexpected unique-constraint conflict".into()),
            StorageError::Unavailable(m) => {
                tracing::error!(error = %m, "storage unavailable");
                Error::StorageUnavailable
            }
            StorageError::Other(m) => Error::Internal(m),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Internal(format!("{e:#}"))
    }
}

/// The machine-readable `code` of every error body. The OpenAPI description lists these
/// variants (derived from this enum), grouped by [`ErrorCode::status`], so the documented
/// codes and statuses cannot drift from what [`Error`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a field broke a rule.
    ValidationFailed,
    /// 400: the body is not the JSON expected.
    InvalidJson,
    /// 400: a malformed request other than JSON.
    InvalidRequest,
    /// 400: refresh was called without a refresh token.
    RefreshTokenRequired,
    /// 401: wrong username or password.
    InvalidCredentials,
    /// 401: no credentials.
    TokenMissing,
    /// 401: the credentials are not shaped like a bearer token.
    TokenMalformed,
    /// 401: the token fails verification.
    TokenInvalid,
    /// 401: the token has expired.
    TokenExpired,
    /// 401: the session was ended.
    TokenRevoked,
    /// 401: the refresh token is unknown or expired.
    RefreshTokenInvalid,
    /// 401: an already-rotated refresh token came back.
    RefreshTokenReused,
    /// 401: the action needs a recent password entry.
    FreshLoginRequired,
    /// 401: a service credential (HTTP Basic) is missing or wrong.
    InvalidClient,
    /// 401: the account has a second factor this way of signing in cannot ask for.
    MfaRequired,
    /// 403: the account's roles require a second factor this session does not have.
    MfaEnrollmentRequired,
    /// 403: the caller lacks the role.
    InsufficientRole,
    /// 403: the CSRF check failed.
    CsrfFailed,
    /// 403: registration is closed.
    RegistrationClosed,
    /// 403: login needs a verified e-mail address.
    EmailNotVerified,
    /// 400: a mailed link is unknown, used or expired.
    LinkInvalid,
    /// 409: another account has this e-mail address.
    EmailTaken,
    /// 404.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 408: the request took longer than the configured limit.
    RequestTimeout,
    /// 409: the username exists.
    UsernameTaken,
    /// 409: the account already has an active TOTP factor.
    MfaAlreadyEnabled,
    /// 409: another of the account's passkeys has this name.
    PasskeyNameTaken,
    /// 503: passkeys are off (the public URL is not a host name).
    PasskeysUnavailable,
    /// 413.
    PayloadTooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 429.
    RateLimited,
    /// 503.
    StorageUnavailable,
    /// 500.
    InternalError,
}

impl ErrorCode {
    /// The HTTP status every error with this code has.
    pub fn status(self) -> StatusCode {
        use ErrorCode as C;
        match self {
            C::ValidationFailed | C::InvalidJson | C::InvalidRequest | C::RefreshTokenRequired | C::LinkInvalid => {
                StatusCode::BAD_REQUEST
            }
            C::InvalidCredentials
            | C::TokenMissing
            | C::TokenMalformed
            | C::TokenInvalid
            | C::TokenExpired
            | C::TokenRevoked
            | C::RefreshTokenInvalid
            | C::RefreshTokenReused
            | C::FreshLoginRequired
            | C::InvalidClient
            | C::MfaRequired => StatusCode::UNAUTHORIZED,
            C::InsufficientRole
            | C::CsrfFailed
            | C::RegistrationClosed
            | C::EmailNotVerified
            | C::MfaEnrollmentRequired => StatusCode::FORBIDDEN,
            C::NotFound => StatusCode::NOT_FOUND,
            C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            C::UsernameTaken | C::EmailTaken | C::MfaAlreadyEnabled | C::PasskeyNameTaken => StatusCode::CONFLICT,
            C::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            C::StorageUnavailable | C::PasskeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            C::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code as it appears in bodies, e.g. `token_expired`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode as C;
        match self {
            C::ValidationFailed => "validation_failed",
            C::InvalidJson => "invalid_json",
            C::InvalidRequest => "invalid_request",
            C::RefreshTokenRequired => "refresh_token_required",
            C::InvalidCredentials => "invalid_credentials",
            C::TokenMissing => "token_missing",
            C::TokenMalformed => "token_malformed",
            C::TokenInvalid => "token_invalid",
            C::TokenExpired => "token_expired",
            C::TokenRevoked => "token_revoked",
            C::RefreshTokenInvalid => "refresh_token_invalid",
            C::RefreshTokenReused => "refresh_token_reused",
            C::FreshLoginRequired => "fresh_login_required",
            C::InvalidClient => "invalid_client",
            C::MfaRequired => "mfa_required",
            C::MfaEnrollmentRequired => "mfa_enrollment_required",
            C::InsufficientRole => "insufficient_role",
            C::CsrfFailed => "csrf_failed",
            C::RegistrationClosed => "registration_closed",
            C::EmailNotVerified => "email_not_verified",
            C::LinkInvalid => "link_invalid",
            C::EmailTaken => "email_taken",
            C::NotFound => "not_found",
            C::MethodNotAllowed => "method_not_allowed",
            C::RequestTimeout => "request_timeout",
            C::UsernameTaken => "username_taken",
            C::MfaAlreadyEnabled => "mfa_already_enabled",
            C::PasskeyNameTaken => "passkey_name_taken",
            C::PasskeysUnavailable => "passkeys_unavailable",
            C::PayloadTooLarge => "payload_too_large",
            C::UnsupportedMediaType => "unsupported_media_type",
            C::RateLimited => "rate_limited",
            C::StorageUnavailable => "storage_unavailable",
            C::InternalError => "internal_error",
        }
    }
}

/// The body of every error response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A message for people; may change between releases.
    pub error: String,
    /// A stable code for programs.
    pub code: ErrorCode,
}

impl Error {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.error_code().status()
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// The machine-readable code as an [`ErrorCode`].
    pub fn error_code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Error::Validation(_) => C::ValidationFailed,
            Error::InvalidJson(_) => C::InvalidJson,
            Error::BadRequest(_) => C::InvalidRequest,
            Error::RefreshTokenRequired => C::RefreshTokenRequired,
            Error::InvalidCredentials => C::InvalidCredentials,
            Error::TokenMissing => C::TokenMissing,
            Error::Token(VerifyError::Malformed(_)) => C::TokenMalformed,
            Error::Token(VerifyError::Invalid(_)) => C::TokenInvalid,
            Error::Token(VerifyError::Expired) => C::TokenExpired,
            Error::TokenRevoked => C::TokenRevoked,
            Error::RefreshTokenInvalid => C::RefreshTokenInvalid,
            Error::RefreshTokenReused => C::RefreshTokenReused,
            Error::FreshLoginRequired => C::FreshLoginRequired,
            Error::InvalidClient => C::InvalidClient,
            Error::MfaRequired => C::MfaRequired,
            Error::MfaEnrollmentRequired => C::MfaEnrollmentRequired,
            Error::InsufficientRole => C::InsufficientRole,
            Error::CsrfFailed => C::CsrfFailed,
            Error::RegistrationClosed => C::RegistrationClosed,
            Error::EmailNotVerified => C::EmailNotVerified,
            Error::LinkInvalid => C::LinkInvalid,
            Error::EmailTaken => C::EmailTaken,
            Error::NotFound => C::NotFound,
            Error::MethodNotAllowed => C::MethodNotAllowed,
            Error::RequestTimeout => C::RequestTimeout,
            Error::UsernameTaken => C::UsernameTaken,
            Error::MfaAlreadyEnabled => C::MfaAlreadyEnabled,
            Error::PasskeyNameTaken => C::PasskeyNameTaken,
            Error::PasskeysUnavailable => C::PasskeysUnavailable,
            Error::PayloadTooLarge => C::PayloadTooLarge,
            Error::UnsupportedMediaType(_) => C::UnsupportedMediaType,
            Error::RateLimited { .. } => C::RateLimited,
            Error::StorageUnavailable => C::StorageUnavailable,
            Error::Internal(_) => C::InternalError,
        }
    }

    /// The message shown to clients.
    pub fn message(&self) -> String {
        match self {
            Error::Validation(v) => format!("{}: {}", v.field, v.message),
            Error::InvalidJson(m) => format!("invalid JSON body: {m}"),
            Error::BadRequest(m) => m.clone(),
            Error::RefreshTokenRequired => "send the refresh token as {\"refresh_token\": \"...\"}; \
                an access token cannot refresh itself"
                .into(),
            Error::InvalidCredentials => "Invalid credentials".into(),
            Error::TokenMissing => "Token is missing".into(),
            Error::Token(VerifyError::Malformed(_)) => {
                "Malformed Authorization header: expected `Authorization: Bearer <token>`".into()
            }
            Error::Token(VerifyError::Invalid(_)) => "Token is invalid".into(),
            Error::Token(VerifyError::Expired) => "Token has expired".into(),
            Error::TokenRevoked => "Token has been revoked".into(),
            Error::RefreshTokenInvalid => "Refresh token is invalid or expired".into(),
            Error::RefreshTokenReused => "Refresh token was already used; the session has been ended for safety".into(),
            Error::FreshLoginRequired => "This action needs a recent login: enter your password again".into(),
            Error::InvalidClient => "Client authentication failed".into(),
            Error::MfaRequired => {
                "This account has a second factor: sign in through /api/login and /api/login/mfa".into()
            }
            Error::MfaEnrollmentRequired => "Your role requires a second factor: sign in again through \
                /api/login to set one up"
                .into(),
            Error::InsufficientRole => "You do not have the role this action needs".into(),
            Error::CsrfFailed => "CSRF check failed".into(),
            Error::RegistrationClosed => "Registration is closed".into(),
            Error::EmailNotVerified => {
                "Verify your e-mail address first: follow the link in the mail gatepass sent you".into()
            }
            Error::LinkInvalid => "This link is invalid, has expired or was already used; ask for a new one".into(),
            Error::EmailTaken => "This e-mail address belongs to another account".into(),
            Error::NotFound => "Not found".into(),
            Error::MethodNotAllowed => "Method not allowed".into(),
            Error::RequestTimeout => "The request took too long".into(),
            Error::UsernameTaken => "Username already exists".into(),
            Error::MfaAlreadyEnabled => "An authenticator app is already set up; remove it first".into(),
            Error::PasskeyNameTaken => "You already have a passkey with this name".into(),
            Error::PasskeysUnavailable => {
                "Passkeys are off: GATEPASS_PUBLIC_URL must name the server by a host name (e.g. localhost), \
                 not an IP address"
                    .into()
            }
            Error::PayloadTooLarge => "Request body too large (limit 64 KiB)".into(),
            Error::UnsupportedMediaType(expected) => format!("Unsupported content type; expected {expected}"),
            Error::RateLimited { retry_after } => format!("Too many attempts; retry in {retry_after} s"),
            Error::StorageUnavailable => "Storage is temporarily unavailable; retry shortly".into(),
            Error::Internal(_) => "Internal server error".into(),
        }
    }

    fn www_authenticate(&self) -> Option<String> {
        const REALM: &str = "Bearer realm=\"gatepass\"";
        let description = match self {
            // RFC 6750 §3.1: no error attribute when the request had no credentials.
            Error::TokenMissing => return Some(REALM.to_owned()),
            Error::Token(VerifyError::Malformed(_)) => "malformed credentials",
            Error::Token(VerifyError::Invalid(_)) => "invalid token",
            Error::Token(VerifyError::Expired) => "token expired",
            Error::TokenRevoked => "token revoked",
            Error::FreshLoginRequired => "fresh login required",
            Error::InvalidCredentials | Error::RefreshTokenInvalid | Error::RefreshTokenReused => {
                return Some(REALM.to_owned());
            }
            Error::InsufficientRole => return Some(format!("{REALM}, error=\"insufficient_scope\"")),
            Error::InvalidClient => return Some("Basic realm=\"gatepass\"".to_owned()),
            _ => return None,
        };
        Some(format!("{REALM}, error=\"invalid_token\", error_description=\"{description}\""))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Internal(detail) => tracing::error!(error = %detail, "internal error"),
            Error::StorageUnavailable => {}
            other => tracing::debug!(code = other.code(), "request refused"),
        }
        let status = self.status();
        let body = ErrorBody { error: self.message(), code: self.error_code() };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(v) = self.www_authenticate().and_then(|w| HeaderValue::from_str(&w).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        match self {
            Error::RateLimited { retry_after } => {
                metrics::counter!("gatepass_rate_limited_total").increment(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            }
            Error::StorageUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

/// The error codes of the OAuth endpoints (RFC 6749 §5.2, RFC 6750 §3.1, OpenID Connect
/// Core §3.1.2.6). Their bodies are `{"error": "<code>", "error_description": "…"}`, as
/// OAuth clients expect, rather than gatepass's own `{"error", "code"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthCode {
    /// 400: a parameter is missing, repeated or malformed.
    InvalidRequest,
    /// 401: client authentication failed.
    InvalidClient,
    /// 400: the code, verifier or refresh token is invalid, expired, used or someone else's.
    InvalidGrant,
    /// 400: the client may not use this grant or response type.
    UnauthorizedClient,
    /// 400: the grant type is unknown.
    UnsupportedGrantType,
    /// 400: a scope is unknown or not allowed for the client.
    InvalidScope,
    /// 400: the `resource` is not a valid indicator or not allowed for the client (RFC 8707).
    InvalidTarget,
    /// 401: the bearer token is invalid, expired or revoked (RFC 6750).
    InvalidToken,
    /// 403: the bearer token lacks the scope (RFC 6750).
    InsufficientScope,
    /// 400: a redirect URI in a registration is not allowed (RFC 7591 §3.2.2).
    InvalidRedirectUri,
    /// 400: other client metadata in a registration is not allowed (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// 400: the user has not decided on the device code yet (RFC 8628 §3.5).
    AuthorizationPending,
    /// 400: still pending, and the device polls too fast; the interval grew by 5 s (RFC 8628 §3.5).
    SlowDown,
    /// 400: the user denied the device code (RFC 8628 §3.5).
    AccessDenied,
    /// 400: the device code has expired (RFC 8628 §3.5).
    ExpiredToken,
    /// 400: this kind of token cannot be revoked (RFC 7009 §2.2.1).
    UnsupportedTokenType,
    /// 500.
    ServerError,
    /// 503.
    TemporarilyUnavailable,
}

impl OAuthCode {
    /// The code as it appears in bodies and redirects.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthCode::InvalidRequest => "invalid_request",
            OAuthCode::InvalidClient => "invalid_client",
            OAuthCode::InvalidGrant => "invalid_grant",
            OAuthCode::UnauthorizedClient => "unauthorized_client",
            OAuthCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthCode::InvalidScope => "invalid_scope",
            OAuthCode::InvalidTarget => "invalid_target",
            OAuthCode::InvalidToken => "invalid_token",
            OAuthCode::InsufficientScope => "insufficient_scope",
            OAuthCode::InvalidRedirectUri => "invalid_redirect_uri",
            OAuthCode::InvalidClientMetadata => "invalid_client_metadata",
            OAuthCode::AuthorizationPending => "authorization_pending",
            OAuthCode::SlowDown => "slow_down",
            OAuthCode::AccessDenied => "access_denied",
            OAuthCode::ExpiredToken => "expired_token",
            OAuthCode::UnsupportedTokenType => "unsupported_token_type",
            OAuthCode::ServerError => "server_error",
            OAuthCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status of a response carrying this code.
    pub fn status(self) -> StatusCode {
        match self {
            OAuthCode::InvalidClient | OAuthCode::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthCode::InsufficientScope => StatusCode::FORBIDDEN,
            OAuthCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error of the token, userinfo and client-facing OAuth endpoints.
#[derive(Debug)]
pub struct OAuthError {
    /// The OAuth error code.
    pub code: OAuthCode,
    /// A human-readable explanation (never internals).
    pub description: String,
}

impl OAuthError {
    /// An error with `code` and `description`.
    pub fn new(code: OAuthCode, description: impl Into<String>) -> Self {
        Self { code, description: description.into() }
    }
}

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        match e {
            Error::StorageUnavailable => {
                OAuthError::new(OAuthCode::TemporarilyUnavailable, "the service is unavailable; retry later")
            }
            Error::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                OAuthError::new(OAuthCode::ServerError, "internal error")
            }
            other => OAuthError::new(OAuthCode::InvalidRequest, other.message()),
        }
    }
}

impl From<StorageError> for OAuthError {
    fn from(e: StorageError) -> Self {
        Error::from(e).into()
    }
}

#[derive(serde::Serialize)]
struct OAuthErrorBody<'a> {
    error: &'static str,
    error_description: &'a str,
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        tracing::debug!(code = self.code.as_str(), "OAuth request refused");
        let body = OAuthErrorBody { error: self.code.as_str(), error_description: &self.description };
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let challenge = match self.code {
            // RFC 6749 §5.2: a failed client authentication names the scheme to use.
            OAuthCode::InvalidClient => Some(r#"Basic realm="gatepass""#.to_owned()),
            OAuthCode::InvalidToken | OAuthCode::InsufficientScope => {
                Some(format!(r#"Bearer realm="gatepass", error="{}""#, self.code.as_str()))
            }
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, v);
        }
        if self.code == OAuthCode::TemporarilyUnavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}
