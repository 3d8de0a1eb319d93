//! Signing keys: the algorithms gatepass signs with, key generation (aws-lc-rs, in
//! process), encryption of private keys at rest, and the in-memory key ring that decides
//! which key signs now and which keys are published.
//!
//! No storage I/O here: the service loads [`StoredKey`]s and builds a [`KeyRing`] from
//! them. Private keys and the master key never leave this module in clear, and nothing
//! here logs key material.

use aws_lc_rs::aead::{AES_256_GCM, Aad, Nonce, RandomizedNonceKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use aws_lc_rs::{hkdf, hmac, rand, rsa};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatepass_verify::{Algorithm, VerifyingKey};
use std::collections::HashMap;
use std::sync::Arc;
use zeroize::Zeroizing;

use crate::domain::StoredKey;

/// The algorithms gatepass signs with (`GATEPASS_JWT_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256 with the shared secret (the default; every verifier can also mint).
    #[value(name = "HS256")]
    Hs256,
    /// Ed25519 (preferred).
    #[value(name = "EdDSA")]
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    #[value(name = "ES256")]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 3072-bit keys: for interoperability only (ASVS 5
    /// lists PKCS#1 v1.5 signatures as disallowed).
    #[value(name = "RS256")]
    Rs256,
}

impl SigningAlgorithm {
    /// The JOSE algorithm.
    pub fn jose(self) -> Algorithm {
        match self {
            SigningAlgorithm::Hs256 => Algorithm::HS256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::Rs256 => Algorithm::RS256,
        }
    }

    /// The JOSE name (`EdDSA`, …).
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Hs256 => "HS256",
            SigningAlgorithm::EdDsa => "EdDSA",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
        }
    }

    /// Parses a JOSE name (exact case).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Hs256, Self::EdDsa, Self::Es256, Self::Rs256].into_iter().find(|a| a.name() == name)
    }

    /// Whether keys are generated and published (everything but HS256).
    pub fn is_asymmetric(self) -> bool {
        self != SigningAlgorithm::Hs256
    }
}

/// The key that encrypts private signing keys at rest (AES-256-GCM), derived with HKDF
/// from the master secret, and the key that digests device user codes.
pub struct MasterKey {
    key: RandomizedNonceKey,
    user_codes: hmac::Key,
}

impl MasterKey {
    /// Derives the encryption key from the master secret (`GATEPASS_MASTER_KEY`).
    pub fn derive(secret: &[u8]) -> anyhow::Result<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"gatepass signing-key encryption v1").extract(secret);
        let mut bytes = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"aes-256-gcm"], &AES_256_GCM)
            .and_then(|okm| okm.fill(bytes.as_mut()))
            .map_err(|_| anyhow::anyhow!("key derivation failed"))?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes.as_ref())
            .map_err(|_| anyhow::anyhow!("key derivation failed"))?;
        // Its own salt keeps it independent of the encryption key.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"gatepass device user codes v1").extract(secret);
        let mut mac = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"hmac-sha256"], Len(32))
            .and_then(|okm| okm.fill(mac.as_mut()))
            .map_err(|_| anyhow::anyhow!("key derivation failed"))?;
        Ok(Self { key, user_codes: hmac::Key::new(hmac::HMAC_SHA256, mac.as_ref()) })
    }

    /// What storage keeps of a device flow's user code: its hex HMAC-SHA256 under a key
    /// derived from the master secret. A user code has about 35 bits of entropy, so a
    /// plain digest in a leaked database would give every pending code back after a few
    /// seconds of hashing; without the master secret, this one gives nothing.
    pub fn user_code_digest(&self, code: &str) -> String {
        hmac::sign(&self.user_codes, code.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Encrypts `plaintext` bound to `kid`/`alg` (as associated data, so a ciphertext
    /// cannot be moved to another key's row). Output: base64(nonce ‖ ciphertext ‖ tag).
    fn seal(&self, kid: &str, alg: &str, plaintext: &[u8]) -> anyhow::Result<String> {
        let mut buf = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(aad(kid, alg)), &mut buf)
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&buf);
        Ok(STANDARD.encode(out))
    }

    /// Seals the TOTP secret of `user_id`, bound to the account (a sealed secret copied
    /// to another account's row does not open there).
    pub fn seal_totp(&self, user_id: &str, secret: &[u8]) -> anyhow::Result<String> {
        self.seal(&format!("totp\0{user_id}"), "totp", secret)
    }

    /// Opens what [`Self::seal_totp`] sealed for the same account.
    pub fn open_totp(&self, user_id: &str, sealed: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        self.open(&format!("totp\0{user_id}"), "totp", sealed)
    }

    /// Decrypts what [`Self::seal`] produced for the same `kid`/`alg`.
    fn open(&self, kid: &str, alg: &str, sealed: &str) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        const HOW: &str = "cannot decrypt a signing key: wrong GATEPASS_MASTER_KEY or corrupted key row";
        let bytes = STANDARD.decode(sealed).map_err(|_| anyhow::anyhow!(HOW))?;
        if bytes.len() < 12 + 16 {
            anyhow::bail!(HOW);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow::anyhow!(HOW))?;
        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let plain =
            self.key.open_in_place(nonce, Aad::from(aad(kid, alg)), buf.as_mut()).map_err(|_| anyhow::anyhow!(HOW))?;
        Ok(Zeroizing::new(plain.to_vec()))
    }
}

