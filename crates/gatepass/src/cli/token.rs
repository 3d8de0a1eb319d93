//! `gatepass token decode|verify`. `verify` reads the configuration the way `serve`
//! does and prints the token's times for people (`expires in 12m`); an expired token is
//! refused, leeway or not.

use gatepass_verify::VerifyError;

use super::{TokenCommand, fail};
use crate::app;
use crate::domain::clock::{self, human_span, human_utc};

/// Runs one `gatepass token` command.
pub(super) async fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Decode { jwt } => {
            let (header, claims) = decode_unverified(&jwt)?;
            println!("UNVERIFIED: the signature has not been checked.");
            println!("header: {}", serde_json::to_string_pretty(&header)?);
            println!("claims: {}", serde_json::to_string_pretty(&claims)?);
            Ok(())
        }
        TokenCommand::Verify { jwt, store, security } => {
            // The same flags, environment, `.env` and data directory as `serve`: the same
            // secret, keys, issuer, audience and leeway.
            let core = app::open_core(&store, &security).await?;
            let (_, _, verifier) = app::token_keys(&security, &store, &core, false).await?;
            let now = clock::now();
            let claims = match verifier.verify_access(&jwt) {
                Ok(claims) => claims,
                Err(VerifyError::Expired) => {
                    // The signature checked out before the expiry did, so the claims are
                    // genuine; they only say when.
                    let exp = decode_unverified(&jwt).ok().and_then(|(_, c)| c["exp"].as_i64());
                    let when = exp.map(|exp| format!(" {} (at {})", ago(now, exp), human_utc(exp))).unwrap_or_default();
                    anyhow::bail!("invalid (token_expired): the token expired{when}");
                }
                Err(e) => anyhow::bail!("invalid ({}): {e}", e.code()),
            };
            // The leeway lets a server accept a token for a few seconds past its expiry
            // (clock skew); this command still never calls an expired token valid.
            if claims.exp <= now {
                anyhow::bail!(
                    "invalid (token_expired): the token expired {} (at {}); servers with --token-leeway {}s \
                     still accept it until {}",
                    ago(now, claims.exp),
                    human_utc(claims.exp),
                    security.token_leeway.as_secs(),
                    human_utc(claims.exp + security.token_leeway.as_secs().min(60) as i64),
                );
            }
            if core.is_revoked(&claims.sid).await.map_err(fail)? {
                anyhow::bail!("token is validly signed but its session was revoked");
            }
            if core.user(&claims.sub).await.is_err() {
                anyhow::bail!("token is validly signed but its user no longer exists");
            }
            println!("valid: user {} ({}), expires in {}", claims.username, claims.sub, human_span(claims.exp - now));
            let roles = if claims.roles.is_empty() { "-".to_owned() } else { claims.roles.join(", ") };
            println!("  roles      {roles}");
            println!("  session    {}", claims.sid);
            println!("  issued     {} ({})", human_utc(claims.iat), ago(now, claims.iat));
            println!("  expires    {} (expires in {})", human_utc(claims.exp), human_span(claims.exp - now));
            println!("  signed in  {} ({}; auth_time)", human_utc(claims.auth_time), ago(now, claims.auth_time));
            println!("  issuer     {}", claims.iss);
            Ok(())
        }
    }
}

/// `3m ago` for a moment before `now`, `in 3m` for one after it.
fn ago(now: i64, t: i64) -> String {
    if t <= now { format!("{} ago", human_span(now - t)) } else { format!("in {}", human_span(t - now)) }
}

fn decode_unverified(jwt: &str) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    use base64::Engine as _;
    let mut parts = jwt.split('.');
    let (Some(h), Some(p)) = (parts.next(), parts.next()) else {
        anyhow::bail!("not a JWT: expected header.payload.signature");
    };
    let dec = |s: &str| -> anyhow::Result<serde_json::Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s)?;
        Ok(serde_json::from_slice(&bytes)?)
    };
    Ok((dec(h)?, dec(p)?))
}
