//! SQLite implementation of [`TokenStore`] and [`OutboxStore`]: the queries are
//! shared; transactions take the database write lock up front (`BEGIN IMMEDIATE`).

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::domain::{User, UserId};
use crate::storage::mail::{EmailConfirmed, OneTimeToken, OutboxMail, OutboxStore, TokenPurpose, TokenStore};
use crate::storage::{RevokedSession, StorageResult};

#[async_trait]
impl TokenStore for SqliteStorage {
    async fn user_by_email(&self, canonical: &str) -> StorageResult<Option<User>> {
        Q::user_where(&self.pool, "email_canonical", canonical).await
    }

    async fn insert_user_with(
        &self,
        user: &User,
        token: Option<&OneTimeToken>,
        mails: &[OutboxMail],
    ) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::insert_user(&mut *tx, user).await?;
        if let Some(token) = token {
            Q::insert_token(&mut tx, token, false).await?;
        }
        Q::insert_mails(&mut tx, mails).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn issue_token(&self, token: &OneTimeToken, mails: &[OutboxMail], replace: bool) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::insert_token(&mut tx, token, replace).await?;
        Q::insert_mails(&mut tx, mails).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn tokens_issued_since(&self, user_id: &str, purpose: TokenPurpose, since: i64) -> StorageResult<i64> {
        Q::tokens_issued_since(&self.pool, user_id, purpose, since).await
    }

    async fn peek_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
    ) -> StorageResult<Option<OneTimeToken>> {
        Q::peek_token(&self.pool, token_hash, purpose, now).await
    }

    async fn reset_password(
        &self,
        token_hash: &str,
        user_id: &UserId,
        new_hash: &str,
        now: i64,
        mails: &[OutboxMail],
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::reset_password_in_tx(&mut tx, token_hash, user_id, new_hash, now, mails).await?;
        if out.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn confirm_email(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now: i64,
        mails: &[OutboxMail],
    ) -> StorageResult<EmailConfirmed> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::confirm_email_in_tx(&mut tx, token_hash, purpose, now, mails).await?;
        if matches!(out, EmailConfirmed::Confirmed { .. }) {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn mark_email_verified(&self, user_id: &UserId, now: i64) -> StorageResult<bool> {
        Q::mark_email_verified(&self.writer, user_id, now).await
    }

    async fn purge_tokens(&self, now: i64) -> StorageResult<u64> {
        Q::purge_tokens(&self.writer, now).await
    }
}

#[async_trait]
impl OutboxStore for SqliteStorage {
    async fn enqueue_mails(&self, mails: &[OutboxMail]) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::insert_mails(&mut tx, mails).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn claim_mails(
        &self,
        lease_id: &str,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> StorageResult<Vec<OutboxMail>> {
        Q::claim_mails(&self.writer, "", lease_id, now, lease_secs, limit).await
    }

    async fn mail_sent(&self, id: &str, lease_id: &str) -> StorageResult<bool> {
        Q::mail_sent(&self.writer, id, lease_id).await
    }

    async fn mail_retry(&self, id: &str, lease_id: &str, next_attempt_at: i64, error: &str) -> StorageResult<bool> {
        Q::mail_retry(&self.writer, id, lease_id, next_attempt_at, error).await
    }

    async fn mail_failed(&self, id: &str, lease_id: &str, now: i64, error: &str) -> StorageResult<bool> {
        Q::mail_failed(&self.writer, id, lease_id, now, error).await
    }

    async fn outbox_depth(&self) -> StorageResult<i64> {
        Q::outbox_depth(&self.pool).await
    }
}
