//! Storage: the CineMatch schema behind one [`Store`] trait.
//!
//! Every feature is written once against [`Store`]; [`postgres::PgStore`] is
//! the production backend (PostgreSQL 15, Neon) and [`sqlite::SqliteStore`]
//! the embedded default, so everything runs on a laptop with no server. The
//! conformance suite in `tests/conformance.rs` runs the same assertions on
//! both.

pub mod holder;
pub mod postgres;
pub mod roles;
pub mod schema;
pub mod sqlite;

pub use postgres::conn::{redact, redact_url};

use crate::progress::Progress;
use crate::types::{IngestionStatus, Movie, PipelineStatus, Rating, Split};
use crate::{Error, Result};

/// Which engine a store runs on; some output (sizes, maintenance) differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// The engine's name as users know it ("PostgreSQL", "SQLite").
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rows in one table (`db status`, the spec's "Record Counts").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
}

/// On-disk size of one table including its indexes (the spec's "Storage Usage").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    pub table: String,
    pub bytes: i64,
}

/// One row of the spec's "Data distribution" statistics query.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitStats {
    pub split: String,
    pub records: i64,
    pub avg_rating: f64,
    pub std_rating: f64,
}

/// What a dataset load wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    pub movies: u64,
    pub train: u64,
    pub test: u64,
    /// Whether an existing dataset was replaced (the `replace` of [`Store::load_dataset`]).
    pub replaced: bool,
}

/// One row of `model_metrics`: a training run and its evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRun {
    pub id: i64,
    pub model_version: String,
    pub training_date: chrono::NaiveDateTime,
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    pub precision_at_10: Option<f64>,
    pub data_size: Option<i64>,
    /// JSON: algorithm, hyperparameters, seed, extra metrics, timings.
    pub notes: Option<String>,
    /// The run's row of `model_evaluations` (absent for runs recorded
    /// before it existed, or by other tools).
    pub evaluation: Option<ModelEvaluation>,
}

/// One row of `model_evaluations`: what the spec's `model_metrics` cannot
/// hold as columns, the full-catalogue ranking metrics of a run, so that
/// models can be compared on them in SQL. A metric that was not measured
/// (no test split) is NULL, as a ranking model's RMSE is in `model_metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelEvaluation {
    pub algorithm: String,
    pub ndcg_at_10: Option<f64>,
    pub recall_at_10: Option<f64>,
    /// Hits / 10 over the whole catalogue (not the spec's rated-items
    /// `precision_at_10`).
    pub catalogue_precision_at_10: Option<f64>,
    pub coverage: Option<f64>,
    pub users_evaluated: Option<i64>,
    /// Users eligible before sampling; more than `users_evaluated` when the
    /// evaluation ranked a sample.
    pub users_eligible: Option<i64>,
    pub test_ratings: Option<i64>,
}

/// One trial of a hyperparameter search (`cinematch tune`), scored on a
/// validation split carved from train.
#[derive(Debug, Clone, PartialEq)]
pub struct TuningTrial {
    /// The search this trial belongs to.
    pub study: String,
    pub trial: i64,
    pub algorithm: String,
    /// The hyperparameters, JSON.
    pub params: String,
    /// `ndcg@10`, `rmse`, ...
    pub objective: String,
    /// The objective on the validation split; `None` when not measurable.
    pub value: Option<f64>,
    pub validation_ratings: i64,
    pub seconds: f64,
}

/// A run to record. The store names it `run_<run_id>_v<N>`, N counting
/// every run so far, inside the same transaction that writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModelRun {
    /// Hex id of the run (random, or the MLflow run id).
    pub run_id: String,
    /// `None` for ranking models (no ratings predicted) and without a test
    /// split: stored as NULL, never as an invented number.
    pub rmse: Option<f64>,
    pub mae: Option<f64>,
    pub precision_at_10: Option<f64>,
    pub data_size: i64,
    pub notes: String,
    pub evaluation: ModelEvaluation,
}

/// What else to commit with a recorded run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunCommit {
    /// Promote the run to champion, with this reason.
    pub promote_reason: Option<String>,
    /// Compare-and-set for that promotion: only if the champion is still
    /// this one (`Some(None)`: still none). Otherwise nothing at all is
    /// written and the commit fails with [`Error::ChampionChanged`], so the
    /// caller can record the run unpromoted and say why. How the caller
    /// decided the run is better does not matter here.
    pub promote_if_champion_is: Option<Option<String>>,
    /// Move the buffered ratings this bound names into `ratings` as train
    /// data (the retrain's merge): exactly the rows a retrain read and
    /// trained on ([`Store::buffer_snapshot`]). Rows that arrived since stay
    /// buffered; if the bound no longer names exactly the rows it was read
    /// with (a `buffer clear` or `buffer merge` meanwhile), nothing at all is
    /// written and the commit fails with [`Error::Conflict`].
    pub merge_buffer: Option<BufferBound>,
    /// Commit only while this holder still holds this lease, checked inside
    /// the transaction: a retrain that lost the pipeline lease (not renewed
    /// in time, taken over) must not merge or promote. [`Error::Busy`]
    /// otherwise, with nothing written.
    pub lease: Option<LeaseHold>,
}

