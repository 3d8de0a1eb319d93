//! Persistence behind one trait, one implementation per backend.
//!
//! Handlers never see SQL; the service layer talks to `dyn Storage`. Every method that
//! must be atomic (rotation, revocation) is one call so each backend can make it a single
//! transaction.

pub mod audit;
pub mod console;
pub mod device;
mod events;
pub mod failures;
pub mod instances;
mod keys;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod passkeys;
mod postgres;
pub mod revocation_feed;
mod rotation_group;
mod rows;
mod shared;
mod sqlite;

pub use audit::AuditStore;
pub use console::{ConsoleStore, HourlyCount, UserSearch};
pub use device::{DeviceApproval, DeviceCode, DeviceRedemption, DeviceStore};
pub use events::{Change, ChangeFeed, ChangeSubscription};
pub use failures::FailureStore;
pub use instances::{InstanceBeat, InstanceStore};
pub use keys::{KeyRevocation, KeyStore};
pub use mail::{EmailConfirmed, OneTimeToken, OutboxMail, OutboxStore, TokenPurpose, TokenStore};
pub use mfa::{MfaChallenge, MfaStore, TotpFactor};
pub use oauth::{AuthCode, CodeRedemption, ConsentRecord, IdTokenAlg, OAuthClient, OAuthStore};
pub use passkeys::{PasskeyCeremony, PasskeyRecord, PasskeyStore, PasskeyUse};
pub use postgres::PostgresStorage;
pub use revocation_feed::{FeedEntry, FeedItem, RevocationFeed};
pub use sqlite::SqliteStorage;

use async_trait::async_trait;

use crate::domain::{Email, Revocation, Roles, User, UserId};
use crate::storage::audit::AuditEvent;

/// Storage failures. Details stay in logs; clients see a generic message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// A unique constraint refused the write (e.g. username taken).
    #[error("unique constraint violated")]
    Conflict,
    /// The database cannot be reached right now.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("storage error: {0}")]
    Other(String),
}

/// Shorthand for storage results.
pub type StorageResult<T> = Result<T, StorageError>;

/// A login session and its bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id (`sid` in tokens).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Creation time.
    pub created_at: i64,
    /// Last refresh.
    pub last_used_at: i64,
    /// Absolute end of the session.
    pub expires_at: i64,
    /// When the password was last proved in this session.
    pub auth_time: i64,
    /// Latest `exp` of any access token issued for this session.
    pub access_expires_at: i64,
    /// Client user agent at login.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// When it was ended, if it was.
    pub revoked_at: Option<i64>,
    /// How the user authenticated (RFC 8176 `amr` values); refreshed tokens carry them.
    pub amr: Vec<String>,
    /// The OAuth client this session is a grant to (`None`: a sign-in to gatepass itself).
    pub client_id: Option<String>,
    /// The scopes granted to that client (space-separated).
    pub scope: Option<String>,
    /// The resource (RFC 8707) the grant was authorized for; `None`: any of the client's.
    pub resource: Option<String>,
}

/// A session whose access tokens are now refused until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSession {
    /// Session id.
    pub sid: String,
    /// No token of the session outlives this time.
    pub until: i64,
    /// Why.
    pub reason: Revocation,
}

/// Which of a user's sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum SessionFilter<'a> {
    /// Exactly this one.
    One(&'a str),
    /// All of them.
    All,
    /// All but this one.
    AllExcept(&'a str),
}

/// The session a new one replaces: a client that already holds a session and signs in
/// again (or confirms its password) gets a new session id, and the old one ends in the
/// same transaction (session renewal on re-authentication).
#[derive(Debug, Clone, Copy)]
pub struct Replaced<'a> {
    /// Owner of the old session.
    pub user_id: &'a str,
    /// The old session.
    pub sid: &'a str,
    /// Refuse, storing nothing, when the old session has already ended: a step-up must
    /// never turn a revoked session into a live one.
    pub must_be_live: bool,
    /// When.
    pub now: i64,
}

