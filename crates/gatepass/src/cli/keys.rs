//! `gatepass keys rotate|revoke|rotate-provider|list`: asymmetric signing keys in the data
//! directory, and the OpenID provider's.

use std::io::Write;

use super::{KeysCommand, fail};
use crate::app;
use crate::domain::clock::rfc3339;
use crate::service::Actor;

/// Runs one `gatepass keys` command.
pub(super) async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (KeysCommand::Rotate { store, security }
    | KeysCommand::Revoke { store, security, .. }
    | KeysCommand::RotateProvider { store, security }
    | KeysCommand::List { store, security }) = &cmd;
    let core = app::open_core(store, security).await?;
    let km = app::key_management(security, store)?;
    match &cmd {
        KeysCommand::Rotate { .. } => {
            if !km.algorithm.is_asymmetric() {
                anyhow::bail!(
                    "key rotation needs GATEPASS_JWT_ALGORITHM=EdDSA, ES256 or RS256 (HS256 uses the secret)"
                );
            }
            let key = core.rotate_signing_key(&km, km.activation_delay, Some(&Actor::cli())).await.map_err(fail)?;
            println!("added {} key {}: published now, signs from {}", key.alg, key.kid, rfc3339(key.activates_at));
        }
        KeysCommand::Revoke { kid, .. } => {
            let revoked = core.revoke_signing_key(&km, &Actor::cli(), kid).await.map_err(|e| match e {
                crate::error::Error::NotFound => anyhow::anyhow!("no signing key {kid:?} (see `gatepass keys list`)"),
                e => fail(e),
            })?;
            if revoked.already {
                let at = revoked.key.revoked_at.map(rfc3339).unwrap_or_default();
                println!("key {kid} was already revoked at {at}; nothing changed");
            } else {
                println!(
                    "revoked key {kid}: unpublished, and its tokens are refused by every running instance within a \
                     second"
                );
                match &revoked.replacement {
                    Some(r) => println!(
                        "it was the signing key: new {} key {} signs from now on (published at once)",
                        r.alg, r.kid
                    ),
                    None => println!("it was not the signing key: signing goes on with the current key"),
                }
                println!(
                    "sessions keep working: their next refresh gets an access token signed with the current key; \
                     services verifying with a cached JWKS stop accepting the key when they next fetch it"
                );
            }
        }
        KeysCommand::RotateProvider { .. } => {
            if km.master.is_none() {
                anyhow::bail!("the OpenID provider's keys need the master key (GATEPASS_MASTER_KEY)");
            }
            for key in core.rotate_oauth_keys(&km, &Actor::cli()).await.map_err(fail)? {
                println!(
                    "added OpenID provider {} key {}: published now, signs from {}",
                    key.alg,
                    key.kid,
                    rfc3339(key.activates_at)
                );
            }
            println!("running servers take the new keys up at their next key reload (GATEPASS_KEY_RELOAD_INTERVAL)");
        }
        KeysCommand::List { .. } => {}
    }
    let mut out = std::io::stdout().lock();
    table(&mut out, &core.key_timeline(km.retention).await.map_err(fail)?)?;
    let provider = core.oauth_key_timeline(km.retention).await.map_err(fail)?;
    if !provider.is_empty() {
        writeln!(out, "\nOpenID provider keys:")?;
        table(&mut out, &provider)?;
    }
    Ok(())
}

/// Writes `statuses` as a table.
fn table(out: &mut impl Write, statuses: &[crate::auth::keys::KeyStatus]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<26} {:<6} {:<8} {:<21} {:<21} unpublished from",
        "kid", "alg", "state", "signs from", "retires at"
    )?;
    let date = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "-".into());
    for s in statuses {
        writeln!(
            out,
            "{:<26} {:<6} {:<8} {:<21} {:<21} {}",
            s.kid,
            s.alg,
            s.state.name(),
            date(Some(s.activates_at)),
            date(s.retires_at),
            date(s.unpublish_at)
        )?;
    }
    Ok(())
}
