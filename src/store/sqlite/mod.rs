//! The embedded backend: the CineMatch schema in one SQLite file.
//!
//! [`SqliteStore`] implements [`Store`] by delegating to one module per
//! concern, each holding the SQL of its tables:
//!
//! - `maintenance`: migrations, table counts and sizes, reset, VACUUM;
//! - `dataset`: loading a dataset and reading ratings and movies;
//! - `search`: title and genre search through `movies_fts`;
//! - `ingestion`: the batch audit trail and `ratings_buffer`;
//! - `monitoring`: drift alerts and pipeline runs;
//! - `leases`: the named leases the pipeline lock is built on;
//! - `registry`: model runs, artifacts, champions and tuning trials;
//! - `changes`: the change log servers follow, idempotency keys, timeouts;
//! - `rows`: row-to-record conversions shared by the others.

mod backtests;
mod changes;
mod dataset;
mod ingestion;
mod leases;
mod maintenance;
mod monitoring;
mod registry;
mod rows;
mod search;

use rusqlite::Connection;

use super::{
    ArtifactBlob, Backend, BacktestRow, BufferSnapshot, DataChange, DriftAlert, IdempotentWrite,
    Ingestion, Lease, LeaseGrant, LoadSummary, ModelRun, MovieStats, NewDriftAlert, NewModelRun,
    PipelineRun, Promotion, RunCommit, SearchMatch, SplitStats, Store, TableCount, TableSize,
    TuningTrial,
};
use crate::progress::Progress;
use crate::types::{Movie, PipelineStatus, Rating, Split};
use crate::{Error, Result};

pub struct SqliteStore {
    conn: Connection,
    path: String,
    /// Who this store is in `cinematch_leases` (the ingestion leases, see
    /// [`Store::begin_ingestion`]).
    holder: String,
}

/// SQLite's "now" with milliseconds, in UTC like PostgreSQL's sessions here.
pub(super) const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";

impl SqliteStore {
    /// Opens (creating if needed) the database file. `:memory:` gives a
    /// private in-memory database.
    pub fn open(path: &str) -> Result<SqliteStore> {
        let conn = if path == ":memory:" {
            Connection::open_in_memory()?
        } else {
            if let Some(parent) = std::path::Path::new(path).parent() {
                if !parent.as_os_str().is_empty() && !parent.exists() {
                    return Err(Error::Config(format!(
                        "cannot create SQLite database {path}: directory {} does not exist",
                        parent.display()
                    )));
                }
            }
            Connection::open(path)
                .map_err(|e| Error::Config(format!("cannot open SQLite database {path}: {e}")))?
        };
        // WAL lets readers (the server) proceed while a writer loads; NORMAL
        // sync is durable across application crashes, which is what the
        // all-or-nothing guarantees need. The busy timeout makes concurrent
        // CineMatch processes wait for each other instead of failing.
        conn.busy_timeout(changes::DEFAULT_BUSY_TIMEOUT)?;
        if path != ":memory:" {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        Ok(SqliteStore {
            conn,
            path: path.to_string(),
            holder: crate::store::holder::Holder::this_process().to_string(),
        })
    }

    /// Direct access for backend-specific tests and maintenance.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn location(&self) -> String {
        format!("sqlite://{}", self.path)
    }

