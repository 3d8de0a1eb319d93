//! `gatepass audit [verify]`: recent audit events, or the check of the keyed chain.

use clap::{Args, Subcommand};
use std::io::Write;

use super::fail;
use crate::app;
use crate::config::{SecurityArgs, StoreArgs};
use crate::domain::clock::rfc3339;
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
    /// Only events whose actor or subject is this user id.
    #[arg(long)]
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
