//! Passkeys: the signed-in user's list, adding (registration ceremony), renaming and
//! removing; passwordless sign-in (`/api/passkeys/login/…`); and the options for answering
//! the second login step with a passkey (`/api/login/mfa/webauthn/options`).
//!
//! Options are the WebAuthn Level 2 JSON shapes (`publicKey` with base64url binary
//! fields); credentials come back as `PublicKeyCredential.toJSON()` gives them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Delivery, rfc3339, token_response};
use crate::domain::ValidationError;
use crate::error::Result;
use crate::http::extract::{Auth, Client, Cookies, HeldSession, JsonBody, PathParam, QueryParams};
use crate::http::openapi::{
    AccessErrors, AuthErrors, BodyErrors, Conflict, GrantErrors, NotFound, ServiceUnavailable, SignedIn,
    TooManyRequests, Unauthorized,
};
use crate::http::{AppState, no_store};
use crate::service::passkeys::{PublicKeyCredential, RegisterPublicKeyCredential};
use crate::service::sessions::BrowserLogin;
use crate::storage::passkeys::PasskeyRecord;

/// The routes of this file.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(registration_start))
        .routes(routes!(registration_finish))
        .routes(routes!(rename, remove))
        .routes(routes!(login_start))
        .routes(routes!(login_finish))
        .routes(routes!(mfa_options))
}

/// A passkey as its owner sees it (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    /// Its id.
    id: String,
    /// The name its owner gave it.
    name: String,
    /// Whether the authenticator may sync it to other devices (backup eligible).
    backup_eligible: bool,
    /// Whether it is synced now (backup state), as last reported.
    backup_state: bool,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339; absent until first used to sign in.
    last_used_at: Option<String>,
}

impl From<&PasskeyRecord> for PasskeyView {
    fn from(p: &PasskeyRecord) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
        }
    }
}

/// `GET /api/passkeys`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyList {
    /// Oldest first.
    passkeys: Vec<PasskeyView>,
}

/// My passkeys
#[utoipa::path(get, path = "/api/passkeys", tag = "passkeys", security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The passkeys", body = PasskeyList), AuthErrors))]
async fn list(State(state): State<AppState>, auth: Auth) -> Result<Response> {
    let passkeys = state.service.passkeys(&auth.claims).await?;
    let body = PasskeyList { passkeys: passkeys.iter().map(PasskeyView::from).collect() };
    Ok(no_store(Json(body).into_response()))
}

/// A started ceremony: the handle to send back with its finish, and the options for
/// `navigator.credentials.create()` / `.get()`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyStarted {
    /// Send it back with the finish, within five minutes; it works once.
    ceremony: String,
    /// `PublicKeyCredentialCreationOptions` / `PublicKeyCredentialRequestOptions`
    /// (WebAuthn Level 2 JSON: binary fields in base64url).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    public_key: serde_json::Value,
    /// `conditional` for a sign-in that the browser's autofill can offer.
    #[serde(skip_serializing_if = "Option::is_none")]
    mediation: Option<serde_json::Value>,
}

/// Splits `{"publicKey": …, "mediation": …}` as webauthn-rs serialises options.
fn started(ceremony: String, options: serde_json::Value) -> CeremonyStarted {
    let mut options = options;
    let public_key = options.get_mut("publicKey").map(serde_json::Value::take).unwrap_or_default();
    let mediation = options.get_mut("mediation").map(serde_json::Value::take).filter(|m| !m.is_null());
    CeremonyStarted { ceremony, public_key, mediation }
}

fn json_of<T: Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| crate::error::Error::Internal(e.to_string()))
}

/// Start adding a passkey
///
/// Creation options for a discoverable, user-verifying credential (the account's passkeys
/// excluded) and the ceremony handle, bound to the caller.
#[utoipa::path(post, path = "/api/passkeys/registration/start", tag = "passkeys",
    security(("bearer" = []), ("session_cookie" = [])),
    responses((status = 200, description = "The ceremony", body = CeremonyStarted), AccessErrors, BodyErrors))]
