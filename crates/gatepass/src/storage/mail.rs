//! Storage for the e-mail flows: the one-time tokens mailed as links ([`TokenStore`]) and
//! the durable outbox ([`OutboxStore`]). Every write that causes a mail takes the mail
//! along and stores it in the same transaction (GP-35), so a mail is queued exactly when
//! its action happened.

use async_trait::async_trait;

use super::{RevokedSession, StorageResult};
use crate::domain::{User, UserId};

/// What a one-time token is for; a token is only ever accepted for its own purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Proves the owner receives mail at the account's current address.
    VerifyEmail,
    /// Confirms a new address; the address changes when it is used.
    ChangeEmail,
    /// Sets a new password without the old one.
    PasswordReset,
}

impl TokenPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ChangeEmail => "change_email",
            TokenPurpose::PasswordReset => "password_reset",
        }
    }
}

/// A one-time token as stored: its SHA-256 digest, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// Whose it is.
    pub user_id: String,
    /// The address it confirms (verification and address change).
    pub email: Option<String>,
    /// Issued at.
    pub created_at: i64,
    /// Refused from this time on.
    pub expires_at: i64,
}

/// A mail waiting in the outbox, fully rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    /// Stable id: also the local part of the `Message-ID`, so a retry is the same mail.
    pub id: String,
    /// What it is about (`verify_email`, `password_reset`, `password_changed`, …).
    pub kind: String,
    /// The one recipient address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text_body: String,
    /// HTML part.
    pub html_body: String,
    /// Queued at.
    pub created_at: i64,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// What using an address token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailConfirmed {
    /// The account's address is now this one, verified.
    Confirmed {
        /// The account.
        user_id: String,
        /// Its address before (differs after an address change).
        previous: Option<String>,
        /// The address now.
        email: String,
    },
    /// Unknown, used, expired, for another purpose, or the address it confirms is no
    /// longer the account's: nothing changed.
    Invalid,
    /// Another account took the address meanwhile: nothing changed (the token stays unused).
    AddressTaken,
}

/// One-time tokens and the account changes they authorize.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Looks an account up by canonical (ASCII lower-case) address.
    async fn user_by_email(&self, canonical: &str) -> StorageResult<Option<User>>;
    /// Inserts an account together with a token and mails (registration with an address),
    /// in one transaction; [`super::StorageError::Conflict`] when the name or address is
    /// taken, and then nothing is stored.
    async fn insert_user_with(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        mails: &[OutboxMail],
    ) -> StorageResult<()>;
    /// Stores `token` and queues `mails` in one transaction. With `replace`, the account's
    /// other unused tokens of the same purpose stop working (only the latest pending
    /// address change counts).
    async fn issue_token(&self, token: &OneTimeToken, mails: &[OutboxMail], replace: bool) -> StorageResult<()>;
    /// Tokens of `purpose` issued to the account since `since` (the per-address throttle).
    async fn tokens_issued_since(&self, user_id: &str, purpose: TokenPurpose, since: i64) -> StorageResult<i64>;
    /// The unused, unexpired token with this digest and purpose, without using it.
    async fn peek_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> StorageResult<Option<OneTimeToken>>;
    /// Uses a reset token and, in the same transaction: sets the password hash, ends every
    /// session, voids the account's other reset tokens and queues `mails`. `None`, with
    /// nothing changed, when the token is not (or no longer) a usable reset token of
    /// `user_id`: of two concurrent uses, one wins.
    async fn reset_password(
        &self,
        token_hash: &str,
        user_id: &UserId,
        new_hash: &str,
        now: i64,
        mails: &[OutboxMail],
    ) -> StorageResult<Option<Vec<RevokedSession>>>;
    /// Uses a verification or address-change token: the account's address becomes the
    /// token's, verified, its other tokens of that purpose stop working and `mails` are
    /// queued, all in one transaction (see [`EmailConfirmed`]).
    async fn confirm_email(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
        mails: &[OutboxMail],
    ) -> StorageResult<EmailConfirmed>;
    /// Marks the account's current address verified (an administrator's word); false when
    /// the account does not exist or has no address.
    async fn mark_email_verified(&self, user_id: &UserId, now: i64) -> StorageResult<bool>;
    /// Deletes used and expired tokens; returns rows removed.
    async fn purge_tokens(&self, now: i64) -> StorageResult<u64>;
}

/// The durable outbox: mails are claimed with a lease, so that with several instances
/// each mail is delivered by one of them, and a sender that dies mid-delivery leaves its
/// mails to the others once the lease has run out.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues mails on their own (notices that accompany no other write).
    async fn enqueue_mails(&self, mails: &[OutboxMail]) -> StorageResult<()>;
    /// Takes up to `limit` due mails (not failed, next attempt reached, not leased by a
    /// live lease) under `lease_id` until `now + lease_secs`, oldest first. Two claims
    /// never return the same mail while its lease lasts.
    async fn claim_mails(
        &self,
        lease_id: &str,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> StorageResult<Vec<OutboxMail>>;
    /// The SMTP server accepted the mail: removes it (and the link in it). False when the
    /// lease was lost.
    async fn mail_sent(&self, id: &str, lease_id: &str) -> StorageResult<bool>;
    /// A temporary failure: counts the attempt, releases the lease and sets the next try.
    async fn mail_retry(&self, id: &str, lease_id: &str, next_attempt_at: i64, error: &str) -> StorageResult<bool>;
    /// A permanent failure: keeps the row as failed (bodies cleared) for the operator.
    async fn mail_failed(&self, id: &str, lease_id: &str, now: i64, error: &str) -> StorageResult<bool>;
    /// Mails waiting to be delivered (not failed).
    async fn outbox_depth(&self) -> StorageResult<i64>;
}
