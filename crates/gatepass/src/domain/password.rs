//! Passwords as users type them: length-checked, never trimmed, never logged.

use super::ValidationError;
use secrecy::{ExposeSecret, SecretString};

/// Shortest password accepted, in bytes.
pub const MIN_LEN: usize = 8;
/// Longest password accepted, in bytes (hashing cost stays bounded).
pub const MAX_LEN: usize = 1024;

/// A password that passed the length policy. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Checks the policy for a *new* password (`field` names the request field).
    pub fn parse_new(raw: &str, field: &'static str) -> Result<Self, ValidationError> {
        if raw.len() < MIN_LEN {
            return Err(ValidationError::new(field, format!("must be at least {MIN_LEN} bytes long")));
        }
        Self::parse_existing(raw, field)
    }

    /// Accepts any password up to [`MAX_LEN`] bytes: used to check a login, where a
    /// too-short guess is simply wrong rather than a validation error.
    pub fn parse_existing(raw: &str, field: &'static str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_LEN {
            return Err(ValidationError::new(field, format!("must be at most {MAX_LEN} bytes long")));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The password bytes, for hashing only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_policy_in_bytes_without_trimming() {
        assert!(Password::parse_new("1234567", "password").is_err());
        assert!(Password::parse_new("12345678", "password").is_ok());
        assert_eq!(Password::parse_new("  pass  ", "password").unwrap().expose(), "  pass  ");
        assert!(Password::parse_new(&"x".repeat(1025), "password").is_err());
        assert!(Password::parse_existing("x", "password").is_ok());
        assert_eq!(format!("{:?}", Password::parse_new("hunter2hunter2", "p").unwrap()), "Password(<redacted>)");
    }
}
