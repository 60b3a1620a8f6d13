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

macro_rules! exit_codes_help {
    () => {
        "Exit codes:\n  \
    0   success (including \"nothing to do\", e.g. retrain --if-drift without drift)\n  \
    1   error\n  \
    2   invalid arguments (also: an ambiguous movie title or model version, an unknown genre)\n  \
    3   ingest: the batch was already ingested; nothing changed\n  \
    4   retrain, pipeline run: the run was recorded (and the buffer merged) but not promoted, \
    because the champion changed while it trained (a rollback or another promotion)\n  \
    75  pipeline run, retrain: another cycle or retrain holds the pipeline lease; try again later"
    };
}

/// MLflow's variables, for every command that trains.
macro_rules! mlflow_help {
    () => {
        "Environment:\n  \
    MLFLOW_TRACKING_URI       an MLflow server (http:// or https://) to track runs in as well; \
    unset, runs are recorded in the database only\n  \
    MLFLOW_EXPERIMENT_NAME    the experiment (default cinematch)\n  \
    MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD   its credentials\n  \
    MLFLOW_TRACKING_SERVER_CERT_PATH   a CA certificate (PEM) the server's is checked against\n  \
    CINEMATCH_MLFLOW_MODEL    the registered model champions are versions of (default cinematch)"
    };
}

const EXIT_CODES_HELP: &str = exit_codes_help!();
const MLFLOW_HELP: &str = mlflow_help!();
const TRAINING_HELP: &str = concat!(mlflow_help!(), "\n\n", exit_codes_help!());

/// Every variable the binary reads, in the top-level help.
const TOP_HELP: &str = concat!(
    "Environment:\n  \
    CINEMATCH_DB, DATABASE_URL, NEON_CONNECTION_STRING   the database when --db is not given \
    (the first one set)\n  \
    CINEMATCH_OBJECTIVE       --objective\n  \
    CINEMATCH_LOG             log filter, e.g. debug or cinematch=debug (default cinematch=info,warn; \
    with --quiet, warn)\n  \
    CINEMATCH_LEASE_SECS      --lease-secs of retrain, pipeline run and scheduler\n  \
    CINEMATCH_REFIT           --refit of train, retrain and pipeline run (1: serve every champion \
    refit on every stored rating)\n  \
    CINEMATCH_API_TOKEN       serve: the bearer token writes need (POST /api/ratings); unset, \
    writes are refused\n  \
    CINEMATCH_READ_TOKEN      serve: the token a user's ratings and recommendations need \
    (or --read-token-file); unset, they are public\n  \
    CINEMATCH_ANALYST_PASSWORD, CINEMATCH_ML_PIPELINE_PASSWORD   db roles: the roles' passwords\n  \
    MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME, MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME, \
    MLFLOW_TRACKING_PASSWORD, MLFLOW_TRACKING_SERVER_CERT_PATH, CINEMATCH_MLFLOW_MODEL   \
    MLflow tracking of train, tune, retrain, pipeline, scheduler and demo runs (see `train --help`)",
    "\n\n",
    exit_codes_help!()
);

/// `serve`'s variables.
const SERVE_HELP: &str = "Environment:\n  \
    CINEMATCH_API_TOKEN       the bearer token writes need (POST /api/ratings): \
    `Authorization: Bearer TOKEN`. Unset or empty, writes are refused and the API is \
    read-only\n  \
    CINEMATCH_READ_TOKEN      the token a user's ratings and recommendations need (the write \
    token works too), when --read-token-file is not given; unset, they are public\n  \
    CINEMATCH_LOG             log filter (default cinematch=info,warn)";

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
    after_long_help = TOP_HELP
)]
struct Cli {
    /// Database URL: postgres://user@host/db?sslmode=require or sqlite://file.db
    #[arg(long, global = true, value_name = "URL")]
    db: Option<String>,

    /// Only print errors and results, no progress or log lines.
    #[arg(long, short, global = true)]
    quiet: bool,

