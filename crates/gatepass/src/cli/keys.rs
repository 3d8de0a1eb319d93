//! `gatepass keys rotate|list`: asymmetric signing keys in the data directory.

use std::io::Write;

use super::{KeysCommand, fail};
use crate::app;
use crate::domain::clock::rfc3339;

/// Runs one `gatepass keys` command.
pub(super) async fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (KeysCommand::Rotate { store, security } | KeysCommand::List { store, security }) = &cmd;
    let core = app::open_core(store, security).await?;
    let km = app::key_management(security, store)?;
    if let KeysCommand::Rotate { .. } = cmd {
        if km.master.is_none() {
            anyhow::bail!("key rotation needs GATEPASS_JWT_ALGORITHM=EdDSA, ES256 or RS256 (HS256 uses the secret)");
        }
        let key = core.rotate_signing_key(&km, km.activation_delay).await.map_err(fail)?;
        println!("added {} key {}: published now, signs from {}", key.alg, key.kid, rfc3339(key.activates_at));
    }
    let statuses = core.key_timeline(km.retention).await.map_err(fail)?;
    let mut out = std::io::stdout().lock();
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
