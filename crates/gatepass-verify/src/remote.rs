//! A JWKS fetched from one configured URL (feature `remote`): cached, refreshed when stale,
//! and refetched when a token names a `kid` the cache lacks, at most once per interval.
//!
//! Nothing named inside a token (`jku`, `x5u`, an issuer URL) is ever fetched: the URL is
//! fixed when the verifier is built.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::jwks::{MAX_JWKS_LEN, keys_from_jwks};
use crate::{Verifier, VerifierConfig, VerifyingKey};

/// How a remote JWKS is cached and refreshed.
#[derive(Debug, Clone)]
pub struct RemoteJwksOptions {
    /// An unknown `kid` triggers a refetch only if the last fetch is at least this old, so
    /// a flood of tokens with random key ids costs at most one request per interval.
    pub min_refresh_interval: Duration,
    /// The key set is refetched (on the next verification) once it is this old.
    pub max_age: Duration,
    /// Timeout of one fetch.
    pub timeout: Duration,
}

impl Default for RemoteJwksOptions {
    /// 30 s minimum between `kid`-triggered refetches, 5 min cache, 5 s timeout.
    fn default() -> Self {
        Self {
            min_refresh_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a remote key set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RemoteJwksError {
    /// The URL is not an absolute `http(s)` URL.
    #[error("invalid JWKS URL")]
    Url,
    /// The request failed or did not answer 200.
    #[error("could not fetch the JWKS: {0}")]
    Fetch(String),
    /// The body is not a usable JWKS document.
    #[error("the JWKS document is invalid")]
    Document,
}

pub(crate) struct RemoteJwks {
    url: reqwest::Url,
    client: reqwest::Client,
    options: RemoteJwksOptions,
    last_fetch: tokio::sync::Mutex<Instant>,
}

impl RemoteJwks {
    async fn fetch(&self) -> Result<Vec<VerifyingKey>, RemoteJwksError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| RemoteJwksError::Fetch(e.without_url().to_string()))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(RemoteJwksError::Fetch(format!("status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| RemoteJwksError::Fetch(e.without_url().to_string()))?
        {
            if body.len() + chunk.len() > MAX_JWKS_LEN {
                return Err(RemoteJwksError::Document);
            }
            body.extend_from_slice(&chunk);
        }
        keys_from_jwks(&body).map_err(|_| RemoteJwksError::Document)
    }

    /// Refetches when the cache is stale, or when `unknown_kid` and the last fetch is at
    /// least `min_refresh_interval` old. A failed fetch keeps the cached keys.
    pub(crate) async fn refresh_if_needed(&self, verifier: &Verifier, unknown_kid: bool) {
        let mut last = self.last_fetch.lock().await;
        let age = last.elapsed();
        if age < self.options.max_age && !(unknown_kid && age >= self.options.min_refresh_interval) {
            return;
        }
        // Counted even when the fetch fails, so an unreachable JWKS is not hammered.
        *last = Instant::now();
        if let Ok(keys) = self.fetch().await {
            verifier.set_keys(keys);
        }
    }
}

impl Verifier {
    /// A verifier whose keys come from the JWKS at `url` (e.g.
    /// `https://auth.example.com/.well-known/jwks.json`). The first fetch happens here and
    /// must succeed; later ones happen during [`Verifier::verify_access_async`] (which the
    /// axum extractors use).
    ///
    /// ```
    /// use gatepass_verify::{RemoteJwksOptions, Verifier, VerifierConfig, VerifyError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # // A stand-in for gatepass's `/.well-known/jwks.json`.
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    /// # let addr = listener.local_addr().unwrap();
    /// # let jwks = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
    /// # let app = axum::Router::new().route("/.well-known/jwks.json", axum::routing::get(move || async move { jwks }));
    /// # tokio::spawn(async move { axum::serve(listener, app).await });
    /// let url = format!("http://{addr}/.well-known/jwks.json");
    /// let verifier = Verifier::from_jwks_url(&url, VerifierConfig::new("gatepass"), RemoteJwksOptions::default())
    ///     .await
    ///     .expect("the JWKS is reachable");
    /// assert_eq!(verifier.keys()[0].kid, "k1");
    /// // A token naming a key the set lacks is refused (after at most one refetch).
    /// let forged = "eyJhbGciOiJFZERTQSIsImtpZCI6Im5vcGUiLCJ0eXAiOiJhdCtqd3QifQ.e30.c2ln";
    /// assert_eq!(verifier.verify_access_async(forged).await.unwrap_err(), VerifyError::Invalid("unknown key id"));
    /// # }
    /// ```
    pub async fn from_jwks_url(
        url: &str,
        config: VerifierConfig,
        options: RemoteJwksOptions,
    ) -> Result<Verifier, RemoteJwksError> {
        let url = reqwest::Url::parse(url).map_err(|_| RemoteJwksError::Url)?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(RemoteJwksError::Url);
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            // A redirect could point anywhere; the key source is exactly the configured URL.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| RemoteJwksError::Fetch(e.to_string()))?;
        let remote = RemoteJwks { url, client, options, last_fetch: tokio::sync::Mutex::new(Instant::now()) };
        let keys = remote.fetch().await?;
        Ok(Verifier::new(keys, config).with_remote(Arc::new(remote)))
    }
}