/// A session to start, with its first refresh token.
#[derive(Debug, Clone, Copy)]
pub struct NewSession<'a> {
    /// The session row.
    pub record: &'a SessionRecord,
    /// The roles its first access token carries, read before the password check: when the
    /// account's roles differ by the time the session is stored (a demotion raced the
    /// login), the session is refused, so no token with old roles outlives the change.
    pub roles: &'a Roles,
    /// Digest of its first refresh token.
    pub refresh_hash: &'a str,
    /// That token's expiry.
    pub refresh_expires_at: i64,
    /// The session it replaces (see [`Replaced`]).
    pub replaces: Option<Replaced<'a>>,
}

/// A password change: new hash, every session ended, optionally a new session.
pub struct PasswordReplace<'a> {
    /// The account.
    pub user_id: &'a UserId,
    /// The hash the account must still have (compare-and-swap); `None` replaces whatever
    /// is stored (an administrator's reset).
    pub expected_hash: Option<&'a str>,
    /// The new hash.
    pub new_hash: &'a str,
    /// When.
    pub now: i64,
    /// A session to start for the account once the others have ended; refused while the
    /// account is disabled or its roles differ (its `replaces` is moot: every session ends).
    pub new_session: Option<NewSession<'a>>,
    /// Mails (the "your password was changed" notice) queued in the same transaction.
    pub mails: &'a [OutboxMail],
}

/// A refresh-token rotation request.
#[derive(Debug, Clone)]
pub struct RotateRequest<'a> {
    /// Digest of the presented token.
    pub presented_hash: &'a str,
    /// Digest of its (deterministic) successor.
    pub successor_hash: &'a str,
    /// Now.
    pub now: i64,
    /// Seconds after a rotation during which presenting the old token again replays the
    /// same successor instead of counting as reuse.
    pub grace_secs: i64,
    /// Lifetime of the successor (capped by the session's absolute expiry).
    pub refresh_ttl_secs: i64,
    /// `exp` of the access token the caller issues when the rotation succeeds
    /// ([`Rotation::Rotated`] or [`Rotation::Replayed`]); recorded on the session in the same
    /// transaction, as [`Storage::note_access_issued`] would.
    pub access_expires_at: i64,
    /// Appended to the audit trail in the same transaction when the rotation succeeds and
    /// the session's owner exists and is enabled, with actor and subject set to the owner.
    pub audit: Option<&'a AuditEvent>,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current; the successor is now current.
    Rotated(SessionRecord),
    /// The token was rotated moments ago and its successor is still current: hand out
    /// the same successor again.
    Replayed(SessionRecord),
    /// An old token came back: the session has been revoked.
    Reused(RevokedSession),
    /// Unknown, expired, or its session is over.
    Invalid,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New roles.
    pub roles: Option<Roles>,
    /// Enable or disable.
    pub disabled: Option<bool>,
    /// Set (`Some(Some)`) or clear (`Some(None)`) the e-mail.
    pub email: Option<Option<Email>>,
}