/// A lease a commit requires (see [`RunCommit::lease`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHold {
    pub name: String,
    pub holder: String,
}

/// Names the rows of one read of `ratings_buffer` ([`Store::buffer_snapshot`]):
/// those stamped (`ingested_at`) at or before `through`, or never stamped
/// (rows other tools wrote), `rows` of them. Writers stamp their rows after
/// taking the buffer's write lock and the read waits for writers in flight,
/// so every row stamped at or before `through` was committed before the
/// read, and every later row is stamped after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferBound {
    pub through: chrono::NaiveDateTime,
    pub rows: u64,
}

impl BufferBound {
    /// How `through` is written in a run's notes (UTC, microseconds).
    pub const THROUGH_FORMAT: &'static str = "%Y-%m-%d %H:%M:%S%.6f";
}

/// The buffer as a retrain trains on it: the ratings, the batches they came
/// from, and the bound that names exactly these rows for the merge.
#[derive(Debug, Clone, PartialEq)]
pub struct BufferSnapshot {
    /// By timestamp.
    pub ratings: Vec<Rating>,
    /// Distinct batch ids of those rows, sorted (`(no batch id)` for NULL).
    pub batches: Vec<String>,
    pub bound: BufferBound,
}

impl BufferSnapshot {
    /// The snapshot of `ratings` read up to `through`, with the batch id of
    /// each (`None`: written by other tools without one).
    pub(crate) fn new(
        rows: Vec<(Rating, Option<String>)>,
        through: chrono::NaiveDateTime,
    ) -> BufferSnapshot {
        let mut batches = std::collections::BTreeSet::new();
        let ratings: Vec<Rating> = rows
            .into_iter()
            .map(|(r, b)| {
                batches.insert(b.unwrap_or_else(|| NO_BATCH_ID.into()));
                r
            })
            .collect();
        BufferSnapshot {
            bound: BufferBound {
                through,
                rows: ratings.len() as u64,
            },
            ratings,
            batches: batches.into_iter().collect(),
        }
    }
}

/// How a buffered row without a batch id (written by other tools) is named.
pub const NO_BATCH_ID: &str = "(no batch id)";

/// The refusal of a merge whose bound no longer names the rows it was read
/// with.
pub(crate) fn buffer_changed(bound: &BufferBound, found: u64) -> Error {
    Error::Conflict(format!(
        "the buffer changed while this retrain trained: it read {} buffered ratings, but {found} \
         of them were still there to merge (a `buffer clear` or `buffer merge` ran meanwhile); \
         nothing was recorded, merged or promoted: run it again",
        bound.rows
    ))
}

/// The refusal of a commit by a process that no longer holds its lease.
pub(crate) fn lease_lost(hold: &LeaseHold) -> Error {
    Error::Busy(format!(
        "this process no longer holds the {} lease (it was not renewed in time and another \
         process took it over); nothing was recorded, merged or promoted",
        hold.name
    ))
}

/// A serialized model as the registry keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactBlob {
    pub algorithm: String,
    pub format_version: i32,
    pub checksum: u32,
    pub bytes: Vec<u8>,
}

/// A promotion in the champion history.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    pub model_version: String,
    pub promoted_at: chrono::NaiveDateTime,
    pub reason: Option<String>,
    pub rolled_back: bool,
}

/// Rating count and mean of one movie in the training data, for cold start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MovieStats {
    pub movie_id: i32,
    pub count: i64,
    pub mean: f64,
}

/// One row of `ingestion_metadata`, the audit trail of batch ingestion.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingestion {
    pub id: i64,
    pub batch_id: String,
    pub ingestion_date: Option<chrono::NaiveDateTime>,
    pub record_count: Option<i64>,
    /// Cleared: its buffered ratings were deleted by [`Store::clear_batch`]
    /// and it may be ingested again. A batch whose process died stays
    /// in progress until the next ingestion finds no process ingesting and
    /// marks it failed with [`INTERRUPTED_NOTE`]; either way it may be
    /// retried. NULL only in rows other tools wrote.
    pub status: Option<IngestionStatus>,
    pub notes: Option<String>,
}

/// A drift test result to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDriftAlert {
    pub feature_name: String,
    pub drift_score: f64,
    pub threshold: f64,
    pub alert_triggered: bool,
    pub notes: String,
}

/// One row of `drift_alerts`.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftAlert {
    pub id: i64,
    pub alert_date: chrono::NaiveDateTime,
    pub feature_name: String,
    pub drift_score: Option<f64>,
    pub threshold: Option<f64>,
    pub alert_triggered: bool,
    pub notes: Option<String>,
}

/// One row of `pipeline_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRun {
    pub id: i64,
    pub started_at: chrono::NaiveDateTime,
    pub finished_at: Option<chrono::NaiveDateTime>,
    pub status: PipelineStatus,
    pub batch_id: Option<String>,
    /// JSON array of step outcomes.
    pub steps: Option<String>,
    pub summary: Option<String>,
}

