//! What requests are answered from, and how it follows the database.
//!
//! A [`Snapshot`] holds the champion's [`Recommender`], the catalogue with
//! its rating statistics, and every user's rated movies,
//! all in memory: a recommendation touches no database. The snapshot sits
//! in an [`ArcSwapOption`]; a background task checks the database every
//! `reload_interval` and, when another process promoted a new champion,
//! loaded a dataset, merged the buffer into `ratings` or cleared a batch,
//! loads a fresh snapshot on a blocking thread and swaps it in. Requests in
//! flight keep the snapshot they started with, so none waits for a reload
//! or is dropped by one.
//!
//! The check is cheap and incremental: every transaction that changes the
//! buffer, the ratings or the movies records a numbered row in
//! `data_changes` (numbers in commit order, see [`Store::data_changes`]),
//! and the server reads only the rows after the last number it saw. When
//! they are all appends, it reads just the ratings those appends wrote;
//! anything else (or a gap: rows pruned while it was away) reloads the
//! snapshot. So a rating posted to any server sharing the database is
//! excluded by every other within one interval, merges without a promotion
//! refresh the rated sets, and new movies appear without a new champion.
//!
//! The snapshot keeps every user's ratings (train, test and buffer) with
//! their stars: they exclude rated movies from the user's list, and models
//! that score from ratings (EASE, an iALS fold-in) read them. Users with
//! buffered ratings are marked fresh: their ratings are newer than the
//! champion, so their lists are folded in from the ratings. Ratings that
//! reach `ratings_buffer` after a snapshot was taken (through this server's
//! API at once, from other processes on the next check) are kept in a
//! separate map, so a movie a user just rated is never recommended back to
//! them and their next list already reflects it. A new snapshot covers what
//! was buffered before it started loading, so installing it drops those
//! entries: the map holds only what arrived since the snapshot, one entry
//! per (user, movie), and does not grow with the life of the process.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::metrics::RequestMetrics;
use super::pool::StorePool;
pub use super::snapshot::{Catalogue, Snapshot};
use super::stats::{Cached, Statistics};
use super::ServerConfig;
use crate::recommend::Recommender;
use crate::store::{self, ChangeKind, Store};
use crate::types::{Rated, Rating};
use crate::{Error, Result};

/// The statement timeout of the request pool's connections: under the
/// request timeout, so a statement stuck on a lock or a busy SQLite file
/// ends (and its transaction rolls back) while the request can still say
/// so, instead of going on after the client was told it timed out.
pub(crate) fn statement_timeout(request_timeout: Duration) -> Duration {
    (request_timeout * 3 / 4).max(Duration::from_millis(1))
}

/// The probes' connection waits no longer than a probe does.
const PROBE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// Limits the router's layers need.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_concurrent_requests: usize,
}