async fn registration_start(State(state): State<AppState>, Client(client): Client, auth: Auth) -> Result<Response> {
    let s = state.service.passkey_registration_start(&auth.claims, &client).await?;
    Ok(no_store(Json(started(s.ceremony, s.options)).into_response()))
}

/// `POST /api/passkeys/registration/finish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationFinish {
    /// The handle from the start.
    #[schema(value_type = String, required = true)]
    ceremony: Option<String>,
    /// A name for the passkey (1–64 characters, unique among the account's passkeys).
    #[schema(value_type = String, required = true)]
    name: Option<String>,
    /// The new credential (`PublicKeyCredential.toJSON()` of `navigator.credentials.create()`).
    #[schema(value_type = Object, required = true)]
    credential: Option<Box<RegisterPublicKeyCredential>>,
}

/// A new passkey.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyAdded {
    /// What happened.
    message: &'static str,
    /// The passkey.
    passkey: PasskeyView,
    /// Ten single-use recovery codes when this is the account's first second factor,
    /// shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_codes: Option<Vec<String>>,
}

/// Finish adding a passkey
///
/// Verifies the authenticator's answer for the ceremony and stores the passkey. The first
/// second factor of an account comes with ten recovery codes. A ceremony works once,
/// whatever the outcome (`400 invalid_request` after that).
#[utoipa::path(post, path = "/api/passkeys/registration/finish", tag = "passkeys",
    security(("bearer" = []), ("session_cookie" = [])), request_body = RegistrationFinish,
    responses((status = 201, description = "Added", body = PasskeyAdded), BodyErrors, AccessErrors, Conflict))]
async fn registration_finish(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    JsonBody(req): JsonBody<RegistrationFinish>,
) -> Result<Response> {
    let ceremony = req.ceremony.ok_or_else(|| ValidationError::new("ceremony", "is required"))?;
    let name = req.name.ok_or_else(|| ValidationError::new("name", "is required"))?;
    let credential = req.credential.ok_or_else(|| ValidationError::new("credential", "is required"))?;
    let added = state.service.passkey_registration_finish(&auth.claims, &ceremony, &name, *credential, &client).await?;
    let body = PasskeyAdded {
        message: "Passkey added",
        passkey: PasskeyView::from(&added.passkey),
        recovery_codes: added.recovery_codes,
    };
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// `PATCH /api/passkeys/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// The new name.
    #[schema(value_type = String, required = true)]
    name: Option<String>,
}

/// Rename a passkey
#[utoipa::path(patch, path = "/api/passkeys/{id}", tag = "passkeys", security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Passkey id")), request_body = RenameRequest,
    responses((status = 204, description = "Renamed"), BodyErrors, AccessErrors, NotFound, Conflict))]
async fn rename(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<RenameRequest>,
) -> Result<Response> {
    let name = req.name.ok_or_else(|| ValidationError::new("name", "is required"))?;
    state.service.passkey_rename(&auth.claims, &id, &name, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Remove a passkey
///
/// Needs a fresh sign-in that included a second factor (a passkey sign-in counts), as
/// removing the authenticator app does (`401 fresh_login_required` otherwise). Removing
/// the account's last second factor removes its recovery codes too.
#[utoipa::path(delete, path = "/api/passkeys/{id}", tag = "passkeys", security(("bearer" = []), ("session_cookie" = [])),
    params(("id" = String, Path, description = "Passkey id")),
    responses((status = 204, description = "Removed"), AccessErrors, NotFound))]
async fn remove(
    State(state): State<AppState>,
    Client(client): Client,
    auth: Auth,
    PathParam(id): PathParam,
) -> Result<Response> {
    state.service.passkey_remove(&auth.claims, &id, &client).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Start a passwordless sign-in
///
/// Request options for a discoverable credential (empty `allowCredentials`,
/// `mediation: "conditional"` so the browser can offer passkeys in the username field's
/// autofill) and the ceremony handle, bound to this client. Counts against the client's
/// login rate limit.
#[utoipa::path(post, path = "/api/passkeys/login/start", tag = "passkeys",
    responses((status = 200, description = "The ceremony", body = CeremonyStarted), TooManyRequests,
        ServiceUnavailable, crate::http::openapi::Forbidden))]
