//! Resource indicators (RFC 8707): which audience a client's access token gets. A request
//! may name one `resource` (an absolute URI without a fragment) among those the client is
//! allowed (its `resources` and its default `resource`); without one the token's audience
//! is the client's default resource, or its id. Anything else is `invalid_target`.
//!
//! The allowed set is read from the client at every request, so removing a resource from
//! a client stops new tokens for it at once (refreshes of earlier grants included).

use crate::storage::OAuthClient;

/// Longest resource indicator accepted.
pub const MAX_RESOURCE_LEN: usize = 2000;

/// Whether `r` is a resource indicator RFC 8707 §2 allows: an absolute URI, no fragment.
pub fn valid_resource(r: &str) -> bool {
    r.len() <= MAX_RESOURCE_LEN
        && !r.contains('#')
        && !r.chars().any(|c| c.is_whitespace() || c.is_control())
        && url::Url::parse(r).is_ok()
}

/// Whether `client` may have tokens for `resource`.
pub fn allowed(client: &OAuthClient, resource: &str) -> bool {
    client.resource.as_deref() == Some(resource) || client.resources.iter().any(|r| r == resource)
}

/// The audience of an access token for `client`: `requested` (checked), else `bound` (a
/// resource the grant was authorized for, checked again), else the client's default.
///
/// # Errors
/// A description for an `invalid_target` error: `requested` is not a valid indicator, is
/// not allowed for the client, or differs from the `bound` one.
pub fn audience(client: &OAuthClient, requested: Option<&str>, bound: Option<&str>) -> Result<String, String> {
    let requested = requested.filter(|r| !r.is_empty());
    if let Some(r) = requested {
        check(client, r)?;
        if bound.is_some_and(|b| b != r) {
            return Err("resource differs from the one the authorization was for".into());
        }
    }
    match requested.or(bound) {
        Some(r) => {
            check(client, r)?;
            Ok(r.to_owned())
        }
        None => Ok(client.resource.clone().unwrap_or_else(|| client.client_id.clone())),
    }
}

/// Checks one requested resource.
///
/// # Errors
/// The `invalid_target` description.
pub fn check(client: &OAuthClient, resource: &str) -> Result<(), String> {
    if !valid_resource(resource) {
        return Err("resource must be an absolute URI without a fragment".into());
    }
    if !allowed(client, resource) {
        return Err("resource is not one this client may ask tokens for".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OAuthClient {
        OAuthClient {
            client_id: "c1".into(),
            secret_hash: None,
            name: "n".into(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            grant_types: vec!["client_credentials".into()],
            scopes: Vec::new(),
            first_party: false,
            limited: false,
            resource: Some("https://api.example.com".into()),
            resources: vec!["https://reports.example.com/v1".into(), "urn:example:billing".into()],
            created_at: 0,
            updated_at: 0,
            version: 1,
            id_token_alg: crate::storage::IdTokenAlg::Rs256,
        }
    }

    #[test]
    fn syntax() {
        assert!(valid_resource("https://api.example.com/x?y=1"));
        assert!(valid_resource("urn:example:billing"));
        for bad in ["", "api", "/relative", "https://a.example/#frag", "https://a.example/ x", "mailto:a b"] {
            assert!(!valid_resource(bad), "{bad}");
        }
        assert!(!valid_resource(&format!("https://a.example/{}", "x".repeat(MAX_RESOURCE_LEN))));
    }

    #[test]
    fn audience_choice() {
        let c = client();
        assert_eq!(audience(&c, None, None).as_deref(), Ok("https://api.example.com"));
        assert_eq!(audience(&c, Some(""), None).as_deref(), Ok("https://api.example.com"));
        assert_eq!(audience(&c, Some("urn:example:billing"), None).as_deref(), Ok("urn:example:billing"));
        assert_eq!(
            audience(&c, None, Some("https://reports.example.com/v1")).as_deref(),
            Ok("https://reports.example.com/v1")
        );
        assert!(audience(&c, Some("https://other.example.com"), None).is_err());
        assert!(audience(&c, Some("urn:example:billing"), Some("https://reports.example.com/v1")).is_err());
        assert!(audience(&c, None, Some("https://removed.example.com")).is_err());
        let plain = OAuthClient { resource: None, resources: Vec::new(), ..c };
        assert_eq!(audience(&plain, None, None).as_deref(), Ok("c1"));
    }
}
