//! `cinematch scheduler`: a long-running process that, on a cron schedule,
//! runs one pipeline cycle for each new batch file in an inbox directory.
//!
//! Only finished files are taken: hidden files and `*.part`/`*.tmp` are
//! ignored, and a file must keep its size and modification time for a short
//! interval (a copy in progress is waited for). Failed cycles are retried
//! with exponential backoff; two cycles never run at once, also across
//! processes (the pipeline lease); SIGTERM or Ctrl-C stops the scheduler
//! between cycles, never in the middle of one. Time comes from a [`Clock`],
//! so tests drive retries and the cron loop without waiting.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cycle::{run_cycle, CycleOptions, CycleReport};
use crate::progress::Progress;
use crate::store::{self, Store};
use crate::types::IngestionStatus;
use crate::{Error, Result};

/// Parses a standard 5-field cron expression (`min hour dom month dow`,
/// e.g. `0 9 * * MON`), or the 6/7-field form with seconds. Times are UTC.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule> {
    let fields = expr.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expr}")
    } else {
        expr.to_string()
    };
    cron::Schedule::from_str(&full).map_err(|e| {
        Error::InvalidArgument(format!(
            "invalid cron expression {expr:?}: {e} (expected e.g. \"0 9 * * MON\": minute hour day-of-month month day-of-week, UTC)"
        ))
    })
}

/// Whether a file name can be a batch: a ratings file (`.csv`, `.dat`,
/// `.data`, `.tsv`), not hidden (`.batch_w3.csv`, as rsync writes) and not a
/// partial copy (`batch_w3.csv.part`, `.tmp`). Writers put the file in place
/// under its final name only when it is complete (write-then-rename).
pub fn is_batch_file_name(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") {
        return false;
    }
    matches!(
        Path::new(name).extension().and_then(|e| e.to_str()),
        Some("csv" | "dat" | "data" | "tsv")
    )
}

/// Batch files in `inbox` not yet ingested, by file name: the batch id is
/// the file stem (`batch_w3.csv` -> `batch_w3`). Batches cleared with
/// `buffer clear` count as not ingested.
pub fn pending_batches(store: &mut dyn Store, inbox: &Path) -> Result<Vec<(PathBuf, String)>> {
    let done: std::collections::HashSet<String> = store
        .ingestions()?
        .into_iter()
        .filter(|i| i.status == Some(IngestionStatus::Completed))
        .map(|i| i.batch_id)
        .collect();
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(inbox)
        .map_err(|e| Error::io(inbox, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_batch_file_name)
        })
        .filter_map(|p| {
            let id = p.file_stem()?.to_str()?.to_string();
            Some((p, id))
        })
        .filter(|(_, id)| !done.contains(id))
        .collect();
    files.sort();
    Ok(files)
}

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    pub db_url: String,
    pub inbox: PathBuf,
    pub cron: String,
    /// Attempts per batch before giving up until the next tick.
    pub attempts: u32,
    /// First retry delay; doubled after every failure.
    pub backoff: Duration,
    /// A file is taken once its size and modification time have not changed
    /// for this long: a copy in progress is waited for, not half-ingested.
    pub settle: Duration,
    pub cycle: CycleOptions,
}

/// Time as the scheduler sees it: the real clock in production, a
/// hand-driven one in tests, so retries, backoff and the cron loop are
/// tested without waiting (or asserting) real time.
pub trait Clock: Sync {
    fn now(&self) -> DateTime<Utc>;
    /// Waits `d`, or returns early once `stop` is set.
    fn sleep(&self, d: Duration, stop: &AtomicBool);
}

/// The wall clock, sleeping in short steps so `stop` is honoured promptly.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, total: Duration, stop: &AtomicBool) {
        let step = Duration::from_millis(200);
        let mut left = total;
        while !left.is_zero() && !stop.load(Ordering::SeqCst) {
            let d = left.min(step);
            std::thread::sleep(d);
            left -= d;
        }
    }
}

/// What one pass over the inbox did.
#[derive(Debug, Default)]
pub struct InboxRun {
    /// The last cycle of every batch that ran one (succeeded, or failed on
    /// its last attempt).
    pub cycles: Vec<CycleReport>,
    /// Batches whose cycle could not even start on any attempt (database
    /// down, another cycle holding the lease), with the last error.
    pub not_run: Vec<(String, String)>,
}

impl InboxRun {
    pub fn all_succeeded(&self) -> bool {
        self.not_run.is_empty() && self.cycles.iter().all(|c| c.succeeded)
    }
}

