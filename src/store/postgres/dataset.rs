//! Loading a dataset whole (binary COPY), and the reads of ratings and movies.

use postgres::binary_copy::{BinaryCopyInWriter, BinaryCopyOutIter};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{Json, Type};

use super::rows::{movie_row, rating_row};
use super::PgStore;
use crate::progress::Progress;
use crate::store::{LoadSummary, MovieStats, SplitStats};
use crate::types::{Movie, Rating, Split};
use crate::{Error, Result};

const PROGRESS_CHUNK: usize = 50_000;

pub(super) fn load_dataset(
    store: &mut PgStore,
    movies: &[Movie],
    ratings: &[Rating],
    splits: &[Split],
    replace: bool,
    progress: &dyn Progress,
) -> Result<LoadSummary> {
    assert_eq!(ratings.len(), splits.len(), "one split per rating");
    let mut tx = store.client.transaction()?;
    // No rating may enter the buffer from here to the commit (taken first,
    // as a merge takes the buffer before ratings, so the two never deadlock).
    tx.batch_execute("LOCK TABLE ratings_buffer IN SHARE MODE")?;
    // Two loaders racing must not both see an empty table.
    tx.batch_execute("LOCK TABLE ratings, movies IN SHARE ROW EXCLUSIVE MODE")?;
    let have_ratings: i64 = tx.query_one("SELECT COUNT(*) FROM ratings", &[])?.get(0);
    let have_movies: i64 = tx.query_one("SELECT COUNT(*) FROM movies", &[])?.get(0);
    if (have_ratings > 0 || have_movies > 0) && !replace {
        return Err(Error::DatasetLoaded {
            ratings: have_ratings,
            movies: have_movies,
        });
    }
    let buffered: i64 = tx
        .query_one("SELECT COUNT(*) FROM ratings_buffer", &[])?
        .get(0);
    if buffered > 0 {
        return Err(crate::store::buffer_not_empty(buffered));
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
    let version = super::changes::record_change(
        &mut tx,
        crate::store::ChangeKind::Load,
        None,
        None,
        train + test,
    )?;
    tx.execute(
        "INSERT INTO data_versions (name, version) VALUES ('dataset', $1)
         ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version",
        &[&version],
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

pub(super) fn split_stats(store: &mut PgStore) -> Result<Vec<SplitStats>> {
    let rows = store.client.query(
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

pub(super) fn ratings(store: &mut PgStore, split: Split) -> Result<Vec<Rating>> {
    // The split literal is one of two constants, never user input.
    let sql = format!(
        "COPY (SELECT userid, movieid, rating, timestamp FROM ratings
                WHERE data_split = '{}' ORDER BY timestamp) TO STDOUT (FORMAT binary)",
        split.as_str()
    );
    let reader = store.client.copy_out(&sql)?;
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

pub(super) fn movies(store: &mut PgStore) -> Result<Vec<Movie>> {
    let rows = store.client.query(
        "SELECT movieid, title::text, genres::text, pca_features FROM movies ORDER BY movieid",
        &[],
    )?;
    Ok(rows.iter().map(movie_row).collect())
}

pub(super) fn buffer_ratings(store: &mut PgStore, batch_id: Option<&str>) -> Result<Vec<Rating>> {
    let rows = store.client.query(
        "SELECT userid, movieid, rating, timestamp FROM ratings_buffer
          WHERE $1::text IS NULL OR batch_id = $1 ORDER BY timestamp",
        &[&batch_id],
    )?;
    Ok(rows.iter().map(rating_row).collect())
}

pub(super) fn movies_by_id(store: &mut PgStore, ids: &[i32]) -> Result<Vec<Movie>> {
    let rows = store.client.query(
        "SELECT movieid, title::text, genres::text, pca_features FROM movies
          WHERE movieid = ANY($1) ORDER BY movieid",
        &[&ids],
    )?;
    Ok(rows.iter().map(movie_row).collect())
}

pub(super) fn user_ratings(store: &mut PgStore, user_id: i32) -> Result<Vec<Rating>> {
    let rows = store.client.query(
        "SELECT userid, movieid, rating, timestamp FROM ratings WHERE userid = $1
         UNION ALL
         SELECT userid, movieid, rating, timestamp FROM ratings_buffer WHERE userid = $1
         ORDER BY 4",
        &[&user_id],
    )?;
    Ok(rows.iter().map(rating_row).collect())
}

pub(super) fn movie_stats(store: &mut PgStore) -> Result<Vec<MovieStats>> {
    let rows = store.client.query(
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

pub(super) fn movie_counts(
    store: &mut PgStore,
    latest: Option<u64>,
    min_stars: Option<f32>,
    without_batch: Option<&str>,
) -> Result<Vec<(i32, i64)>> {
    // LIMIT NULL is no limit.
    let limit: Option<i64> = latest.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let min = f64::from(min_stars.unwrap_or(f32::MIN));
    let rows = store.client.query(
        "SELECT movieid, COUNT(*) FROM (
           SELECT movieid, rating FROM (
             SELECT userid, movieid, rating, timestamp FROM ratings
             UNION ALL
             SELECT userid, movieid, rating, timestamp FROM ratings_buffer
              WHERE $3::text IS NULL OR batch_id IS DISTINCT FROM $3::text) known
           ORDER BY timestamp DESC, userid, movieid LIMIT $1) latest
         WHERE rating >= $2
         GROUP BY movieid ORDER BY movieid",
        &[&limit, &min, &without_batch],
    )?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(super) fn movie_ids(store: &mut PgStore) -> Result<std::collections::HashSet<i32>> {
    Ok(store
        .client
        .query("SELECT movieid FROM movies", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
