//! Accounts.

use super::{Email, Roles, Username};

/// A user id: a UUIDv7 string (time-ordered).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// A fresh id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// Wraps an id read from storage or a verified token.
    pub fn from_trusted(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// Parses an id from a URL path; anything but a UUID is refused.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::parse_str(s).ok().map(|u| Self(u.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for UserId {
    fn default() -> Self {
        Self::new()
    }
}

/// An account as stored.
#[derive(Debug, Clone)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Name as chosen.
    pub username: Username,
    /// Optional e-mail.
    pub email: Option<Email>,
    /// Whether the owner proved they receive mail at `email` (or an administrator said so).
    pub email_verified: bool,
    /// PHC string (Argon2id) or a legacy bcrypt hash awaiting upgrade.
    pub password_hash: String,
    /// Roles.
    pub roles: Roles,
    /// A disabled account cannot log in.
    pub disabled: bool,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
}