/// Runs a cycle for every pending batch, retrying each failed cycle with
/// backoff. Stops early (between attempts) when `stop` is set.
pub fn process_inbox(
    opts: &SchedulerOptions,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<InboxRun> {
    process_inbox_with(opts, &SystemClock, stop, progress)
}

/// [`process_inbox`] on a given clock.
pub fn process_inbox_with(
    opts: &SchedulerOptions,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<InboxRun> {
    let mut run = InboxRun::default();
    let pending = {
        let mut store = store::open(&opts.db_url)?;
        pending_batches(store.as_mut(), &opts.inbox)?
    };
    if pending.is_empty() {
        tracing::info!(inbox = %opts.inbox.display(), "no new batch files");
    }
    let attempts = opts.attempts.max(1);
    for (path, batch_id) in pending {
        match wait_until_settled(&path, opts.settle, clock, stop) {
            Ok(true) => {}
            Ok(false) => return Ok(run), // stop requested
            Err(e) => {
                // Gone meanwhile (renamed, removed): the next tick sees.
                tracing::warn!(batch = %batch_id, error = %e, "batch file vanished; skipped");
                continue;
            }
        }
        let mut delay = opts.backoff;
        let mut last_error = None;
        for attempt in 1..=attempts {
            if stop.load(Ordering::SeqCst) {
                return Ok(run);
            }
            let mut cycle = opts.cycle.clone();
            cycle.batch = Some((path.clone(), batch_id.clone()));
            // A fresh connection per attempt: the failure may have been the connection.
            let result =
                store::open(&opts.db_url).and_then(|mut s| run_cycle(s.as_mut(), &cycle, progress));
            match result {
                Ok(r) if r.succeeded => {
                    tracing::info!(batch = %batch_id, run = r.run_id, drift = r.drift, steps = %r.summary(), "cycle succeeded");
                    run.cycles.push(r);
                    last_error = None;
                    break;
                }
                Ok(r) => {
                    tracing::warn!(batch = %batch_id, run = r.run_id, attempt, steps = %r.summary(), "cycle failed");
                    last_error = None;
                    if attempt == attempts {
                        run.cycles.push(r);
                    }
                }
                Err(e) => {
                    tracing::warn!(batch = %batch_id, attempt, error = %e, "cycle could not run");
                    last_error = Some(e.to_string());
                }
            }
            if attempt < attempts {
                tracing::info!(batch = %batch_id, retry_in = ?delay, "retrying");
                clock.sleep(delay, stop);
                delay = delay.saturating_mul(2);
            }
        }
        if let Some(e) = last_error {
            run.not_run.push((batch_id, e));
        }
    }
    Ok(run)
}

/// Size and modification time: what changes while a file is being written.
fn file_state(path: &Path) -> Result<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    Ok((meta.len(), meta.modified().ok()))
}

/// Waits until `path` stayed unchanged for `settle`; `false` if `stop` was
/// set first. A file that keeps growing is waited for as long as it grows.
fn wait_until_settled(
    path: &Path,
    settle: Duration,
    clock: &dyn Clock,
    stop: &AtomicBool,
) -> Result<bool> {
    let mut last = file_state(path)?;
    loop {
        clock.sleep(settle, stop);
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let now = file_state(path)?;
        if now == last {
            return Ok(true);
        }
        tracing::info!(file = %path.display(), bytes = now.0, "batch file still being written; waiting");
        last = now;
    }
}

/// The scheduler loop: sleeps until the next cron tick, processes the inbox,
/// repeats; returns when `stop` is set.
pub fn run(opts: &SchedulerOptions, stop: &AtomicBool, progress: &dyn Progress) -> Result<()> {
    run_with(opts, &SystemClock, stop, progress)
}

/// [`run`] on a given clock.
pub fn run_with(
    opts: &SchedulerOptions,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<()> {
    let schedule = parse_cron(&opts.cron)?;
    if !opts.inbox.is_dir() {
        return Err(Error::NotFound(format!(
            "inbox {} is not a directory",
            opts.inbox.display()
        )));
    }
    tracing::info!(cron = %opts.cron, inbox = %opts.inbox.display(), "scheduler started");
    while !stop.load(Ordering::SeqCst) {
        let now = clock.now();
        let Some(next) = schedule.after(&now).next() else {
            tracing::info!("the schedule has no further ticks");
            break;
        };
        tracing::info!(next = %next.format("%Y-%m-%d %H:%M:%S UTC"), "waiting for the next tick");
        clock.sleep((next - now).to_std().unwrap_or_default(), stop);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        match process_inbox_with(opts, clock, stop, progress) {
            Ok(r) => {
                for (batch, e) in &r.not_run {
                    tracing::error!(batch = %batch, error = %e, "batch not processed; will try again at the next tick");
                }
            }
            Err(e) => tracing::error!(error = %e, "tick failed; will try again at the next tick"),
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_five_fields_and_errors() {
        let s = parse_cron("0 9 * * MON").unwrap();
        let next = s.upcoming(Utc).next().unwrap();
        assert_eq!(next.format("%H:%M:%S").to_string(), "09:00:00");
        assert_eq!(next.format("%a").to_string(), "Mon");
        let err = parse_cron("every monday").unwrap_err().to_string();
        assert!(err.contains("0 9 * * MON"), "{err}");
    }

    #[test]
    fn only_finished_batch_files_are_candidates() {
        for name in ["batch_w1.csv", "w2.dat", "u.data", "b.tsv", "batch.v2.csv"] {
            assert!(is_batch_file_name(name), "{name}");
        }
        for name in [
            "batch_w1.csv.part",
            "batch_w1.csv.tmp",
            ".batch_w1.csv",
            ".batch_w1.csv.Xy12ab",
            "notes.txt",
            "batch_w1",
        ] {
            assert!(!is_batch_file_name(name), "{name}");
        }
    }
}