    fn migrate(&mut self) -> Result<Vec<&'static str>> {
        maintenance::migrate(self)
    }

    fn schema_version(&mut self) -> Result<Option<String>> {
        maintenance::schema_version(self)
    }

    fn table_counts(&mut self) -> Result<Vec<TableCount>> {
        maintenance::table_counts(self)
    }

    fn table_sizes(&mut self) -> Result<Vec<TableSize>> {
        maintenance::table_sizes(self)
    }

    fn load_dataset(
        &mut self,
        movies: &[Movie],
        ratings: &[Rating],
        splits: &[Split],
        replace: bool,
        progress: &dyn Progress,
    ) -> Result<LoadSummary> {
        dataset::load_dataset(self, movies, ratings, splits, replace, progress)
    }

    fn split_stats(&mut self) -> Result<Vec<SplitStats>> {
        dataset::split_stats(self)
    }

    fn ratings(&mut self, split: Split) -> Result<Vec<Rating>> {
        dataset::ratings(self, split)
    }

    fn movies(&mut self) -> Result<Vec<Movie>> {
        dataset::movies(self)
    }

    fn buffer_ratings(&mut self, batch_id: Option<&str>) -> Result<Vec<Rating>> {
        dataset::buffer_ratings(self, batch_id)
    }

    fn buffer_snapshot(&mut self) -> Result<BufferSnapshot> {
        ingestion::buffer_snapshot(self)
    }

    fn movies_by_id(&mut self, ids: &[i32]) -> Result<Vec<Movie>> {
        dataset::movies_by_id(self, ids)
    }

    fn user_ratings(&mut self, user_id: i32) -> Result<Vec<Rating>> {
        dataset::user_ratings(self, user_id)
    }

    fn movie_stats(&mut self) -> Result<Vec<MovieStats>> {
        dataset::movie_stats(self)
    }

    fn movie_counts(
        &mut self,
        latest: Option<u64>,
        min_stars: Option<f32>,
        without_batch: Option<&str>,
    ) -> Result<Vec<(i32, i64)>> {
        dataset::movie_counts(self, latest, min_stars, without_batch)
    }

    fn movie_ids(&mut self) -> Result<std::collections::HashSet<i32>> {
        dataset::movie_ids(self)
    }

    fn search_matches(&mut self, query: &str, genre: Option<&str>) -> Result<Vec<SearchMatch>> {
        search::search_matches(self, query, genre)
    }

    fn begin_ingestion(&mut self, batch_id: &str) -> Result<()> {
        ingestion::begin_ingestion(self, batch_id)
    }

    fn complete_ingestion(
        &mut self,
        batch_id: &str,
        ratings: &[Rating],
        notes: &str,
    ) -> Result<u64> {
        ingestion::complete_ingestion(self, batch_id, ratings, notes)
    }

    fn append_to_batch(&mut self, batch_id: &str, ratings: &[Rating]) -> Result<u64> {
        Ok(ingestion::append_to_batch(self, batch_id, ratings, None)?.0)
    }

    fn append_to_batch_once(
        &mut self,
        batch_id: &str,
        ratings: &[Rating],
        write: &IdempotentWrite,
    ) -> Result<Option<IdempotentWrite>> {
        Ok(ingestion::append_to_batch(self, batch_id, ratings, Some(write))?.1)
    }

    fn fail_ingestion(&mut self, batch_id: &str, reason: &str) -> Result<()> {
        ingestion::fail_ingestion(self, batch_id, reason)
    }

    fn ingestions(&mut self) -> Result<Vec<Ingestion>> {
        ingestion::ingestions(self)
    }

    fn buffer_counts(&mut self) -> Result<Vec<(Option<String>, i64)>> {
        ingestion::buffer_counts(self)
    }

    fn merge_buffer(&mut self) -> Result<u64> {
        ingestion::merge_buffer(self)
    }

    fn clear_batch(&mut self, batch_id: &str) -> Result<u64> {
        ingestion::clear_batch(self, batch_id)
    }

    fn insert_backtest(&mut self, row: &BacktestRow) -> Result<i64> {
        backtests::insert_backtest(self, row)
    }

    fn backtests(&mut self, limit: usize) -> Result<Vec<BacktestRow>> {
        backtests::backtests(self, limit)
    }

    fn insert_drift_alerts(&mut self, alerts: &[NewDriftAlert]) -> Result<()> {
        monitoring::insert_drift_alerts(self, alerts)
    }

    fn drift_alerts(&mut self, within_secs: Option<i64>) -> Result<Vec<DriftAlert>> {
        monitoring::drift_alerts(self, within_secs)
    }

    fn archive_drift_alerts(&mut self, older_than_secs: i64) -> Result<u64> {
        monitoring::archive_drift_alerts(self, older_than_secs)
    }

    fn start_pipeline_run(&mut self, batch_id: Option<&str>) -> Result<i64> {
        monitoring::start_pipeline_run(self, batch_id)
    }

    fn finish_pipeline_run(
        &mut self,
        id: i64,
        status: PipelineStatus,
        steps: &str,
        summary: &str,
    ) -> Result<()> {
        monitoring::finish_pipeline_run(self, id, status, steps, summary)
    }

    fn pipeline_runs(&mut self) -> Result<Vec<PipelineRun>> {
        monitoring::pipeline_runs(self)
    }

    fn reset(&mut self) -> Result<()> {
        maintenance::reset(self)
    }

    fn data_version(&mut self) -> Result<i64> {
        changes::data_version(self)
    }

    fn dataset_version(&mut self) -> Result<i64> {
        changes::dataset_version(self)
    }

    fn data_changes(&mut self, after: i64) -> Result<Vec<DataChange>> {
        changes::data_changes(self, after)
    }

    fn appended_ratings(&mut self, after: i64, upto: i64) -> Result<Vec<Rating>> {
        changes::appended_ratings(self, after, upto)
    }

    fn set_statement_timeout(&mut self, limit: Option<std::time::Duration>) -> Result<()> {
        changes::set_statement_timeout(self, limit)
    }

    fn vacuum(&mut self) -> Result<()> {
        maintenance::vacuum(self)
    }

    fn acquire_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        take_over: Option<&str>,
    ) -> Result<LeaseGrant> {
        leases::acquire_lease(self, name, holder, ttl, take_over)
    }

    fn renew_lease(&mut self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool> {
        leases::renew_lease(self, name, holder, ttl)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        leases::release_lease(self, name, holder)
    }

    fn lease(&mut self, name: &str) -> Result<Option<Lease>> {
        leases::lease(self, name)
    }

    fn reopen(&self) -> Result<Box<dyn Store>> {
        if self.path == ":memory:" {
            return Err(Error::Config(
                "a private in-memory SQLite database cannot be opened a second time".into(),
            ));
        }
        Ok(Box::new(SqliteStore::open(&self.path)?))
    }

    fn insert_model_run(
        &mut self,
        run: &NewModelRun,
        artifact: &ArtifactBlob,
        commit: &RunCommit,
    ) -> Result<(ModelRun, u64)> {
        registry::insert_model_run(self, run, artifact, commit)
    }

    fn model_runs(&mut self) -> Result<Vec<ModelRun>> {
        registry::model_runs(self)
    }

    fn insert_tuning_trial(&mut self, t: &TuningTrial) -> Result<()> {
        registry::insert_tuning_trial(self, t)
    }

    fn tuning_trials(&mut self, study: Option<&str>) -> Result<Vec<TuningTrial>> {
        registry::tuning_trials(self, study)
    }

    fn artifact(&mut self, model_version: &str) -> Result<Option<ArtifactBlob>> {
        registry::artifact(self, model_version)
    }

    fn promotions(&mut self) -> Result<Vec<Promotion>> {
        registry::promotions(self)
    }

    fn promote(&mut self, model_version: &str, reason: &str) -> Result<()> {
        registry::promote(self, model_version, reason)
    }

    fn promote_if_champion_is(
        &mut self,
        expected: Option<&str>,
        model_version: &str,
        reason: &str,
    ) -> Result<()> {
        registry::promote_if_champion_is(self, expected, model_version, reason)
    }

    fn rollback(&mut self) -> Result<(String, String)> {
        registry::rollback(self)
    }
}
