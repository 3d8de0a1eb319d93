//! `gatepass token decode|verify`.

use super::{TokenCommand, fail};
use crate::app;

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
            let core = app::open_core(&store, &security).await?;
            let (_, _, verifier) = app::token_keys(&security, &store, &core, false).await?;
            match verifier.verify_access(&jwt) {
                Ok(claims) => {
                    if core.is_revoked(&claims.sid).await.map_err(fail)? {
                        anyhow::bail!("token is validly signed but its session was revoked");
                    }
                    if core.user(&claims.sub).await.is_err() {
                        anyhow::bail!("token is validly signed but its user no longer exists");
                    }
                    println!("valid: user {} ({}), expires at {}", claims.username, claims.sub, claims.exp);
                    Ok(())
                }
                Err(e) => anyhow::bail!("invalid ({}): {e}", e.code()),
            }
        }
    }
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
