//! Wiring: turns [`ServeArgs`] into a running server.

use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::auth::clients::IntrospectionClients;
use crate::auth::csrf::CsrfTokens;
use crate::auth::device::DeviceCookies;
use crate::auth::operator::OperatorTokens;
use crate::auth::passwords::HashCost;
use crate::auth::refresh::RefreshTokens;
use crate::auth::{PasswordHasher, TokenIssuer};
use crate::config::{self, SecurityArgs, ServeArgs, StoreArgs, secs};
use crate::http::{self, AppState, MetricsAccess, cookies::CookiePolicy};
use crate::service::{AuthService, Core, KeyManagement, RuntimeSettings, SessionPolicy, sync};
use crate::storage::audit::AuditKey;
use crate::storage::{PostgresStorage, SqliteStorage, Storage};

/// Opens the storage backend named by the database URL.
pub async fn open_storage(store: &StoreArgs, create: bool) -> anyhow::Result<Arc<dyn Storage>> {
    let url = store.database_url();
    if url.starts_with("sqlite:") {
        let file = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
        let file = file.split('?').next().unwrap_or(file);
        let exists = file == ":memory:" || Path::new(file).exists();
        if !create && !exists {
            anyhow::bail!(
                "there is no database at {} (the data directory is {}; GATEPASS_DATA_DIR or --data-dir name \
                 another). Point this command at the server's data directory, or pass --init to create an \
                 empty database here.",
                store.describe().trim_start_matches("SQLite "),
                std::path::absolute(&store.data_dir).unwrap_or_else(|_| store.data_dir.clone()).display()
            );
        }
        if store.database_url.is_none() {
            config::ensure_data_dir(&store.data_dir)?;
        }
        return Ok(Arc::new(SqliteStorage::connect(&url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PostgresStorage::connect(&url).await?));
    }
    anyhow::bail!("unsupported database URL (expected sqlite://… or postgres://…)")
}

/// Longest access-token lifetime any gatepass verifier accepts, in seconds.
const MAX_TOKEN_LIFETIME_SECS: i64 = 86_400;

/// Resolves how signing keys are managed: the algorithm, the HS256 secret, and the master
/// key that encrypts private keys at rest (resolved in HS256 mode too: it keys the audit
/// chain, and generates the replacement when a stored key is revoked).
pub fn key_management(sec: &SecurityArgs, store: &StoreArgs) -> anyhow::Result<KeyManagement> {
    let secret = config::signing_secret(sec, &store.data_dir)?;
    let master = config::master_secret(sec, store)?;
    let master = Some(Arc::new(crate::auth::keys::MasterKey::derive(master.expose_secret().as_bytes())?));
    Ok(KeyManagement {
        algorithm: sec.jwt_algorithm,
        master,
        hs256_secret: Some(Arc::new(zeroize::Zeroizing::new(secret.expose_secret().as_bytes().to_vec()))),
        activation_delay: secs(sec.key_activation_delay),
        retention: MAX_TOKEN_LIFETIME_SECS + secs(sec.token_leeway).min(60),
    })
}

/// The audit chain's key, derived from the master key (see [`crate::storage::audit`]).
pub fn audit_key(sec: &SecurityArgs, store: &StoreArgs) -> anyhow::Result<AuditKey> {
    let master = config::master_secret(sec, store)?;
    let bytes = crate::auth::keys::audit_chain_key(master.expose_secret().as_bytes())?;
    Ok(AuditKey::from_bytes(&bytes))
}

/// The issuer and verifier over the keys in storage; with `create`, first generates a key
/// of the configured asymmetric algorithm if none is the newest (server start-up).
pub async fn token_keys(
    sec: &SecurityArgs,
    store: &StoreArgs,
    core: &Core,
    create: bool,
) -> anyhow::Result<(KeyManagement, TokenIssuer, gatepass_verify::Verifier)> {
    let km = key_management(sec, store)?;
    if create {
        core.ensure_signing_key(&km).await.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    }
    let ring = core.key_ring(&km).await?;
    let verifier_config = gatepass_verify::VerifierConfig {
        issuer: sec.issuer.clone(),
        audience: sec.audience.clone(),
        leeway_secs: sec.token_leeway.as_secs().min(60),
        max_lifetime_secs: MAX_TOKEN_LIFETIME_SECS,
    };
    let (issuer, verifier) = TokenIssuer::with_ring(ring, verifier_config);
    Ok((km, issuer, verifier))
}

/// A password hasher of `cost` sharing `threads` hashing threads, and how long its
/// construction took: building it computes one hash (the dummy), off the async workers.
async fn password_hasher(cost: HashCost, threads: usize) -> anyhow::Result<(PasswordHasher, Duration)> {
    tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        PasswordHasher::new(cost, threads).map(|h| (h, start.elapsed()))
    })
    .await?
}

