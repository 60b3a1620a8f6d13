//! Replay of a real MovieLens release as a training history followed by
//! "weekly" batches, so that drift monitoring can be exercised on real data
//! and not only on the synthetic generator.
//!
//! MovieLens is sparse in time (ml-latest-small spans 22 years, some weeks
//! have no ratings at all, others thousands from one user), so calendar
//! weeks would give wildly uneven and often empty batches. A "week" here is
//! instead a consecutive, equal-count slice of the most recent ratings: the
//! release is sorted by time, the earliest `history_fraction` becomes the
//! history, and the rest is cut into `weeks` chunks of equal size (the first
//! chunks take one extra rating when the division is not exact). Each
//! chunk's real time span is reported, so a reader knows what a "week"
//! covered.
//!
//! The output is a CSV release (`OUT/ratings.csv`, `OUT/movies.csv`) that
//! `load` reads like any other, plus `OUT/batches/batch_w1.csv ..=
//! batch_wN.csv` in the same ratings format that batch ingestion reads.
//! Nothing is lost or invented: the history and the batches together are
//! exactly the input ratings, and `movies.csv` is the whole input catalogue
//! (so a batch never meets an unknown movie), titles quoted as needed so
//! they read back byte for byte. Tags and links are not copied: nothing
//! downstream of `load` uses them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::formats::{detect_format, read_dir};
use super::writer::{batch_path, prepare_batch_dir, write_movies_file, write_ratings_file};
use super::{Format, ReadOptions, SkipReport};
use crate::progress::Progress;
use crate::types::Rating;
use crate::{Error, Result};

/// How to cut a release into history and batches.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOptions {
    /// Number of batch files.
    pub weeks: u32,
    /// Share of the ratings, earliest first, that form the history; the
    /// rest is split into the batches. A share of ratings rather than a
    /// cut-off date, because the density of MovieLens ratings over time
    /// varies by orders of magnitude and a date would have to be re-chosen
    /// for every release.
    pub history_fraction: f64,
    /// Drop invalid rows of the release (counted in the report) instead of
    /// failing on the first, as `load --skip-invalid` does.
    pub skip_invalid: bool,
}

impl Default for StreamOptions {
    /// The usual 80/20 train/serve proportion, served over a month.
    fn default() -> Self {
        StreamOptions {
            weeks: 4,
            history_fraction: 0.8,
            skip_invalid: false,
        }
    }
}

/// The time span and content of a run of ratings (the history or a batch).
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkReport {
    /// 0 for the history, K for `batch_wK.csv`.
    pub week: u32,
    pub path: PathBuf,
    pub ratings: u64,
    /// Earliest and latest timestamp (unix seconds, inclusive); 0 when empty.
    pub first_timestamp: i64,
    pub last_timestamp: i64,
    pub users: u64,
    pub movies: u64,
    /// Users and movies without a rating in the history: what a model
    /// trained on the history has never seen (always 0 for the history).
    pub unseen_users: u64,
    pub unseen_movies: u64,
    pub mean_rating: f64,
}

/// What [`stream`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    pub format: Format,
    /// Rows of `OUT/movies.csv`.
    pub movies: u64,
    pub history: ChunkReport,
    pub batches: Vec<ChunkReport>,
    /// Rows `--skip-invalid` dropped while reading the release.
    pub skipped: SkipReport,
}

