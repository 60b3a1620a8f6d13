//! Lists computed ahead of requests, as a recommender service's batch job
//! does (Gorse's workers fill each user's cache after training).
//!
//! A returning user's list is a pure function of the snapshot (see the
//! `recommend::cache` module), so when a snapshot is installed background
//! threads (one per core) compute the top `precompute_k` with explanations
//! of every user the model ranks from training, most active users first,
//! into the snapshot's list cache. Without it, on a large catalogue the
//! first request of each user pays the scan of every movie and the
//! explanation's solve; with 162,000 users that is nearly every request for
//! a long time. Requests never wait for it: a user not reached yet is
//! computed on demand, exactly as before, and gets the same list.
//!
//! The threads run at a lower CPU priority than the request workers (they
//! take the idle cores, not the requests' share) and stop as soon as their
//! snapshot is no longer served (a newer one starts its own) or the server
//! is gone. Progress shows as `cinematch_lists_precompute_remaining` in
//! `/metrics` and two log lines.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::snapshot::Snapshot;

/// Users between two checks that the snapshot is still the one served.
const CHUNK: usize = 256;

/// Starts computing `snap`'s lists on background threads (one per core),
/// unless the server's `precompute_k` is 0 or nothing is served.
/// `served(snap)` says whether `snap` is still the one served (`None`: the
/// server is gone); the threads stop as soon as it is not.
pub(crate) fn spawn<F>(k: usize, snap: &Arc<Snapshot>, served: F)
where
    F: Fn(&Arc<Snapshot>) -> Option<bool> + Clone + Send + 'static,
{
    if k == 0 || snap.recommender.is_none() {
        snap.precompute_remaining.store(0, Ordering::Release);
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let job = Arc::new(Job {
        users: snap.settled_users(),
        next: AtomicUsize::new(0),
        held: AtomicUsize::new(0),
        // All of them before any starts, so the last one out is the last.
        running: AtomicUsize::new(threads),
        k,
        started: Instant::now(),
    });
    snap.precompute_remaining
        .store(job.users.len(), Ordering::Release);
    tracing::info!(users = job.users.len(), k, threads, "precomputing lists");
    for _ in 0..threads {
        let (served, weak, mine) = (served.clone(), Arc::downgrade(snap), Arc::clone(&job));
        let spawned = std::thread::Builder::new()
            .name("cinematch-precompute".into())
            .spawn(move || run(served, weak, mine));
        if let Err(e) = spawned {
            job_thread_done(&job, snap);
            tracing::warn!(error = %e, "cannot start a thread precomputing lists");
        }
    }
}

/// One snapshot's precomputation, shared by its threads.
struct Job {
    /// Most ratings first.
    users: Vec<i32>,
    /// The next chunk to take.
    next: AtomicUsize,
    held: AtomicUsize,
    /// Threads not finished yet.
    running: AtomicUsize,
    k: usize,
    started: Instant,
}

fn run(served: impl Fn(&Arc<Snapshot>) -> Option<bool>, snap: Weak<Snapshot>, job: Arc<Job>) {
    lower_priority();
    loop {
        let Some(snap) = snap.upgrade() else {
            return;
        };
        match served(&snap) {
            None => return,
            Some(true) => {}
            Some(false) => {
                tracing::debug!("a newer snapshot is served; its own lists are computed");
                snap.precompute_remaining.store(0, Ordering::Release);
                return;
            }
        }
        let start = job.next.fetch_add(CHUNK, Ordering::AcqRel);
        let (Some(rec), Some(chunk)) = (
            snap.recommender.as_ref(),
            job.users.get(start..(start + CHUNK).min(job.users.len())),
        ) else {
            job_thread_done(&job, &snap);
            return;
        };
        for &user in chunk {
            match rec.precompute(user, snap.history(user), job.k) {
                Ok(true) => {
                    job.held.fetch_add(1, Ordering::Relaxed);
                }
                Ok(false) => {}
                Err(e) => {
                    job.next.store(job.users.len(), Ordering::Release);
                    tracing::warn!(error = %e, user, "precomputing lists stopped");
                    break;
                }
            }
        }
        let _ =
            snap.precompute_remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    Some(left.saturating_sub(chunk.len()))
                });
    }
}

/// The last thread out says how it went and zeroes what is left (users
/// skipped after an error).
fn job_thread_done(job: &Job, snap: &Snapshot) {
    if job.running.fetch_sub(1, Ordering::AcqRel) == 1 {
        snap.precompute_remaining.store(0, Ordering::Release);
        tracing::info!(
            lists = job.held.load(Ordering::Relaxed),
            users = job.users.len(),
            seconds = job.started.elapsed().as_secs_f64(),
            "lists precomputed"
        );
    }
}

/// Serving first: this thread yields the CPU to the request workers
/// (Linux nice values are per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread's own id.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
        if rc != 0 {
            tracing::debug!("cannot lower the precomputing thread's priority");
        }
    }
}