/// One policy's result of a backtest, as `backtests` keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestRow {
    pub id: i64,
    /// Groups the policies replayed together.
    pub backtest_id: String,
    pub created_at: chrono::NaiveDateTime,
    pub policy: String,
    /// What was replayed (a release directory, or the store from a date).
    pub source: String,
    /// Mean NDCG@10 over the weeks of the served lists and the baselines.
    pub served_ndcg_at_10: Option<f64>,
    pub most_rated_ndcg_at_10: Option<f64>,
    pub trending_ndcg_at_10: Option<f64>,
    /// The whole result, JSON (`pipeline::backtest::PolicyResult`).
    pub report: String,
}

/// A named lease as the store holds it (see [`Store::acquire_lease`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub name: String,
    /// Who holds it: an opaque id chosen by the holder.
    pub holder: String,
    pub acquired_at: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
    /// Seconds until it expires by the database's clock; negative once it
    /// has (it may then be taken over).
    pub remaining_secs: f64,
}

/// The answer of [`Store::acquire_lease`].
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseGrant {
    Acquired,
    /// Someone else holds it and it has not expired.
    Held(Lease),
}

/// A write made at most once: the `Idempotency-Key` a client sent with
/// it, a digest of the request, and the answer the first attempt got, kept
/// in `api_idempotency` in the same transaction as the rows it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentWrite {
    pub key: String,
    /// Hex SHA-256 of the request as parsed (the ratings, however the JSON
    /// spelled them): the same key with another request is the client's
    /// mistake, not a retry.
    pub request_hash: String,
    pub status: u16,
    /// The response body of the first attempt.
    pub response: String,
}

/// How long an idempotency key is remembered; a retry later than this is
/// a new write.
pub const IDEMPOTENCY_RETENTION_SECS: i64 = 86_400;

/// What a committed change did to the data servers answer from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::EnumString, strum::IntoStaticStr,
)]
#[strum(serialize_all = "snake_case")]
pub enum ChangeKind {
    /// Ratings added to `ratings_buffer` (an API append or a batch file).
    Append,
    /// The buffer moved into `ratings` (`buffer merge`, a retrain).
    Merge,
    /// A batch deleted from the buffer (`buffer clear`).
    Clear,
    /// A dataset (movies and ratings) loaded or replaced.
    Load,
}

/// One row of `data_changes`: every transaction that changes ratings,
/// the buffer or the movies records one, numbered in commit order, so a
/// server can follow the database by reading what is new since the last
/// version it saw instead of everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataChange {
    pub version: i64,
    pub kind: ChangeKind,
    pub batch_id: Option<String>,
    pub rows: i64,
}

/// Changes kept in `data_changes` besides the latest: a reader further
/// behind finds a gap and reloads everything.
pub const CHANGES_KEPT: i64 = 100_000;

/// The CineMatch schema, whatever engine holds it.
///
/// Methods take `&mut self` because both engines hand out one connection per
/// store; open more stores for concurrency.
pub trait Store: Send {
    fn backend(&self) -> Backend;

    /// Where the store lives, safe to print (passwords redacted).
    fn location(&self) -> String;

    /// Creates or upgrades the schema; idempotent. Returns the versions applied now.
    fn migrate(&mut self) -> Result<Vec<&'static str>>;

    /// The latest applied schema version, `None` on a database never migrated.
    fn schema_version(&mut self) -> Result<Option<String>>;

    /// Row counts of the spec's tables and every table later migrations added.
    fn table_counts(&mut self) -> Result<Vec<TableCount>>;

    /// Size per table, indexes included, largest first.
    fn table_sizes(&mut self) -> Result<Vec<TableSize>>;

    /// Writes a whole dataset in one transaction: either every movie and
    /// rating lands or the database is left exactly as it was. Refuses with
    /// [`Error::DatasetLoaded`] when a dataset is already loaded, unless `replace`.
    /// `splits[i]` is the split of `ratings[i]`.
    fn load_dataset(
        &mut self,
        movies: &[Movie],
        ratings: &[Rating],
        splits: &[Split],
        replace: bool,
        progress: &dyn Progress,
    ) -> Result<LoadSummary>;

    /// The spec's per-split statistics (records, mean and sample std of rating).
    fn split_stats(&mut self) -> Result<Vec<SplitStats>>;

    /// All ratings of one split, ordered by timestamp as the spec's training query.
    fn ratings(&mut self, split: Split) -> Result<Vec<Rating>>;

    /// Every movie, ordered by movieId.
    fn movies(&mut self) -> Result<Vec<Movie>>;

    /// Ratings waiting in `ratings_buffer` (one batch, or all), by timestamp.
    fn buffer_ratings(&mut self, batch_id: Option<&str>) -> Result<Vec<Rating>>;

    /// The whole buffer with the bound that names exactly the rows read, so
    /// a retrain merges what it trained on and nothing that arrived while it
    /// trained (see [`BufferBound`]). Waits for writes in flight to commit.
    fn buffer_snapshot(&mut self) -> Result<BufferSnapshot>;

    /// The movies with these ids (unknown ids are simply absent), by movieId.
    fn movies_by_id(&mut self, ids: &[i32]) -> Result<Vec<Movie>>;

    /// Everything one user has rated: both splits and the buffer.
    fn user_ratings(&mut self, user_id: i32) -> Result<Vec<Rating>>;

    /// Per-movie count and mean rating over the train split.
    fn movie_stats(&mut self) -> Result<Vec<MovieStats>>;

