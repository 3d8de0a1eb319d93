//! Configuration: flags, environment variables and a `.env` file (flags win), parsed by
//! clap into [`ServeArgs`] (with [`StoreArgs`] and [`SecurityArgs`] shared by the commands
//! that work on the data directory); [`crate::app`] turns them into a running server.

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::passwords::HashCost;

/// Where data lives; shared by `serve` and the commands that work on the data directory.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data directory (SQLite database, generated secrets).
    #[arg(long, env = "GATEPASS_DATA_DIR", default_value = "./gatepass-data")]
    pub data_dir: PathBuf,
    /// Database URL; defaults to an SQLite file in the data directory.
    #[arg(long, env = "GATEPASS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Create the SQLite database if it does not exist yet. `serve` always does; the other
    /// commands refuse without it, so that one run from the wrong directory cannot quietly
    /// work on a new, empty database.
    #[arg(long)]
    pub init: bool,
}

impl StoreArgs {
    /// The database URL in force.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("gatepass.db").display()),
        }
    }

    /// Which database this is, for logs and messages: the absolute SQLite file, or the
    /// PostgreSQL host, port and database (never the password).
    pub fn describe(&self) -> String {
        use std::str::FromStr;
        let url = self.database_url();
        if url.starts_with("sqlite:") {
            let file = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .map(|o| o.get_filename().to_path_buf())
                .unwrap_or_else(|_| self.data_dir.join("gatepass.db"));
            return format!("SQLite {}", std::path::absolute(&file).unwrap_or(file).display());
        }
        match sqlx::postgres::PgConnectOptions::from_str(&url) {
            Ok(o) => {
                format!("PostgreSQL {}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or("(default)"))
            }
            Err(_) => "an unparsable database URL".to_owned(),
        }
    }
}

/// Token and password settings shared by `serve` and the token/user commands.
#[derive(Debug, Clone, Args)]
pub struct SecurityArgs {
    /// HS256 signing secret, at least 32 bytes (alias: JWT_SECRET_KEY). Generated and kept
    /// in the data directory when unset.
    #[arg(long, env = "GATEPASS_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// Issuer (`iss`) of tokens.
    #[arg(long, env = "GATEPASS_ISSUER", default_value = "gatepass")]
    pub issuer: String,
    /// Audience (`aud`) put in and required of tokens.
    #[arg(long, env = "GATEPASS_AUDIENCE")]
    pub audience: Option<String>,
    /// Access-token lifetime, e.g. `15m` or `900s`.
    #[arg(long, env = "GATEPASS_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = duration_in("1s", "24h"))]
    pub access_token_ttl: Duration,
    /// Clock-skew leeway for `exp`/`nbf`/`iat`, at most 60s.
    #[arg(long, env = "GATEPASS_TOKEN_LEEWAY", default_value = "30s", value_parser = duration_in("0s", "60s"))]
    pub token_leeway: Duration,
    /// Argon2id memory cost in KiB.
    #[arg(long, env = "GATEPASS_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    #[arg(long, env = "GATEPASS_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// Argon2id parallelism.
    #[arg(long, env = "GATEPASS_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// Token signing algorithm: HS256 (shared secret), EdDSA or ES256 (preferred for
    /// public-key verification via JWKS), RS256 (interoperability only).
    #[arg(long, env = "GATEPASS_JWT_ALGORITHM", default_value = "HS256", ignore_case = false)]
    pub jwt_algorithm: crate::auth::keys::SigningAlgorithm,
    /// Secret (at least 32 bytes) from which the keys encrypting private signing keys at rest
    /// and linking the audit chain are derived. Generated and kept in the data directory
    /// when unset and the database is the embedded default; required with an external
    /// database.
    #[arg(long, env = "GATEPASS_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<SecretString>,
    /// How long a rotated-in key is published before it signs, so that JWKS caches fetch it.
    #[arg(long, env = "GATEPASS_KEY_ACTIVATION_DELAY", default_value = "10m", value_parser = duration_in("0s", "7d"))]
    pub key_activation_delay: Duration,
    /// Shortest new password, bytes (NIST: at least 8; 15 recommended).
    #[arg(long, env = "GATEPASS_PASSWORD_MIN_LENGTH", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub password_min_length: u16,
}

