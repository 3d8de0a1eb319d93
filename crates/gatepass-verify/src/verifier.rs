//! The token verifier: strict parsing, a server-chosen algorithm per key, then claims.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::claims::{ACCESS_TOKEN_TYP, AccessClaims, OAuthAccessClaims, TimedClaims};
use crate::{VerifyError, strict};

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2 for HS256).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 8192;

/// What the claims of a token must satisfy.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`; when `None`, a token that carries any `aud` is refused.
    pub audience: Option<String>,
    /// Clock-skew allowance for `exp`, `nbf` and `iat`, in seconds (at most 60).
    pub leeway_secs: u64,
    /// Longest `exp - iat` accepted, in seconds.
    pub max_lifetime_secs: i64,
}

impl VerifierConfig {
    /// Defaults for `issuer`: no audience, 30 s leeway, 24 h maximum lifetime.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), audience: None, leeway_secs: 30, max_lifetime_secs: 86_400 }
    }
}

/// One key a verifier trusts, typed by its algorithm so that a token can never choose how
/// it is checked.
#[derive(Clone)]
pub struct VerifyingKey {
    /// Key id, matched exactly against the token's `kid`.
    pub kid: String,
    /// The one algorithm this key verifies.
    pub alg: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// A key from its parts. The algorithm family must match the key's kind.
    pub fn new(kid: impl Into<String>, alg: Algorithm, key: DecodingKey) -> Result<Self, VerifyError> {
        if key.family() != alg.family() {
            return Err(VerifyError::Invalid("key does not match algorithm"));
        }
        Ok(Self { kid: kid.into(), alg, key })
    }

    /// An HS256 key. Refuses secrets shorter than [`MIN_SECRET_LEN`].
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, VerifyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(VerifyError::Invalid("HS256 secret shorter than 32 bytes"));
        }
        Self::new(kid, Algorithm::HS256, DecodingKey::from_secret(secret))
    }
}

/// Checks gatepass tokens against a set of trusted keys.
///
/// Order of checks: size and JWS Compact shape, canonical base64url, unique JSON members,
/// no header member but `alg`/`typ`/`kid`, `kid` → key, `alg` equal to the key's, `typ`,
/// signature, then `exp`/`nbf`/`iat`/`iss`/`aud` and claim types. Nothing from the token
/// is trusted before its signature is.
///
/// The key set can be replaced while the verifier is shared ([`Verifier::set_keys`]), which
/// is how key rotation reaches running services. Three ways to build one:
/// - a shared secret: [`Verifier::hs256`];
/// - public keys or a JWKS document: [`Verifier::new`], [`Verifier::from_jwks_json`];
/// - a remote JWKS URL, cached and refetched on an unknown `kid` (feature `remote`):
///   `Verifier::from_jwks_url`.
pub struct Verifier {
    keys: RwLock<Arc<[VerifyingKey]>>,
    config: VerifierConfig,
    #[cfg(feature = "remote")]
    remote: Option<Arc<crate::remote::RemoteJwks>>,
    #[cfg(feature = "revocation-feed")]
    feed: Option<crate::feed::RevocationFeed>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.keys()).field("config", &self.config).finish_non_exhaustive()
    }
}

impl Clone for Verifier {
    fn clone(&self) -> Self {
        Self {
            keys: RwLock::new(self.keys()),
            config: self.config.clone(),
            #[cfg(feature = "remote")]
            remote: self.remote.clone(),
            #[cfg(feature = "revocation-feed")]
            feed: self.feed.clone(),
        }
    }
}

impl Verifier {
    /// A verifier over an explicit key set.
    pub fn new(keys: Vec<VerifyingKey>, config: VerifierConfig) -> Self {
        Self {
            keys: RwLock::new(keys.into()),
            config,
            #[cfg(feature = "remote")]
            remote: None,
            #[cfg(feature = "revocation-feed")]
            feed: None,
        }
    }

    /// A verifier for a single HS256 secret, with `kid` derived as gatepass derives it.
    pub fn hs256(secret: &[u8], config: VerifierConfig) -> Result<Self, VerifyError> {
        Ok(Self::new(vec![VerifyingKey::hs256(hs256_kid(secret), secret)?], config))
    }

