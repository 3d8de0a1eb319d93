//! SQLite has no push channel: instances poll (see `crate::service::sync`).

use super::SqliteStorage;
use crate::storage::ChangeFeed;

impl ChangeFeed for SqliteStorage {}
