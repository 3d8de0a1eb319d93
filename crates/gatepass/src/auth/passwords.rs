//! Password hashing on a bounded pool of blocking threads.
//!
//! Argon2id is deliberately slow; running it on the async workers would stall every other
//! request. Each hash runs in `spawn_blocking`, and a semaphore sized to the cores keeps a
//! login storm from queueing more hashes than there are cores to run them.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Semaphore;

use crate::domain::Password;

/// Argon2id cost settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for HashCost {
    /// OWASP's recommended minimum: m=19 MiB, t=2, p=1.
    fn default() -> Self {
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

/// Outcome of checking a password against a stored hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    /// Wrong password (or an unusable hash).
    No,
    /// Right password, hash is current.
    Yes,
    /// Right password; the stored hash is legacy or under-cost and should be replaced by
    /// this new one.
    YesRehash(String),
}

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the user does not exist so
    /// that "no such user" costs the same time as "wrong password".
    dummy_hash: Arc<str>,
    waiting: Arc<AtomicUsize>,
}

impl PasswordHasher {
    /// A hasher with `cost`, running at most `max_concurrent` hashes at once.
    pub fn new(cost: HashCost, max_concurrent: usize) -> anyhow::Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let dummy = hash_with(&params, &uuid::Uuid::now_v7().to_string())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            dummy_hash: dummy.into(),
            waiting: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// How many hash jobs are waiting for a free slot right now.
    pub fn queue_len(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes a new password (Argon2id PHC string).
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let params = self.params.clone();
        let pw = password.clone();
        self.run(move || hash_with(&params, pw.expose())).await?
    }