    /// A verifier over the public keys of a JWKS document (RFC 7517), e.g. the body of
    /// gatepass's `/.well-known/jwks.json`. See [`crate::keys_from_jwks`] for which keys
    /// are taken.
    pub fn from_jwks_json(jwks: &[u8], config: VerifierConfig) -> Result<Self, VerifyError> {
        Ok(Self::new(crate::jwks::keys_from_jwks(jwks)?, config))
    }

    #[cfg(feature = "remote")]
    pub(crate) fn with_remote(mut self, remote: Arc<crate::remote::RemoteJwks>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// Consults `feed` on every access token: tokens of revoked sessions or signed by
    /// revoked keys are refused, and every token is refused while the feed is stale
    /// (unless it fails open). See [`crate::feed`].
    #[cfg(feature = "revocation-feed")]
    pub fn with_revocation_feed(mut self, feed: crate::feed::RevocationFeed) -> Self {
        self.feed = Some(feed);
        self
    }

    /// The revocation feed consulted, if any.
    #[cfg(feature = "revocation-feed")]
    pub fn revocation_feed(&self) -> Option<&crate::feed::RevocationFeed> {
        self.feed.as_ref()
    }

    /// The claim requirements in force.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// A snapshot of the trusted keys.
    pub fn keys(&self) -> Arc<[VerifyingKey]> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the trusted keys; tokens being verified concurrently use either the old or
    /// the new set, never a mix.
    pub fn set_keys(&self, keys: Vec<VerifyingKey>) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys.into();
    }

    /// Verifies an access token like [`Self::verify_access`]; with a remote JWKS, first
    /// refreshes the key set when it is stale or when the token names an unknown `kid`
    /// (at most once per refresh interval). Without a remote source it is the same as
    /// the synchronous call.
    pub async fn verify_access_async(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        #[cfg(feature = "remote")]
        if let Some(remote) = &self.remote {
            // Only the configured URL is ever fetched; the token can at most trigger a
            // rate-limited refetch of it.
            let header = strict::parse(token, MAX_TOKEN_LEN)?;
            let known = header.kid.as_deref().is_some_and(|kid| self.keys().iter().any(|k| k.kid == kid));
            remote.refresh_if_needed(self, !known).await;
        }
        self.verify_access(token)
    }

