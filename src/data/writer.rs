//! Writing MovieLens CSV: the catalogue, ratings files and the batch
//! directory, shared by the synthetic generator (`synth`) and the replay of
//! a real release (`stream`), so both write what `formats` reads back and
//! batch ingestion finds the same file names.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::types::{Movie, Rating};
use crate::{Error, Result};

/// The header line of every ratings file we write (ml-latest / ml-25m).
pub(crate) const RATINGS_HEADER: &[u8] = b"userId,movieId,rating,timestamp\n";

/// The catalogue in MovieLens CSV, in the order given. The csv writer quotes
/// only fields that need it (commas, quotes), which is how MovieLens quotes,
/// so titles read back identically.
pub(crate) fn write_movies_file(path: &Path, movies: &[Movie]) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let file = File::create(path).map_err(io)?;
    let mut w = csv::Writer::from_writer(BufWriter::new(file));
    let csv_err = |e: csv::Error| Error::io(path, e.into());
    w.write_record(["movieId", "title", "genres"])
        .map_err(csv_err)?;
    for m in movies {
        w.write_record([m.movie_id.to_string().as_str(), &m.title, &m.genres])
            .map_err(csv_err)?;
    }
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .flush()
        .map_err(io)
}

/// A MovieLens `ratings.csv`, header included, in the given order.
pub(crate) fn write_ratings_file(path: &Path, ratings: &[Rating]) -> Result<()> {
    let io = |e: std::io::Error| Error::io(path, e);
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(RATINGS_HEADER).map_err(io)?;
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in ratings.chunks(4096) {
        buf.clear();
        for r in chunk {
            write_rating(&mut buf, r);
        }
        out.write_all(&buf).map_err(io)?;
    }
    out.flush().map_err(io)
}

/// One `userId,movieId,rating,timestamp` line; ratings as MovieLens writes
/// them ("4.0", "3.5").
pub(crate) fn write_rating(buf: &mut Vec<u8>, r: &Rating) {
    write_int(buf, i64::from(r.user_id));
    buf.push(b',');
    write_int(buf, i64::from(r.movie_id));
    buf.push(b',');
    let halves = (r.rating * 2.0).round() as i64;
    write_int(buf, halves / 2);
    buf.extend_from_slice(if halves % 2 == 0 { b".0," } else { b".5," });
    write_int(buf, r.timestamp);
    buf.push(b'\n');
}

/// Integer formatting without `fmt` machinery: this is the generator's
/// innermost loop at tens of millions of lines.
fn write_int(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    let mut n = v.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

/// Creates `OUT/batches` and empties it of earlier batch files; returns it.
pub(crate) fn prepare_batch_dir(out: &Path) -> Result<PathBuf> {
    let dir = out.join("batches");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    remove_stale_batches(&dir)?;
    Ok(dir)
}

/// `batch_w<week>.csv` in `dir`: the file stem is the batch id ingestion
/// records, so every writer names batches alike.
pub(crate) fn batch_path(dir: &Path, week: u32) -> PathBuf {
    dir.join(format!("batch_w{week}.csv"))
}

/// Deletes `batch_w<N>.csv` files left by an earlier, longer run, which a
/// later ingest would otherwise mistake for part of this one.
fn remove_stale_batches(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_batch = name
            .strip_prefix("batch_w")
            .and_then(|r| r.strip_suffix(".csv"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_batch {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_movielens() {
        let mut buf = Vec::new();
        write_rating(
            &mut buf,
            &Rating {
                user_id: 1,
                movie_id: 31,
                rating: 2.5,
                timestamp: 1_260_759_144,
            },
        );
        write_rating(
            &mut buf,
            &Rating {
                user_id: 610,
                movie_id: 0,
                rating: 5.0,
                timestamp: -3,
            },
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "1,31,2.5,1260759144\n610,0,5.0,-3\n"
        );
    }
}