/// An HKDF output length.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Derives the audit chain's HMAC-SHA256 key from the master secret
/// (`GATEPASS_MASTER_KEY`). Its own HKDF salt keeps it independent of the key that encrypts
/// private signing keys; the master key, unlike the HS256 secret, is never rotated, so the
/// chain stays verifiable across a change of `GATEPASS_JWT_SECRET`.
pub fn audit_chain_key(secret: &[u8]) -> anyhow::Result<Zeroizing<[u8; 32]>> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"gatepass audit chain v1").extract(secret);
    let mut bytes = Zeroizing::new([0u8; 32]);
    prk.expand(&[b"hmac-sha256"], Len(32))
        .and_then(|okm| okm.fill(bytes.as_mut()))
        .map_err(|_| anyhow::anyhow!("key derivation failed"))?;
    Ok(bytes)
}

fn aad(kid: &str, alg: &str) -> Vec<u8> {
    format!("gatepass-key\0{kid}\0{alg}").into_bytes()
}

/// Generates a new key pair for `alg` and returns it sealed under `master`.
pub fn generate(alg: SigningAlgorithm, master: &MasterKey, now: i64, activates_at: i64) -> anyhow::Result<StoredKey> {
    let rng = rand::SystemRandom::new();
    let (pkcs8, mut jwk): (Zeroizing<Vec<u8>>, serde_json::Value) = match alg {
        SigningAlgorithm::Hs256 => anyhow::bail!("HS256 uses the shared secret; there is no key pair to generate"),
        SigningAlgorithm::EdDsa => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("key generation failed"))?;
            let pair =
                Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| anyhow::anyhow!("key generation failed"))?;
            let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            (Zeroizing::new(doc.as_ref().to_vec()), serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}))
        }
        SigningAlgorithm::Es256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| anyhow::anyhow!("key generation failed"))?;
            let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|_| anyhow::anyhow!("key generation failed"))?;
            // Uncompressed SEC1 point: 0x04 ‖ x ‖ y.
            let point = pair.public_key().as_ref();
            if point.len() != 65 || point[0] != 4 {
                anyhow::bail!("unexpected P-256 public key encoding");
            }
            let (x, y) = point[1..].split_at(32);
            (
                Zeroizing::new(doc.as_ref().to_vec()),
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
            )
        }
        SigningAlgorithm::Rs256 => {
            let pair =
                rsa::KeyPair::generate(rsa::KeySize::Rsa3072).map_err(|_| anyhow::anyhow!("key generation failed"))?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
                pair.as_der().map_err(|_| anyhow::anyhow!("key serialization failed"))?;
            let parts = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            (
                Zeroizing::new(der.as_ref().to_vec()),
                serde_json::json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&parts.n), "e": URL_SAFE_NO_PAD.encode(&parts.e)}),
            )
        }
    };
    let mut id = [0u8; 12];
    rand::fill(&mut id).map_err(|_| anyhow::anyhow!("random generator failed"))?;
    let kid = format!("{}-{}", alg.name().to_ascii_lowercase(), URL_SAFE_NO_PAD.encode(id));
    jwk["kid"] = kid.clone().into();
    jwk["alg"] = alg.name().into();
    jwk["use"] = "sig".into();
    let private_key = master.seal(&kid, alg.name(), &pkcs8)?;
    Ok(StoredKey {
        kid,
        alg: alg.name().to_owned(),
        public_jwk: jwk.to_string(),
        private_key,
        created_at: now,
        activates_at,
        revoked_at: None,
    })
}

