//! Passwords in the RFC 8265 OpaqueString profile (non-ASCII spaces mapped to U+0020,
//! then NFC; never trimmed, never case-folded), length-checked and never logged; and the
//! policy for new passwords (NIST SP 800-63B: length, a blocklist of common passwords and
//! context words, no composition rules).
//!
//! Hashes made before normalisation were computed over the bytes as typed. A login keeps
//! that spelling beside the normalised one when they differ, so the hasher can accept it
//! and replace the hash ([`Password::legacy_form`]).

use super::ValidationError;
use precis_core::profile::PrecisFastInvocation;
use precis_profiles::OpaqueString;
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
    /// The lengths are those of the OpaqueString form (NFC), which is what gets hashed.
    ///
    /// # Errors
    /// Too short, too long, a character OpaqueString refuses (control characters,
    /// unassigned code points), a common password, or containing the username or service
    /// name.
    pub fn check(&self, raw: &str, username: &str, field: &'static str) -> Result<Password, ValidationError> {
        if raw.len() > MAX_LEN {
            return Err(too_long(field));
        }
        let normalized = match OpaqueString::enforce(raw) {
            Ok(s) => s,
            // Only the empty string is `Invalid`: it is too short.
            Err(precis_core::Error::Invalid) => "".into(),
            Err(_) => {
                return Err(ValidationError::new(
                    field,
                    "contains a character that is not allowed (a control character or an unassigned code point)",
                ));
            }
        };
        if normalized.len() < self.min_len {
            return Err(ValidationError::new(field, format!("must be at least {} bytes long", self.min_len)));
        }
        if normalized.len() > MAX_LEN {
            return Err(too_long(field));
        }
        let lower = normalized.to_lowercase();
        if COMMON.contains(lower.as_str()) {
            return Err(ValidationError::new(field, "is one of the most common passwords; choose another"));
        }
        let user = super::Username::lookup_key(username.trim());
        if (user.chars().count() >= 3 && lower.contains(&user)) || CONTEXT_WORDS.iter().any(|w| lower.contains(w)) {
            return Err(ValidationError::new(field, "must not contain the username or the service name"));
        }
        Ok(Password { secret: SecretString::from(normalized.into_owned()), legacy: None })
    }

    /// Whether `raw` is on the common-password list (case-insensitive).
    pub fn is_common(raw: &str) -> bool {
        COMMON.contains(raw.to_lowercase().as_str())
    }
}
/// Longest password accepted, in bytes (hashing cost stays bounded).
pub const MAX_LEN: usize = 1024;

fn too_long(field: &'static str) -> ValidationError {
    ValidationError::new(field, format!("must be at most {MAX_LEN} bytes long"))
}

/// A password no longer than 1024 bytes as typed, in its OpaqueString form; new ones come
/// from [`PasswordPolicy::check`], the one set of rules for every way a password is set.
/// Its `Debug` output is redacted.
#[derive(Clone)]
pub struct Password {
    /// What gets hashed and verified first.
    secret: SecretString,
    /// The password as typed, when it differs from `secret` (logins only).
    legacy: Option<SecretString>,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Accepts any password up to 1024 bytes: used to check a login (and to hash a
    /// password an import brings along), where a too-short guess is simply wrong rather
    /// than a validation error.
    ///
    /// The password is put in its OpaqueString form; when that differs from `raw`, `raw`
    /// is kept as [`Password::legacy_form`]. A password OpaqueString refuses (a control
    /// character, an unassigned code point) cannot have been set since, so it is kept as
    /// typed: an account from before keeps working.
    ///
    /// # Errors
    /// Longer than 1024 bytes.
    pub fn parse_existing(raw: &str, field: &'static str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_LEN {
            return Err(too_long(field));
        }
        let (secret, legacy) = match OpaqueString::enforce(raw) {
            Ok(normalized) if normalized == raw => (raw.to_owned(), None),
            Ok(normalized) => (normalized.into_owned(), Some(SecretString::from(raw.to_owned()))),
            Err(_) => (raw.to_owned(), None),
        };
        Ok(Self { secret: SecretString::from(secret), legacy })
    }

    /// The password in its OpaqueString form, for hashing only.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The password exactly as typed, when that differs from [`Password::expose`]: hashes
    /// stored before passwords were normalised were made from it.
    pub fn legacy_form(&self) -> Option<&str> {
        self.legacy.as_ref().map(|s| s.expose_secret())
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

    #[test]
    fn opaque_string_normalises_to_nfc_and_maps_spaces() {
        let p = PasswordPolicy::default();
        // RFC 8265 §4.2: NFC, non-ASCII spaces to U+0020, case and width preserved.
        let new = p.check("Cafe\u{301} au lait", "bob", "password").unwrap();
        assert_eq!(new.expose(), "Café au lait");
        assert_eq!(new.legacy_form(), None, "a new password has one form only");
        assert_eq!(p.check("correct\u{3000}horse\u{a0}x", "bob", "password").unwrap().expose(), "correct horse x");
        assert_eq!(p.check("ＰａｓｓＷｏｒｄ９", "bob", "password").unwrap().expose(), "ＰａｓｓＷｏｒｄ９");
        assert_eq!(p.check("UPPER lower", "bob", "password").unwrap().expose(), "UPPER lower");
        for bad in ["tab\there-x", "nul\0here-x", "bell\u{7}rings"] {
            assert!(p.check(bad, "bob", "password").unwrap_err().message.contains("not allowed"), "{bad:?}");
        }
        assert!(p.check("", "bob", "password").unwrap_err().message.contains("at least"));
    }

    #[test]
    fn logins_keep_the_typed_form_when_it_differs() {
        let typed = Password::parse_existing("Cafe\u{301} noir", "password").unwrap();
        assert_eq!(typed.expose(), "Café noir");
        assert_eq!(typed.legacy_form(), Some("Cafe\u{301} noir"));
        let plain = Password::parse_existing("Café noir", "password").unwrap();
        assert_eq!(plain.legacy_form(), None);
        // Refused by OpaqueString: kept as typed, so an old account still signs in.
        let odd = Password::parse_existing("tab\there", "password").unwrap();
        assert_eq!(odd.expose(), "tab\there");
        assert_eq!(odd.legacy_form(), None);
        assert_eq!(Password::parse_existing("", "password").unwrap().expose(), "");
    }

    #[test]
    fn unicode_usernames_are_context_words() {
        let p = PasswordPolicy::default();
        assert!(p.check("my name is ÉLODIE!", "Élodie", "password").is_err());
        assert!(p.check("my name is E\u{301}lodie!", "élodie", "password").is_err());
    }
}
