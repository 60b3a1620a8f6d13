//! A few store connections shared by the handlers.
//!
//! [`Store`] is synchronous and one connection per value (the `postgres`
//! crate's blocking client panics if called on a runtime thread), so every
//! database call runs on tokio's blocking pool with a connection taken from
//! here. A semaphore caps the connections; a connection that failed is
//! dropped and a fresh one opened on next use, which is how the server
//! recovers from a database restart.
//!
//! Writes have permits of their own ([`WRITE_PERMITS`], besides the pool's
//! size) that reads cannot take: a burst of public reads holding every read
//! permit (a request that timed out keeps its permit until its statement
//! ends) never makes a write wait for a connection.

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use crate::store::{self, Store};
use crate::{Error, Result};

pub(crate) struct StorePool {
    url: String,
    /// Set on every connection this pool opens (see
    /// [`Store::set_statement_timeout`]).
    statement_timeout: Option<std::time::Duration>,
    idle: Mutex<Vec<Box<dyn Store>>>,
    permits: Arc<Semaphore>,
    write_permits: Arc<Semaphore>,
    /// The read permits: connections reads may hold at once.
    size: usize,
}

/// Connections kept for writes beyond the pool's size (see the module
/// documentation).
pub(crate) const WRITE_PERMITS: usize = 2;

impl Drop for StorePool {
    /// The pool is usually dropped by a runtime thread when the server
    /// stops, and closing a `postgres` client blocks on its own runtime,
    /// which panics there: the idle connections are closed on a plain thread.
    fn drop(&mut self) {
        let idle = std::mem::take(self.idle.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !idle.is_empty() {
            let _ = std::thread::Builder::new()
                .name("cinematch-db-close".into())
                .spawn(move || drop(idle));
        }
    }
}

impl StorePool {
    pub fn new(
        url: String,
        size: usize,
        statement_timeout: Option<std::time::Duration>,
    ) -> StorePool {
        StorePool {
            url,
            statement_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            write_permits: Arc::new(Semaphore::new(WRITE_PERMITS)),
            size: size.max(1),
        }
    }

    /// How many connections the pool may hold at once (reads' and writes'
    /// permits together).
    pub fn size(&self) -> usize {
        self.size + WRITE_PERMITS
    }

    /// How many of them requests hold now (a permit is held from before the
    /// connection is taken until the database call returned): `/metrics`
    /// shows it, so operators (and tests) see a pool that is all taken,
    /// e.g. by requests waiting on a lock.
    pub fn in_use(&self) -> usize {
        self.size() - self.permits.available_permits() - self.write_permits.available_permits()
    }

    /// Runs `f` (a read) with a connection on a blocking thread. The
    /// connection and the permit travel with the blocking task, so a request
    /// that times out does not lose the connection or let the pool exceed
    /// its size.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    {
        self.run_on(&self.permits, f).await
    }

    /// [`StorePool::run`] for a write, on the permits only writes take.
    pub async fn run_write<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    {
        self.run_on(&self.write_permits, f).await
    }

    async fn run_on<T, F>(self: &Arc<Self>, permits: &Arc<Semaphore>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Config("the connection pool is closed".into()))?;
        let pool = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut store = match idle {
                Some(s) => s,
                None => {
                    let mut s = store::open(&pool.url)?;
                    s.set_statement_timeout(pool.statement_timeout)?;
                    s
                }
            };
            let out = f(store.as_mut());
            // A database error may mean a broken connection: do not hand it
            // to the next request (a statement cancelled by its timeout in
            // the middle of a COPY closes it, too). Logical errors keep it.
            let broken = matches!(
                out,
                Err(Error::Postgres(_)
                    | Error::Sqlite(_)
                    | Error::Config(_)
                    | Error::Io { .. }
                    | Error::TimedOut(_))
            );
            if !broken {
                pool.idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(store);
            }
            out
        });
        match task.await {
            Ok(out) => out,
            Err(e) => Err(Error::Config(format!(
                "a database task failed ({})",
                if e.is_panic() {
                    "panicked"
                } else {
                    "cancelled"
                }
            ))),
        }
    }
}
