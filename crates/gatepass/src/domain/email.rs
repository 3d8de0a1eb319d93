//! E-mail addresses (optional on accounts).

use super::ValidationError;

/// A syntactically valid e-mail address of at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates `raw` with the `email_address` crate's RFC 5322 parser.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        // Control characters (CR/LF above all) could inject mail headers; the parser
        // accepts some of them in quoted local parts, so they are refused first.
        if raw.len() > 254 || raw.chars().any(char::is_control) || !email_address::EmailAddress::is_valid(raw) {
            return Err(ValidationError::new("email", "is not a valid e-mail address"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form addresses are compared in (unique among accounts, looked up at sign-in):
    /// ASCII lower case, as the database's `lower()` computes it in the migration.
    pub fn canonical(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert!(Email::parse("test@example.com").is_ok());
        for bad in ["", "nope", "a@", "@b.c", "a b@c.d", "a@b.c\r\nBcc: x@y.z", "\"a\rb\"@c.d"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Email::parse("Ann@Example.COM").unwrap().canonical(), "ann@example.com");
    }
}
