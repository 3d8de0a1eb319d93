//! Where the failed-login records of the back-off live, and how they change: in Redis when
//! the limiter brings it and it answers, in the database otherwise (and while Redis is
//! unreachable). Either way they are shared by every instance, and the database keeps them
//! across restarts; flushing Redis resets the ones kept there.
//!
//! Every change is a compare-and-swap: read the record, let a pure function of
//! `auth::ratelimit` decide and compute the next one, store it only if nobody changed the
//! record meanwhile, else read again. So attempts racing through any number of instances
//! are charged one after another, and no more than the policy allows get through.

use std::time::Duration;

use super::AuthService;
use crate::auth::ratelimit::{FailureRecord, RateLimitSettings, SharedRecords, stale_after};
use crate::domain::clock::now;
use crate::error::{Error, Result};
use crate::storage::{Storage, StorageError};

/// Rounds of one compare-and-swap before giving up. Only charges and settlements write,
/// so a loser meets at most a few winners; this bounds a pathological pile-up, which is
/// refused (fail closed) rather than let through.
const MAX_ROUNDS: usize = 64;

/// What a step decides about a record.
pub(crate) enum Step<T> {
    /// Leave the record as it is and answer `T`.
    Keep(T),
    /// Store this record (if the one read is still current) and answer `T`.
    Put(FailureRecord, T),
}

enum Store<'a> {
    Shared(&'a dyn SharedRecords),
    Database(&'a dyn Storage),
}

enum Failed {
    /// The shared store did not answer: the database takes over.
    SharedDown,
    Storage(StorageError),
    /// Other writers kept changing the record for [`MAX_ROUNDS`] rounds.
    Contended,
}

impl Store<'_> {
    async fn load(&self, key: &str) -> std::result::Result<Option<String>, Failed> {
        match self {
            Store::Shared(s) => s.load_record(key).await.map_err(|_| Failed::SharedDown),
            Store::Database(d) => d.failure_record(key).await.map_err(Failed::Storage),
        }
    }

    async fn swap(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
        ttl: Duration,
    ) -> std::result::Result<bool, Failed> {
        match self {
            Store::Shared(s) => s.swap_record(key, expected, new, ttl).await.map_err(|_| Failed::SharedDown),
            Store::Database(d) => {
                let expires_at = now().saturating_add(ttl.as_secs() as i64);
                d.swap_failure_record(key, expected, new, expires_at).await.map_err(Failed::Storage)
            }
        }
    }

    /// The record under `key` with the stored text it was read from.
    async fn read(&self, key: &str) -> std::result::Result<(FailureRecord, Option<String>), Failed> {
        let text = self.load(key).await?;
        let record = match text.as_deref().map(FailureRecord::decode) {
            None => FailureRecord::default(),
            Some(Some(record)) => record,
            Some(None) => {
                // Not something gatepass wrote; the next change replaces it.
                tracing::warn!("unreadable failed-login record; treated as empty");
                FailureRecord::default()
            }
        };
        Ok((record, text))
    }

    async fn update<T>(
        &self,
        key: &str,
        s: &RateLimitSettings,
        step: &impl Fn(&FailureRecord) -> Step<T>,
    ) -> std::result::Result<T, Failed> {
        for _ in 0..MAX_ROUNDS {
            let (record, text) = self.read(key).await?;
            match step(&record) {
                Step::Keep(answer) => return Ok(answer),
                Step::Put(next, answer) if next == record && text.is_some() => return Ok(answer),
                Step::Put(next, answer) => {
                    if self.swap(key, text.as_deref(), &next.encode(), stale_after(s)).await? {
                        return Ok(answer);
                    }
                }
            }
        }
        Err(Failed::Contended)
    }
}

impl From<Failed> for Error {
    fn from(f: Failed) -> Self {
        match f {
            Failed::Storage(e) => e.into(),
            // Retried by callers before it gets here; should it not be, refuse.
            Failed::SharedDown | Failed::Contended => Error::RateLimited { retry_after: 1 },
        }
    }
}

impl AuthService {
    /// The failed-login record under `key` (empty when there is none).
    ///
    /// # Errors
    /// When neither the shared store nor the database can be read.
    pub(crate) async fn failure_record(&self, key: &str) -> Result<FailureRecord> {
        if let Some(shared) = self.limiter.records() {
            match Store::Shared(shared).read(key).await {
                Err(Failed::SharedDown) => {}
                other => return Ok(other?.0),
            }
        }
        Ok(Store::Database(&*self.core.storage).read(key).await?.0)
    }

    /// Applies `step` to the failed-login record under `key` atomically (see the module
    /// documentation) and returns its answer.
    ///
    /// # Errors
    /// Storage failures; [`Error::RateLimited`] when the record could not be swapped in
    /// [`MAX_ROUNDS`] rounds.
    pub(crate) async fn update_failures<T>(
        &self,
        key: &str,
        s: &RateLimitSettings,
        step: impl Fn(&FailureRecord) -> Step<T>,
    ) -> Result<T> {
        if let Some(shared) = self.limiter.records() {
            match Store::Shared(shared).update(key, s, &step).await {
                // The limiter has logged the outage; the database decides meanwhile.
                Err(Failed::SharedDown) => {}
                other => return Ok(other?),
            }
        }
        Ok(Store::Database(&*self.core.storage).update(key, s, &step).await?)
    }
}
