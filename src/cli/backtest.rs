//! `cinematch backtest`: a time-ordered replay of a release (or of the
//! store's own ratings) through the real pipeline and serving code.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use cinematch::data::stream::TimeCut;
use cinematch::pipeline::backtest::{self, BacktestOptions, Policy, ReplaySource};
use cinematch::pipeline::retrain::parse_duration_secs;
use cinematch::registry;

use super::monitor::ThresholdArgs;
use super::{print, Ctx};

#[derive(Args)]
pub struct BacktestArgs {
    /// A MovieLens release directory to replay (any published format).
    #[arg(required_unless_present = "from_store", conflicts_with = "from_store")]
    source: Option<PathBuf>,
    /// Replay the ratings of the store --db names (both splits and the
    /// buffer) instead of a release; results are recorded there too.
    #[arg(long)]
    from_store: bool,
    /// Weeks replayed: equal counts of the ratings after the history
    /// (with --cutoff: calendar steps, 0 = until the data ends).
    #[arg(long, default_value_t = 6)]
    weeks: u32,
    /// Share of the ratings, earliest first, that the deployment starts with.
    #[arg(long, default_value_t = 0.8, conflicts_with = "cutoff")]
    history_fraction: f64,
    /// Start the replay at this date (YYYY-MM-DD, UTC): the history is
    /// everything before it, each week the ratings of the next --step.
    #[arg(long, value_name = "DATE")]
    cutoff: Option<String>,
    /// Length of a replayed week with --cutoff, e.g. 7d, 24h.
    #[arg(long, default_value = "7d", requires = "cutoff")]
    step: String,
    /// Retraining policies to replay, each from the same history: never,
    /// drift (the pipeline's), always, every:N (comma-separated or repeated).
    #[arg(long = "policy", value_delimiter = ',', default_value = "drift")]
    policies: Vec<String>,
    /// The model the deployment starts with (retrains keep its settings).
    #[arg(long, default_value = "ease", value_parser = ["ease", "ials", "baseline", "svd", "als"])]
    algo: String,
    /// A hyperparameter of --algo as KEY=VALUE (repeatable), e.g. --param half_life=365d.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Seed of the history's train/test split and of training.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve what you know: every champion refit on every stored rating.
    #[arg(long)]
    refit: bool,
    /// The trending baseline counts this share of the history's ratings (the latest).
    #[arg(long, default_value_t = 0.25)]
    trending_share: f64,
    /// Keep the replay's stores and files here (otherwise a temporary directory).
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Promote a retrain when it is not worse than the champion by more than this share of the objective.
    #[arg(long, default_value_t = 0.005)]
    tolerance: f64,
    #[command(flatten)]
    thresholds: ThresholdArgs,
    /// Print the result as JSON (the same document `backtests.report` holds per policy).
    #[arg(long)]
    json: bool,
}

impl BacktestArgs {
    fn options(&self, ctx: &Ctx) -> Result<BacktestOptions> {
        let source = match (&self.source, self.from_store) {
            (Some(dir), false) => ReplaySource::Release(dir.clone()),
            (None, true) => ReplaySource::Store(ctx.db_url().0),
            _ => bail!("give a release directory or --from-store, not both"),
        };
        let mut opts = BacktestOptions::new(source);
        opts.cut = match &self.cutoff {
            None => TimeCut::Share {
                weeks: self.weeks,
                history_fraction: self.history_fraction,
            },
            Some(date) => {
                let day = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
                    .with_context(|| format!("--cutoff {date:?} is not a date (YYYY-MM-DD)"))?;
                let start = day
                    .and_hms_opt(0, 0, 0)
                    .context("--cutoff")?
                    .and_utc()
                    .timestamp();
                TimeCut::Calendar {
                    start,
                    step_secs: parse_duration_secs(&self.step).context("--step")?,
                    weeks: self.weeks,
                }
            }
        };
        opts.policies = self
            .policies
            .iter()
            .map(|p| p.parse::<Policy>())
            .collect::<cinematch::Result<_>>()
            .context("--policy")?;
        let algo = cinematch::models::Algo::parse(&self.algo).context("unknown algorithm")?;
        let overrides: Vec<(String, String)> = self
            .params
            .iter()
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .with_context(|| format!("--param {p:?} is not KEY=VALUE"))
            })
            .collect::<Result<_>>()?;
        opts.params = registry::params_with_overrides(algo, &overrides)?;
        opts.seed = self.seed;
        opts.refit = self.refit;
        opts.trending_share = self.trending_share;
        opts.workdir = self.workdir.clone();
        opts.tolerance = self.tolerance;
        opts.objective = ctx.objective;
        opts.thresholds = self.thresholds.thresholds()?;
        Ok(opts)
    }
}

pub fn run(args: BacktestArgs, ctx: &Ctx) -> Result<()> {
    let opts = args.options(ctx)?;
    let mut store = ctx.open_store()?;
    let report = backtest::backtest(store.as_mut(), &opts, &ctx.progress)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print::backtest(&report);
    }
    Ok(())
}
