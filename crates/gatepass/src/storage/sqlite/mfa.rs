//! SQLite implementation of [`MfaStore`]: the queries are shared; transactions take the database write lock up front (`BEGIN IMMEDIATE`) and single-statement writes go through the one writer connection.

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::storage::StorageResult;
use crate::storage::mfa::{MfaChallenge, MfaStore, TotpFactor};

#[async_trait]
impl MfaStore for SqliteStorage {
    async fn totp_factor(&self, user_id: &str) -> StorageResult<Option<TotpFactor>> {
        Q::totp_factor(&self.pool, user_id).await
    }

    async fn put_pending_totp(&self, user_id: &str, sealed: &str, now: i64) -> StorageResult<bool> {
        Q::put_pending_totp(&self.writer, user_id, sealed, now).await
    }

    async fn activate_totp(
        &self,
        user_id: &str,
        sealed: &str,
        step: i64,
        now: i64,
        codes: &[String],
    ) -> StorageResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let done = Q::activate_totp_in_tx(&mut tx, user_id, sealed, step, now, codes).await?;
        if done {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(done)
    }

    async fn accept_totp_step(&self, user_id: &str, step: i64) -> StorageResult<bool> {
        Q::accept_totp_step(&self.writer, user_id, step).await
    }

    async fn remove_totp(&self, user_id: &str) -> StorageResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let done = Q::remove_totp_in_tx(&mut tx, user_id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn remove_all_factors(&self, user_id: &str) -> StorageResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let done = Q::remove_all_factors_in_tx(&mut tx, user_id).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn replace_recovery_codes(&self, user_id: &str, codes: &[String], now: i64) -> StorageResult<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let done = Q::replace_codes_in_tx(&mut tx, user_id, codes, now).await?;
        if done {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(done)
    }

    async fn use_recovery_code(&self, user_id: &str, code_hash: &str, now: i64) -> StorageResult<bool> {
        Q::use_recovery_code(&self.writer, user_id, code_hash, now).await
    }

    async fn recovery_codes_left(&self, user_id: &str) -> StorageResult<i64> {
        Q::recovery_codes_left(&self.pool, user_id).await
    }

    async fn insert_mfa_challenge(&self, challenge: &MfaChallenge) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::insert_mfa_challenge_in_tx(&mut tx, challenge).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn take_mfa_challenge(&self, challenge_hash: &str, now: i64) -> StorageResult<Option<MfaChallenge>> {
        Q::take_mfa_challenge(&self.writer, challenge_hash, now).await
    }

    async fn peek_mfa_challenge(&self, challenge_hash: &str, now: i64) -> StorageResult<Option<MfaChallenge>> {
        Q::peek_mfa_challenge(&self.pool, challenge_hash, now).await
    }
}
