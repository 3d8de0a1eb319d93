//! Sessions: starting one, refreshing it, authenticating its access tokens, listing and
//! ending sessions, and sweeping what has expired.

use gatepass_verify::{AccessClaims, VerifyError};

use super::{AuthService, ClientInfo, Core, TokenGrant, event, now};
use crate::auth::refresh::RefreshTokens;
use crate::domain::Revocation;
use crate::domain::{User, UserId};
use crate::error::{Error, Result};
use crate::storage::audit::{FAILURE, SUCCESS};
use crate::storage::{NewSession, Replaced, RevokedSession, RotateRequest, Rotation, SessionFilter, SessionRecord};

/// The session a client already holds when it proves who it is again.
#[derive(Debug, Clone, Copy)]
pub enum Renewing<'a> {
    /// None (a JSON client, or a browser without a session).
    Nothing,
    /// The session of the browser's access cookie, if any: ended when the new one starts.
    Held(Option<&'a AccessClaims>),
    /// Step-up of this session: it is replaced by a new one, and nothing is issued when it
    /// has been revoked meanwhile.
    Required(&'a AccessClaims),
}

/// A login that answers with cookies (a browser), and the session its cookies held.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrowserLogin<'a> {
    /// The session of the browser's access cookie, if any: it ends when the new one starts.
    pub held: Option<&'a AccessClaims>,
}

/// Which sessions logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    /// The current session.
    Local,
    /// Every session of the user.
    Global,
    /// Every session but the current one.
    Others,
}

impl Core {
    /// Ends every session of `user_id` selected by `filter` and refuses their tokens now.
    ///
    /// # Errors
    /// When storage fails; then nothing was revoked.
    pub async fn revoke(&self, user_id: &str, filter: SessionFilter<'_>) -> Result<usize> {
        let revoked = self.storage.revoke_sessions(user_id, filter, now()).await?;
        let n = revoked.len();
        self.apply_revocations(revoked);
        Ok(n)
    }

    /// Puts revocations that storage already persisted in force on this instance.
    pub(crate) fn apply_revocations(&self, list: Vec<RevokedSession>) {
        if list.is_empty() {
            return;
        }
        for r in list {
            self.revocations.insert(r.sid, r.until, r.reason);
        }
        // Committed already: the feed can read them now.
        self.feed.wake();
    }

    /// Loads persisted revocations into memory (start-up and resync).
    ///
    /// # Errors
    /// When storage cannot be read; the revocations in memory stay as they were.
    pub async fn load_revocations(&self) -> Result<usize> {
        let list = self.storage.live_revocations(now()).await?;
        let n = list.len();
        self.apply_revocations(list);
        Ok(n)
    }

    /// Whether the session `sid` was revoked, as storage says (for processes that keep no
    /// revocations in memory, such as `gatepass token verify`).
    ///
    /// # Errors
    /// When storage cannot be read.
    pub async fn is_revoked(&self, sid: &str) -> Result<bool> {
        // One row, not the whole denylist.
        Ok(self.storage.session(sid).await?.is_some_and(|s| s.revoked_at.is_some()))
    }

    /// Live sessions in the whole deployment.
    ///
    /// # Errors
    /// When storage cannot be read.
    pub async fn count_live_sessions(&self) -> Result<i64> {
        Ok(self.storage.count_live_sessions(now()).await?)
    }
}

impl AuthService {
    /// Starts a session for `user` (who proved who they are at `auth_time`) and issues its
    /// first tokens. A session the client already holds (`renewing`) ends in the same
    /// transaction, so signing in again never leaves the old session id alive (ASVS 5
    /// §7.2.4).
    pub(crate) async fn start_session(
        &self,
        user: User,
        auth_time: i64,
        amr: &[String],
        client: &ClientInfo,
        renewing: Renewing<'_>,
    ) -> Result<TokenGrant> {
        let (grant, session, refresh_exp) = self.new_session(user, auth_time, amr, client)?;
        let refresh_hash = RefreshTokens::hash(&grant.refresh_token);
        let replaces = match renewing {
            Renewing::Nothing | Renewing::Held(None) => None,
            Renewing::Held(Some(old)) => Some((old, false)),
            Renewing::Required(old) => Some((old, true)),
        }
        .map(|(old, must_be_live)| Replaced { user_id: &old.sub, sid: &old.sid, must_be_live, now: now() });
        let new = NewSession {
            record: &session,
            roles: &grant.user.roles,
            refresh_hash: &refresh_hash,
            refresh_expires_at: refresh_exp,
            replaces,
        };
        match self.core.storage.create_session(new).await? {
            Some(ended) => {
                self.core.apply_revocations(ended);
                Ok(grant)
            }
            None if matches!(renewing, Renewing::Required(_)) => Err(Error::TokenRevoked),
            // The account was disabled, deleted or changed while the password was checked.
            None => Err(Error::InvalidCredentials),
        }
    }

