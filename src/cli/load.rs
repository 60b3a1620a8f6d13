//! `cinematch load` and `cinematch data`: getting ratings in, real or synthetic.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};

use cinematch::data::split::{SplitOptions, SplitStrategy};
use cinematch::data::stream::{self, StreamOptions};
use cinematch::data::synth::{self, SynthOptions, WeeklyOptions};
use cinematch::data::ReadOptions;
use cinematch::pipeline::load::{self, LoadOptions, Source};

use super::{print, Ctx};

#[derive(Clone, Copy, ValueEnum)]
enum SplitKind {
    /// Each rating goes to train or test at random (seeded, exact proportion).
    Random,
    /// The latest ratings by timestamp go to test.
    Time,
}

impl From<SplitKind> for SplitStrategy {
    fn from(kind: SplitKind) -> SplitStrategy {
        match kind {
            SplitKind::Random => SplitStrategy::Random,
            SplitKind::Time => SplitStrategy::Time,
        }
    }
}

#[derive(Args)]
pub struct LoadArgs {
    /// A MovieLens release directory (ml-latest-small, ml-25m, ml-1m, ml-100k, ...).
    #[arg(required_unless_present_all = ["ratings", "movies"], conflicts_with_all = ["ratings", "movies"])]
    dir: Option<PathBuf>,
    /// Explicit ratings file (with --movies) instead of a directory.
    #[arg(long, requires = "movies", value_name = "FILE")]
    ratings: Option<PathBuf>,
    /// Explicit movies file (with --ratings).
    #[arg(long, requires = "ratings", value_name = "FILE")]
    movies: Option<PathBuf>,
    /// How ratings are split into train and test.
    #[arg(long, value_enum, default_value = "random")]
    split: SplitKind,
    /// Share of ratings in the train split.
    #[arg(long, default_value_t = 0.7)]
    train_fraction: f64,
    /// Seed of the random split (the same seed gives the same split).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Load the valid rows and report how many invalid rows of each kind were skipped.
    #[arg(long)]
    skip_invalid: bool,
    /// Replace an already loaded dataset instead of refusing.
    #[arg(long)]
    replace: bool,
}

impl LoadArgs {
    pub fn source(&self) -> Result<Source> {
        Ok(match (&self.dir, &self.ratings, &self.movies) {
            (Some(dir), _, _) => Source::Dir(dir.clone()),
            (None, Some(ratings), Some(movies)) => Source::Files {
                ratings: ratings.clone(),
                movies: movies.clone(),
            },
            _ => bail!("give a MovieLens directory, or both --ratings and --movies"),
        })
    }

    pub fn options(&self) -> LoadOptions {
        LoadOptions {
            read: ReadOptions {
                skip_invalid: self.skip_invalid,
            },
            split: SplitOptions {
                strategy: self.split.into(),
                train_fraction: self.train_fraction,
                seed: self.seed,
            },
            replace: self.replace,
        }
    }
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Write a synthetic MovieLens-format directory (ratings.csv, movies.csv).
    Synth(SynthArgs),
    /// Turn a MovieLens release into a replay: history (ratings.csv, movies.csv) + weekly batch files.
    Stream(StreamArgs),
}

#[derive(Args)]
pub struct SynthArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Users in the synthetic release.
    #[arg(long, default_value_t = SynthOptions::default().users, value_name = "N")]
    users: u32,
    /// Movies in the catalogue.
    #[arg(long, default_value_t = SynthOptions::default().movies, value_name = "N")]
    movies: u32,
    /// Ratings of the history (ratings.csv).
    #[arg(long, default_value_t = SynthOptions::default().ratings, value_name = "N")]
    ratings: u64,
    /// Seed of the generator: the same seed writes the same files.
    #[arg(long, default_value_t = SynthOptions::default().seed)]
    seed: u64,
    /// Also write N weekly batch files (OUT/batches/batch_w1.csv ...) after the history.
    #[arg(long)]
    weeks: Option<u32>,
    /// Ratings per weekly batch.
    #[arg(long, default_value_t = 10_000)]
    weekly_ratings: u64,
    /// The week that carries --drift (repeat the pair for several weeks is not supported; use one).
    #[arg(long, requires = "drift")]
    drift_week: Option<u32>,
    /// Injected drift, e.g. mean:+0.4,genre:Comedy:+0.3,new-movies:0.2,spread:1.5
    #[arg(long, requires = "drift_week")]
    drift: Option<String>,
}

impl SynthArgs {
    pub fn options(&self) -> SynthOptions {
        SynthOptions {
            users: self.users,
            movies: self.movies,
            ratings: self.ratings,
            seed: self.seed,
            ..SynthOptions::default()
        }
    }

    /// The weekly batches after the history, with `--weeks`.
    pub fn weekly(&self) -> Result<Option<WeeklyOptions>> {
        let Some(weeks) = self.weeks else {
            return Ok(None);
        };
        let drift = match (self.drift_week, self.drift.as_deref()) {
            (Some(week), Some(d)) => vec![synth::DriftSpec {
                week,
                kinds: synth::parse_drift(d)?,
            }],
            _ => Vec::new(),
        };
        Ok(Some(WeeklyOptions {
            weeks,
            ratings_per_week: self.weekly_ratings,
            drift,
        }))
    }
}

#[derive(Args)]
pub struct StreamArgs {
    /// The MovieLens release directory.
    dir: PathBuf,
    /// Output directory (created if missing): the history and batches/batch_wN.csv.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Weekly batch files to write after the history.
    #[arg(long, default_value_t = 4, value_name = "N")]
    weeks: u32,
    /// Share of ratings (earliest first) that form the history.
    #[arg(long, default_value_t = 0.8)]
    history_fraction: f64,
}

impl StreamArgs {
    pub fn options(&self) -> StreamOptions {
        StreamOptions {
            weeks: self.weeks,
            history_fraction: self.history_fraction,
            ..StreamOptions::default()
        }
    }
}

pub fn run(args: LoadArgs, ctx: &Ctx) -> Result<()> {
    let source = args.source()?;
    let opts = args.options();
    let mut store = ctx.open_store()?;
    let report = load::load(store.as_mut(), &source, &opts, &ctx.progress)?;
    print::load_report(&report, &store.location());
    if report.summary.replaced {
        if let Some(champion) = store.champion()? {
            println!(
                "the champion {champion} was trained and scored on the dataset just replaced: \
                 it keeps serving until the next train or retrain, which it does not gate"
            );
        }
    }
    Ok(())
}

pub fn data(cmd: DataCommand, ctx: &Ctx) -> Result<()> {
    match cmd {
        DataCommand::Synth(args) => {
            let opts = args.options();
            match args.weekly()? {
                Some(weekly) => {
                    let r = synth::generate_weekly(&args.out, &opts, &weekly, &ctx.progress)?;
                    print::synth_weekly_report(&r, &args.out);
                }
                None => {
                    let r = synth::generate(&args.out, &opts, &ctx.progress)?;
                    print::synth_report(&r, &args.out);
                }
            }
        }
        DataCommand::Stream(args) => {
            let r = stream::stream(&args.dir, &args.out, &args.options(), &ctx.progress)?;
            print::stream_report(&r, &args.out);
        }
    }
    Ok(())
}
