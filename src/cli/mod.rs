//! Command-line parsing and dispatch, in two stages (as ripgrep does): clap
//! parses the arguments into the structs of each command file, which turn
//! themselves into the library's validated options; the command calls the
//! library and hands the result to [`print`](mod@print). Errors get context here and
//! are printed once, by [`main`].
//!
//! * `db`: schema, statistics, maintenance, roles.
//! * `load`: `load` and `data synth|stream`.
//! * `train`: `train`, `tune`, `evaluate`, `models`.
//! * `recommend`: `recommend`, `similar`.
//! * `monitor`: `ingest`, `drift`, `retrain`, `pipeline`, `buffer`, `scheduler`.
//! * `serve`, `demo`, `backtest`: one command each.
//! * `print` and `table`: everything that goes to stdout.

mod backtest;
mod db;
mod db_url;
mod demo;
mod load;
mod monitor;
mod print;
mod recommend;
mod serve;
mod table;
mod train;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use cinematch::progress::Console;
use cinematch::registry::Objective;
use cinematch::store::{self, Store};

/// Exit codes that automation (the Airflow DAG, cron jobs) branches on
/// instead of matching output text; README "Exit codes" lists them too.
/// Invalid arguments (clap's own code): also an ambiguous title or
/// version, or an unknown genre.
const EXIT_USAGE: u8 = 2;
const EXIT_ALREADY_DONE: u8 = 3;
const EXIT_CHAMPION_CHANGED: u8 = 4;
/// EX_TEMPFAIL of sysexits.h: try again later.
const EXIT_BUSY: u8 = 75;

const EXIT_CODES_HELP: &str = "Exit codes:\n  \
    0   success (including \"nothing to do\", e.g. retrain --if-drift without drift)\n  \
    1   error\n  \
    2   invalid arguments (also: an ambiguous movie title or model version, an unknown genre)\n  \
    3   ingest: the batch was already ingested; nothing changed\n  \
    4   retrain, pipeline run: the run was recorded (and the buffer merged) but not promoted, \
    because the champion changed while it trained (a rollback or another promotion)\n  \
    75  pipeline run, retrain: another cycle or retrain holds the pipeline lease; try again later";

#[derive(Parser)]
#[command(
    name = "cinematch",
    version,
    about = "CineMatch: movie recommendations with continuous training and drift monitoring",
    long_about = "CineMatch stores MovieLens ratings (PostgreSQL or an embedded SQLite file), \
                  trains collaborative-filtering models, monitors new rating batches for drift \
                  and serves recommendations.\n\n\
                  The database is --db URL, else $CINEMATCH_DB, $DATABASE_URL, \
                  $NEON_CONNECTION_STRING, else sqlite://cinematch.db in the working directory.",
    after_long_help = EXIT_CODES_HELP
)]
struct Cli {
    /// Database URL: postgres://user@host/db?sslmode=require or sqlite://file.db
    #[arg(long, global = true, value_name = "URL")]
    db: Option<String>,

    /// Only print errors and results, no progress or log lines.
    #[arg(long, short, global = true)]
    quiet: bool,

    /// What models are compared on when choosing the champion (train, tune,
    /// retrain, pipeline, models list, the dashboard): ndcg@10 (the list a
    /// user sees), recall@10 or rmse (predicted stars).
    #[arg(
        long,
        global = true,
        env = "CINEMATCH_OBJECTIVE",
        value_name = "METRIC",
        default_value = "ndcg@10"
    )]
    objective: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Schema management and database statistics.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// Load a MovieLens release (ratings and movies) with a train/test split.
    Load(load::LoadArgs),
    /// Make data: synthetic MovieLens-shaped releases.
    #[command(subcommand)]
    Data(load::DataCommand),
    /// Train a model on the train split, evaluate it on the test split and record it.
    Train(train::TrainArgs),
    /// Search hyperparameters on a validation split carved from train, then train the winner.
    Tune(train::TuneArgs),
    /// The model registry: runs, the champion, promotion and rollback.
    #[command(subcommand)]
    Models(train::ModelsCommand),
    /// Re-evaluate a stored model on the current test split.
    Evaluate(train::EvaluateArgs),
    /// The champion's top movies for a user: from the model, folded in from newer ratings, or the popular list for unknown users.
    Recommend(recommend::RecommendArgs),
    /// Movies most like a movie: the ranking champion's item relations (EASE weights, iALS factors), else genre features.
    Similar(recommend::SimilarArgs),
    /// Find movies by title words (and genre), most rated first: the ids other commands take.
    Search(recommend::SearchArgs),
    /// Ingest a batch of new ratings into ratings_buffer (logged in ingestion_metadata).
    #[command(after_long_help = EXIT_CODES_HELP)]
    Ingest(monitor::IngestArgs),
    /// Drift detection against the training baseline.
    #[command(subcommand)]
    Drift(monitor::DriftCommand),
    /// Retrain on train + buffer with the champion's settings, promote if not worse, merge the buffer.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Retrain(monitor::RetrainArgs),
    /// The monitoring pipeline: ingest, drift check, retrain if drift.
    #[command(subcommand, after_long_help = EXIT_CODES_HELP)]
    Pipeline(monitor::PipelineCommand),
    /// The rating buffer: merge into ratings, or clear batches.
    #[command(subcommand)]
    Buffer(monitor::BufferCommand),
    /// The whole story on the embedded store: synthetic data, first model, three weekly batches, drift, retraining.
    Demo(demo::DemoArgs),
    /// Run a pipeline cycle on a schedule for each new batch file in an inbox directory.
    #[command(after_long_help = EXIT_CODES_HELP)]
    Scheduler(monitor::SchedulerArgs),
    /// Serve the recommendation API and the monitoring dashboard over HTTP.
    Serve(serve::ServeArgs),
    /// Replay a release week by week through the pipeline and score the lists served on the ratings that followed.
    Backtest(backtest::BacktestArgs),
}

