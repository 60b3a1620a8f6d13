//! The pipeline lock: one lease row (`Store::acquire_lease`) that keeps
//! pipeline cycles and retrains apart across processes and machines.
//!
//! It replaces a session advisory lock, which a transaction-mode pooler
//! (Neon's pooled endpoint) can take on one server connection and try to
//! release on another, and which a holder whose host vanished keeps until TCP
//! keepalive gives up, hours later. The lease holds no session state: it is
//! taken, renewed and released in short transactions of its own. While the
//! work runs, a thread renews it every third of its length on a connection of
//! its own; a holder that stops renewing (killed, frozen, cut off) loses it
//! when it expires, and the next cycle takes it over. A holder on this
//! machine whose process is gone is taken over at once.
//!
//! A holder that finds its lease lost (it could not renew in time and
//! someone took it) stops before its next step ([`PipelineLease::check`]);
//! every step commits whole or not at all, so at worst the step it was in
//! lands once more, which the steps tolerate (a batch completes once, a merge
//! moves each rating once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::holder::Holder;
use crate::store::{LeaseGrant, Store};
use crate::{Error, Result};

/// The lease's name in `cinematch_leases`.
pub const PIPELINE_LEASE: &str = "pipeline";

/// How long a lease lasts without renewal: long enough that a busy database
/// or a paused VM does not lose it (renewals come every third of it), short
/// enough that a vanished holder blocks the next cycle for a minute at most.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Shortest lease accepted: renewals every third of it must stay well above
/// a round trip to the database.
pub const MIN_LEASE: Duration = Duration::from_millis(300);

/// The pipeline lease, held until [`PipelineLease::release`] (or until it
/// lapses, if this process dies).
pub struct PipelineLease {
    holder: String,
    ttl: Duration,
    lost: Arc<AtomicBool>,
    renewer: Option<Renewer>,
}

struct Renewer {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Box<dyn Store>>,
}

impl PipelineLease {
    /// Takes the pipeline lease for `ttl` (see [`DEFAULT_LEASE`]) and starts
    /// renewing it. [`Error::Busy`] when another live holder has it, naming
    /// the holder and when it expires.
    pub fn acquire(store: &mut dyn Store, ttl: Duration) -> Result<PipelineLease> {
        if ttl < MIN_LEASE {
            return Err(Error::InvalidArgument(format!(
                "a lease of {ttl:?} is too short: at least {MIN_LEASE:?}"
            )));
        }
        let holder = Holder::this_process().to_string();
        match store.acquire_lease(PIPELINE_LEASE, &holder, ttl, None)? {
            LeaseGrant::Acquired => {}
            LeaseGrant::Held(current) => {
                let gone = Holder::parse(&current.holder).is_some_and(|h| h.is_gone());
                let taken = gone
                    && store.acquire_lease(PIPELINE_LEASE, &holder, ttl, Some(&current.holder))?
                        == LeaseGrant::Acquired;
                if !taken {
                    return Err(Error::Busy(format!(
                        "another pipeline cycle or retrain is running against this database \
                         (it holds the pipeline lease: {}, for another {:.0} s unless renewed); \
                         try again when it finishes",
                        current.holder,
                        current.remaining_secs.max(0.0)
                    )));
                }
                tracing::warn!(
                    previous = %current.holder,
                    "took over the pipeline lease: its holder's process on this machine is gone"
                );
            }
        }
        let lost = Arc::new(AtomicBool::new(false));
        // A private in-memory database cannot be shared with anyone, so
        // nobody could take the lease over: no renewal needed.
        let renewer = match store.reopen() {
            Ok(other) => Some(Renewer::start(other, holder.clone(), ttl, lost.clone())),
            Err(e) => {
                tracing::debug!(error = %e, "no lease renewal: the database cannot be reopened");
                None
            }
        };
        tracing::debug!(holder = %holder, ttl = ?ttl, "took the pipeline lease");
        Ok(PipelineLease {
            holder,
            ttl,
            lost,
            renewer,
        })
    }

    /// Who holds it, as stored.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// `Ok` while the lease is still ours; an error once it was lost (not
    /// renewed in time and taken over, or removed), so the work stops before
    /// its next step.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Busy(format!(
                "this process lost the pipeline lease (not renewed within {:?}; another \
                 process may have taken over); stopping before the next step",
                self.ttl
            )));
        }
        Ok(())
    }

    /// Stops renewing and gives the lease up. Errors are logged, not
    /// returned: a lease that cannot be released lapses by itself.
    pub fn release(mut self, store: &mut dyn Store) {
        let spare = self.renewer.take().and_then(Renewer::stop);
        if let Err(e) = store.release_lease(PIPELINE_LEASE, &self.holder) {
            // The main connection may be the one that failed; try the other.
            let retried = spare.map(|mut s| s.release_lease(PIPELINE_LEASE, &self.holder));
            if !matches!(retried, Some(Ok(()))) {
                tracing::warn!(error = %e, "could not release the pipeline lease; it lapses in {:?}", self.ttl);
            }
        }
    }
}

impl Drop for PipelineLease {
    fn drop(&mut self) {
        // Dropped without `release` (a panic unwinding): stop renewing so the
        // lease lapses.
        if let Some(r) = self.renewer.take() {
            let _ = r.stop.send(());
        }
    }
}

impl Renewer {
    fn start(
        mut store: Box<dyn Store>,
        holder: String,
        ttl: Duration,
        lost: Arc<AtomicBool>,
    ) -> Renewer {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut renewed_at = Instant::now();
            loop {
                match stopped.recv_timeout(ttl / 3) {
                    Err(RecvTimeoutError::Timeout) => {}
                    // Asked to stop, or the lease handle is gone.
                    _ => return store,
                }
                match store.renew_lease(PIPELINE_LEASE, &holder, ttl) {
                    Ok(true) => renewed_at = Instant::now(),
                    Ok(false) => {
                        tracing::error!(
                            "the pipeline lease is no longer ours (it expired and was taken over); \
                             this process stops before its next step"
                        );
                        lost.store(true, Ordering::SeqCst);
                        return store;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not renew the pipeline lease; retrying");
                        if renewed_at.elapsed() >= ttl {
                            lost.store(true, Ordering::SeqCst);
                        }
                        // A broken connection stays broken: open a new one.
                        if let Ok(fresh) = store.reopen() {
                            store = fresh;
                        }
                    }
                }
            }
        });
        Renewer { stop, thread }
    }

    /// Stops the thread; hands back its connection.
    fn stop(self) -> Option<Box<dyn Store>> {
        let _ = self.stop.send(());
        self.thread.join().ok()
    }
}