    /// Checks `password` against `stored` (Argon2 PHC or bcrypt), or against the dummy
    /// hash when `stored` is `None`, which always answers [`Verified::No`].
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> anyhow::Result<Verified> {
        let params = self.params.clone();
        let pw = password.clone();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        self.run(move || {
            let ok = verify_with(&params, pw.expose(), &hash);
            match (ok, real) {
                (true, true) if needs_rehash(&params, &hash) => {
                    Ok(hash_with(&params, pw.expose()).map(Verified::YesRehash).unwrap_or(Verified::Yes))
                }
                (true, true) => Ok(Verified::Yes),
                _ => Ok(Verified::No),
            }
        })
        .await?
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let _permit = permit?;
        Ok(tokio::task::spawn_blocking(f).await?)
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    argon2(params)
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

fn verify_with(params: &Params, password: &str, stored: &str) -> bool {
    if is_bcrypt(stored) {
        // bcrypt silently ignores bytes past 72; refuse rather than accept a truncated match.
        return password.len() <= 72 && bcrypt::verify(password, stored).unwrap_or(false);
    }
    if stored.starts_with("pbkdf2:") || stored.starts_with("scrypt:") {
        return verify_werkzeug(password, stored).unwrap_or(false);
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2(params).verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Werkzeug's `pbkdf2:sha256:N$salt$hex` and `scrypt:N:r:p$salt$hex` (Flask apps), kept
/// from imports until the user's next login replaces them with Argon2id.
fn verify_werkzeug(password: &str, stored: &str) -> Option<bool> {
    let mut parts = stored.splitn(3, '$');
    let (method, salt, hex) = (parts.next()?, parts.next()?, parts.next()?);
    let expected = decode_hex(hex)?;
    let mut params = method.split(':');
    let computed = match params.next()? {
        "pbkdf2" => {
            let digest = params.next().unwrap_or("sha256");
            let iterations: u32 = params.next().unwrap_or("600000").parse().ok()?;
            if digest != "sha256" || !(1..=10_000_000).contains(&iterations) {
                return None;
            }
            let mut out = vec![0u8; expected.len()];
            pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut out);
            out
        }
        "scrypt" => {
            let n: u64 = params.next().unwrap_or("32768").parse().ok()?;
            let r: u32 = params.next().unwrap_or("8").parse().ok()?;
            let p: u32 = params.next().unwrap_or("1").parse().ok()?;
            if !n.is_power_of_two() || n > 1 << 20 || r > 32 || p > 16 {
                return None;
            }
            let log_n = u8::try_from(n.trailing_zeros()).ok()?;
            let params = scrypt::Params::new(log_n, r, p, expected.len()).ok()?;
            let mut out = vec![0u8; expected.len()];
            scrypt::scrypt(password.as_bytes(), salt.as_bytes(), &params, &mut out).ok()?;
            out
        }
        _ => return None,
    };
    Some(bool::from(subtle::ConstantTimeEq::ct_eq(computed.as_slice(), expected.as_slice())))
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() || s.len() > 256 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Whether `stored` is a hash format gatepass can verify (used by imports).
pub fn is_known_hash(stored: &str) -> bool {
    is_bcrypt(stored)
        || stored.starts_with("$argon2")
        || stored.starts_with("pbkdf2:sha256:")
        || stored.starts_with("scrypt:")
}

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p))
}

/// Legacy algorithms and Argon2 hashes weaker than the configured cost get replaced.
fn needs_rehash(params: &Params, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return true };
    if parsed.algorithm.as_str() != "argon2id" {
        return true;
    }
    let get = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
    get("m") < params.m_cost() || get("t") < params.t_cost() || get("p") < params.p_cost()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(HashCost { memory_kib: 1024, iterations: 1, parallelism: 1 }, 2).unwrap()
    }

    fn pw(s: &str) -> Password {
        Password::parse_existing(s, "password").unwrap()
    }

    #[tokio::test]
    async fn hashes_and_verifies_argon2id() {
        let h = cheap();
        let stored = h.hash(&pw("correct horse")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(h.verify(&pw("correct horse"), Some(&stored)).await.unwrap(), Verified::Yes);
        assert_eq!(h.verify(&pw("correct horsE"), Some(&stored)).await.unwrap(), Verified::No);
        assert_eq!(h.verify(&pw("correct horse"), None).await.unwrap(), Verified::No);
        assert_eq!(h.verify(&pw("x"), Some("garbage")).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn bcrypt_verifies_and_asks_for_upgrade() {
        let h = cheap();
        let legacy = bcrypt::hash("mypassword", 4).unwrap();
        match h.verify(&pw("mypassword"), Some(&legacy)).await.unwrap() {
            Verified::YesRehash(new) => assert!(new.starts_with("$argon2id$")),
            other => panic!("expected rehash, got {other:?}"),
        }
        assert_eq!(h.verify(&pw("MyPassword"), Some(&legacy)).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn werkzeug_hashes_verify_and_ask_for_upgrade() {
        // Real output of werkzeug.security.generate_password_hash("flask-password", method=...).
        let pbkdf2 =
            "pbkdf2:sha256:1000$zcELMtBtnSQvnAe7$932c8f3b3ec0fc618d76ca8e766544e367687d08f1498ed0f097d6bcc8dbbf2b";
        let scrypt = "scrypt:1024:8:1$Zmyrsq3N1yWAEsaT$b238c1cf8e9e854ac860bae6cc68ddebb9c238fea265ba79928683f0264e9a31\
                      c8c0da304db2f6f4918e9f56887641e373f87f9a47793c00808ffd42dfa641a0";
        let h = cheap();
        for stored in [pbkdf2, scrypt] {
            assert!(is_known_hash(stored));
            assert!(matches!(h.verify(&pw("flask-password"), Some(stored)).await.unwrap(), Verified::YesRehash(_)));
            assert_eq!(h.verify(&pw("flask-passwore"), Some(stored)).await.unwrap(), Verified::No);
        }
        for broken in ["scrypt:3:8:1$s$00", "pbkdf2:sha256:0$s$00", "pbkdf2:md5:1$s$00", "scrypt:1024:8:1$s$zz"] {
            assert_eq!(h.verify(&pw("x"), Some(broken)).await.unwrap(), Verified::No, "{broken}");
        }
    }

    #[tokio::test]
    async fn weaker_argon2_is_upgraded() {
        let weak = cheap().hash(&pw("pass-word")).await.unwrap();
        let strong = PasswordHasher::new(HashCost { memory_kib: 2048, iterations: 2, parallelism: 1 }, 1).unwrap();
        assert!(matches!(strong.verify(&pw("pass-word"), Some(&weak)).await.unwrap(), Verified::YesRehash(_)));
    }
}
