//! Command-line parsing and dispatch. Each subcommand is a few lines over
//! the library; errors get context here and are printed once, by `main`.

mod table;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use cinematch::config::resolve_db_url;
use cinematch::data::load::{self, LoadOptions, Source};
use cinematch::data::split::{SplitOptions, SplitStrategy};
use cinematch::data::synth::{self, SynthOptions};
use cinematch::data::ReadOptions;
use cinematch::eval::{EvalOptions, Metrics};
use cinematch::models::Algo;
use cinematch::pipeline::cycle::{self, CycleOptions};
use cinematch::pipeline::drift_check::{self, Thresholds};
use cinematch::pipeline::ingest;
use cinematch::pipeline::retrain::{self, RetrainOptions, RetrainOutcome};
use cinematch::progress::Console;
use cinematch::recommend::{Recommender, Strategy};
use cinematch::registry::{self, TrainOptions};
use cinematch::store::{self, Store};

#[derive(Parser)]
#[command(
    name = "cinematch",
    version,
    about = "CineMatch: movie recommendations with continuous training and drift monitoring",
    long_about = "CineMatch stores MovieLens ratings (PostgreSQL or an embedded SQLite file), \
                  trains collaborative-filtering models, monitors new rating batches for drift \
                  and serves recommendations.\n\n\
                  The database is --db URL, else $CINEMATCH_DB, $DATABASE_URL, \
                  $NEON_CONNECTION_STRING, else sqlite://cinematch.db in the working directory."
)]
struct Cli {
    /// Database URL: postgres://user@host/db?sslmode=require or sqlite://file.db
    #[arg(long, global = true, value_name = "URL")]
    db: Option<String>,

    /// Only print errors and results, no progress or log lines.
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Schema management and database statistics.
    #[command(subcommand)]
    Db(DbCommand),
    /// Load a MovieLens release (ratings and movies) with a train/test split.
    Load(LoadArgs),
    /// Make data: synthetic MovieLens-shaped releases.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train a model on the train split, evaluate it on the test split and record it.
    Train(TrainArgs),
    /// The model registry: runs, the champion, promotion and rollback.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Re-evaluate a stored model on the current test split.
    Evaluate(EvaluateArgs),
    /// The champion's top movies for a user (cold-start list for unknown users).
    Recommend(RecommendArgs),
    /// Movies most like a movie, by the champion's factors.
    Similar(SimilarArgs),
    /// Ingest a batch of new ratings into ratings_buffer (logged in ingestion_metadata).
    Ingest(IngestArgs),
    /// Drift detection against the training baseline.
    #[command(subcommand)]
    Drift(DriftCommand),
    /// Retrain on train + buffer with the champion's settings, promote if not worse, merge the buffer.
    Retrain(RetrainArgs),
    /// The monitoring pipeline: ingest, drift check, retrain if drift.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// The rating buffer: merge into ratings or clear.
    #[command(subcommand)]
    Buffer(BufferCommand),
    /// The whole story on the embedded store: synthetic data, first model, three weekly batches, drift, retraining.
    Demo(DemoArgs),
    /// Run a pipeline cycle on a schedule for each new batch file in an inbox directory.
    Scheduler(SchedulerArgs),
    /// Serve the recommendation API and the monitoring dashboard over HTTP.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Seconds between checks for a new champion.
    #[arg(long, default_value_t = 10)]
    reload_secs: u64,
    /// Seconds a request may take before it is answered 408.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body: usize,
    /// Database connections for non-hot-path requests.
    #[arg(long, default_value_t = 4)]
    pool: usize,
}

#[derive(Args)]
struct SchedulerArgs {
    /// Cron expression (UTC): minute hour day-of-month month day-of-week.
    #[arg(long, default_value = "0 9 * * MON")]
    cron: String,
    /// Directory where batch files (batch_wN.csv) arrive; the file stem is the batch id.
    #[arg(long)]
    inbox: PathBuf,
    /// Process the inbox once now and exit, instead of waiting for the schedule.
    #[arg(long)]
    once: bool,
    /// Attempts per batch before giving up until the next tick.
    #[arg(long, default_value_t = 3)]
    attempts: u32,
    /// First retry delay in seconds (doubles after each failure).
    #[arg(long, default_value_t = 5)]
    backoff_secs: u64,
    #[command(flatten)]
    thresholds: ThresholdArgs,
}

#[derive(Args)]
struct IngestArgs {
    /// Ratings file (MovieLens CSV, .dat or u.data).
    file: PathBuf,
    /// Batch identifier, e.g. batch_w1 (at most 50 characters).
    #[arg(long)]
    batch_id: String,
    /// Ingest the valid rows and report the invalid ones instead of refusing the batch.
    #[arg(long)]
    skip_invalid: bool,
}

#[derive(Args, Clone)]
struct ThresholdArgs {
    /// TOML file with a [drift] table of thresholds (see README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a threshold, e.g. --threshold rating_mean=0.05 (repeatable).
    #[arg(long = "threshold", value_name = "TEST=VALUE")]
    thresholds: Vec<String>,
}

#[derive(Subcommand)]
enum DriftCommand {
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
    },
}

#[derive(Args)]
struct RetrainArgs {
    /// Only retrain if a drift alert triggered within --window.
    #[arg(long)]
    if_drift: bool,
    /// The window of --if-drift, e.g. 24h, 7d.
    #[arg(long, default_value = "24h")]
    window: String,
    /// Promote the challenger if its RMSE is at most this much (relative) worse than the champion's.
    #[arg(long, default_value_t = 0.005)]
    tolerance: f64,
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// One cycle: ingest (with --batch), drift check, retrain if drift.
    Run {
        /// A batch file to ingest first (needs --batch-id).
        #[arg(long, requires = "batch_id")]
        batch: Option<PathBuf>,
        #[arg(long, requires = "batch")]
        batch_id: Option<String>,
        #[arg(long, default_value_t = 0.005)]
        tolerance: f64,
        #[command(flatten)]
        thresholds: ThresholdArgs,
    },
    /// Past pipeline runs and their steps.
    History,
}

