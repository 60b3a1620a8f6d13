//! The monitoring commands: `ingest`, `drift`, `retrain`, `pipeline`,
//! `buffer` and `scheduler`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use cinematch::data::ReadOptions;
use cinematch::pipeline::cycle::{self, CycleOptions};
use cinematch::pipeline::drift_check::{self, Thresholds};
use cinematch::pipeline::lease::MIN_LEASE;
use cinematch::pipeline::retrain::{self, RetrainOptions, RetrainOutcome};
use cinematch::pipeline::{ingest, scheduler};
use cinematch::store::{self, Store};

use cinematch::registry::Objective;

use super::{print, Ctx, JsonArg, EXIT_CHAMPION_CHANGED};

#[derive(Args)]
pub struct IngestArgs {
    /// Ratings file (MovieLens CSV, .dat or u.data).
    file: PathBuf,
    /// Batch identifier, e.g. batch_w1 (at most 50 characters).
    #[arg(long)]
    batch_id: String,
    /// Ingest the valid rows and report the invalid ones instead of refusing the batch.
    #[arg(long)]
    skip_invalid: bool,
}

/// Serve what you know (`train`, `retrain`, `pipeline run`, `scheduler`).
#[derive(Args, Clone, Copy)]
pub struct RefitArgs {
    /// After choosing the champion, train it again with the same
    /// hyperparameters on every stored rating (train, test and merged) and
    /// serve that refit; recorded as a refit of the evaluated run, whose
    /// metrics it carries. A deployment setting: CINEMATCH_REFIT=1.
    #[arg(
        long,
        env = "CINEMATCH_REFIT",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub refit: bool,
}

/// The pipeline lease of `pipeline run`, `retrain` and `scheduler`.
#[derive(Args, Clone, Copy)]
pub struct LeaseArgs {
    /// Seconds the pipeline lease lasts without renewal (it is renewed every
    /// third of that while working): how long a holder that vanished with its
    /// machine blocks the next cycle. A holder on the same machine whose
    /// process died is taken over at once.
    #[arg(
        long = "lease-secs",
        env = "CINEMATCH_LEASE_SECS",
        default_value_t = 60.0,
        value_name = "SECS"
    )]
    lease_secs: f64,
}

impl LeaseArgs {
    pub fn duration(self) -> Result<Duration> {
        match Duration::try_from_secs_f64(self.lease_secs) {
            Ok(d) if d >= MIN_LEASE => Ok(d),
            _ => bail!(
                "--lease-secs {} is not a usable lease: give at least {} seconds",
                self.lease_secs,
                MIN_LEASE.as_secs_f64()
            ),
        }
    }
}

#[derive(Args, Clone)]
pub struct ThresholdArgs {
    /// TOML file with a [drift] table of thresholds (see README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a threshold, e.g. --threshold rating_mean=0.05 (repeatable).
    #[arg(long = "threshold", value_name = "TEST=VALUE")]
    thresholds: Vec<String>,
}

