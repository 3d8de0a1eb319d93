//! OAuth credential primitives, without I/O: client secrets and authorization codes
//! (256-bit random values kept as SHA-256 digests, compared in constant time), the PKCE
//! S256 check (RFC 7636), redirect-URI matching (exact, and any port on loopback for
//! native apps, RFC 8252), `at_hash` (OpenID Connect Core §3.1.3.6) and the check of an
//! `id_token_hint` (RP-Initiated Logout 1.0 §2).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Prefix of client secrets (recognisable in leaks).
pub const SECRET_PREFIX: &str = "gpcs_";
/// Prefix of authorization codes.
pub const CODE_PREFIX: &str = "gpc_";
/// Prefix of device codes (RFC 8628).
pub const DEVICE_CODE_PREFIX: &str = "gpd_";
/// The letters of user codes: consonants only, without ones easily mistaken for another
/// (RFC 8628 §6.1), and no vowels, so that no word is spelt. 20^8 ≈ 2^34.6 codes.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
pub const USER_CODE_LEN: usize = 8;

/// A new user code, normalised (8 letters of [`USER_CODE_ALPHABET`], no dash); drawn
/// without modulo bias.
pub fn generate_user_code() -> String {
    let mut out = String::with_capacity(USER_CODE_LEN);
    let mut rng = rand::rng();
    while out.len() < USER_CODE_LEN {
        let mut b = [0u8; 1];
        rng.fill_bytes(&mut b);
        // 240 is the largest multiple of 20 below 256: larger bytes are drawn again.
        if b[0] < 240 {
            out.push(char::from(USER_CODE_ALPHABET[usize::from(b[0] % 20)]));
        }
    }
    out
}

/// A normalised user code as the user is shown it: `XXXX-XXXX`.
pub fn format_user_code(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) if !b.is_empty() => format!("{a}-{b}"),
        _ => code.to_owned(),
    }
}

/// What the user typed as a normalised user code: upper case, without dashes and spaces;
/// `None` unless it is 8 letters of [`USER_CODE_ALPHABET`] (garbage never reaches storage).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    if typed.len() > 32 {
        return None;
    }
    let code: String =
        typed.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(code)
}

/// A new random value: `prefix` followed by 256 random bits in base64url.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What storage keeps of a secret or code: the hex SHA-256 digest.
pub fn digest(value: &str) -> String {
    Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `presented` is the secret whose digest is `stored`, in constant time (the
/// digests are compared, so the time says nothing about the secret).
pub fn secret_matches(presented: &str, stored: &str) -> bool {
    let d = digest(presented);
    d.as_bytes().ct_eq(stored.as_bytes()).into()
}

/// Whether a value has the shape [`generate`] gives it with `prefix` (so that garbage
/// never reaches storage).
pub fn looks_generated(value: &str, prefix: &str) -> bool {
    value.len() == prefix.len() + 43
        && value.starts_with(prefix)
        && URL_SAFE_NO_PAD.decode(&value[prefix.len()..]).is_ok_and(|b| b.len() == 32)
}

/// Whether `challenge` can be an S256 code challenge: 43 base64url characters (a SHA-256).
pub fn valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|b| b.len() == 32)
}

/// RFC 7636 §4.6: the verifier (43–128 unreserved characters) hashes to the challenge.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let shaped = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if !shaped {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// `at_hash` for a token signed with a SHA-256 algorithm: the left half of the digest of
/// the access token, base64url.
pub fn at_hash(access_token: &str) -> String {
    let d = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}

/// Whether `uri` may be registered as a redirect URI: an absolute `https` URL, an `http`
/// loopback URL (native apps), or a private-use scheme (`com.example.app:/cb`); never a
/// fragment, never credentials in it.
pub fn valid_redirect_uri(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else { return false };
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() || uri.len() > 2000 {
        return false;
    }
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => is_loopback(&url),
        // Private-use schemes must contain a dot (RFC 8252 §7.1) so that they name an app.
        scheme => scheme.contains('.'),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// Whether `presented` matches one of `registered`: character for character, or, for an
/// `http` loopback registration, the same URL with any port (RFC 8252 §7.3).
pub fn redirect_matches(registered: &[String], presented: &str) -> bool {
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let Ok(p) = url::Url::parse(presented) else { return false };
    if p.scheme() != "http" || !is_loopback(&p) {
        return false;
    }
    registered.iter().any(|r| {
        let Ok(mut r) = url::Url::parse(r) else { return false };
        if r.scheme() != "http" || !is_loopback(&r) || r.host() != p.host() {
            return false;
        }
        if r.set_port(p.port()).is_err() {
            return false;
        }
        r.as_str() == p.as_str()
    })
}

/// What a logout request's `id_token_hint` says, once its signature and issuer checked out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct IdTokenHint {
    /// The user the ID token was issued for.
    pub sub: String,
    /// The client it was issued to.
    pub aud: String,
    /// The grant (session) it belongs to.
    #[serde(default)]
    pub sid: Option<String>,
}

