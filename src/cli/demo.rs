//! `cinematch demo`: the README's main command, the whole story on a demo
//! database of its own (recreated each run) unless `--db` names one.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use cinematch::data::synth;
use cinematch::pipeline::demo::{self, DemoOptions};
use cinematch::pipeline::retrain;
use cinematch::registry;
use cinematch::store;

use super::{print, Ctx};

#[derive(Args)]
pub struct DemoArgs {
    /// A real MovieLens release to replay instead of synthetic data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Empty the database first (its data is lost).
    #[arg(long)]
    fresh: bool,
    /// History size of the synthetic data.
    #[arg(long, default_value_t = 100_000)]
    ratings: u64,
    /// Ratings per weekly batch.
    #[arg(long, default_value_t = 10_000)]
    weekly_ratings: u64,
    /// Drift injected into week 3.
    #[arg(long, default_value = "mean:+0.6,genre:Comedy:+0.5")]
    drift: String,
    /// Seed of the synthetic data, the split and every training: the same seed tells the same story.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl DemoArgs {
    /// The demo's options, its files under `work_dir`.
    pub fn options(&self, work_dir: PathBuf) -> Result<DemoOptions> {
        let mut opts = DemoOptions::new(work_dir);
        opts.data = self.data.clone();
        opts.history_ratings = self.ratings;
        opts.ratings_per_week = self.weekly_ratings;
        opts.drift = synth::parse_drift(&self.drift)?;
        opts.seed = self.seed;
        Ok(opts)
    }
}

/// Without `--db`, the demo's own SQLite file in the working directory,
/// deleted first so every run starts from nothing.
fn demo_db_url(db: Option<&str>) -> String {
    match db {
        Some(u) => u.to_string(),
        None => {
            let path = "cinematch-demo.db";
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
            format!("sqlite://{path}")
        }
    }
}

pub fn run(args: DemoArgs, ctx: &Ctx) -> Result<()> {
    let work = std::env::temp_dir().join(format!("cinematch-demo-{}", std::process::id()));
    let mut opts = args.options(work.clone())?;
    opts.objective = ctx.objective;
    let url = demo_db_url(ctx.db.as_deref());
    let mut store =
        store::open(&url).with_context(|| format!("opening {}", store::redact_url(&url)))?;
    if args.fresh {
        store.reset()?;
    }
    print::demo_start(&store.location());
    let started = std::time::Instant::now();
    let result = demo::run(store.as_mut(), &opts, &ctx.progress, &mut print::demo_line);
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e @ (cinematch::Error::Conflict(_) | cinematch::Error::DatasetLoaded { .. })) =
        &result
    {
        anyhow::bail!("{e} (use --db with a new one, or --fresh to empty this one)");
    }
    result?;
    print::demo_tables(
        store.ingestions()?,
        &registry::run_summaries(store.as_mut(), ctx.objective)?,
        ctx.objective,
        store.drift_alerts(None)?,
        &retrain::retraining_verdict(store.as_mut(), 86400)?,
    );
    print::demo_finished(started.elapsed(), &store.location());
    Ok(())
}
