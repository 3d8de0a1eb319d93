//! `gatepass user add|set-roles|disable|enable|delete|passwd|list`. They write to the data
//! directory directly (safe while the server runs: SQLite WAL and a busy timeout); a
//! running server picks up the revocations they persist within a second.

use std::io::Write;

use super::{UserCommand, fail, new_password};
use crate::app;
use crate::config::{SecurityArgs, StoreArgs};
use crate::domain::{Roles, User};
use crate::service::admin::UserQuery;
use crate::service::{Actor, Core};
use crate::storage::UserPatch;

async fn find(core: &Core, name: &str) -> anyhow::Result<User> {
    core.find_user(name).await.map_err(|_| anyhow::anyhow!("no such user: {name:?}"))
}

async fn open(store: &StoreArgs, security: &SecurityArgs) -> anyhow::Result<Core> {
    app::open_core(store, security).await
}

/// Runs one `gatepass user` command.
pub(super) async fn run(cmd: UserCommand) -> anyhow::Result<()> {
    let by = Actor::cli();
    match cmd {
        UserCommand::Add { name, email, password_stdin, roles, store, security } => {
            let core = open(&store, &security).await?;
            let (password, generated) = new_password(password_stdin)?;
            let roles = Roles::parse(&roles).map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = core.create_user(&by, &name, &password, email.as_deref(), roles).await.map_err(fail)?;
            let mut out = std::io::stdout().lock();
            let roles = user.roles.names().join(",");
            writeln!(out, "created user {} ({}) with roles {roles}", user.username, user.id.as_str())?;
            if generated {
                writeln!(out, "password: {password}")?;
            }
        }
        UserCommand::SetRoles { name, roles, store, security } => {
            let core = open(&store, &security).await?;
            let user = find(&core, &name).await?;
            let roles = Roles::parse(&roles).map_err(|e| anyhow::anyhow!("{e}"))?;
            let (user, ended) = core.set_roles(&by, &user, roles).await.map_err(fail)?;
            let roles = user.roles.names().join(",");
            println!("{}: roles {roles}; {ended} session(s) ended", user.username);
        }
        UserCommand::Disable { name, store, security } => set_disabled(&by, &name, &store, &security, true).await?,
        UserCommand::Enable { name, store, security } => set_disabled(&by, &name, &store, &security, false).await?,
        UserCommand::Delete { name, store, security } => {
            let core = open(&store, &security).await?;
            let user = find(&core, &name).await?;
            let ended = core.delete_user(&by, &user).await.map_err(fail)?;
            println!("deleted {} ({}); {ended} session(s) ended", user.username, user.id.as_str());
        }
        UserCommand::Passwd { name, password_stdin, store, security } => {
            let core = open(&store, &security).await?;
            let user = find(&core, &name).await?;
            let (password, generated) = new_password(password_stdin)?;
            // The same rules as registration and the API: length, common passwords, username.
            let password = core
                .password_policy()
                .check(&password, user.username.as_str(), "password")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let ended = core.set_password(&by, &user, &password, "password_reset").await.map_err(fail)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "password of {} changed; {ended} session(s) ended", user.username)?;
            if generated {
                writeln!(out, "password: {}", password.expose())?;
            }
        }
        UserCommand::List { prefix, store, security } => {
            let core = open(&store, &security).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<38} {:<24} {:<16} {:<9} email", "id", "username", "roles", "status")?;
            let mut query = UserQuery { prefix, limit: Some(crate::service::admin::MAX_PAGE), offset: Some(0) };
            loop {
                let page = core.list_users(&query).await.map_err(fail)?;
                for u in &page.users {
                    writeln!(
                        out,
                        "{:<38} {:<24} {:<16} {:<9} {}",
                        u.id.as_str(),
                        u.username,
                        u.roles.names().join(","),
                        if u.disabled { "disabled" } else { "active" },
                        u.email.as_ref().map(|e| e.as_str()).unwrap_or("-")
                    )?;
                }
                match page.next_offset {
                    Some(next) => query.offset = Some(next),
                    None => break,
                }
            }
        }
    }
    Ok(())
}

async fn set_disabled(
    by: &Actor,
    name: &str,
    store: &StoreArgs,
    security: &SecurityArgs,
    disabled: bool,
) -> anyhow::Result<()> {
    let core = open(store, security).await?;
    let user = find(&core, name).await?;
    let patch = UserPatch { disabled: Some(disabled), ..Default::default() };
    let (user, ended) = core.update_user(by, &user, &patch).await.map_err(fail)?;
    let state = if user.disabled { "disabled" } else { "enabled" };
    println!("{} {state}; {ended} session(s) ended", user.username);
    Ok(())
}