/// A private key ready to sign, typed by its algorithm.
enum PrivateKey {
    Hmac(Box<hmac::Key>),
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(rsa::KeyPair),
}

impl PrivateKey {
    fn load(alg: SigningAlgorithm, pkcs8: &[u8]) -> anyhow::Result<Self> {
        let bad = |_| anyhow::anyhow!("stored {} key is unreadable", alg.name());
        Ok(match alg {
            SigningAlgorithm::Hs256 => anyhow::bail!("HS256 keys are not stored"),
            SigningAlgorithm::EdDsa => PrivateKey::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(bad)?),
            SigningAlgorithm::Es256 => PrivateKey::Ec(
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(bad)?,
            ),
            SigningAlgorithm::Rs256 => PrivateKey::Rsa(rsa::KeyPair::from_pkcs8(pkcs8).map_err(bad)?),
        })
    }

    fn sign(&self, message: &[u8]) -> anyhow::Result<Vec<u8>> {
        let rng = rand::SystemRandom::new();
        let failed = |_| anyhow::anyhow!("signing failed");
        Ok(match self {
            PrivateKey::Hmac(key) => hmac::sign(key, message).as_ref().to_vec(),
            PrivateKey::Ed(pair) => pair.sign(message).as_ref().to_vec(),
            PrivateKey::Ec(pair) => {
                let mut sig = pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec();
                normalize_low_s(&mut sig);
                sig
            }
            PrivateKey::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig).map_err(failed)?;
                sig
            }
        })
    }
}

/// The order of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Rewrites a fixed-size P-256 signature `r ‖ s` to its low-S twin `r ‖ n - s` when
/// `s > n/2`; verifiers refuse the high-S form (signature malleability).
fn normalize_low_s(sig: &mut [u8]) {
    if sig.len() != 64 || sig[32..] <= gatepass_verify::P256_HALF_ORDER[..] {
        return;
    }
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_ORDER[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        sig[32 + i] = d as u8;
    }
}

/// A key that can sign, with its id and algorithm.
pub struct SigningKey {
    kid: String,
    alg: SigningAlgorithm,
    private: PrivateKey,
}

impl SigningKey {
    /// The HS256 signing key for `secret`, with its derived `kid`.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            kid: gatepass_verify::hs256_kid(secret),
            alg: SigningAlgorithm::Hs256,
            private: PrivateKey::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
        }
    }

    /// Key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Algorithm.
    pub fn alg(&self) -> SigningAlgorithm {
        self.alg
    }

    /// Signs a JWS Compact token with header `{alg, typ, kid}` over `claims`.
    pub fn sign_jwt<C: serde::Serialize>(&self, typ: &str, claims: &C) -> anyhow::Result<String> {
        let header = serde_json::json!({ "alg": self.alg.name(), "typ": typ, "kid": self.kid });
        let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let signature = self.private.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }
}

/// A stored key opened for signing outside the ring (the ID-token key): the signer, the
/// verifier of what it signs and its public JWK.
#[derive(Clone)]
pub struct OpenedKey {
    /// Signs.
    pub signer: Arc<SigningKey>,
    /// Verifies what it signed.
    pub verifying: VerifyingKey,
    /// The public JWK as published.
    pub jwk: serde_json::Value,
}

