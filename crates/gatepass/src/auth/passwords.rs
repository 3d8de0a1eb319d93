//! Password hashing on a fixed pool of hashing threads.
//!
//! Argon2id is deliberately slow; running it on the async workers would stall every other
//! request. Hashes run on one dedicated thread per core, fed through a bounded queue; an
//! async semaphore keeps the jobs in flight to the number of threads, so a login storm
//! waits (counted by [`PasswordHasher::queue_len`]) without holding any thread.
//!
//! Each thread keeps its Argon2 memory (19 MiB at the default cost) from one hash to the
//! next: allocating and page-faulting that much for every hash took over a third of a
//! login's CPU time. A thread wipes and frees it after [`IDLE_RELEASE`] without work, so a
//! login burst does not leave the process large.

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use zeroize::Zeroize;

use crate::domain::Password;

/// How long a hashing thread keeps its Argon2 memory without work before freeing it.
pub const IDLE_RELEASE: Duration = Duration::from_secs(3);

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

/// Hashes and verifies passwords off the async runtime, on its own threads.
///
/// Clones share the threads; the threads end when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// A real hash of a random password, verified against when the user does not exist so
    /// that "no such user" costs the same time as "wrong password".
    dummy_hash: Box<str>,
    /// One permit per hashing thread; a job holds it until its hash is done.
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    jobs: Sender<Job>,
}

type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

impl PasswordHasher {
    /// A hasher with `cost`, running at most `max_concurrent` hashes at once (one thread
    /// each).
    ///
    /// # Errors
    /// Invalid Argon2 parameters, or a thread that cannot be started.
    pub fn new(cost: HashCost, max_concurrent: usize) -> anyhow::Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let threads = max_concurrent.max(1);
        let dummy = hash_new(&params, &uuid::Uuid::now_v7().to_string(), &mut Scratch::new(params.block_count()))?;
        // Never full: a job is only queued with a permit, and there are as many permits as slots.
        let (jobs, queue) = crossbeam_channel::bounded(threads);
        for i in 0..threads {
            let queue = queue.clone();
            let blocks = params.block_count();
            std::thread::Builder::new()
                .name(format!("gatepass-hash-{i}"))
                .spawn(move || worker(&queue, blocks, IDLE_RELEASE))
                .map_err(|e| anyhow::anyhow!("cannot start a password hashing thread: {e}"))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                dummy_hash: dummy.into(),
                permits: Arc::new(Semaphore::new(threads)),
                waiting: AtomicUsize::new(0),
                jobs,
            }),
        })
    }

    /// How many hash jobs are waiting for a free hashing thread right now.
    pub fn queue_len(&self) -> usize {
        self.inner.waiting.load(Ordering::Relaxed)
    }

    /// Hashes a new password (Argon2id PHC string).
    ///
    /// # Errors
    /// No randomness for the salt, or the hashing threads are gone.
    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let params = self.inner.params.clone();
        let pw = password.clone();
        self.run(move |scratch| hash_new(&params, pw.expose(), scratch)).await?
    }

    /// Checks `password` against `stored` (Argon2 PHC, bcrypt or Werkzeug), or against the
    /// dummy hash when `stored` is `None`, which always answers [`Verified::No`].
    ///
    /// The normalised form is tried first. When it fails and the password was typed in
    /// another form ([`Password::legacy_form`]), that form is tried too, since hashes from
    /// before normalisation were made from it; a match answers [`Verified::YesRehash`] with
    /// a hash of the normalised form. The dummy check does the same second verification
    /// for such a password, so an unknown user costs what a wrong password costs.
    ///
    /// # Errors
    /// The hashing threads are gone.
    pub async fn verify(&self, password: &Password, stored: Option<&str>) -> anyhow::Result<Verified> {
        let params = self.inner.params.clone();
        let pw = password.clone();
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.inner.dummy_hash.to_string(), false),
        };
        self.run(move |scratch| {
            let ok = verify_with(pw.expose(), &hash, scratch);
            let legacy_ok = !ok && pw.legacy_form().is_some_and(|typed| verify_with(typed, &hash, scratch));
            match (ok, legacy_ok, real) {
                (true, _, true) if needs_rehash(&params, &hash) => {
                    hash_new(&params, pw.expose(), scratch).map(Verified::YesRehash).unwrap_or(Verified::Yes)
                }
                (true, _, true) => Verified::Yes,
                // Must be replaced: the stored hash is of a spelling the user can no longer
                // be asked for once passwords are normalised everywhere.
                (false, true, true) => {
                    hash_new(&params, pw.expose(), scratch).map(Verified::YesRehash).unwrap_or(Verified::Yes)
                }
                _ => Verified::No,
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce(&mut Scratch) -> T + Send + 'static) -> anyhow::Result<T> {
        let permit = {
            let _waiting = Waiting::count(&self.inner.waiting);
            self.inner.permits.clone().acquire_owned().await?
        };
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |scratch| {
            // The permit travels with the job: a request abandoned by its client still
            // occupies its thread until the hash ends, and must keep counting.
            let _permit = permit;
            let _ = done.send(f(scratch));
        });
        self.inner.jobs.try_send(job).map_err(|_| anyhow::anyhow!("the password hashing threads are gone"))?;
        result.await.map_err(|_| anyhow::anyhow!("password hashing failed"))
    }
}