    /// Verifies an access token (`typ: at+jwt`) and returns its claims. With a revocation
    /// feed attached, also refuses revoked sessions and keys (a hash lookup each).
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let claims = self.verify_typed::<AccessClaims>(token, ACCESS_TOKEN_TYP)?;
        #[cfg(feature = "revocation-feed")]
        if let Some(feed) = &self.feed {
            let header = strict::parse(token, MAX_TOKEN_LEN)?;
            feed.check(&claims.sid, header.kid.as_deref())?;
        }
        Ok(claims)
    }

    /// Verifies an access token that gatepass's OAuth provider issued to a client (RFC
    /// 9068: `typ: at+jwt`, the configured issuer, and `aud` equal to the configured
    /// audience, which is required here). With a revocation feed attached, also refuses
    /// tokens of revoked grants and keys.
    ///
    /// # Errors
    /// [`VerifyError::Invalid`] when no audience is configured (a resource server must say
    /// which resource it is, or it would accept tokens meant for any other), and for every
    /// failed check.
    pub fn verify_oauth_access(&self, token: &str) -> Result<OAuthAccessClaims, VerifyError> {
        if self.config.audience.as_deref().is_none_or(str::is_empty) {
            return Err(VerifyError::Invalid("no audience configured"));
        }
        let claims = self.verify_typed::<OAuthAccessClaims>(token, ACCESS_TOKEN_TYP)?;
        #[cfg(feature = "revocation-feed")]
        if let Some(feed) = &self.feed {
            let header = strict::parse(token, MAX_TOKEN_LEN)?;
            // A client_credentials token has no grant to revoke; its key still can be.
            feed.check(claims.sid.as_deref().unwrap_or(""), header.kid.as_deref())?;
        }
        Ok(claims)
    }

    /// [`Self::verify_oauth_access`], refreshing a remote JWKS first as
    /// [`Self::verify_access_async`] does.
    ///
    /// # Errors
    /// As [`Self::verify_oauth_access`].
    pub async fn verify_oauth_access_async(&self, token: &str) -> Result<OAuthAccessClaims, VerifyError> {
        #[cfg(feature = "remote")]
        if let Some(remote) = &self.remote {
            let header = strict::parse(token, MAX_TOKEN_LEN)?;
            let known = header.kid.as_deref().is_some_and(|kid| self.keys().iter().any(|k| k.kid == kid));
            remote.refresh_if_needed(self, !known).await;
        }
        self.verify_oauth_access(token)
    }

    /// Verifies a token of JOSE type `typ` whose claims deserialize into `C`.
    ///
    /// Distinct `typ` values keep token kinds apart: a token of one kind never verifies
    /// as another.
    pub fn verify_typed<C>(&self, token: &str, typ: &str) -> Result<C, VerifyError>
    where
        C: DeserializeOwned + TimedClaims,
    {
        let header = strict::parse(token, MAX_TOKEN_LEN)?;
        let kid = header.kid.as_deref().ok_or(VerifyError::Invalid("missing key id"))?;
        let keys = self.keys();
        let key = keys.iter().find(|k| k.kid == kid).ok_or(VerifyError::Invalid("unknown key id"))?;
        // Exact, case-sensitive match against the key's own algorithm: `none`, `HS384` on
        // an HS256 key or `RS256` on an EdDSA key all fail here.
        if header.alg.parse::<Algorithm>().ok() != Some(key.alg) {
            return Err(VerifyError::Invalid("algorithm does not match the key"));
        }
        if key.alg == Algorithm::ES256 && !es256_low_s(token) {
            // ECDSA signatures are malleable: (r, n - s) verifies too. gatepass issues only
            // the low-S form, so the twin of a genuine token is refused as a different token.
            return Err(VerifyError::Invalid("non-canonical ECDSA signature"));
        }
        if header.typ.as_deref() != Some(typ) {
            return Err(VerifyError::Invalid("wrong token type"));
        }

        let mut validation = Validation::new(key.alg);
        validation.leeway = self.config.leeway_secs.min(60);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub"]);
        validation.set_issuer(&[&self.config.issuer]);
        match &self.config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }

        let data = jsonwebtoken::decode::<C>(token, &key.key, &validation).map_err(map_jwt_error)?;
        let claims = data.claims;
        if self.config.audience.is_none() && claims.audience().is_some() {
            return Err(VerifyError::Invalid("unexpected audience"));
        }
        let now = now_secs();
        let leeway = self.config.leeway_secs.min(60) as i64;
        let (iat, exp) = (claims.issued_at(), claims.expires_at());
        if iat < 0 || iat > now + leeway {
            return Err(VerifyError::Invalid("issued in the future"));
        }
        if exp - iat > self.config.max_lifetime_secs {
            return Err(VerifyError::Invalid("lifetime too long"));
        }
        Ok(claims)
    }
}

/// The `kid` gatepass gives an HS256 secret: a short digest that identifies the secret
/// without revealing anything usable about it.
pub fn hs256_kid(secret: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(secret);
    let mut id = String::from("hs-");
    id.push_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..9]));
    id
}

/// Half the order of the P-256 group, big-endian: a canonical ES256 `s` is at most this.
pub const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d,
    0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether an ES256 token's signature is 64 bytes with `s` in the lower half (the form
/// gatepass issues). Other lengths are left to the signature check, which refuses them.
fn es256_low_s(token: &str) -> bool {
    use base64::Engine as _;
    let Some(sig) = token.rsplit('.').next() else { return false };
    let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else { return false };
    if sig.len() != 64 {
        return true;
    }
    sig[32..] <= P256_HALF_ORDER[..]
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> VerifyError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => VerifyError::Expired,
        K::ImmatureSignature => VerifyError::Invalid("not yet valid"),
        K::InvalidSignature => VerifyError::Invalid("bad signature"),
        K::InvalidIssuer => VerifyError::Invalid("wrong issuer"),
        K::InvalidAudience => VerifyError::Invalid("wrong audience"),
        K::MissingRequiredClaim(_) => VerifyError::Invalid("missing claim"),
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            VerifyError::Invalid("algorithm not allowed")
        }
        K::Json(_) | K::InvalidClaimFormat(_) => VerifyError::Invalid("claim has the wrong type"),
        _ => VerifyError::Invalid("token rejected"),
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
