//! The production backend: the CineMatch schema on PostgreSQL 15 (or Neon).
//!
//! Bulk paths use binary `COPY` both ways; everything else is parameterized
//! SQL. Identifiers are unquoted as in the spec, so `userId` is `userid`.

use postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutIter};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{Json, Type};
use postgres::Client;

use super::schema::{self, ordered_tables, version_key, MIGRATIONS};

use super::{
    pgconn, rollback_target, ArtifactBlob, Backend, DriftAlert, Ingestion, Lease, LeaseGrant,
    LoadSummary, ModelEvaluation, ModelRun, MovieStats, NewDriftAlert, NewModelRun, PipelineRun,
    Promotion, RunCommit, SplitStats, Store, TableCount, TableSize, TuningTrial,
};
use crate::progress::Progress;
use crate::types::{Movie, Rating, Split};
use crate::Error;
use crate::Result;

const PROGRESS_CHUNK: usize = 50_000;

/// "Now" in UTC whatever the session's time zone: lease times must agree
/// across sessions, and behind a transaction-mode pooler the `SET TIME ZONE`
/// of `pgconn::connect` may not reach the server connection that runs a
/// statement.
const UTC_NOW: &str = "(clock_timestamp() AT TIME ZONE 'UTC')";

/// Serializes concurrent `migrate` calls from several processes.
const MIGRATION_LOCK: i64 = 0x6369_6e65_6d61_0001;
/// Held shared by every session with a batch 'in_progress' (see
/// [`Store::begin_ingestion`]); whoever can take it exclusively knows that no
/// ingestion is running anywhere.
const INGEST_LOCK: i64 = 0x6369_6e65_6d61_0003;

/// The spec's "option 2" merge as one statement: the rows deleted are exactly
/// the rows inserted, so a rating that arrives meanwhile is either moved or
/// stays buffered, never lost or doubled.
const MERGE_BUFFER: &str =
    "WITH moved AS (DELETE FROM ratings_buffer RETURNING userid, movieid, rating, timestamp)
     INSERT INTO ratings (userid, movieid, rating, timestamp, data_split, loaded_at)
     SELECT userid, movieid, rating, timestamp, 'train', NOW() FROM moved";

/// Counts appended ratings in a batch's audit row; a batch cleared earlier
/// (`buffer clear`) is open again, counting from zero. SET expressions all
/// see the old row, so `status` is tested before it changes.
const APPEND_AUDIT_PG: &str = "UPDATE ingestion_metadata SET
        record_count = CASE WHEN status = 'cleared' THEN 0 ELSE COALESCE(record_count, 0) END + $2,
        notes = CASE WHEN status = 'cleared' THEN 'ratings received through the API (after a clear)' ELSE notes END,
        status = CASE WHEN status = 'cleared' THEN 'completed' ELSE status END,
        ingestion_date = clock_timestamp()
      WHERE batch_id = $1";

/// Writes ratings into `ratings_buffer` by binary COPY inside `tx`.
fn copy_into_buffer(
    tx: &mut postgres::Transaction<'_>,
    batch_id: &str,
    ratings: &[Rating],
) -> Result<u64> {
    let now = chrono::Utc::now().naive_utc();
    let sink = tx.copy_in(
        "COPY ratings_buffer (userid, movieid, rating, timestamp, batch_id, ingested_at) \
         FROM STDIN (FORMAT binary)",
    )?;
    let mut w = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT4,
            Type::INT4,
            Type::FLOAT8,
            Type::INT8,
            Type::VARCHAR,
            Type::TIMESTAMP,
        ],
    );
    for r in ratings {
        let rating = r.rating as f64;
        w.write(&[
            &r.user_id,
            &r.movie_id,
            &rating,
            &r.timestamp,
            &batch_id,
            &now,
        ])?;
    }
    Ok(w.finish()?)
}

pub struct PgStore {
    client: Client,
    /// The URL as given (with its password), for [`Store::reopen`]; never shown.
    url: String,
    location: String,
    /// This session holds [`INGEST_LOCK`] shared.
    ingesting: bool,
}

impl PgStore {
    pub fn connect(url: &str) -> Result<PgStore> {
        let client = pgconn::connect(url)?;
        Ok(PgStore {
            client,
            url: url.to_string(),
            location: pgconn::redact(url),
            ingesting: false,
        })
    }

