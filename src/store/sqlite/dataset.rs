//! Loading a dataset whole, and the reads of ratings and movies.

use rusqlite::{params, Transaction};

use super::rows::{movie_row, rating_row};
use super::SqliteStore;
use crate::progress::Progress;
use crate::store::{sample_std, LoadSummary, MovieStats, SplitStats};
use crate::types::{Movie, Rating, Split};
use crate::{Error, Result};

/// Rows per progress tick; small enough for a smooth bar, large enough to be free.
const PROGRESS_CHUNK: usize = 50_000;

fn count(tx: &Transaction<'_>, table: &str) -> Result<i64> {
    Ok(tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
}

pub(super) fn load_dataset(
    store: &mut SqliteStore,
    movies: &[Movie],
    ratings: &[Rating],
    splits: &[Split],
    replace: bool,
    progress: &dyn Progress,
) -> Result<LoadSummary> {
    assert_eq!(ratings.len(), splits.len(), "one split per rating");
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (have_ratings, have_movies) = (count(&tx, "ratings")?, count(&tx, "movies")?);
    if (have_ratings > 0 || have_movies > 0) && !replace {
        return Err(Error::DatasetLoaded {
            ratings: have_ratings,
            movies: have_movies,
        });
    }
    let buffered = count(&tx, "ratings_buffer")?;
    if buffered > 0 {
        return Err(crate::store::buffer_not_empty(buffered));
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
    let version = super::changes::record_change(
        &tx,
        crate::store::ChangeKind::Load,
        None,
        None,
        train + test,
    )?;
    tx.execute(
        "INSERT INTO data_versions (name, version) VALUES ('dataset', ?1)
         ON CONFLICT (name) DO UPDATE SET version = excluded.version",
        [version],
    )?;
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

pub(super) fn split_stats(store: &mut SqliteStore) -> Result<Vec<SplitStats>> {
    let mut stmt = store.conn.prepare(
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

pub(super) fn ratings(store: &mut SqliteStore, split: Split) -> Result<Vec<Rating>> {
    let mut stmt = store.conn.prepare(
        "SELECT userId, movieId, rating, timestamp FROM ratings
          WHERE data_split = ?1 ORDER BY timestamp",
    )?;
    let rows = stmt
        .query_map([split.as_str()], rating_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn movies(store: &mut SqliteStore) -> Result<Vec<Movie>> {
    let mut stmt = store
        .conn
        .prepare("SELECT movieId, title, genres, pca_features FROM movies ORDER BY movieId")?;
    let rows = stmt
        .query_map([], movie_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn buffer_ratings(
    store: &mut SqliteStore,
    batch_id: Option<&str>,
) -> Result<Vec<Rating>> {
    let mut stmt = store.conn.prepare(
        "SELECT userId, movieId, rating, timestamp FROM ratings_buffer
          WHERE ?1 IS NULL OR batch_id = ?1 ORDER BY timestamp",
    )?;
    let rows = stmt
        .query_map([batch_id], rating_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn movies_by_id(store: &mut SqliteStore, ids: &[i32]) -> Result<Vec<Movie>> {
    let mut stmt = store.conn.prepare_cached(
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

pub(super) fn user_ratings(store: &mut SqliteStore, user_id: i32) -> Result<Vec<Rating>> {
    let mut stmt = store.conn.prepare_cached(
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

pub(super) fn movie_stats(store: &mut SqliteStore) -> Result<Vec<MovieStats>> {
    let mut stmt = store.conn.prepare(
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

pub(super) fn movie_counts(
    store: &mut SqliteStore,
    latest: Option<u64>,
    min_stars: Option<f32>,
    without_batch: Option<&str>,
) -> Result<Vec<(i32, i64)>> {
    // SQLite's LIMIT -1 means no limit.
    let limit = latest.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let mut stmt = store.conn.prepare(
        "SELECT movieId, COUNT(*) FROM (
           SELECT movieId, rating FROM (
             SELECT userId, movieId, rating, timestamp FROM ratings
             UNION ALL
             SELECT userId, movieId, rating, timestamp FROM ratings_buffer
              WHERE ?3 IS NULL OR batch_id IS NOT ?3)
           ORDER BY timestamp DESC, userId, movieId LIMIT ?1)
         WHERE rating >= ?2
         GROUP BY movieId ORDER BY movieId",
    )?;
    let min = f64::from(min_stars.unwrap_or(f32::MIN));
    let rows = stmt
        .query_map(rusqlite::params![limit, min, without_batch], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn movie_ids(store: &mut SqliteStore) -> Result<std::collections::HashSet<i32>> {
    let mut stmt = store.conn.prepare("SELECT movieId FROM movies")?;
    let ids = stmt
        .query_map([], |r| r.get::<_, i32>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}