impl ThresholdArgs {
    /// The file's thresholds (or the defaults) with every `--threshold` applied.
    pub fn thresholds(&self) -> Result<Thresholds> {
        let t = match &self.config {
            Some(path) => Thresholds::from_file(path)?,
            None => Thresholds::default(),
        };
        if self.thresholds.is_empty() {
            return Ok(t);
        }
        let mut v = serde_json::to_value(&t)?;
        let obj = v.as_object_mut().context("thresholds")?;
        for kv in &self.thresholds {
            let (k, val) = kv
                .split_once('=')
                .with_context(|| format!("--threshold {kv:?} is not TEST=VALUE"))?;
            let num: f64 = val
                .trim()
                .parse()
                .with_context(|| format!("--threshold {kv:?}: {val:?} is not a number"))?;
            if !obj.contains_key(k.trim()) {
                bail!(
                    "--threshold {kv:?}: unknown test {k:?}; tests are {}",
                    obj.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            obj.insert(k.trim().to_string(), serde_json::json!(num));
        }
        Ok(serde_json::from_value(v)?)
    }
}

#[derive(Subcommand)]
pub enum DriftCommand {
    /// Compare the buffer (or one batch) with the train split; one drift_alerts row per test.
    Check {
        /// Only this batch of the buffer.
        #[arg(long)]
        batch: Option<String>,
        #[command(flatten)]
        thresholds: ThresholdArgs,
    },
    /// Recent drift results and the retraining verdict.
    Status {
        /// How far back, e.g. 1d, 30d.
        #[arg(long, default_value = "1d")]
        window: String,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Args)]
pub struct RetrainArgs {
    /// Only retrain if a drift alert triggered within --window.
    #[arg(long)]
    if_drift: bool,
    /// The window of --if-drift, e.g. 24h, 7d.
    #[arg(long, default_value = "24h")]
    window: String,
    /// Promote the challenger if its score on the objective (--objective, NDCG@10 by default)
    /// is at most this share worse than the champion's, e.g. 0.005 = 0.5%.
    #[arg(long, default_value_t = 0.005, value_name = "SHARE")]
    tolerance: f64,
    /// Retrain even when there is nothing new (empty buffer, no drift alert, the champion
    /// trained on the current data); without it such a retrain is skipped and records nothing.
    #[arg(long, conflicts_with = "if_drift")]
    force: bool,
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    refit: RefitArgs,
}

impl RetrainArgs {
    pub fn options(&self, objective: Objective) -> Result<RetrainOptions> {
        Ok(RetrainOptions {
            if_drift: self.if_drift,
            window_secs: retrain::parse_duration_secs(&self.window)?,
            tolerance: self.tolerance,
            objective,
            lease: self.lease.duration()?,
            refit: self.refit.refit,
            only_if_new: !self.force,
            ..RetrainOptions::default()
        })
    }
}

#[derive(Subcommand)]
pub enum PipelineCommand {
    /// One cycle: ingest (with --batch), drift check, retrain if drift.
    Run(PipelineRunArgs),
    /// Past pipeline runs and their steps.
    History {
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Args)]
pub struct PipelineRunArgs {
    /// A batch file to ingest first (needs --batch-id).
    #[arg(long, requires = "batch_id", value_name = "FILE")]
    batch: Option<PathBuf>,
    /// The batch's identifier, e.g. batch_w1 (at most 50 characters; with --batch).
    #[arg(long, requires = "batch", value_name = "ID")]
    batch_id: Option<String>,
    /// If drift triggers a retrain: promote the challenger if its score on the objective
    /// (--objective, NDCG@10 by default) is at most this share worse than the champion's.
    #[arg(long, default_value_t = 0.005, value_name = "SHARE")]
    tolerance: f64,
    /// When the cycle retrains: on drift that asks for it (the spec's
    /// loop), every cycle, or never (ingest and check only).
    #[arg(long, value_parser = ["drift", "always", "never"], default_value = "drift")]
    retrain: String,
    #[command(flatten)]
    thresholds: ThresholdArgs,
    #[command(flatten)]
    lease: LeaseArgs,
    #[command(flatten)]
    refit: RefitArgs,
}

impl PipelineRunArgs {
    pub fn options(self, objective: Objective) -> Result<CycleOptions> {
        Ok(CycleOptions {
            thresholds: self.thresholds.thresholds()?,
            batch: self.batch.zip(self.batch_id),
            retrain_when: match self.retrain.as_str() {
                "always" => cycle::RetrainWhen::Always,
                "never" => cycle::RetrainWhen::Never,
                _ => cycle::RetrainWhen::Drift,
            },
            retrain: RetrainOptions {
                tolerance: self.tolerance,
                objective,
                refit: self.refit.refit,
                ..RetrainOptions::default()
            },
            lease: self.lease.duration()?,
            ..CycleOptions::default()
        })
    }
}

#[derive(Subcommand)]
pub enum BufferCommand {
    /// Move every buffered rating into ratings as train data (the spec's option 2).
    Merge,
    /// Delete buffered ratings (the spec's option 1): named batches, or every batch with --yes.
    ///
    /// A cleared batch is marked 'cleared' in ingestion_metadata with the count
    /// and may be ingested again. Batches already merged into ratings cannot be
    /// cleared (ingesting them again would double them).
    Clear(BufferClearArgs),
    /// Buffered ratings per batch.
    Status {
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Args)]
pub struct BufferClearArgs {
    /// Only this batch (repeatable); API batches (api_YYYY-MM-DD) too when named.
    #[arg(long = "batch", value_name = "ID")]
    batches: Vec<String>,
    /// Clear every batch (needed when no --batch is given). Ratings posted
    /// through the API are kept unless --include-api.
    #[arg(long, conflicts_with = "batches")]
    yes: bool,
    /// With --yes, also delete the ratings posted through the API.
    #[arg(long, requires = "yes")]
    include_api: bool,
}

#[derive(Args)]
pub struct SchedulerArgs {
    /// Cron expression (UTC): minute hour day-of-month month day-of-week.
    #[arg(long, default_value = "0 9 * * MON")]
    cron: String,
    /// Directory where batch files (batch_wN.csv) arrive; the file stem is the batch id.
    #[arg(long)]
    inbox: PathBuf,
    /// Process the inbox once now and exit, instead of waiting for the schedule.
    #[arg(long)]
    once: bool,
    /// A file is taken once its size and modification time stayed the same
    /// for this long (milliseconds); files still being written are waited
    /// for. Writers should still write `NAME.csv.part` and rename it.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    settle_ms: u64,
    #[command(flatten)]
    lease: LeaseArgs,
    /// Attempts per batch before giving up until the next tick.
    #[arg(long, default_value_t = 3)]
    attempts: u32,
    /// First retry delay in seconds (doubles after each failure).
    #[arg(long, default_value_t = 5)]
    backoff_secs: u64,
    #[command(flatten)]
    thresholds: ThresholdArgs,
}

impl SchedulerArgs {
    /// The scheduler's options on `db_url`, the cron expression checked.
    pub fn options(
        &self,
        db_url: String,
        objective: Objective,
    ) -> Result<scheduler::SchedulerOptions> {
        let opts = scheduler::SchedulerOptions {
            db_url,
            inbox: self.inbox.clone(),
            cron: self.cron.clone(),
            attempts: self.attempts,
            backoff: Duration::from_secs(self.backoff_secs),
            settle: Duration::from_millis(self.settle_ms),
            cycle: CycleOptions {
                thresholds: self.thresholds.thresholds()?,
                retrain: RetrainOptions {
                    objective,
                    ..RetrainOptions::default()
                },
                lease: self.lease.duration()?,
                ..CycleOptions::default()
            },
        };
        scheduler::parse_cron(&opts.cron)?;
        Ok(opts)
    }
}

pub fn ingest(args: IngestArgs, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    let read = ReadOptions {
        skip_invalid: args.skip_invalid,
    };
    let r = match ingest::ingest_file(store.as_mut(), &args.file, &args.batch_id, read) {
        Ok(r) => r,
        Err(e @ cinematch::Error::BatchCompleted { .. }) => {
            // Replacing it is possible only while its ratings are buffered.
            let buffered = store
                .buffer_counts()
                .map(|c| {
                    c.iter()
                        .any(|(b, _)| b.as_deref() == Some(args.batch_id.as_str()))
                })
                .unwrap_or(false);
            let batch = &args.batch_id;
            let hint = if buffered {
                format!(
                    "use a new --batch-id, or `cinematch buffer clear --batch {batch}` first to \
                     replace it"
                )
            } else {
                "its ratings were merged into the ratings table (by a retrain or `buffer merge`), \
                 so it cannot be replaced; ingest new ratings under a new --batch-id"
                    .to_string()
            };
            return Err(anyhow::Error::new(e).context(hint));
        }
        Err(e) => return Err(e.into()),
    };
    print::ingested(&r);
    Ok(())
}

pub fn drift(cmd: DriftCommand, ctx: &Ctx) -> Result<()> {
    match cmd {
        DriftCommand::Check { batch, thresholds } => {
            let t = thresholds.thresholds()?;
            let mut store = ctx.open_store()?;
            let report = drift_check::check(store.as_mut(), batch.as_deref(), &t)?;
            print::drift_check(&report, batch.as_deref());
        }
        DriftCommand::Status { window, json } => {
            let secs = retrain::parse_duration_secs(&window)?;
            let mut store = ctx.open_store()?;
            let alerts = store.drift_alerts(Some(secs))?;
            let verdict = retrain::retraining_verdict(store.as_mut(), 86400)?;
            if json.json {
                print::json(&print::DriftStatusJson::new(&window, &alerts, &verdict))?;
            } else {
                print::drift_status(&alerts, &verdict);
            }
        }
    }
    Ok(())
}

/// Exit 4 when the run was kept unpromoted because the champion changed
/// while it trained (see `EXIT_CODES_HELP`).
fn exit_for(outcome: Option<&RetrainOutcome>) -> ExitCode {
    match outcome {
        Some(RetrainOutcome::Retrained {
            champion_changed: Some(_),
            ..
        }) => ExitCode::from(EXIT_CHAMPION_CHANGED),
        _ => ExitCode::SUCCESS,
    }
}

pub fn retrain(args: RetrainArgs, ctx: &Ctx) -> Result<ExitCode> {
    let opts = args.options(ctx.objective)?;
    let mut store = ctx.open_store()?;
    let outcome = retrain::retrain(store.as_mut(), &opts, &ctx.progress)?;
    print::retrain(&outcome);
    Ok(exit_for(Some(&outcome)))
}

pub fn pipeline(cmd: PipelineCommand, ctx: &Ctx) -> Result<ExitCode> {
    match cmd {
        PipelineCommand::Run(args) => {
            let opts = args.options(ctx.objective)?;
            let mut store = ctx.open_store()?;
            let report = cycle::run_cycle(store.as_mut(), &opts, &ctx.progress)?;
            print::cycle(&report);
            if !report.succeeded {
                bail!(
                    "pipeline run {} failed; fix the cause and run it again (steps are idempotent)",
                    report.run_id
                );
            }
            Ok(exit_for(report.retrain.as_ref()))
        }
        PipelineCommand::History { json } => {
            let mut store = ctx.open_store()?;
            let runs = store.pipeline_runs()?;
            if json.json {
                print::json(&print::PipelineHistoryJson::new(runs))?;
            } else {
                print::pipeline_history(runs);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn buffer(cmd: BufferCommand, ctx: &Ctx) -> Result<()> {
    let mut store = ctx.open_store()?;
    match cmd {
        BufferCommand::Merge => print::buffer_merged(store.merge_buffer()?),
        BufferCommand::Clear(args) => buffer_clear(store.as_mut(), &args)?,
        BufferCommand::Status { json } if json.json => {
            print::json(&print::BufferJson::new(store.buffer_counts()?))?
        }
        BufferCommand::Status { .. } => print::buffer_status(store.buffer_counts()?),
    }
    Ok(())
}

/// `buffer clear`: the named batches, or with --yes every batch (the API's
/// only with --include-api), each cleared in its own transaction.
fn buffer_clear(store: &mut dyn Store, args: &BufferClearArgs) -> Result<()> {
    let buffered = store.buffer_counts()?;
    let targets: Vec<String> = if !args.batches.is_empty() {
        args.batches.clone()
    } else if args.yes {
        buffered
            .iter()
            .filter_map(|(b, _)| b.clone())
            .filter(|b| args.include_api || !store::is_api_batch(b))
            .collect()
    } else {
        let list = buffered
            .iter()
            .map(|(b, n)| format!("{} ({n})", b.as_deref().unwrap_or("no batch id")))
            .collect::<Vec<_>>()
            .join(", ");
        bail!(
            "buffer clear deletes buffered ratings: name a batch with --batch ID, or pass --yes \
             to clear every batch (ratings posted through the API are kept unless \
             --include-api); buffered now: {}",
            if list.is_empty() { "nothing" } else { &list }
        );
    };
    for batch in &targets {
        let n = store
            .clear_batch(batch)
            .with_context(|| format!("clearing batch {batch}"))?;
        print::batch_cleared(batch, n);
    }
    if args.batches.is_empty() {
        let kept: Vec<(Option<String>, i64)> = buffered
            .into_iter()
            .filter(|(b, _)| b.as_ref().is_none_or(|b| !targets.contains(b)))
            .collect();
        print::buffer_kept(&kept, !targets.is_empty());
    }
    Ok(())
}

/// `scheduler`: until SIGINT or SIGTERM (which let the current cycle
/// finish), or one pass over the inbox with `--once`.
pub fn scheduler(args: SchedulerArgs, ctx: &Ctx) -> Result<()> {
    let (url, _) = ctx.db_url();
    let opts = args.options(url, ctx.objective)?;
    let stop = cinematch::shutdown::stop_flag().context("installing the signal handlers")?;
    if !args.once {
        scheduler::run(&opts, &stop, &ctx.progress)?;
        return Ok(());
    }
    let done = scheduler::process_inbox(&opts, &stop, &ctx.progress)?;
    for r in &done.cycles {
        print::cycle(r);
    }
    for (batch, e) in &done.not_run {
        print::batch_not_run(batch, e);
    }
    for (batch, why) in &done.refused {
        print::batch_refused(batch, why);
    }
    if !done.refused.is_empty() {
        bail!(
            "{} batch files were refused (recorded as failed pipeline runs; the files are left in place)",
            done.refused.len()
        );
    }
    if !done.all_succeeded() {
        bail!("some batches failed after {} attempts", opts.attempts);
    }
    Ok(())
}