    /// Direct access for backend-specific tests and maintenance.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Takes [`INGEST_LOCK`] shared for a batch about to go 'in_progress',
    /// after marking orphaned batches interrupted if no session ingests.
    fn claim_ingestion(&mut self) -> Result<()> {
        if self.ingesting {
            return Ok(());
        }
        let mut tx = self.client.transaction()?;
        let alone: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&INGEST_LOCK])?
            .get(0);
        if alone {
            tx.execute(
                "UPDATE ingestion_metadata SET status = 'failed', record_count = NULL, notes = $1
                  WHERE status = 'in_progress'",
                &[&super::INTERRUPTED_NOTE],
            )?;
        }
        tx.commit()?;
        self.client
            .execute("SELECT pg_advisory_lock_shared($1)", &[&INGEST_LOCK])?;
        self.ingesting = true;
        Ok(())
    }

    fn release_ingestion(&mut self) {
        if std::mem::take(&mut self.ingesting) {
            let _ = self
                .client
                .execute("SELECT pg_advisory_unlock_shared($1)", &[&INGEST_LOCK]);
        }
    }

    fn user_tables(&mut self) -> Result<Vec<String>> {
        let rows = self.client.query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
            &[],
        )?;
        Ok(ordered_tables(rows.iter().map(|r| r.get(0)).collect()))
    }
}

impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn migrate(&mut self) -> Result<Vec<&'static str>> {
        // Up to date: no DDL at all, so roles without CREATE (ml_pipeline, analyst) can open it.
        if self
            .schema_version()?
            .is_some_and(|v| version_key(&v) >= version_key(schema::latest_version()))
        {
            return Ok(Vec::new());
        }
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(schema::VERSION_TABLE_PG)?;
        let mut applied = Vec::new();
        for m in MIGRATIONS {
            let done: bool = tx
                .query_one(
                    "SELECT EXISTS(SELECT 1 FROM cinematch_schema WHERE version = $1)",
                    &[&m.version],
                )?
                .get(0);
            if !done {
                tx.batch_execute(m.postgres)?;
                tx.execute(
                    "INSERT INTO cinematch_schema (version, description) VALUES ($1, $2)",
                    &[&m.version, &m.description],
                )?;
                applied.push(m.version);
            }
        }
        tx.commit()?;
        Ok(applied)
    }

    fn schema_version(&mut self) -> Result<Option<String>> {
        let exists: bool = self
            .client
            .query_one("SELECT to_regclass('cinematch_schema') IS NOT NULL", &[])?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let mut versions: Vec<String> = self
            .client
            .query("SELECT version::text FROM cinematch_schema", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        versions.sort_by_key(|v| version_key(v));
        Ok(versions.pop())
    }

    fn table_counts(&mut self) -> Result<Vec<TableCount>> {
        let tables = self.user_tables()?;
        let mut out = Vec::with_capacity(tables.len());
        for t in tables {
            // Table names come from the catalog, never from input; quote anyway.
            let rows: i64 = self
                .client
                .query_one(&format!("SELECT COUNT(*) FROM \"{t}\""), &[])?
                .get(0);
            out.push(TableCount { table: t, rows });
        }
        Ok(out)
    }

    fn table_sizes(&mut self) -> Result<Vec<TableSize>> {
        let rows = self.client.query(
            "SELECT tablename::text,
                    pg_total_relation_size(quote_ident(schemaname) || '.' || quote_ident(tablename))
               FROM pg_tables
              WHERE schemaname = current_schema()
              ORDER BY 2 DESC, 1",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| TableSize {
                table: r.get(0),
                bytes: r.get(1),
            })
            .collect())
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
        let mut tx = self.client.transaction()?;
        // Two loaders racing must not both see an empty table.
        tx.batch_execute("LOCK TABLE ratings, movies IN SHARE ROW EXCLUSIVE MODE")?;
        let have_ratings: i64 = tx.query_one("SELECT COUNT(*) FROM ratings", &[])?.get(0);
        let have_movies: i64 = tx.query_one("SELECT COUNT(*) FROM movies", &[])?.get(0);
        if (have_ratings > 0 || have_movies > 0) && !replace {
            return Err(super::already_loaded(have_ratings, have_movies));
        }
        let replaced = have_ratings > 0 || have_movies > 0;
        if replaced {
            // TRUNCATE is transactional in PostgreSQL: a failed load rolls it back.
            tx.batch_execute("TRUNCATE ratings, movies")?;
        }

        progress.stage("movies", Some(movies.len() as u64));
        {
            let sink = tx.copy_in(
                "COPY movies (movieid, title, genres, pca_features) FROM STDIN (FORMAT binary)",
            )?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[Type::INT4, Type::VARCHAR, Type::VARCHAR, Type::JSONB],
            );
            for m in movies {
                let pca = m.pca_features.as_ref().map(Json);
                w.write(&[&m.movie_id, &m.title, &m.genres, &pca])?;
            }
            w.finish()?;
        }
        progress.finish();
        crate::failpoint::hit("load:after_movies");

        progress.stage("ratings", Some(ratings.len() as u64));
        let (mut train, mut test) = (0u64, 0u64);
        {
            let sink = tx.copy_in(
                "COPY ratings (userid, movieid, rating, timestamp, data_split) \
                 FROM STDIN (FORMAT binary)",
            )?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[
                    Type::INT4,
                    Type::INT4,
                    Type::FLOAT8,
                    Type::INT8,
                    Type::VARCHAR,
                ],
            );
            for (chunk_r, chunk_s) in ratings
                .chunks(PROGRESS_CHUNK)
                .zip(splits.chunks(PROGRESS_CHUNK))
            {
                for (r, s) in chunk_r.iter().zip(chunk_s) {
                    let rating = r.rating as f64;
                    w.write(&[&r.user_id, &r.movie_id, &rating, &r.timestamp, &s.as_str()])?;
                    match s {
                        Split::Train => train += 1,
                        Split::Test => test += 1,
                    }
                }
                progress.advance(chunk_r.len() as u64);
                crate::failpoint::hit("load:mid_ratings");
            }
            w.finish()?;
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
        let rows = self.client.query(
            "SELECT data_split::text, COUNT(*), AVG(rating), COALESCE(STDDEV(rating), 0)
               FROM ratings GROUP BY data_split ORDER BY data_split DESC",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| SplitStats {
                split: r.get(0),
                records: r.get(1),
                avg_rating: r.get(2),
                std_rating: r.get(3),
            })
            .collect())
    }

    fn ratings(&mut self, split: Split) -> Result<Vec<Rating>> {
        // The split literal is one of two constants, never user input.
        let sql = format!(
            "COPY (SELECT userid, movieid, rating, timestamp FROM ratings
                    WHERE data_split = '{}' ORDER BY timestamp) TO STDOUT (FORMAT binary)",
            split.as_str()
        );
        let reader = self.client.copy_out(&sql)?;
        let mut rows =
            BinaryCopyOutIter::new(reader, &[Type::INT4, Type::INT4, Type::FLOAT8, Type::INT8]);
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(Rating {
                user_id: row.get(0),
                movie_id: row.get(1),
                rating: row.get::<f64>(2) as f32,
                timestamp: row.get(3),
            });
        }
        Ok(out)
    }

    fn movies(&mut self) -> Result<Vec<Movie>> {
        let rows = self.client.query(
            "SELECT movieid, title::text, genres::text, pca_features FROM movies ORDER BY movieid",
            &[],
        )?;
        Ok(rows.iter().map(movie_row).collect())
    }

    fn buffer_ratings(&mut self, batch_id: Option<&str>) -> Result<Vec<Rating>> {
        let rows = self.client.query(
            "SELECT userid, movieid, rating, timestamp FROM ratings_buffer
              WHERE $1::text IS NULL OR batch_id = $1 ORDER BY timestamp",
            &[&batch_id],
        )?;
        Ok(rows.iter().map(rating_row).collect())
    }

    fn movies_by_id(&mut self, ids: &[i32]) -> Result<Vec<Movie>> {
        let rows = self.client.query(
            "SELECT movieid, title::text, genres::text, pca_features FROM movies
              WHERE movieid = ANY($1) ORDER BY movieid",
            &[&ids],
        )?;
        Ok(rows.iter().map(movie_row).collect())
    }

    fn user_ratings(&mut self, user_id: i32) -> Result<Vec<Rating>> {
        let rows = self.client.query(
            "SELECT userid, movieid, rating, timestamp FROM ratings WHERE userid = $1
             UNION ALL
             SELECT userid, movieid, rating, timestamp FROM ratings_buffer WHERE userid = $1
             ORDER BY 4",
            &[&user_id],
        )?;
        Ok(rows.iter().map(rating_row).collect())
    }

    fn movie_stats(&mut self) -> Result<Vec<MovieStats>> {
        let rows = self.client.query(
            "SELECT movieid, COUNT(*), AVG(rating) FROM ratings
              WHERE data_split = 'train' GROUP BY movieid ORDER BY movieid",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| MovieStats {
                movie_id: r.get(0),
                count: r.get(1),
                mean: r.get(2),
            })
            .collect())
    }

    fn movie_ids(&mut self) -> Result<std::collections::HashSet<i32>> {
        Ok(self
            .client
            .query("SELECT movieid FROM movies", &[])?
            .iter()
            .map(|r| r.get(0))
            .collect())
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
        let (sql, params) = search_sql(&words, genre, limit);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p.as_ref()).collect();
        let rows = self.client.query(&sql, &refs)?;
        Ok(rows.iter().map(movie_row).collect())
    }

    fn begin_ingestion(&mut self, batch_id: &str) -> Result<()> {
        self.claim_ingestion()?;
        let mut tx = self.client.transaction()?;
        tx.execute(
            "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
             VALUES ($1, clock_timestamp(), 'in_progress', 'ingestion started')
             ON CONFLICT (batch_id) DO NOTHING",
            &[&batch_id],
        )?;
        let status: Option<String> = tx
            .query_one(
                "SELECT status::text FROM ingestion_metadata WHERE batch_id = $1 FOR UPDATE",
                &[&batch_id],
            )?
            .get(0);
        match status.as_deref() {
            Some("completed") => {
                return Err(Error::BatchCompleted {
                    batch_id: batch_id.to_string(),
                })
            }
            Some("in_progress") => {}
            _ => {
                tx.execute(
                    "UPDATE ingestion_metadata SET status = 'in_progress', record_count = NULL,
                        ingestion_date = clock_timestamp(),
                        notes = 'retry after: ' || COALESCE(notes, status)
                      WHERE batch_id = $1",
                    &[&batch_id],
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
        let mut tx = self.client.transaction()?;
        let status: Option<String> = tx
            .query_opt(
                "SELECT status::text FROM ingestion_metadata WHERE batch_id = $1 FOR UPDATE",
                &[&batch_id],
            )?
            .and_then(|r| r.get(0));
        if status.as_deref() != Some("in_progress") {
            return Err(super::batch_not_open(batch_id, status.as_deref()));
        }
        let n = copy_into_buffer(&mut tx, batch_id, ratings)?;
        tx.execute(
            "UPDATE ingestion_metadata SET status = 'completed', record_count = $2,
                ingestion_date = clock_timestamp(), notes = $3 WHERE batch_id = $1",
            &[&batch_id, &(n as i32), &notes],
        )?;
        crate::failpoint::hit("ingest:after_rows_before_commit");
        tx.commit()?;
        self.release_ingestion();
        Ok(n)
    }

    fn append_to_batch(&mut self, batch_id: &str, ratings: &[Rating]) -> Result<u64> {
        let mut tx = self.client.transaction()?;
        tx.execute(
            "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
             VALUES ($1, clock_timestamp(), 0, 'completed', 'ratings received through the API')
             ON CONFLICT (batch_id) DO NOTHING",
            &[&batch_id],
        )?;
        let n = copy_into_buffer(&mut tx, batch_id, ratings)?;
        tx.execute(APPEND_AUDIT_PG, &[&batch_id, &(n as i32)])?;
        tx.commit()?;
        Ok(n)
    }

    fn fail_ingestion(&mut self, batch_id: &str, reason: &str) -> Result<()> {
        let failed = self.client.execute(
            "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
             VALUES ($1, clock_timestamp(), 'failed', $2)
             ON CONFLICT (batch_id) DO UPDATE SET status = 'failed', notes = EXCLUDED.notes,
                ingestion_date = EXCLUDED.ingestion_date, record_count = NULL
              WHERE ingestion_metadata.status IS DISTINCT FROM 'completed'",
            &[&batch_id, &reason],
        );
        self.release_ingestion();
        failed?;
        Ok(())
    }

    fn ingestions(&mut self) -> Result<Vec<Ingestion>> {
        let rows = self.client.query(
            "SELECT id::int8, batch_id::text, ingestion_date, record_count::int8, status::text, notes
               FROM ingestion_metadata ORDER BY ingestion_date DESC NULLS LAST, id DESC",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| Ingestion {
                id: r.get(0),
                batch_id: r.get(1),
                ingestion_date: r.get(2),
                record_count: r.get(3),
                status: r.get(4),
                notes: r.get(5),
            })
            .collect())
    }

    fn buffer_counts(&mut self) -> Result<Vec<(Option<String>, i64)>> {
        Ok(self
            .client
            .query(
                "SELECT batch_id::text, COUNT(*) FROM ratings_buffer GROUP BY batch_id ORDER BY batch_id",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn merge_buffer(&mut self) -> Result<u64> {
        // One statement: the rows deleted are exactly the rows inserted, so a
        // rating that arrives meanwhile is either moved or stays buffered.
        let mut tx = self.client.transaction()?;
        let n = tx.execute(MERGE_BUFFER, &[])?;
        crate::failpoint::hit("merge:before_commit");
        tx.commit()?;
        Ok(n)
    }

    fn clear_batch(&mut self, batch_id: &str) -> Result<u64> {
        let mut tx = self.client.transaction()?;
        let status: Option<Option<String>> = tx
            .query_opt(
                "SELECT status::text FROM ingestion_metadata WHERE batch_id = $1 FOR UPDATE",
                &[&batch_id],
            )?
            .map(|r| r.get(0));
        if status.as_ref().and_then(|s| s.as_deref()) == Some("in_progress") {
            return Err(super::clear_while_ingesting(batch_id));
        }
        let n = tx.execute(
            "DELETE FROM ratings_buffer WHERE batch_id = $1",
            &[&batch_id],
        )?;
        if n == 0 {
            let status = status.flatten();
            return Err(super::nothing_to_clear(batch_id, status.as_deref()));
        }
        tx.execute(
            "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
             VALUES ($1, clock_timestamp(), $2, 'cleared', $3)
             ON CONFLICT (batch_id) DO UPDATE SET status = 'cleared',
                record_count = EXCLUDED.record_count, notes = EXCLUDED.notes,
                ingestion_date = EXCLUDED.ingestion_date",
            &[&batch_id, &(n as i32), &super::cleared_note(n)],
        )?;
        tx.commit()?;
        Ok(n)
    }

    fn insert_drift_alerts(&mut self, alerts: &[NewDriftAlert]) -> Result<()> {
        let mut tx = self.client.transaction()?;
        let stmt = tx.prepare(
            "INSERT INTO drift_alerts (alert_date, feature_name, drift_score, threshold, alert_triggered, notes)
             VALUES (NOW(), $1, $2, $3, $4, $5)",
        )?;
        for a in alerts {
            tx.execute(
                &stmt,
                &[
                    &a.feature_name,
                    &a.drift_score,
                    &a.threshold,
                    &a.alert_triggered,
                    &a.notes,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn drift_alerts(&mut self, within_secs: Option<i64>) -> Result<Vec<DriftAlert>> {
        let rows = self.client.query(
            "SELECT id::int8, alert_date, feature_name::text, drift_score, threshold, alert_triggered, notes
               FROM drift_alerts
              WHERE $1::int8 IS NULL OR alert_date > NOW() - make_interval(secs => $1::int8)
              ORDER BY alert_date DESC, id DESC",
            &[&within_secs],
        )?;
        Ok(rows
            .iter()
            .map(|r| DriftAlert {
                id: r.get(0),
                alert_date: r.get(1),
                feature_name: r.get::<_, Option<String>>(2).unwrap_or_default(),
                drift_score: r.get(3),
                threshold: r.get(4),
                alert_triggered: r.get::<_, Option<bool>>(5).unwrap_or(false),
                notes: r.get(6),
            })
            .collect())
    }

    fn archive_drift_alerts(&mut self, older_than_secs: i64) -> Result<u64> {
        let mut tx = self.client.transaction()?;
        tx.batch_execute(
            // Only when missing: even IF NOT EXISTS needs CREATE on the schema, which ml_pipeline lacks.
            "DO $$ BEGIN IF to_regclass('drift_alerts_archive') IS NULL THEN CREATE TABLE drift_alerts_archive (LIKE drift_alerts INCLUDING DEFAULTS); END IF; END $$",
        )?;
        let n = tx.execute(
            "WITH moved AS (
                DELETE FROM drift_alerts WHERE alert_date < NOW() - make_interval(secs => $1::int8)
                RETURNING *)
             INSERT INTO drift_alerts_archive SELECT * FROM moved",
            &[&older_than_secs],
        )?;
        tx.commit()?;
        Ok(n)
    }

    fn start_pipeline_run(&mut self, batch_id: Option<&str>) -> Result<i64> {
        Ok(self
            .client
            .query_one(
                "INSERT INTO pipeline_runs (started_at, status, batch_id)
                 VALUES (clock_timestamp(), 'running', $1) RETURNING id::int8",
                &[&batch_id],
            )?
            .get(0))
    }

    fn finish_pipeline_run(
        &mut self,
        id: i64,
        status: &str,
        steps: &str,
        summary: &str,
    ) -> Result<()> {
        self.client.execute(
            "UPDATE pipeline_runs SET finished_at = clock_timestamp(), status = $2, steps = $3, summary = $4
              WHERE id = $1::int8",
            &[&id, &status, &steps, &summary],
        )?;
        Ok(())
    }

    fn pipeline_runs(&mut self) -> Result<Vec<PipelineRun>> {
        let rows = self.client.query(
            "SELECT id::int8, started_at, finished_at, status::text, batch_id::text, steps, summary
               FROM pipeline_runs ORDER BY id DESC",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| PipelineRun {
                id: r.get(0),
                started_at: r.get(1),
                finished_at: r.get(2),
                status: r.get(3),
                batch_id: r.get(4),
                steps: r.get(5),
                summary: r.get(6),
            })
            .collect())
    }

    fn reset(&mut self) -> Result<()> {
        let tables: Vec<String> = self
            .user_tables()?
            .into_iter()
            .filter(|t| t != "cinematch_schema")
            .map(|t| format!("\"{t}\""))
            .collect();
        self.client
            .batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", tables.join(", ")))?;
        Ok(())
    }

    fn vacuum(&mut self) -> Result<()> {
        // VACUUM cannot run inside a transaction block; each is its own statement.
        for t in ["ratings", "ratings_buffer", "movies"] {
            self.client.batch_execute(&format!("VACUUM ANALYZE {t}"))?;
        }
        Ok(())
    }

    fn acquire_lease(
        &mut self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
        take_over: Option<&str>,
    ) -> Result<LeaseGrant> {
        // One statement, one implicit transaction: the row lock of ON
        // CONFLICT makes concurrent takers queue, and only one can see the
        // lease free or expired.
        for _ in 0..3 {
            let n = self.client.execute(
                &format!("INSERT INTO cinematch_leases (name, holder, acquired_at, expires_at)
                 VALUES ($1, $2, {UTC_NOW}, {UTC_NOW} + make_interval(secs => $3))
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,
                    acquired_at = CASE WHEN cinematch_leases.holder = EXCLUDED.holder
                                       THEN cinematch_leases.acquired_at ELSE EXCLUDED.acquired_at END,
                    expires_at = EXCLUDED.expires_at
                  WHERE cinematch_leases.expires_at < {UTC_NOW}
                     OR cinematch_leases.holder = EXCLUDED.holder
                     OR cinematch_leases.holder = $4"),
                &[&name, &holder, &ttl.as_secs_f64(), &take_over],
            )?;
            if n == 1 {
                return Ok(LeaseGrant::Acquired);
            }
            if let Some(lease) = self.lease(name)? {
                return Ok(LeaseGrant::Held(lease));
            }
            // Released in between: try again.
        }
        Err(Error::Busy(format!(
            "the lease {name:?} changed hands repeatedly while taking it; try again"
        )))
    }

    fn renew_lease(&mut self, name: &str, holder: &str, ttl: std::time::Duration) -> Result<bool> {
        let n = self.client.execute(
            &format!(
                "UPDATE cinematch_leases SET expires_at = {UTC_NOW} + make_interval(secs => $3)
                  WHERE name = $1 AND holder = $2"
            ),
            &[&name, &holder, &ttl.as_secs_f64()],
        )?;
        Ok(n == 1)
    }

    fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        self.client.execute(
            "DELETE FROM cinematch_leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )?;
        Ok(())
    }

    fn lease(&mut self, name: &str) -> Result<Option<Lease>> {
        let row = self.client.query_opt(
            &format!(
                "SELECT name::text, holder, acquired_at, expires_at,
                    EXTRACT(EPOCH FROM (expires_at - {UTC_NOW}))::float8
               FROM cinematch_leases WHERE name = $1"
            ),
            &[&name],
        )?;
        Ok(row.map(|r| Lease {
            name: r.get(0),
            holder: r.get(1),
            acquired_at: r.get(2),
            expires_at: r.get(3),
            remaining_secs: r.get(4),
        }))
    }

    fn reopen(&self) -> Result<Box<dyn Store>> {
        Ok(Box::new(PgStore::connect(&self.url)?))
    }

    fn insert_model_run(
        &mut self,
        run: &NewModelRun,
        artifact: &ArtifactBlob,
        commit: &RunCommit,
    ) -> Result<(ModelRun, u64)> {
        let mut tx = self.client.transaction()?;
        // Serializes version numbering across concurrent trainers.
        tx.batch_execute("LOCK TABLE model_metrics IN SHARE ROW EXCLUSIVE MODE")?;
        if commit.promote_if_champion_is.is_some() {
            // No promotion or rollback between the check and the insert.
            tx.batch_execute("LOCK TABLE model_champions IN SHARE ROW EXCLUSIVE MODE")?;
        }
        let n: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(id), 0)::int + 1 FROM model_metrics",
                &[],
            )?
            .get(0);
        let version = format!("run_{}_v{n}", run.run_id);
        let data_size = i32::try_from(run.data_size).unwrap_or(i32::MAX);
        let id: i64 = tx
            .query_one(
                "INSERT INTO model_metrics (model_version, training_date, rmse, mae, precision_at_10, data_size, notes)
                 VALUES ($1, clock_timestamp(), $2, $3, $4, $5, $6)
                 RETURNING id::int8",
                &[&version, &run.rmse, &run.mae, &run.precision_at_10, &data_size, &run.notes],
            )?
            .get(0);
        let e = &run.evaluation;
        let int = |x: Option<i64>| x.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
        tx.execute(
            "INSERT INTO model_evaluations (model_version, algorithm, ndcg_at_10, recall_at_10,
                 catalogue_precision_at_10, coverage, users_evaluated, users_eligible, test_ratings)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &version,
                &e.algorithm,
                &e.ndcg_at_10,
                &e.recall_at_10,
                &e.catalogue_precision_at_10,
                &e.coverage,
                &int(e.users_evaluated),
                &int(e.users_eligible),
                &int(e.test_ratings),
            ],
        )?;
        tx.execute(
            "INSERT INTO model_artifacts (model_version, algorithm, format_version, size_bytes, checksum, artifact)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &version,
                &artifact.algorithm,
                &artifact.format_version,
                &(artifact.bytes.len() as i64),
                &(artifact.checksum as i64),
                &artifact.bytes,
            ],
        )?;
        if let (Some(_), Some(expected)) = (&commit.promote_reason, &commit.promote_if_champion_is)
        {
            super::expect_champion(expected.as_deref(), champion_in(&mut tx)?)?;
        }
        match &commit.promote_reason {
            Some(reason) => tx.execute(
                "INSERT INTO model_champions (model_version, promoted_at, reason)
                 VALUES ($1, clock_timestamp(), $2)",
                &[&version, reason],
            )?,
            None => tx.execute(
                "INSERT INTO model_champions (model_version, promoted_at, reason)
                 SELECT $1, clock_timestamp(), 'first model'
                  WHERE NOT EXISTS (SELECT 1 FROM model_champions WHERE rolled_back_at IS NULL)",
                &[&version],
            )?,
        };
        crate::failpoint::hit("retrain:after_promote_before_merge");
        let merged = if commit.merge_buffer {
            let n = tx.execute(MERGE_BUFFER, &[])?;
            crate::failpoint::hit("merge:before_commit");
            n
        } else {
            0
        };
        let row = tx.query_one(&format!("{MODEL_RUN_SELECT} WHERE m.id = $1::int8"), &[&id])?;
        tx.commit()?;
        Ok((model_run_row(&row), merged))
    }

    fn model_runs(&mut self) -> Result<Vec<ModelRun>> {
        let rows = self.client.query(
            &format!("{MODEL_RUN_SELECT} ORDER BY m.training_date, m.id"),
            &[],
        )?;
        Ok(rows.iter().map(model_run_row).collect())
    }

    fn insert_tuning_trial(&mut self, t: &TuningTrial) -> Result<()> {
        let int = |x: i64| i32::try_from(x).unwrap_or(i32::MAX);
        self.client.execute(
            "INSERT INTO tuning_trials (study, trial, algorithm, params, objective, value,
                 validation_ratings, seconds)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &t.study,
                &int(t.trial),
                &t.algorithm,
                &t.params,
                &t.objective,
                &t.value,
                &int(t.validation_ratings),
                &t.seconds,
            ],
        )?;
        Ok(())
    }

    fn tuning_trials(&mut self, study: Option<&str>) -> Result<Vec<TuningTrial>> {
        let rows = self.client.query(
            "SELECT study::text, trial::int8, algorithm::text, params, objective::text, value,
                    validation_ratings::int8, seconds
               FROM tuning_trials WHERE $1::text IS NULL OR study = $1 ORDER BY id",
            &[&study],
        )?;
        Ok(rows
            .iter()
            .map(|r| TuningTrial {
                study: r.get(0),
                trial: r.get(1),
                algorithm: r.get(2),
                params: r.get(3),
                objective: r.get(4),
                value: r.get(5),
                validation_ratings: r.get(6),
                seconds: r.get(7),
            })
            .collect())
    }

    fn artifact(&mut self, model_version: &str) -> Result<Option<ArtifactBlob>> {
        let row = self.client.query_opt(
            "SELECT algorithm::text, format_version, checksum, artifact FROM model_artifacts
              WHERE model_version = $1",
            &[&model_version],
        )?;
        Ok(row.map(|r| ArtifactBlob {
            algorithm: r.get(0),
            format_version: r.get(1),
            checksum: r.get::<_, i64>(2) as u32,
            bytes: r.get(3),
        }))
    }

    fn promotions(&mut self) -> Result<Vec<Promotion>> {
        let rows = self.client.query(
            "SELECT model_version::text, promoted_at, reason, rolled_back_at IS NOT NULL
               FROM model_champions ORDER BY id",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| Promotion {
                model_version: r.get(0),
                promoted_at: r.get(1),
                reason: r.get(2),
                rolled_back: r.get(3),
            })
            .collect())
    }

    fn promote(&mut self, model_version: &str, reason: &str) -> Result<()> {
        let n = self.client.execute(
            "INSERT INTO model_champions (model_version, promoted_at, reason)
             SELECT model_version, clock_timestamp(), $2 FROM model_artifacts WHERE model_version = $1",
            &[&model_version, &reason],
        )?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "no stored model {model_version:?}; `cinematch models list` shows the versions"
            )));
        }
        Ok(())
    }

    fn promote_if_champion_is(
        &mut self,
        expected: Option<&str>,
        model_version: &str,
        reason: &str,
    ) -> Result<()> {
        let mut tx = self.client.transaction()?;
        tx.batch_execute("LOCK TABLE model_champions IN SHARE ROW EXCLUSIVE MODE")?;
        super::expect_champion(expected, champion_in(&mut tx)?)?;
        let n = tx.execute(
            "INSERT INTO model_champions (model_version, promoted_at, reason)
             SELECT model_version, clock_timestamp(), $2 FROM model_artifacts WHERE model_version = $1",
            &[&model_version, &reason],
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
        let mut tx = self.client.transaction()?;
        tx.batch_execute("LOCK TABLE model_champions IN SHARE ROW EXCLUSIVE MODE")?;
        let history: Vec<(i64, String, bool)> = tx
            .query(
                "SELECT id::int8, model_version::text, rolled_back_at IS NOT NULL
                   FROM model_champions ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let (keep, from, to) = rollback_target(&history)?;
        tx.execute(
            "UPDATE model_champions SET rolled_back_at = clock_timestamp()
              WHERE id > $1::int8 AND rolled_back_at IS NULL",
            &[&keep],
        )?;
        tx.commit()?;
        Ok((from, to))
    }
}

/// The champion as `tx` sees it (the latest promotion not rolled back).
fn champion_in(tx: &mut postgres::Transaction<'_>) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT model_version::text FROM model_champions
              WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 1",
            &[],
        )?
        .map(|r| r.get(0)))
}