/// `--json`, on every command that prints results: the same field names as
/// the API's JSON where the API answers the same question.
#[derive(clap::Args, Clone, Copy, Default)]
pub struct JsonArg {
    /// Print the result as JSON (the API's field names where the API has the same answer).
    #[arg(long)]
    pub json: bool,
}

/// What every command may need besides its own arguments.
struct Ctx {
    /// `--db`, if given; [`Ctx::db_url`] falls back to the environment.
    db: Option<String>,
    /// The deployment's objective (`--objective`, `CINEMATCH_OBJECTIVE`).
    objective: Objective,
    progress: Console,
}

impl Ctx {
    /// The database URL and where it came from (`--db` or a variable).
    fn db_url(&self) -> (String, &'static str) {
        db_url::resolve_db_url(self.db.as_deref())
    }

    fn open_store(&self) -> Result<Box<dyn Store>> {
        let (url, from) = self.db_url();
        store::open(&url).with_context(|| {
            format!(
                "opening the database {} (from {from})",
                store::redact_url(&url)
            )
        })
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
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
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "error: {}{}",
                store::redact(&format!("{e:#}")),
                hint_of(&e).unwrap_or_default()
            );
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// The exit code of a failed command: the documented ones for the outcomes
/// automation must tell apart (see [`EXIT_CODES_HELP`]), else 1.
fn exit_code_of(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<cinematch::Error>() {
        Some(cinematch::Error::BatchCompleted { .. }) => EXIT_ALREADY_DONE,
        Some(cinematch::Error::Busy(_)) => EXIT_BUSY,
        Some(
            cinematch::Error::AmbiguousMovie { .. }
            | cinematch::Error::AmbiguousModel { .. }
            | cinematch::Error::UnknownGenre { .. },
        ) => EXIT_USAGE,
        _ => 1,
    }
}

/// The command or flag that fixes a library error, which names none: the
/// library does not know which command it runs in. Appended to the message,
/// whose last part is the library error (context goes in front).
fn hint_of(e: &anyhow::Error) -> Option<&'static str> {
    match e.downcast_ref::<cinematch::Error>()? {
        cinematch::Error::DatasetLoaded { .. } => Some(". Pass --replace to replace it."),
        cinematch::Error::UnknownModel { .. } => {
            Some("; `cinematch models list` shows the versions")
        }
        _ => None,
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let objective: Objective = cli
        .objective
        .parse()
        .context("--objective (or CINEMATCH_OBJECTIVE)")?;
    let ctx = Ctx {
        db: cli.db,
        objective,
        progress: Console::new(),
    };
    let ok = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Db(cmd) => ok(db::run(cmd, &ctx)),
        Command::Load(args) => ok(load::run(args, &ctx)),
        Command::Data(cmd) => ok(load::data(cmd, &ctx)),
        Command::Train(args) => ok(train::run(args, &ctx)),
        Command::Tune(args) => ok(train::tune(args, &ctx)),
        Command::Models(cmd) => ok(train::models(cmd, &ctx)),
        Command::Evaluate(args) => ok(train::evaluate(args, &ctx)),
        Command::Recommend(args) => ok(recommend::run(args, &ctx)),
        Command::Similar(args) => ok(recommend::similar(args, &ctx)),
        Command::Search(args) => ok(recommend::search(args, &ctx)),
        Command::Ingest(args) => ok(monitor::ingest(args, &ctx)),
        Command::Drift(cmd) => ok(monitor::drift(cmd, &ctx)),
        Command::Retrain(args) => monitor::retrain(args, &ctx),
        Command::Pipeline(cmd) => monitor::pipeline(cmd, &ctx),
        Command::Buffer(cmd) => ok(monitor::buffer(cmd, &ctx)),
        Command::Scheduler(args) => ok(monitor::scheduler(args, &ctx)),
        Command::Serve(args) => ok(serve::run(args, &ctx)),
        Command::Demo(args) => ok(demo::run(args, &ctx)),
        Command::Backtest(args) => ok(backtest::run(args, &ctx)),
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
