//! The monitoring statistics the dashboard and `/metrics` show, computed at
//! most once per `stats_ttl` however many clients ask.
//!
//! They count every table and read every drift alert: work for the
//! database worth doing once for everyone, not once per page load. Requests
//! that arrive while a computation runs wait for that one (single flight)
//! rather than start their own, and the computation goes on when the
//! request that started it gives up, so a burst of dashboard loads holds at
//! most one pool connection.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::registry::{self, Objective, RunSummary};
use crate::store::{BacktestRow, DriftAlert, Ingestion, PipelineRun, Store, TableCount, TableSize};
use crate::Error;

/// What the dashboard draws.
pub(crate) struct Statistics {
    pub objective: Objective,
    pub runs: Vec<RunSummary>,
    pub champion: Option<String>,
    /// Newest first.
    pub alerts: Vec<DriftAlert>,
    /// Triggered in the last day and not yet acted on by a retrain: the
    /// spec's retraining check (see `pipeline::retrain::retraining_verdict`).
    pub recent: Vec<DriftAlert>,
    pub ingestions: Vec<Ingestion>,
    pub sizes: Vec<TableSize>,
    pub counts: Vec<TableCount>,
    pub buffer: i64,
    /// The policies of the latest backtest (one row each), empty without one.
    pub backtest: Vec<BacktestRow>,
    /// Pipeline runs, to name the batch each drift check ran on.
    pub pipeline_runs: Vec<PipelineRun>,
}

impl Statistics {
    pub fn load(store: &mut dyn Store, objective: Objective) -> crate::Result<Statistics> {
        Ok(Statistics {
            objective,
            runs: registry::run_summaries(store, objective)?,
            champion: store.champion()?,
            alerts: store.drift_alerts(None)?,
            recent: crate::pipeline::retrain::retraining_verdict(store, 86_400)?.alerts,
            ingestions: store.ingestions()?,
            sizes: store.table_sizes()?,
            counts: store.table_counts()?,
            buffer: store.buffer_counts()?.iter().map(|(_, n)| n).sum(),
            backtest: {
                // Newest first: the rows of the newest backtest id.
                let rows = store.backtests(64)?;
                let latest = rows.first().map(|r| r.backtest_id.clone());
                rows.into_iter()
                    .filter(|r| Some(&r.backtest_id) == latest.as_ref())
                    .collect()
            },
            pipeline_runs: store.pipeline_runs()?,
        })
    }

    /// The tests of the most recent drift check, newest first.
    pub fn last_check(&self) -> &[DriftAlert] {
        let Some(last) = self.alerts.first().map(|a| a.alert_date) else {
            return &[];
        };
        let n = self
            .alerts
            .iter()
            .take_while(|a| a.alert_date == last)
            .count();
        &self.alerts[..n]
    }
}

/// The outcome of one computation, shared by everyone who waited for it.
type Shared<T> = Option<Result<Arc<T>, Arc<Error>>>;

struct Slot<T> {
    value: Option<(Instant, Arc<T>)>,
    /// The computation in flight, if any.
    running: Option<watch::Receiver<Shared<T>>>,
}

/// A value recomputed at most once per `ttl`, with one computation at a
/// time. Errors are handed to the requests that waited and not kept, so
/// the next request tries again.
pub(crate) struct Cached<T> {
    ttl: Duration,
    slot: Mutex<Slot<T>>,
    refreshes: AtomicU64,
}

impl<T: Send + Sync + 'static> Cached<T> {
    pub fn new(ttl: Duration) -> Cached<T> {
        Cached {
            ttl,
            slot: Mutex::new(Slot {
                value: None,
                running: None,
            }),
            refreshes: AtomicU64::new(0),
        }
    }

    /// Drops the kept value, so the next `get` computes afresh (after a
    /// change the page must show at once, such as a promotion). A
    /// computation in flight still answers those waiting for it.
    pub fn invalidate(&self) {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).value = None;
    }

    /// Computations started so far.
    pub fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// The value if younger than the ttl, else the result of the running
    /// computation, else of a new one started with `compute` on its own task.
    pub async fn get<F, Fut>(self: &Arc<Self>, compute: F) -> Result<Arc<T>, Arc<Error>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = crate::Result<T>> + Send + 'static,
    {
        let mut rx = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, v)) = &slot.value {
                if at.elapsed() < self.ttl {
                    return Ok(Arc::clone(v));
                }
            }
            match &slot.running {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    slot.running = Some(rx.clone());
                    self.refreshes.fetch_add(1, Ordering::Relaxed);
                    let fut = compute();
                    let this = Arc::clone(self);
                    tokio::spawn(async move {
                        let out = fut.await.map(Arc::new).map_err(Arc::new);
                        {
                            let mut slot = this.slot.lock().unwrap_or_else(|e| e.into_inner());
                            if let Ok(v) = &out {
                                slot.value = Some((Instant::now(), Arc::clone(v)));
                            }
                            slot.running = None;
                        }
                        let _ = tx.send(Some(out));
                    });
                    rx
                }
            }
        };
        loop {
            if let Some(out) = rx.borrow_and_update().as_ref() {
                return out.clone();
            }
            if rx.changed().await.is_err() {
                // The computing task ended without an answer (it panicked).
                return Err(Arc::new(Error::Config(
                    "computing the statistics failed".into(),
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_requests_share_one_computation() {
        let cache: Arc<Cached<u32>> = Arc::new(Cached::new(Duration::from_secs(60)));
        let (release, gate) = watch::channel(false);
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let cache = Arc::clone(&cache);
                let mut gate = gate.clone();
                tokio::spawn(async move {
                    cache
                        .get(move || async move {
                            let _ = gate.wait_for(|open| *open).await;
                            Ok(7)
                        })
                        .await
                })
            })
            .collect();
        // Every waiter has asked before the computation may finish.
        while cache.refreshes() == 0 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        for w in waiters {
            assert_eq!(*w.await.unwrap().unwrap(), 7);
        }
        assert_eq!(cache.refreshes(), 1);
        // Fresh: answered from the cache.
        assert_eq!(*cache.get(|| async { Ok(8) }).await.unwrap(), 7);
        assert_eq!(cache.refreshes(), 1);
    }

    #[tokio::test]
    async fn errors_are_not_kept() {
        let cache: Arc<Cached<u32>> = Arc::new(Cached::new(Duration::from_secs(60)));
        let e = cache
            .get(|| async { Err(Error::NotFound("gone".into())) })
            .await;
        assert!(matches!(
            e.as_ref().map_err(|e| &**e),
            Err(Error::NotFound(_))
        ));
        assert_eq!(*cache.get(|| async { Ok(3) }).await.unwrap(), 3);
        assert_eq!(cache.refreshes(), 2);
    }
}