    /// A new session for `user` and its first tokens, not yet stored: the grant, the
    /// session record and the refresh token's expiry.
    pub(crate) fn new_session(
        &self,
        user: User,
        auth_time: i64,
        amr: &[String],
        client: &ClientInfo,
    ) -> Result<(TokenGrant, SessionRecord, i64)> {
        let t = now();
        let settings = self.settings();
        let sid = uuid::Uuid::now_v7().to_string();
        let access = self.issuer.issue(&user, &sid, auth_time, amr, settings.access_token_ttl, t)?;
        let refresh_token = self.refresh.generate();
        let session = SessionRecord {
            id: sid,
            user_id: user.id.as_str().to_owned(),
            created_at: t,
            last_used_at: t,
            expires_at: t + self.policy.session_max_age,
            auth_time,
            access_expires_at: access.claims.exp,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            revoked_at: None,
            amr: amr.to_vec(),
            client_id: None,
            scope: None,
            resource: None,
        };
        let refresh_exp = (t + settings.refresh_token_ttl).min(session.expires_at);
        let grant = TokenGrant { user, access, refresh_token, expires_in: settings.access_token_ttl, device: None };
        Ok((grant, session, refresh_exp))
    }

    /// Rotates a refresh token: returns a new access token and the successor refresh
    /// token. See [`Rotation`] for reuse detection and the grace window.
    pub async fn refresh(&self, refresh_token: &str, client: &ClientInfo) -> Result<TokenGrant> {
        if !RefreshTokens::looks_valid(refresh_token) {
            return Err(Error::RefreshTokenInvalid);
        }
        // Before rotating: a refused refresh leaves the token as it was.
        self.refresh_allowed_by_policy(refresh_token, client).await?;
        let t = now();
        let settings = self.settings();
        let successor = self.refresh.successor(refresh_token);
        // The access token's expiry and the audit entry are recorded in the rotation's own
        // transaction: one write per refresh. The token issued below expires at exactly `exp`.
        let exp = t + settings.access_token_ttl;
        let audit = event("refresh", SUCCESS, client);
        let storage = &self.core.storage;
        let outcome = storage
            .rotate_refresh(RotateRequest {
                presented_hash: &RefreshTokens::hash(refresh_token),
                successor_hash: &RefreshTokens::hash(&successor),
                now: t,
                grace_secs: self.policy.reuse_grace,
                refresh_ttl_secs: settings.refresh_token_ttl,
                access_expires_at: exp,
                audit: Some(&audit),
            })
            .await?;
        let session = match outcome {
            Rotation::Rotated(s) | Rotation::Replayed(s) => s,
            Rotation::Reused(revoked) => {
                tracing::warn!(sid = %revoked.sid, "refresh token reuse detected; session revoked");
                let owner = storage.session(&revoked.sid).await.ok().flatten().map(|s| s.user_id);
                let mut ev = event("refresh_reuse_detected", FAILURE, client)
                    .detail(serde_json::json!({ "session": revoked.sid }));
                ev.subject = owner;
                self.core.apply_revocations(vec![revoked]);
                self.core.audit(ev).await;
                return Err(Error::RefreshTokenReused);
            }
            Rotation::Invalid => return Err(Error::RefreshTokenInvalid),
        };
        let user = storage
            .user_by_id(&UserId::from_trusted(session.user_id.clone()))
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::RefreshTokenInvalid)?;
        // The session keeps how it was authenticated: a refresh never adds or drops a factor.
        let access =
            self.issuer.issue(&user, &session.id, session.auth_time, &session.amr, settings.access_token_ttl, t)?;
        debug_assert_eq!(access.claims.exp, exp);
        Ok(TokenGrant { user, access, refresh_token: successor, expires_in: settings.access_token_ttl, device: None })
    }

    /// Like [`Self::refresh`], for a refresh token that arrived in a cookie: first checks,
    /// without changing anything, that `bound` accepts the session the token belongs to
    /// (the caller's CSRF token must be that session's), else [`Error::CsrfFailed`]. A
    /// token that names no live session goes on to [`Self::refresh`], which refuses it.
    pub async fn refresh_bound(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
        bound: impl FnOnce(&str) -> bool,
    ) -> Result<TokenGrant> {
        if RefreshTokens::looks_valid(refresh_token)
            && let Some((sid, _)) =
                self.core.storage.session_of_refresh_token(&RefreshTokens::hash(refresh_token), now()).await?
            && !bound(&sid)
        {
            return Err(Error::CsrfFailed);
        }
        self.refresh(refresh_token, client).await
    }

    /// The live session a refresh token belongs to, without rotating anything.
    ///
    /// # Errors
    /// [`Error::RefreshTokenInvalid`] for an unknown, expired or ended one.
    pub async fn session_of_refresh_token(&self, refresh_token: &str) -> Result<String> {
        if !RefreshTokens::looks_valid(refresh_token) {
            return Err(Error::RefreshTokenInvalid);
        }
        let found = self.core.storage.session_of_refresh_token(&RefreshTokens::hash(refresh_token), now()).await?;
        found.map(|(sid, _)| sid).ok_or(Error::RefreshTokenInvalid)
    }

    /// Verifies an access token and checks that its session has not been revoked.
    ///
    /// # Errors
    /// Why the token is refused.
    pub fn authenticate(&self, token: &str) -> Result<AccessClaims> {
        let leeway = self.verifier.config().leeway_secs.min(60) as i64;
        let verified = match self.verified.get(token, now(), leeway) {
            Some(claims) => Ok(claims),
            None => {
                let generation = self.verified.generation();
                self.verifier.verify_access(token).inspect(|claims| self.verified.insert(token, claims, generation))
            }
        };
        // The revocation check is never cached: it runs on every request.
        let result = verified.map_err(Error::from).and_then(|claims| match self.core.revocations.check(&claims.sid) {
            None => Ok(claims),
            Some(Revocation::Revoked) => Err(Error::TokenRevoked),
            Some(Revocation::UserDeleted) => Err(Error::Token(VerifyError::Invalid("user deleted"))),
        });
        match &result {
            Ok(_) => metrics::counter!("gatepass_tokens_verified_total").increment(1),
            Err(e) => metrics::counter!("gatepass_tokens_rejected_total", "reason" => e.code()).increment(1),
        }
        result
    }

    /// The account behind verified claims; a vanished account makes the token invalid.
    pub async fn current_user(&self, claims: &AccessClaims) -> Result<User> {
        self.core
            .storage
            .user_by_id(&UserId::from_trusted(claims.sub.clone()))
            .await?
            .ok_or(Error::Token(VerifyError::Invalid("user not found")))
    }

    /// Ends sessions per `scope`; returns how many ended.
    pub async fn logout(&self, claims: &AccessClaims, scope: LogoutScope, client: &ClientInfo) -> Result<usize> {
        let filter = match scope {
            LogoutScope::Local => SessionFilter::One(&claims.sid),
            LogoutScope::Global => SessionFilter::All,
            LogoutScope::Others => {
                self.require_step_up(claims).await?;
                SessionFilter::AllExcept(&claims.sid)
            }
        };
        let ended = self.core.revoke(&claims.sub, filter).await?;
        let scope = format!("{scope:?}").to_ascii_lowercase();
        let detail = serde_json::json!({ "scope": scope, "sessions_ended": ended });
        self.core.audit(event("logout", SUCCESS, client).actor(&claims.sub).subject(&claims.sub).detail(detail)).await;
        Ok(ended)
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, claims: &AccessClaims) -> Result<Vec<SessionRecord>> {
        Ok(self.core.storage.live_sessions(&claims.sub, now()).await?)
    }

    /// Ends one of the caller's sessions; another user's (or unknown) id is not found.
    pub async fn end_session(&self, claims: &AccessClaims, sid: &str) -> Result<()> {
        if sid != claims.sid {
            self.require_fresh(claims)?;
        }
        match self.core.revoke(&claims.sub, SessionFilter::One(sid)).await? {
            0 => Err(Error::NotFound),
            _ => Ok(()),
        }
    }

    /// Deletes expired rows and memory entries.
    ///
    /// # Errors
    /// When storage fails; memory is swept regardless.
    pub async fn sweep(&self) -> Result<()> {
        let t = now();
        self.core.revocations.sweep(t);
        self.limiter.sweep();
        self.core.storage.purge_expired(t).await?;
        self.core.storage.purge_tokens(t).await?;
        Ok(())
    }
}
