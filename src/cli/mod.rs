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
use cinematch::progress::Console;
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
}

#[derive(Subcommand)]
enum DbCommand {
    /// Create or upgrade the schema (idempotent).
    Migrate,
    /// Schema version and the row count of every table.
    Status,
    /// The spec's "Database Statistics": record counts and storage per table.
    Stats,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Write a synthetic MovieLens-format directory (ratings.csv, movies.csv).
    Synth(SynthArgs),
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
    init_logging(cli.quiet);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cinematch::store::redact(&format!("{e:#}")));
            ExitCode::FAILURE
        }
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
        Command::Db(cmd) => {
            let mut store = open_store(cli.db.as_deref())?;
            match cmd {
                DbCommand::Migrate => {
                    // `open` already migrated; report what the database is at.
                    let v = store.schema_version()?.unwrap_or_default();
                    println!("schema is at version {v} ({})", store.location());
                }
                DbCommand::Status => db_status(store.as_mut())?,
                DbCommand::Stats => db_stats(store.as_mut())?,
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
        Command::Data(DataCommand::Synth(args)) => {
            let opts = SynthOptions {
                users: args.users,
                movies: args.movies,
                ratings: args.ratings,
                seed: args.seed,
                ..SynthOptions::default()
            };
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