#[derive(Subcommand)]
enum BufferCommand {
    /// Move every buffered rating into ratings as train data (the spec's option 2).
    Merge,
    /// Delete every buffered rating (the spec's option 1).
    Clear,
    /// Buffered ratings per batch.
    Status,
}

#[derive(Args)]
struct TrainArgs {
    /// Algorithm: baseline (biases), svd (SGD matrix factorization), als (alternating least squares).
    #[arg(long, value_parser = ["baseline", "svd", "als"], default_value = "svd")]
    algo: String,
    /// Latent factors (svd, als).
    #[arg(long)]
    factors: Option<usize>,
    /// Passes over the data: epochs (svd, baseline) or iterations (als).
    #[arg(long)]
    epochs: Option<usize>,
    /// SGD learning rate (svd).
    #[arg(long)]
    lr: Option<f64>,
    /// Regularization: reg (svd) or lambda (als).
    #[arg(long)]
    reg: Option<f64>,
    /// Standard deviation of the initial factors (svd, als).
    #[arg(long)]
    init_std: Option<f64>,
    /// Training threads (svd; als always uses every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Any other parameter as KEY=VALUE (repeatable), e.g. --param reg_u=15.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Seed of initialization and shuffling: the same seed gives the same model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also train on the ratings waiting in ratings_buffer.
    #[arg(long)]
    include_buffer: bool,
    /// Skip the full-catalogue ranking metrics (faster on large catalogues).
    #[arg(long)]
    no_ranking: bool,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Every run with its metrics and the RMSE change from the previous run.
    List,
    /// One run in full: metrics, hyperparameters, artifact.
    Show { version: String },
    /// Make a stored model the champion.
    Promote {
        version: String,
        /// Why (kept in the champion history).
        #[arg(long, default_value = "promoted by hand")]
        reason: String,
    },
    /// Return to the previous champion.
    Rollback,
}

#[derive(Args)]
struct EvaluateArgs {
    /// Model version (default: the champion).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Args)]
struct RecommendArgs {
    #[arg(long)]
    user: i32,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Only movies of this genre (e.g. Comedy).
    #[arg(long)]
    genre: Option<String>,
}

#[derive(Args)]
struct SimilarArgs {
    #[arg(long)]
    movie: i32,
    #[arg(long, default_value_t = 10)]
    k: usize,
}

#[derive(Subcommand)]
enum DbCommand {
    /// VACUUM ANALYZE the core tables (the spec's weekly maintenance).
    Vacuum,
    /// Move drift alerts older than a cutoff into drift_alerts_archive, in one transaction.
    ArchiveDrift {
        /// e.g. 30d
        #[arg(long, default_value = "30d")]
        older_than: String,
    },
    /// Create or upgrade the schema (idempotent).
    Migrate,
    /// Schema version and the row count of every table.
    Status,
    /// The spec's "Database Statistics": record counts and storage per table.
    Stats,
    /// Create or update the spec's PostgreSQL roles: analyst (read-only) and ml_pipeline (rows read-write, no schema changes).
    ///
    /// Passwords come from CINEMATCH_ANALYST_PASSWORD and CINEMATCH_ML_PIPELINE_PASSWORD,
    /// else they are asked for on the terminal; never from the command line. Run it as the
    /// database owner or a superuser; tables later migrations add are covered by default privileges.
    Roles(RolesArgs),
}

#[derive(Args)]
struct RolesArgs {
    /// Keep the current password of a role that already exists when its variable is unset, instead of asking.
    #[arg(long)]
    keep_passwords: bool,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Write a synthetic MovieLens-format directory (ratings.csv, movies.csv).
    Synth(SynthArgs),
    /// Turn a MovieLens release into a replay: history (ratings.csv, movies.csv) + weekly batch files.
    Stream {
        /// The MovieLens release directory.
        dir: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 4)]
        weeks: u32,
        /// Share of ratings (earliest first) that form the history.
        #[arg(long, default_value_t = 0.8)]
        history_fraction: f64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitKind {
    /// Each rating goes to train or test at random (seeded, exact proportion).
    Random,
    /// The latest ratings by timestamp go to test.
    Time,
}

#[derive(Args)]
struct LoadArgs {
    /// A MovieLens release directory (ml-latest-small, ml-25m, ml-1m, ml-100k, ...).
    #[arg(required_unless_present_all = ["ratings", "movies"], conflicts_with_all = ["ratings", "movies"])]
    dir: Option<PathBuf>,
    /// Explicit ratings file (with --movies) instead of a directory.
    #[arg(long, requires = "movies")]
    ratings: Option<PathBuf>,
    /// Explicit movies file (with --ratings).
    #[arg(long, requires = "ratings")]
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

#[derive(Args)]
struct SynthArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = SynthOptions::default().users)]
    users: u32,
    #[arg(long, default_value_t = SynthOptions::default().movies)]
    movies: u32,
    #[arg(long, default_value_t = SynthOptions::default().ratings)]
    ratings: u64,
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

