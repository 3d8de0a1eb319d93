//! Why a token was refused.

/// A token verification failure. The `&'static str` says why, for logs and metrics;
/// it never contains token material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The credential is not even shaped like a token (bad header, not three segments…).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The token is well-formed but must not be accepted.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The token was valid but its `exp` has passed.
    #[error("token expired")]
    Expired,
}

impl VerifyError {
    /// A stable machine code: `token_malformed`, `token_invalid` or `token_expired`.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "token_malformed",
            VerifyError::Invalid(_) => "token_invalid",
            VerifyError::Expired => "token_expired",
        }
    }
}