/// A rating received after the snapshot was taken.
#[derive(Debug, Clone, Copy)]
struct Recent {
    stars: f32,
    timestamp: i64,
    /// [`Shared::rated_seq`] when it was recorded: a snapshot whose load
    /// started after that covers it.
    seq: u64,
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The state behind [`AppState`]; its fields are the server's own.
pub struct Shared {
    /// Connections for requests.
    pub(crate) pool: Arc<StorePool>,
    /// One connection for `/readyz` and `/metrics`' liveness check alone, so
    /// requests that keep every pooled connection busy (a burst of heavy
    /// pages, writes waiting on a lock) cannot make a healthy server look
    /// dead to its load balancer.
    pub(crate) probe_pool: Arc<StorePool>,
    /// One connection for the reloader, so a busy pool does not delay the
    /// champion check or the rated sets.
    reload_pool: Arc<StorePool>,
    pub(crate) snapshot: ArcSwapOption<Snapshot>,
    /// Ratings buffered after the snapshot was taken: by user, movie →
    /// stars (O(1) membership; a newer rating of a movie replaces the older).
    extra_rated: RwLock<HashMap<i32, HashMap<i32, Recent>>>,
    /// Counts what [`AppState::add_rated`] recorded; see [`Recent::seq`].
    rated_seq: AtomicU64,
    /// Whether `extra_rated` holds anything: until it does, recommendations
    /// never touch its lock.
    has_extra: AtomicBool,
    /// The last change version followed (see [`Store::data_version`]), -1
    /// before the first snapshot.
    data_seen: AtomicI64,
    pub(crate) metrics: Arc<RequestMetrics>,
    /// The dashboard's and `/metrics`' database statistics.
    pub(crate) stats: Arc<Cached<Statistics>>,
    pub(crate) api_token: Option<String>,
    /// Per-user reads need this (or the write token) when set.
    pub(crate) read_token: Option<String>,
    /// The deployment's objective, for the models list and the dashboard.
    pub(crate) objective: crate::registry::Objective,
    pub(crate) backend: &'static str,
    pub(crate) limits: Limits,
    reload_interval: Duration,
    /// Depth of the lists computed ahead of requests (0: none).
    pub(crate) precompute_k: usize,
    /// The list cache's budget, in movies.
    list_cache_items: usize,
    pub(crate) reloads: AtomicU64,
    pub(crate) reload_failures: AtomicU64,
    pub(crate) last_reload_error: Mutex<Option<String>>,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// Checks the configuration without touching the database; the first
    /// snapshot is loaded by [`AppState::refresh`] (the reloader's first tick).
    pub fn new(config: &ServerConfig) -> Result<AppState> {
        let url = config.db_url.trim();
        let backend = store::DbUrl::parse(url)?.backend().name();
        if config.reload_interval.is_zero() || config.request_timeout.is_zero() {
            return Err(Error::Server(
                "the reload interval and the request timeout must be longer than zero".into(),
            ));
        }
        if config.max_concurrent_requests == 0 {
            return Err(Error::Server(
                "the limit of concurrent requests must be at least 1".into(),
            ));
        }
        let token = |t: &Option<String>| t.clone().filter(|t| !t.trim().is_empty());
        Ok(AppState(Arc::new(Shared {
            pool: Arc::new(StorePool::new(
                url.to_string(),
                config.pool_size,
                Some(statement_timeout(config.request_timeout)),
            )),
            probe_pool: Arc::new(StorePool::new(
                url.to_string(),
                1,
                Some(PROBE_STATEMENT_TIMEOUT),
            )),
            // Snapshots of a large catalogue take long to read: no limit.
            reload_pool: Arc::new(StorePool::new(url.to_string(), 1, None)),
            snapshot: ArcSwapOption::empty(),
            extra_rated: RwLock::new(HashMap::new()),
            rated_seq: AtomicU64::new(0),
            has_extra: AtomicBool::new(false),
            data_seen: AtomicI64::new(-1),
            metrics: Arc::default(),
            stats: Arc::new(Cached::new(config.stats_ttl)),
            api_token: token(&config.api_token),
            read_token: token(&config.read_token),
            objective: config.objective,
            backend,
            limits: Limits {
                request_timeout: config.request_timeout,
                max_body_bytes: config.max_body_bytes,
                max_concurrent_requests: config.max_concurrent_requests,
            },
            reload_interval: config.reload_interval,
            precompute_k: config.precompute_k.min(crate::recommend::MAX_K),
            list_cache_items: config.list_cache_items,
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            last_reload_error: Mutex::new(None),
        })))
    }

