//! Wiring: turns [`ServeArgs`] into a running server.

use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::auth::csrf::CsrfTokens;
use crate::auth::operator::OperatorTokens;
use crate::auth::refresh::RefreshTokens;
use crate::auth::{PasswordHasher, TokenIssuer};
use crate::config::{self, SecurityArgs, ServeArgs, StoreArgs, secs};
use crate::http::{self, AppState, cookies::CookieSettings};
use crate::service::{AuthService, KeyManagement, RuntimeSettings, SessionPolicy};
use crate::storage::{PostgresStorage, SqliteStorage, Storage};

/// Opens the storage backend named by the database URL.
pub async fn open_storage(store: &StoreArgs) -> anyhow::Result<Arc<dyn Storage>> {
    let url = store.database_url();
    if url.starts_with("sqlite:") {
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

/// Resolves how signing keys are managed: the algorithm, the HS256 secret, and (for
/// asymmetric algorithms) the master key that encrypts private keys at rest.
pub fn key_management(sec: &SecurityArgs, store: &StoreArgs) -> anyhow::Result<KeyManagement> {
    let secret = config::signing_secret(sec, &store.data_dir)?;
    let master = if sec.jwt_algorithm.is_asymmetric() {
        let master = config::master_secret(sec, store)?;
        Some(Arc::new(crate::auth::keys::MasterKey::derive(master.expose_secret().as_bytes())?))
    } else {
        None
    };
    Ok(KeyManagement {
        algorithm: sec.jwt_algorithm,
        master,
        hs256_secret: Some(Arc::new(zeroize::Zeroizing::new(secret.expose_secret().as_bytes().to_vec()))),
        activation_delay: secs(sec.key_activation_delay),
        retention: MAX_TOKEN_LIFETIME_SECS + secs(sec.token_leeway).min(60),
    })
}

/// The issuer and verifier over the keys in storage; with `create`, first generates a key
/// of the configured asymmetric algorithm if none is the newest (server start-up).
pub async fn token_keys(
    sec: &SecurityArgs,
    store: &StoreArgs,
    storage: &dyn Storage,
    create: bool,
) -> anyhow::Result<(KeyManagement, TokenIssuer, gatepass_verify::Verifier)> {
    let km = key_management(sec, store)?;
    if create {
        crate::service::keys_ensure(storage, &km).await.map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    }
    let stored = storage.signing_keys().await?;
    let ring = km.ring(&stored, crate::service::now(), None)?;
    let verifier_config = gatepass_verify::VerifierConfig {
        issuer: sec.issuer.clone(),
        audience: sec.audience.clone(),
        leeway_secs: sec.token_leeway.as_secs().min(60),
        max_lifetime_secs: MAX_TOKEN_LIFETIME_SECS,
    };
    let (issuer, verifier) = TokenIssuer::with_ring(ring, verifier_config);
    Ok((km, issuer, verifier))
}

/// Builds the service from the configuration: storage, secret, keys, settings.
pub async fn build_service(args: &ServeArgs) -> anyhow::Result<Arc<AuthService>> {
    let storage = open_storage(&args.store).await?;
    build_service_on(args, storage).await
}

/// Like [`build_service`] over an already-open storage.
pub async fn build_service_on(args: &ServeArgs, storage: Arc<dyn Storage>) -> anyhow::Result<Arc<AuthService>> {
    let sec = &args.security;
    let secret = config::signing_secret(sec, &args.store.data_dir)?;
    let secret = secret.expose_secret().as_bytes();
    let (keys, issuer, verifier) = token_keys(sec, &args.store, storage.as_ref(), true).await?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let cost = sec.hash_cost();
    // Building the hasher computes one hash (the dummy): time it, off the async workers.
    let (hasher, took) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        PasswordHasher::new(cost, cores).map(|h| (h, start.elapsed()))
    })
    .await??;
    crate::auth::calibrate::warn_if_off(cost, took);
    let mut settings = configured_settings(args);
    crate::settings::apply_stored(&mut settings, &storage.settings().await?);
    let policy = SessionPolicy {
        session_max_age: secs(args.session_max_age).max(1),
        reuse_grace: secs(args.refresh_reuse_grace),
        fresh_auth_max_age: secs(args.fresh_auth_max_age),
    };
    let service =
        AuthService::new(storage, hasher, issuer, Arc::new(verifier), RefreshTokens::new(secret), settings, policy)
            .with_key_management(keys);
    let service = match &args.abuse.redis_url {
        Some(url) => {
            let limiter = crate::auth::ratelimit_redis::RedisLimiter::new(url, &args.abuse.redis_prefix)?;
            if limiter.probe().await {
                tracing::info!("rate limits shared through redis");
            }
            service.with_limiter(Arc::new(limiter))
        }
        None => service,
    };
    service.load_revocations().await?;
    Ok(Arc::new(service))
}

