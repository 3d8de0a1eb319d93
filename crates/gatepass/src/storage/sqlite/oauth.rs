//! SQLite implementation of [`OAuthStore`]: the queries are shared; transactions take the database write lock up front (`BEGIN IMMEDIATE`), which also holds every row a redemption reads.

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::domain::StoredKey;
use crate::storage::oauth::{AuthCode, CodeRedemption, ConsentRecord, OAuthClient, OAuthStore};
use crate::storage::{NewSession, RevokedSession, StorageResult};

#[async_trait]
impl OAuthStore for SqliteStorage {
    async fn insert_client(&self, client: &OAuthClient) -> StorageResult<()> {
        Q::insert_client(&self.writer, client).await
    }

    async fn client(&self, client_id: &str) -> StorageResult<Option<OAuthClient>> {
        Q::client(&self.pool, client_id).await
    }

    async fn list_clients(&self) -> StorageResult<Vec<OAuthClient>> {
        Q::list_clients(&self.pool).await
    }

    async fn update_client(&self, client: &OAuthClient, expected_version: i64) -> StorageResult<bool> {
        Q::update_client(&self.writer, client, expected_version).await
    }

    async fn delete_client(&self, client_id: &str, now: i64) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::delete_client_in_tx(&mut tx, client_id, now).await?;
        if out.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn insert_code(&self, code: &AuthCode) -> StorageResult<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        Q::insert_code_in_tx(&mut tx, code).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn code(&self, code_hash: &str) -> StorageResult<Option<AuthCode>> {
        Q::code(&self.pool, code_hash).await
    }

    async fn redeem_code(&self, code_hash: &str, now: i64, grant: NewSession<'_>) -> StorageResult<CodeRedemption> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::redeem_code_in_tx(&mut tx, code_hash, now, &grant, "").await?;
        if out != CodeRedemption::Refused {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn end_browser_session(
        &self,
        user_id: &str,
        browser_sid: &str,
        grant_sid: Option<&str>,
        now: i64,
    ) -> StorageResult<Vec<RevokedSession>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::end_browser_session_in_tx(&mut tx, user_id, browser_sid, grant_sid, now).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(out)
    }

    async fn consents(&self, user_id: &str, client_id: &str) -> StorageResult<Vec<String>> {
        Q::consents(&self.pool, user_id, client_id).await
    }

    async fn grant_consent(&self, user_id: &str, client_id: &str, scope: &str, now: i64) -> StorageResult<()> {
        Q::grant_consent(&self.writer, user_id, client_id, scope, now).await
    }

    async fn user_consents(&self, user_id: &str) -> StorageResult<Vec<ConsentRecord>> {
        Q::user_consents(&self.pool, user_id).await
    }

    async fn withdraw_consent(
        &self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> StorageResult<Option<Vec<RevokedSession>>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let out = Q::withdraw_consent_in_tx(&mut tx, user_id, client_id, now).await?;
        if out.is_some() {
            tx.commit().await.map_err(map_err)?;
        }
        Ok(out)
    }

    async fn oauth_keys(&self) -> StorageResult<Vec<StoredKey>> {
        Q::oauth_keys(&self.pool).await
    }

    async fn insert_first_oauth_key(&self, key: &StoredKey) -> StorageResult<bool> {
        // The single writer: no other insert runs between the check and the insert.
        Q::insert_oauth_key(&self.writer, key, true).await
    }

    async fn add_oauth_key(&self, key: &StoredKey) -> StorageResult<()> {
        Q::insert_oauth_key(&self.writer, key, false).await.map(drop)
    }

    async fn delete_oauth_keys(&self, kids: &[String]) -> StorageResult<u64> {
        super::delete_keys(&self.writer, "DELETE FROM oauth_keys WHERE kid = ?", kids).await
    }
}