    /// What models are compared on when choosing the champion: ndcg@10 (the
    /// list a user sees), recall@10 or rmse (predicted stars).
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
    #[command(override_usage = "cinematch load [OPTIONS] <DIR>\n       \
                                cinematch load [OPTIONS] --ratings <FILE> --movies <FILE>")]
    Load(load::LoadArgs),
    /// Make data: synthetic MovieLens-shaped releases.
    #[command(subcommand)]
    Data(load::DataCommand),
    /// Train a model on the train split, evaluate it on the test split and record it.
    #[command(after_long_help = MLFLOW_HELP)]
    Train(train::TrainArgs),
    /// Search hyperparameters on a validation split carved from train, then train the winner.
    #[command(after_long_help = MLFLOW_HELP)]
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
    #[command(after_long_help = TRAINING_HELP)]
    Retrain(monitor::RetrainArgs),
    /// The monitoring pipeline: ingest, drift check, retrain if drift.
    #[command(subcommand, after_long_help = TRAINING_HELP)]
    Pipeline(monitor::PipelineCommand),
    /// The rating buffer: merge into ratings, or clear batches.
    #[command(subcommand)]
    Buffer(monitor::BufferCommand),
    /// The whole story on the embedded store: synthetic data, first model, three weekly batches, drift, retraining.
    #[command(after_long_help = MLFLOW_HELP)]
    Demo(demo::DemoArgs),
    /// Run a pipeline cycle on a schedule for each new batch file in an inbox directory.
    #[command(after_long_help = TRAINING_HELP)]
    Scheduler(monitor::SchedulerArgs),
    /// Serve the recommendation API and the monitoring dashboard over HTTP.
    ///
    /// Writes (POST /api/ratings) need CINEMATCH_API_TOKEN: without it the API is read-only.
    #[command(after_long_help = SERVE_HELP)]
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

/// Commands that never read `--objective`: its help is hidden there (it
/// is global, so it is still accepted).
const WITHOUT_OBJECTIVE: &[&[&str]] = &[
    &["db"],
    &["load"],
    &["data"],
    &["evaluate"],
    &["recommend"],
    &["similar"],
    &["search"],
    &["ingest"],
    &["drift"],
    &["buffer"],
];

/// The command line as clap sees it, with `--objective` hidden from the
/// help of the commands it does not apply to: they get a hidden copy of the
/// global argument, which clap then does not propagate over.
fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let objective = cmd
        .get_arguments()
        .find(|a| a.get_id() == "objective")
        .cloned()
        .expect("the global --objective");
    fn hide(c: clap::Command, arg: &clap::Arg) -> clap::Command {
        let subs: Vec<String> = c
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        let mut c = c.arg(arg.clone().hide(true));
        for name in subs {
            c = c.mut_subcommand(name, |s| hide(s, arg));
        }
        c
    }
    let mut cmd = cmd;
    for path in WITHOUT_OBJECTIVE {
        cmd = cmd.mut_subcommand(path[0], |c| hide(c, &objective));
    }
    cmd
}

fn parse() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let mut matches = cli_command().try_get_matches()?;
    Cli::from_arg_matches_mut(&mut matches)
}