#[derive(Args)]
struct DemoArgs {
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
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !matches!(cli.command, Command::Serve(_) | Command::Scheduler(_)) {
        restore_sigpipe();
    }
    init_logging(cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cinematch::store::redact(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`cinematch models
/// list | head`) panics in `println!`. Short commands get the default every
/// Unix tool has: the process ends quietly when its reader goes away. The
/// long-running ones (serve, scheduler) keep ignoring it, so a closed log
/// pipe is an error they survive rather than a silent death.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at startup, before any other thread exists, with
    // a valid disposition for a valid signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(quiet: bool) {
    let default = if quiet { "warn" } else { "cinematch=info,warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CINEMATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
        .init();
}

fn open_store(cli_db: Option<&str>) -> Result<Box<dyn Store>> {
    let (url, from) = resolve_db_url(cli_db);
    let store = store::open(&url)
        .with_context(|| format!("opening the database {} (from {from})", store::redact(&url)))?;
    Ok(store)
}

fn run(cli: Cli) -> Result<()> {
    let progress = Console::new();
    match cli.command {
        Command::Db(DbCommand::Roles(args)) => db_roles(cli.db.as_deref(), &args)?,
        Command::Db(cmd) => {
            let mut store = open_store(cli.db.as_deref())?;
            match cmd {
                DbCommand::Migrate => {
                    // `open` already migrated; report what the database is at.
                    let v = store.schema_version()?.unwrap_or_default();
                    println!("schema is at version {v} ({})", store.location());
                }
                DbCommand::Status => db_status(store.as_mut())?,
                DbCommand::Vacuum => {
                    store.vacuum()?;
                    println!("VACUUM ANALYZE done on ratings, ratings_buffer, movies");
                }
                DbCommand::ArchiveDrift { older_than } => {
                    let secs = retrain::parse_duration_secs(&older_than)?;
                    let n = store.archive_drift_alerts(secs)?;
                    println!(
                        "moved {n} drift alerts older than {older_than} into drift_alerts_archive"
                    );
                }
                DbCommand::Stats => db_stats(store.as_mut())?,
                DbCommand::Roles(_) => unreachable!("db roles is handled before opening a store"),
            }
        }
        Command::Load(args) => {
            let source = match (args.dir, args.ratings, args.movies) {
                (Some(dir), _, _) => Source::Dir(dir),
                (None, Some(ratings), Some(movies)) => Source::Files { ratings, movies },
                _ => bail!("give a MovieLens directory, or both --ratings and --movies"),
            };
            let opts = LoadOptions {
                read: ReadOptions {
                    skip_invalid: args.skip_invalid,
                },
                split: SplitOptions {
                    strategy: match args.split {
                        SplitKind::Random => SplitStrategy::Random,
                        SplitKind::Time => SplitStrategy::Time,
                    },
                    train_fraction: args.train_fraction,
                    seed: args.seed,
                },
                replace: args.replace,
            };
            let mut store = open_store(cli.db.as_deref())?;
            let report = load::load(store.as_mut(), &source, &opts, &progress)?;
            print_load_report(&report, store.location());
        }
        Command::Data(DataCommand::Stream {
            dir,
            out,
            weeks,
            history_fraction,
        }) => {
            let opts = cinematch::data::stream::StreamOptions {
                weeks,
                history_fraction,
                ..Default::default()
            };
            let r = cinematch::data::stream::stream(&dir, &out, &opts, &progress)?;
            println!(
                "wrote the history ({} ratings) and {} weekly batches to {}",
                table::thousands(r.history.ratings as i64),
                r.batches.len(),
                out.display()
            );
            for b in &r.batches {
                println!(
                    "  {}  {} ratings, mean {:.3}, {} by users and {} for movies unseen in the history",
                    b.path.display(),
                    table::thousands(b.ratings as i64),
                    b.mean_rating,
                    b.unseen_users,
                    b.unseen_movies
                );
            }
            println!(
                "load with `cinematch load {}`, then `cinematch ingest FILE --batch-id batch_wN`",
                out.display()
            );
        }
        Command::Demo(args) => demo(cli.db.as_deref(), args, &progress)?,
        Command::Serve(args) => {
            let (url, from) = resolve_db_url(cli.db.as_deref());
            let mut config = cinematch::server::ServerConfig::new(args.addr, url.clone());
            config.api_token = std::env::var("CINEMATCH_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            config.reload_interval = std::time::Duration::from_secs(args.reload_secs.max(1));
            config.request_timeout = std::time::Duration::from_secs(args.timeout_secs.max(1));
            config.max_body_bytes = args.max_body;
            config.pool_size = args.pool.max(1);
            tracing::info!(addr = %args.addr, db = %store::redact(&url), from, "starting the server");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(cinematch::server::serve(config, async {
                let _ = tokio::signal::ctrl_c().await;
            }))?;
        }
        Command::Scheduler(args) => {
            let (url, _) = resolve_db_url(cli.db.as_deref());
            let opts = cinematch::pipeline::scheduler::SchedulerOptions {
                db_url: url,
                inbox: args.inbox,
                cron: args.cron,
                attempts: args.attempts,
                backoff: std::time::Duration::from_secs(args.backoff_secs),
                cycle: CycleOptions {
                    thresholds: thresholds_from(&args.thresholds)?,
                    ..CycleOptions::default()
                },
            };
            cinematch::pipeline::scheduler::parse_cron(&opts.cron)?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            watch_signals(stop.clone());
            if args.once {
                let reports =
                    cinematch::pipeline::scheduler::process_inbox(&opts, &stop, &progress)?;
                for r in &reports {
                    print_cycle(r);
                }
                if reports.iter().any(|r| !r.succeeded) {
                    bail!("some batches failed after {} attempts", opts.attempts);
                }
            } else {
                cinematch::pipeline::scheduler::run(&opts, &stop, &progress)?;
            }
        }
        Command::Data(DataCommand::Synth(args)) => {
            let opts = SynthOptions {
                users: args.users,
                movies: args.movies,
                ratings: args.ratings,
                seed: args.seed,
                ..SynthOptions::default()
            };
            if let Some(weeks) = args.weeks {
                let drift = match (args.drift_week, args.drift.as_deref()) {
                    (Some(week), Some(d)) => vec![synth::DriftSpec {
                        week,
                        kinds: synth::parse_drift(d)?,
                    }],
                    _ => Vec::new(),
                };
                let weekly = synth::WeeklyOptions {
                    weeks,
                    ratings_per_week: args.weekly_ratings,
                    drift,
                };
                let r = synth::generate_weekly(&args.out, &opts, &weekly, &progress)?;
                println!(
                    "wrote {} history ratings and {} weekly batches to {}",
                    table::thousands(r.history.ratings as i64),
                    r.weeks.len(),
                    args.out.display()
                );
                for w in &r.weeks {
                    println!(
                        "  {}  {} ratings, mean {:.3}, std {:.3}{}",
                        w.path.display(),
                        table::thousands(w.ratings as i64),
                        w.mean_rating,
                        w.std_rating,
                        if w.drift.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "  drift: {}",
                                w.drift
                                    .iter()
                                    .map(|d| d.to_string())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            )
                        }
                    );
                }
                return Ok(());
            }
            let report = synth::generate(&args.out, &opts, &progress)?;
            println!(
                "wrote {} ratings by {} users of {} movies to {} (mean rating {:.3})",
                table::thousands(report.ratings as i64),
                report.users,
                report.movies,
                args.out.display(),
                report.mean_rating
            );
        }
        Command::Train(args) => {
            let mut store = open_store(cli.db.as_deref())?;
            train(store.as_mut(), args, &progress)?;
        }
        Command::Models(cmd) => {
            let mut store = open_store(cli.db.as_deref())?;
            models(store.as_mut(), cmd)?;
        }
        Command::Evaluate(args) => {
            let mut store = open_store(cli.db.as_deref())?;
            let version = match args.model {
                Some(v) => v,
                None => store
                    .champion()?
                    .context("there is no champion model yet: train one with `cinematch train`")?,
            };
            let m = registry::evaluate_stored(store.as_mut(), &version, &EvalOptions::default())?;
            println!("{version} on the current test split:");
            print_metrics(&m);
        }
        Command::Recommend(args) => {
            let mut store = open_store(cli.db.as_deref())?;
            let rec = Recommender::load(store.as_mut())?;
            let rated = store
                .user_ratings(args.user)?
                .into_iter()
                .map(|r| r.movie_id)
                .collect();
            let list = rec.recommend(args.user, args.k, args.genre.as_deref(), &rated)?;
            match list.strategy {
                Strategy::Model => println!(
                    "top {} for user {} by {} (predicted rating):",
                    list.items.len(),
                    args.user,
                    list.model_version
                ),
                Strategy::Popular => println!(
                    "user {} is unknown to {}: cold-start list, most popular{} by damped mean rating:",
                    args.user,
                    list.model_version,
                    args.genre.as_deref().map(|g| format!(" {g}")).unwrap_or_default()
                ),
            }
            print_items(
                &list.items,
                match list.strategy {
                    Strategy::Model => "predicted",
                    Strategy::Popular => "damped_mean",
                },
            );
        }
        Command::Similar(args) => {
            let mut store = open_store(cli.db.as_deref())?;
            let rec = Recommender::load(store.as_mut())?;
            let sim = rec.similar(args.movie, args.k)?;
            println!(
                "movies like {} ({}), by {}:",
                sim.movie.title,
                sim.movie.movie_id,
                match sim.basis {
                    cinematch::recommend::SimilarBasis::Factors => "the champion's movie factors",
                    cinematch::recommend::SimilarBasis::PcaFeatures =>
                        "PCA genre features (the model has no factors for it)",
                }
            );
            print_items(&sim.items, "similarity");
        }
        Command::Ingest(args) => {
            let mut store = open_store(cli.db.as_deref())?;
            let r = ingest::ingest_file(
                store.as_mut(),
                &args.file,
                &args.batch_id,
                ReadOptions {
                    skip_invalid: args.skip_invalid,
                },
            )?;
            println!(
                "ingested {} ratings into ratings_buffer as batch {}",
                table::thousands(r.records as i64),
                r.batch_id
            );
            print_skipped(&r.skipped);
        }
        Command::Drift(DriftCommand::Check { batch, thresholds }) => {
            let t = thresholds_from(&thresholds)?;
            let mut store = open_store(cli.db.as_deref())?;
            let report = drift_check::check(store.as_mut(), batch.as_deref(), &t)?;
            println!(
                "compared {} buffered ratings{} with {} training ratings:",
                table::thousands(report.new_ratings as i64),
                batch.map(|b| format!(" (batch {b})")).unwrap_or_default(),
                table::thousands(report.baseline_ratings as i64)
            );
            print_alerts(&report.alerts);
            println!(
                "{}",
                if report.any_triggered() {
                    "DRIFT DETECTED: RETRAINING NEEDED"
                } else {
                    "no drift: NO ACTION REQUIRED"
                }
            );
        }
        Command::Drift(DriftCommand::Status { window }) => {
            let secs = retrain::parse_duration_secs(&window)?;
            let mut store = open_store(cli.db.as_deref())?;
            let alerts = store.drift_alerts(Some(secs))?;
            let rows: Vec<Vec<String>> = alerts
                .iter()
                .map(|a| {
                    vec![
                        a.alert_date.format("%Y-%m-%d %H:%M:%S").to_string(),
                        a.feature_name.clone(),
                        a.drift_score.map(|v| format!("{v:.4}")).unwrap_or_default(),
                        a.threshold.map(|v| format!("{v:.4}")).unwrap_or_default(),
                        a.alert_triggered.to_string(),
                        a.notes.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "alert_date",
                    "feature_name",
                    "drift_score",
                    "threshold",
                    "alert_triggered",
                    "notes",
                ],
                &rows,
            );
            let fired = retrain::retraining_needed(store.as_mut(), 86400)?;
            println!(
                "retraining: {}",
                if fired.is_empty() {
                    "NO ACTION REQUIRED".to_string()
                } else {
                    format!("RETRAINING NEEDED ({})", fired.join(", "))
                }
            );
        }
        Command::Retrain(args) => {
            let opts = RetrainOptions {
                if_drift: args.if_drift,
                window_secs: retrain::parse_duration_secs(&args.window)?,
                tolerance: args.tolerance,
                ..RetrainOptions::default()
            };
            let mut store = open_store(cli.db.as_deref())?;
            let outcome = retrain::retrain(store.as_mut(), &opts, &progress)?;
            print_retrain(&outcome);
        }
        Command::Pipeline(PipelineCommand::Run {
            batch,
            batch_id,
            tolerance,
            thresholds,
        }) => {
            let opts = CycleOptions {
                batch: batch.zip(batch_id),
                thresholds: thresholds_from(&thresholds)?,
                retrain: RetrainOptions {
                    tolerance,
                    ..RetrainOptions::default()
                },
                ..CycleOptions::default()
            };
            let mut store = open_store(cli.db.as_deref())?;
            let report = cycle::run_cycle(store.as_mut(), &opts, &progress)?;
            print_cycle(&report);
            if !report.succeeded {
                bail!(
                    "pipeline run {} failed; fix the cause and run it again (steps are idempotent)",
                    report.run_id
                );
            }
        }
        Command::Pipeline(PipelineCommand::History) => {
            let mut store = open_store(cli.db.as_deref())?;
            let rows: Vec<Vec<String>> = store
                .pipeline_runs()?
                .into_iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        r.finished_at
                            .map(|t| t.format("%H:%M:%S").to_string())
                            .unwrap_or_default(),
                        r.status,
                        r.batch_id.unwrap_or_default(),
                        r.summary.unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "id",
                    "started_at",
                    "finished",
                    "status",
                    "batch_id",
                    "steps",
                ],
                &rows,
            );
        }
        Command::Buffer(cmd) => {
            let mut store = open_store(cli.db.as_deref())?;
            match cmd {
                BufferCommand::Merge => {
                    let n = store.merge_buffer()?;
                    println!(
                        "merged {} buffered ratings into ratings (data_split = train)",
                        table::thousands(n as i64)
                    );
                }
                BufferCommand::Clear => {
                    let n = store.clear_buffer()?;
                    println!("deleted {} buffered ratings", table::thousands(n as i64));
                }
                BufferCommand::Status => {
                    let rows: Vec<Vec<String>> = store
                        .buffer_counts()?
                        .into_iter()
                        .map(|(b, n)| vec![b.unwrap_or_default(), table::thousands(n)])
                        .collect();
                    table::print(&["batch_id", "ratings"], &rows);
                }
            }
        }
    }
    Ok(())
}