/// Reads the MovieLens release in `dir` (any format [`read_dir`] knows),
/// sorts its ratings by time and writes `out/ratings.csv` (the earliest
/// `history_fraction` of them), `out/movies.csv` (every movie) and
/// `out/batches/batch_w1.csv ..= batch_wN.csv` (the rest, in N consecutive
/// equal-count chunks).
///
/// Ties in time are broken by user then movie, so the cut is deterministic;
/// ratings sharing a timestamp may land on both sides of a boundary (a
/// chunk's last second can be the next chunk's first). Within each file rows
/// are sorted by user then movie, like MovieLens's own files. Stale
/// `batch_w*.csv` files from an earlier, longer replay are removed. `out`
/// must not be `dir`: the replay would overwrite the release it came from.
pub fn stream(
    dir: &Path,
    out: &Path,
    opts: &StreamOptions,
    progress: &dyn Progress,
) -> Result<StreamReport> {
    validate(opts)?;
    if same_dir(dir, out) {
        return Err(Error::InvalidArgument(format!(
            "the output directory {} is the release itself; writing there would overwrite \
             its ratings.csv, so choose another directory",
            out.display()
        )));
    }
    let (format, _, _) = detect_format(dir)?;
    let data = read_dir(
        dir,
        ReadOptions {
            skip_invalid: opts.skip_invalid,
        },
    )?;
    let mut ratings = data.ratings;
    let weeks = opts.weeks as usize;
    sort_by_time(&mut ratings);
    let (history_len, chunks) = cut(
        &ratings,
        &TimeCut::Share {
            weeks: opts.weeks,
            history_fraction: opts.history_fraction,
        },
    )
    .map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", dir.display())),
        other => other,
    })?;
    debug_assert_eq!(chunks.len(), weeks);

    progress.stage("stream", Some(opts.weeks as u64 + 1));
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let movies_path = out.join("movies.csv");
    write_movies_file(&movies_path, &data.movies)?;

    let (history, rest) = ratings.split_at_mut(history_len);
    let history_path = out.join("ratings.csv");
    let history_report = write_chunk(&history_path, 0, history, None)?;
    progress.advance(1);
    let seen_users: HashSet<i32> = history.iter().map(|r| r.user_id).collect();
    let seen_movies: HashSet<i32> = history.iter().map(|r| r.movie_id).collect();
    let seen = (&seen_users, &seen_movies);

    let batch_dir = prepare_batch_dir(out)?;
    let mut batches = Vec::with_capacity(weeks);
    let mut rest = rest;
    for (k, range) in chunks.iter().enumerate() {
        let (chunk, after) = rest.split_at_mut(range.len());
        rest = after;
        let week = k as u32 + 1;
        let path = batch_path(&batch_dir, week);
        batches.push(write_chunk(&path, week, chunk, Some(seen))?);
        progress.advance(1);
    }
    progress.finish();
    Ok(StreamReport {
        format,
        movies: data.movies.len() as u64,
        history: history_report,
        batches,
        skipped: data.skipped,
    })
}

/// How a time-sorted rating history is cut into what a deployment knew
/// and the weeks that followed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TimeCut {
    /// The earliest `history_fraction` of the ratings, then `weeks` equal
    /// counts of the rest (the first take one more when it does not divide).
    Share { weeks: u32, history_fraction: f64 },
    /// Everything before `start` (unix seconds), then the ratings of each
    /// `step_secs` from there: `weeks` of them (0: until the data ends).
    /// Calendar weeks can be empty.
    Calendar {
        start: i64,
        step_secs: i64,
        weeks: u32,
    },
}

/// Sorts ratings by time, ties by user then movie: the order every cut
/// assumes ((user, movie) is unique in a validated release, so it is total).
pub fn sort_by_time(ratings: &mut [Rating]) {
    ratings.par_sort_unstable_by_key(|r| (r.timestamp, r.user_id, r.movie_id));
}

/// Cuts time-sorted `ratings` (see [`sort_by_time`]) as `how` says: the
/// history's length and each week's range of indices.
pub fn cut(ratings: &[Rating], how: &TimeCut) -> Result<(usize, Vec<std::ops::Range<usize>>)> {
    let n = ratings.len();
    match *how {
        TimeCut::Share {
            weeks,
            history_fraction,
        } => {
            validate(&StreamOptions {
                weeks,
                history_fraction,
                skip_invalid: false,
            })?;
            let weeks = weeks as usize;
            let history_len = ((n as f64 * history_fraction).round() as usize).min(n);
            let tail = n - history_len;
            if tail < weeks {
                return Err(Error::InvalidArgument(format!(
                    "{n} ratings; with a history fraction of {history_fraction} only {tail} are \
                     left for {weeks} batches, and every batch needs at least one: lower the \
                     history fraction or the number of weeks"
                )));
            }
            let (size, extra) = (tail / weeks, tail % weeks);
            let mut at = history_len;
            let chunks = (0..weeks)
                .map(|k| {
                    let len = size + usize::from(k < extra);
                    at += len;
                    at - len..at
                })
                .collect();
            Ok((history_len, chunks))
        }
        TimeCut::Calendar {
            start,
            step_secs,
            weeks,
        } => {
            if step_secs <= 0 {
                return Err(Error::InvalidArgument(format!(
                    "the step must be longer than zero, got {step_secs} s"
                )));
            }
            let history_len = ratings.partition_point(|r| r.timestamp < start);
            if history_len == 0 {
                return Err(Error::InvalidArgument(
                    "no rating is older than the cutoff: nothing to train on; choose a later \
                     cutoff"
                        .into(),
                ));
            }
            if history_len == n {
                return Err(Error::InvalidArgument(
                    "no rating is newer than the cutoff: nothing to replay; choose an earlier \
                     cutoff"
                        .into(),
                ));
            }
            let mut chunks = Vec::new();
            let mut at = history_len;
            let mut end = start;
            while at < n && (weeks == 0 || chunks.len() < weeks as usize) {
                end = end.saturating_add(step_secs);
                let next = at + ratings[at..].partition_point(|r| r.timestamp < end);
                chunks.push(at..next);
                at = next;
            }
            Ok((history_len, chunks))
        }
    }
}

