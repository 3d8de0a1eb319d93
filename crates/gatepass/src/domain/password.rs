//! Passwords as users type them: length-checked, never trimmed, never logged; and the
//! policy for new passwords (NIST SP 800-63B: length, a blocklist of common passwords and
//! context words, no composition rules).

use super::ValidationError;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use std::sync::LazyLock;

/// Default shortest password accepted, in bytes.
pub const MIN_LEN: usize = 8;

/// The 20 000 most common passwords (Django 5.2's `common-passwords.txt`, BSD-3-Clause;
/// compiled by Royce Williams from breach corpora), lower-case, one per line.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON_PASSWORDS.lines().map(str::trim).filter(|l| !l.is_empty()).collect());

/// Words that say where the password is used; a password containing one is refused.
const CONTEXT_WORDS: &[&str] = &["gatepass"];

/// Rules for new passwords. Logins never apply them: an old password stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Shortest accepted, bytes (never below 1; at most 1024).
    pub min_len: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_len: MIN_LEN }
    }
}

impl PasswordPolicy {
    /// A policy with `min_len` (clamped to 1..=1024).
    pub fn new(min_len: usize) -> Self {
        Self { min_len: min_len.clamp(1, MAX_LEN) }
    }

    /// Checks a new password for the account `username`; `field` names the request field.
    ///
    /// # Errors
    /// Too short, too long, a common password, or containing the username or service name.
    pub fn check(&self, raw: &str, username: &str, field: &'static str) -> Result<Password, ValidationError> {
        if raw.len() < self.min_len {
            return Err(ValidationError::new(field, format!("must be at least {} bytes long", self.min_len)));
        }
        let password = Password::parse_existing(raw, field)?;
        let lower = raw.to_lowercase();
        if COMMON.contains(lower.as_str()) {
            return Err(ValidationError::new(field, "is one of the most common passwords; choose another"));
        }
        let user = username.trim().to_ascii_lowercase();
        if (user.len() >= 3 && lower.contains(&user)) || CONTEXT_WORDS.iter().any(|w| lower.contains(w)) {
            return Err(ValidationError::new(field, "must not contain the username or the service name"));
        }
        Ok(password)
    }

    /// Whether `raw` is on the common-password list (case-insensitive).
    pub fn is_common(raw: &str) -> bool {
        COMMON.contains(raw.to_lowercase().as_str())
    }
}
/// Longest password accepted, in bytes (hashing cost stays bounded).
pub const MAX_LEN: usize = 1024;

/// A password no longer than 1024 bytes; new ones come from [`PasswordPolicy::check`], the
/// one set of rules for every way a password is set. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Accepts any password up to 1024 bytes: used to check a login, where a
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
    fn policy_refuses_common_and_context_words() {
        let p = PasswordPolicy::default();
        assert!(p.check("password", "alice", "password").is_err());
        assert!(p.check("PassWord123", "alice", "password").is_err());
        assert!(p.check("alice-is-great", "alice", "password").is_err());
        assert!(p.check("MyGatepass!!", "alice", "password").is_err());
        assert!(p.check("correct horse battery", "alice", "password").is_ok());
        assert!(PasswordPolicy::new(12).check("short-ish-x", "bob", "p").is_err());
        assert!(PasswordPolicy::is_common("qwerty"));
    }

    #[test]
    fn length_policy_in_bytes_without_trimming() {
        let p = PasswordPolicy::default();
        assert!(p.check("1234567x", "bob", "password").is_ok());
        assert!(p.check("123456x", "bob", "password").is_err());
        assert_eq!(p.check(" pass x ", "bob", "password").unwrap().expose(), " pass x ");
        assert!(p.check(&"x".repeat(1025), "bob", "password").is_err());
        assert!(Password::parse_existing("x", "password").is_ok());
        assert_eq!(format!("{:?}", p.check("hunter2hunter2", "bob", "p").unwrap()), "Password(<redacted>)");
    }
}
