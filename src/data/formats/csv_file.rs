//! RFC 4180 CSV (ml-latest, ml-25m and their kin): a header line, quoted
//! fields that may hold commas, quotes and line breaks.

use std::borrow::Cow;
use std::io::Read;
use std::path::Path;

use super::detect::contains_seq;
use super::fields::{
    column_count_issue, parse_int, parse_rating_row, truncate, RowIssue, MOVIES_HEADER,
    RATINGS_HEADER,
};
use super::layout::Layout;
use super::sinks::{Issues, MovieSink, RatingSink};
use super::source::{LfReader, Source, READ_BUFFER};
use super::NO_GENRES;
use crate::data::{InputError, IssueKind};
use crate::types::MOVIELENS_GENRES;

fn csv_reader<R: Read>(reader: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(READ_BUFFER)
        .from_reader(reader)
}

/// Reads the next record; Ok(None) at end of file, else the record's first
/// physical line.
fn next_csv_record<R: Read>(
    rdr: &mut csv::Reader<LfReader<R>>,
    rec: &mut csv::ByteRecord,
    path: &Path,
) -> crate::Result<Option<u64>> {
    loop {
        match rdr.read_byte_record(rec) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return match e.into_kind() {
                    csv::ErrorKind::Io(e) => Err(crate::Error::io(path, e)),
                    other => Err(InputError {
                        file: path.to_path_buf(),
                        line,
                        kind: IssueKind::Malformed,
                        detail: format!("cannot split the line into fields: {other:?}"),
                    }
                    .into()),
                };
            }
        }
        // The csv crate skips empty lines but not whitespace-only ones.
        if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
            continue;
        }
        return Ok(Some(record_start_line(rdr, rec)));
    }
}

/// The csv crate positions a record where the previous one ended (before any
/// blank lines it skipped), so we work back from where this record ended.
fn record_start_line<R: Read>(rdr: &csv::Reader<LfReader<R>>, rec: &csv::ByteRecord) -> u64 {
    let before = rec.position().map_or(1, |p| p.line());
    let after = rdr.position().line();
    // A record is returned as soon as its terminating LF is consumed (and
    // counted), before the reader asks for more input; so if the input is
    // already exhausted, the record was ended by end of file instead.
    let ended_on = if rdr.get_ref().eof {
        after
    } else {
        after.saturating_sub(1)
    };
    if ended_on <= before {
        return before;
    }
    let inner_newlines = rec.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
    ended_on.saturating_sub(inner_newlines).max(1)
}

fn check_csv_header(
    rec: &csv::ByteRecord,
    expected: &[&str],
    line: u64,
    issues: &Issues<'_>,
) -> crate::Result<()> {
    let matches = rec.len() == expected.len()
        && rec
            .iter()
            .zip(expected)
            .all(|(got, want)| got.trim_ascii().eq_ignore_ascii_case(want.as_bytes()));
    if matches {
        return Ok(());
    }
    let want = expected.join(",");
    let got: Vec<Cow<'_, str>> = rec.iter().map(String::from_utf8_lossy).collect();
    let got = got.join(",");
    let mut detail = format!(
        "expected header \"{want}\", found \"{}\"",
        truncate(&got, 120)
    );
    let raw = rec.as_slice();
    if contains_seq(raw, b"::") {
        detail.push_str("; the file looks '::'-separated: give it a .dat extension");
    } else if raw.contains(&b'\t') && rec.len() == 1 {
        detail.push_str("; the file looks tab-separated: give it a .tsv extension");
    } else if rec.get(0).is_some_and(|f| parse_int(f).is_ok()) {
        detail.push_str(&format!(
            "; the first line looks like data: add \"{want}\" as the first line"
        ));
    }
    Err(issues.error(line, IssueKind::BadHeader, detail).into())
}