impl SecurityArgs {
    /// The Argon2id cost.
    pub fn hash_cost(&self) -> HashCost {
        HashCost {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }
}

/// Settings of `gatepass serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "GATEPASS_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Where the data is.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Signing and hashing settings.
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Throttling and connection limits.
    #[command(flatten)]
    pub abuse: crate::limits::AbuseArgs,
    /// Mail: SMTP server or `.eml` files, sender, public URL, notices.
    #[command(flatten)]
    pub mail: crate::mailing::MailArgs,
    /// Refresh-token lifetime (each rotation starts a new one).
    #[arg(long, env = "GATEPASS_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = duration_in("60s", "365d"))]
    pub refresh_token_ttl: Duration,
    /// Absolute session lifetime, however often it is refreshed.
    #[arg(long, env = "GATEPASS_SESSION_MAX_AGE", default_value = "90d", value_parser = duration_in("1s", "3650d"))]
    pub session_max_age: Duration,
    /// Window in which a just-rotated refresh token may be presented again and get the
    /// same successor (lost responses, parallel tabs).
    #[arg(long, env = "GATEPASS_REFRESH_REUSE_GRACE", default_value = "10s", value_parser = duration_in("0s", "5m"))]
    pub refresh_reuse_grace: Duration,
    /// Whether anyone may register (changeable at run time).
    #[arg(long, env = "GATEPASS_REGISTRATION_OPEN", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = parse_bool)]
    pub registration_open: bool,
    /// Mark cookies `Secure` and use `__Host-` names. Default: on when listening beyond
    /// loopback, when the issuer is an `https://` URL, or for requests a trusted proxy
    /// marks `X-Forwarded-Proto: https`.
    #[arg(long, env = "GATEPASS_COOKIE_SECURE", action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub cookie_secure: Option<bool>,
    /// How recently the password must have been entered for sensitive actions.
    #[arg(long, env = "GATEPASS_FRESH_AUTH_MAX_AGE", default_value = "10m", value_parser = duration_in("0s", "24h"))]
    pub fresh_auth_max_age: Duration,
    /// Bearer secret required to read `/metrics`. Unset: metrics are served only on a
    /// loopback listener, and refused (404) on any other.
    #[arg(long, env = "GATEPASS_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<SecretString>,
    /// The start-up operator token (seed 000): `on` mints a fresh admin token at every
    /// start, printed when stdout is a terminal and otherwise written to
    /// `<data dir>/operator-token` (mode 0600); `off` disables it.
    #[arg(long, env = "GATEPASS_OPERATOR_TOKEN", default_value = "on", action = clap::ArgAction::Set,
          value_parser = parse_bool)]
    pub operator_token: bool,
    /// Dynamic client registration (RFC 7591) at `/oauth/register`: `off`, `open` (anyone,
    /// rate-limited), or `token` (whoever presents `GATEPASS_OAUTH_REGISTRATION_TOKEN` as a
    /// bearer token). Registered clients are limited until an administrator promotes them.
    #[arg(long, env = "GATEPASS_OAUTH_REGISTRATION", default_value = "off",
          value_parser = ["off", "open", "token"])]
    pub oauth_registration: String,
    /// The initial access token for `GATEPASS_OAUTH_REGISTRATION=token` (at least 32 bytes).
    #[arg(long, env = "GATEPASS_OAUTH_REGISTRATION_TOKEN", hide_env_values = true)]
    pub oauth_registration_token: Option<SecretString>,
    /// Lifetime of the operator token (at most 24h); it also dies with the process.
    #[arg(long, env = "GATEPASS_OPERATOR_TOKEN_TTL", default_value = "1h", value_parser = duration_in("1s", "24h"))]
    pub operator_token_ttl: Duration,
    /// How often the server reloads signing keys from storage (picks up rotations made by
    /// the CLI or another instance).
    #[arg(long, env = "GATEPASS_KEY_RELOAD_INTERVAL", default_value = "5s", value_parser = duration_in("100ms", "1h"))]
    pub key_reload_interval: Duration,
    /// Services allowed to call `/api/introspect` and follow the revocation feed with HTTP Basic auth:
    /// `id:secret,id2:secret2` (secrets at least 32 bytes).
    #[arg(long, env = "GATEPASS_INTROSPECTION_CLIENTS", hide_env_values = true)]
    pub introspection_clients: Option<SecretString>,
    /// Interval of the revocation feed's heartbeats (SSE comments that keep idle
    /// connections open through proxies and tell subscribers the feed is alive).
    #[arg(long, env = "GATEPASS_REVOCATION_FEED_HEARTBEAT", default_value = "15s", value_parser = duration_in("1s", "10m"))]
    pub revocation_feed_heartbeat: Duration,
    /// Most revocations kept in memory for feed subscribers (in 16 batches at most); a
    /// subscriber further behind reads the rest from storage. Bounds the feed's memory.
    #[arg(long, env = "GATEPASS_REVOCATION_FEED_BUFFER", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub revocation_feed_buffer: u32,
    /// Log format: `text` or `json`.
    #[arg(long, env = "GATEPASS_LOG_FORMAT", default_value = "text", ignore_case = true,
          value_parser = clap::builder::PossibleValuesParser::new(["text", "json"]))]
    pub log_format: String,
}

