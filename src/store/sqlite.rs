//! The embedded backend: the CineMatch schema in one SQLite file.

use rusqlite::{params, Connection, Transaction};

use super::schema::{self, MIGRATIONS};
use super::{
    rollback_target, sample_std, ArtifactBlob, Backend, DriftAlert, Ingestion, Lease, LeaseGrant,
    LoadSummary, ModelEvaluation, ModelRun, MovieStats, NewDriftAlert, NewModelRun, PipelineRun,
    Promotion, RunCommit, SplitStats, Store, TableCount, TableSize, TuningTrial,
};
use crate::progress::Progress;
use crate::types::{Movie, Rating, Split};
use crate::{Error, Result};

/// Rows per progress tick; small enough for a smooth bar, large enough to be free.
const PROGRESS_CHUNK: usize = 50_000;

pub struct SqliteStore {
    conn: Connection,
    path: String,
    /// `<db>.ingest-lock`, locked shared while this store has a batch
    /// 'in_progress' (see [`Store::begin_ingestion`]).
    ingest_lock: Option<std::fs::File>,
}

/// SQLite's "now" with milliseconds, in UTC like PostgreSQL's sessions here.
const NOW: &str = "strftime('%Y-%m-%d %H:%M:%f', 'now')";

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
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        if path != ":memory:" {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "OFF")?;
        Ok(SqliteStore {
            conn,
            path: path.to_string(),
            ingest_lock: None,
        })
    }

    /// Direct access for backend-specific tests and maintenance.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// Locks `<db>.ingest-lock` shared for a batch about to go 'in_progress',
    /// after marking orphaned batches interrupted if the file could be locked
    /// exclusively (no process is ingesting). The lock dies with the process.
    fn claim_ingestion(&mut self) -> Result<()> {
        if self.ingest_lock.is_some() || self.path == ":memory:" {
            return Ok(());
        }
        let lock_path = format!("{}.ingest-lock", self.path);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        if file.try_lock().is_ok() {
            self.conn.execute(
                "UPDATE ingestion_metadata SET status = 'failed', record_count = NULL, notes = ?1
                  WHERE status = 'in_progress'",
                [super::INTERRUPTED_NOTE],
            )?;
        }
        // Replaces the exclusive lock, if taken, by a shared one.
        file.lock_shared().map_err(|e| Error::io(&lock_path, e))?;
        self.ingest_lock = Some(file);
        Ok(())
    }

    fn user_tables(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'movies_fts%'
             ORDER BY name",
        )?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(names)
    }
}

