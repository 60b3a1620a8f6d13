//! The embedded backend: the CineMatch schema in one SQLite file.

use rusqlite::{params, Connection, Transaction};

use super::schema::{self, MIGRATIONS};
use super::{
    rollback_target, sample_std, ArtifactBlob, Backend, LoadSummary, ModelRun, MovieStats,
    NewModelRun, Promotion, SplitStats, Store, TableCount, TableSize,
};
use crate::progress::Progress;
use crate::types::{Movie, Rating, Split};
use crate::{Error, Result};

/// Rows per progress tick; small enough for a smooth bar, large enough to be free.
const PROGRESS_CHUNK: usize = 50_000;

pub struct SqliteStore {
    conn: Connection,
    path: String,
}

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
        })
    }

    /// Direct access for backend-specific tests and maintenance.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
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
            }
        }
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

    fn insert_model_run(&mut self, run: &NewModelRun, artifact: &ArtifactBlob) -> Result<ModelRun> {
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
        if !has_champion {
            tx.execute(
                "INSERT INTO model_champions (model_version, promoted_at, reason)
                 VALUES (?1, strftime('%Y-%m-%d %H:%M:%f', 'now'), 'first model')",
                [&version],
            )?;
        }
        let row = tx.query_row(
            "SELECT id, model_version, training_date, rmse, mae, precision_at_10, data_size, notes
               FROM model_metrics WHERE id = ?1",
            [id],
            model_run_row,
        )?;
        tx.commit()?;
        Ok(row)
    }

    fn model_runs(&mut self) -> Result<Vec<ModelRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, model_version, training_date, rmse, mae, precision_at_10, data_size, notes
               FROM model_metrics ORDER BY training_date, id",
        )?;
        let rows = stmt
            .query_map([], model_run_row)?
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

fn model_run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelRun> {
    Ok(ModelRun {
        id: r.get(0)?,
        model_version: r.get(1)?,
        training_date: parse_ts(&r.get::<_, String>(2)?),
        rmse: r.get(3)?,
        mae: r.get(4)?,
        precision_at_10: r.get(5)?,
        data_size: r.get(6)?,
        notes: r.get(7)?,
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

pub(crate) fn parse_ts(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_default()
}
