//! Usernames: 3–64 characters of `[A-Za-z0-9._-]`, unique case-insensitively.

use super::ValidationError;

/// A validated username. Keeps the spelling the user chose; [`Username::canonical`] is the
/// lower-case form that uniqueness and look-ups use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Validates `raw` as given (no trimming: `" bob"` is refused, not silently changed).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let len = raw.len();
        if !(3..=64).contains(&len) {
            return Err(ValidationError::new("username", "must be 3 to 64 characters long"));
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
            return Err(ValidationError::new("username", "may contain only letters, digits, '.', '_' and '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as the user spelled it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Lower-case form: `Alice` and `alice` are the same account.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet_and_lengths() {
        for ok in ["abc", "Alice.B_c-9", &"a".repeat(64)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Username::parse("AlIcE").unwrap().canonical(), "alice");
    }

    #[test]
    fn refuses_everything_else() {
        for bad in ["", "ab", &"a".repeat(65), "bob smith", " bob", "bob'--", "bøb", "a\0b", "x/y"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
}
