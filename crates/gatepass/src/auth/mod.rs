//! Credentials and tokens: password hashing, access-token issuing, refresh-token material,
//! the operator token, the in-memory revocation set, throttling policy, device cookies and
//! TOTP second factors.
//! No HTTP types and no storage here.

pub mod calibrate;
pub mod clients;
pub mod csrf;
pub mod device;
pub mod keys;
pub mod oauth;
pub mod onetime;
pub mod operator;
pub mod passwords;
pub mod ratelimit;
pub mod ratelimit_redis;
pub mod refresh;
pub mod revocation;
pub mod tokens;
pub mod totp;
pub mod verified_cache;

pub use passwords::PasswordHasher;
pub use revocation::RevocationSet;
pub use tokens::TokenIssuer;