/// The README's main command: the story on a demo database of its own
/// (recreated each run) unless --db names one.
fn demo(db: Option<&str>, args: DemoArgs, progress: &Console) -> Result<()> {
    let drift = synth::parse_drift(&args.drift)?;
    let url = match db {
        Some(u) => u.to_string(),
        None => {
            let path = "cinematch-demo.db";
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
            format!("sqlite://{path}")
        }
    };
    let mut store =
        store::open(&url).with_context(|| format!("opening {}", store::redact(&url)))?;
    if args.fresh {
        store.reset()?;
    }
    let work = std::env::temp_dir().join(format!("cinematch-demo-{}", std::process::id()));
    let mut opts = cinematch::pipeline::demo::DemoOptions::new(work.clone());
    opts.data = args.data;
    opts.history_ratings = args.ratings;
    opts.ratings_per_week = args.weekly_ratings;
    opts.drift = drift;
    opts.seed = args.seed;
    println!("CineMatch demo on {}", store.location());
    let started = std::time::Instant::now();
    let result = cinematch::pipeline::demo::run(store.as_mut(), &opts, progress, &mut |line| {
        println!("{line}")
    });
    let _ = std::fs::remove_dir_all(&work);
    result?;
    println!();
    println!("SELECT * FROM ingestion_metadata ORDER BY ingestion_date DESC;");
    let rows: Vec<Vec<String>> = store
        .ingestions()?
        .into_iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.batch_id,
                i.ingestion_date
                    .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                i.record_count.map(table::thousands).unwrap_or_default(),
                i.status.unwrap_or_default(),
                i.notes.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "batch_id",
            "ingestion_date",
            "record_count",
            "status",
            "notes",
        ],
        &rows,
    );
    println!();
    println!("SELECT * FROM model_metrics ORDER BY training_date DESC;  -- with rmse - LAG(rmse)");
    let rows: Vec<Vec<String>> = registry::runs_with_change(store.as_mut())?
        .into_iter()
        .rev()
        .map(|r| {
            let notes = r
                .run
                .notes
                .as_deref()
                .and_then(|n| serde_json::from_str::<serde_json::Value>(n).ok());
            let what = notes
                .as_ref()
                .map(|n| {
                    let kind = n.get("kind").and_then(|k| k.as_str()).unwrap_or("initial");
                    let decision = n.get("decision").and_then(|k| k.as_str()).unwrap_or("");
                    format!(
                        "{} {}{}",
                        n.get("algorithm").and_then(|a| a.as_str()).unwrap_or(""),
                        kind,
                        if decision.is_empty() {
                            String::new()
                        } else {
                            format!("; {decision}")
                        }
                    )
                })
                .unwrap_or_default();
            vec![
                r.run.id.to_string(),
                format!(
                    "{}{}",
                    r.run.model_version,
                    if r.is_champion { " *" } else { "" }
                ),
                r.run.training_date.format("%Y-%m-%d %H:%M:%S").to_string(),
                r.run.rmse.map(|v| format!("{v:.4}")).unwrap_or_default(),
                r.run.mae.map(|v| format!("{v:.4}")).unwrap_or_default(),
                r.run
                    .precision_at_10
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_default(),
                r.run.data_size.map(table::thousands).unwrap_or_default(),
                r.rmse_improvement
                    .map(|v| format!("{v:+.4}"))
                    .unwrap_or_default(),
                what,
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "model_version",
            "training_date",
            "rmse",
            "mae",
            "precision_at_10",
            "data_size",
            "rmse_change",
            "notes",
        ],
        &rows,
    );
    println!();
    println!("SELECT * FROM drift_alerts ORDER BY alert_date DESC;");
    let rows: Vec<Vec<String>> = store
        .drift_alerts(None)?
        .into_iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.alert_date.format("%Y-%m-%d %H:%M:%S").to_string(),
                a.feature_name,
                a.drift_score.map(|v| format!("{v:.4}")).unwrap_or_default(),
                a.threshold.map(|v| format!("{v:.4}")).unwrap_or_default(),
                a.alert_triggered.to_string(),
                a.notes.unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "id",
            "alert_date",
            "feature_name",
            "drift_score",
            "threshold",
            "alert_triggered",
            "notes",
        ],
        &rows,
    );
    println!();
    let fired = retrain::retraining_needed(store.as_mut(), 86400)?;
    println!(
        "Is retraining needed? {}",
        if fired.is_empty() {
            "NO ACTION REQUIRED".to_string()
        } else {
            format!("RETRAINING NEEDED (alerts in the last day: {}); the pipeline already retrained on them", fired.join(", "))
        }
    );
    println!("demo finished in {:.1}s; explore it with `cinematch --db {} models list`, `recommend --user 1`, `serve`", started.elapsed().as_secs_f64(), store.location());
    Ok(())
}

