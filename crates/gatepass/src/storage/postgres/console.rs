//! PostgreSQL implementation of [`ConsoleStore`]: prefixes matched with `starts_with()` and roles
//! with `strpos()`, so `%` and `_` in a search mean themselves.

use async_trait::async_trait;

use super::{PostgresStorage, Q, map_err};
use crate::domain::User;
use crate::storage::StorageResult;
use crate::storage::console::{ConsoleStore, HourlyCount, UserSearch};
use crate::storage::shared::{SearchDialect, audit_hourly_sql};

const DIALECT: SearchDialect = SearchDialect {
    name_prefix: "starts_with(username_canonical, $1)",
    email_prefix: "starts_with(email_canonical, $2)",
    role: "strpos(',' || roles || ',', ',' || $3 || ',') > 0",
    order: "username_canonical COLLATE \"C\"",
};

#[async_trait]
impl ConsoleStore for PostgresStorage {
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