    /// How many ratings each movie has among the `latest` newest ratings
    /// the store knows (`ratings`, both splits, and `ratings_buffer`), or
    /// among all of them with `None`, counting only ratings of at least
    /// `min_stars` when given, by movieId. Newest means by timestamp, ties
    /// broken by userId then movieId, so both backends count the same rows:
    /// the cold-start lists (most-rated, trending). `without_batch` leaves
    /// that buffered batch out (what was known before it arrived).
    fn movie_counts(
        &mut self,
        latest: Option<u64>,
        min_stars: Option<f32>,
        without_batch: Option<&str>,
    ) -> Result<Vec<(i32, i64)>>;

    /// The ids of every movie, for referential checks of new ratings.
    fn movie_ids(&mut self) -> Result<std::collections::HashSet<i32>>;

    /// Every movie a title and genre search matches, through the full-text
    /// indexes (SQLite's `movies_fts`, PostgreSQL's GIN indexes), with how
    /// many query words match a whole title word; in no order, at most
    /// [`MAX_SEARCH_MATCHES`]. No rating is read, so the cost does not grow
    /// with the ratings: the caller ranks ([`rank_matches`]) by the counts
    /// it holds (a server: its snapshot's catalogue).
    ///
    /// `query` is reduced to [`search_words`]: every word must start a word
    /// of the title ("toy stor" finds "Toy Story (1995)"); FTS syntax in it
    /// (`"`, `*`, `AND`, `NEAR(`, `:`...) is only ever plain text. `genre`
    /// keeps movies with exactly that genre in any case (see
    /// [`GenreFilter`]). A query without words matches the genre; without
    /// words or genre nothing matches.
    fn search_matches(&mut self, query: &str, genre: Option<&str>) -> Result<Vec<SearchMatch>>;

