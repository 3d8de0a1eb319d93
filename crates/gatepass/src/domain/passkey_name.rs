//! The name an owner gives a passkey ("Laptop", "Phone"): shown back to them in lists and
//! mails, so it is plain, printable, short text.

use super::ValidationError;

/// Longest name, in characters.
pub const MAX_CHARS: usize = 64;

/// A validated passkey name: trimmed, 1 to 64 characters, no control or formatting
/// characters (which could make two names look alike or break a mail's text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

impl PasskeyName {
    /// Validates `raw` as the request field `name`.
    ///
    /// # Errors
    /// [`ValidationError`] naming `name` when empty, too long, or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(ValidationError::new("name", "is required"));
        }
        if name.chars().count() > MAX_CHARS {
            return Err(ValidationError::new("name", format!("must be at most {MAX_CHARS} characters")));
        }
        // Cc (controls) and the common invisible formatting characters (Cf: bidi overrides,
        // zero-width joiners) that let a name pose as another.
        let invisible = |c: char| {
            c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
        };
        if name.chars().any(invisible) {
            return Err(ValidationError::new("name", "must not contain control or invisible characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(PasskeyName::parse("  Laptop ").unwrap().as_str(), "Laptop");
        assert_eq!(PasskeyName::parse(&"é".repeat(64)).unwrap().as_str().chars().count(), 64);
        for bad in ["", "   ", &"a".repeat(65), "a\nb", "evil\u{202E}gnp", "x\u{200B}"] {
            assert!(PasskeyName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