/// For a row that failed validation, a more fundamental cause takes
/// precedence: undecodable bytes, or a quote left open that swallowed the
/// following lines.
fn csv_row_cause(rec: &csv::ByteRecord) -> Option<RowIssue> {
    for (i, field) in rec.iter().enumerate() {
        if let Err(e) = std::str::from_utf8(field) {
            return Some((
                IssueKind::Encoding,
                format!(
                    "field {} is not valid UTF-8 (byte 0x{:02X} at offset {}); save the file as UTF-8",
                    i + 1,
                    field[e.valid_up_to()],
                    e.valid_up_to()
                ),
            ));
        }
    }
    let newlines = rec.as_slice().iter().filter(|&&b| b == b'\n').count() as u64;
    if newlines > 0 {
        return Some((
            IssueKind::Malformed,
            format!(
                "the record runs on over {newlines} more line break{}; a quote is probably left open",
                if newlines == 1 { "" } else { "s" }
            ),
        ));
    }
    None
}

pub(super) fn ratings_csv(src: Source, sink: &mut RatingSink<'_, '_>) -> crate::Result<u64> {
    let path = src.path.clone();
    let mut rdr = csv_reader(src.reader);
    let mut rec = csv::ByteRecord::new();
    let Some(header_line) = next_csv_record(&mut rdr, &mut rec, &path)? else {
        return Ok(0);
    };
    check_csv_header(&rec, &RATINGS_HEADER, header_line, &sink.issues)?;
    let mut rows = 0u64;
    while let Some(line) = next_csv_record(&mut rdr, &mut rec, &path)? {
        rows += 1;
        let parsed = if rec.len() == 4 {
            parse_rating_row([&rec[0], &rec[1], &rec[2], &rec[3]])
        } else {
            Err(column_count_issue(rec.len(), &RATINGS_HEADER, Layout::Csv))
        };
        match parsed {
            Ok(r) => sink.accept(line, r)?,
            Err(issue) => {
                let (kind, detail) = csv_row_cause(&rec).unwrap_or(issue);
                sink.problem(line, kind, detail)?;
            }
        }
    }
    Ok(rows)
}

pub(super) fn movies_csv(src: Source, sink: &mut MovieSink<'_>) -> crate::Result<u64> {
    let path = src.path.clone();
    let mut rdr = csv_reader(src.reader);
    let mut rec = csv::ByteRecord::new();
    let Some(header_line) = next_csv_record(&mut rdr, &mut rec, &path)? else {
        return Ok(0);
    };
    check_csv_header(&rec, &MOVIES_HEADER, header_line, &sink.issues)?;
    let mut rows = 0u64;
    while let Some(line) = next_csv_record(&mut rdr, &mut rec, &path)? {
        rows += 1;
        if let Some((kind, detail)) = csv_row_cause(&rec) {
            sink.problem(line, kind, detail)?;
            continue;
        }
        // Checked just above: every field is valid UTF-8.
        let fields: Vec<&str> = rec
            .iter()
            .map(|f| std::str::from_utf8(f).unwrap_or_default())
            .collect();
        match fields.len() {
            3 => sink.add(line, &rec[0], fields[1], fields[2])?,
            n if n > 3 && looks_like_genres(fields[n - 1]) => {
                // Some releases (ml-25m, ml-32m) leave a few titles with
                // commas unquoted; the id and genres are unambiguous, so the
                // middle is the title.
                sink.rejoined += 1;
                let title = fields[1..n - 1].join(",");
                sink.add(line, &rec[0], &title, fields[n - 1])?;
            }
            n => {
                let (kind, mut detail) = column_count_issue(n, &MOVIES_HEADER, Layout::Csv);
                if n > 3 {
                    detail.push_str("; quote titles that contain commas");
                }
                sink.problem(line, kind, detail)?;
            }
        }
    }
    Ok(rows)
}

fn looks_like_genres(s: &str) -> bool {
    let s = s.trim();
    s == NO_GENRES
        || (!s.is_empty()
            && s.split('|')
                .all(|g| g == "Children's" || MOVIELENS_GENRES.contains(&g)))
}