/// Opens a stored asymmetric key with `master`.
///
/// # Errors
/// HS256 or an unknown algorithm; a key that does not decrypt under `master`, or whose
/// public half does not match its row.
pub fn open_stored(stored: &StoredKey, master: &MasterKey) -> anyhow::Result<OpenedKey> {
    let alg = SigningAlgorithm::from_name(&stored.alg)
        .filter(|a| a.is_asymmetric())
        .ok_or_else(|| anyhow::anyhow!("key {}: not an asymmetric algorithm", stored.kid))?;
    let jwk: serde_json::Value = serde_json::from_str(&stored.public_jwk)?;
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())?;
    let verifying = gatepass_verify::key_from_jwk(&parsed).map_err(|e| anyhow::anyhow!("key {}: {e}", stored.kid))?;
    if verifying.alg != alg.jose() || verifying.kid != stored.kid {
        anyhow::bail!("key {}: stored public key does not match its row", stored.kid);
    }
    let pkcs8 = master.open(&stored.kid, &stored.alg, &stored.private_key)?;
    let signer = Arc::new(SigningKey { kid: stored.kid.clone(), alg, private: PrivateKey::load(alg, &pkcs8)? });
    Ok(OpenedKey { signer, verifying, jwk })
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing (caches fetch it first).
    Pending,
    /// Signs new tokens.
    Active,
    /// Replaced; published until every token it signed has expired.
    Retired,
    /// No unexpired token can carry it; no longer published.
    Expired,
    /// Revoked in an emergency: neither signs nor verifies nor is published, whatever its
    /// dates say (until the tokens it could have signed have expired; then `Expired`).
    Revoked,
}

impl KeyState {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Expired => "expired",
            KeyState::Revoked => "revoked",
        }
    }
}

/// A stored key's place in the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// Key id.
    pub kid: String,
    /// Algorithm name.
    pub alg: String,
    /// Generated at.
    pub created_at: i64,
    /// Signs from.
    pub activates_at: i64,
    /// Stops signing at (when the next key activates), if a successor exists.
    pub retires_at: Option<i64>,
    /// Unpublished from, if retiring (or revoked).
    pub unpublish_at: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// State at the time asked.
    pub state: KeyState,
}

/// Orders keys and computes each one's state at `now`. A key retires when the next key
/// (by activation time, then `kid`; see `order`) activates; it stays published for `retention_secs`
/// more, the longest lifetime any verifier accepts plus leeway.
///
/// A revoked key is `Revoked` whatever its dates (and `Expired`, to be deleted, once
/// `retention_secs` have passed since). One revoked while it signed or after keeps its place
/// in the order, so a key it retired stays retired; one revoked while pending never signed
/// and retires nothing.
pub fn timeline(keys: &[StoredKey], now: i64, retention_secs: i64) -> Vec<KeyStatus> {
    let revoked_state = |at: i64| {
        if at.saturating_add(retention_secs) > now { KeyState::Revoked } else { KeyState::Expired }
    };
    let (mut sorted, never_signed): (Vec<&StoredKey>, Vec<&StoredKey>) =
        keys.iter().partition(|k| k.revoked_at.is_none_or(|r| r >= k.activates_at));
    sorted
        .sort_by(|a, b| order(a.activates_at, a.revoked_at, &a.kid).cmp(&order(b.activates_at, b.revoked_at, &b.kid)));
    let mut out = Vec::with_capacity(keys.len());
    for (i, key) in sorted.iter().enumerate() {
        let next = sorted.get(i + 1).map(|next| next.activates_at);
        let retires_at = match (next, key.revoked_at) {
            (Some(n), Some(r)) => Some(n.min(r)),
            (n, r) => n.or(r),
        };
        let unpublish_at = key.revoked_at.or(retires_at.map(|r| r.saturating_add(retention_secs)));
        let state = if let Some(at) = key.revoked_at {
            revoked_state(at)
        } else if key.activates_at > now {
            KeyState::Pending
        } else if next.is_none_or(|r| r > now) {
            KeyState::Active
        } else if unpublish_at.is_some_and(|u| u > now) {
            KeyState::Retired
        } else {
            KeyState::Expired
        };
        out.push(status(key, retires_at, unpublish_at, state));
    }
    for key in never_signed {
        let at = key.revoked_at.unwrap_or(key.activates_at);
        out.push(status(key, None, Some(at), revoked_state(at)));
    }
    out.sort_by(|a, b| order(a.activates_at, a.revoked_at, &a.kid).cmp(&order(b.activates_at, b.revoked_at, &b.kid)));
    out
}