/// Everything gatepass persists.
#[async_trait]
pub trait Storage:
    AuditStore
    + ConsoleStore
    + DeviceStore
    + ChangeFeed
    + FailureStore
    + InstanceStore
    + KeyStore
    + MfaStore
    + PasskeyStore
    + OAuthStore
    + RevocationFeed
    + OutboxStore
    + TokenStore
    + Send
    + Sync
    + 'static
{
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
    /// Succeeds when the database answers.
    async fn ping(&self) -> StorageResult<()>;

    /// Inserts a new account; [`StorageError::Conflict`] when the name (or the address) is
    /// taken.
    async fn insert_user(&self, user: &User) -> StorageResult<()>;
    /// Looks an account up by id.
    async fn user_by_id(&self, id: &UserId) -> StorageResult<Option<User>>;
    /// Looks an account up by canonical (lower-case) username.
    async fn user_by_username(&self, canonical: &str) -> StorageResult<Option<User>>;
    /// Accounts ordered by name, optionally whose canonical name starts with `prefix`.
    async fn list_users(&self, prefix: Option<&str>, limit: i64, offset: i64) -> StorageResult<Vec<User>>;
    /// Number of accounts.
    async fn count_users(&self) -> StorageResult<i64>;
    /// Replaces a password hash; false when the user does not exist.
    async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> StorageResult<bool>;
    /// Replaces an account's password hash, ends every session of the account and
    /// optionally starts a new one, in one transaction (see [`PasswordReplace`]). `None`,
    /// with nothing changed, when the account is gone, its hash is no longer the expected
    /// one (another change won), or a session was asked for and the account is disabled.
    async fn replace_password(&self, req: PasswordReplace<'_>) -> StorageResult<Option<Vec<RevokedSession>>>;
    /// Applies `patch` and returns the account as it was just before (read under the same
    /// lock, so a concurrent change cannot slip between the read and the write); `None`
    /// when the user does not exist. A new address is unverified;
    /// [`StorageError::Conflict`] when another account has it.
    async fn update_user(&self, id: &UserId, patch: &UserPatch, now: i64) -> StorageResult<Option<User>>;
    /// Deletes an account; its sessions' tokens are revoked as [`Revocation::UserDeleted`].
    /// `None` when there was no such user.
    async fn delete_user(&self, id: &UserId, now: i64) -> StorageResult<Option<Vec<RevokedSession>>>;

    /// Creates a session with its first refresh token (see [`NewSession`]), provided its
    /// owner exists, is enabled and still has the roles its first token carries at that
    /// moment (checked in the same transaction, holding the owner's row against a
    /// concurrent disable or role change), and ends the session it replaces, if any.
    /// Returns the replaced session's revocation (none when there was none, or it had
    /// already ended); `None`, with nothing stored, when refused.
    async fn create_session(&self, new: NewSession<'_>) -> StorageResult<Option<Vec<RevokedSession>>>;
    /// Rotates a refresh token atomically (see [`Rotation`]), together with the access-token
    /// bookkeeping and audit entry of [`RotateRequest`]: one transaction per refresh.
    async fn rotate_refresh(&self, req: RotateRequest<'_>) -> StorageResult<Rotation>;
    /// Records that an access token expiring at `exp` is about to be issued for `sid`, in
    /// one statement with the check that the session is not revoked: false when it is (or
    /// does not exist), and then the token must not be handed out. A revocation after this
    /// reads the raised expiry, so its denylist entry outlives the token.
    async fn note_access_issued(&self, sid: &str, exp: i64) -> StorageResult<bool>;
    /// One session by id.
    async fn session(&self, sid: &str) -> StorageResult<Option<SessionRecord>>;
    /// A user's live sessions, newest first.
    async fn live_sessions(&self, user_id: &str, now: i64) -> StorageResult<Vec<SessionRecord>>;
    /// Number of live sessions of all users.
    async fn count_live_sessions(&self, now: i64) -> StorageResult<i64>;
    /// Ends sessions of `user_id` selected by `filter`, persisting their revocations.
    async fn revoke_sessions(
        &self,
        user_id: &str,
        filter: SessionFilter<'_>,
        now: i64,
    ) -> StorageResult<Vec<RevokedSession>>;
    /// Revocations whose tokens may still be unexpired at `now`.
    async fn live_revocations(&self, now: i64) -> StorageResult<Vec<RevokedSession>>;
    /// Deletes expired refresh tokens, sessions and revocations; returns rows removed.
    async fn purge_expired(&self, now: i64) -> StorageResult<u64>;

    /// All runtime settings (key → JSON text).
    async fn settings(&self) -> StorageResult<Vec<(String, String)>>;
    /// Stores runtime settings in one transaction.
    async fn put_settings(&self, values: &[(String, String)]) -> StorageResult<()>;
}

/// Revocations outlive the last token of a session by this margin, covering clock leeway.
pub const REVOCATION_MARGIN_SECS: i64 = 60;

pub(crate) fn reason_to_str(r: Revocation) -> &'static str {
    match r {
        Revocation::Revoked => "revoked",
        Revocation::UserDeleted => "user_deleted",
    }
}

pub(crate) fn reason_from_str(s: &str) -> Revocation {
    match s {
        "user_deleted" => Revocation::UserDeleted,
        _ => Revocation::Revoked,
    }
}