    /// The cached monitoring statistics (see `server::stats`), computed on
    /// the request pool when they are older than `stats_ttl`: what the
    /// dashboard and `/metrics` show.
    pub(crate) async fn statistics(&self) -> std::result::Result<Arc<Statistics>, Arc<Error>> {
        let (pool, objective) = (self.pool.clone(), self.objective);
        self.stats
            .get(move || async move {
                pool.run(move |store| Statistics::load(store, objective))
                    .await
            })
            .await
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    /// A handle that does not keep the server's state alive (background
    /// work stops when the server is gone).
    pub(crate) fn downgrade(&self) -> Weak<Shared> {
        Arc::downgrade(&self.0)
    }

    /// Runs [`AppState::refresh`] now and then every `reload_interval`.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let state = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.reload_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                state.refresh().await;
            }
        })
    }

    /// One check: loads a new snapshot if the champion changed (or none is
    /// loaded yet) or the data changed other than by appends, else picks up
    /// the ratings appended since the last check, by any process. Returns
    /// whether a new snapshot was installed. Failures are logged and retried
    /// on the next tick; the current snapshot keeps serving.
    pub async fn refresh(&self) -> bool {
        let current = self.snapshot.load_full();
        let loaded: Option<Option<String>> = current
            .as_ref()
            .map(|s| s.model_version().map(str::to_string));
        let catalogue_empty = current.as_ref().is_none_or(|s| s.catalogue.is_empty());
        let seen = self.data_seen.load(Ordering::Acquire);
        let list_cache_items = self.list_cache_items;
        // Whatever was recorded up to here is in the database before the
        // load below starts, so a snapshot from it covers it.
        let covered = self.rated_seq.load(Ordering::Acquire);
        let outcome = self
            .reload_pool
            .run(move |store| {
                let champion = store.champion()?;
                let stale = match &loaded {
                    None => true,
                    Some(v) => *v != champion || (champion.is_none() && catalogue_empty),
                };
                let reload = |store: &mut dyn Store, why: &'static str| {
                    Ok(Refresh::Snapshot(
                        Box::new(Snapshot::load(store, list_cache_items)?),
                        why,
                    ))
                };
                if stale {
                    return reload(store, "the champion changed");
                }
                let version = store.data_version()?;
                if version == seen {
                    return Ok(Refresh::Unchanged);
                }
                if version < seen {
                    return reload(store, "the database was reset");
                }
                let changes = store.data_changes(seen)?;
                if changes.first().map(|c| c.version) != Some(seen + 1) {
                    return reload(store, "changes were missed");
                }
                if changes.iter().any(|c| c.kind != ChangeKind::Append) {
                    return reload(store, "ratings or movies changed");
                }
                let upto = changes.last().map_or(seen, |c| c.version);
                Ok(Refresh::Appended(store.appended_ratings(seen, upto)?, upto))
            })
            .await;
        match outcome {
            Ok(r) => {
                *self
                    .last_reload_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                match r {
                    Refresh::Unchanged => false,
                    Refresh::Appended(ratings, upto) => {
                        self.add_rated(&ratings);
                        self.data_seen.store(upto, Ordering::Release);
                        false
                    }
                    Refresh::Snapshot(snap, why) => {
                        let from = current
                            .as_ref()
                            .and_then(|s| s.model_version().map(str::to_string));
                        tracing::info!(
                            why,
                            from = from.as_deref().unwrap_or("none"),
                            to = snap.model_version().unwrap_or("none"),
                            movies = snap.catalogue.len(),
                            users = snap.users_with_ratings(),
                            quantized_scan = snap
                                .recommender
                                .as_ref()
                                .is_some_and(Recommender::uses_quantized_scan),
                            seconds = snap.load_seconds,
                            "serving a new snapshot"
                        );
                        self.data_seen.store(snap.data_version, Ordering::Release);
                        let snap: Arc<Snapshot> = Arc::from(snap);
                        self.snapshot.store(Some(Arc::clone(&snap)));
                        let shared = self.downgrade();
                        super::precompute::spawn(self.precompute_k, &snap, move |s| {
                            let shared = shared.upgrade()?;
                            let served = shared.snapshot.load();
                            Some(served.as_ref().is_some_and(|x| Arc::ptr_eq(x, s)))
                        });
                        self.forget_rated_up_to(covered);
                        self.reloads.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                }
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    error = %store::redact(&e.to_string()),
                    "champion check failed; still serving the loaded model"
                );
                *self
                    .last_reload_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(super::errors::public_message(&e).1);
                false
            }
        }
    }

    /// Remembers ratings that reached the buffer after the snapshot.
    /// Call it only once they are committed (see [`Recent::seq`]).
    pub(crate) fn add_rated(&self, ratings: &[Rating]) {
        if ratings.is_empty() {
            return;
        }
        let mut extra = self.extra_rated.write().unwrap_or_else(|e| e.into_inner());
        // Under the write lock, so a snapshot's `covered` mark never falls
        // between the number and the entries that carry it.
        let seq = self.rated_seq.fetch_add(1, Ordering::AcqRel) + 1;
        for r in ratings {
            extra.entry(r.user_id).or_default().insert(
                r.movie_id,
                Recent {
                    stars: r.rating,
                    timestamp: r.timestamp,
                    seq,
                },
            );
        }
        self.has_extra.store(true, Ordering::Release);
    }

    /// Drops what a new snapshot covers: entries recorded at or before
    /// `covered`. Later ones (ratings that arrived while it loaded) stay.
    fn forget_rated_up_to(&self, covered: u64) {
        let mut extra = self.extra_rated.write().unwrap_or_else(|e| e.into_inner());
        extra.retain(|_, movies| {
            movies.retain(|_, r| r.seq > covered);
            !movies.is_empty()
        });
        if extra.is_empty() {
            self.has_extra.store(false, Ordering::Release);
        }
    }

    /// (ratings, users) held apart from the snapshot: what `/metrics`
    /// shows, so an operator (and a test) can see the map stay bounded.
    pub(crate) fn recent_counts(&self) -> (usize, usize) {
        let extra = self.extra_rated.read().unwrap_or_else(|e| e.into_inner());
        (extra.values().map(HashMap::len).sum(), extra.len())
    }

    /// What `user` rated after the snapshot was taken (possibly some it has
    /// too); together with [`Snapshot::history`], every rating of the user
    /// as far as this server knows.
    pub(crate) fn rated_since(&self, user: i32) -> Vec<Rated> {
        if !self.has_extra.load(Ordering::Acquire) {
            return Vec::new();
        }
        let extra = self.extra_rated.read().unwrap_or_else(|e| e.into_inner());
        extra
            .get(&user)
            .map(|m| {
                m.iter()
                    .map(|(&k, r)| Rated::new(k, r.stars, r.timestamp))
                    .collect()
            })
            .unwrap_or_default()
    }
}

enum Refresh {
    Unchanged,
    /// Ratings appended since the last check, and the version they reach.
    Appended(Vec<Rating>, i64),
    /// A new snapshot, and why.
    Snapshot(Box<Snapshot>, &'static str),
}
