//! The policy set a process serves, kept fresh from the policy store: at
//! most every `TOLLGATE_POLICY_REFRESH_SECONDS`, just before a request is
//! handled (a Lambda function is frozen between invocations, so nothing can
//! run in the background), one conditional GET of the stored object. What to
//! serve is decided by `policy::store`; this module does the I/O around it:
//! the fetch, the `PolicyLoadFailures` metric, a log line saying why, and
//! the function's status item for `tollgate policy status`.

use super::clock::Clock;
use crate::audit::{Metrics, metrics};
use crate::aws::{AwsError, PolicyObject, Store};
use crate::domain::Timestamp;
use crate::policy::ActivePolicies;
use crate::policy::store::{Applied, PolicyStatus, PolicyStore};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Where a process's policies come from besides its bundled copy.
pub struct StoreSource {
    /// The stored object.
    pub object: PolicyObject,
    /// How often to check it.
    pub refresh: Duration,
    /// The table the function's status item goes to.
    pub status: Store,
    /// The function's name in its status item.
    pub function: &'static str,
    /// Where `PolicyLoadFailures` goes.
    pub metrics: Metrics,
    /// Times in the status item.
    pub clock: Clock,
}

struct Checker {
    store: PolicyStore,
    source: StoreSource,
    loaded_at: Timestamp,
}

impl Checker {
    /// One `PolicyLoadFailures` (operation `policy`): the alarm's datapoint.
    fn count_failure(&self) {
        self.source
            .metrics
            .count(metrics::POLICY_LOAD_FAILURES, "policy", 1);
    }
}

struct Inner {
    current: RwLock<Arc<ActivePolicies>>,
    /// `None`: the bundled set only (no store configured, or `expiry`).
    checker: Option<tokio::sync::Mutex<Checker>>,
}

tokio::task_local! {
    /// The set a request decides with, fixed when it starts (`Policies::scope`).
    static REQUEST_SET: Arc<ActivePolicies>;
}

/// The current policy set, shared by every handler. Cheap to clone;
/// [`Policies::current`] hands out the set to decide with: inside a request
/// (the router runs each one in [`Policies::scope`]) the set it started
/// with, so every decision of one request uses the same set even when a
/// concurrent request loads a new one.
#[derive(Clone)]
pub struct Policies {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("version", &self.newest().version)
            .field("store", &self.inner.checker.is_some())
            .finish()
    }
}

impl Policies {
    /// Always `set`: no store.
    pub fn fixed(set: ActivePolicies) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: RwLock::new(Arc::new(set)),
                checker: None,
            }),
        }
    }

    /// `bundled` until the store holds a valid set; checked at most every
    /// `source.refresh`. Call [`Policies::start`] before serving.
    pub fn with_store(bundled: ActivePolicies, source: StoreSource) -> Self {
        let loaded_at = source.clock.now();
        let store = PolicyStore::new(bundled.clone(), source.refresh);
        Self {
            inner: Arc::new(Inner {
                current: RwLock::new(Arc::new(bundled)),
                checker: Some(tokio::sync::Mutex::new(Checker {
                    store,
                    source,
                    loaded_at,
                })),
            }),
        }
    }

    /// The set to decide with: the request's, or the newest loaded.
    pub fn current(&self) -> Arc<ActivePolicies> {
        REQUEST_SET
            .try_with(Arc::clone)
            .unwrap_or_else(|_| self.newest())
    }

    /// Runs `f` (a request) with the newest set fixed for its decisions.
    pub async fn scope<F: std::future::Future>(&self, f: F) -> F::Output {
        REQUEST_SET.scope(self.newest(), f).await
    }

    fn newest(&self) -> Arc<ActivePolicies> {
        match self.inner.current.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The first check, at cold start. A store that cannot be read fails
    /// the start: serving the bundled set instead could undo a published
    /// tightening. A missing object (first deploy) serves the bundled set;
    /// an invalid one keeps it too, counted and logged.
    pub async fn start(&self) -> Result<(), AwsError> {
        let Some(checker) = &self.inner.checker else {
            return Ok(());
        };
        let mut checker = checker.lock().await;
        let etag = checker.store.begin_check(Instant::now()).unwrap_or(None);
        let fetched = checker.source.object.fetch(etag.as_deref()).await?;
        self.take(&mut checker, fetched);
        // The status says what this instance serves from its first request on.
        write_status(&checker).await;
        Ok(())
    }

    /// Checks the store when a check is due; otherwise does nothing. A
    /// check already under way elsewhere is not waited for. Never fails:
    /// a store that cannot be read keeps the set served, counted and logged.
    pub async fn refresh(&self) {
        let Some(checker) = &self.inner.checker else {
            return;
        };
        let Ok(mut checker) = checker.try_lock() else {
            return;
        };
        let Some(etag) = checker.store.begin_check(Instant::now()) else {
            return;
        };
        match checker.source.object.fetch(etag.as_deref()).await {
            Ok(fetched) => {
                if self.take(&mut checker, fetched) {
                    write_status(&checker).await;
                }
            }
            Err(e) => {
                checker.count_failure();
                tracing::error!(
                    store = %checker.source.object.location(),
                    version = %checker.store.current().version,
                    error = %crate::aws::error_chain(&e),
                    "cannot read the policy store; still serving the last good policy set"
                );
            }
        }
    }

    /// Applies what a check found; returns whether the status changed.
    fn take(&self, checker: &mut Checker, fetched: crate::policy::store::Fetched) -> bool {
        let serving = checker.store.current().version.clone();
        let location = checker.source.object.location();
        match checker.store.apply(fetched) {
            Applied::Unchanged => false,
            Applied::Loaded(set) => {
                checker.loaded_at = checker.source.clock.now();
                tracing::info!(
                    store = %location,
                    version = %set.version,
                    digest = %set.digest,
                    previous = %serving,
                    policies = set.policy_count(),
                    "loaded a new policy set"
                );
                match self.inner.current.write() {
                    Ok(mut current) => *current = set,
                    Err(poisoned) => *poisoned.into_inner() = set,
                }
                true
            }
            Applied::Rejected {
                version,
                reason,
                again,
            } => {
                checker.count_failure();
                tracing::error!(
                    store = %location,
                    rejected = %version,
                    version = %serving,
                    reason = %reason,
                    "the stored policy set is invalid; still serving the last good policy set"
                );
                !again
            }
            Applied::Vanished => {
                checker.count_failure();
                tracing::error!(
                    store = %location,
                    version = %serving,
                    "the policy set object is gone; still serving the last good policy set"
                );
                false
            }
        }
    }
}

async fn write_status(checker: &Checker) {
    let status = PolicyStatus::of(
        checker.source.function,
        &checker.store,
        checker.loaded_at,
        checker.source.clock.now(),
    );
    if let Err(e) = checker.source.status.put_policy_status(&status).await {
        tracing::warn!(
            error = %crate::aws::error_chain(&e),
            "cannot record the policy status for `tollgate policy status`"
        );
    }
}
