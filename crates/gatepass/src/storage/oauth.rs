//! Storage for the OAuth 2.1 / OpenID Connect provider ([`OAuthStore`]): registered
//! clients, authorization codes (digests only), remembered consent and the key that signs
//! ID tokens. A grant a client holds is a session row with its `client_id` set, so the
//! session machinery (rotation, revocation, the revocation feed) covers it.
//!
//! Every check-then-act here is one compare-and-swap statement inside one transaction: a
//! code is redeemed by exactly one of any number of concurrent requests, and a client is
//! changed only at the version it was read at.

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::shared::{Backend, Shared, Tx};
use super::{NewSession, REVOCATION_MARGIN_SECS, RevokedSession, SessionFilter, StorageError, StorageResult};
use crate::domain::{Revocation, StoredKey};

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The `client_id`.
    pub client_id: String,
    /// Hex SHA-256 of the client secret; `None` for a public client.
    pub secret_hash: Option<String>,
    /// A name shown to users on the consent page.
    pub name: String,
    /// Registered redirect URIs, matched exactly (loopback ports aside, RFC 8252).
    pub redirect_uris: Vec<String>,
    /// Where a logout request may send the browser back to (RP-Initiated Logout), matched
    /// exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Grant types the client may use.
    pub grant_types: Vec<String>,
    /// Scopes the client may ask for.
    pub scopes: Vec<String>,
    /// A first-party client is not asked for consent.
    pub first_party: bool,
    /// Registered dynamically and not yet promoted by an administrator: public, PKCE,
    /// `authorization_code` and `refresh_token` only, never first-party.
    pub limited: bool,
    /// The audience of its access tokens (`None`: the client id).
    pub resource: Option<String>,
    /// Further resources (RFC 8707 absolute URIs) it may ask tokens for with `resource`.
    pub resources: Vec<String>,
    /// Registration time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Increases with every change; updates compare and swap it.
    pub version: i64,
    /// What its ID tokens are signed with.
    pub id_token_alg: IdTokenAlg,
}

/// The algorithm of a client's ID tokens (`id_token_signed_response_alg`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IdTokenAlg {
    /// RSA PKCS#1 v1.5 with SHA-256: OpenID Connect's default, verified by every client.
    #[default]
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl IdTokenAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenAlg::Rs256 => "RS256",
            IdTokenAlg::Es256 => "ES256",
        }
    }

    /// From the JOSE name (exact case).
    pub fn parse(name: &str) -> Option<Self> {
        [IdTokenAlg::Rs256, IdTokenAlg::Es256].into_iter().find(|a| a.as_str() == name)
    }
}

impl OAuthClient {
    /// Whether the client has no secret (`token_endpoint_auth_method: none`).
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
}

#[derive(FromRow)]
pub(crate) struct ClientRow {
    client_id: String,
    secret_hash: Option<String>,
    name: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    scopes: String,
    first_party: bool,
    limited: bool,
    resource: Option<String>,
    resources: String,
    created_at: i64,
    updated_at: i64,
    version: i64,
    id_token_alg: String,
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

impl TryFrom<ClientRow> for OAuthClient {
    type Error = StorageError;