/// The [`Core`] the command line works with: the data directory's storage, a one-thread
/// hasher, the configured password minimum with the stored settings over it, and the audit
/// chain's key (from the master key, so that its audit entries link like the server's).
pub async fn open_core(store: &StoreArgs, security: &SecurityArgs) -> anyhow::Result<Core> {
    open_core_with(store, security, 1).await
}

/// [`open_core`] with `threads` hashing threads.
pub async fn open_core_with(store: &StoreArgs, security: &SecurityArgs, threads: usize) -> anyhow::Result<Core> {
    let storage = open_storage(store, store.init).await?;
    eprintln!("database: {}", store.describe());
    // Resolved once the database is known to exist: on a mistyped data directory nothing
    // (no master-key file either) is created.
    let audit_key = audit_key(security, store)?;
    let (hasher, _) = password_hasher(security.hash_cost(), threads).await?;
    let configured =
        RuntimeSettings { password_min_length: usize::from(security.password_min_length), ..Default::default() };
    Core::open(storage, hasher, configured, audit_key).await
}

/// Builds the service over `storage` from the configuration: secret, keys, settings.
async fn build_service(
    args: &ServeArgs,
    storage: Arc<dyn Storage>,
    mail: crate::service::mail::MailConfig,
) -> anyhow::Result<Arc<AuthService>> {
    let sec = &args.security;
    let secret = config::signing_secret(sec, &args.store.data_dir)?;
    let secret = secret.expose_secret().as_bytes();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let (hasher, took) = password_hasher(sec.hash_cost(), cores).await?;
    crate::auth::calibrate::warn_if_off(sec.hash_cost(), took);
    let relying_party = crate::service::passkeys::RelyingParty::for_public_url(&mail.public_url)?;
    if relying_party.is_none() {
        tracing::warn!(
            public_url = %mail.public_url,
            "passkeys are off: browsers accept only a host name as WebAuthn relying party, not an IP address; \
             set GATEPASS_PUBLIC_URL (http://localhost:PORT for development)"
        );
    }
    let core =
        Core::open(storage, hasher, configured_settings(args), audit_key(sec, &args.store)?).await?.with_mail(mail);
    let (keys, issuer, verifier) = token_keys(sec, &args.store, &core, true).await?;
    let policy = SessionPolicy {
        session_max_age: secs(args.session_max_age).max(1),
        reuse_grace: secs(args.refresh_reuse_grace),
        fresh_auth_max_age: secs(args.fresh_auth_max_age),
    };
    let service = AuthService::new(core, issuer, Arc::new(verifier), RefreshTokens::new(secret), policy)
        .with_key_management(keys)
        .with_device_cookies(DeviceCookies::new(secret))
        .with_feed_buffer(args.revocation_feed_buffer as usize);
    let service = match relying_party {
        Some(rp) => service.with_relying_party(rp),
        None => service,
    };
    let service = match &args.abuse.redis_url {
        Some(url) => {
            let limiter = crate::auth::ratelimit_redis::RedisLimiter::new(url, &args.abuse.redis_prefix)?;
            if limiter.probe().await {
                tracing::info!("rate limits and failed-login records shared through redis");
            }
            service.with_limiter(Arc::new(limiter))
        }
        None => service,
    };
    let provider = crate::service::oauth::Provider::new(&sec.issuer).with_registration(registration(args)?);
    if provider.issuer().is_some() {
        // The provider's keys are generated once and shared through storage (see
        // service/oauth/keys.rs); without an issuer URL the OAuth endpoints stay off.
        let leeway = service.verifier().config().leeway_secs;
        service
            .core()
            .load_oauth_keys(
                &provider,
                service.key_management().master.clone(),
                leeway,
                service.key_management().retention,
            )
            .await
            .map_err(|e| anyhow::anyhow!("OAuth provider keys: {}", e.message()))?;
    }
    let service = service.with_oauth(provider);
    service.core().load_revocations().await?;
    Ok(Arc::new(service))
}

