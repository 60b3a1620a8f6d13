//! Named points where a fault test can stop the process on purpose.
//!
//! `tests/faults.rs` runs the real `cinematch` binary with
//! `CINEMATCH_FAILPOINT=<name>` (or `<name>#<n>` for the n-th time the point
//! is reached) and kills it with SIGKILL once it reports the point: the
//! process prints `failpoint <name> reached` on stderr and then sleeps, so
//! the kill lands exactly there, e.g. between a COPY and its COMMIT. With
//! `CINEMATCH_FAILPOINT_SLEEP_MS=<ms>` it pauses that long and then goes on,
//! for tests that disturb something else meanwhile (stop the database, start
//! a second process). With `CINEMATCH_FAILPOINT_RESUME_FILE=<path>` it goes on
//! once that file exists, for tests that need "after the disturbance" exactly
//! rather than after a guess at its duration.
//!
//! Without the variable [`hit`] costs one atomic load (the variable is read
//! once per process). A process nobody kills aborts after
//! [`PAUSE`] rather than going on, so a forgotten child never finishes a
//! write the test did not expect.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How long a reached failpoint waits for its kill before aborting.
pub const PAUSE: Duration = Duration::from_secs(120);

struct Target {
    name: String,
    /// Stop on this hit of the point (1 = the first).
    nth: u64,
    hits: AtomicU64,
    /// Go on after this pause instead of waiting to be killed.
    resume_after: Option<Duration>,
    /// Go on once this file exists.
    resume_file: Option<std::path::PathBuf>,
}

fn target() -> Option<&'static Target> {
    static TARGET: OnceLock<Option<Target>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let spec = std::env::var("CINEMATCH_FAILPOINT").ok()?;
            let spec = spec.trim();
            if spec.is_empty() {
                return None;
            }
            let (name, nth) = match spec.rsplit_once('#') {
                Some((name, n)) => (name, n.parse().unwrap_or(1)),
                None => (spec, 1),
            };
            Some(Target {
                name: name.to_string(),
                nth: nth.max(1),
                hits: AtomicU64::new(0),
                resume_after: std::env::var("CINEMATCH_FAILPOINT_SLEEP_MS")
                    .ok()
                    .and_then(|ms| ms.trim().parse().ok())
                    .map(Duration::from_millis),
                resume_file: std::env::var_os("CINEMATCH_FAILPOINT_RESUME_FILE")
                    .filter(|p| !p.is_empty())
                    .map(std::path::PathBuf::from),
            })
        })
        .as_ref()
}

/// Marks the named point. When `CINEMATCH_FAILPOINT` names it (and this is
/// the requested hit), reports it on stderr and pauses until killed (or,
/// with `CINEMATCH_FAILPOINT_SLEEP_MS`, for that long).
pub fn hit(name: &str) {
    let Some(t) = target() else { return };
    if t.name != name || t.hits.fetch_add(1, Ordering::SeqCst) + 1 != t.nth {
        return;
    }
    eprintln!("failpoint {name} reached");
    if let Some(file) = &t.resume_file {
        let started = std::time::Instant::now();
        while !file.exists() {
            if started.elapsed() > PAUSE {
                eprintln!(
                    "failpoint {name}: {} did not appear within {PAUSE:?}; aborting",
                    file.display()
                );
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        eprintln!("failpoint {name} resumed");
        return;
    }
    if let Some(pause) = t.resume_after {
        std::thread::sleep(pause);
        eprintln!("failpoint {name} resumed");
        return;
    }
    std::thread::sleep(PAUSE);
    eprintln!("failpoint {name}: nobody killed the process within {PAUSE:?}; aborting");
    std::process::abort();
}