    fn try_from(r: ClientRow) -> Result<Self, StorageError> {
        let redirect_uris = serde_json::from_str(&r.redirect_uris)
            .map_err(|e| StorageError::Other(format!("client {}: redirect_uris: {e}", r.client_id)))?;
        let post_logout_redirect_uris = serde_json::from_str(&r.post_logout_redirect_uris)
            .map_err(|e| StorageError::Other(format!("client {}: post_logout_redirect_uris: {e}", r.client_id)))?;
        let id_token_alg = IdTokenAlg::parse(&r.id_token_alg).ok_or_else(|| {
            StorageError::Other(format!("client {}: unknown id_token_alg {:?}", r.client_id, r.id_token_alg))
        })?;
        Ok(OAuthClient {
            client_id: r.client_id,
            secret_hash: r.secret_hash,
            name: r.name,
            redirect_uris,
            post_logout_redirect_uris,
            grant_types: words(&r.grant_types),
            scopes: words(&r.scopes),
            first_party: r.first_party,
            limited: r.limited,
            resource: r.resource,
            resources: words(&r.resources),
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
            id_token_alg,
        })
    }
}

/// An authorization code as stored: everything it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuthCode {
    /// Hex SHA-256 of the code handed to the client.
    pub code_hash: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user who approved it.
    pub user_id: String,
    /// The browser session that approved it; the code is refused once that session ended.
    pub browser_sid: String,
    /// The redirect URI of the authorization request (the token request must repeat it).
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// The `nonce` of the authorization request, echoed in the ID token.
    pub nonce: Option<String>,
    /// When the user last authenticated in that browser session.
    pub auth_time: i64,
    /// How (RFC 8176 values, space-separated).
    pub amr: String,
    /// Issued at.
    pub created_at: i64,
    /// Refused from this time on.
    pub expires_at: i64,
    /// When it was redeemed.
    pub used_at: Option<i64>,
    /// The grant (session id) it was redeemed for.
    pub issued_sid: Option<String>,
    /// The `resource` (RFC 8707) the authorization request named.
    pub resource: Option<String>,
}

/// A client a user has allowed, one row per scope set (the account page lists them).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ConsentRecord {
    /// The client.
    pub client_id: String,
    /// Its name.
    pub client_name: String,
    /// The scopes allowed, sorted, space-separated.
    pub scope: String,
    /// When.
    pub granted_at: i64,
}

/// What redeeming a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// The code was unused: it is now used and the grant is stored.
    Issued,
    /// The code had been redeemed before: the grant it was redeemed for is now revoked.
    Replayed(Vec<RevokedSession>),
    /// Unknown or expired code, its browser session has ended, or the account was
    /// disabled, deleted or changed roles: nothing was stored.
    Refused,
}