    /// [`Store::search_matches`] ranked by [`rank_matches`] with train-split
    /// rating counts read from the store (one pass over the ratings, so for
    /// the CLI and tests; the server ranks with its snapshot's counts), at
    /// most `limit`, best first.
    fn search_movies(
        &mut self,
        query: &str,
        genre: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Movie>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let matches = self.search_matches(query, genre)?;
        if matches.is_empty() {
            return Ok(Vec::new());
        }
        let counts: std::collections::HashMap<i32, i64> = self
            .movie_stats()?
            .into_iter()
            .map(|s| (s.movie_id, s.count))
            .collect();
        let ids = rank_matches(&matches, |id| counts.get(&id).copied().unwrap_or(0), limit);
        let mut found: std::collections::HashMap<i32, Movie> = self
            .movies_by_id(&ids)?
            .into_iter()
            .map(|m| (m.movie_id, m))
            .collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    // --- batch ingestion ----------------------------------------------------

    /// Opens (or reopens, after a failure or an interruption) the audit row of
    /// a batch as 'in_progress', committed at once so an interrupted batch is
    /// visible. [`Error::BatchCompleted`] if the batch already completed.
    ///
    /// The batch's ingestion lease (a `cinematch_leases` row, the pipeline
    /// lease's mechanism: no session state, so it works behind a
    /// transaction-mode pooler) is held by this store from here until the
    /// batch is completed or failed; [`Error::Busy`] while another live
    /// process holds it. First, every other batch still 'in_progress' whose
    /// lease nobody live holds (its process died on this machine, or its
    /// lease of [`INGEST_LEASE`] expired) is orphaned and is marked 'failed'
    /// with [`INTERRUPTED_NOTE`].
    fn begin_ingestion(&mut self, batch_id: &str) -> Result<()>;

    /// Writes a batch into `ratings_buffer` and marks its audit row
    /// 'completed' with the count, in one transaction: the batch lands whole
    /// or not at all.
    fn complete_ingestion(
        &mut self,
        batch_id: &str,
        ratings: &[Rating],
        notes: &str,
    ) -> Result<u64>;

    /// Appends ratings to an open batch in its own transaction (the API's
    /// daily batch), creating the batch's audit row if needed and keeping its
    /// count current.
    fn append_to_batch(&mut self, batch_id: &str, ratings: &[Rating]) -> Result<u64>;

    /// [`Store::append_to_batch`] at most once per `write.key`: the key and
    /// the answer are recorded in the same transaction as the ratings, so
    /// they commit together or not at all. When the key was recorded before
    /// (by this process or any other sharing the database) nothing is
    /// written and the earlier record is returned; a concurrent write with
    /// the same key waits for the first to end. Keys older than
    /// [`IDEMPOTENCY_RETENTION_SECS`] are forgotten.
    fn append_to_batch_once(
        &mut self,
        batch_id: &str,
        ratings: &[Rating],
        write: &IdempotentWrite,
    ) -> Result<Option<IdempotentWrite>>;

    /// Marks a batch 'failed' with the reason; nothing of it is in the buffer.
    fn fail_ingestion(&mut self, batch_id: &str, reason: &str) -> Result<()>;

    /// The audit trail, newest first.
    fn ingestions(&mut self) -> Result<Vec<Ingestion>>;

    /// Rows in `ratings_buffer` per batch id.
    fn buffer_counts(&mut self) -> Result<Vec<(Option<String>, i64)>>;

    /// Moves every buffered rating into `ratings` as train data and empties
    /// the buffer, atomically (the spec's option 2); ratings that arrive
    /// meanwhile are either moved or stay buffered, never lost or doubled.
    fn merge_buffer(&mut self) -> Result<u64>;

    /// Deletes one batch's ratings from `ratings_buffer` (the spec's option
    /// 1, scoped) and marks its audit row 'cleared' with the count, in one
    /// transaction, so the batch may be ingested again: nothing of it is
    /// buffered or merged. Refuses with [`Error::NotFound`] when none of the
    /// batch is buffered (never ingested, or already merged into `ratings`:
    /// re-ingesting it then would double it), and with [`Error::Conflict`]
    /// while it is being ingested. Ratings the API appends to the batch
    /// afterwards reopen it as 'completed'.
    fn clear_batch(&mut self, batch_id: &str) -> Result<u64>;

    // --- drift --------------------------------------------------------------

    /// Records one drift check's results, all with the same `alert_date`.
    fn insert_drift_alerts(&mut self, alerts: &[NewDriftAlert]) -> Result<()>;

    /// Alerts newer than `within_secs` seconds (all when `None`), newest first.
    fn drift_alerts(&mut self, within_secs: Option<i64>) -> Result<Vec<DriftAlert>>;

    /// Moves alerts older than `older_than_secs` into `drift_alerts_archive`
    /// in one transaction. Returns how many moved.
    fn archive_drift_alerts(&mut self, older_than_secs: i64) -> Result<u64>;

    // --- backtests -----------------------------------------------------------

    /// Records one policy's backtest result (`id` and `created_at` of the
    /// row are the store's); returns the id.
    fn insert_backtest(&mut self, row: &BacktestRow) -> Result<i64>;

    /// Backtest results, newest first, at most `limit`.
    fn backtests(&mut self, limit: usize) -> Result<Vec<BacktestRow>>;

    // --- pipeline and maintenance --------------------------------------------

    fn start_pipeline_run(&mut self, batch_id: Option<&str>) -> Result<i64>;
    fn finish_pipeline_run(
        &mut self,
        id: i64,
        status: PipelineStatus,
        steps: &str,
        summary: &str,
    ) -> Result<()>;
    fn pipeline_runs(&mut self) -> Result<Vec<PipelineRun>>;

    /// Empties every CineMatch table (ids restart), keeping the schema: for
    /// `demo --fresh` and tests, never called implicitly.
    fn reset(&mut self) -> Result<()>;

    // --- following the data (servers) ------------------------------------------

    /// The version of the last committed change (`data_changes`), 0 when
    /// none; it only grows, except through [`Store::reset`].
    fn data_version(&mut self) -> Result<i64>;

    /// Which dataset the store holds: the change version of the load that
    /// wrote it (kept as `data_versions` row `dataset`), 0 for a dataset
    /// loaded before this was recorded. Runs record it, so a champion
    /// trained and scored on a dataset `load --replace` replaced is never
    /// compared with a run on the new one.
    fn dataset_version(&mut self) -> Result<i64>;

    /// The changes after version `after`, oldest first (those still kept:
    /// see [`CHANGES_KEPT`]).
    fn data_changes(&mut self, after: i64) -> Result<Vec<DataChange>>;

    /// The ratings the appends numbered `after + 1 ..= upto` wrote that are
    /// still buffered.
    fn appended_ratings(&mut self, after: i64, upto: i64) -> Result<Vec<Rating>>;

    /// Bounds each statement of this connection: on PostgreSQL
    /// `statement_timeout` (lock waits included), on SQLite the busy
    /// timeout (how long a write waits for another writer). A statement
    /// over the limit fails with [`Error::TimedOut`] and its transaction
    /// rolls back. `None` restores the default (no limit; SQLite: 30 s).
    fn set_statement_timeout(&mut self, limit: Option<std::time::Duration>) -> Result<()>;

    /// VACUUM ANALYZE of the three core tables (the spec's weekly maintenance).
    fn vacuum(&mut self) -> Result<()>;

    // --- leases -----------------------------------------------------------
    //
    // A lease is a row (holder, expiry by the database's clock) taken,
    // renewed and released in short transactions of their own. Nothing lives
    // in a session, so it works behind a transaction-mode pooler (Neon's
    // pooled endpoint, PgBouncer), where consecutive statements may run on
    // different server connections, and a holder that vanishes (host gone,
    // network cut) loses it when it expires instead of when TCP keepalive
    // notices, hours later. `pipeline::lease` builds the pipeline's lock on it.

    /// Takes the lease `name` for `holder` until `ttl` from now: when nobody
    /// holds it, when it has expired, when `holder` already holds it (then
    /// only the expiry moves), or when `take_over` names its current holder
    /// (one the caller knows to be dead). Otherwise returns who holds it.
    fn acquire_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        take_over: Option<&str>,
    ) -> Result<LeaseGrant>;

