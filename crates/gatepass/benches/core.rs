//! Micro-benchmarks of the hot paths: issuing and verifying access tokens with each signing
//! algorithm, the revocation check, and password hashing at the default (OWASP) Argon2id
//! cost.
//!
//! Run: `cargo bench -p gatepass --bench core`

use criterion::{Criterion, criterion_group, criterion_main};
use gatepass::auth::keys::{KeyRing, MasterKey, SigningAlgorithm};
use gatepass::auth::passwords::HashCost;
use gatepass::auth::{PasswordHasher, RevocationSet, TokenIssuer};
use gatepass::domain::{Password, Revocation, Roles, User, UserId, Username};
use gatepass_verify::VerifierConfig;
use std::hint::black_box;

const SECRET: &[u8] = b"9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

fn user() -> User {
    User {
        id: UserId::new(),
        username: Username::parse("benchuser").expect("valid"),
        email: None,
        email_verified: false,
        password_hash: String::new(),
        roles: Roles::default_user(),
        disabled: false,
        created_at: 0,
    }
}

/// An issuer and its verifier for `alg`: the shared secret for HS256, otherwise a freshly
/// generated key pair, active now, as the server would load it.
fn issuer(alg: SigningAlgorithm, now: i64) -> (TokenIssuer, gatepass_verify::Verifier) {
    let config = VerifierConfig::new("gatepass");
    if !alg.is_asymmetric() {
        return TokenIssuer::hs256(SECRET, config).expect("issuer");
    }
    let master = MasterKey::derive(SECRET).expect("master key");
    let key = gatepass::auth::keys::generate(alg, &master, now - 10, now - 10).expect("key pair");
    let ring = KeyRing::build(None, &[key], Some(&master), now, 86_400, None).expect("key ring");
    TokenIssuer::with_ring(ring, config)
}

fn tokens(c: &mut Criterion) {
    let user = user();
    let now = gatepass::domain::clock::now();
    let algorithms =
        [SigningAlgorithm::Hs256, SigningAlgorithm::EdDsa, SigningAlgorithm::Es256, SigningAlgorithm::Rs256];
    for alg in algorithms {
        let (issuer, verifier) = issuer(alg, now);
        let name = alg.name().to_ascii_lowercase();
        c.bench_function(&format!("token/issue_{name}"), |b| {
            b.iter(|| issuer.issue(black_box(&user), "sid", now, &[], 900, now).expect("issue"))
        });
        let token = issuer.issue(&user, "sid", now, &[], 900, now).expect("issue").token;
        c.bench_function(&format!("token/verify_{name}"), |b| {
            b.iter(|| verifier.verify_access(black_box(&token)).expect("valid"))
        });
    }
}

fn revocation(c: &mut Criterion) {
    let set = RevocationSet::new();
    for i in 0..100_000 {
        set.insert(format!("01936c1e-0000-7000-8000-{i:012}"), i64::MAX, Revocation::Revoked);
    }
    let miss = "01936c1e-ffff-7000-8000-000000000000";
    let hit = "01936c1e-0000-7000-8000-000000054321";
    c.bench_function("revocation/check_miss_100k", |b| b.iter(|| set.check(black_box(miss))));
    c.bench_function("revocation/check_hit_100k", |b| b.iter(|| set.check(black_box(hit))));
}

fn passwords(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let hasher = PasswordHasher::new(HashCost::default(), 1).expect("hasher");
    let pw = Password::parse_existing("correct horse battery", "password").expect("valid");
    let stored = rt.block_on(hasher.hash(&pw)).expect("hash");
    let mut group = c.benchmark_group("password");
    group.sample_size(20);
    group.bench_function("hash_argon2id_m19456_t2_p1", |b| b.iter(|| rt.block_on(hasher.hash(&pw)).expect("hash")));
    group.bench_function("verify_argon2id_m19456_t2_p1", |b| {
        b.iter(|| rt.block_on(hasher.verify(&pw, Some(&stored))).expect("verify"))
    });
    group.finish();
}

criterion_group!(benches, tokens, revocation, passwords);
criterion_main!(benches);