/// Dynamic client registration as configured; `token` needs an initial access token of at
/// least 32 bytes.
fn registration(args: &ServeArgs) -> anyhow::Result<crate::service::oauth::Registration> {
    use crate::service::oauth::Registration;
    Ok(match args.oauth_registration.as_str() {
        "open" => Registration::Open,
        "token" => {
            let token = args.oauth_registration_token.as_ref().map(|t| t.expose_secret().to_owned());
            match token {
                Some(t) if t.len() >= 32 => Registration::Token(t.into()),
                _ => anyhow::bail!(
                    "GATEPASS_OAUTH_REGISTRATION=token needs GATEPASS_OAUTH_REGISTRATION_TOKEN of at least 32 bytes"
                ),
            }
        }
        _ => Registration::Off,
    })
}

/// Runtime settings as configured by flags and environment, before stored overrides.
fn configured_settings(args: &ServeArgs) -> RuntimeSettings {
    RuntimeSettings {
        access_token_ttl: secs(args.security.access_token_ttl).clamp(1, 86_400),
        refresh_token_ttl: secs(args.refresh_token_ttl).max(1),
        registration_open: args.registration_open,
        rate_limit: args.abuse.rate_limit_settings(),
        password_min_length: usize::from(args.security.password_min_length),
        require_verified_email: args.mail.require_verified_email,
        // A runtime setting only (`PATCH /api/info`): no flag.
        mfa_required_roles: Vec::new(),
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    operator_token: Option<String>,
    mailer: Arc<dyn crate::service::mail::Mailer>,
    key_reload: Duration,
    abuse: crate::limits::AbuseArgs,
}

impl Application {
    /// Binds the listener and builds everything. Nothing is served until [`Self::run_until`].
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let storage = open_storage(&args.store, true).await?;
        Self::build_on(args, storage).await
    }

    /// Like [`Self::build`] over an already-open storage (tests keep a handle to it).
    pub async fn build_on(args: ServeArgs, storage: Arc<dyn Storage>) -> anyhow::Result<Self> {
        // Mail settings are checked before anything else happens: an SMTP server without a
        // public URL stops start-up with a clear message.
        args.mail.config(None)?;
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} (GATEPASS_LISTEN / --listen): {e}", args.listen))?;
        let mail = args.mail.config(Some(listener.local_addr()?))?;
        let mailer = args.mail.mailer(&mail, &args.store.data_dir)?;
        let service = build_service(&args, storage, mail).await?;
        // Said at every start, so a server started from the wrong directory (a new, empty
        // database) shows it at once.
        let accounts = service.core().count_users().await.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        tracing::info!(database = %args.store.describe(), accounts, "database opened");
        let secret = config::signing_secret(&args.security, &args.store.data_dir)?;
        let cookies = CookiePolicy {
            explicit: args.cookie_secure,
            always_https: !args.listen.ip().is_loopback()
                || args.security.issuer.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")),
        };
        let (operator, operator_token) = operator_token(&args, &service)?;
        let state = AppState {
            service,
            csrf: Arc::new(CsrfTokens::new(secret.expose_secret().as_bytes())),
            cookies,
            allowed_origins: args.abuse.cors_origins.iter().filter(|o| o.as_str() != "null").cloned().collect(),
            started_at: Instant::now(),
            metrics: metrics_access(&args),
            operator,
            introspection: Arc::new(match &args.introspection_clients {
                Some(spec) => IntrospectionClients::parse(spec.expose_secret())?,
                None => Default::default(),
            }),
            feed_heartbeat: args.revocation_feed_heartbeat.max(Duration::from_millis(100)),
            instance: Arc::new(crate::service::instances::ThisInstance::new(listener.local_addr()?)),
        };
        http::metrics::handle();
        Ok(Self {
            listener,
            state,
            mailer,
            operator_token,
            key_reload: args.key_reload_interval.max(Duration::from_millis(100)),
            abuse: args.abuse,
        })
    }

    /// This run's operator token, for the start-up banner (`None` when disabled).
    pub fn operator_token(&self) -> Option<&str> {
        self.operator_token.as_deref()
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Shared state (tests and embedders).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Drains buffered histogram samples every tick; unscraped, they would grow without bound.
        let maintenance = sync::spawn_maintenance(self.state.service.clone(), || http::metrics::handle().run_upkeep());
        let reloader = sync::spawn_key_reload(self.state.service.clone(), self.key_reload);
        let follower = sync::spawn_follower(self.state.service.clone());
        let sender = crate::service::mail::spawn_sender(self.state.service.clone(), self.mailer.clone());
        let feed = crate::service::revocation_feed::spawn_feed(self.state.service.clone());
        let heartbeat =
            crate::service::instances::spawn_heartbeat(self.state.service.clone(), (*self.state.instance).clone());
        // Feed streams never end by themselves: end them when shutdown begins, or the
        // graceful drain would wait for them.
        let service = self.state.service.clone();
        let shutdown = async move {
            shutdown.await;
            service.core().feed().close();
        };
        let addr = self.listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        let app = http::edge::apply(http::router(self.state), &self.abuse);
        let limits = crate::server::ConnectionLimits {
            header_read_timeout: self.abuse.header_read_timeout,
            send_timeout: self.abuse.send_timeout.max(Duration::from_millis(100)),
            max_header_bytes: self.abuse.max_header_bytes as usize,
            max_connections: self.abuse.max_connections as usize,
        };
        let result = crate::server::serve(self.listener, app, limits, shutdown).await;
        maintenance.abort();
        heartbeat.abort();
        reloader.abort();
        follower.abort();
        sender.abort();
        feed.abort();
        Ok(result?)
    }
}