    /// Moves the expiry of a lease `holder` holds to `ttl` from now; `false`
    /// when it is no longer theirs (released, or taken over after expiring).
    fn renew_lease(&mut self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool>;

    /// Gives the lease up if `holder` still holds it.
    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()>;

    /// The lease `name`, expired or not, if anyone holds it.
    fn lease(&mut self, name: &str) -> Result<Option<Lease>>;

    /// Another connection to the same database, for work that must go on
    /// while this one is busy (the lease renewer). Not possible for a
    /// private in-memory SQLite database.
    fn reopen(&self) -> Result<Box<dyn Store>>;

    // --- model registry ---------------------------------------------------

    /// Records a run in `model_metrics` and its artifact and, in the same
    /// transaction, what `commit` asks: promotion to champion and the buffer
    /// merge, so a retrain lands whole or not at all. The first model ever
    /// recorded becomes the champion regardless. Returns the run and how many
    /// buffered ratings were merged.
    fn insert_model_run(
        &mut self,
        run: &NewModelRun,
        artifact: &ArtifactBlob,
        commit: &RunCommit,
    ) -> Result<(ModelRun, u64)>;

    /// Every run, oldest first.
    fn model_runs(&mut self) -> Result<Vec<ModelRun>>;

    /// Records one tuning trial.
    fn insert_tuning_trial(&mut self, trial: &TuningTrial) -> Result<()>;

    /// Tuning trials, oldest first; of one study when given.
    fn tuning_trials(&mut self, study: Option<&str>) -> Result<Vec<TuningTrial>>;

    /// The stored artifact of a model version.
    fn artifact(&mut self, model_version: &str) -> Result<Option<ArtifactBlob>>;

    /// Every promotion, oldest first.
    fn promotions(&mut self) -> Result<Vec<Promotion>>;

    /// Makes a stored model the champion. [`Error::UnknownModel`] if it has no artifact.
    fn promote(&mut self, model_version: &str, reason: &str) -> Result<()>;

    /// Makes a stored model the champion only if the champion is still
    /// `expected` (`None`: there is none), atomically; [`Error::ChampionChanged`]
    /// otherwise, with nothing written. For promotions decided on a champion
    /// read earlier, which a rollback or another promotion may have replaced.
    fn promote_if_champion_is(
        &mut self,
        expected: Option<&str>,
        model_version: &str,
        reason: &str,
    ) -> Result<()>;

    /// Marks the current champion's promotion rolled back, so the previous
    /// champion serves again. Returns (from, to).
    fn rollback(&mut self) -> Result<(String, String)>;

    /// The model version serving now.
    fn champion(&mut self) -> Result<Option<String>> {
        Ok(self
            .promotions()?
            .into_iter()
            .rev()
            .find(|p| !p.rolled_back)
            .map(|p| p.model_version))
    }
}

/// The embedded default when no database is configured.
pub const DEFAULT_DB_URL: &str = "sqlite://cinematch.db";

/// Opens the store a URL names (see [`DbUrl::parse`]) and brings its schema
/// up to date, so every command works against an empty database.
pub fn open(url: &str) -> Result<Box<dyn Store>> {
    let mut store: Box<dyn Store> = match DbUrl::parse(url)? {
        DbUrl::Postgres(url) => Box::new(postgres::PgStore::connect(&url)?),
        DbUrl::Sqlite(path) => Box::new(sqlite::SqliteStore::open(&path)?),
    };
    store.migrate()?;
    Ok(store)
}

/// A database URL resolved to the engine that serves it. The one place that
/// tells the engines' URLs apart, for opening a store, for the server's
/// start-up check and for the CLI, so they can never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// A `postgres://`/`postgresql://` URL or a libpq key/value string
    /// (`host=... dbname=...`), as given.
    Postgres(String),
    /// The SQLite file's path; `:memory:` for a private in-memory database.
    Sqlite(String),
}

impl DbUrl {
    /// `postgres://` and `postgresql://` go to PostgreSQL (with `sslmode`),
    /// as does a key/value string with `host=`; `sqlite://PATH`,
    /// `sqlite:PATH` or a path ending in `.db`/`.sqlite`/`.sqlite3` go to
    /// SQLite, `sqlite::memory:` to a private in-memory database. Anything
    /// else is [`Error::Config`], with the password redacted.
    pub fn parse(url: &str) -> Result<DbUrl> {
        let url = url.trim();
        if url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.contains("host=")
        {
            Ok(DbUrl::Postgres(url.to_string()))
        } else if let Some(rest) = url.strip_prefix("sqlite://") {
            Ok(DbUrl::Sqlite(rest.to_string()))
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            Ok(DbUrl::Sqlite(rest.to_string()))
        } else if url.ends_with(".db") || url.ends_with(".sqlite") || url.ends_with(".sqlite3") {
            Ok(DbUrl::Sqlite(url.to_string()))
        } else {
            Err(Error::Config(format!(
                "unrecognised database URL {:?}: use postgres://user@host/db or sqlite://path/to/file.db",
                redact(url)
            )))
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            DbUrl::Postgres(_) => Backend::Postgres,
            DbUrl::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// One movie a search matched (see [`Store::search_matches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchMatch {
    pub movie_id: i32,
    /// Query words that match a whole word of the title, not only its start.
    pub whole_words: u32,
}

/// Most matches a search returns: more movies than any MovieLens release
/// has, so in practice every match.
pub const MAX_SEARCH_MATCHES: usize = 200_000;

/// The search ranking both the store and the server apply: more query
/// words matching a whole title word first, then more train-split ratings
/// (`count`), then lower id; the best `limit` ids.
pub fn rank_matches(matches: &[SearchMatch], count: impl Fn(i32) -> i64, limit: usize) -> Vec<i32> {
    let mut ranked: Vec<(u32, i64, i32)> = matches
        .iter()
        .map(|m| (m.whole_words, count(m.movie_id), m.movie_id))
        .collect();
    ranked.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    ranked.truncate(limit);
    ranked.into_iter().map(|r| r.2).collect()
}

/// Most words a search uses; the rest of a longer query is ignored, which
/// bounds the cost of one request.
pub const MAX_SEARCH_WORDS: usize = 8;

/// The words of a search query as both backends match them: lower-cased
/// runs of alphanumeric characters, first occurrence only, at most
/// [`MAX_SEARCH_WORDS`]. Everything else (quotes, `*`, `:`, parentheses,
/// `-`, `^`, `;`) separates words, so no FTS or tsquery syntax survives;
/// operators spelled as words (`AND`, `NEAR`) are just words.
pub fn search_words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for w in query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let w = w.to_lowercase();
        if !words.contains(&w) {
            words.push(w);
            if words.len() == MAX_SEARCH_WORDS {
                break;
            }
        }
    }
    words
}

