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
use super::ingest;
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

/// What the scheduler found in its inbox.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Batch files not yet ingested, by file name, with their batch id: the
    /// file stem (`batch_w3.csv` -> `batch_w3`). Batches cleared with
    /// `buffer clear` count as not ingested.
    pub pending: Vec<(PathBuf, String)>,
    /// Files whose batch id completed before and whose content may differ
    /// from what was ingested (their size does, or the size matches and the
    /// content is to be compared): taken only once settled and compared.
    pub completed: Vec<(PathBuf, String)>,
    /// Files refused outright, with their batch id and why.
    pub refused: Vec<(String, String)>,
}

/// Sorts the inbox's batch files: pending, completed before, or refused.
///
/// Only regular files are taken: a symbolic link (which could make the
/// scheduler publish any file it can read) is refused, as is a file whose
/// stem is not a usable batch id (too long, or the API's `api_` prefix),
/// and every file of a batch id two files map to (`week1.csv` and
/// `week1.tsv`): which one is meant is for the operator to say, never a
/// silent choice. A completed batch id whose recorded size differs from the
/// file's is listed in `completed` for comparison; one with the recorded
/// size is hashed here and dropped when the content is the same.
pub fn scan_inbox(store: &mut dyn Store, inbox: &Path) -> Result<Inbox> {
    let done: std::collections::HashMap<String, String> = store
        .ingestions()?
        .into_iter()
        .filter(|i| i.status == Some(IngestionStatus::Completed))
        .map(|i| (i.batch_id, i.notes.unwrap_or_default()))
        .collect();
    let mut out = Inbox::default();
    let mut by_id: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for entry in std::fs::read_dir(inbox).map_err(|e| Error::io(inbox, e))? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !is_batch_file_name(name) {
            continue;
        }
        let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        // The entry's own type: a symbolic link is not followed.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            out.refused.push((
                id,
                format!(
                    "{name} is a symbolic link: the scheduler takes only regular files, so that \
                     nothing but a delivered batch is ever read"
                ),
            ));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if let Err(e) = ingest::validate_file_batch_id(&id) {
            out.refused.push((id, format!("{name}: {e}")));
            continue;
        }
        by_id.entry(id).or_default().push(path);
    }
    for (id, mut paths) in by_id {
        if paths.len() > 1 {
            paths.sort();
            let names: Vec<String> = paths
                .iter()
                .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
                .collect();
            out.refused.push((
                id.clone(),
                format!(
                    "{} files map to batch id {id:?} ({}): the batch id is the file name \
                     without its extension, so rename all but one; none of them was ingested",
                    paths.len(),
                    names.join(", ")
                ),
            ));
            continue;
        }
        let path = paths.remove(0);
        match done.get(&id) {
            None => out.pending.push((path, id)),
            Some(notes) => {
                if same_content(&path, notes).unwrap_or(false) {
                    continue;
                }
                out.completed.push((path, id));
            }
        }
    }
    out.pending.sort();
    out.completed.sort();
    Ok(out)
}

/// Whether `path` holds what a completed batch's audit notes recorded
/// (size, then SHA-256); `Ok(true)` when they recorded no digest (batches
/// ingested before digests were recorded: nothing to compare).
fn same_content(path: &Path, notes: &str) -> Result<bool> {
    let Some(sha) = ingest::FileDigest::recorded_sha256(notes) else {
        return Ok(true);
    };
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if !notes.contains(&format!("({size} bytes, ")) {
        return Ok(false);
    }
    Ok(ingest::FileDigest::of(path)?.sha256 == sha)
}

/// Records a refused batch file where operators look: a failed pipeline
/// run for its batch id and, unless that batch completed before (its row
/// holds real data), a failed audit row in `ingestion_metadata`.
fn record_refusal(store: &mut dyn Store, batch_id: &str, reason: &str) -> Result<()> {
    // An id the schema cannot hold (too long, control characters) is named
    // in the reason only.
    let storable = ingest::validate_batch_id(batch_id).is_ok();
    if storable {
        store.fail_ingestion(batch_id, reason)?;
    }
    let run = store.start_pipeline_run(storable.then_some(batch_id))?;
    let steps = serde_json::json!([{
        "name": "ingest", "status": "failed", "detail": reason, "seconds": 0.0
    }]);
    store.finish_pipeline_run(
        run,
        crate::types::PipelineStatus::Failed,
        &steps.to_string(),
        "ingest: failed",
    )
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
    /// Batch files refused (a symbolic link, two files for one batch id, a
    /// completed batch id with other content, a reserved or unusable id),
    /// with why; each is recorded as a failed pipeline run and left in place.
    pub refused: Vec<(String, String)>,
}

impl InboxRun {
    pub fn all_succeeded(&self) -> bool {
        self.not_run.is_empty()
            && self.refused.is_empty()
            && self.cycles.iter().all(|c| c.succeeded)
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
    let mut store = store::open(&opts.db_url)?;
    let inbox = scan_inbox(store.as_mut(), &opts.inbox)?;
    for (batch_id, reason) in inbox.refused {
        refuse(store.as_mut(), &mut run, batch_id, reason);
    }
    // A completed batch id delivered again: compared once the file settled.
    for (path, batch_id) in inbox.completed {
        match wait_until_settled(&path, opts.settle, clock, stop) {
            Ok(true) => {}
            Ok(false) => return Ok(run),
            Err(_) => continue,
        }
        let notes = store
            .ingestions()?
            .into_iter()
            .find(|i| i.batch_id == batch_id)
            .and_then(|i| i.notes)
            .unwrap_or_default();
        if same_content(&path, &notes)? {
            continue;
        }
        let digest = ingest::FileDigest::of(&path)?;
        let reason = format!(
            "batch {batch_id:?} was ingested before ({notes}); {digest} differs, so it was \
             not ingested: deliver a corrected file under a new name, or `cinematch buffer \
             clear --batch {batch_id}` first while its ratings are still buffered"
        );
        refuse(store.as_mut(), &mut run, batch_id, reason);
    }
    drop(store);
    let pending = inbox.pending;
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
        // Replaced by a link while it settled: refused, never read.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| !m.file_type().is_file()) {
            let reason = format!(
                "{} is no longer a regular file: the scheduler takes only regular files",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            let mut store = store::open(&opts.db_url)?;
            refuse(store.as_mut(), &mut run, batch_id, reason);
            continue;
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

/// Records and reports one refused file.
fn refuse(store: &mut dyn Store, run: &mut InboxRun, batch_id: String, reason: String) {
    tracing::error!(batch = %batch_id, %reason, "batch file refused; left in place");
    if let Err(e) = record_refusal(store, &batch_id, &reason) {
        tracing::error!(batch = %batch_id, error = %e, "could not record the refusal");
    }
    run.refused.push((batch_id, reason));
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