fn count(tx: &Transaction<'_>, table: &str) -> Result<i64> {
    Ok(tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn location(&self) -> String {
        format!("sqlite://{}", self.path)
    }

    fn migrate(&mut self) -> Result<Vec<&'static str>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(schema::VERSION_TABLE_SQLITE)?;
        let mut applied = Vec::new();
        for m in MIGRATIONS {
            let done: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM cinematch_schema WHERE version = ?1)",
                [m.version],
                |r| r.get(0),
            )?;
            if !done {
                tx.execute_batch(m.sqlite)?;
                tx.execute(
                    "INSERT INTO cinematch_schema (version, description) VALUES (?1, ?2)",
                    params![m.version, m.description],
                )?;
                applied.push(m.version);
            }
        }
        tx.commit()?;
        Ok(applied)
    }

    fn schema_version(&mut self) -> Result<Option<String>> {
        let exists: bool = self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='cinematch_schema')",
            [],
            |r| r.get(0),
        )?;
        if !exists {
            return Ok(None);
        }
        // Versions are "major.minor"; order numerically, not as text.
        let mut versions: Vec<String> = self
            .conn
            .prepare("SELECT version FROM cinematch_schema")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        versions.sort_by_key(|v| version_key(v));
        Ok(versions.pop())
    }

    fn table_counts(&mut self) -> Result<Vec<TableCount>> {
        let tables = ordered_tables(self.user_tables()?);
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            let rows: i64 =
                self.conn
                    .query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| r.get(0))?;
            out.push(TableCount { table: t, rows });
        }
        Ok(out)
    }

    fn table_sizes(&mut self) -> Result<Vec<TableSize>> {
        // dbstat reports bytes per b-tree (table or index); fold each index
        // into its table, as pg_total_relation_size does.
        let tables = self.user_tables()?;
        let mut stmt = self.conn.prepare(
            "SELECT m.tbl_name, SUM(s.pgsize)
               FROM dbstat s JOIN sqlite_master m ON m.name = s.name
              GROUP BY m.tbl_name",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out: Vec<TableSize> = tables
            .into_iter()
            .map(|t| {
                // FTS5 shadow tables belong to `movies`.
                let bytes = rows
                    .iter()
                    .filter(|(name, _)| {
                        *name == t || (t == "movies" && name.starts_with("movies_fts"))
                    })
                    .map(|(_, b)| *b)
                    .sum();
                TableSize { table: t, bytes }
            })
            .collect();
        out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.table.cmp(&b.table)));
        Ok(out)
    }

    fn load_dataset(
        &mut self,
        movies: &[Movie],
        ratings: &[Rating],
        splits: &[Split],
        replace: bool,
        progress: &dyn Progress,
    ) -> Result<LoadSummary> {
        assert_eq!(ratings.len(), splits.len(), "one split per rating");
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (have_ratings, have_movies) = (count(&tx, "ratings")?, count(&tx, "movies")?);
        if (have_ratings > 0 || have_movies > 0) && !replace {
            return Err(super::already_loaded(have_ratings, have_movies));
        }
        let replaced = have_ratings > 0 || have_movies > 0;
        if replaced {
            tx.execute("DELETE FROM ratings", [])?;
            tx.execute("DELETE FROM movies", [])?;
        }
        progress.stage("movies", Some(movies.len() as u64));
        {
            let mut stmt = tx.prepare(
                "INSERT INTO movies (movieId, title, genres, pca_features) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for m in movies {
                let pca = m
                    .pca_features
                    .as_ref()
                    .map(|v| serde_json::to_string(v).expect("f64 vectors serialize"));
                stmt.execute(params![m.movie_id, m.title, m.genres, pca])?;
            }
        }
        progress.finish();
        crate::failpoint::hit("load:after_movies");
        progress.stage("ratings", Some(ratings.len() as u64));
        let (mut train, mut test) = (0u64, 0u64);
        {
            let mut stmt = tx.prepare(
                "INSERT INTO ratings (userId, movieId, rating, timestamp, data_split)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (chunk_r, chunk_s) in ratings
                .chunks(PROGRESS_CHUNK)
                .zip(splits.chunks(PROGRESS_CHUNK))
            {
                for (r, s) in chunk_r.iter().zip(chunk_s) {
                    stmt.execute(params![
                        r.user_id,
                        r.movie_id,
                        r.rating as f64,
                        r.timestamp,
                        s.as_str()
                    ])?;
                    match s {
                        Split::Train => train += 1,
                        Split::Test => test += 1,
                    }
                }
                progress.advance(chunk_r.len() as u64);
                crate::failpoint::hit("load:mid_ratings");
            }
        }
        crate::failpoint::hit("load:after_copy_before_commit");
        tx.commit()?;
        progress.finish();
        Ok(LoadSummary {
            movies: movies.len() as u64,
            train,
            test,
            replaced,
        })
    }

    fn split_stats(&mut self) -> Result<Vec<SplitStats>> {
        let mut stmt = self.conn.prepare(
            "SELECT data_split, COUNT(*), AVG(rating), SUM(rating), SUM(rating * rating)
               FROM ratings GROUP BY data_split ORDER BY data_split DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                let n: i64 = r.get(1)?;
                Ok(SplitStats {
                    split: r.get(0)?,
                    records: n,
                    avg_rating: r.get(2)?,
                    std_rating: sample_std(n, r.get(3)?, r.get(4)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn ratings(&mut self, split: Split) -> Result<Vec<Rating>> {
        let mut stmt = self.conn.prepare(
            "SELECT userId, movieId, rating, timestamp FROM ratings
              WHERE data_split = ?1 ORDER BY timestamp",
        )?;
        let rows = stmt
            .query_map([split.as_str()], rating_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn movies(&mut self) -> Result<Vec<Movie>> {
        let mut stmt = self
            .conn
            .prepare("SELECT movieId, title, genres, pca_features FROM movies ORDER BY movieId")?;
        let rows = stmt
            .query_map([], movie_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn buffer_ratings(&mut self, batch_id: Option<&str>) -> Result<Vec<Rating>> {
        let mut stmt = self.conn.prepare(
            "SELECT userId, movieId, rating, timestamp FROM ratings_buffer
              WHERE ?1 IS NULL OR batch_id = ?1 ORDER BY timestamp",
        )?;
        let rows = stmt
            .query_map([batch_id], rating_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn movies_by_id(&mut self, ids: &[i32]) -> Result<Vec<Movie>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT movieId, title, genres, pca_features FROM movies WHERE movieId = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        let mut sorted = ids.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for id in sorted {
            if let Some(m) = stmt.query_map([id], movie_row)?.next() {
                out.push(m?);
            }
        }
        Ok(out)
    }

    fn user_ratings(&mut self, user_id: i32) -> Result<Vec<Rating>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT userId, movieId, rating, timestamp FROM ratings WHERE userId = ?1
             UNION ALL
             SELECT userId, movieId, rating, timestamp FROM ratings_buffer WHERE userId = ?1
             ORDER BY 4",
        )?;
        let rows = stmt
            .query_map([user_id], rating_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn movie_stats(&mut self) -> Result<Vec<MovieStats>> {
        let mut stmt = self.conn.prepare(
            "SELECT movieId, COUNT(*), AVG(rating) FROM ratings
              WHERE data_split = 'train' GROUP BY movieId ORDER BY movieId",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(MovieStats {
                    movie_id: r.get(0)?,
                    count: r.get(1)?,
                    mean: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn movie_ids(&mut self) -> Result<std::collections::HashSet<i32>> {
        let mut stmt = self.conn.prepare("SELECT movieId FROM movies")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, i32>(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    fn search_movies(
        &mut self,
        query: &str,
        genre: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Movie>> {
        let Some((words, genre)) = super::search_plan(query, genre, limit) else {
            return Ok(Vec::new());
        };
        // Every user value is a bound parameter. The FTS5 expressions are
        // built from `search_words`, runs of alphanumerics, each inside a
        // double-quoted FTS5 string, so nothing in them is FTS5 syntax.
        let mut terms: Vec<String> = words.iter().map(|w| format!("title : \"{w}\" *")).collect();
        let genre_words = genre.map(super::search_words).unwrap_or_default();
        if !genre_words.is_empty() {
            terms.push(format!("genres : \"{}\"", genre_words.join(" ")));
        }
        let mut params: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        let mut conds: Vec<String> = Vec::new();
        if !terms.is_empty() {
            params.push(Box::new(terms.join(" AND ")));
            conds.push(format!(
                "m.movieId IN (SELECT rowid FROM movies_fts WHERE movies_fts MATCH ?{})",
                params.len()
            ));
        }
        if let Some(g) = genre {
            // FTS5 matches genre words; this keeps exactly the genre asked
            // for ("Fi" must not find "Sci-Fi").
            params.push(Box::new(g.to_string()));
            conds.push(format!(
                "instr('|' || lower(COALESCE(m.genres, '')) || '|', '|' || lower(?{}) || '|') > 0",
                params.len()
            ));
        }
        let mut exact: Vec<String> = Vec::new();
        for w in &words {
            params.push(Box::new(format!("title : \"{w}\"")));
            exact.push(format!(
                "(m.movieId IN (SELECT rowid FROM movies_fts WHERE movies_fts MATCH ?{}))",
                params.len()
            ));
        }
        let by_words = if exact.is_empty() {
            String::new()
        } else {
            format!("{} DESC,", exact.join(" + "))
        };
        params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT m.movieId, m.title, m.genres, m.pca_features FROM movies m
              WHERE {}
              ORDER BY {by_words}
                       (SELECT COUNT(*) FROM ratings r
                         WHERE r.movieId = m.movieId AND r.data_split = 'train') DESC,
                       m.movieId
              LIMIT ?{}",
            conds.join(" AND "),
            params.len()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params.iter()), movie_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn begin_ingestion(&mut self, batch_id: &str) -> Result<()> {
        self.claim_ingestion()?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let status: Option<Option<String>> = tx
            .query_row(
                "SELECT status FROM ingestion_metadata WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        match status {
            Some(Some(s)) if s == "completed" => {
                return Err(Error::BatchCompleted {
                    batch_id: batch_id.to_string(),
                });
            }
            Some(_) => {
                // A failed or interrupted attempt: nothing of it is in the
                // buffer (batches land in one transaction), so retry afresh.
                tx.execute(
                    &format!(
                        "UPDATE ingestion_metadata SET status = 'in_progress', record_count = NULL,
                            ingestion_date = {NOW}, notes = 'retry after: ' || COALESCE(notes, status)
                          WHERE batch_id = ?1"
                    ),
                    [batch_id],
                )?;
            }
            None => {
                tx.execute(
                    &format!(
                        "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
                         VALUES (?1, {NOW}, 'in_progress', 'ingestion started')"
                    ),
                    [batch_id],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn complete_ingestion(
        &mut self,
        batch_id: &str,
        ratings: &[Rating],
        notes: &str,
    ) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM ingestion_metadata WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        if status.as_deref() != Some("in_progress") {
            return Err(super::batch_not_open(batch_id, status.as_deref()));
        }
        {
            let mut stmt = tx.prepare(&format!(
                "INSERT INTO ratings_buffer (userId, movieId, rating, timestamp, batch_id, ingested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
            ))?;
            for r in ratings {
                stmt.execute(params![
                    r.user_id,
                    r.movie_id,
                    r.rating as f64,
                    r.timestamp,
                    batch_id
                ])?;
            }
        }
        tx.execute(
            &format!(
                "UPDATE ingestion_metadata SET status = 'completed', record_count = ?2,
                    ingestion_date = {NOW}, notes = ?3 WHERE batch_id = ?1"
            ),
            params![batch_id, ratings.len() as i64, notes],
        )?;
        crate::failpoint::hit("ingest:after_rows_before_commit");
        tx.commit()?;
        self.ingest_lock = None;
        Ok(ratings.len() as u64)
    }

    fn append_to_batch(&mut self, batch_id: &str, ratings: &[Rating]) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            &format!(
                "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
                 VALUES (?1, {NOW}, 0, 'completed', 'ratings received through the API')
                 ON CONFLICT (batch_id) DO NOTHING"
            ),
            [batch_id],
        )?;
        {
            let mut stmt = tx.prepare(&format!(
                "INSERT INTO ratings_buffer (userId, movieId, rating, timestamp, batch_id, ingested_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
            ))?;
            for r in ratings {
                stmt.execute(params![
                    r.user_id,
                    r.movie_id,
                    r.rating as f64,
                    r.timestamp,
                    batch_id
                ])?;
            }
        }
        // A batch cleared earlier (`buffer clear`) is open again, counting
        // from zero; SET expressions all see the old row.
        tx.execute(
            &format!(
                "UPDATE ingestion_metadata SET
                    record_count = CASE WHEN status = 'cleared' THEN 0 ELSE COALESCE(record_count, 0) END + ?2,
                    notes = CASE WHEN status = 'cleared' THEN 'ratings received through the API (after a clear)' ELSE notes END,
                    status = CASE WHEN status = 'cleared' THEN 'completed' ELSE status END,
                    ingestion_date = {NOW}
                  WHERE batch_id = ?1"
            ),
            params![batch_id, ratings.len() as i64],
        )?;
        tx.commit()?;
        Ok(ratings.len() as u64)
    }

    fn fail_ingestion(&mut self, batch_id: &str, reason: &str) -> Result<()> {
        let failed = self.conn.execute(
            &format!(
                "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
                 VALUES (?1, {NOW}, 'failed', ?2)
                 ON CONFLICT (batch_id) DO UPDATE SET status = 'failed', notes = excluded.notes,
                    ingestion_date = excluded.ingestion_date, record_count = NULL
                 WHERE ingestion_metadata.status <> 'completed'"
            ),
            [batch_id, reason],
        );
        self.ingest_lock = None;
        failed?;
        Ok(())
    }

    fn ingestions(&mut self) -> Result<Vec<Ingestion>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, batch_id, ingestion_date, record_count, status, notes
               FROM ingestion_metadata ORDER BY ingestion_date DESC, id DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Ingestion {
                    id: r.get(0)?,
                    batch_id: r.get(1)?,
                    ingestion_date: r.get::<_, Option<String>>(2)?.map(|s| parse_ts(&s)),
                    record_count: r.get(3)?,
                    status: r.get(4)?,
                    notes: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn buffer_counts(&mut self) -> Result<Vec<(Option<String>, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT batch_id, COUNT(*) FROM ratings_buffer GROUP BY batch_id ORDER BY batch_id",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn merge_buffer(&mut self) -> Result<u64> {
        // One writer at a time in SQLite: between BEGIN IMMEDIATE and COMMIT
        // nobody can add to the buffer, so copy-then-delete moves exactly once.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let moved = merge_buffer_in(&tx)?;
        crate::failpoint::hit("merge:before_commit");
        tx.commit()?;
        Ok(moved)
    }

    fn clear_batch(&mut self, batch_id: &str) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let status: Option<Option<String>> = tx
            .query_row(
                "SELECT status FROM ingestion_metadata WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        if status.as_ref().and_then(|s| s.as_deref()) == Some("in_progress") {
            return Err(super::clear_while_ingesting(batch_id));
        }
        let n = tx.execute("DELETE FROM ratings_buffer WHERE batch_id = ?1", [batch_id])? as u64;
        if n == 0 {
            let status = status.flatten();
            return Err(super::nothing_to_clear(batch_id, status.as_deref()));
        }
        tx.execute(
            &format!(
                "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
                 VALUES (?1, {NOW}, ?2, 'cleared', ?3)
                 ON CONFLICT (batch_id) DO UPDATE SET status = 'cleared',
                    record_count = excluded.record_count, notes = excluded.notes,
                    ingestion_date = excluded.ingestion_date"
            ),
            params![batch_id, n as i64, super::cleared_note(n)],
        )?;
        tx.commit()?;
        Ok(n)
    }

    fn insert_drift_alerts(&mut self, alerts: &[NewDriftAlert]) -> Result<()> {
        let tx = self.conn.transaction()?;
        let now: String = tx.query_row(&format!("SELECT {NOW}"), [], |r| r.get(0))?;
        {
            let mut stmt = tx.prepare(
                "INSERT INTO drift_alerts (alert_date, feature_name, drift_score, threshold, alert_triggered, notes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for a in alerts {
                stmt.execute(params![
                    now,
                    a.feature_name,
                    a.drift_score,
                    a.threshold,
                    a.alert_triggered,
                    a.notes
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn drift_alerts(&mut self, within_secs: Option<i64>) -> Result<Vec<DriftAlert>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, alert_date, feature_name, drift_score, threshold, alert_triggered, notes
               FROM drift_alerts
              WHERE ?1 IS NULL OR alert_date > strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ?1 || ' seconds')
              ORDER BY alert_date DESC, id DESC",
        )?;
        let rows = stmt
            .query_map([within_secs], |r| {
                Ok(DriftAlert {
                    id: r.get(0)?,
                    alert_date: parse_ts(&r.get::<_, String>(1)?),
                    feature_name: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    drift_score: r.get(3)?,
                    threshold: r.get(4)?,
                    alert_triggered: r.get::<_, Option<bool>>(5)?.unwrap_or(false),
                    notes: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn archive_drift_alerts(&mut self, older_than_secs: i64) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS drift_alerts_archive AS SELECT * FROM drift_alerts WHERE 0",
        )?;
        let cutoff = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || ?1 || ' seconds')";
        let moved = tx.execute(
            &format!("INSERT INTO drift_alerts_archive SELECT * FROM drift_alerts WHERE alert_date < {cutoff}"),
            [older_than_secs],
        )?;
        let deleted = tx.execute(
            &format!("DELETE FROM drift_alerts WHERE alert_date < {cutoff}"),
            [older_than_secs],
        )?;
        debug_assert_eq!(moved, deleted);
        tx.commit()?;
        Ok(moved as u64)
    }

    fn start_pipeline_run(&mut self, batch_id: Option<&str>) -> Result<i64> {
        self.conn.execute(
            &format!("INSERT INTO pipeline_runs (started_at, status, batch_id) VALUES ({NOW}, 'running', ?1)"),
            [batch_id],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    fn finish_pipeline_run(
        &mut self,
        id: i64,
        status: &str,
        steps: &str,
        summary: &str,
    ) -> Result<()> {
        self.conn.execute(
            &format!(
                "UPDATE pipeline_runs SET finished_at = {NOW}, status = ?2, steps = ?3, summary = ?4 WHERE id = ?1"
            ),
            params![id, status, steps, summary],
        )?;
        Ok(())
    }

    fn pipeline_runs(&mut self) -> Result<Vec<PipelineRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, started_at, finished_at, status, batch_id, steps, summary
               FROM pipeline_runs ORDER BY id DESC",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PipelineRun {
                    id: r.get(0)?,
                    started_at: parse_ts(&r.get::<_, String>(1)?),
                    finished_at: r.get::<_, Option<String>>(2)?.map(|s| parse_ts(&s)),
                    status: r.get(3)?,
                    batch_id: r.get(4)?,
                    steps: r.get(5)?,
                    summary: r.get(6)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn reset(&mut self) -> Result<()> {
        let tables: Vec<String> = self
            .user_tables()?
            .into_iter()
            .filter(|t| t != "cinematch_schema")
            .collect();
        let tx = self.conn.transaction()?;
        for t in &tables {
            tx.execute(&format!("DELETE FROM \"{t}\""), [])?;
        }
        tx.execute_batch("DELETE FROM sqlite_sequence")?;
        tx.commit()?;
        Ok(())
    }

    fn vacuum(&mut self) -> Result<()> {
        // SQLite vacuums the whole file; ANALYZE the core tables as the spec asks.
        self.conn
            .execute_batch("VACUUM; ANALYZE ratings; ANALYZE ratings_buffer; ANALYZE movies;")?;
        Ok(())
    }

    fn acquire_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        take_over: Option<&str>,
    ) -> Result<LeaseGrant> {
        // IMMEDIATE: one writer at a time, so the check and the write are one step.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            &format!(
                "INSERT INTO cinematch_leases (name, holder, acquired_at, expires_at)
                 VALUES (?1, ?2, {NOW}, strftime('%Y-%m-%d %H:%M:%f', 'now', ?3))
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                    acquired_at = CASE WHEN cinematch_leases.holder = excluded.holder
                                       THEN cinematch_leases.acquired_at ELSE excluded.acquired_at END,
                    expires_at = excluded.expires_at
                  WHERE cinematch_leases.expires_at < {NOW}
                     OR cinematch_leases.holder = excluded.holder
                     OR cinematch_leases.holder = ?4"
            ),
            params![name, holder, ttl_modifier(ttl), take_over],
        )?;
        let held = if n == 1 { None } else { lease_in(&tx, name)? };
        tx.commit()?;
        Ok(match held {
            None => LeaseGrant::Acquired,
            Some(lease) => LeaseGrant::Held(lease),
        })
    }

    fn renew_lease(&mut self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE cinematch_leases SET expires_at = strftime('%Y-%m-%d %H:%M:%f', 'now', ?3)
              WHERE name = ?1 AND holder = ?2",
            params![name, holder, ttl_modifier(ttl)],
        )?;
        Ok(n == 1)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM cinematch_leases WHERE name = ?1 AND holder = ?2",
            [name, holder],
        )?;
        Ok(())
    }

    fn lease(&mut self, name: &str) -> Result<Option<Lease>> {
        let tx = self.conn.transaction()?;
        let lease = lease_in(&tx, name)?;
        tx.commit()?;
        Ok(lease)
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
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n: i64 = tx.query_row(
            "SELECT COALESCE(MAX(id), 0) + 1 FROM model_metrics",
            [],
            |r| r.get(0),
        )?;
        let version = format!("run_{}_v{n}", run.run_id);
        tx.execute(
            "INSERT INTO model_metrics (model_version, training_date, rmse, mae, precision_at_10, data_size, notes)
             VALUES (?1, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2, ?3, ?4, ?5, ?6)",
            params![version, run.rmse, run.mae, run.precision_at_10, run.data_size, run.notes],
        )?;
        let id = tx.last_insert_rowid();
        let e = &run.evaluation;
        tx.execute(
            "INSERT INTO model_evaluations (model_version, algorithm, ndcg_at_10, recall_at_10,
                 catalogue_precision_at_10, coverage, users_evaluated, users_eligible, test_ratings)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                version,
                e.algorithm,
                e.ndcg_at_10,
                e.recall_at_10,
                e.catalogue_precision_at_10,
                e.coverage,
                e.users_evaluated,
                e.users_eligible,
                e.test_ratings
            ],
        )?;
        tx.execute(
            "INSERT INTO model_artifacts (model_version, algorithm, format_version, size_bytes, checksum, artifact)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                version,
                artifact.algorithm,
                artifact.format_version,
                artifact.bytes.len() as i64,
                artifact.checksum as i64,
                artifact.bytes
            ],
        )?;
        let has_champion: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM model_champions WHERE rolled_back_at IS NULL)",
            [],
            |r| r.get(0),
        )?;
        if let (Some(_), Some(expected)) = (&commit.promote_reason, &commit.promote_if_champion_is)
        {
            super::expect_champion(expected.as_deref(), champion_in(&tx)?)?;
        }
        let reason = match (&commit.promote_reason, has_champion) {
            (Some(r), _) => Some(r.as_str()),
            (None, false) => Some("first model"),
            (None, true) => None,
        };
        if let Some(reason) = reason {
            tx.execute(
                "INSERT INTO model_champions (model_version, promoted_at, reason)
                 VALUES (?1, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2)",
                [&version, reason],
            )?;
        }
        crate::failpoint::hit("retrain:after_promote_before_merge");
        let merged = if commit.merge_buffer {
            let n = merge_buffer_in(&tx)?;
            crate::failpoint::hit("merge:before_commit");
            n
        } else {
            0
        };
        let row = tx.query_row(
            &format!("{MODEL_RUN_SELECT} WHERE m.id = ?1"),
            [id],
            model_run_row,
        )?;
        tx.commit()?;
        Ok((row, merged))
    }

    fn model_runs(&mut self) -> Result<Vec<ModelRun>> {
        let mut stmt = self.conn.prepare(&format!(
            "{MODEL_RUN_SELECT} ORDER BY m.training_date, m.id"
        ))?;
        let rows = stmt
            .query_map([], model_run_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn insert_tuning_trial(&mut self, t: &TuningTrial) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tuning_trials (study, trial, algorithm, params, objective, value,
                 validation_ratings, seconds)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                t.study,
                t.trial,
                t.algorithm,
                t.params,
                t.objective,
                t.value,
                t.validation_ratings,
                t.seconds
            ],
        )?;
        Ok(())
    }

    fn tuning_trials(&mut self, study: Option<&str>) -> Result<Vec<TuningTrial>> {
        let mut stmt = self.conn.prepare(
            "SELECT study, trial, algorithm, params, objective, value, validation_ratings, seconds
               FROM tuning_trials WHERE ?1 IS NULL OR study = ?1 ORDER BY id",
        )?;
        let rows = stmt
            .query_map([study], |r| {
                Ok(TuningTrial {
                    study: r.get(0)?,
                    trial: r.get(1)?,
                    algorithm: r.get(2)?,
                    params: r.get(3)?,
                    objective: r.get(4)?,
                    value: r.get(5)?,
                    validation_ratings: r.get(6)?,
                    seconds: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn artifact(&mut self, model_version: &str) -> Result<Option<ArtifactBlob>> {
        let mut stmt = self.conn.prepare(
            "SELECT algorithm, format_version, checksum, artifact FROM model_artifacts WHERE model_version = ?1",
        )?;
        let mut rows = stmt.query_map([model_version], |r| {
            Ok(ArtifactBlob {
                algorithm: r.get(0)?,
                format_version: r.get(1)?,
                checksum: r.get::<_, i64>(2)? as u32,
                bytes: r.get(3)?,
            })
        })?;
        Ok(rows.next().transpose()?)
    }

    fn promotions(&mut self) -> Result<Vec<Promotion>> {
        let mut stmt = self.conn.prepare(
            "SELECT model_version, promoted_at, reason, rolled_back_at IS NOT NULL
               FROM model_champions ORDER BY id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Promotion {
                    model_version: r.get(0)?,
                    promoted_at: parse_ts(&r.get::<_, String>(1)?),
                    reason: r.get(2)?,
                    rolled_back: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn promote(&mut self, model_version: &str, reason: &str) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM model_artifacts WHERE model_version = ?1)",
            [model_version],
            |r| r.get(0),
        )?;
        if !exists {
            return Err(Error::NotFound(format!(
                "no stored model {model_version:?}; `cinematch models list` shows the versions"
            )));
        }
        tx.execute(
            "INSERT INTO model_champions (model_version, promoted_at, reason)
             VALUES (?1, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2)",
            [model_version, reason],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn promote_if_champion_is(
        &mut self,
        expected: Option<&str>,
        model_version: &str,
        reason: &str,
    ) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        super::expect_champion(expected, champion_in(&tx)?)?;
        let n = tx.execute(
            "INSERT INTO model_champions (model_version, promoted_at, reason)
             SELECT model_version, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?2
               FROM model_artifacts WHERE model_version = ?1",
            [model_version, reason],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "no stored model {model_version:?}; `cinematch models list` shows the versions"
            )));
        }
        tx.commit()?;
        Ok(())
    }

    fn rollback(&mut self) -> Result<(String, String)> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let history = tx
            .prepare("SELECT id, model_version, rolled_back_at IS NOT NULL FROM model_champions ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let (keep, from, to) = rollback_target(&history)?;
        tx.execute(
            "UPDATE model_champions SET rolled_back_at = strftime('%Y-%m-%d %H:%M:%f', 'now')
              WHERE id > ?1 AND rolled_back_at IS NULL",
            [keep],
        )?;
        tx.commit()?;
        Ok((from, to))
    }
}

/// A `model_metrics` row with its `model_evaluations` row, if any.
const MODEL_RUN_SELECT: &str = "SELECT m.id, m.model_version, m.training_date, m.rmse, m.mae,
        m.precision_at_10, m.data_size, m.notes, e.algorithm, e.ndcg_at_10, e.recall_at_10,
        e.catalogue_precision_at_10, e.coverage, e.users_evaluated, e.users_eligible, e.test_ratings
   FROM model_metrics m LEFT JOIN model_evaluations e ON e.model_version = m.model_version";

/// The champion as `tx` sees it (the latest promotion not rolled back).
fn champion_in(tx: &Transaction<'_>) -> Result<Option<String>> {
    match tx.query_row(
        "SELECT model_version FROM model_champions
          WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 1",
        [],
        |r| r.get(0),
    ) {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// SQLite's date modifier for "`ttl` from now", to the millisecond.
fn ttl_modifier(ttl: std::time::Duration) -> String {
    format!("+{:.3} seconds", ttl.as_secs_f64())
}

fn lease_in(tx: &Transaction<'_>, name: &str) -> Result<Option<Lease>> {
    let row = tx.query_row(
        &format!(
            "SELECT name, holder, acquired_at, expires_at,
                    (julianday(expires_at) - julianday({NOW})) * 86400.0
               FROM cinematch_leases WHERE name = ?1"
        ),
        [name],
        |r| {
            Ok(Lease {
                name: r.get(0)?,
                holder: r.get(1)?,
                acquired_at: parse_ts(&r.get::<_, String>(2)?),
                expires_at: parse_ts(&r.get::<_, String>(3)?),
                remaining_secs: r.get(4)?,
            })
        },
    );
    match row {
        Ok(l) => Ok(Some(l)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn model_run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelRun> {
    let algorithm: Option<String> = r.get(8)?;
    let evaluation = match algorithm {
        Some(algorithm) => Some(ModelEvaluation {
            algorithm,
            ndcg_at_10: r.get(9)?,
            recall_at_10: r.get(10)?,
            catalogue_precision_at_10: r.get(11)?,
            coverage: r.get(12)?,
            users_evaluated: r.get(13)?,
            users_eligible: r.get(14)?,
            test_ratings: r.get(15)?,
        }),
        None => None,
    };
    Ok(ModelRun {
        id: r.get(0)?,
        model_version: r.get(1)?,
        training_date: parse_ts(&r.get::<_, String>(2)?),
        rmse: r.get(3)?,
        mae: r.get(4)?,
        precision_at_10: r.get(5)?,
        data_size: r.get(6)?,
        notes: r.get(7)?,
        evaluation,
    })
}

fn movie_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Movie> {
    let pca: Option<String> = r.get(3)?;
    Ok(Movie {
        movie_id: r.get(0)?,
        title: r.get(1)?,
        genres: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        pca_features: pca.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

fn rating_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Rating> {
    Ok(Rating {
        user_id: r.get(0)?,
        movie_id: r.get(1)?,
        rating: r.get::<_, f64>(2)? as f32,
        timestamp: r.get(3)?,
    })
}

/// Orders `major.minor` versions numerically ("1.10" after "1.9").
pub(crate) fn version_key(v: &str) -> (u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The spec's tables first, in the spec's order, then CineMatch's own.
pub(crate) fn ordered_tables(mut names: Vec<String>) -> Vec<String> {
    names.sort_by_key(|n| {
        (
            schema::SPEC_TABLES
                .iter()
                .position(|t| t == n)
                .unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    names
}

/// The spec's "option 2" merge inside an IMMEDIATE transaction: SQLite has
/// one writer at a time, so nothing can enter the buffer between the copy and
/// the delete and each rating moves exactly once.
fn merge_buffer_in(tx: &Transaction<'_>) -> Result<u64> {
    let moved = tx.execute(
        &format!(
            "INSERT INTO ratings (userId, movieId, rating, timestamp, data_split, loaded_at)
             SELECT userId, movieId, rating, timestamp, 'train', {NOW} FROM ratings_buffer"
        ),
        [],
    )?;
    crate::failpoint::hit("merge:after_insert_before_delete");
    let deleted = tx.execute("DELETE FROM ratings_buffer", [])?;
    if moved != deleted {
        return Err(Error::Conflict(format!(
            "buffer changed during the merge ({moved} copied, {deleted} deleted); nothing was merged"
        )));
    }
    Ok(moved as u64)
}

pub(crate) fn parse_ts(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_default()
}