pub fn main() -> ExitCode {
    let cli = match parse() {
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

#[cfg(test)]
mod help_tests {
    //! Every `--help`: no option or argument without a description, and
    //! every environment variable the code reads named in the help.

    use std::path::Path;

    use super::cli_command;

    /// Variables the code reads that are not the user's to set: the
    /// operating system's (the default PostgreSQL user, `~/.postgresql`
    /// certificates), and test hooks (compiled only into tests or with the
    /// `failpoints` feature).
    const NOT_FOR_USERS: &[&str] = &[
        "HOME",
        "USER",
        "CINEMATCH_FAILPOINT",
        "CINEMATCH_FAILPOINT_SLEEP_MS",
        "CINEMATCH_FAILPOINT_RESUME_FILE",
        "CINEMATCH_ML_SMALL",
        "CINEMATCH_TUNE",
        "DRIFT_SCIPY_SWEEP",
    ];

    /// Every command, with its path (`cinematch db roles`).
    fn walk(cmd: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        out.push((path.clone(), cmd.clone()));
        for sub in cmd.get_subcommands() {
            walk(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    fn commands() -> Vec<(String, clap::Command)> {
        let mut cmd = cli_command();
        cmd.build();
        let mut out = Vec::new();
        walk(&cmd, "cinematch".into(), &mut out);
        out
    }

    fn long_help(path: &str) -> String {
        let mut cmd = cli_command();
        cmd.build();
        let mut c = &mut cmd;
        for name in path.split_whitespace().skip(1) {
            c = c.find_subcommand_mut(name).unwrap();
        }
        c.render_long_help().to_string()
    }

    #[test]
    fn every_option_and_argument_has_a_description() {
        let mut missing = Vec::new();
        let all = commands();
        assert!(all.len() > 40, "{} commands", all.len());
        for (path, cmd) in &all {
            if cmd.get_name() != "cinematch" && cmd.get_about().is_none() {
                missing.push(format!("{path} (the command)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                let text = arg
                    .get_help()
                    .or(arg.get_long_help())
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if text.trim().is_empty() {
                    missing.push(format!("{path} {id}"));
                }
            }
        }
        assert!(missing.is_empty(), "no description: {missing:#?}");
    }

    /// Every `"NAME"` the source reads as a variable: the arguments of
    /// `env::var`/`var_os`/`from_env`, clap's `env = "..."`, and every
    /// `CINEMATCH_*`/`MLFLOW_*` name (constants, lists, `get("...")`), in
    /// the code outside its test modules.
    fn variables_read() -> std::collections::BTreeSet<String> {
        fn scan(dir: &Path, out: &mut std::collections::BTreeSet<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    if p.file_name().is_some_and(|n| n != "tests") {
                        scan(&p, out);
                    }
                    continue;
                }
                if p.extension().is_none_or(|x| x != "rs")
                    || p.file_name().is_some_and(|n| n == "tests.rs")
                {
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
                let mut rest = code;
                while let Some(i) = rest.find('"') {
                    let before = &rest[..i];
                    let after = &rest[i + 1..];
                    let Some(j) = after.find('"') else { break };
                    let lit = &after[..j];
                    let is_name = lit.len() > 2
                        && lit.contains('_')
                        && lit
                            .bytes()
                            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                    let read_here = ["var(", "var_os(", "from_env(", "env = "]
                        .iter()
                        .any(|k| before.ends_with(k));
                    let ours = ["CINEMATCH_", "MLFLOW_", "DATABASE_", "NEON_"]
                        .iter()
                        .any(|p| lit.starts_with(p));
                    if is_name && (read_here || ours) && !lit.starts_with("CINEMATCH_TEST") {
                        out.insert(lit.to_string());
                    }
                    rest = &after[j + 1..];
                }
                for os in ["\"HOME\"", "\"USER\""] {
                    if code.contains(os) {
                        out.insert(os.trim_matches('"').to_string());
                    }
                }
            }
        }
        let mut out = std::collections::BTreeSet::new();
        scan(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
        out
    }

    #[test]
    fn every_variable_read_is_in_the_help() {
        let vars = variables_read();
        for v in [
            "CINEMATCH_LOG",
            "CINEMATCH_API_TOKEN",
            "MLFLOW_TRACKING_URI",
        ] {
            assert!(vars.contains(v), "the scan misses {v}: {vars:?}");
        }
        let top = long_help("cinematch");
        let undocumented: Vec<&String> = vars
            .iter()
            .filter(|v| !NOT_FOR_USERS.contains(&v.as_str()) && !top.contains(v.as_str()))
            .collect();
        assert!(
            undocumented.is_empty(),
            "read by the code, not in `cinematch --help`: {undocumented:?}"
        );
        // And in the help of the commands they apply to.
        let applies = [
            ("cinematch serve", "CINEMATCH_API_TOKEN"),
            ("cinematch serve", "CINEMATCH_READ_TOKEN"),
            ("cinematch db roles", "CINEMATCH_ANALYST_PASSWORD"),
            ("cinematch db roles", "CINEMATCH_ML_PIPELINE_PASSWORD"),
            ("cinematch train", "MLFLOW_TRACKING_URI"),
            ("cinematch tune", "MLFLOW_TRACKING_URI"),
            ("cinematch retrain", "MLFLOW_TRACKING_URI"),
            ("cinematch retrain", "CINEMATCH_LEASE_SECS"),
            ("cinematch pipeline run", "CINEMATCH_LEASE_SECS"),
            ("cinematch pipeline", "MLFLOW_TRACKING_URI"),
            ("cinematch scheduler", "MLFLOW_TRACKING_URI"),
            ("cinematch demo", "MLFLOW_TRACKING_URI"),
            ("cinematch train", "CINEMATCH_OBJECTIVE"),
            ("cinematch train", "CINEMATCH_REFIT"),
            ("cinematch retrain", "CINEMATCH_REFIT"),
            ("cinematch pipeline run", "CINEMATCH_REFIT"),
        ];
        for (path, var) in applies {
            assert!(
                long_help(path).contains(var),
                "`{path} --help` does not name {var}"
            );
        }
        // The objective's paragraph stays off commands it does not apply to.
        for path in [
            "cinematch db migrate",
            "cinematch data synth",
            "cinematch search",
        ] {
            assert!(!long_help(path).contains("--objective"), "{path}");
        }
    }
}