/// Clients, codes, consent and the ID-token key.
#[async_trait]
pub trait OAuthStore: Send + Sync {
    /// Registers a client; [`StorageError::Conflict`] when the id exists.
    async fn insert_client(&self, client: &OAuthClient) -> StorageResult<()>;
    /// One client.
    async fn client(&self, client_id: &str) -> StorageResult<Option<OAuthClient>>;
    /// Every client, by id.
    async fn list_clients(&self) -> StorageResult<Vec<OAuthClient>>;
    /// Replaces a client's row if its version is still `expected_version` (the stored
    /// version becomes `client.version`); false, with nothing changed, when another change
    /// won or the client is gone.
    async fn update_client(&self, client: &OAuthClient, expected_version: i64) -> StorageResult<bool>;
    /// Deletes a client with its codes and consents and revokes every grant it holds, in
    /// one transaction; `None` when there was no such client.
    async fn delete_client(&self, client_id: &str, now: i64) -> StorageResult<Option<Vec<RevokedSession>>>;
    /// Stores a code (and drops codes expired for a minute).
    async fn insert_code(&self, code: &AuthCode) -> StorageResult<()>;
    /// A code by digest, without using it.
    async fn code(&self, code_hash: &str) -> StorageResult<Option<AuthCode>>;
    /// Redeems a code for `grant` in one transaction: marks it used (compare-and-swap),
    /// checks that its browser session is live, creates the grant's session (refused like
    /// [`super::Storage::create_session`]) and records it on the code. A code redeemed
    /// before revokes the grant it was redeemed for (see [`CodeRedemption`]).
    async fn redeem_code(&self, code_hash: &str, now: i64, grant: NewSession<'_>) -> StorageResult<CodeRedemption>;
    /// RP-initiated logout, in one transaction: ends the user's browser session and, when a
    /// logout hint named one, the client's grant (both only if they are the user's); returns
    /// what was revoked.
    async fn end_browser_session(
        &self,
        user_id: &str,
        browser_sid: &str,
        grant_sid: Option<&str>,
        now: i64,
    ) -> StorageResult<Vec<RevokedSession>>;
    /// The scope sets a user has consented to for a client.
    async fn consents(&self, user_id: &str, client_id: &str) -> StorageResult<Vec<String>>;
    /// Remembers a user's consent to `scope` (sorted, space-separated) for a client.
    async fn grant_consent(&self, user_id: &str, client_id: &str, scope: &str, now: i64) -> StorageResult<()>;
    /// Every consent a user has given, newest first, with the clients' names.
    async fn user_consents(&self, user_id: &str) -> StorageResult<Vec<ConsentRecord>>;
    /// Withdraws a user's consent to a client in one transaction: forgets every scope set
    /// allowed, drops the client's unused codes and device codes for the user and revokes every grant the
    /// client holds for the user (its refresh and access tokens stop working). `None`, with
    /// nothing changed, when the user had neither consent nor grant for the client.
    async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> StorageResult<Option<Vec<RevokedSession>>>;
    /// Every stored provider key (`RS256` for ID tokens, `ES256` for client access tokens),
    /// by activation time, then `kid`.
    async fn oauth_keys(&self) -> StorageResult<Vec<StoredKey>>;
    /// Stores a provider key unless one exists for its algorithm (two instances starting
    /// at once keep the first); true when this one was stored.
    async fn insert_first_oauth_key(&self, key: &StoredKey) -> StorageResult<bool>;
    /// Stores a provider key beside the others of its algorithm (a rotation).
    async fn add_oauth_key(&self, key: &StoredKey) -> StorageResult<()>;
    /// Deletes provider keys (expired ones: no unexpired token names them).
    async fn delete_oauth_keys(&self, kids: &[String]) -> StorageResult<u64>;
}

const CLIENT_SELECT: &str = "SELECT client_id, secret_hash, name, redirect_uris, post_logout_redirect_uris, \
     grant_types, scopes, first_party, limited, resource, resources, created_at, updated_at, version, id_token_alg \
     FROM oauth_clients";
const CODE_SELECT: &str = "SELECT code_hash, client_id, user_id, browser_sid, redirect_uri, code_challenge, scope, \
     nonce, auth_time, amr, created_at, expires_at, used_at, issued_sid, resource FROM oauth_codes";

/// The OAuth queries both backends share; each backend opens the transaction its own way.
impl<DB> Shared<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> Option<bool>: Encode<'a, DB> + Type<DB>,
    for<'r> ClientRow: FromRow<'r, DB::Row>,
    for<'r> AuthCode: FromRow<'r, DB::Row>,
    for<'r> ConsentRecord: FromRow<'r, DB::Row>,
    for<'r> super::rows::UserRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::SessionRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::KeyRow: FromRow<'r, DB::Row>,
    for<'r> super::audit::AuditEntry: FromRow<'r, DB::Row>,
    for<'r> super::audit::AuditAnchor: FromRow<'r, DB::Row>,
    for<'r> super::rows::MailRow: FromRow<'r, DB::Row>,
    for<'r> super::rows::TokenRow: FromRow<'r, DB::Row>,
    for<'r> (String, Option<String>): FromRow<'r, DB::Row>,
    for<'r> (Option<String>,): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Option<i64>,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> (String, i64): FromRow<'r, DB::Row>,
    for<'r> (String, String): FromRow<'r, DB::Row>,
    for<'r> (String, i64, String): FromRow<'r, DB::Row>,
    for<'r> (i64, String, i64, String, String): FromRow<'r, DB::Row>,
{
    pub(super) async fn insert_client<'c>(ex: impl Executor<'c, Database = DB>, c: &OAuthClient) -> StorageResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO oauth_clients (client_id, secret_hash, name, redirect_uris, grant_types, scopes, \
             first_party, resource, resources, created_at, updated_at, version, post_logout_redirect_uris, limited, \
             id_token_alg) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(c.client_id.as_str())
        .bind(c.secret_hash.as_deref())
        .bind(c.name.as_str())
        .bind(redirect_json(c)?)
        .bind(c.grant_types.join(" "))
        .bind(c.scopes.join(" "))
        .bind(c.first_party)
        .bind(c.resource.as_deref())
        .bind(c.resources.join(" "))
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.version)
        .bind(json_list(&c.post_logout_redirect_uris)?)
        .bind(c.limited)
        .bind(c.id_token_alg.as_str())
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn client<'c>(
        ex: impl Executor<'c, Database = DB>,
        client_id: &str,
    ) -> StorageResult<Option<OAuthClient>> {
        let sql = format!("{CLIENT_SELECT} WHERE client_id = $1");
        sqlx::query_as::<DB, ClientRow>(sqlx::AssertSqlSafe(sql))
            .bind(client_id)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)?
            .map(OAuthClient::try_from)
            .transpose()
    }

    pub(super) async fn list_clients<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<Vec<OAuthClient>> {
        let sql = format!("{CLIENT_SELECT} ORDER BY client_id");
        sqlx::query_as::<DB, ClientRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(ex)
            .await
            .map_err(DB::map_err)?
            .into_iter()
            .map(OAuthClient::try_from)
            .collect()
    }

    pub(super) async fn update_client<'c>(
        ex: impl Executor<'c, Database = DB>,
        c: &OAuthClient,
        expected_version: i64,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "UPDATE oauth_clients SET secret_hash = $1, name = $2, redirect_uris = $3, grant_types = $4, \
             scopes = $5, first_party = $6, resource = $7, resources = $8, updated_at = $9, version = $10, \
             post_logout_redirect_uris = $13, limited = $14, id_token_alg = $15 WHERE client_id = $11 AND version = $12",
        )
        .bind(c.secret_hash.as_deref())
        .bind(c.name.as_str())
        .bind(redirect_json(c)?)
        .bind(c.grant_types.join(" "))
        .bind(c.scopes.join(" "))
        .bind(c.first_party)
        .bind(c.resource.as_deref())
        .bind(c.resources.join(" "))
        .bind(c.updated_at)
        .bind(c.version)
        .bind(c.client_id.as_str())
        .bind(expected_version)
        .bind(json_list(&c.post_logout_redirect_uris)?)
        .bind(c.limited)
        .bind(c.id_token_alg.as_str())
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }

    pub(super) async fn delete_client_in_tx(
        tx: &mut Tx<DB>,
        client_id: &str,
        now: i64,
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        // The client (and by cascade its codes) first: a redemption of one of its codes
        // either committed before, and its grant is revoked below, or finds no code.
        let r = sqlx::query::<DB>("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        let rows = sqlx::query_as::<DB, (String, i64)>(
            "UPDATE sessions SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL \
             RETURNING id, access_expires_at",
        )
        .bind(now)
        .bind(client_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        let mut revoked = Vec::with_capacity(rows.len());
        for (sid, access_exp) in rows {
            let until = access_exp + REVOCATION_MARGIN_SECS;
            Self::insert_revocation(tx, &sid, until, Revocation::Revoked).await?;
            revoked.push(RevokedSession { sid, until, reason: Revocation::Revoked });
        }
        Ok((DB::rows_affected(&r) == 1).then_some(revoked))
    }

    pub(super) async fn insert_code_in_tx(tx: &mut Tx<DB>, c: &AuthCode) -> StorageResult<()> {
        sqlx::query::<DB>("DELETE FROM oauth_codes WHERE expires_at + 60 <= $1")
            .bind(c.created_at)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        sqlx::query::<DB>(
            "INSERT INTO oauth_codes (code_hash, client_id, user_id, browser_sid, redirect_uri, code_challenge, \
             scope, nonce, auth_time, amr, created_at, expires_at, resource) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(c.code_hash.as_str())
        .bind(c.client_id.as_str())
        .bind(c.user_id.as_str())
        .bind(c.browser_sid.as_str())
        .bind(c.redirect_uri.as_str())
        .bind(c.code_challenge.as_str())
        .bind(c.scope.as_str())
        .bind(c.nonce.as_deref())
        .bind(c.auth_time)
        .bind(c.amr.as_str())
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.resource.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn code<'c>(
        ex: impl Executor<'c, Database = DB>,
        code_hash: &str,
    ) -> StorageResult<Option<AuthCode>> {
        let sql = format!("{CODE_SELECT} WHERE code_hash = $1");
        sqlx::query_as::<DB, AuthCode>(sqlx::AssertSqlSafe(sql))
            .bind(code_hash)
            .fetch_optional(ex)
            .await
            .map_err(DB::map_err)
    }

    /// [`OAuthStore::redeem_code`] inside `tx`; the caller commits unless the answer is
    /// [`CodeRedemption::Refused`]. `lock` ends the queries that read rows the outcome
    /// depends on (PostgreSQL's `FOR SHARE`; SQLite's write lock already holds them).
    pub(super) async fn redeem_code_in_tx(
        tx: &mut Tx<DB>,
        code_hash: &str,
        now: i64,
        grant: &NewSession<'_>,
        lock: &str,
    ) -> StorageResult<CodeRedemption> {
        // The compare-and-swap: of concurrent redemptions, one statement sets `used_at`.
        let won = sqlx::query_as::<DB, (String,)>(
            "UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $1 \
             RETURNING browser_sid",
        )
        .bind(now)
        .bind(code_hash)
        .fetch_optional(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        let Some((browser_sid,)) = won else {
            // Used before (or unknown, or expired): a replay revokes what the code issued.
            let used = sqlx::query_as::<DB, (String, Option<String>)>(
                "SELECT user_id, issued_sid FROM oauth_codes WHERE code_hash = $1 AND used_at IS NOT NULL",
            )
            .bind(code_hash)
            .fetch_optional(&mut **tx)
            .await
            .map_err(DB::map_err)?;
            return Ok(match used {
                Some((user_id, Some(sid))) => CodeRedemption::Replayed(
                    Self::revoke_in_tx(tx, &user_id, SessionFilter::One(&sid), now, Revocation::Revoked).await?,
                ),
                _ => CodeRedemption::Refused,
            });
        };
        let sql = format!(
            "SELECT CAST(1 AS BIGINT) FROM sessions WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2 {lock}"
        );
        let live = sqlx::query_scalar::<DB, i64>(sqlx::AssertSqlSafe(sql))
            .bind(browser_sid.as_str())
            .bind(now)
            .fetch_optional(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        if live.is_none() {
            return Ok(CodeRedemption::Refused);
        }
        if Self::create_session_in_tx(tx, grant, lock).await?.is_none() {
            return Ok(CodeRedemption::Refused);
        }
        sqlx::query::<DB>("UPDATE oauth_codes SET issued_sid = $1 WHERE code_hash = $2")
            .bind(grant.record.id.as_str())
            .bind(code_hash)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        Ok(CodeRedemption::Issued)
    }

    pub(super) async fn end_browser_session_in_tx(
        tx: &mut Tx<DB>,
        user_id: &str,
        browser_sid: &str,
        grant_sid: Option<&str>,
        now: i64,
    ) -> StorageResult<Vec<RevokedSession>> {
        let mut out =
            Self::revoke_in_tx(tx, user_id, SessionFilter::One(browser_sid), now, Revocation::Revoked).await?;
        if let Some(grant) = grant_sid.filter(|g| *g != browser_sid) {
            out.extend(Self::revoke_in_tx(tx, user_id, SessionFilter::One(grant), now, Revocation::Revoked).await?);
        }
        Ok(out)
    }

    pub(super) async fn consents<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        client_id: &str,
    ) -> StorageResult<Vec<String>> {
        let rows =
            sqlx::query_as::<DB, (String,)>("SELECT scope FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
                .bind(user_id)
                .bind(client_id)
                .fetch_all(ex)
                .await
                .map_err(DB::map_err)?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    pub(super) async fn grant_consent<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StorageResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO oauth_consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id, scope) DO UPDATE SET granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(scope)
        .bind(now)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(())
    }

    pub(super) async fn user_consents<'c>(
        ex: impl Executor<'c, Database = DB>,
        user_id: &str,
    ) -> StorageResult<Vec<ConsentRecord>> {
        sqlx::query_as::<DB, ConsentRecord>(
            "SELECT c.client_id, k.name AS client_name, c.scope, c.granted_at FROM oauth_consents c \
             JOIN oauth_clients k ON k.client_id = c.client_id WHERE c.user_id = $1 \
             ORDER BY c.granted_at DESC, c.client_id, c.scope",
        )
        .bind(user_id)
        .fetch_all(ex)
        .await
        .map_err(DB::map_err)
    }

    pub(super) async fn withdraw_consent_in_tx(
        tx: &mut Tx<DB>,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        let consents = sqlx::query::<DB>("DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        // Codes before grants: a redemption that got its code first has committed its grant
        // by the time this statement has waited for it, so the update below sees the grant.
        sqlx::query::<DB>("DELETE FROM oauth_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        // Device codes the user approved (or denied) but the device has not redeemed yet,
        // for the same reason.
        sqlx::query::<DB>("DELETE FROM oauth_device_codes WHERE user_id = $1 AND client_id = $2 AND used_at IS NULL")
            .bind(user_id)
            .bind(client_id)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        let rows = sqlx::query_as::<DB, (String, i64)>(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND client_id = $3 AND revoked_at IS NULL \
             RETURNING id, access_expires_at",
        )
        .bind(now)
        .bind(user_id)
        .bind(client_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(DB::map_err)?;
        let mut revoked = Vec::with_capacity(rows.len());
        for (sid, access_exp) in rows {
            let until = access_exp + REVOCATION_MARGIN_SECS;
            Self::insert_revocation(tx, &sid, until, Revocation::Revoked).await?;
            revoked.push(RevokedSession { sid, until, reason: Revocation::Revoked });
        }
        Ok((DB::rows_affected(&consents) > 0 || !revoked.is_empty()).then_some(revoked))
    }

    pub(super) async fn oauth_keys<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<Vec<StoredKey>> {
        Ok(sqlx::query_as::<DB, super::rows::KeyRow>(
            "SELECT kid, alg, public_jwk, private_key, created_at, activates_at, \
             CAST(NULL AS BIGINT) AS revoked_at FROM oauth_keys ORDER BY activates_at, kid",
        )
        .fetch_all(ex)
        .await
        .map_err(DB::map_err)?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// Inserts `key`; with `first`, only when its algorithm has no key yet (callers that
    /// race must hold a lock that keeps the others out, or be the single writer).
    pub(super) async fn insert_oauth_key<'c>(
        ex: impl Executor<'c, Database = DB>,
        key: &StoredKey,
        first: bool,
    ) -> StorageResult<bool> {
        let r = sqlx::query::<DB>(
            "INSERT INTO oauth_keys (kid, alg, public_jwk, private_key, created_at, activates_at) \
             SELECT $1, $2, $3, $4, $5, $6 WHERE NOT $7 OR NOT EXISTS (SELECT 1 FROM oauth_keys WHERE alg = $2)",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(key.public_jwk.as_str())
        .bind(key.private_key.as_str())
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(first)
        .execute(ex)
        .await
        .map_err(DB::map_err)?;
        Ok(DB::rows_affected(&r) == 1)
    }
}

fn redirect_json(c: &OAuthClient) -> StorageResult<String> {
    json_list(&c.redirect_uris)
}

fn json_list(list: &[String]) -> StorageResult<String> {
    serde_json::to_string(list).map_err(|e| StorageError::Other(format!("URI list: {e}")))
}