/// Runtime settings as configured by flags and environment, before stored overrides.
pub fn configured_settings(args: &ServeArgs) -> RuntimeSettings {
    RuntimeSettings {
        access_token_ttl: secs(args.security.access_token_ttl).clamp(1, 86_400),
        refresh_token_ttl: secs(args.refresh_token_ttl).max(1),
        registration_open: args.registration_open,
        rate_limit: args.abuse.rate_limit_settings(),
        password_min_length: usize::from(args.security.password_min_length),
    }
}

/// Puts stored settings in force when another instance changed them.
async fn sync_settings(service: &AuthService, configured: &RuntimeSettings) -> anyhow::Result<()> {
    // Under the update lock, so a concurrent PATCH on this instance is never undone by a
    // read that predates it.
    let _guard = crate::settings::UPDATES.lock().await;
    let mut settings = configured.clone();
    crate::settings::apply_stored(&mut settings, &service.storage().settings().await?);
    if settings != service.settings() {
        service.set_settings(settings);
    }
    Ok(())
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    operator_token: Option<String>,
    configured: RuntimeSettings,
    key_reload: Duration,
    abuse: crate::limits::AbuseArgs,
}

impl Application {
    /// Binds the listener and builds everything. Nothing is served until [`Self::run_until`].
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let service = build_service(&args).await?;
        let secret = config::signing_secret(&args.security, &args.store.data_dir)?;
        let listener = TcpListener::bind(args.listen).await?;
        let secure = args.cookie_secure.unwrap_or(!args.listen.ip().is_loopback());
        let (operator, operator_token) = operator_token(&args, &service)?;
        let state = AppState {
            service,
            csrf: Arc::new(CsrfTokens::new(secret.expose_secret().as_bytes())),
            cookies: CookieSettings { secure },
            started_at: Instant::now(),
            metrics_token: args.metrics_token.as_ref().map(|t| Arc::from(t.expose_secret())),
            operator,
            introspection: Arc::new(match &args.introspection_clients {
                Some(spec) => http::api::introspect::IntrospectionClients::parse(spec.expose_secret())?,
                None => Default::default(),
            }),
        };
        http::metrics::handle();
        Ok(Self {
            listener,
            state,
            operator_token,
            configured: configured_settings(&args),
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
        let service = self.state.service.clone();
        let configured = self.configured;
        let sweeper = tokio::spawn(async move {
            // Every second, pick up revocations and settings that other processes (the
            // CLI, other instances) wrote to storage; every minute, sweep expired rows.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut seen = None;
            for n in 0u64.. {
                tick.tick().await;
                // Drains buffered histogram samples; unscraped, they would grow without bound.
                http::metrics::handle().run_upkeep();
                // Read the version before reloading: a revocation committed in between
                // changes it again, so the next tick reloads once more.
                match service.storage().revocations_version().await {
                    Ok(version) if seen == Some(version) => {}
                    Ok(version) => match service.load_revocations().await {
                        Ok(_) => seen = Some(version),
                        Err(e) => tracing::warn!(error = %e, "revocation reload failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "revocation check failed"),
                }
                if let Err(e) = sync_settings(&service, &configured).await {
                    tracing::warn!(error = %e, "settings reload failed");
                }
                if n % 60 == 59
                    && let Err(e) = service.sweep().await
                {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
        });
        let service = self.state.service.clone();
        let key_reload = self.key_reload;
        let reloader = tokio::spawn(async move {
            let mut tick = tokio::time::interval(key_reload);
            loop {
                tick.tick().await;
                if let Err(e) = service.reload_keys().await {
                    tracing::warn!(error = %e, "signing-key reload failed; keeping the current keys");
                }
            }
        });
        let cluster = crate::cluster::spawn(self.state.service.clone());
        let addr = self.listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        let app = http::edge::apply(http::router(self.state), &self.abuse);
        let limits = crate::server::ConnectionLimits {
            header_read_timeout: self.abuse.header_read_timeout,
            max_header_bytes: self.abuse.max_header_bytes as usize,
            max_connections: self.abuse.max_connections as usize,
        };
        let result = crate::server::serve(self.listener, app, limits, shutdown).await;
        sweeper.abort();
        reloader.abort();
        cluster.abort();
        Ok(result?)
    }
}

/// Mints this process's operator token unless it is switched off.
fn operator_token(
    args: &ServeArgs,
    service: &AuthService,
) -> anyhow::Result<(Option<Arc<OperatorTokens>>, Option<String>)> {
    if args.operator_token == "off" {
        return Ok((None, None));
    }
    let ttl = secs(args.operator_token_ttl);
    if !(1..=86_400).contains(&ttl) {
        anyhow::bail!("GATEPASS_OPERATOR_TOKEN_TTL must be between 1s and 24h");
    }
    let tokens = OperatorTokens::new();
    let token = tokens.mint(service.issuer(), service.verifier(), ttl, crate::service::now())?;
    Ok((Some(Arc::new(tokens)), Some(token)))
}

/// Prints the seed-000 banner to standard output. This is the one place a token is ever
/// printed; it never goes through the log.
pub fn print_operator_banner(token: &str) {
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
