//! The `gatepass` command line.

use clap::{Parser, Subcommand};
use std::io::{BufRead, Write};

use crate::app::{self, Application};
use crate::auth::PasswordHasher;
use crate::config::{self, SecurityArgs, ServeArgs, StoreArgs};
use crate::domain::{Roles, UserId};
use crate::service;

/// gatepass: accounts, JWT access tokens and rotating refresh tokens for your apps.
#[derive(Debug, Parser)]
#[command(name = "gatepass", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    #[allow(missing_docs)]
    pub command: Command,
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
    Audit(crate::admin_cli::AuditArgs),
    /// Print a new random signing secret for GATEPASS_JWT_SECRET.
    Secret,
    /// Manage asymmetric signing keys (works while the server runs).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Password hashing cost.
    #[command(subcommand)]
    Passwords(PasswordsCommand),
    /// Import users from a seed-style SQLite database (`users` table with username,
    /// password and optionally email; plaintext, bcrypt or werkzeug hashes).
    Import {
        /// Source, as `sqlite:PATH`.
        #[arg(long)]
        from: String,
        /// Check everything and report, but write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        security: SecurityArgs,
    },
    /// Walk register → login → profile → protected → refresh → logout against a running
    /// server, printing each request and response; exits non-zero on any misbehaviour.
    Demo {
        /// Base URL of the server.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
}

/// `gatepass keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a signing key: published at once, signing after GATEPASS_KEY_ACTIVATION_DELAY.
    Rotate {
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        security: SecurityArgs,
    },
    /// List signing keys with their state and dates.
    List {
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
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
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        security: SecurityArgs,
    },
    /// Replace an account's extra roles (`user` is always kept); ends its sessions.
    SetRoles {
        /// Username or id.
        name: String,
        /// Roles (repeatable); none leaves just `user`.
        #[arg(long = "role")]
        roles: Vec<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
    },
    /// Disable an account; its sessions end within a second, even on a running server.
    Disable {
        /// Username or id.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
    },
    /// Enable a disabled account.
    Enable {
        /// Username or id.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
    },
    /// Delete an account and end its sessions.
    Delete {
        /// Username or id.
        name: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
    },
    /// Set a new password (from stdin, or generated and printed once); ends its sessions.
    Passwd {
        /// Username or id.
        name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        security: SecurityArgs,
    },
    /// List accounts.
    List {
        /// Only names starting with this.
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
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
    /// Verify a token with the configured secret and say why it fails, if it does.
    Verify {
        /// The JWT.
        jwt: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        store: StoreArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        security: SecurityArgs,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            crate::telemetry::init(&args.log_format);
            let app = Application::build(*args).await?;
            if let Some(token) = app.operator_token() {
                app::print_operator_banner(token);
            }
            app.run_until(app::shutdown_signal()).await
        }
        Command::User(cmd) => {
            crate::telemetry::init("text");
            user(cmd).await
        }
        Command::Token(cmd) => token(cmd).await,
        Command::Audit(args) => crate::admin_cli::audit(args).await,
        Command::Keys(cmd) => {
            crate::telemetry::init("text");
            keys(cmd).await
        }
        Command::Secret => {
            println!("{}", config::generate_secret());
            Ok(())
        }
        Command::Demo { url } => crate::demo::run(&url).await,
        Command::Import { from, dry_run, store, security } => import(&from, dry_run, &store, &security).await,
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

async fn user(cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, email, password_stdin, roles, store, security } => {
            let storage = app::open_storage(&store).await?;
            let hasher = PasswordHasher::new(security.hash_cost(), 1)?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                (config::generate_secret()[..24].to_owned(), true)
            };
            let roles = Roles::parse(&roles).map_err(|e| anyhow::anyhow!("{e}"))?;
            let policy = crate::domain::PasswordPolicy::new(usize::from(security.password_min_length));
            let user = service::create_account_with(
                storage.as_ref(),
                &hasher,
                &policy,
                &name,
                &password,
                email.as_deref(),
                roles,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
            crate::admin::record_created(storage.as_ref(), &crate::admin::Actor::cli(), &user).await;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "created user {} ({}) with roles {}",
                user.username,
                user.id.as_str(),
                user.roles.names().join(",")
            )?;
            if generated {
                writeln!(out, "password: {password}")?;
            }
            Ok(())
        }
        UserCommand::SetRoles { .. }
        | UserCommand::Disable { .. }
        | UserCommand::Enable { .. }
        | UserCommand::Delete { .. }
        | UserCommand::Passwd { .. } => crate::admin_cli::user(cmd).await,
        UserCommand::List { prefix, store } => {
            let storage = app::open_storage(&store).await?;
            let users = storage.list_users(prefix.as_deref(), 10_000, 0).await?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{:<38} {:<24} {:<16} {:<9} email", "id", "username", "roles", "status")?;
            for u in users {
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
            Ok(())
        }
    }
}

async fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Decode { jwt } => {
            let (header, claims) = decode_unverified(&jwt)?;
            println!("UNVERIFIED: the signature has not been checked.");
            println!("header: {}", serde_json::to_string_pretty(&header)?);
            println!("claims: {}", serde_json::to_string_pretty(&claims)?);
            Ok(())
        }
        TokenCommand::Verify { jwt, store, security } => {
            let storage = app::open_storage(&store).await?;
            let (_, _, verifier) = app::token_keys(&security, &store, storage.as_ref(), false).await?;
            match verifier.verify_access(&jwt) {
                Ok(claims) => {
                    let revoked =
                        storage.live_revocations(service::now()).await?.into_iter().any(|r| r.sid == claims.sid);
                    let user = storage.user_by_id(&UserId::from_trusted(claims.sub.clone())).await?;
                    if revoked {
                        anyhow::bail!("token is validly signed but its session was revoked");
                    }
                    if user.is_none() {
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

async fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    let (KeysCommand::Rotate { store, security } | KeysCommand::List { store, security }) = &cmd;
    let storage = app::open_storage(store).await?;
    let km = app::key_management(security, store)?;
    if let KeysCommand::Rotate { .. } = cmd {
        let master = km.master.clone().ok_or_else(|| {
            anyhow::anyhow!("key rotation needs GATEPASS_JWT_ALGORITHM=EdDSA, ES256 or RS256 (HS256 uses the secret)")
        })?;
        let key =
            service::rotate_signing_key(storage.as_ref(), km.algorithm, master, km.activation_delay, km.retention)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        println!(
            "added {} key {}: published now, signs from {}",
            key.alg,
            key.kid,
            crate::http::api::rfc3339(key.activates_at)
        );
    }
    let statuses = crate::auth::keys::timeline(&storage.signing_keys().await?, service::now(), km.retention);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<26} {:<6} {:<8} {:<21} {:<21} unpublished from",
        "kid", "alg", "state", "signs from", "retires at"
    )?;
    let date = |t: Option<i64>| t.map(crate::http::api::rfc3339).unwrap_or_else(|| "-".into());
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

async fn import(from: &str, dry_run: bool, store: &StoreArgs, security: &SecurityArgs) -> anyhow::Result<()> {
    let path = from.strip_prefix("sqlite:").ok_or_else(|| anyhow::anyhow!("--from must be sqlite:PATH"))?;
    let path = path.trim_start_matches("//");
    let storage = app::open_storage(store).await?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let hasher = PasswordHasher::new(security.hash_cost(), cores)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed_precise}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = crate::import::import_sqlite(path, storage.as_ref(), &hasher, dry_run, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    let verb = if dry_run { "would import" } else { "imported" };
    writeln!(out, "read {} rows; {verb} {}; skipped {}", report.read, report.imported, report.skipped.len())?;
    for (who, why) in &report.skipped {
        writeln!(out, "  skipped {who}: {why}")?;
    }
    Ok(())
}