fn validate(opts: &StreamOptions) -> Result<()> {
    if opts.weeks == 0 {
        return Err(Error::InvalidArgument(
            "weeks must be at least 1: there is nothing to replay otherwise".into(),
        ));
    }
    let f = opts.history_fraction;
    if !(f.is_finite() && f > 0.0 && f < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "history fraction must be strictly between 0 and 1 (e.g. 0.8 for the earliest \
             80% of ratings), got {f}"
        )));
    }
    Ok(())
}

/// Whether two paths name the same directory, even when spelled
/// differently; a path that does not exist yet cannot be the release.
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Summarises a time-sorted chunk, then writes it sorted by user and movie.
fn write_chunk(
    path: &Path,
    week: u32,
    chunk: &mut [Rating],
    seen: Option<(&HashSet<i32>, &HashSet<i32>)>,
) -> Result<ChunkReport> {
    let first_timestamp = chunk.first().map_or(0, |r| r.timestamp);
    let last_timestamp = chunk.last().map_or(0, |r| r.timestamp);
    let users: HashSet<i32> = chunk.iter().map(|r| r.user_id).collect();
    let movies: HashSet<i32> = chunk.iter().map(|r| r.movie_id).collect();
    let (unseen_users, unseen_movies) = match seen {
        Some((su, sm)) => (
            users.iter().filter(|u| !su.contains(u)).count() as u64,
            movies.iter().filter(|m| !sm.contains(m)).count() as u64,
        ),
        None => (0, 0),
    };
    let sum: f64 = chunk.iter().map(|r| f64::from(r.rating)).sum();
    chunk.par_sort_unstable_by_key(|r| (r.user_id, r.movie_id));
    write_ratings_file(path, chunk)?;
    Ok(ChunkReport {
        week,
        path: path.to_path_buf(),
        ratings: chunk.len() as u64,
        first_timestamp,
        last_timestamp,
        users: users.len() as u64,
        movies: movies.len() as u64,
        unseen_users,
        unseen_movies,
        mean_rating: if chunk.is_empty() {
            0.0
        } else {
            sum / chunk.len() as f64
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::formats::read_ratings;
    use crate::progress::Silent;

    /// ml-latest-small in the shared data next to the project, as the
    /// other tests find it (`tests/common::shared_data`).
    fn ml_small() -> PathBuf {
        let p = crate::test_shared::shared_dir().join("data/ml-latest-small");
        assert!(
            p.join("ratings.csv").is_file(),
            "MovieLens sample data not found at {}",
            p.display()
        );
        p
    }

    fn key(r: &Rating) -> (i32, i32, i64, u32) {
        (r.user_id, r.movie_id, r.timestamp, (r.rating * 2.0) as u32)
    }

    /// Reads a replay back the way `load` and batch ingestion would, and
    /// checks it against the release it came from.
    fn check_round_trip(src: &Path, out: &Path, opts: &StreamOptions, report: &StreamReport) {
        let original = read_dir(src, ReadOptions::default()).unwrap();
        let replay = read_dir(out, ReadOptions::default()).unwrap();
        assert_eq!(replay.movies, original.movies, "catalogue changed");
        let known: HashSet<i32> = replay.movies.iter().map(|m| m.movie_id).collect();

        let history = replay.ratings;
        let n = original.ratings.len();
        let expected_history = (n as f64 * opts.history_fraction).round() as usize;
        assert_eq!(history.len(), expected_history);
        assert_eq!(report.history.ratings as usize, expected_history);
        let mut all: Vec<Rating> = history.clone();
        let mut last = history.iter().map(|r| r.timestamp).max().unwrap();
        assert_eq!(last, report.history.last_timestamp);
        let tail = n - expected_history;
        assert_eq!(report.batches.len(), opts.weeks as usize);
        for (k, b) in report.batches.iter().enumerate() {
            assert_eq!(b.week, k as u32 + 1);
            let path = out.join("batches").join(format!("batch_w{}.csv", k + 1));
            assert_eq!(b.path, path);
            let mut skipped = SkipReport::default();
            let batch =
                read_ratings(&path, ReadOptions::default(), Some(&known), &mut skipped).unwrap();
            assert!(skipped.is_empty());
            assert_eq!(batch.len() as u64, b.ratings);
            let size = batch.len();
            assert!(
                size == tail / opts.weeks as usize || size == tail / opts.weeks as usize + 1,
                "batch {} has {size} of {tail}",
                k + 1
            );
            let first = batch.iter().map(|r| r.timestamp).min().unwrap();
            let end = batch.iter().map(|r| r.timestamp).max().unwrap();
            assert_eq!((first, end), (b.first_timestamp, b.last_timestamp));
            assert!(
                first >= last,
                "batch {} starts before what precedes it",
                k + 1
            );
            last = end;
            let mean = batch.iter().map(|r| f64::from(r.rating)).sum::<f64>() / size as f64;
            assert!((mean - b.mean_rating).abs() < 1e-9);
            all.extend(batch);
        }
        let mut got: Vec<_> = all.iter().map(key).collect();
        let mut want: Vec<_> = original.ratings.iter().map(key).collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "history + batches differ from the release");
    }

    #[test]
    fn replays_ml_latest_small_exactly() {
        let src = &ml_small();
        let out = tempfile::tempdir().unwrap();
        let opts = StreamOptions {
            weeks: 3,
            ..StreamOptions::default()
        };
        let report = stream(src, out.path(), &opts, &Silent).unwrap();
        assert_eq!(report.format, Format::Csv);
        assert_eq!(report.movies, 9_742);
        check_round_trip(src, out.path(), &opts, &report);
        // Late MovieLens ratings include users who joined after the cut:
        // the replay must surface them as unseen.
        assert!(report.batches.iter().any(|b| b.unseen_users > 0));
        // Titles with commas and quotes survive (these are in the release).
        let movies = std::fs::read_to_string(out.path().join("movies.csv")).unwrap();
        assert!(movies.contains("11,\"American President, The (1995)\",Comedy|Drama|Romance\n"));
        assert!(movies.contains("\"11'09\"\"01 - September 11 (2002)\""));
    }

    fn fixture(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }

    const MOVIES_CSV: &str = "movieId,title,genres\n\
        1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n\
        11,\"American President, The (1995)\",Comedy|Drama|Romance\n\
        7789,\"11'09\"\"01 - September 11 (2002)\",Drama\n\
        114,Café au lait (Métisse) (1993),Comedy\n\
        5,Nothing Here (2001),(no genres listed)\n";

    #[test]
    fn csv_fixture_round_trips_with_quoted_titles() {
        let src = tempfile::tempdir().unwrap();
        let mut ratings = String::from("userId,movieId,rating,timestamp\n");
        // Out of time order, with ties, across users.
        let rows = [
            (1, 1, "4.0", 50),
            (1, 11, "3.5", 10),
            (2, 1, "5.0", 10),
            (2, 7789, "0.5", 70),
            (3, 114, "2.0", 30),
            (3, 5, "1.0", 30),
            (4, 1, "4.5", 90),
            (4, 11, "3.0", 80),
            (5, 7789, "2.5", 60),
            (5, 114, "4.0", 20),
        ];
        for (u, m, r, t) in rows {
            ratings.push_str(&format!("{u},{m},{r},{t}\n"));
        }
        fixture(
            src.path(),
            &[("movies.csv", MOVIES_CSV), ("ratings.csv", &ratings)],
        );
        let out = tempfile::tempdir().unwrap();
        let opts = StreamOptions {
            weeks: 3,
            history_fraction: 0.5,
            ..StreamOptions::default()
        };
        let report = stream(src.path(), out.path(), &opts, &Silent).unwrap();
        check_round_trip(src.path(), out.path(), &opts, &report);
        // 10 ratings: 5 history (times 10,10,20,30,30), then 2+2+1.
        let sizes: Vec<u64> = report.batches.iter().map(|b| b.ratings).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert_eq!(
            (
                report.history.first_timestamp,
                report.history.last_timestamp
            ),
            (10, 30)
        );
        let spans: Vec<(i64, i64)> = report
            .batches
            .iter()
            .map(|b| (b.first_timestamp, b.last_timestamp))
            .collect();
        assert_eq!(spans, vec![(50, 60), (70, 80), (90, 90)]);
        // User 4 first rates in week 2 (t=80); movie 7789 first in week 1.
        assert_eq!(report.batches[1].unseen_users, 1);
        assert_eq!(report.batches[0].unseen_movies, 1);
        let text = std::fs::read_to_string(out.path().join("movies.csv")).unwrap();
        assert!(text.contains("7789,\"11'09\"\"01 - September 11 (2002)\",Drama\n"));
        assert!(text.contains("5,Nothing Here (2001),(no genres listed)\n"));
    }

    #[test]
    fn dat_release_becomes_csv() {
        let src = tempfile::tempdir().unwrap();
        fixture(
            src.path(),
            &[
                (
                    "movies.dat",
                    "1::Toy Story (1995)::Animation|Children's|Comedy\n\
                     2::American President, The (1995)::Comedy|Drama|Romance\n",
                ),
                (
                    "ratings.dat",
                    "1::1::5::978300760\n1::2::3::978302109\n2::1::4::978301968\n2::2::2::978300275\n",
                ),
            ],
        );
        let out = tempfile::tempdir().unwrap();
        let opts = StreamOptions {
            weeks: 2,
            history_fraction: 0.5,
            ..StreamOptions::default()
        };
        let report = stream(src.path(), out.path(), &opts, &Silent).unwrap();
        assert_eq!(report.format, Format::Dat);
        check_round_trip(src.path(), out.path(), &opts, &report);
        assert!(out.path().join("ratings.csv").is_file());
        let text = std::fs::read_to_string(out.path().join("ratings.csv")).unwrap();
        assert_eq!(
            text,
            "userId,movieId,rating,timestamp\n1,1,5.0,978300760\n2,2,2.0,978300275\n"
        );
    }

    #[test]
    fn stale_batches_are_removed() {
        let src = tempfile::tempdir().unwrap();
        let ratings =
            "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,11,3.0,2\n2,1,2.0,3\n2,11,5.0,4\n";
        fixture(
            src.path(),
            &[("movies.csv", MOVIES_CSV), ("ratings.csv", ratings)],
        );
        let out = tempfile::tempdir().unwrap();
        let batches = out.path().join("batches");
        std::fs::create_dir_all(&batches).unwrap();
        std::fs::write(batches.join("batch_w9.csv"), "stale").unwrap();
        std::fs::write(batches.join("notes.txt"), "keep").unwrap();
        let opts = StreamOptions {
            weeks: 1,
            history_fraction: 0.5,
            ..StreamOptions::default()
        };
        stream(src.path(), out.path(), &opts, &Silent).unwrap();
        assert!(!batches.join("batch_w9.csv").exists());
        assert!(batches.join("notes.txt").exists());
        assert!(batches.join("batch_w1.csv").exists());
    }

    #[test]
    fn rejects_bad_options() {
        let src = tempfile::tempdir().unwrap();
        let ratings = "userId,movieId,rating,timestamp\n1,1,4.0,1\n1,11,3.0,2\n2,1,2.0,3\n";
        fixture(
            src.path(),
            &[("movies.csv", MOVIES_CSV), ("ratings.csv", ratings)],
        );
        let out = tempfile::tempdir().unwrap();
        let err = |opts: StreamOptions, out: &Path| {
            stream(src.path(), out, &opts, &Silent)
                .unwrap_err()
                .to_string()
        };
        let e = err(
            StreamOptions {
                weeks: 0,
                ..StreamOptions::default()
            },
            out.path(),
        );
        assert!(e.contains("weeks must be at least 1"), "{e}");
        for f in [0.0, 1.0, -0.5, f64::NAN] {
            let e = err(
                StreamOptions {
                    history_fraction: f,
                    ..StreamOptions::default()
                },
                out.path(),
            );
            assert!(e.contains("strictly between 0 and 1"), "{e}");
        }
        // 3 ratings, 0.8 history: 1 left for 2 batches.
        let e = err(
            StreamOptions {
                weeks: 2,
                ..StreamOptions::default()
            },
            out.path(),
        );
        assert!(e.contains("only 1 are left for 2 batches"), "{e}");
        let e = err(StreamOptions::default(), src.path());
        assert!(e.contains("is the release itself"), "{e}");
        assert!(src.path().join("ratings.csv").is_file());
        // Nothing was written for the failures.
        assert!(!out.path().join("ratings.csv").exists());
    }
}
