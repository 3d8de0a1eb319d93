//! Queries of the admin console that no other use case needs: account search with
//! filters, and the sign-in counts of the overview chart. Read-only: every change the
//! console makes goes through the stores the admin API uses.

use async_trait::async_trait;

use super::StorageResult;
use crate::domain::User;

/// Which accounts a console search shows. Every filter narrows the result.
#[derive(Debug, Clone, Default)]
pub struct UserSearch {
    /// Canonical usernames starting with this (see `Username::lookup_key`).
    pub name_prefix: Option<String>,
    /// Or canonical (lower-case) addresses starting with this.
    pub email_prefix: Option<String>,
    /// Accounts holding this role.
    pub role: Option<String>,
    /// Only disabled (`Some(true)`) or only enabled (`Some(false)`) accounts.
    pub disabled: Option<bool>,
    /// Only accounts with an address that is not verified yet.
    pub unverified: bool,
    /// Page size.
    pub limit: i64,
    /// Accounts to skip.
    pub offset: i64,
}

/// How often one event happened in one hour of a time window.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HourlyCount {
    /// The event name.
    pub event: String,
    /// Hours since the start of the window (0 is the first hour).
    pub hour: i64,
    /// Entries.
    pub count: i64,
}

/// The console's read queries.
#[async_trait]
pub trait ConsoleStore: Send + Sync {
    /// One page of the accounts matching `search`, in canonical-name order, and how many
    /// match in all. The name and address prefixes are alternatives (either may match);
    /// the other filters must all hold.
    async fn search_users(&self, search: &UserSearch) -> StorageResult<(Vec<User>, i64)>;
    /// Counts of the audit entries named in `events` from `from` (epoch seconds) on, per
    /// event and hour.
    async fn audit_hourly(&self, events: &[&str], from: i64) -> StorageResult<Vec<HourlyCount>>;
}