/// Sets `stop` on SIGTERM or Ctrl-C, so long-running commands finish their
/// current step and exit cleanly.
fn watch_signals(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stop requested; finishing the current step");
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    });
}

fn thresholds_from(args: &ThresholdArgs) -> Result<Thresholds> {
    let mut t = match &args.config {
        Some(path) => Thresholds::from_file(path)?,
        None => Thresholds::default(),
    };
    if !args.thresholds.is_empty() {
        let mut v = serde_json::to_value(&t)?;
        for kv in &args.thresholds {
            let (k, val) = kv
                .split_once('=')
                .with_context(|| format!("--threshold {kv:?} is not TEST=VALUE"))?;
            let num: f64 = val
                .trim()
                .parse()
                .with_context(|| format!("--threshold {kv:?}: {val:?} is not a number"))?;
            let obj = v.as_object_mut().context("thresholds")?;
            if !obj.contains_key(k.trim()) {
                bail!(
                    "--threshold {kv:?}: unknown test {k:?}; tests are {}",
                    obj.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            obj.insert(k.trim().to_string(), serde_json::json!(num));
        }
        t = serde_json::from_value(v)?;
    }
    Ok(t)
}

fn print_alerts(alerts: &[store::NewDriftAlert]) {
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                a.feature_name.clone(),
                format!("{:.4}", a.drift_score),
                format!("{:.4}", a.threshold),
                if a.alert_triggered {
                    "ALERT".into()
                } else {
                    "ok".into()
                },
                a.notes.clone(),
            ]
        })
        .collect();
    table::print(
        &["feature_name", "drift_score", "threshold", "alert", "notes"],
        &rows,
    );
}

