//! Who may call a route: [`Caller`] (any valid access token or this process's operator
//! token) and [`AdminCaller`] (role `admin` or the operator token).
//!
//! Both build on [`Auth`], so revoked sessions and cookie CSRF rules apply exactly as on
//! every other protected route. The operator token is accepted only from the
//! `Authorization` header, never from a cookie, and each use is audited.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use gatepass_verify::{TokenSource, VerifyError, token_from_headers};

use crate::auth::operator::{OPERATOR_SUBJECT, WRONG_TYPE};
use crate::domain::Role;
use crate::error::Error;
use crate::http::AppState;
use crate::http::extract::{Auth, Client};
use crate::service::Actor;
use crate::storage::audit::{AuditEvent, SUCCESS};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A user with a valid, unrevoked access token.
    User(Box<Auth>),
    /// Whoever holds this process's operator token.
    Operator,
}

impl Caller {
    /// The actor recorded in the audit trail: a user id or `operator`.
    pub fn actor_id(&self) -> &str {
        match self {
            Caller::User(a) => &a.claims.sub,
            Caller::Operator => OPERATOR_SUBJECT,
        }
    }

    /// A display name: the username or `operator`.
    pub fn name(&self) -> &str {
        match self {
            Caller::User(a) => &a.claims.username,
            Caller::Operator => OPERATOR_SUBJECT,
        }
    }

    /// Whether the caller has administrator powers.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::User(a) => a.claims.has_role(Role::ADMIN),
            Caller::Operator => true,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(ops) = &state.operator
            && let Ok(Some((token, TokenSource::Header))) = token_from_headers(&parts.headers)
        {
            match ops.verify(state.service.verifier(), &token) {
                Ok(_) => {}
                // Not an operator token at all: judge it as an access token below.
                Err(VerifyError::Invalid(WRONG_TYPE)) => {
                    return Ok(Caller::User(Box::new(Auth::from_request_parts(parts, state).await?)));
                }
                // An operator token that is expired, from an earlier run or forged.
                Err(e) => return Err(e.into()),
            }
            let Client(client) = Client::from_request_parts(parts, state).await?;
            let detail = serde_json::json!({ "method": parts.method.as_str(), "path": parts.uri.path() });
            state
                .service
                .core()
                .audit(
                    AuditEvent::new("operator_token_used", SUCCESS)
                        .actor(OPERATOR_SUBJECT)
                        .client(client.ip.as_deref(), client.user_agent.as_deref())
                        .detail(detail),
                )
                .await;
            return Ok(Caller::Operator);
        }
        // Cookie-borne tokens, or the operator token switched off: access tokens only.
        Ok(Caller::User(Box::new(Auth::from_request_parts(parts, state).await?)))
    }
}

/// A caller with role `admin` or the operator token: 401 when unauthenticated, 403
/// `insufficient_role` when authenticated without the role.
#[derive(Debug, Clone)]
pub struct AdminCaller(pub Caller);

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.is_admin() {
            return Err(Error::InsufficientRole);
        }
        Ok(AdminCaller(caller))
    }
}

/// An [`AdminCaller`] as the audit trail names it: who (a user id or `operator`) and from
/// where. For admin actions that change something.
#[derive(Debug, Clone)]
pub struct AdminActor(pub Actor);

impl FromRequestParts<AppState> for AdminActor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let AdminCaller(caller) = AdminCaller::from_request_parts(parts, state).await?;
        let Client(client) = Client::from_request_parts(parts, state).await?;
        Ok(AdminActor(Actor::user(caller.actor_id(), &client)))
    }
}
