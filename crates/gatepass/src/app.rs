//! Wiring: turns [`ServeArgs`] into a running server.

use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::auth::csrf::CsrfTokens;
use crate::auth::refresh::RefreshTokens;
use crate::auth::{PasswordHasher, TokenIssuer};
use crate::config::{self, ServeArgs, StoreArgs, secs};
use crate::http::{self, AppState, cookies::CookieSettings};
use crate::service::{AuthService, RuntimeSettings, SessionPolicy};
use crate::storage::{SqliteStorage, Storage};

/// Opens the storage backend named by the database URL.
pub async fn open_storage(store: &StoreArgs) -> anyhow::Result<Arc<dyn Storage>> {
    let url = store.database_url();
    if url.starts_with("sqlite:") {
        if store.database_url.is_none() {
            config::ensure_data_dir(&store.data_dir)?;
        }
        return Ok(Arc::new(SqliteStorage::connect(&url).await?));
    }
    anyhow::bail!("unsupported database URL (expected sqlite://…)")
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
    let verifier_config = gatepass_verify::VerifierConfig {
        issuer: sec.issuer.clone(),
        audience: sec.audience.clone(),
        leeway_secs: sec.token_leeway.as_secs().min(60),
        max_lifetime_secs: 86_400,
    };
    let (issuer, verifier) = TokenIssuer::hs256(secret, verifier_config)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let cost = sec.hash_cost();
    // Building the hasher computes one hash (the dummy): time it, off the async workers.
    let (hasher, took) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        PasswordHasher::new(cost, cores).map(|h| (h, start.elapsed()))
    })
    .await??;
    crate::auth::calibrate::warn_if_off(cost, took);
    let mut settings = RuntimeSettings {
        access_token_ttl: secs(sec.access_token_ttl).clamp(1, 86_400),
        refresh_token_ttl: secs(args.refresh_token_ttl).max(1),
        registration_open: args.registration_open,
        rate_limit: args.abuse.rate_limit_settings(),
        password_min_length: usize::from(sec.password_min_length),
    };
    crate::settings::apply_stored(&mut settings, &storage.settings().await?);
    let policy = SessionPolicy {
        session_max_age: secs(args.session_max_age).max(1),
        reuse_grace: secs(args.refresh_reuse_grace),
        fresh_auth_max_age: secs(args.fresh_auth_max_age),
    };
    let service =
        AuthService::new(storage, hasher, issuer, Arc::new(verifier), RefreshTokens::new(secret), settings, policy);
    service.load_revocations().await?;
    Ok(Arc::new(service))
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    abuse: crate::limits::AbuseArgs,
}

impl Application {
    /// Binds the listener and builds everything. Nothing is served until [`Self::run_until`].
    pub async fn build(args: ServeArgs) -> anyhow::Result<Self> {
        let service = build_service(&args).await?;
        let secret = config::signing_secret(&args.security, &args.store.data_dir)?;
        let listener = TcpListener::bind(args.listen).await?;
        let secure = args.cookie_secure.unwrap_or(!args.listen.ip().is_loopback());
        let state = AppState {
            service,
            csrf: Arc::new(CsrfTokens::new(secret.expose_secret().as_bytes())),
            cookies: CookieSettings { secure },
            started_at: Instant::now(),
        };
        Ok(Self { listener, state, abuse: args.abuse })
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
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = service.sweep().await {
                    tracing::warn!(error = %e, "sweep failed");
                }
            }
        });
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
        Ok(result?)
    }
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