/// Who may read `/metrics`; warns when nobody can, so that an empty dashboard has an
/// explanation in the log.
fn metrics_access(args: &ServeArgs) -> MetricsAccess {
    let access = MetricsAccess::new(args.metrics_token.as_ref().map(|t| t.expose_secret()), args.listen);
    if matches!(access, MetricsAccess::Refused) {
        tracing::warn!(
            listen = %args.listen,
            "/metrics is disabled: the server listens beyond loopback and GATEPASS_METRICS_TOKEN is not set"
        );
    }
    access
}

/// Mints this process's operator token unless it is switched off.
fn operator_token(
    args: &ServeArgs,
    service: &AuthService,
) -> anyhow::Result<(Option<Arc<OperatorTokens>>, Option<String>)> {
    if !args.operator_token {
        return Ok((None, None));
    }
    let ttl = secs(args.operator_token_ttl);
    if !(1..=86_400).contains(&ttl) {
        anyhow::bail!("GATEPASS_OPERATOR_TOKEN_TTL must be between 1s and 24h");
    }
    let tokens = OperatorTokens::new();
    let token = tokens.mint(service.issuer(), service.verifier(), ttl, crate::domain::clock::now())?;
    Ok((Some(Arc::new(tokens)), Some(token)))
}

/// Name of the file in the data directory that receives the operator token when standard
/// output is not a terminal.
pub const OPERATOR_TOKEN_FILE: &str = "operator-token";

/// Hands this run's operator token to the operator. On a terminal: the seed-000 banner on
/// standard output. Otherwise standard output is a pipe or a file that journald or a
/// container runtime ships to log aggregators, where an admin token must not go; then the
/// token goes to `<data dir>/operator-token` (mode 0600, replacing the previous run's) and
/// the log names that file, never the token. Returns where the token went (`None`: stdout).
pub fn deliver_operator_token(
    token: &str,
    data_dir: &Path,
    stdout_is_terminal: bool,
) -> anyhow::Result<Option<PathBuf>> {
    if stdout_is_terminal {
        print_operator_banner(token);
        return Ok(None);
    }
    config::ensure_data_dir(data_dir)?;
    let path = data_dir.join(OPERATOR_TOKEN_FILE);
    // Written under a temporary name and renamed over the old file, so that a reader never
    // sees a half-written token and the file is never readable by others, even briefly.
    let tmp = data_dir.join(format!("{OPERATOR_TOKEN_FILE}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    config::write_private(&tmp, &format!("{token}\n"))?;
    std::fs::rename(&tmp, &path)?;
    tracing::info!(path = %path.display(), "standard output is not a terminal: operator token written to a file");
    Ok(Some(path))
}

/// Removes a previous run's operator-token file (the token died with that process; the file
/// would only mislead).
pub fn remove_operator_token_file(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(OPERATOR_TOKEN_FILE));
}

/// Prints the seed-000 banner to standard output, which is a terminal (see
/// [`deliver_operator_token`]). The token never goes through the log.
fn print_operator_banner(token: &str) {
    let rule = "=".repeat(50);
    println!("{rule}\nNEW RUNTIME TOKEN GENERATED:\n{token}\n{rule}");
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_a_terminal_the_operator_token_goes_to_a_private_file_replacing_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = deliver_operator_token("first.token.value", &data, false).unwrap().expect("a file");
        assert_eq!(path, data.join(OPERATOR_TOKEN_FILE));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first.token.value\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        deliver_operator_token("second.token.value", &data, false).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second.token.value\n");
        let names: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [OPERATOR_TOKEN_FILE], "no temporary file left behind");
        remove_operator_token_file(&data);
        assert!(!path.exists());
    }
}
