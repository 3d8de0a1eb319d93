//! `gatepass user add|set-roles|disable|enable|delete|passwd|send-reset|resend-verification|mark-verified|list`. They write to the data
//! directory directly (safe while the server runs: SQLite WAL and a busy timeout); a
//! running server picks up the revocations they persist within a second.

use std::io::Write;

use super::{UserCommand, fail, new_password, write_table};
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
        UserCommand::Add { name, email, password_stdin, roles, store, security, mail } => {
            let core = open(&store, &security).await?.with_mail(mail.config(None)?);
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
        UserCommand::Delete { name, yes, store, security } => {
            let core = open(&store, &security).await?;
            let user = find(&core, &name).await?;
            if !yes {
                confirm_delete(&user)?;
            }
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
        UserCommand::SendReset { name, store, security, mail } => {
            let core = open(&store, &security).await?.with_mail(mail.config(None)?);
            let user = find(&core, &name).await?;
            let Some(email) = user.email.as_ref() else { anyhow::bail!("{} has no e-mail address", user.username) };
            if !core.send_password_reset(&by, &user).await.map_err(fail)? {
                anyhow::bail!("{} was sent too many reset links this hour; try later", user.username);
            }
            println!("password-reset link for {} queued to {}", user.username, email.as_str());
        }
        UserCommand::ResendVerification { name, store, security, mail } => {
            let core = open(&store, &security).await?.with_mail(mail.config(None)?);
            let user = find(&core, &name).await?;
            core.resend_verification(&by, &user).await.map_err(fail)?;
            let email = user.email.as_ref().map(|e| e.as_str()).unwrap_or_default();
            println!("verification link for {} queued to {email}", user.username);
        }
        UserCommand::MfaReset { name, store, security } => {
            let core = open(&store, &security).await?;
            let user = find(&core, &name).await?;
            if core.reset_mfa(&by, &user).await.map_err(fail)? {
                println!("{}: second factors removed", user.username);
            } else {
                println!("{}: had no second factor", user.username);
            }
        }
        UserCommand::MarkVerified { name, store, security } => {
            let core = open(&store, &security).await?;
            let user = find(&core, &name).await?;
            let user = core.mark_email_verified(&by, &user).await.map_err(fail)?;
            let email = user.email.as_ref().map(|e| e.as_str()).unwrap_or_default();
            println!("{}: {email} marked verified", user.username);
        }
        UserCommand::List { prefix, limit, offset, store, security } => {
            let core = open(&store, &security).await?;
            let query = UserQuery { prefix, limit: Some(i64::from(limit)), offset: Some(i64::from(offset)) };
            let page = core.list_users(&query).await.map_err(fail)?;
            let rows: Vec<[String; 5]> = page
                .users
                .iter()
                .map(|u| {
                    let email = u.email.as_ref().map(|e| e.as_str()).unwrap_or("-");
                    let verified = if u.email.is_some() && u.email_verified { " *" } else { "" };
                    [
                        u.username.as_str().to_owned(),
                        u.roles.names().join(","),
                        (if u.disabled { "disabled" } else { "active" }).to_owned(),
                        crate::domain::clock::rfc3339(u.created_at),
                        format!("{email}{verified}"),
                    ]
                })
                .collect();
            let header = ["username", "roles", "status", "created", "email (* verified)"];
            let mut out = std::io::stdout().lock();
            write_table(&mut out, &header, &rows)?;
            match page.next_offset {
                Some(next) => writeln!(out, "({} of {} shown; next page: --offset {next})", rows.len(), page.total)?,
                None => writeln!(out, "({} of {})", rows.len(), page.total)?,
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

/// Asks, on a terminal, for the username again before a deletion; refuses off a terminal.
fn confirm_delete(user: &User) -> anyhow::Result<()> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("refusing to delete {} without confirmation: pass --yes", user.username);
    }
    eprint!("Delete {} ({}) and end its sessions? Type the username to confirm: ", user.username, user.id.as_str());
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if answer.trim_end_matches(['\r', '\n']) != user.username.as_str() {
        anyhow::bail!("not confirmed; nothing deleted");
    }
    Ok(())
}
