//! The `gatepass` command line: the commands and their arguments here, one file per
//! command group. Every command that changes data goes through the service layer
//! ([`crate::service::Core`]), like the API does, with the same checks and audit entries.

use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};

use crate::app::{self, Application};
use crate::config::{self, SecurityArgs, ServeArgs, StoreArgs};

mod audit;
pub mod clients;
mod import;
mod keys;
mod token;
mod user;

pub use audit::{AuditAction, AuditArgs};

/// gatepass: accounts, JWT access tokens and rotating refresh tokens for your apps.
#[derive(Debug, Parser)]
#[command(name = "gatepass", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the command line, or exits with clap's message; a refused value also says where
/// it came from (the flag, an environment variable, or `.env`), since a bad value in a
/// forgotten `.env` otherwise looks like a bad flag.
pub fn parse() -> Cli {
    let err = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    let Some(origin) = value_origin(&err) else { err.exit() };
    let text = err.render().to_string();
    let (first, rest) = text.split_once('\n').unwrap_or((text.as_str(), ""));
    eprintln!("{first}\n  (the value came {origin})\n{rest}");
    std::process::exit(2)
}

/// Where the refused value of a clap error came from.
fn value_origin(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(err.kind(), ErrorKind::ValueValidation | ErrorKind::InvalidValue) {
        return None;
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else { return None };
    let flag = arg.split_whitespace().next()?;
    if std::env::args().any(|a| a == flag || a.starts_with(&format!("{flag}="))) {
        return Some(format!("from the command line ({flag})"));
    }
    let env = env_of(&<Cli as clap::CommandFactory>::command(), flag.trim_start_matches("--"))?;
    Some(format!("{} ({env})", config::env_source(&env)))
}

/// The environment variable behind the flag `--long`, in `cmd` or its subcommands.
fn env_of(cmd: &clap::Command, long: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .or_else(|| cmd.get_subcommands().find_map(|c| env_of(c, long)))
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SQLite in ./gatepass-data unless configured otherwise).
    Serve(Box<ServeArgs>),
    /// Manage accounts in the data directory (works while the server runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print recent audit events, or check the audit chain with `gatepass audit verify`.
    Audit(AuditArgs),
    /// Print a new random signing secret for GATEPASS_JWT_SECRET.
    Secret,
    /// Manage asymmetric signing keys (works while the server runs).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage OAuth / OpenID Connect clients (works while the server runs).
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Password hashing cost.
    #[command(subcommand)]
    Passwords(PasswordsCommand),
    /// Import users from a Flask app's SQLite database: seed-style (`users` table with
    /// username, password and optionally email) or Flask-SQLAlchemy-style (`user` table,
    /// `password_hash`); plaintext, bcrypt or werkzeug hashes.
    Import {
        /// Source: `sqlite:PATH`, a SQLAlchemy URI (`sqlite:///site.db`), or a path.
        #[arg(long)]
        from: String,
        /// Table holding the users (default: `users`, else `user`).
        #[arg(long)]
        table: Option<String>,
        /// Column with the username (default: `username`).
        #[arg(long)]
        username_column: Option<String>,
        /// Column with the password or its hash (default: `password_hash`, else `password`).
        #[arg(long)]
        password_column: Option<String>,
        /// Column with the e-mail address (default: `email`, if there is one).
        #[arg(long)]
        email_column: Option<String>,
        /// Check everything and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Walk register → login → profile → protected → refresh → logout against a running
    /// server, printing each request and response; exits non-zero on any misbehaviour.
    Demo {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// The server's operator token, to read /info and remove the demo account at the
        /// end. Default: `<data dir>/operator-token` when that file exists.
        #[arg(long, env = "GATEPASS_DEMO_OPERATOR_TOKEN", hide_env_values = true)]
        operator_token: Option<String>,
        /// The server's data directory (where its operator-token file is).
        #[arg(long, env = "GATEPASS_DATA_DIR", default_value = "./gatepass-data")]
        data_dir: std::path::PathBuf,
    },
}

/// `gatepass keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a signing key: published at once, signing after GATEPASS_KEY_ACTIVATION_DELAY.
    Rotate {
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Revoke a signing key at once (a leaked key): unpublished and its tokens refused on
    /// every instance within a second; revoking the key that signs adds a replacement that
    /// signs at once.
    Revoke {
        /// The key id (`kid`), as `gatepass keys list` shows it.
        kid: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Rotate the OpenID provider's keys (RS256 for ID tokens, ES256 for client access
    /// tokens): a new one of each, published at once, signing after
    /// GATEPASS_KEY_ACTIVATION_DELAY; the old ones stay published until their tokens expire.
    RotateProvider {
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// List signing keys (and the OpenID provider's) with their state and dates.
    List {
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
}

/// `gatepass passwords …`
#[derive(Debug, Subcommand)]
pub enum PasswordsCommand {
    /// Measure Argon2id here and print the settings that reach the target time.
    Calibrate {
        /// Time one hash should take, e.g. 250ms.
        #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
        target: std::time::Duration,
        /// Most memory one hash may use, KiB (times the number of concurrent hashes).
        #[arg(long, default_value_t = 65_536)]
        max_memory_kib: u32,
    },
}

/// `gatepass user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. Without --password-stdin a password is generated and printed once.
    Add {
        /// Username.
        name: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Extra roles (repeatable), e.g. --role admin.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
        /// How links are built (the verification mail of an account with an address).
        #[command(flatten)]
        mail: crate::mailing::MailArgs,
    },
    /// Replace an account's extra roles (`user` is always kept); ends its sessions.
    SetRoles {
        /// Username or id.
        name: String,
        /// Roles (repeatable); none leaves just `user`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Disable an account; its sessions end within a second, even on a running server.
    Disable {
        /// Username or id.
        name: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Enable a disabled account.
    Enable {
        /// Username or id.
        name: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Delete an account and end its sessions. Asks for the username again unless --yes.
    Delete {
        /// Username or id.
        name: String,
        /// Do not ask (scripts); without it, a command not on a terminal refuses.
        #[arg(long)]
        yes: bool,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Set a new password (from stdin, or generated and printed once); ends its sessions.
    Passwd {
        /// Username or id.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Mail the account a password-reset link (delivered by the running server's outbox).
    SendReset {
        /// Username or id.
        name: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
        /// How links are built (`GATEPASS_PUBLIC_URL`).
        #[command(flatten)]
        mail: crate::mailing::MailArgs,
    },
    /// Mail the account a new verification link for its address.
    ResendVerification {
        /// Username or id.
        name: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
        /// How links are built (`GATEPASS_PUBLIC_URL`).
        #[command(flatten)]
        mail: crate::mailing::MailArgs,
    },
    /// Remove the account's second factors (authenticator app, passkeys, recovery codes), for an
    /// owner who lost them; the account signs in with its password alone afterwards.
    MfaReset {
        /// Username or id.
        name: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Mark the account's address verified.
    MarkVerified {
        /// Username or id.
        name: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// List accounts.
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Most accounts to show (at most 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Accounts to skip (the previous page's footer says which offset comes next).
        #[arg(long, default_value_t = 0)]
        offset: u32,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings (the master key links the audit entries).
        #[command(flatten)]
        security: SecurityArgs,
    },
}

/// `gatepass token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a token's header and claims WITHOUT verifying it.
    Decode {
        /// The JWT.
        jwt: String,
    },
    /// Verify a token with the server's configuration (the same flags, environment, `.env`
    /// and data directory as `serve`) and say why it fails, if it does; an expired token is
    /// refused even within the leeway. Prints the token's times (UTC, and how long ago).
    Verify {
        /// The JWT.
        jwt: String,
        /// Where the data is.
        #[command(flatten)]
        store: StoreArgs,
        /// Signing and hashing settings.
        #[command(flatten)]
        security: SecurityArgs,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            crate::telemetry::init(&args.log_format);
            let data_dir = args.store.data_dir.clone();
            let app = Application::build(*args).await?;
            match app.operator_token() {
                Some(token) => {
                    use std::io::IsTerminal;
                    app::deliver_operator_token(token, &data_dir, std::io::stdout().is_terminal())?;
                }
                None => app::remove_operator_token_file(&data_dir),
            }
            app.run_until(app::shutdown_signal()).await
        }
        Command::User(cmd) => {
            crate::telemetry::init("text");
            user::run(cmd).await
        }
        Command::Token(cmd) => token::run(cmd).await,
        Command::Audit(args) => {
            crate::telemetry::init("text");
            audit::run(args).await
        }
        Command::Keys(cmd) => {
            crate::telemetry::init("text");
            keys::run(cmd).await
        }
        Command::Clients(cmd) => {
            crate::telemetry::init("text");
            clients::run(cmd).await
        }
        Command::Secret => {
            println!("{}", config::generate_secret());
            Ok(())
        }
        Command::Demo { url, operator_token, data_dir } => {
            let from_file = || std::fs::read_to_string(data_dir.join(app::OPERATOR_TOKEN_FILE)).ok();
            let operator = operator_token.or_else(from_file).map(|t| t.trim().to_owned());
            crate::demo::run(&url, operator.as_deref()).await
        }
        Command::Import { from, table, username_column, password_column, email_column, dry_run, store, security } => {
            let shape = crate::service::import::SourceShape { table, username_column, password_column, email_column };
            import::run(&from, &shape, dry_run, &store, &security).await
        }
        Command::Passwords(PasswordsCommand::Calibrate { target, max_memory_kib }) => {
            let c = tokio::task::spawn_blocking(move || crate::auth::calibrate::calibrate(target, max_memory_kib))
                .await??;
            println!("# Argon2id: one hash takes {} ms here (target {} ms)", c.took.as_millis(), target.as_millis());
            println!("GATEPASS_ARGON2_MEMORY_KIB={}", c.cost.memory_kib);
            println!("GATEPASS_ARGON2_ITERATIONS={}", c.cost.iterations);
            println!("GATEPASS_ARGON2_PARALLELISM={}", c.cost.parallelism);
            Ok(())
        }
    }
}

/// A new password: the first line of standard input with `--password-stdin`, otherwise a
/// generated one. The flag says whether it was generated (and so must be shown once).
fn new_password(password_stdin: bool) -> anyhow::Result<(String, bool)> {
    if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
    } else {
        Ok((config::generate_secret()[..24].to_owned(), true))
    }
}

/// A service error as the command line reports it.
/// Writes `rows` under `header` in columns padded to the widest cell, counting characters
/// (not bytes), so names with accents line up.
pub(super) fn write_table<const N: usize>(
    out: &mut impl Write,
    header: &[&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

fn fail(e: crate::error::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message())
}