fn print_retrain(outcome: &RetrainOutcome) {
    match outcome {
        RetrainOutcome::Skipped { reason } => println!("retrain skipped: {reason}"),
        RetrainOutcome::Retrained {
            run,
            promoted,
            decision,
            champion_before,
            merged,
            batches,
        } => {
            println!(
                "retrained {} on {} ratings (train + buffer batches {}): RMSE {:.4}",
                run.model_version,
                table::thousands(run.data_size.unwrap_or(0)),
                if batches.is_empty() {
                    "none".to_string()
                } else {
                    batches.join(", ")
                },
                run.rmse.unwrap_or(f64::NAN)
            );
            println!("{decision}");
            if *promoted {
                println!(
                    "champion: {} -> {}",
                    champion_before.as_deref().unwrap_or("none"),
                    run.model_version
                );
            } else {
                println!(
                    "champion stays {}; the challenger is kept in the registry",
                    champion_before.as_deref().unwrap_or("none")
                );
            }
            println!(
                "merged {} buffered ratings into ratings; the buffer is empty",
                table::thousands(*merged as i64)
            );
        }
    }
}

fn print_cycle(report: &cycle::CycleReport) {
    println!(
        "pipeline run {}: {}",
        report.run_id,
        if report.succeeded {
            "succeeded"
        } else {
            "FAILED"
        }
    );
    for s in &report.steps {
        println!(
            "  {:<12} {:<8} {:>7.2}s  {}",
            s.name, s.status, s.seconds, s.detail
        );
    }
}

fn print_skipped(skipped: &cinematch::data::SkipReport) {
    if skipped.is_empty() {
        return;
    }
    println!(
        "skipped {} invalid rows:",
        table::thousands(skipped.total() as i64)
    );
    for (kind, n) in &skipped.counts {
        println!("  {:>8}  {kind}", table::thousands(*n as i64));
    }
    println!("first problems:");
    for e in &skipped.examples {
        println!("  {e}");
    }
}

fn train(store: &mut dyn Store, args: TrainArgs, progress: &Console) -> Result<()> {
    let algo = Algo::parse(&args.algo).context("unknown algorithm")?;
    let mut overrides: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            overrides.push((k.to_string(), v));
        }
    };
    set("factors", args.factors.map(|v| v.to_string()));
    set(
        if algo == Algo::Als {
            "iterations"
        } else {
            "epochs"
        },
        args.epochs.map(|v| v.to_string()),
    );
    set("lr", args.lr.map(|v| v.to_string()));
    set(
        if algo == Algo::Als { "lambda" } else { "reg" },
        args.reg.map(|v| v.to_string()),
    );
    set("init_std", args.init_std.map(|v| v.to_string()));
    set("threads", args.threads.map(|v| v.to_string()));
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--param {p:?} is not KEY=VALUE"))?;
        overrides.push((k.trim().to_string(), v.trim().to_string()));
    }
    let params = registry::params_with_overrides(algo, &overrides)?;
    let mut opts = TrainOptions::new(params);
    opts.seed = args.seed;
    opts.include_buffer = args.include_buffer;
    opts.eval.ranking = !args.no_ranking;
    let out = registry::train(store, &opts, progress)?;
    println!(
        "trained {} ({algo}) on {} ratings in {:.2}s, evaluated in {:.2}s",
        out.run.model_version,
        table::thousands(out.run.data_size.unwrap_or(0)),
        out.train_seconds,
        out.eval_seconds
    );
    print_metrics(&out.metrics);
    if out.is_champion {
        println!(
            "{} is the champion (the first model)",
            out.run.model_version
        );
    } else {
        println!(
            "the champion is unchanged; `cinematch models promote {}` to serve this one",
            out.run.model_version
        );
    }
    Ok(())
}