/// The one parser of boolean settings: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in
/// any case, because operators write all of them in environment files and unit files.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("`{s}` is not a boolean (use true/false, 1/0, yes/no or on/off)")),
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 15m, 900s, 30d)"))
}

/// A duration parser that refuses values outside `min..=max` (written as durations, e.g.
/// `"1s"`, `"24h"`): an out-of-range value stops start-up instead of being clamped.
pub fn duration_in(
    min: &'static str,
    max: &'static str,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let d = parse_duration(s)?;
        let (lo, hi) = (parse_duration(min)?, parse_duration(max)?);
        if d < lo || d > hi {
            return Err(format!("must be from {min} to {max}"));
        }
        Ok(d)
    }
}

/// A listen address: `HOST:PORT` with an IP or a host name (resolved once, at start), or
/// `:PORT` for every interface.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| format!("`{port}` is not a port number"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let mut found = s.to_socket_addrs().map_err(|e| format!("expected HOST:PORT or :PORT ({e})"))?;
    found.next().ok_or_else(|| format!("`{s}` resolves to no address"))
}

/// Seconds of a duration as i64, saturating.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Name of the generated secret file inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";

/// Resolves the signing secret: the configured one (checked), else the one kept in the
/// data directory, generated on first start.
pub fn signing_secret(security: &SecurityArgs, data_dir: &Path) -> anyhow::Result<SecretString> {
    if let Some(secret) = &security.jwt_secret {
        check_secret(secret.expose_secret(), &origin("GATEPASS_JWT_SECRET", "--jwt-secret", secret))?;
        return Ok(secret.clone());
    }
    if let Some(secret) = std::env::var("JWT_SECRET_KEY").ok().filter(|s| !s.is_empty()) {
        let what = format!("JWT_SECRET_KEY (alias of GATEPASS_JWT_SECRET, {})", env_source("JWT_SECRET_KEY"));
        check_secret(&secret, &what)?;
        return Ok(SecretString::from(secret));
    }
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        let secret = std::fs::read_to_string(&path)?.trim().to_owned();
        check_secret(&secret, &format!("the signing secret in {}", path.display()))?;
        return Ok(SecretString::from(secret));
    }
    ensure_data_dir(data_dir)?;
    let secret = generate_secret();
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a new signing secret (kept for restarts)");
    Ok(SecretString::from(secret))
}

/// Name of the generated master-key file inside the data directory.
pub const MASTER_KEY_FILE: &str = "master-key";

/// Resolves the master secret, whatever the signing algorithm (it keys the audit chain
/// too): `GATEPASS_MASTER_KEY` (checked), else the file kept in the data directory
/// (generated on first use), which only the embedded default database may use: with a
/// shared database every instance needs the same configured key.
pub fn master_secret(security: &SecurityArgs, store: &StoreArgs) -> anyhow::Result<SecretString> {
    if let Some(secret) = &security.master_key {
        check_secret(secret.expose_secret(), &origin("GATEPASS_MASTER_KEY", "--master-key", secret))?;
        return Ok(secret.clone());
    }
    if store.database_url.is_some() {
        anyhow::bail!(
            "set GATEPASS_MASTER_KEY (the same on every instance) with an external database: it keys the audit \
             chain and encrypts signing keys at rest"
        );
    }
    let path = store.data_dir.join(MASTER_KEY_FILE);
    if path.exists() {
        let secret = std::fs::read_to_string(&path)?.trim().to_owned();
        check_secret(&secret, &format!("the master key in {}", path.display()))?;
        return Ok(SecretString::from(secret));
    }
    ensure_data_dir(&store.data_dir)?;
    match write_private(&path, &generate_secret()) {
        Ok(()) => tracing::info!(path = %path.display(), "generated a new master key (kept for restarts)"),
        Err(e) if !path.exists() => return Err(e),
        Err(_) => {}
    }
    // Read back rather than return the generated value: if another process won the race
    // to create the file, its key is the one in force.
    let secret = std::fs::read_to_string(&path)?.trim().to_owned();
    Ok(SecretString::from(secret))
}

