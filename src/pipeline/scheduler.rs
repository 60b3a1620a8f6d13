//! `cinematch scheduler`: a long-running process that, on a cron schedule,
//! runs one pipeline cycle for each new batch file in an inbox directory.
//!
//! Failed cycles are retried with exponential backoff; two cycles never run
//! at once, also across processes (the pipeline lock); SIGTERM or Ctrl-C
//! stops the scheduler between cycles, never in the middle of one.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;

use super::cycle::{run_cycle, CycleOptions, CycleReport};
use crate::progress::Progress;
use crate::store::{self, Store};
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

/// Batch files in `inbox` not yet ingested, by file name: the batch id is
/// the file stem (`batch_w3.csv` -> `batch_w3`).
pub fn pending_batches(store: &mut dyn Store, inbox: &Path) -> Result<Vec<(PathBuf, String)>> {
    let done: std::collections::HashSet<String> = store
        .ingestions()?
        .into_iter()
        .filter(|i| i.status.as_deref() == Some("completed"))
        .map(|i| i.batch_id)
        .collect();
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(inbox)
        .map_err(|e| Error::io(inbox, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("csv" | "dat" | "data" | "tsv")
                )
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
    pub cycle: CycleOptions,
}

/// Runs a cycle for every pending batch, retrying each failed cycle with
/// backoff. Stops early (between attempts) when `stop` is set.
pub fn process_inbox(
    opts: &SchedulerOptions,
    stop: &AtomicBool,
    progress: &dyn Progress,
) -> Result<Vec<CycleReport>> {
    let mut reports = Vec::new();
    let pending = {
        let mut store = store::open(&opts.db_url)?;
        pending_batches(store.as_mut(), &opts.inbox)?
    };
    if pending.is_empty() {
        tracing::info!(inbox = %opts.inbox.display(), "no new batch files");
    }
    for (path, batch_id) in pending {
        let mut delay = opts.backoff;
        for attempt in 1..=opts.attempts.max(1) {
            if stop.load(Ordering::SeqCst) {
                return Ok(reports);
            }
            let mut cycle = opts.cycle.clone();
            cycle.batch = Some((path.clone(), batch_id.clone()));
            // A fresh connection per attempt: the failure may have been the connection.
            let result =
                store::open(&opts.db_url).and_then(|mut s| run_cycle(s.as_mut(), &cycle, progress));
            match result {
                Ok(r) if r.succeeded => {
                    tracing::info!(batch = %batch_id, run = r.run_id, drift = r.drift, steps = %r.summary(), "cycle succeeded");
                    reports.push(r);
                    break;
                }
                Ok(r) => {
                    tracing::warn!(batch = %batch_id, run = r.run_id, attempt, steps = %r.summary(), "cycle failed");
                    if attempt == opts.attempts.max(1) {
                        reports.push(r);
                    }
                }
                Err(e) => {
                    tracing::warn!(batch = %batch_id, attempt, error = %e, "cycle could not run")
                }
            }
            if attempt < opts.attempts.max(1) {
                sleep_unless(stop, delay);
                delay = delay.saturating_mul(2);
            }
        }
    }
    Ok(reports)
}

/// The scheduler loop: sleeps until the next cron tick, processes the inbox,
/// repeats; returns when `stop` is set.
pub fn run(opts: &SchedulerOptions, stop: &AtomicBool, progress: &dyn Progress) -> Result<()> {
    let schedule = parse_cron(&opts.cron)?;
    if !opts.inbox.is_dir() {
        return Err(Error::NotFound(format!(
            "inbox {} is not a directory",
            opts.inbox.display()
        )));
    }
    tracing::info!(cron = %opts.cron, inbox = %opts.inbox.display(), "scheduler started");
    while !stop.load(Ordering::SeqCst) {
        let Some(next) = schedule.upcoming(Utc).next() else {
            tracing::info!("the schedule has no further ticks");
            break;
        };
        tracing::info!(next = %next.format("%Y-%m-%d %H:%M:%S UTC"), "waiting for the next tick");
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        sleep_unless(stop, wait);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        if let Err(e) = process_inbox(opts, stop, progress) {
            tracing::error!(error = %e, "tick failed; will try again at the next tick");
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(200);
    let mut left = total;
    while !left.is_zero() && !stop.load(Ordering::SeqCst) {
        let d = left.min(step);
        std::thread::sleep(d);
        left -= d;
    }
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
}