fn print_metrics(m: &Metrics) {
    println!(
        "  RMSE {:.4}  MAE {:.4}  precision@10 (rated items, >=3.5) {:.4}",
        m.rmse, m.mae, m.precision_at_10
    );
    println!(
        "  full catalogue (relevant >= 4.0): precision@10 {:.4}  recall@10 {:.4}  NDCG@10 {:.4}  coverage {:.4}",
        m.rank_precision_at_10, m.recall_at_10, m.ndcg_at_10, m.coverage
    );
}

fn print_items(items: &[cinematch::recommend::Item], score: &str) {
    let rows: Vec<Vec<String>> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            vec![
                (i + 1).to_string(),
                it.movie_id.to_string(),
                it.title.clone(),
                it.genres.clone(),
                format!("{:.3}", it.score),
            ]
        })
        .collect();
    table::print(&["#", "movieId", "title", "genres", score], &rows);
}

fn models(store: &mut dyn Store, cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::List => {
            let runs = registry::runs_with_change(store)?;
            if runs.is_empty() {
                println!("no models yet: train one with `cinematch train --algo svd`");
                return Ok(());
            }
            let f = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
            let rows: Vec<Vec<String>> = runs
                .iter()
                .rev()
                .map(|r| {
                    let algo = r
                        .run
                        .notes
                        .as_deref()
                        .and_then(|n| serde_json::from_str::<serde_json::Value>(n).ok())
                        .and_then(|v| {
                            v.get("algorithm")
                                .and_then(|a| a.as_str())
                                .map(String::from)
                        })
                        .unwrap_or_default();
                    vec![
                        format!(
                            "{}{}",
                            r.run.model_version,
                            if r.is_champion { " *" } else { "" }
                        ),
                        algo,
                        r.run.training_date.format("%Y-%m-%d %H:%M:%S").to_string(),
                        f(r.run.rmse),
                        f(r.run.mae),
                        f(r.run.precision_at_10),
                        table::thousands(r.run.data_size.unwrap_or(0)),
                        r.rmse_improvement
                            .map(|v| format!("{v:+.4}"))
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            table::print(
                &[
                    "model_version",
                    "algo",
                    "training_date",
                    "rmse",
                    "mae",
                    "precision_at_10",
                    "data_size",
                    "rmse_change",
                ],
                &rows,
            );
            println!("* champion. rmse_change = rmse - LAG(rmse): negative is better.");
        }
        ModelsCommand::Show { version } => {
            let run = store
                .model_runs()?
                .into_iter()
                .find(|r| r.model_version == version)
                .with_context(|| {
                    format!("no model {version:?}; `cinematch models list` shows the versions")
                })?;
            let champion = store.champion()?;
            println!("model_version    {}", run.model_version);
            println!(
                "champion         {}",
                champion.as_deref() == Some(version.as_str())
            );
            println!(
                "training_date    {}",
                run.training_date.format("%Y-%m-%d %H:%M:%S")
            );
            let f = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
            println!("rmse             {}", f(run.rmse));
            println!("mae              {}", f(run.mae));
            println!("precision_at_10  {}", f(run.precision_at_10));
            println!(
                "data_size        {}",
                table::thousands(run.data_size.unwrap_or(0))
            );
            if let Some(a) = store.artifact(&version)? {
                println!(
                    "artifact         {} bytes, {} format v{}, crc32 {:08x}",
                    table::thousands(a.bytes.len() as i64),
                    a.algorithm,
                    a.format_version,
                    a.checksum
                );
            }
            if let Some(notes) = run.notes {
                let pretty = serde_json::from_str::<serde_json::Value>(&notes)
                    .ok()
                    .and_then(|v| serde_json::to_string_pretty(&v).ok())
                    .unwrap_or(notes);
                println!("notes\n{pretty}");
            }
        }
        ModelsCommand::Promote { version, reason } => {
            store.promote(&version, &reason)?;
            println!("{version} is now the champion");
        }
        ModelsCommand::Rollback => {
            let (from, to) = store.rollback()?;
            println!("rolled back from {from}; {to} is the champion again");
        }
    }
    Ok(())
}

fn print_load_report(r: &load::LoadReport, location: String) {
    let s = &r.summary;
    println!(
        "loaded {} movies and {} ratings ({} train, {} test) into {location}{}",
        table::thousands(s.movies as i64),
        table::thousands((s.train + s.test) as i64),
        table::thousands(s.train as i64),
        table::thousands(s.test as i64),
        if s.replaced {
            ", replacing the previous dataset"
        } else {
            ""
        }
    );
    println!(
        "read and validated in {:.2}s, written in {:.2}s",
        r.read_secs, r.write_secs
    );
    let ratios: Vec<String> = r
        .pca
        .explained_variance_ratio
        .iter()
        .map(|v| format!("{:.1}%", v * 100.0))
        .collect();
    println!(
        "PCA genre features: 10 components over {} genres explain {:.1}% of the variance ({})",
        r.pca.genres.len(),
        r.pca.total_explained * 100.0,
        ratios.join(", ")
    );
    if !r.skipped.is_empty() {
        println!(
            "skipped {} invalid rows:",
            table::thousands(r.skipped.total() as i64)
        );
        for (kind, n) in &r.skipped.counts {
            println!("  {:>8}  {kind}", table::thousands(*n as i64));
        }
        println!("first problems:");
        for e in &r.skipped.examples {
            println!("  {e}");
        }
    }
}

/// `db roles`: the spec's two roles on PostgreSQL; a clear refusal on SQLite.
fn db_roles(cli_db: Option<&str>, args: &RolesArgs) -> Result<()> {
    use cinematch::store::roles::{self, Role};
    let (url, from) = resolve_db_url(cli_db);
    let postgres =
        url.starts_with("postgres://") || url.starts_with("postgresql://") || url.contains("host=");
    if !postgres && store::sqlite_path(&url).is_some() {
        bail!(
            "roles are a PostgreSQL feature: the database is the SQLite file {} (from {from}), \
             which has no users or privileges; protect the file with file permissions \
             (chmod 600), or point --db at PostgreSQL to create analyst and ml_pipeline",
            store::redact(&url)
        );
    }
    // Ask for every password before connecting, so nothing changes when one is missing.
    let mut passwords = Vec::new();
    for role in Role::ALL {
        passwords.push((role, role_password(role, args.keep_passwords)?));
    }
    let mut pg = store::postgres::PgStore::connect(&url)
        .with_context(|| format!("opening the database {} (from {from})", store::redact(&url)))?;
    pg.migrate()?;
    let report = roles::apply(pg.client(), &passwords)?;
    for r in &report.roles {
        let mut what = vec![if r.created { "created" } else { "updated" }.to_string()];
        what.push(
            if r.password_set {
                "password set"
            } else {
                "password unchanged"
            }
            .into(),
        );
        if !r.attributes_fixed.is_empty() {
            what.push(format!("now {}", r.attributes_fixed.join(" ")));
        }
        let mut grants = format!("{} on {} tables", r.role.table_privileges(), r.tables);
        if let Some(sp) = r.role.sequence_privileges() {
            grants.push_str(&format!(" and {sp} on {} sequences", r.sequences));
        }
        println!(
            "role {} ({}): {grants} of schema {} in database {}",
            r.role,
            what.join(", "),
            r.schema,
            r.database
        );
    }
    if let Some(r) = report.roles.first() {
        println!(
            "default privileges: tables and sequences that {} {} in schema {} later get the same grants",
            r.default_privileges_for.join(" or "),
            if r.default_privileges_for.len() == 1 {
                "creates"
            } else {
                "create"
            },
            r.schema
        );
    }
    for w in &report.warnings {
        println!("warning: {w}");
    }
    println!(
        "neither role can create, alter or drop tables; run `cinematch db migrate` as the owner"
    );
    Ok(())
}

/// A role's password from its environment variable, else from the terminal
/// (typed twice, not echoed); never from the command line.
fn role_password(
    role: cinematch::store::roles::Role,
    keep: bool,
) -> Result<cinematch::store::roles::Password> {
    use cinematch::store::roles::Password;
    let var = role.password_env();
    match std::env::var(var) {
        Ok(p) if !p.is_empty() => return Ok(Password::Set(p)),
        Ok(_) => bail!("{var} is set but empty; give role {role} a password or unset it"),
        Err(std::env::VarError::NotUnicode(_)) => bail!("{var} is not valid UTF-8"),
        Err(std::env::VarError::NotPresent) => {}
    }
    if keep {
        return Ok(Password::Keep);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password for role {role}: set {var}, run on a terminal to be asked, \
             or pass --keep-passwords to keep the password of a role that already exists"
        );
    }
    let first = rpassword::prompt_password(format!("password for role {role}: "))
        .context("reading the password from the terminal")?;
    if first.is_empty() {
        bail!("no password entered for role {role}");
    }
    let again = rpassword::prompt_password(format!("password for role {role} again: "))
        .context("reading the password from the terminal")?;
    if first != again {
        bail!("the two passwords for role {role} differ; nothing was changed");
    }
    Ok(Password::Set(first))
}

fn db_status(store: &mut dyn Store) -> Result<()> {
    println!("database: {} ({})", store.location(), store.backend());
    println!(
        "schema version: {}",
        store.schema_version()?.unwrap_or_else(|| "none".into())
    );
    let rows: Vec<Vec<String>> = store
        .table_counts()?
        .into_iter()
        .map(|t| vec![t.table, table::thousands(t.rows)])
        .collect();
    table::print(&["table", "rows"], &rows);
    Ok(())
}

fn db_stats(store: &mut dyn Store) -> Result<()> {
    println!("Record counts ({})", store.location());
    let mut counts = store.table_counts()?;
    counts.sort_by(|a, b| b.rows.cmp(&a.rows).then(a.table.cmp(&b.table)));
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|t| vec![t.table, table::thousands(t.rows)])
        .collect();
    table::print(&["table_name", "records"], &rows);
    println!();
    println!(
        "Storage usage ({})",
        match store.backend() {
            store::Backend::Postgres => "pg_total_relation_size, indexes included",
            store::Backend::Sqlite => "SQLite pages (dbstat), indexes included",
        }
    );
    let rows: Vec<Vec<String>> = store
        .table_sizes()?
        .into_iter()
        .map(|t| {
            vec![
                t.table,
                table::pretty_bytes(t.bytes),
                table::thousands(t.bytes),
            ]
        })
        .collect();
    table::print(&["tablename", "size", "size_bytes"], &rows);
    println!();
    println!("Data distribution");
    let rows: Vec<Vec<String>> = store
        .split_stats()?
        .into_iter()
        .map(|s| {
            vec![
                s.split,
                table::thousands(s.records),
                format!("{:.2}", s.avg_rating),
                format!("{:.2}", s.std_rating),
            ]
        })
        .collect();
    table::print(
        &["data_split", "records", "avg_rating", "std_rating"],
        &rows,
    );
    Ok(())
}
