//! The administrative commands of `gatepass`: `user set-roles|disable|enable|delete|passwd`
//! and `audit [verify]`. They write to the data directory directly (safe while the server
//! runs: SQLite WAL and a busy timeout); a running server picks up the revocations they
//! persist within a second.

use clap::{Args, Subcommand};
use std::io::{BufRead, Write};

use crate::admin::{self, Actor};
use crate::app;
use crate::auth::PasswordHasher;
use crate::cli::UserCommand;
use crate::config::{self, StoreArgs};
use crate::domain::{Password, Roles, User};
use crate::storage::Storage;
use crate::storage::audit::{ChainBreak, GENESIS_HASH, verify_chain};

/// `gatepass audit …`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    #[allow(missing_docs)]
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
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
}

/// `gatepass audit verify`
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Recompute the hash chain; report the first removed or edited entry.
    Verify {
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
    },
}

async fn find(storage: &dyn Storage, name: &str) -> anyhow::Result<User> {
    admin::find_user(storage, name).await.map_err(|_| anyhow::anyhow!("no such user: {name:?}"))
}

fn fail(e: crate::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message())
}

/// Runs the account commands that `cli` delegates here.
pub async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    let by = Actor::cli();
    match cmd {
        UserCommand::SetRoles { name, roles, store } => {
            let storage = app::open_storage(&store).await?;
            let user = find(storage.as_ref(), &name).await?;
            let roles = Roles::parse(&roles).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (user, revoked) = admin::set_roles(storage.as_ref(), &by, &user, roles).await.map_err(fail)?;
            let roles = user.roles.names().join(",");
            println!("{}: roles {roles}; {} session(s) ended", user.username, revoked.len());
        }
        UserCommand::Disable { name, store } => set_disabled(&by, &name, &store, true).await?,
        UserCommand::Enable { name, store } => set_disabled(&by, &name, &store, false).await?,
        UserCommand::Delete { name, store } => {
            let storage = app::open_storage(&store).await?;
            let user = find(storage.as_ref(), &name).await?;
            let revoked = admin::delete_user(storage.as_ref(), &by, &user).await.map_err(fail)?;
            println!("deleted {} ({}); {} session(s) ended", user.username, user.id.as_str(), revoked.len());
        }
        UserCommand::Passwd { name, password_stdin, store, security } => {
            let storage = app::open_storage(&store).await?;
            let user = find(storage.as_ref(), &name).await?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (config::generate_secret()[..24].to_owned(), true)
            };
            let password = Password::parse_new(&password, "password").map_err(|e| anyhow::anyhow!("{e}"))?;
            if password.expose().eq_ignore_ascii_case(user.username.as_str()) {
                anyhow::bail!("password: must not be the username");
            }
            let hasher = PasswordHasher::new(security.hash_cost(), 1)?;
            let hash = hasher.hash(&password).await?;
            let revoked = admin::set_password_hash(storage.as_ref(), &by, &user, &hash).await.map_err(fail)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "password of {} changed; {} session(s) ended", user.username, revoked.len())?;
            if generated {
                writeln!(out, "password: {}", password.expose())?;
            }
        }
        UserCommand::Add { .. } | UserCommand::List { .. } => anyhow::bail!("handled by the cli module"),
    }
    Ok(())
}

async fn set_disabled(by: &Actor, name: &str, store: &StoreArgs, disabled: bool) -> anyhow::Result<()> {
    let storage = app::open_storage(store).await?;
    let user = find(storage.as_ref(), name).await?;
    let patch = crate::storage::UserPatch { disabled: Some(disabled), ..Default::default() };
    let (user, revoked) = admin::update_user(storage.as_ref(), by, &user, &patch).await.map_err(fail)?;
    let state = if user.disabled { "disabled" } else { "enabled" };
    println!("{} {state}; {} session(s) ended", user.username, revoked.len());
    Ok(())
}

/// `gatepass audit`: recent events, or `verify` for the chain check.
pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    match args.action {
        Some(AuditAction::Verify { store }) => verify(&store).await,
        None => {
            let storage = app::open_storage(&args.store).await?;
            let query = crate::storage::audit::AuditQuery {
                user: args.user,
                event: args.event,
                limit: args.limit.clamp(1, 10_000),
                ..Default::default()
            };
            let entries = storage.audit_entries(&query).await?;
            let mut out = std::io::stdout().lock();
            for e in entries.iter().rev() {
                let ev = &e.event;
                // Debug formatting escapes control characters in user-supplied strings.
                writeln!(
                    out,
                    "{:>6} {} {:<22} {:<8} actor={:?} subject={:?} ip={:?} ua={:?} detail={}",
                    e.id,
                    crate::http::api::rfc3339(e.at),
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

async fn verify(store: &StoreArgs) -> anyhow::Result<()> {
    let storage = app::open_storage(store).await?;
    let (mut last_id, mut last_hash) = (0, GENESIS_HASH.to_owned());
    loop {
        let page = storage.audit_chain(last_id, 1000).await?;
        if page.is_empty() {
            break;
        }
        match verify_chain(&page, last_id, last_hash.clone()) {
            Ok((id, hash)) => (last_id, last_hash) = (id, hash),
            Err(ChainBreak::Tampered { id }) => anyhow::bail!("audit chain broken at entry {id}: entry was edited"),
            Err(ChainBreak::Unlinked { id }) => {
                anyhow::bail!("audit chain broken at entry {id}: an entry before it was removed or replaced")
            }
        }
    }
    println!("audit chain intact: {last_id} entries");
    Ok(())
}
