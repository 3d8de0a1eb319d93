//! `gatepass audit [verify]`: recent audit events, or the hash-chain check.

use clap::{Args, Subcommand};
use std::io::Write;

use super::fail;
use crate::app;
use crate::config::StoreArgs;
use crate::domain::clock::rfc3339;
use crate::storage::audit::{AuditQuery, ChainBreak};

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
    /// Only events whose actor or subject is this user id.
    #[arg(long)]
    pub user: Option<String>,
    /// Only events of this name (e.g. login_failed).
    #[arg(long)]
    pub event: Option<String>,
    /// Where the data is.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `gatepass audit verify`
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain; report the first removed or edited entry.
    Verify {
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs `gatepass audit`.
pub(super) async fn run(args: AuditArgs) -> anyhow::Result<()> {
    match args.action {
        Some(AuditAction::Verify { store }) => {
            let core = app::open_core(&store, None).await?;
            match core.verify_audit_chain().await.map_err(fail)? {
                Ok(entries) => println!("audit chain intact: {entries} entries"),
                Err(ChainBreak::Tampered { id }) => anyhow::bail!("audit chain broken at entry {id}: entry was edited"),
                Err(ChainBreak::Unlinked { id }) => {
                    anyhow::bail!("audit chain broken at entry {id}: an entry before it was removed or replaced")
                }
            }
            Ok(())
        }
        None => {
            let core = app::open_core(&args.store, None).await?;
            let query = AuditQuery {
                user: args.user,
                event: args.event,
                limit: args.limit.clamp(1, 10_000),
                ..Default::default()
            };
            let entries = core.audit_entries(&query).await.map_err(fail)?;
            let mut out = std::io::stdout().lock();
            for e in entries.iter().rev() {
                let ev = &e.event;
                // Debug formatting escapes control characters in user-supplied strings.
                writeln!(
                    out,
                    "{:>6} {} {:<22} {:<8} actor={:?} subject={:?} ip={:?} ua={:?} detail={}",
                    e.id,
                    rfc3339(e.at),
                    ev.event,
                    ev.outcome,
                    ev.actor.as_deref().unwrap_or("-"),
                    ev.subject.as_deref().unwrap_or("-"),
                    ev.ip.as_deref().unwrap_or("-"),
                    ev.user_agent.as_deref().unwrap_or("-"),
                    ev.detail.as_deref().unwrap_or("-"),
                )?;
            }
            Ok(())
        }
    }
}