/// Checks an ID token gatepass issued, presented as a logout hint: signed by the
/// provider's key `jwk`, with the algorithm that key has (RS256 for RSA, ES256 for P-256;
/// `kid` and `alg` from the key, never from the token), JOSE type `JWT`,
/// no header-supplied key material or critical extensions, `iss` equal to `issuer`. Its
/// expiry is deliberately not checked: a relying party logs out with the ID token it got at
/// sign-in, often long expired (RP-Initiated Logout 1.0 §2). `None` for anything else.
pub fn verify_id_token_hint(token: &str, jwk: &serde_json::Value, issuer: &str) -> Option<IdTokenHint> {
    if token.is_empty() || token.len() > gatepass_verify::MAX_TOKEN_LEN || token.split('.').count() != 3 {
        return None;
    }
    let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).ok()?;
    // The key decides the algorithm: RS256 for an RSA key, ES256 for a P-256 one.
    let alg = match parsed.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => jsonwebtoken::Algorithm::ES256,
        _ => return None,
    };
    let header = jsonwebtoken::decode_header(token).ok()?;
    let foreign_key_material = header.jku.is_some()
        || header.jwk.is_some()
        || header.x5u.is_some()
        || header.x5c.is_some()
        || header.crit.is_some();
    if header.alg != alg
        || header.typ.as_deref() != Some("JWT")
        || header.kid.is_none()
        || header.kid != parsed.common.key_id
        || foreign_key_material
    {
        return None;
    }
    let key = jsonwebtoken::DecodingKey::from_jwk(&parsed).ok()?;
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["iss", "sub", "aud", "exp"]);
    validation.set_issuer(&[issuer]);
    let hint = jsonwebtoken::decode::<IdTokenHint>(token, &key, &validation).ok()?.claims;
    (!hint.sub.is_empty() && !hint.aud.is_empty()).then_some(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_unambiguous_letters_read_leniently() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let code = generate_user_code();
            assert_eq!(code.len(), USER_CODE_LEN);
            assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)), "{code}");
            assert_eq!(normalize_user_code(&format_user_code(&code)).as_deref(), Some(code.as_str()));
            seen.insert(code);
        }
        // Every letter turns up (no bias that leaves one out), and codes do not repeat.
        let letters: std::collections::HashSet<u8> = seen.iter().flat_map(|c| c.bytes()).collect();
        assert_eq!(letters.len(), USER_CODE_ALPHABET.len());
        assert!(seen.len() > 1990);
        assert_eq!(format_user_code("WDJBMJHT"), "WDJB-MJHT");
        assert_eq!(normalize_user_code(" wdjb-mjht ").as_deref(), Some("WDJBMJHT"));
        assert_eq!(normalize_user_code("WD JB MJ HT").as_deref(), Some("WDJBMJHT"));
        for bad in ["", "WDJB-MJH", "WDJB-MJHTX", "AEIO-UWDJ", "WDJB-MJH1", "WDJB\u{0}MJHT", "ẄDJB-MJHT"] {
            assert_eq!(normalize_user_code(bad), None, "{bad:?}");
        }
        assert_eq!(normalize_user_code(&"B".repeat(1000)), None);
    }

    #[test]
    fn pkce_follows_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!pkce_matches(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
        assert!(!pkce_matches("short", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(valid_challenge("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!valid_challenge("plain-challenge"));
    }

    #[test]
    fn secrets_and_codes() {
        let s = generate(SECRET_PREFIX);
        assert!(looks_generated(&s, SECRET_PREFIX));
        assert!(!looks_generated(&s, CODE_PREFIX));
        assert!(secret_matches(&s, &digest(&s)));
        assert!(!secret_matches("other", &digest(&s)));
    }

    #[test]
    fn redirect_uris_match_exactly_or_on_loopback_with_any_port() {
        let reg = vec!["https://app.example.com/cb".to_owned(), "http://127.0.0.1/cb".to_owned()];
        assert!(redirect_matches(&reg, "https://app.example.com/cb"));
        assert!(!redirect_matches(&reg, "https://app.example.com/cb/"));
        assert!(!redirect_matches(&reg, "https://app.example.com:8443/cb"));
        assert!(!redirect_matches(&reg, "https://app.example.com/cb?x=1"));
        assert!(redirect_matches(&reg, "http://127.0.0.1:51234/cb"));
        assert!(!redirect_matches(&reg, "http://127.0.0.1:51234/other"));
        assert!(!redirect_matches(&reg, "http://localhost:51234/cb"));
        assert!(valid_redirect_uri("com.example.app:/cb"));
        assert!(!valid_redirect_uri("http://app.example.com/cb"));
        assert!(!valid_redirect_uri("https://app.example.com/cb#frag"));
        assert!(!valid_redirect_uri("javascript:alert(1)"));
    }
}
