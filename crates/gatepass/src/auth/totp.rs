//! TOTP (RFC 6238) as authenticator apps expect it: SHA-1, 6 digits, 30-second steps,
//! one step of clock tolerance either way; the `otpauth://` URI and its QR code as inline
//! SVG. No I/O: the caller stores the secret (sealed) and the last accepted step.

use std::fmt::Write as _;

use rand::RngCore;
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};
use zeroize::Zeroizing;

/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps of clock tolerance on either side of the current one.
pub const SKEW_STEPS: i64 = 1;

/// A new random TOTP secret: 160 bits, the length RFC 4226 recommends.
pub fn generate_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    rand::rng().fill_bytes(secret.as_mut_slice());
    secret
}

/// The secret in base32 without padding, as users type it into an app.
pub fn secret_base32(secret: &[u8]) -> Zeroizing<String> {
    match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(s) => Zeroizing::new(s),
        Secret::Raw(_) => Zeroizing::new(String::new()),
    }
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> anyhow::Result<TOTP> {
    // The otpauth label separates issuer and account with ':', so neither may hold one.
    let issuer = issuer.replace(':', "-");
    let account = account.replace(':', "-");
    TOTP::new(Algorithm::SHA1, DIGITS, 1, STEP_SECS as u64, secret.to_vec(), Some(issuer), account)
        .map_err(|e| anyhow::anyhow!("invalid TOTP parameters: {e}"))
}

/// The `otpauth://totp/…` URI of the secret, labelled `issuer:account`.
///
/// # Errors
/// When the secret is shorter than 128 bits.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> anyhow::Result<String> {
    Ok(totp(secret, issuer, account)?.get_url())
}

/// The time step `unix_secs` falls in.
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// Checks `code` against the steps around `unix_secs` (±[`SKEW_STEPS`]) and returns the
/// step it belongs to. Every candidate is compared (in constant time), so the time taken
/// does not tell which step matched. A code that is not six ASCII digits never matches.
pub fn verify(secret: &[u8], code: &str, unix_secs: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "", "").ok()?;
    let now = step_of(unix_secs);
    let mut found = None;
    for step in now - SKEW_STEPS..=now + SKEW_STEPS {
        let Ok(at) = u64::try_from(step * STEP_SECS) else { continue };
        let expected = Zeroizing::new(t.generate(at));
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A QR code of `text` as a standalone SVG document (black modules on white, with the
/// quiet zone), for inline display.
///
/// # Errors
/// When `text` is too long for a QR code.
pub fn qr_svg(text: &str) -> anyhow::Result<String> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium)
        .map_err(|_| anyhow::anyhow!("text too long for a QR code"))?;
    let border = 4;
    let size = qr.size() + 2 * border;
    let mut path = String::new();
    for y in 0..qr.size() {
        for x in 0..qr.size() {
            if qr.get_module(x, y) {
                let _ = write!(path, "M{},{}h1v1h-1z", x + border, y + border);
            }
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" shape-rendering=\"crispEdges\">\
         <rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B, SHA-1 (the 8-digit reference values, last six digits).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_vectors() {
        assert_eq!(verify(RFC_SECRET, "287082", 59), Some(1));
        assert_eq!(verify(RFC_SECRET, "081804", 1_111_111_109), Some(step_of(1_111_111_109)));
        assert_eq!(verify(RFC_SECRET, "050471", 1_111_111_111), Some(step_of(1_111_111_111)));
        assert_eq!(verify(RFC_SECRET, "005924", 1_234_567_890), Some(step_of(1_234_567_890)));
    }

    #[test]
    fn one_step_of_tolerance_and_no_more() {
        // "287082" is the code of step 1 (t = 30..59).
        assert_eq!(verify(RFC_SECRET, "287082", 30 + 30), Some(1));
        assert_eq!(verify(RFC_SECRET, "287082", 0), Some(1));
        assert_eq!(verify(RFC_SECRET, "287082", 90), None);
        assert_eq!(verify(RFC_SECRET, "28708", 59), None);
        assert_eq!(verify(RFC_SECRET, "28708x", 59), None);
    }

    #[test]
    fn uri_and_qr() {
        let uri = otpauth_uri(RFC_SECRET, "gate:pass", "ali:ce").unwrap();
        assert!(uri.starts_with("otpauth://totp/gate-pass:ali-ce?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"));
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
