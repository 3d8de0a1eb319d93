//! SQLite implementation of [`ConsoleStore`]: prefixes matched with `substr()` and roles
//! with `instr()`, so `%` and `_` in a search mean themselves.

use async_trait::async_trait;

use super::{Q, SqliteStorage, map_err};
use crate::domain::User;
use crate::storage::StorageResult;
use crate::storage::console::{ConsoleStore, HourlyCount, UserSearch};
use crate::storage::shared::{SearchDialect, audit_hourly_sql};

const DIALECT: SearchDialect = SearchDialect {
    name_prefix: "substr(username_canonical, 1, length($1)) = $1",
    email_prefix: "substr(email_canonical, 1, length($2)) = $2",
    role: "instr(',' || roles || ',', ',' || $3 || ',') > 0",
    order: "username_canonical",
};

#[async_trait]
impl ConsoleStore for SqliteStorage {
    async fn search_users(&self, search: &UserSearch) -> StorageResult<(Vec<User>, i64)> {
        Q::search_users(&self.pool, &DIALECT, search).await
    }

    async fn audit_hourly(&self, events: &[&str], from: i64) -> StorageResult<Vec<HourlyCount>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let sql = audit_hourly_sql(events.len());
        let mut q = sqlx::query_as::<_, HourlyCount>(sqlx::AssertSqlSafe(sql)).bind(from);
        for e in events {
            q = q.bind(*e);
        }
        q.fetch_all(&self.pool).await.map_err(map_err)
    }
}
