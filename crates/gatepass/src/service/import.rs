//! `gatepass import --from sqlite:PATH`: moves users from a database shaped like the seed
//! apps' (`users` table with `username`, `password` and optionally `email`) or like
//! Flask-SQLAlchemy's and flask-jwt-extended's (`user` table, `password_hash`), or any
//! table and columns named on the command line. Accounts are created through
//! `Core::add_account`, so each is audited like any other creation.
//!
//! Plaintext passwords are hashed with Argon2id; bcrypt and werkzeug `pbkdf2:`/`scrypt:`
//! hashes are kept as they are and replaced by Argon2id at the user's next login.

use sqlx::{Connection, Row};
use std::collections::HashSet;

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

/// Where the users are in the source database; `None` picks the usual names.
#[derive(Debug, Clone, Default)]
pub struct SourceShape {
    /// Table; default `users`, else `user`.
    pub table: Option<String>,
    /// Username column; default `username`.
    pub username_column: Option<String>,
    /// Password column; default `password_hash`, else `password`.
    pub password_column: Option<String>,
    /// E-mail column; default `email` when there is one.
    pub email_column: Option<String>,
}

/// One source row, before checks.
struct SourceRow {
    username: String,
    password: Option<String>,
    email: Option<String>,
}

/// The file a `--from` value names: `sqlite:PATH`, `sqlite://PATH`, SQLAlchemy's
/// `sqlite:///relative` and `sqlite:////absolute`, or a bare path.
pub fn source_path(from: &str) -> std::path::PathBuf {
    let rest = from.strip_prefix("sqlite:").unwrap_or(from);
    let path = if let Some(sqlalchemy) = rest.strip_prefix("///") {
        sqlalchemy
    } else {
        rest.strip_prefix("//").unwrap_or(rest)
    };
    std::path::PathBuf::from(path.split('?').next().unwrap_or(path))
}

/// Names in the source, as SQL identifiers (quoted, so odd names and keywords work).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads every row of the users table from the SQLite database at `path`.
async fn read_source(path: &std::path::Path, shape: &SourceShape) -> anyhow::Result<Vec<SourceRow>> {
    if !path.is_file() {
        anyhow::bail!("no such file");
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&mut conn)
        .await?;
    let table = match &shape.table {
        Some(t) if tables.contains(t) => t.clone(),
        Some(t) => anyhow::bail!("there is no table {t:?} (tables: {})", tables.join(", ")),
        None => ["users", "user"].into_iter().find(|t| tables.iter().any(|x| x == t)).map(str::to_owned).ok_or_else(
            || anyhow::anyhow!("no users or user table (tables: {}); name it with --table", tables.join(", ")),
        )?,
    };
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)").bind(&table).fetch_all(&mut conn).await?;
    let pick = |given: &Option<String>, defaults: &[&str], flag: &str| -> anyhow::Result<Option<String>> {
        match given {
            Some(c) if columns.contains(c) => Ok(Some(c.clone())),
            Some(c) => {
                anyhow::bail!("table {table} has no column {c:?} (given by {flag}; columns: {})", columns.join(", "))
            }
            None => Ok(defaults.iter().find(|d| columns.iter().any(|c| c == *d)).map(|d| (*d).to_owned())),
        }
    };
    let missing = |what: &str, flag: &str| {
        anyhow::anyhow!("table {table} has no {what} column (columns: {}); name it with {flag}", columns.join(", "))
    };
    let username = pick(&shape.username_column, &["username"], "--username-column")?
        .ok_or_else(|| missing("username", "--username-column"))?;
    let password = pick(&shape.password_column, &["password_hash", "password"], "--password-column")?
        .ok_or_else(|| missing("password", "--password-column"))?;
    let email = pick(&shape.email_column, &["email"], "--email-column")?;
    let email = email.map(|c| format!("CAST({} AS TEXT)", ident(&c))).unwrap_or_else(|| "NULL".to_owned());
    let sql = format!(
        "SELECT CAST({} AS TEXT), CAST({} AS TEXT), {email} FROM {}",
        ident(&username),
        ident(&password),
        ident(&table)
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await?;
    Ok(rows
        .iter()
        .map(|r| SourceRow {
            username: r.try_get::<Option<String>, _>(0).ok().flatten().unwrap_or_default(),
            password: r.try_get::<Option<String>, _>(1).ok().flatten(),
            email: r.try_get::<Option<String>, _>(2).ok().flatten(),
        })
        .collect())
}

/// Imports users from the SQLite database at `path`. With `dry_run`, checks every row and
/// writes nothing (and hashes nothing: plaintext passwords are only checked for being
/// usable). `progress` is called after each row with (done, total). Errors name the file.
pub async fn import_sqlite(
    core: &Core,
    path: &std::path::Path,
    shape: &SourceShape,
    dry_run: bool,
    mut progress: impl FnMut(usize, usize),
) -> anyhow::Result<ImportReport> {
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let rows = read_source(path, shape).await.map_err(|e| anyhow::anyhow!("{}: {e:#}", shown.display()))?;
    let mut report = ImportReport { read: rows.len(), ..Default::default() };
    let mut seen: HashSet<String> = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        let label = if row.username.is_empty() { format!("row {}", i + 1) } else { row.username.clone() };
        match prepare(row, core, &mut seen, dry_run).await {
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

async fn prepare(row: &SourceRow, core: &Core, seen: &mut HashSet<String>, dry_run: bool) -> Result<User, String> {
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
        if dry_run { String::new() } else { core.hasher.hash(&pw).await.map_err(|e| e.to_string())? }
    };
    Ok(User {
        id: UserId::new(),
        username,
        email,
        password_hash,
        roles: Roles::default_user(),
        disabled: false,
        created_at: now(),
    })
}