/// Where a configured secret came from, for error messages: the environment or `.env`
/// when it holds this very value, otherwise the command-line flag.
fn origin(env: &str, flag: &str, value: &SecretString) -> String {
    match std::env::var(env) {
        Ok(v) if v == value.expose_secret() => format!("{env} ({})", env_source(env)),
        _ => format!("{env} (from the {flag} flag)"),
    }
}

/// The names `.env` put into the environment (set once by the binary, before parsing).
static FROM_DOTENV: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();

/// Reads `.env` into the environment (values already set win) and remembers which names
/// it supplied, so that errors can say a value came from there. A missing file is normal.
///
/// # Errors
/// A `.env` that exists but cannot be read or parsed.
pub fn load_dotenv() -> Result<(), dotenvy::Error> {
    let before: std::collections::HashSet<String> =
        std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).collect();
    let loaded = dotenvy::dotenv();
    let added = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()).filter(|k| !before.contains(k)).collect();
    let _ = FROM_DOTENV.set(added);
    match loaded {
        Err(e) if !e.not_found() => Err(e),
        _ => Ok(()),
    }
}

/// "from .env" or "from the environment", for the variable `env`.
pub fn env_source(env: &str) -> &'static str {
    if FROM_DOTENV.get().is_some_and(|keys| keys.contains(env)) { "from .env" } else { "from the environment" }
}

/// SHA-256 digests of published weak secrets (jwt.io examples, JWT-secret wordlists,
/// tutorial defaults), one lower-case hex digest per line. Digests rather than the
/// secrets so that the binary and the source are not one more wordlist.
const WEAK_SECRET_DIGESTS: &str = include_str!("weak-secrets.sha256");

/// Whether the lower-cased secret is on the list of published weak secrets.
fn is_published(secret: &str) -> bool {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(secret.to_lowercase().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    WEAK_SECRET_DIGESTS.lines().map(str::trim).any(|line| line == hex)
}

/// Longest pattern whose repetition counts as "a repeated short pattern".
const MAX_PATTERN_LEN: usize = 16;

/// Why `secret` is not fit to be a signing or master secret, if it is not. The rules look
/// for what people type instead of generating: published secrets, too few bytes, few
/// distinct characters, digits only, a short pattern repeated, long runs of consecutive
/// characters (`abcdef…`, `0123…`). A generated secret (`gatepass secret`, 64 random hex
/// characters) passes all of them with overwhelming probability.
pub fn secret_weakness(secret: &str) -> Option<String> {
    let bytes = secret.as_bytes();
    if is_published(secret) {
        return Some("is a published example secret (it is on public JWT-secret wordlists)".into());
    }
    if bytes.len() < gatepass_verify::MIN_SECRET_LEN {
        return Some(format!("is {} bytes; it must be at least 32 random bytes", bytes.len()));
    }
    let distinct: std::collections::HashSet<u8> = bytes.iter().copied().collect();
    if distinct.len() < 10 {
        return Some(format!("has only {} distinct characters", distinct.len()));
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        return Some("is digits only".into());
    }
    if let Some(p) = (1..=MAX_PATTERN_LEN).find(|&p| bytes.iter().zip(&bytes[p..]).all(|(a, b)| a == b)) {
        return Some(format!("repeats a pattern of {p} characters"));
    }
    // Three-character windows: a secret built from a few repeated fragments has few
    // distinct ones; random text almost never repeats one.
    let windows: std::collections::HashSet<&[u8]> = bytes.windows(3).collect();
    if windows.len() * 2 < bytes.len() - 2 {
        return Some("is mostly repetitions of a few fragments".into());
    }
    let steps = bytes.windows(2).filter(|w| is_step(w[0], w[1])).count();
    if steps * 2 >= bytes.len() - 1 {
        return Some("is mostly runs of consecutive characters (like abcdef or 0123)".into());
    }
    None
}

/// Whether `b` follows or precedes `a` in the alphabet or among the digits (`9` → `0`
/// wraps, as in `…78901…`).
fn is_step(a: u8, b: u8) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    a.abs_diff(b) == 1 || matches!((a, b), (b'9', b'0') | (b'0', b'9'))
}

