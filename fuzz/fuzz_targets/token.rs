//! Token parsing and verification must never panic, and must accept only what the
//! configured key signed with the right header and claims.
//!
//! Input modes (first byte): raw token text and raw `Authorization` header values, or a
//! header/payload pair that the harness signs with the real secret, so the fuzzer gets
//! past the signature check and exercises claim validation.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatepass_verify::{Verifier, VerifierConfig, hs256_kid};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const SECRET: &[u8] = b"9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    let config =
        VerifierConfig { issuer: "gatepass".into(), audience: None, leeway_secs: 30, max_lifetime_secs: 86_400 };
    Verifier::hs256(SECRET, config).expect("verifier")
});

fn sign(header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("hmac key");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            let _ = VERIFIER.verify_access(&text);
        }
        1 => {
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(rest) {
                headers.insert(http::header::AUTHORIZATION, v.clone());
                headers.insert(http::header::COOKIE, v);
            }
            if let Ok(Some((token, _))) = gatepass_verify::token_from_headers(&headers) {
                let _ = VERIFIER.verify_access(&token);
            }
        }
        _ => {
            // header JSON 0xFF payload JSON, both signed correctly.
            let split = rest.iter().position(|b| *b == 0xFF).unwrap_or(rest.len());
            let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or(&[]));
            let token = sign(header, payload);
            if let Ok(claims) = VERIFIER.verify_access(&token) {
                // Whatever got through must satisfy the invariants.
                let h: serde_json::Value = serde_json::from_slice(header).expect("accepted header is JSON");
                assert_eq!(h["alg"], "HS256");
                assert_eq!(h["typ"], "at+jwt");
                assert_eq!(h["kid"].as_str(), Some(hs256_kid(SECRET).as_str()));
                assert_eq!(claims.iss, "gatepass");
                assert!(claims.iat >= 0 && claims.exp - claims.iat <= 86_400);
                assert!(claims.aud.is_none());
            }
        }
    }
});