async fn login_start(State(state): State<AppState>, Client(client): Client) -> Result<Response> {
    let s = state.service.passkey_login_start(&client).await?;
    Ok(no_store(Json(started(s.ceremony, json_of(&s.options)?)).into_response()))
}

/// `POST /api/passkeys/login/finish`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginFinish {
    /// The handle from the start.
    #[schema(value_type = String, required = true)]
    ceremony: Option<String>,
    /// The assertion (`PublicKeyCredential.toJSON()` of `navigator.credentials.get()`).
    #[schema(value_type = Object, required = true)]
    credential: Option<Box<PublicKeyCredential>>,
}

/// `?cookie=` of a passkey sign-in.
#[derive(Debug, Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PasskeyDeliveryQuery {
    /// `true`: set the tokens as cookies and leave them out of the body.
    cookie: Option<bool>,
}

/// Finish a passwordless sign-in
///
/// The same answer as `/api/login` (`?cookie=true` too). The ceremony works once, from
/// the client that started it; every refusal is `401 invalid_credentials`. A passkey whose
/// counter went back (a cloned authenticator) is refused and audited.
#[utoipa::path(post, path = "/api/passkeys/login/finish", tag = "passkeys", params(PasskeyDeliveryQuery),
    request_body = LoginFinish, responses(SignedIn, GrantErrors, Unauthorized))]
async fn login_finish(
    State(state): State<AppState>,
    Client(client): Client,
    Cookies(cookies): Cookies,
    HeldSession(held): HeldSession,
    QueryParams(query): QueryParams<PasskeyDeliveryQuery>,
    JsonBody(req): JsonBody<LoginFinish>,
) -> Result<Response> {
    let ceremony = req.ceremony.ok_or_else(|| ValidationError::new("ceremony", "is required"))?;
    let credential = req.credential.ok_or_else(|| ValidationError::new("credential", "is required"))?;
    let delivery = if query.cookie.unwrap_or(false) { Delivery::Cookies(cookies) } else { Delivery::Body };
    let browser = matches!(delivery, Delivery::Cookies(_)).then_some(BrowserLogin { held: held.as_ref() });
    let grant = state.service.passkey_login_finish(&ceremony, *credential, &client, browser).await?;
    Ok(token_response(&state, StatusCode::OK, "Login successful", &grant, delivery))
}

/// `POST /api/login/mfa/webauthn/options`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaOptionsRequest {
    /// The challenge from `/api/login`.
    #[schema(value_type = String, required = true)]
    challenge: Option<String>,
}

/// Passkey options for the second login step
///
/// Request options (the account's passkeys as `allowCredentials`) for answering a
/// challenge from `/api/login` with a passkey; send the assertion to `/api/login/mfa` as
/// `webauthn`. The challenge stays usable; asking again replaces the options. An unknown,
/// expired or foreign challenge is `401 invalid_credentials`.
#[utoipa::path(post, path = "/api/login/mfa/webauthn/options", tag = "mfa", request_body = MfaOptionsRequest,
    responses((status = 200, description = "The options", body = CeremonyStarted), BodyErrors, Unauthorized,
        ServiceUnavailable, crate::http::openapi::Forbidden))]
async fn mfa_options(
    State(state): State<AppState>,
    Client(client): Client,
    JsonBody(req): JsonBody<MfaOptionsRequest>,
) -> Result<Response> {
    let challenge = req.challenge.ok_or_else(|| ValidationError::new("challenge", "is required"))?;
    let options = state.service.passkey_mfa_options(&challenge, &client).await?;
    Ok(no_store(Json(started(challenge, json_of(&options)?)).into_response()))
}