/// Refuses a weak secret (see [`secret_weakness`]), naming the setting and where it came
/// from (`what`).
pub fn check_secret(secret: &str, what: &str) -> anyhow::Result<()> {
    match secret_weakness(secret) {
        None => Ok(()),
        Some(why) => anyhow::bail!("{what} {why}: generate one with `gatepass secret` and use that instead"),
    }
}

/// 256 random bits as 64 hex characters.
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the data directory, readable by the owner only.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes a file with mode 0600 from the start (never world-readable, even briefly).
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn booleans_accept_the_usual_spellings_in_every_boolean_setting() {
        for (value, expected) in
            [("1", true), ("0", false), ("yes", true), ("No", false), ("ON", true), ("off", false), ("True", true)]
        {
            let argv = [
                "gatepass",
                "--cookie-secure",
                value,
                "--registration-open",
                value,
                "--rate-limit",
                value,
                "--operator-token",
                value,
            ];
            let args = Serve::try_parse_from(argv).unwrap_or_else(|e| panic!("{value}: {e}")).args;
            assert_eq!(args.cookie_secure, Some(expected), "{value}");
            assert_eq!(args.registration_open, expected, "{value}");
            assert_eq!(args.abuse.rate_limit, expected, "{value}");
            assert_eq!(args.operator_token, expected, "{value}");
        }
        assert!(Serve::try_parse_from(["gatepass", "--cookie-secure", "maybe"]).is_err());
        let defaults = Serve::try_parse_from(["gatepass"]).unwrap().args;
        assert!(defaults.registration_open && defaults.abuse.rate_limit && defaults.operator_token);
        assert_eq!(defaults.cookie_secure, None);
    }

    #[test]
    fn weak_secrets_are_refused() {
        let weak = [
            "super-secret-key",
            "your-secret-key-change-this",
            "secret123",
            "fallback-key",
            "your-256-bit-secret",
            "a-string-secret-at-least-256-bits-long",
            "A-String-Secret-At-Least-256-Bits-Long",
            "qwertyuiopasdfghjklzxcvbnm123456",
            "your-super-secret-jwt-token-with-at-least-32-characters-long",
            "12345678901234567890123456789012",
            "98765432109876543210987654321098765",
            "31415926535897932384626433832795028841971",
            &"a".repeat(40),
            &"ab1".repeat(15),
            "xyzabcdefghijklmnopqrstuvwxyz0123456789",
            "zyxwvutsrqponmlkjihgfedcba9876543210",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ",
            "secretsecretsecretsecretsecret12",
        ];
        for weak in weak {
            let err =
                check_secret(weak, "GATEPASS_JWT_SECRET (from the --jwt-secret flag)").expect_err(weak).to_string();
            assert!(err.starts_with("GATEPASS_JWT_SECRET (from the --jwt-secret flag) "), "{err}");
            assert!(!err.contains(weak), "the secret itself is never repeated: {err}");
        }
    }

    #[test]
    fn generated_and_known_good_secrets_pass() {
        for _ in 0..10_000 {
            let secret = generate_secret();
            assert_eq!(secret_weakness(&secret), None, "{secret}");
        }
        // The integration-test harness, the key test's second master key and the fuzz
        // target use these.
        for good in [
            "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8",
            "3c1d5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        ] {
            assert_eq!(secret_weakness(good), None, "{good}");
        }
    }

    #[test]
    fn the_weak_secret_list_is_well_formed() {
        let digests: Vec<&str> = WEAK_SECRET_DIGESTS.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(digests.len() > 50);
        for d in &digests {
            assert!(d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{d}");
        }
    }

    #[test]
    fn generated_secret_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let args = SecurityArgs {
            jwt_secret: None,
            issuer: "gatepass".into(),
            audience: None,
            access_token_ttl: Duration::from_secs(900),
            token_leeway: Duration::from_secs(30),
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            jwt_algorithm: crate::auth::keys::SigningAlgorithm::Hs256,
            master_key: None,
            key_activation_delay: Duration::from_secs(600),
            password_min_length: 8,
        };
        // The alias must not leak in from the environment of whoever runs the tests.
        if std::env::var("JWT_SECRET_KEY").is_ok() {
            return;
        }
        let a = signing_secret(&args, dir.path()).unwrap();
        let b = signing_secret(&args, dir.path()).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
