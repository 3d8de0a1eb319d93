//! Heartbeats of the instances serving one database, for the admin console's overview.

use async_trait::async_trait;
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

use super::StorageResult;
use super::shared::{Backend, Shared, Tx};

/// One instance's latest heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstanceBeat {
    /// Chosen by the process at start-up (a UUID).
    pub id: String,
    /// The address it listens on.
    pub listen: String,
    /// Its gatepass version.
    pub version: String,
    /// When it started (epoch seconds).
    pub started_at: i64,
    /// Its latest heartbeat (epoch seconds).
    pub last_seen: i64,
}

/// The instances' heartbeats.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// Records `beat` (inserting the instance or moving its `last_seen`), and forgets the
    /// instances last seen before `forget_before`, in one transaction.
    async fn heartbeat(&self, beat: &InstanceBeat, forget_before: i64) -> StorageResult<()>;
    /// Every instance remembered, the most recently seen first.
    async fn instances(&self) -> StorageResult<Vec<InstanceBeat>>;
}

const HEARTBEAT_SQL: &str = "INSERT INTO instances (id, listen, version, started_at, last_seen) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET last_seen = excluded.last_seen, \
     listen = excluded.listen, version = excluded.version";
const FORGET_SQL: &str = "DELETE FROM instances WHERE last_seen < $1";
const LIST_SQL: &str = "SELECT id, listen, version, started_at, last_seen FROM instances ORDER BY last_seen DESC, id";

/// The heartbeat queries both backends run.
impl<DB> Shared<DB>
where
    DB: Backend,
    DB::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'r> InstanceBeat: FromRow<'r, DB::Row>,
{
    /// Records `beat` and forgets the instances last seen before `forget_before`, inside
    /// `tx` (see [`InstanceStore::heartbeat`]).
    pub(super) async fn heartbeat_in_tx(tx: &mut Tx<DB>, beat: &InstanceBeat, forget_before: i64) -> StorageResult<()> {
        sqlx::query::<DB>(HEARTBEAT_SQL)
            .bind(beat.id.as_str())
            .bind(beat.listen.as_str())
            .bind(beat.version.as_str())
            .bind(beat.started_at)
            .bind(beat.last_seen)
            .execute(&mut **tx)
            .await
            .map_err(DB::map_err)?;
        sqlx::query::<DB>(FORGET_SQL).bind(forget_before).execute(&mut **tx).await.map_err(DB::map_err)?;
        Ok(())
    }

    /// Every instance remembered, the most recently seen first.
    pub(super) async fn instances<'c>(ex: impl Executor<'c, Database = DB>) -> StorageResult<Vec<InstanceBeat>> {
        sqlx::query_as::<DB, InstanceBeat>(LIST_SQL).fetch_all(ex).await.map_err(DB::map_err)
    }
}