/// When a key meant to activate at `wanted` activates among keys activating at
/// `existing`: the first second from `wanted` on that no other key activates in.
/// Activation times are whole seconds and keys of the same second are ordered by `kid`, so
/// a rotation without delay in the second of the key it replaces could otherwise come
/// first and be born retired.
pub fn untied_activation(existing: impl Iterator<Item = i64>, wanted: i64) -> i64 {
    let taken: std::collections::HashSet<i64> = existing.collect();
    (wanted..).find(|at| !taken.contains(at)).unwrap_or(wanted)
}

/// The order of the timeline: by activation time; at the same instant a revoked key comes
/// first (the replacement stored with a revocation activates in the very second of it, and
/// must follow the key it replaces), then by `kid`.
fn order(activates_at: i64, revoked_at: Option<i64>, kid: &str) -> (i64, bool, &str) {
    (activates_at, revoked_at.is_none(), kid)
}

fn status(key: &StoredKey, retires_at: Option<i64>, unpublish_at: Option<i64>, state: KeyState) -> KeyStatus {
    KeyStatus {
        kid: key.kid.clone(),
        alg: key.alg.clone(),
        created_at: key.created_at,
        activates_at: key.activates_at,
        retires_at,
        unpublish_at,
        revoked_at: key.revoked_at,
        state,
    }
}

struct LoadedKey {
    kid: String,
    activates_at: i64,
    jwk: serde_json::Value,
    verifying: VerifyingKey,
    signer: Option<Arc<SigningKey>>,
}

/// The keys in force: which one signs at a given time, which are published, which verify.
pub struct KeyRing {
    hs256: Option<Arc<SigningKey>>,
    hs256_verifying: Option<VerifyingKey>,
    keys: Vec<LoadedKey>,
}