/// A search's genre filter, as both stores apply it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenreFilter<'a> {
    /// No filter (none given, or blank).
    Any,
    /// Exactly this genre (trimmed), in any case.
    Only(&'a str),
    /// A value no movie can have (it holds a `|`, which separates genres,
    /// or a NUL, which PostgreSQL text cannot hold): nothing matches.
    Nothing,
}

impl GenreFilter<'_> {
    pub fn new(genre: Option<&str>) -> GenreFilter<'_> {
        match genre.map(str::trim).filter(|g| !g.is_empty()) {
            None => GenreFilter::Any,
            Some(g) if g.contains(['|', '\0']) => GenreFilter::Nothing,
            Some(g) => GenreFilter::Only(g),
        }
    }
}

/// What a search asks of a store once the shared rules are applied: the
/// words and the genre, or `None` when nothing can match (no words and no
/// genre, a zero limit, or an impossible genre), so both backends skip the
/// query alike.
pub(crate) fn search_plan<'a>(
    query: &str,
    genre: Option<&'a str>,
    limit: usize,
) -> Option<(Vec<String>, Option<&'a str>)> {
    let words = search_words(query);
    let genre = match GenreFilter::new(genre) {
        GenreFilter::Any => None,
        GenreFilter::Only(g) => Some(g),
        GenreFilter::Nothing => return None,
    };
    if limit == 0 || (words.is_empty() && genre.is_none()) {
        return None;
    }
    Some((words, genre))
}

/// Sample standard deviation from running sums, as SQL's STDDEV computes it.
pub(crate) fn sample_std(n: i64, sum: f64, sum_sq: f64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    let n = n as f64;
    ((sum_sq - sum * sum / n) / (n - 1.0)).max(0.0).sqrt()
}

/// The check of a compare-and-set promotion, given the champion read inside
/// the promoting transaction.
pub(crate) fn expect_champion(expected: Option<&str>, actual: Option<String>) -> Result<()> {
    if expected == actual.as_deref() {
        Ok(())
    } else {
        Err(Error::ChampionChanged {
            expected: expected.map(str::to_string),
            actual,
        })
    }
}

/// The champion to return to on rollback: the latest live promotion whose
/// model differs from the current champion. Returns (its promotion id,
/// from, to); every live promotion after that id is then rolled back.
pub(crate) fn rollback_target(promotions: &[(i64, String, bool)]) -> Result<(i64, String, String)> {
    let live: Vec<&(i64, String, bool)> = promotions.iter().filter(|p| !p.2).collect();
    let current = live
        .last()
        .ok_or_else(|| Error::NotFound("there is no champion to roll back".into()))?;
    let previous = live
        .iter()
        .rev()
        .skip(1)
        .find(|p| p.1 != current.1)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "{} is the only champion there has been; nothing to roll back to",
                current.1
            ))
        })?;
    Ok((previous.0, current.1.clone(), previous.1.clone()))
}

/// The prefix of the batch ids under which the HTTP API buffers ratings,
/// one batch per UTC day (`api_2025-01-06`); bulk clears keep them unless
/// asked (they hold ratings users were told were stored).
pub const API_BATCH_PREFIX: &str = "api_";

/// The API's batch id for a day.
pub fn api_batch_id(day: chrono::NaiveDate) -> String {
    format!("{API_BATCH_PREFIX}{}", day.format("%Y-%m-%d"))
}

/// Whether a batch holds ratings posted through the API.
pub fn is_api_batch(batch_id: &str) -> bool {
    batch_id.starts_with(API_BATCH_PREFIX)
}

/// The audit note of a cleared batch.
pub(crate) fn cleared_note(n: u64) -> String {
    format!(
        "cleared: {n} buffered ratings deleted (none had been merged into ratings); \
         the batch may be ingested again"
    )
}

pub(crate) fn nothing_to_clear(batch_id: &str, status: Option<IngestionStatus>) -> Error {
    Error::NotFound(format!(
        "batch {batch_id:?} has no ratings in ratings_buffer (status {}): {}",
        status.map_or("unknown", IngestionStatus::as_str),
        match status {
            Some(IngestionStatus::Completed) =>
                "they were merged into ratings by a retrain or a buffer merge, \
                 so clearing (and ingesting it again) would double them",
            Some(_) => "nothing of it was stored",
            None => "no such batch was ingested",
        }
    ))
}

