//! `gatepass audit [verify]`: recent audit events as an aligned table (usernames in
//! place of the ids of accounts that still exist, UTC times), or the check of the keyed
//! chain.

use clap::{Args, Subcommand};
use std::collections::HashMap;

use super::{fail, write_table};
use crate::app;
use crate::config::{SecurityArgs, StoreArgs};
use crate::domain::UserId;
use crate::domain::clock::{human_utc, rfc3339};
use crate::error::Error;
use crate::service::Core;
use crate::storage::audit::AuditQuery;

/// `gatepass audit …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    /// `verify`, or nothing to print events.
    #[command(subcommand)]
    pub action: Option<AuditAction>,
    /// How many recent events to print.
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
    /// Only events whose actor or subject is this account (username, or id: the id of a
    /// deleted account still finds its events).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only events of this name (e.g. login_failed).
    #[arg(long)]
    pub event: Option<String>,
    /// Where the data is.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Signing and hashing settings (the master key keys the audit chain).
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// `gatepass audit verify`
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check the chain with the audit key (from the master key): report the first removed
    /// or edited entry, including links recomputed without the key.
    Verify {
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key keys the audit chain).
        #[command(flatten)]
        security: SecurityArgs,
    },
}

/// Runs `gatepass audit`.
pub(super) async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.action {
        Some(AuditAction::Verify { store, security }) => {
            let core = app::open_core(&store, &security).await?;
            let report = core.verify_audit_chain().await.map_err(fail)?.map_err(|b| anyhow::anyhow!(b.describe()))?;
            println!("audit chain intact: {} entries", report.entries);
            if report.plain_entries() > 0 {
                println!(
                    "  entries 1-{}: plain SHA-256 links from before the keyed chain, pinned by its anchor",
                    report.plain_entries()
                );
            }
            println!(
                "  keyed chain (HMAC under the master key) from entry {}, sealed {}: {} entries",
                report.keyed_from,
                rfc3339(report.sealed_at),
                report.keyed_entries()
            );
            Ok(())
        }
        None => {
            let core = app::open_core(&args.store, &args.security).await?;
            let user = match args.user.as_deref() {
                Some(name) => Some(account_id(&core, name).await?),
                None => None,
            };
            let query =
                AuditQuery { user, event: args.event, limit: args.limit.clamp(1, 10_000), ..Default::default() };
            let entries = core.audit_entries(&query).await.map_err(fail)?;
            let mut names = Names::default();
            let mut rows = Vec::with_capacity(entries.len());
            for e in entries.iter().rev() {
                let ev = &e.event;
                rows.push([
                    e.id.to_string(),
                    human_utc(e.at),
                    printable(&ev.event),
                    printable(&ev.outcome),
                    names.show(&core, ev.actor.as_deref()).await?,
                    names.show(&core, ev.subject.as_deref()).await?,
                    shown(ev.ip.as_deref()),
                    shown(ev.detail.as_deref()),
                    shown(ev.user_agent.as_deref()),
                ]);
            }
            let header = ["id", "time (UTC)", "event", "outcome", "actor", "subject", "ip", "detail", "user agent"];
            write_table(&mut std::io::stdout().lock(), &header, &rows)?;
            Ok(())
        }
    }
}

/// The id of the account `name` (a username, or an id). An id that names no account is
/// taken as it is, since a deleted account's events still carry it.
async fn account_id(core: &Core, name: &str) -> anyhow::Result<String> {
    match core.find_user(name).await {
        Ok(user) => Ok(user.id.as_str().to_owned()),
        Err(Error::NotFound) if UserId::parse(name).is_some() => Ok(name.to_owned()),
        Err(Error::NotFound) => anyhow::bail!("no account named {name:?} (for a deleted account, pass its id)"),
        Err(e) => Err(fail(e)),
    }
}

/// A recorded string for the table: `-` when absent.
fn shown(value: Option<&str>) -> String {
    value.filter(|v| !v.is_empty()).map_or_else(|| "-".to_owned(), printable)
}

/// Control characters escaped (some values come from clients and must not drive the
/// terminal); everything else as it is.
fn printable(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// Usernames of the accounts an actor or subject id names, looked up once each.
#[derive(Default)]
struct Names(HashMap<String, String>);

impl Names {
    /// The username for a user id, the id itself when the account is gone, and other
    /// actors (`operator`, `cli`) as they are.
    async fn show(&mut self, core: &Core, who: Option<&str>) -> anyhow::Result<String> {
        let Some(who) = who else { return Ok("-".to_owned()) };
        if let Some(name) = self.0.get(who) {
            return Ok(name.clone());
        }
        let name = if UserId::parse(who).is_none() {
            printable(who)
        } else {
            match core.user(who).await {
                Ok(user) => user.username.as_str().to_owned(),
                Err(Error::NotFound) => who.to_owned(),
                Err(e) => return Err(fail(e)),
            }
        };
        self.0.insert(who.to_owned(), name.clone());
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_strings_cannot_drive_the_terminal() {
        assert_eq!(printable("curl/8\u{1b}[2J\n"), "curl/8\\u{1b}[2J\\n");
        assert_eq!(printable(r#"{"a":"é"}"#), r#"{"a":"é"}"#);
        assert_eq!(shown(Some("")), "-");
        assert_eq!(shown(None), "-");
    }
}
