//! Passwords in the RFC 8265 OpaqueString profile (non-ASCII spaces mapped to U+0020,
//! then NFC; never trimmed, never case-folded), length-checked and never logged; and the
//! policy for new passwords (NIST SP 800-63B: length, a blocklist of common passwords and
//! context words, no composition rules).
//!
//! Hashes made before normalisation were computed over the bytes as typed. A login keeps
//! that spelling beside the normalised one when they differ, so the hasher can accept it
//! and replace the hash ([`Password::legacy_form`]).
//!
//! The profile's mappings come from `precis-profiles`. Its validity check is not applied
//! as is: `precis-core` judges code points by Unicode 6.3 (the IANA PRECIS registry), so
//! it refuses every emoji and letter added since, and the variation selectors and joiners
//! of emoji sequences, which NIST SP 800-63B and GP-21 ("any Unicode") accept. New
//! passwords refuse what cannot be typed reliably instead: control characters and code
//! points with no script in current Unicode (unassigned, private use, noncharacters).

use super::ValidationError;
use precis_core::profile::Rules;
use precis_profiles::OpaqueString;
use secrecy::{ExposeSecret, SecretString};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::LazyLock;
use unicode_script::{Script, UnicodeScript};

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
        if raw.chars().any(|c| c.is_control() || c.script() == Script::Unknown) {
            return Err(ValidationError::new(
                field,
                "contains a character that is not allowed (a control character or an unassigned code point)",
            ));
        }
        let normalized = opaque_string(raw);
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

/// The OpaqueString mappings (RFC 8265 §4.2.2): non-ASCII spaces to U+0020, then NFC.
/// Borrowed when the password is already in that form.
fn opaque_string(raw: &str) -> Cow<'_, str> {
    let profile = OpaqueString::new();
    // Neither rule can fail for this profile; keeping the input as typed would only mean
    // no normalisation, never a wrong acceptance.
    let mapped = profile.additional_mapping_rule(raw).unwrap_or(Cow::Borrowed(raw));
    match mapped {
        Cow::Borrowed(b) => profile.normalization_rule(b).unwrap_or(Cow::Borrowed(b)),
        Cow::Owned(o) => {
            let normalized = profile.normalization_rule(o.as_str()).map(Cow::into_owned).unwrap_or_else(|_| o.clone());
            Cow::Owned(normalized)
        }
    }
}

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
    /// is kept as [`Password::legacy_form`].
    ///
    /// # Errors
    /// Longer than 1024 bytes.
    pub fn parse_existing(raw: &str, field: &'static str) -> Result<Self, ValidationError> {
        if raw.len() > MAX_LEN {
            return Err(too_long(field));
        }
        let (secret, legacy) = match opaque_string(raw) {
            Cow::Borrowed(same) => (same.to_owned(), None),
            Cow::Owned(normalized) => (normalized, Some(SecretString::from(raw.to_owned()))),
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
        // Emoji (also newer than Unicode 6.3) with their joiners and variation selectors.
        assert!(p.check("ça marche très bien 🙂 👨\u{200d}👩\u{200d}👧 ❤\u{fe0f}", "bob", "password").is_ok());
        for bad in ["tab\there-x", "nul\0here-x", "bell\u{7}rings", "private\u{e000}use", "unassigned\u{378}x"] {
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
        // A character new passwords refuse: still checked, in case an old hash has it.
        let odd = Password::parse_existing("tab\there\u{3000}x", "password").unwrap();
        assert_eq!(odd.expose(), "tab\there x");
        assert_eq!(odd.legacy_form(), Some("tab\there\u{3000}x"));
        assert_eq!(Password::parse_existing("", "password").unwrap().expose(), "");
    }

    #[test]
    fn unicode_usernames_are_context_words() {
        let p = PasswordPolicy::default();
        assert!(p.check("my name is ÉLODIE!", "Élodie", "password").is_err());
        assert!(p.check("my name is E\u{301}lodie!", "élodie", "password").is_err());
    }
}
