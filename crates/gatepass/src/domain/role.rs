//! Roles carried in tokens.

use super::ValidationError;

/// A role name: 1–32 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(String);

impl Role {
    /// The role every account has.
    pub const USER: &'static str = "user";
    /// The role of administrators.
    pub const ADMIN: &'static str = "admin";

    /// Validates a role name.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok = (1..=32).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(ValidationError::new("roles", "each role is 1 to 32 of a-z, 0-9, '_' or '-'"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The role name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sorted, duplicate-free set of roles that always contains `user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles(Vec<Role>);

impl Roles {
    /// Builds the set from names, adding `user`.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, ValidationError> {
        if names.len() > 16 {
            return Err(ValidationError::new("roles", "at most 16 roles"));
        }
        let mut roles = vec![Role(Role::USER.to_owned())];
        for n in names {
            roles.push(Role::parse(n.as_ref())?);
        }
        roles.sort();
        roles.dedup();
        Ok(Self(roles))
    }

    /// Just `user`.
    pub fn default_user() -> Self {
        Self(vec![Role(Role::USER.to_owned())])
    }

    /// Role names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|r| r.0.clone()).collect()
    }

    /// Whether `name` is in the set.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|r| r.0 == name)
    }

    /// Stored form: names joined by commas.
    pub fn to_stored(&self) -> String {
        self.names().join(",")
    }

    /// Reads the stored form; unknown garbage degrades to `user` only (fail closed).
    pub fn from_stored(s: &str) -> Self {
        let names: Vec<&str> = s.split(',').filter(|n| !n.is_empty()).collect();
        Self::parse(&names).unwrap_or_else(|_| Self::default_user())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_always_include_user_and_round_trip() {
        let r = Roles::parse(&["admin", "admin"]).unwrap();
        assert_eq!(r.names(), vec!["admin", "user"]);
        assert_eq!(Roles::from_stored(&r.to_stored()), r);
        assert!(Roles::parse(&["Admin"]).is_err());
        assert!(Roles::parse(&[""]).is_err());
    }
}
