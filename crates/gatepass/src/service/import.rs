//! `gatepass import --from sqlite:PATH`: moves users from a database shaped like the seed
//! apps' (`users` table with `username`, `password` and optionally `email`). Accounts are
//! created through `Core::add_account`, so each is audited like any other creation.
//!
//! Plaintext passwords are hashed with Argon2id; bcrypt and werkzeug `pbkdf2:`/`scrypt:`
//! hashes are kept as they are and replaced by Argon2id at the user's next login.

use sqlx::{Connection, Row};
use std::collections::HashSet;
use std::str::FromStr;

use super::{Actor, Core, now};
use crate::auth::passwords::{is_known_hash, legacy_cost_problem};
use crate::domain::{Email, Password, Roles, User, UserId, Username};
use crate::error::Error;

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Rows read from the source.
    pub read: usize,
    /// Accounts created (or that would be, with `--dry-run`).
    pub imported: usize,
    /// Rows skipped, with the source username (or row number) and the reason.
    pub skipped: Vec<(String, String)>,
}

/// One source row, before checks.
struct SourceRow {
    username: String,
    password: Option<String>,
    email: Option<String>,
}

/// Reads every row of `users` from the SQLite database at `path`.
async fn read_source(path: &str) -> anyhow::Result<Vec<SourceRow>> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?.read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let columns: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('users')")
        .fetch_all(&mut conn)
        .await?
        .iter()
        .filter_map(|r| r.try_get::<String, _>(0).ok())
        .collect();
    for needed in ["username", "password"] {
        if !columns.iter().any(|c| c == needed) {
            anyhow::bail!("the source has no users.{needed} column (found: {})", columns.join(", "));
        }
    }
    let sql = if columns.iter().any(|c| c == "email") {
        "SELECT CAST(username AS TEXT), CAST(password AS TEXT), CAST(email AS TEXT) FROM users"
    } else {
        "SELECT CAST(username AS TEXT), CAST(password AS TEXT), NULL FROM users"
    };
    let rows = sqlx::query(sql).fetch_all(&mut conn).await?;
    Ok(rows
        .iter()
        .map(|r| SourceRow {
            username: r.try_get::<Option<String>, _>(0).ok().flatten().unwrap_or_default(),
            password: r.try_get::<Option<String>, _>(1).ok().flatten(),
            email: r.try_get::<Option<String>, _>(2).ok().flatten(),
        })
        .collect())
}

/// Imports users from `path`. With `dry_run`, checks everything and writes nothing.
/// `progress` is called after each row with (done, total).
pub async fn import_sqlite(
    core: &Core,
    path: &str,
    dry_run: bool,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<ImportReport> {
    let rows = read_source(path).await?;
    let mut report = ImportReport { read: rows.len(), ..Default::default() };
    let mut seen: HashSet<String> = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let label = if row.username.is_empty() { format!("row {}", i + 1) } else { row.username.clone() };
        match prepare(row, core, &mut seen).await {
            Ok(user) => {
                if !dry_run {
                    match core.add_account(&Actor::cli(), user, true).await {
                        Ok(_) => {}
                        Err(Error::UsernameTaken) => {
                            report.skipped.push((label, "username already exists".into()));
                            progress(i + 1, rows.len());
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                report.imported += 1;
            }
            Err(reason) => report.skipped.push((label, reason)),
        }
        progress(i + 1, rows.len());
    }
    Ok(report)
}

async fn prepare(row: &SourceRow, core: &Core, seen: &mut HashSet<String>) -> Result<User, String> {
    let username = Username::parse(&row.username).map_err(|e| format!("invalid username: {}", e.message))?;
    if !seen.insert(username.canonical()) {
        return Err("duplicate username in the source (case-insensitive)".into());
    }
    if core.storage.user_by_username(&username.canonical()).await.map_err(|e| e.to_string())?.is_some() {
        return Err("username already exists".into());
    }
    let email = match row.email.as_deref().filter(|e| !e.is_empty()) {
        Some(e) => Some(Email::parse(e).map_err(|_| "invalid email".to_owned())?),
        None => None,
    };
    let raw = row.password.as_deref().filter(|p| !p.is_empty()).ok_or("empty password")?;
    let password_hash = if is_known_hash(raw) {
        if let Some(why) = legacy_cost_problem(raw) {
            return Err(format!("password hash cost refused: {why}"));
        }
        raw.to_owned()
    } else if raw.starts_with('$') || raw.starts_with("sha256$") || raw.starts_with("md5$") {
        return Err("unsupported password hash format".into());
    } else {
        // The user already has this password; the import keeps it working rather than
        // applying the policy for new passwords.
        let pw = Password::parse_existing(raw, "password").map_err(|e| e.message)?;
        core.hasher.hash(&pw).await.map_err(|e| e.to_string())?
    };
    Ok(User {
        id: UserId::new(),
        username,
        email,
        email_verified: false,
        password_hash,
        roles: Roles::default_user(),
        disabled: false,
        created_at: now(),
    })
}