/// The title side of search: ASCII punctuation to spaces, then the `simple`
/// configuration. Exactly the expression of schema 1.4's
/// `idx_movies_title_fts`, so the planner can use that index.
pub const TITLE_TSVECTOR: &str = r##"to_tsvector('simple', translate(m.title, '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                '))"##;

/// A parameter of [`search_sql`]'s statement.
pub type SearchParam = Box<dyn postgres::types::ToSql + Sync>;

/// The search statement for `words` (from [`super::search_words`]), an
/// optional genre and a limit, with its parameters in order: the prefix
/// tsquery of every word (`'toy':* & 'story':*`), the genre, one exact
/// tsquery per word, the limit. Public so the schema tests can EXPLAIN
/// exactly what the store runs.
///
/// Titles use [`TITLE_TSVECTOR`]: punctuation as spaces and the `simple`
/// configuration (lower-casing, no stemming or stop words, so "the" and
/// "stories" mean what they say), which splits titles into the words FTS5
/// sees on SQLite, through `idx_movies_title_fts` (schema 1.4). Genres use the spec's own
/// GIN expression, `to_tsvector('english', genres)`, so the planner can use
/// `idx_movies_genres`; an exact check on the `|`-separated list then keeps
/// exactly the genre asked for. The words are runs of alphanumerics, quoted
/// as tsquery lexemes, so no tsquery operator can come from the input, and
/// every value is a bound parameter.
#[doc(hidden)]
pub fn search_sql(
    words: &[String],
    genre: Option<&str>,
    limit: usize,
) -> (String, Vec<SearchParam>) {
    let mut params: Vec<SearchParam> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    if !words.is_empty() {
        let prefix = words
            .iter()
            .map(|w| format!("'{w}':*"))
            .collect::<Vec<_>>()
            .join(" & ");
        params.push(Box::new(prefix));
        conds.push(format!(
            "{TITLE_TSVECTOR} @@ to_tsquery('simple', ${}::text)",
            params.len()
        ));
    }
    if let Some(g) = genre {
        params.push(Box::new(g.to_string()));
        let n = params.len();
        conds.push(format!(
            "to_tsvector('english', m.genres) @@ plainto_tsquery('english', ${n}::text)
               AND position(lower('|' || ${n}::text || '|') IN lower('|' || COALESCE(m.genres, '') || '|')) > 0"
        ));
    }
    let mut rank: Vec<String> = Vec::new();
    for w in words {
        params.push(Box::new(format!("'{w}'")));
        rank.push(format!(
            "({TITLE_TSVECTOR} @@ to_tsquery('simple', ${}::text))::int",
            params.len()
        ));
    }
    let by_words = if rank.is_empty() {
        String::new()
    } else {
        format!("{} DESC,", rank.join(" + "))
    };
    params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT m.movieid, m.title::text, m.genres::text, m.pca_features FROM movies m
          WHERE {}
          ORDER BY {by_words}
                   (SELECT count(*) FROM ratings r
                     WHERE r.movieid = m.movieid AND r.data_split = 'train') DESC,
                   m.movieid
          LIMIT ${}::int8",
        if conds.is_empty() {
            "TRUE".to_string()
        } else {
            conds.join(" AND ")
        },
        params.len()
    );
    (sql, params)
}

