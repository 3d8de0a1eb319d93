//! E-mail addresses (optional on accounts).

use super::ValidationError;

/// A syntactically valid e-mail address of at most 254 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates `raw` with the `email_address` crate's RFC 5322 parser.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.len() > 254 || !email_address::EmailAddress::is_valid(raw) {
            return Err(ValidationError::new("email", "is not a valid e-mail address"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert!(Email::parse("test@example.com").is_ok());
        for bad in ["", "nope", "a@", "@b.c", "a b@c.d"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
