//! Strict JWS Compact parsing done before the signature check (GP-01, GP-02, GP-04, GP-06).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

use crate::VerifyError;

/// The only header members gatepass accepts. Everything else (`crit`, `jku`, `jwk`, `x5u`,
/// `x5c`, `x5t`, `cty`, `zip`, `enc`, `p2c`, …) makes the token invalid: key material or
/// processing instructions must never come from the token itself.
const ALLOWED_HEADER_MEMBERS: [&str; 3] = ["alg", "typ", "kid"];

/// Longest `kid` accepted; ids gatepass issues are far shorter.
const MAX_KID_LEN: usize = 64;

/// The parts of a JOSE header gatepass looks at.
#[derive(Debug, Deserialize)]
pub(crate) struct StrictHeader {
    pub alg: String,
    pub typ: Option<String>,
    pub kid: Option<String>,
}

/// Checks the compact shape and both JSON parts, and returns the parsed header.
pub(crate) fn parse(token: &str, max_len: usize) -> Result<StrictHeader, VerifyError> {
    if token.len() > max_len {
        return Err(VerifyError::Malformed("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(VerifyError::Malformed("a token has exactly three dot-separated parts"));
    };
    if h.is_empty() || p.is_empty() || s.is_empty() {
        return Err(VerifyError::Malformed("empty token segment"));
    }
    let header = decode_segment(h)?;
    let payload = decode_segment(p)?;
    decode_segment(s)?;

    let members: UniqueObject = serde_json::from_slice(&header)
        .map_err(|_| VerifyError::Malformed("header is not a JSON object with unique members"))?;
    if members.0.iter().any(|m| !ALLOWED_HEADER_MEMBERS.contains(&m.as_str())) {
        return Err(VerifyError::Invalid("unsupported header member"));
    }
    serde_json::from_slice::<UniqueObject>(&payload)
        .map_err(|_| VerifyError::Malformed("payload is not a JSON object with unique members"))?;
    let header: StrictHeader =
        serde_json::from_slice(&header).map_err(|_| VerifyError::Invalid("header members have the wrong type"))?;
    if header.kid.as_ref().is_some_and(|k| k.is_empty() || k.len() > MAX_KID_LEN) {
        return Err(VerifyError::Invalid("unknown key id"));
    }
    Ok(header)
}

/// Canonical unpadded base64url only: no padding, no `+`/`/`, no whitespace, no stray bits.
fn decode_segment(segment: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| VerifyError::Malformed("segment is not canonical base64url"))
}

/// A JSON object whose member names are unique; holds the names.
struct UniqueObject(Vec<String>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object with unique member names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueObject, A::Error> {
                let mut seen = HashSet::new();
                let mut names = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom("duplicate member"));
                    }
                    map.next_value::<IgnoredAny>()?;
                    names.push(key);
                }
                Ok(UniqueObject(names))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn rejects_duplicate_members_and_foreign_headers() {
        let p = b64(r#"{"sub":"a"}"#);
        let dup = format!("{}.{p}.c2ln", b64(r#"{"alg":"HS256","alg":"none"}"#));
        assert!(matches!(parse(&dup, 8192), Err(VerifyError::Malformed(_))));
        for member in ["crit", "jku", "jwk", "x5u", "x5c", "cty", "zip", "enc", "p2c"] {
            let t = format!("{}.{p}.c2ln", b64(&format!(r#"{{"alg":"HS256","{member}":"x"}}"#)));
            assert_eq!(parse(&t, 8192).unwrap_err(), VerifyError::Invalid("unsupported header member"), "{member}");
        }
    }

    #[test]
    fn rejects_non_canonical_base64_and_wrong_shapes() {
        let h = b64(r#"{"alg":"HS256"}"#);
        let p = b64(r#"{"sub":"a"}"#);
        for bad in [
            format!("{h}.{p}"),
            format!("{h}.{p}.c2ln.x"),
            format!("{h}.{p}."),
            format!("{h}=.{p}.c2ln"),
            format!("{h}.{p}.c2l+"),
            format!("{h}.{p}.c2 n"),
            format!("{h}.{}.c2ln", b64("[1,2]")),
            format!("{h}.{p}.QR"), // non-zero trailing bits; the canonical form is "QQ"
        ] {
            assert!(parse(&bad, 8192).is_err(), "{bad}");
        }
        assert!(parse(&format!("{h}.{p}.c2ln"), 8192).is_ok());
        assert!(parse(&format!("{h}.{p}.c2ln"), 10).is_err());
    }
}