fn rating_row(r: &postgres::Row) -> Rating {
    Rating {
        user_id: r.get(0),
        movie_id: r.get(1),
        rating: r.get::<_, f64>(2) as f32,
        timestamp: r.get(3),
    }
}

fn movie_row(r: &postgres::Row) -> Movie {
    let pca: Option<Json<Vec<f64>>> = r.get(3);
    Movie {
        movie_id: r.get(0),
        title: r.get(1),
        genres: r.get::<_, Option<String>>(2).unwrap_or_default(),
        pca_features: pca.map(|j| j.0),
    }
}

/// A `model_metrics` row with its `model_evaluations` row, if any.
const MODEL_RUN_SELECT: &str = "SELECT m.id::int8, m.model_version::text, m.training_date, m.rmse,
        m.mae, m.precision_at_10, m.data_size::int8, m.notes, e.algorithm::text, e.ndcg_at_10,
        e.recall_at_10, e.catalogue_precision_at_10, e.coverage, e.users_evaluated::int8,
        e.users_eligible::int8, e.test_ratings::int8
   FROM model_metrics m LEFT JOIN model_evaluations e ON e.model_version = m.model_version";

fn model_run_row(r: &postgres::Row) -> ModelRun {
    let evaluation = r
        .get::<_, Option<String>>(8)
        .map(|algorithm| ModelEvaluation {
            algorithm,
            ndcg_at_10: r.get(9),
            recall_at_10: r.get(10),
            catalogue_precision_at_10: r.get(11),
            coverage: r.get(12),
            users_evaluated: r.get(13),
            users_eligible: r.get(14),
            test_ratings: r.get(15),
        });
    ModelRun {
        id: r.get(0),
        model_version: r.get(1),
        training_date: r.get(2),
        rmse: r.get(3),
        mae: r.get(4),
        precision_at_10: r.get(5),
        data_size: r.get(6),
        notes: r.get(7),
        evaluation,
    }
}
