//! Validated domain types (constructing one proves its invariant) and the plain values that
//! auth, storage and the service share. No I/O happens here beyond reading the clock.

pub mod clock;
mod email;
mod keys;
mod passkey_name;
mod password;
mod role;
mod session;
mod user;
mod username;

pub use email::Email;
pub use keys::StoredKey;
pub use passkey_name::PasskeyName;
pub use password::{Password, PasswordPolicy};
pub use role::{Role, Roles};
pub use session::Revocation;
pub use user::{User, UserId};
pub use username::Username;

/// A value that failed validation: which field, and a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The request field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}
