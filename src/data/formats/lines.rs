//! The separator-based layouts without quoting: ml-1m/ml-10m's `::` DAT
//! files, ml-100k's tab-separated `u.data` and its pipe-separated `u.item`
//! with 19 genre flags. Older releases are ISO-8859-1, so titles are decoded
//! per line.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::fields::{
    column_count_issue, parse_rating_row, truncate, MOVIES_HEADER, RATINGS_HEADER,
};
use super::layout::{Layout, ML100K_COLUMNS, ML100K_GENRES};
use super::sinks::{MovieSink, RatingSink};
use super::source::{LfReader, Source, READ_BUFFER};
use super::NO_GENRES;
use crate::data::IssueKind;

/// Column names for messages about ml-100k's u.item.
const ITEM_COLUMNS: [&str; ML100K_COLUMNS] = [
    "movie id",
    "movie title",
    "release date",
    "video release date",
    "IMDb URL",
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

struct Lines<R> {
    rdr: BufReader<LfReader<R>>,
    buf: Vec<u8>,
    line: u64,
}

impl<R: Read> Lines<R> {
    fn new(reader: LfReader<R>) -> Self {
        Lines {
            rdr: BufReader::with_capacity(READ_BUFFER, reader),
            buf: Vec::with_capacity(256),
            line: 0,
        }
    }

    /// The next non-blank line without its terminator, and its number.
    fn next_line(&mut self, path: &Path) -> crate::Result<Option<(u64, &[u8])>> {
        let end = loop {
            self.buf.clear();
            let n = self
                .rdr
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| crate::Error::io(path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let end = if self.buf.last() == Some(&b'\n') {
                n - 1
            } else {
                n
            };
            if !self.buf[..end].trim_ascii().is_empty() {
                break end;
            }
        };
        Ok(Some((self.line, &self.buf[..end])))
    }
}

/// Splits `line` on `sep`, storing up to `out.len()` fields; returns how many
/// fields the line has in total so extra columns can be reported.
fn split_fields<'a>(line: &'a [u8], sep: &[u8], out: &mut [&'a [u8]]) -> usize {
    let mut count = 0;
    let mut rest = line;
    loop {
        let next = find_sep(rest, sep);
        let field = match next {
            Some(i) => &rest[..i],
            None => rest,
        };
        if count < out.len() {
            out[count] = field;
        }
        count += 1;
        match next {
            Some(i) => rest = &rest[i + sep.len()..],
            None => return count,
        }
    }
}

fn find_sep(hay: &[u8], sep: &[u8]) -> Option<usize> {
    let (&first, tail) = sep.split_first()?;
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if hay[at + 1..].starts_with(tail) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn separator(layout: Layout) -> &'static [u8] {
    match layout {
        Layout::Csv => b",",
        Layout::Dat => b"::",
        Layout::Tab => b"\t",
        Layout::Item => b"|",
    }
}

pub(super) fn ratings_lines(
    src: Source,
    layout: Layout,
    sink: &mut RatingSink<'_, '_>,
) -> crate::Result<u64> {
    let sep = separator(layout);
    let mut lines = Lines::new(src.reader);
    let mut rows = 0u64;
    while let Some((line, text)) = lines.next_line(&src.path)? {
        rows += 1;
        let mut f: [&[u8]; 4] = [&[]; 4];
        let n = split_fields(text, sep, &mut f);
        let parsed = if n == 4 {
            parse_rating_row(f)
        } else {
            Err(column_count_issue(n, &RATINGS_HEADER, layout))
        };
        match parsed {
            Ok(r) => sink.accept(line, r)?,
            Err((kind, detail)) => sink.problem(line, kind, detail)?,
        }
    }
    Ok(rows)
}

pub(super) fn movies_lines(
    src: Source,
    layout: Layout,
    sink: &mut MovieSink<'_>,
) -> crate::Result<u64> {
    let sep = separator(layout);
    let width = if layout == Layout::Item {
        ML100K_COLUMNS
    } else {
        3
    };
    let mut lines = Lines::new(src.reader);
    let mut rows = 0u64;
    while let Some((line, text)) = lines.next_line(&src.path)? {
        rows += 1;
        let mut f: Vec<&[u8]> = vec![&[]; width];
        let n = split_fields(text, sep, &mut f);
        if n != width {
            let names: &[&str] = if layout == Layout::Item {
                &ITEM_COLUMNS
            } else {
                &MOVIES_HEADER
            };
            let (kind, detail) = column_count_issue(n, names, layout);
            sink.problem(line, kind, detail)?;
            continue;
        }
        // Older releases are ISO-8859-1; newer ones UTF-8. Decide per line
        // so a file mixing both still reads, and never fail on encoding.
        let latin1 = std::str::from_utf8(text).is_err();
        let title = decode(f[1], latin1);
        if layout == Layout::Dat {
            let genres = decode(f[2], latin1);
            sink.add(line, f[0], &title, &genres)?;
            continue;
        }
        match item_genres(&f[5..]) {
            Ok(genres) => sink.add(line, f[0], &title, &genres)?,
            Err(detail) => sink.problem(line, IssueKind::Malformed, detail)?,
        }
    }
    Ok(rows)
}

fn decode(bytes: &[u8], latin1: bool) -> Cow<'_, str> {
    if latin1 {
        Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        String::from_utf8_lossy(bytes)
    }
}

/// Turns ml-100k's 19 genre flags into the pipe-joined form the other
/// releases use.
fn item_genres(flags: &[&[u8]]) -> Result<String, String> {
    let mut genres: Vec<&str> = Vec::new();
    for (flag, name) in flags.iter().zip(ML100K_GENRES) {
        match flag.trim_ascii() {
            b"1" => genres.push(name),
            b"0" => {}
            other => {
                return Err(format!(
                    "genre flag for {name} is \"{}\", expected 0 or 1",
                    truncate(&String::from_utf8_lossy(other), 40)
                ))
            }
        }
    }
    genres.retain(|g| *g != "unknown");
    Ok(if genres.is_empty() {
        NO_GENRES.to_string()
    } else {
        genres.join("|")
    })
}
