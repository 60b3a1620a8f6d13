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

/// Who holds a lease: host, process and a random token, plus what tells
/// whether a process id on this host is comparable (boot and pid
/// namespace), stored as `host/pid/node/token`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    host: String,
    pid: u32,
    /// Boot id and pid namespace; empty where unknown (then no liveness check).
    node: String,
    token: String,
}

impl Holder {
    fn this_process() -> Holder {
        Holder {
            host: hostname(),
            pid: std::process::id(),
            node: node_id(),
            token: random_token(),
        }
    }

    fn parse(s: &str) -> Option<Holder> {
        let mut parts = s.rsplitn(4, '/');
        let token = parts.next()?.to_string();
        let node = parts.next()?.to_string();
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(Holder {
            host,
            pid,
            node,
            token,
        })
    }

    /// Whether this holder's process is known to be gone: it ran on this
    /// machine, in this boot and pid namespace, and its pid no longer
    /// exists. Anything uncertain (another host, another container, a pid
    /// reused) answers no, and the lease is waited out instead.
    fn is_gone(&self) -> bool {
        let me = Holder::this_process();
        if self.node.is_empty() || self.host != me.host || self.node != me.node {
            return false;
        }
        !pid_alive(self.pid)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}/{}", self.host, self.pid, self.node, self.token)
    }
}

/// Tells two holders in one process apart (std's hasher keys are random).
fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:08x}", h.finish() as u32)
}

fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes a
        // NUL-terminated name into it (truncated if longer).
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            let name = String::from_utf8_lossy(&buf[..end]).replace('/', "_");
            if !name.is_empty() {
                return name;
            }
        }
    }
    "unknown-host".to_string()
}

/// The boot id and pid namespace of this process (Linux), so a pid is only
/// ever compared within the same kernel and namespace.
fn node_id() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().chars().take(8).collect::<String>())
        .unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .unwrap_or_default();
    if boot.is_empty() || ns.is_empty() {
        String::new()
    } else {
        format!("{boot}-{ns}")
    }
}

fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_round_trips_and_knows_itself_alive() {
        let me = Holder::this_process();
        let parsed = Holder::parse(&me.to_string()).unwrap();
        assert_eq!(parsed, me);
        assert!(!me.is_gone(), "this process is alive");
        assert_eq!(Holder::parse("not a holder"), None);
    }

    #[test]
    #[cfg_attr(
        not(node_id),
        ignore = "no boot id or pid namespace id on this machine (build.rs): a dead holder cannot be told apart"
    )]
    fn a_dead_local_holder_is_gone_a_remote_one_never() {
        // A child that has exited and been reaped: its pid is free.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let me = Holder::this_process();
        assert!(
            !me.node.is_empty(),
            "build.rs found a boot id and a pid namespace, but this process has no node id"
        );
        let dead = Holder { pid, ..me.clone() };
        assert!(dead.is_gone());
        let elsewhere = Holder {
            host: format!("{}-other", me.host),
            ..dead.clone()
        };
        assert!(!elsewhere.is_gone(), "another host: wait for the expiry");
        let other_ns = Holder {
            node: "x-1".into(),
            ..dead
        };
        assert!(
            !other_ns.is_gone(),
            "another container: wait for the expiry"
        );
    }
}
