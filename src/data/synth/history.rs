//! The base dataset: `movies.csv` and the history `ratings.csv`, written
//! in parallel and byte-identical for a seed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

use super::world::{Scratch, SynthWorld, BASE_STREAM};
use super::{SynthOptions, SynthReport};
use crate::data::writer::{write_movies_file, write_rating, RATINGS_HEADER};
use crate::progress::Progress;
use crate::{Error, Result};

/// Users per work unit are chosen so a unit holds about this many ratings:
/// large enough to amortise scheduling, small enough to bound memory.
const CHUNK_RATINGS: u64 = 32_768;

/// Writes `DIR/movies.csv` and `DIR/ratings.csv` in MovieLens's CSV format
/// (ml-latest / ml-25m headers, ratings sorted by user then movie), creating
/// `DIR` if needed.
///
/// Ratings are generated in parallel in bounded batches of users and
/// streamed to disk in order, so memory stays small at any size and the
/// files are byte-identical for a seed.
pub fn generate(dir: &Path, opts: &SynthOptions, progress: &dyn Progress) -> Result<SynthReport> {
    let world = SynthWorld::new(opts)?;
    write_history(dir, &world, progress)
}

/// [`generate`]'s writer. The catalogue is every movie the world holds, so
/// movies added for weekly batches are listed alongside the base ones; the
/// ratings are the base users' histories only.
pub(super) fn write_history(
    dir: &Path,
    world: &SynthWorld,
    progress: &dyn Progress,
) -> Result<SynthReport> {
    let opts = &world.opts;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;

    write_movies_file(&dir.join("movies.csv"), &world.movies())?;

    let ratings_path = dir.join("ratings.csv");
    let io = |e: std::io::Error| Error::io(&ratings_path, e);
    let file = File::create(&ratings_path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(RATINGS_HEADER).map_err(io)?;

    // Consecutive user ranges of ~CHUNK_RATINGS ratings each.
    let mut chunks: Vec<Range<usize>> = Vec::new();
    let mut begin = 0;
    let mut acc = 0u64;
    for (u, &c) in world.user_count.iter().enumerate() {
        acc += u64::from(c);
        if acc >= CHUNK_RATINGS {
            chunks.push(begin..u + 1);
            begin = u + 1;
            acc = 0;
        }
    }
    if begin < world.user_count.len() {
        chunks.push(begin..world.user_count.len());
    }

    progress.stage("synth", Some(u64::from(opts.users)));
    let batch = (rayon::current_num_threads() * 2).max(1);
    let mut written = 0u64;
    let mut sum = 0.0f64;
    for group in chunks.chunks(batch) {
        let results: Vec<(Vec<u8>, u64, f64)> = group
            .par_iter()
            .map_init(
                || (Scratch::default(), Vec::new()),
                |(scratch, ratings), range| {
                    let mut buf = Vec::new();
                    let mut n = 0u64;
                    let mut s = 0.0f64;
                    for u in range.clone() {
                        ratings.clear();
                        let (start, end) = world.user_period[u];
                        let count = world.user_count[u] as usize;
                        world.fill_user(u, count, (start, end), BASE_STREAM, scratch, ratings);
                        for r in ratings.iter() {
                            write_rating(&mut buf, r);
                            s += f64::from(r.rating);
                        }
                        n += ratings.len() as u64;
                    }
                    (buf, n, s)
                },
            )
            .collect();
        for ((buf, n, s), range) in results.into_iter().zip(group) {
            out.write_all(&buf).map_err(io)?;
            written += n;
            sum += s;
            progress.advance(range.len() as u64);
        }
    }
    out.flush().map_err(io)?;
    progress.finish();
    debug_assert_eq!(written, opts.ratings);

    Ok(SynthReport {
        users: opts.users,
        movies: opts.movies,
        ratings: written,
        mean_rating: if written > 0 {
            sum / written as f64
        } else {
            0.0
        },
    })
}
