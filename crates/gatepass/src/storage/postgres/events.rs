//! PostgreSQL change feed: `LISTEN gatepass_events` on a dedicated connection.
//!
//! The triggers created by the migrations (`0001_initial.sql`, `0006_…`) send a JSON payload
//! on every write to `revocations`, `settings` or `signing_keys`; NOTIFY is delivered on commit, so an
//! instance never hears of a change that was rolled back.

use async_trait::async_trait;
use serde::Deserialize;
use sqlx::postgres::PgListener;

use super::{PostgresStorage, map_err};
use crate::storage::{Change, ChangeFeed, ChangeSubscription, RevokedSession, StorageResult, reason_from_str};

/// The NOTIFY channel the triggers publish on.
pub const CHANNEL: &str = "gatepass_events";

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Payload {
    Revocation { sid: String, until: i64, reason: String },
    Settings,
    Keys,
}

/// Decodes a NOTIFY payload; anything unrecognised asks for a full reload, which is always
/// correct, only slower.
fn decode(payload: &str) -> Change {
    match serde_json::from_str::<Payload>(payload) {
        Ok(Payload::Revocation { sid, until, reason }) => {
            Change::Revoked(RevokedSession { sid, until, reason: reason_from_str(&reason) })
        }
        Ok(Payload::Settings) => Change::SettingsChanged,
        Ok(Payload::Keys) => Change::KeysChanged,
        Err(_) => Change::Resync,
    }
}

struct PgSubscription {
    listener: PgListener,
}

#[async_trait]
impl ChangeSubscription for PgSubscription {
    async fn next(&mut self) -> StorageResult<Change> {
        // `try_recv` re-establishes a lost connection (and its LISTEN) before returning
        // `None`, so a reload triggered by `Resync` cannot miss a later notification.
        match self.listener.try_recv().await.map_err(map_err)? {
            Some(n) => Ok(decode(n.payload())),
            None => Ok(Change::Resync),
        }
    }
}

#[async_trait]
impl ChangeFeed for PostgresStorage {
    async fn subscribe(&self) -> StorageResult<Option<Box<dyn ChangeSubscription>>> {
        let mut listener = PgListener::connect_with(&self.pool).await.map_err(map_err)?;
        listener.listen(CHANNEL).await.map_err(map_err)?;
        Ok(Some(Box::new(PgSubscription { listener })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Revocation;

    #[test]
    fn decodes_payloads() {
        assert_eq!(
            decode(r#"{"kind":"revocation","sid":"s1","until":42,"reason":"user_deleted"}"#),
            Change::Revoked(RevokedSession { sid: "s1".into(), until: 42, reason: Revocation::UserDeleted })
        );
        assert_eq!(decode(r#"{"kind":"settings"}"#), Change::SettingsChanged);
        assert_eq!(decode(r#"{"kind":"keys"}"#), Change::KeysChanged);
        assert_eq!(decode("garbage"), Change::Resync);
    }
}
