//! Session values shared by auth (the in-memory revocation set), storage (persisted
//! revocations) and the service.

/// Why a session's tokens are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Logged out, rotated-token reuse, password change, admin action: `token_revoked`.
    Revoked,
    /// The account was deleted: the token is simply `token_invalid`.
    UserDeleted,
}