pub(crate) fn clear_while_ingesting(batch_id: &str) -> Error {
    Error::Conflict(format!(
        "batch {batch_id:?} is being ingested right now; clear it once that has finished"
    ))
}

/// The note of a batch found 'in_progress' while no process was ingesting:
/// its process was killed or lost the database before the commit.
pub const INTERRUPTED_NOTE: &str = "interrupted: the ingesting process stopped (killed, or lost \
     the database) before the batch completed, so none of its ratings are in ratings_buffer; \
     ingest it again with the same batch id";

/// The refusal of a load while the buffer holds ratings: they belong to
/// the dataset in place (their movies may be missing from the new one) and
/// the next retrain would merge them into the new one.
pub(crate) fn buffer_not_empty(n: i64) -> Error {
    Error::Conflict(format!(
        "ratings_buffer holds {n} ratings of the dataset in place; a new dataset would have \
         the next retrain merge them into it (their movies may not even be in it): delete them \
         first with `cinematch buffer clear --yes --include-api`, then load"
    ))
}

/// How long an ingestion's lease lasts (it is not renewed): longer than any
/// batch takes to read and write, and the longest a batch whose process
/// vanished on another machine stays 'in_progress' (one that died on this
/// machine is seen at once).
pub const INGEST_LEASE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The lease a batch's ingestion holds: a digest of the batch id (ids are
/// up to 50 characters, as lease names are).
pub(crate) fn ingest_lease_name(batch_id: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(batch_id.as_bytes());
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("ingest:{hex}")
}

/// The start of [`Store::begin_ingestion`] on either backend, for `holder`
/// (the store's own): marks orphaned batches interrupted, then takes
/// `batch_id`'s ingestion lease.
///
/// An orphan is claimed by taking its lease (free, expired, or held by a
/// process on this machine that is gone), so two processes never both mark
/// it, and a live ingestion, whose lease is held, is never marked.
pub(crate) fn claim_ingestion(store: &mut dyn Store, holder: &str, batch_id: &str) -> Result<()> {
    use holder::Holder;
    let orphans: Vec<String> = store
        .ingestions()?
        .into_iter()
        .filter(|i| i.status == Some(IngestionStatus::InProgress) && i.batch_id != batch_id)
        .map(|i| i.batch_id)
        .collect();
    for orphan in orphans {
        let name = ingest_lease_name(&orphan);
        let take_over = match store.lease(&name)? {
            Some(l) if l.remaining_secs > 0.0 => {
                match Holder::parse(&l.holder).filter(Holder::is_gone) {
                    Some(_) => Some(l.holder),
                    None => continue,
                }
            }
            _ => None,
        };
        let ttl = std::time::Duration::from_secs(60);
        if store.acquire_lease(&name, holder, ttl, take_over.as_deref())? == LeaseGrant::Acquired {
            store.fail_ingestion(&orphan, INTERRUPTED_NOTE)?;
            store.release_lease(&name, holder)?;
        }
    }
    let name = ingest_lease_name(batch_id);
    if let LeaseGrant::Held(l) = store.acquire_lease(&name, holder, INGEST_LEASE, None)? {
        let gone = Holder::parse(&l.holder).is_some_and(|h| h.is_gone());
        let taken = gone
            && store.acquire_lease(&name, holder, INGEST_LEASE, Some(&l.holder))?
                == LeaseGrant::Acquired;
        if !taken {
            return Err(Error::Busy(format!(
                "batch {batch_id:?} is being ingested by another process ({}); try again when \
                 it has finished",
                l.holder
            )));
        }
    }
    Ok(())
}

/// [`Store::begin_ingestion`] on either backend: [`claim_ingestion`], then
/// `open` (the backend's audit row as 'in_progress'), giving the lease back
/// when that fails.
pub(crate) fn begin_leased_ingestion<S: Store>(
    store: &mut S,
    holder: &str,
    batch_id: &str,
    open: fn(&mut S, &str) -> Result<()>,
) -> Result<()> {
    claim_ingestion(store, holder, batch_id)?;
    let opened = open(store, batch_id);
    if opened.is_err() {
        release_ingestion(store, holder, batch_id);
    }
    opened
}

/// Gives up a batch's ingestion lease (completed or failed); a lease that
/// cannot be released lapses after [`INGEST_LEASE`], and a completed batch
/// is never taken for an orphan meanwhile.
pub(crate) fn release_ingestion(store: &mut dyn Store, holder: &str, batch_id: &str) {
    if let Err(e) = store.release_lease(&ingest_lease_name(batch_id), holder) {
        tracing::debug!(batch = %batch_id, error = %e, "could not release the ingestion lease");
    }
}

pub(crate) fn batch_not_open(batch_id: &str, status: Option<IngestionStatus>) -> Error {
    Error::Conflict(format!(
        "batch {batch_id:?} is not being ingested (status {}); another process may have finished or failed it",
        status.map_or("missing", IngestionStatus::as_str)
    ))
}

#[cfg(test)]
mod tests;