impl KeyRing {
    /// A ring with only the HS256 secret (also the start of an HS256-mode ring).
    pub fn hs256(secret: &[u8]) -> anyhow::Result<Self> {
        let signer = SigningKey::hs256(secret);
        let verifying = VerifyingKey::hs256(signer.kid.clone(), secret).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self { hs256: Some(Arc::new(signer)), hs256_verifying: Some(verifying), keys: Vec::new() })
    }

    /// Builds a ring from stored keys at `now`. With `hs256` set, that secret signs and the
    /// stored keys are only published and verified; otherwise the newest activated stored
    /// key signs. Private keys are decrypted only for keys that may sign (pending and
    /// active), reusing already-loaded ones from `previous`.
    pub fn build(
        hs256: Option<&[u8]>,
        stored: &[StoredKey],
        master: Option<&MasterKey>,
        now: i64,
        retention_secs: i64,
        previous: Option<&KeyRing>,
    ) -> anyhow::Result<Self> {
        let mut ring = match hs256 {
            Some(secret) => Self::hs256(secret)?,
            None => Self { hs256: None, hs256_verifying: None, keys: Vec::new() },
        };
        let by_kid: HashMap<&str, &StoredKey> = stored.iter().map(|k| (k.kid.as_str(), k)).collect();
        let reuse: HashMap<&str, &Arc<SigningKey>> = previous
            .map(|p| p.keys.iter().filter_map(|k| k.signer.as_ref().map(|s| (k.kid.as_str(), s))).collect())
            .unwrap_or_default();
        for status in timeline(stored, now, retention_secs) {
            // Neither an expired nor a revoked key is published or trusted.
            if matches!(status.state, KeyState::Expired | KeyState::Revoked) {
                continue;
            }
            let Some(key) = by_kid.get(status.kid.as_str()) else { continue };
            let Some(alg) = SigningAlgorithm::from_name(&key.alg).filter(|a| a.is_asymmetric()) else { continue };
            let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk)?;
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())?;
            let verifying =
                gatepass_verify::key_from_jwk(&parsed).map_err(|e| anyhow::anyhow!("key {}: {e}", key.kid))?;
            if verifying.alg != alg.jose() || verifying.kid != key.kid {
                anyhow::bail!("key {}: stored public key does not match its row", key.kid);
            }
            let signer = match (status.state, hs256) {
                (KeyState::Pending | KeyState::Active, None) => Some(match reuse.get(key.kid.as_str()) {
                    Some(s) => Arc::clone(s),
                    None => {
                        let master =
                            master.ok_or_else(|| anyhow::anyhow!("a master key is needed to load signing keys"))?;
                        let pkcs8 = master.open(&key.kid, &key.alg, &key.private_key)?;
                        Arc::new(SigningKey { kid: key.kid.clone(), alg, private: PrivateKey::load(alg, &pkcs8)? })
                    }
                }),
                _ => None,
            };
            ring.keys.push(LoadedKey { kid: key.kid.clone(), activates_at: key.activates_at, jwk, verifying, signer });
        }
        Ok(ring)
    }

    /// The key that signs at `now`: the HS256 secret in HS256 mode, else the most recently
    /// activated key.
    pub fn signer(&self, now: i64) -> Option<Arc<SigningKey>> {
        if let Some(hs) = &self.hs256 {
            return Some(Arc::clone(hs));
        }
        self.keys.iter().filter(|k| k.activates_at <= now).filter_map(|k| k.signer.clone()).next_back()
    }

    /// Every key a verifier must accept now (the HS256 secret, if in use, included).
    pub fn verifying_keys(&self) -> Vec<VerifyingKey> {
        self.hs256_verifying.iter().cloned().chain(self.keys.iter().map(|k| k.verifying.clone())).collect()
    }

    /// The public JWKS document: public members only, one `alg` per key, never an HMAC
    /// secret.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
    }

    /// Whether the ring has a key to sign with at `now`.
    pub fn can_sign(&self, now: i64) -> bool {
        self.signer(now).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_never_activates_in_the_second_of_another() {
        assert_eq!(untied_activation([].into_iter(), 100), 100);
        assert_eq!(untied_activation([90, 99].into_iter(), 100), 100);
        assert_eq!(untied_activation([100].into_iter(), 100), 101);
        assert_eq!(untied_activation([100, 101, 103].into_iter(), 100), 102);
    }

    #[test]
    fn user_code_digests_are_keyed_by_the_master_secret() {
        let master = MasterKey::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let again = MasterKey::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let other = MasterKey::derive(b"fedcba9876543210fedcba9876543210").unwrap();
        let d = master.user_code_digest("BCDFGHJK");
        assert_eq!(d.len(), 64);
        assert_eq!(d, again.user_code_digest("BCDFGHJK"), "every instance finds the same row");
        assert_ne!(d, other.user_code_digest("BCDFGHJK"), "no digest without the master secret");
        assert_ne!(d, master.user_code_digest("BCDFGHJL"));
        assert_ne!(d, crate::auth::oauth::digest("BCDFGHJK"), "not the plain SHA-256");
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_master_key_and_row() {
        let master = MasterKey::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let other = MasterKey::derive(b"fedcba9876543210fedcba9876543210").unwrap();
        let key = generate(SigningAlgorithm::EdDsa, &master, 0, 0).unwrap();
        assert!(master.open(&key.kid, &key.alg, &key.private_key).is_ok());
        assert!(other.open(&key.kid, &key.alg, &key.private_key).is_err());
        assert!(master.open("another-kid", &key.alg, &key.private_key).is_err());
        assert!(!key.public_jwk.contains("\"d\""));
    }

    #[test]
    fn es256_signatures_are_low_s_and_verify() {
        let master = MasterKey::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let key = generate(SigningAlgorithm::Es256, &master, 0, 0).unwrap();
        let pkcs8 = master.open(&key.kid, &key.alg, &key.private_key).unwrap();
        let private = PrivateKey::load(SigningAlgorithm::Es256, &pkcs8).unwrap();
        let pair = match &private {
            PrivateKey::Ec(pair) => pair,
            _ => panic!("EC key"),
        };
        let public = signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref());
        // Enough signatures that about half were high-S before normalisation.
        for i in 0..64u8 {
            let msg = [i; 8];
            let sig = private.sign(&msg).unwrap();
            assert!(sig[32..] <= gatepass_verify::P256_HALF_ORDER[..]);
            public.verify(&msg, &sig).expect("normalised signature verifies");
        }
    }

    #[test]
    fn timeline_retires_and_expires() {
        let master = MasterKey::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let a = generate(SigningAlgorithm::Es256, &master, 0, 0).unwrap();
        let b = generate(SigningAlgorithm::Es256, &master, 100, 200).unwrap();
        let states =
            |now| timeline(&[a.clone(), b.clone()], now, 1000).into_iter().map(|s| s.state).collect::<Vec<_>>();
        assert_eq!(states(150), [KeyState::Active, KeyState::Pending]);
        assert_eq!(states(250), [KeyState::Retired, KeyState::Active]);
        assert_eq!(states(1200), [KeyState::Expired, KeyState::Active]);
        let ring = KeyRing::build(None, &[a.clone(), b.clone()], Some(&master), 150, 1000, None).unwrap();
        assert_eq!(ring.signer(150).unwrap().kid(), a.kid);
        assert_eq!(ring.signer(250).unwrap().kid(), b.kid);
        assert_eq!(ring.verifying_keys().len(), 2);
    }

    #[test]
    fn a_revoked_key_is_neither_published_nor_trusted_nor_signing() {
        let master = MasterKey::derive(b"0123456789abcdef0123456789abcdef").unwrap();
        let a = generate(SigningAlgorithm::EdDsa, &master, 0, 0).unwrap();
        let b = generate(SigningAlgorithm::EdDsa, &master, 100, 200).unwrap();
        let states =
            |keys: &[StoredKey], now| timeline(keys, now, 1000).into_iter().map(|s| s.state).collect::<Vec<_>>();

        // b revoked while it signed, replaced at 300 by c: a stays retired, c signs.
        let b_revoked = StoredKey { revoked_at: Some(300), ..b.clone() };
        let c = generate(SigningAlgorithm::EdDsa, &master, 300, 300).unwrap();
        let keys = [a.clone(), b_revoked.clone(), c.clone()];
        assert_eq!(states(&keys, 300), [KeyState::Retired, KeyState::Revoked, KeyState::Active]);
        let ring = KeyRing::build(None, &keys, Some(&master), 300, 1000, None).unwrap();
        assert_eq!(ring.signer(300).unwrap().kid(), c.kid);
        let trusted: Vec<_> = ring.verifying_keys().into_iter().map(|k| k.kid).collect();
        assert_eq!(trusted, [a.kid.clone(), c.kid.clone()]);
        assert!(!ring.jwks().to_string().contains(&b.kid));
        // Listed as revoked until its tokens could all have expired, then swept.
        assert_eq!(states(&keys, 1299)[1], KeyState::Revoked);
        assert_eq!(states(&keys, 1300)[1], KeyState::Expired);

        // Revoked and replaced in the very second it activated: the replacement signs,
        // whatever the kids' order.
        for replacement_kid in ["aaaa", "zzzz"] {
            let revoked = StoredKey { activates_at: 400, revoked_at: Some(400), ..a.clone() };
            let replacement = StoredKey { kid: replacement_kid.into(), activates_at: 400, ..c.clone() };
            let keys = [revoked, replacement];
            assert_eq!(states(&keys, 400), [KeyState::Revoked, KeyState::Active], "{replacement_kid}");
        }

        // A key revoked while pending never signed: the key before it goes on signing.
        let pending_revoked = StoredKey { revoked_at: Some(150), ..b };
        let keys = [a.clone(), pending_revoked];
        assert_eq!(states(&keys, 250), [KeyState::Active, KeyState::Revoked]);
        let ring = KeyRing::build(None, &keys, Some(&master), 250, 1000, None).unwrap();
        assert_eq!(ring.signer(250).unwrap().kid(), a.kid);
        assert_eq!(ring.verifying_keys().len(), 1);
    }
}