/// Counts a caller waiting for a permit, also when its request is dropped while waiting.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn count(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A hashing thread: runs jobs with its own Argon2 memory, which it frees when idle.
fn worker(queue: &Receiver<Job>, blocks: usize, idle: Duration) {
    lower_priority();
    let mut scratch = Scratch::new(blocks);
    loop {
        match queue.recv_timeout(idle) {
            // A panicking job drops its result sender, which its caller sees as an error;
            // the thread itself stays in the pool.
            Ok(job) => drop(std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut scratch)))),
            Err(RecvTimeoutError::Timeout) => scratch.release(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Lowers the calling thread's scheduling priority (nice 10), so that when hashes keep every
/// core busy the request threads still get the CPU first: a login storm slows logins, not
/// every other request. Alone on the machine a hash runs as fast as before.
///
/// Not the idle class (`SCHED_IDLE`): it gets no CPU while request threads saturate the
/// cores (0.2 logins/s, each at the request timeout), and with a nice-10 thread to take
/// over stalled hashes it measured no better than this (BENCHMARKS.md, login storms).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only changes a scheduling attribute; on Linux, `who = 0` with
    // PRIO_PROCESS is the calling thread. Failure just leaves the default priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Argon2 working memory, kept between hashes and wiped before it is freed.
struct Scratch {
    blocks: Vec<Block>,
    /// Blocks at the configured cost: the size kept between hashes.
    size: usize,
}

impl Scratch {
    fn new(size: usize) -> Self {
        Self { blocks: Vec::new(), size }
    }

    /// Runs `f` with at least `count` blocks. A stored hash costlier than the configured
    /// one gets memory of its own for that one hash, so it cannot grow what is kept.
    fn with_blocks<T>(&mut self, count: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        if count > self.size {
            let mut once = vec![Block::new(); count];
            let out = f(&mut once);
            once.zeroize();
            return out;
        }
        if self.blocks.len() < self.size {
            self.blocks = vec![Block::new(); self.size];
        }
        f(&mut self.blocks)
    }

    /// Wipes and frees the memory (it holds state derived from the last password).
    fn release(&mut self) {
        if !self.blocks.is_empty() {
            self.blocks.zeroize();
            self.blocks = Vec::new();
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.release();
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// A new Argon2id PHC string for `password` with a random salt.
fn hash_new(params: &Params, password: &str, scratch: &mut Scratch) -> anyhow::Result<String> {
    let salt =
        argon2::password_hash::try_generate_salt().map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    hash_with_salt(params, password.as_bytes(), &salt, scratch)
}

/// The PHC string `argon2`'s own `hash_password_with_salt` would give, computed in
/// `scratch` instead of freshly allocated memory.
fn hash_with_salt(params: &Params, password: &[u8], salt: &[u8], scratch: &mut Scratch) -> anyhow::Result<String> {
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("hashing failed: {e}");
    let mut buf = [0u8; Output::MAX_LENGTH];
    let out = buf
        .get_mut(..params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN))
        .ok_or_else(|| anyhow::anyhow!("hashing failed: output length"))?;
    let argon = argon2(params);
    scratch
        .with_blocks(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password, salt, &mut *out, blocks)
        })
        .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| fail(&e))?,
        salt: Some(Salt::new(salt).map_err(|e| fail(&e))?),
        hash: Some(Output::new(out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

fn verify_with(password: &str, stored: &str, scratch: &mut Scratch) -> bool {
    if is_bcrypt(stored) {
        // bcrypt silently ignores bytes past 72; refuse rather than accept a truncated match.
        return password.len() <= 72 && bcrypt::verify(password, stored).unwrap_or(false);
    }
    if stored.starts_with("pbkdf2:") || stored.starts_with("scrypt:") {
        return verify_werkzeug(password, stored).unwrap_or(false);
    }
    verify_argon2(password.as_bytes(), stored, scratch).unwrap_or(false)
}

/// What `argon2`'s `PasswordVerifier` does (the hash's own algorithm, version and
/// parameters; constant-time comparison), computed in `scratch`.
fn verify_argon2(password: &[u8], stored: &str, scratch: &mut Scratch) -> Option<bool> {
    let parsed = PasswordHash::new(stored).ok()?;
    let (salt, expected) = (parsed.salt.as_ref()?, parsed.hash.as_ref()?);
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = parsed.version.map(Version::try_from).transpose().ok()?.unwrap_or_default();
    let params = Params::try_from(&parsed).ok()?;
    let mut buf = [0u8; Output::MAX_LENGTH];
    let out = buf.get_mut(..expected.len())?;
    let argon = Argon2::new(algorithm, version, params.clone());
    scratch
        .with_blocks(params.block_count(), |blocks| {
            argon.hash_password_into_with_memory(password, salt, &mut *out, blocks)
        })
        .ok()?;
    Some(bool::from(subtle::ConstantTimeEq::ct_eq(&*out, expected.as_bytes())))
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

/// Why a legacy hash's cost is out of bounds, for an import to refuse that row: absurd
/// costs would let one login tie up the hashing threads for seconds (or allocate gigabytes),
/// and a 1-iteration PBKDF2 is barely a hash. `None` when the cost is acceptable (or the
/// format is not one whose cost is read here).
pub fn legacy_cost_problem(stored: &str) -> Option<&'static str> {
    const MAX_MEMORY: u64 = 256 * 1024 * 1024;
    if is_bcrypt(stored) {
        let cost: u32 = stored.get(4..6)?.parse().ok()?;
        return (!(4..=16).contains(&cost)).then_some("bcrypt cost outside 4 to 16");
    }
    if let Some(rest) = stored.strip_prefix("pbkdf2:sha256:") {
        let iterations: u64 = rest.split('$').next()?.parse().ok()?;
        return (!(1_000..=10_000_000).contains(&iterations))
            .then_some("PBKDF2 iterations outside 1,000 to 10,000,000");
    }
    if let Some(rest) = stored.strip_prefix("scrypt:") {
        let mut params = rest.split('$').next()?.split(':').map(|v| v.parse::<u64>().ok());
        let (n, r) = (params.next()??, params.next().flatten().unwrap_or(8));
        return (n.saturating_mul(r).saturating_mul(128) > MAX_MEMORY).then_some("scrypt needs more than 256 MiB");
    }
    let parsed = PasswordHash::new(stored).ok()?;
    let get = |name: &str| u64::from(parsed.params.get_decimal(name).unwrap_or(0));
    let too_costly = get("m") * 1024 > MAX_MEMORY || get("t") > 10 || get("p") > 16;
    too_costly.then_some("Argon2 beyond 256 MiB, 10 passes or 16 lanes")
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
    async fn hash_of_the_typed_form_is_accepted_and_replaced_by_the_normalised_one() {
        let h = cheap();
        let typed = "Cafe\u{301} au lait";
        // Hashes stored before normalisation were made from the bytes as typed.
        let old = hash_new(&h.inner.params, typed, &mut Scratch::new(h.inner.params.block_count())).unwrap();
        let Verified::YesRehash(new) = h.verify(&pw(typed), Some(&old)).await.unwrap() else {
            panic!("the typed form verifies and asks for a rehash")
        };
        // The new hash is of the NFC form: both spellings now verify without a rehash.
        assert_eq!(h.verify(&pw("Café au lait"), Some(&new)).await.unwrap(), Verified::Yes);
        assert_eq!(h.verify(&pw(typed), Some(&new)).await.unwrap(), Verified::Yes);
        // The NFC form alone does not match the old hash: no normalisation on the way in.
        assert_eq!(h.verify(&pw("Café au lait"), Some(&old)).await.unwrap(), Verified::No);
        // Legacy bcrypt over the typed form too.
        let legacy = bcrypt::hash(typed, 4).unwrap();
        assert!(matches!(h.verify(&pw(typed), Some(&legacy)).await.unwrap(), Verified::YesRehash(_)));
        assert_eq!(h.verify(&pw(typed), None).await.unwrap(), Verified::No);
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

    #[test]
    fn pooled_hash_is_byte_identical_to_the_argon2_crate() {
        use argon2::PasswordHasher as _;
        let params = Params::new(1024, 2, 1, None).unwrap();
        let salt = b"0123456789abcdef";
        let mut scratch = Scratch::new(params.block_count());
        for password in ["correct horse", "", "ünïcödé pass phrase"] {
            let ours = hash_with_salt(&params, password.as_bytes(), salt, &mut scratch).unwrap();
            let theirs = argon2(&params).hash_password_with_salt(password.as_bytes(), salt).unwrap().to_string();
            assert_eq!(ours, theirs);
        }
    }

    #[tokio::test]
    async fn pooled_and_standard_verifiers_accept_each_other() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let h = cheap();
        // New path -> the argon2 crate's own verifier.
        let ours = h.hash(&pw("correct horse")).await.unwrap();
        let standard = argon2(&Params::new(1024, 1, 1, None).unwrap());
        assert!(standard.verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
        assert!(standard.verify_password(b"correct horsE", &PasswordHash::new(&ours).unwrap()).is_err());
        // Hashes made by the argon2 crate (the previous path, and other variants and
        // output lengths it can produce) -> the new path.
        let variants = [
            (Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap()),
            (Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, Some(64)).unwrap()),
            (Algorithm::Argon2i, Version::V0x13, Params::new(1024, 1, 1, None).unwrap()),
            (Algorithm::Argon2d, Version::V0x10, Params::new(1024, 1, 2, None).unwrap()),
        ];
        for (algorithm, version, params) in variants {
            let theirs = Argon2::new(algorithm, version, params).hash_password(b"pass-word-1").unwrap().to_string();
            assert!(
                matches!(
                    h.verify(&pw("pass-word-1"), Some(&theirs)).await.unwrap(),
                    Verified::Yes | Verified::YesRehash(_)
                ),
                "{theirs}"
            );
            assert_eq!(h.verify(&pw("pass-word-2"), Some(&theirs)).await.unwrap(), Verified::No, "{theirs}");
        }
    }

    #[tokio::test]
    async fn costlier_stored_hash_verifies_without_growing_kept_memory() {
        use argon2::PasswordHasher as _;
        let h = cheap();
        let big = argon2(&Params::new(4096, 1, 1, None).unwrap()).hash_password(b"pass-word-1").unwrap().to_string();
        assert_eq!(h.verify(&pw("pass-word-1"), Some(&big)).await.unwrap(), Verified::Yes);
        let mut scratch = Scratch::new(1024);
        assert_eq!(scratch.with_blocks(4096, |b| b.len()), 4096);
        assert!(scratch.blocks.is_empty());
        assert_eq!(scratch.with_blocks(1024, |b| b.len()), 1024);
        scratch.release();
        assert!(scratch.blocks.is_empty());
    }

    #[test]
    fn idle_thread_frees_its_memory() {
        let params = Params::new(1024, 1, 1, None).unwrap();
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(1);
        let thread = std::thread::spawn(move || worker(&queue, 1024, Duration::from_millis(50)));
        let kept = |jobs: &Sender<Job>| {
            let (tx, rx) = std::sync::mpsc::channel();
            let params = params.clone();
            jobs.send(Box::new(move |scratch: &mut Scratch| {
                let before = scratch.blocks.len();
                hash_new(&params, "pass-word-1", scratch).unwrap();
                tx.send((before, scratch.blocks.len())).unwrap();
            }))
            .unwrap();
            rx.recv().unwrap()
        };
        assert_eq!(kept(&jobs), (0, 1024));
        assert_eq!(kept(&jobs), (1024, 1024), "memory is reused while busy");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(kept(&jobs), (0, 1024), "memory was freed while idle");
        drop(jobs);
        thread.join().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hashing_threads_yield_the_cpu_to_request_threads() {
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(1);
        let thread = std::thread::spawn(move || worker(&queue, 16, Duration::from_secs(1)));
        let (tx, rx) = std::sync::mpsc::channel();
        jobs.send(Box::new(move |_: &mut Scratch| {
            // SAFETY: reads a scheduling attribute of the calling thread.
            tx.send(unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }).unwrap();
        }))
        .unwrap();
        assert!(rx.recv().unwrap() >= 10, "hashing runs at nice 10 or lower priority");
        drop(jobs);
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn concurrent_jobs_share_the_pool() {
        let h = cheap();
        let jobs = (0..8).map(|i| {
            let h = h.clone();
            tokio::spawn(async move { h.hash(&pw(&format!("password number {i}"))).await })
        });
        let hashes: Vec<String> = futures_join(jobs).await;
        for (i, stored) in hashes.iter().enumerate() {
            assert_eq!(h.verify(&pw(&format!("password number {i}")), Some(stored)).await.unwrap(), Verified::Yes);
        }
        assert_eq!(h.queue_len(), 0);
    }

    async fn futures_join(jobs: impl Iterator<Item = tokio::task::JoinHandle<anyhow::Result<String>>>) -> Vec<String> {
        let mut out = Vec::new();
        for job in jobs.collect::<Vec<_>>() {
            out.push(job.await.unwrap().unwrap());
        }
        out
    }

    #[test]
    fn absurd_legacy_costs_are_named() {
        let ok = [
            "pbkdf2:sha256:1000$zcELMtBtnSQvnAe7$00",
            "scrypt:32768:8:1$s$00",
            "$2b$12$KIXQJBQJjmbC6dS8ZkFuVOiNC3dL2iRw4u2vnlGNbZcXlCPjOQ2Bu",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ];
        for stored in ok {
            assert_eq!(legacy_cost_problem(stored), None, "{stored}");
        }
        let absurd = [
            "pbkdf2:sha256:1$s$00",
            "scrypt:1048576:32:1$s$00",
            "$2b$31$KIXQJBQJjmbC6dS8ZkFuVOiNC3dL2iRw4u2vnlGNbZcXlCPjOQ2Bu",
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ];
        for stored in absurd {
            assert!(legacy_cost_problem(stored).is_some(), "{stored}");
        }
    }
}
