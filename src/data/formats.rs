//! MovieLens readers for every published layout (CSV, `::`-separated DAT,
//! and ml-100k's `u.data`/`u.item`), with row validation that names the file
//! and the physical line of each problem.
//!
//! Ratings files reach tens of millions of rows, so the rating path parses
//! numbers straight from bytes and never allocates per row. Movie files are
//! small; they favour clear errors over speed.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Dataset, Format, InputError, IssueKind, ReadOptions, SkipReport};
use crate::types::{check_rating, Movie, Rating, MOVIELENS_GENRES};

/// `movies.title` is VARCHAR(500): longer titles would fail at insert time,
/// far from the line that caused them.
pub const TITLE_MAX_CHARS: usize = 500;
/// `movies.genres` is VARCHAR(200), for the same reason.
pub const GENRES_MAX_CHARS: usize = 200;

/// What MovieLens writes for a movie without genres; also what we store when
/// a source gives none, so every backend sees one spelling.
pub const NO_GENRES: &str = "(no genres listed)";

const RATINGS_HEADER: [&str; 4] = ["userId", "movieId", "rating", "timestamp"];
const MOVIES_HEADER: [&str; 3] = ["movieId", "title", "genres"];

/// ml-100k's genre flag columns, in file order, already renamed to the modern
/// MovieLens spelling so PCA features line up across releases.
const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children",
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
const ML100K_COLUMNS: usize = 5 + ML100K_GENRES.len();

/// How many leading bytes we look at to sniff encoding and layout.
const HEAD_BYTES: usize = 4096;
const READ_BUFFER: usize = 1 << 16;

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Lets `cinematch load <dir>` accept any unpacked MovieLens release without
/// the user having to say which one it is.
///
/// Returns the layout with the ratings and movies paths. When nothing
/// matches, the error lists the file pairs looked for, what was found, and a
/// subdirectory that does hold a release (a common slip after unzipping).
pub fn detect_format(dir: &Path) -> crate::Result<(Format, PathBuf, PathBuf)> {
    if !dir.exists() {
        return Err(crate::Error::NotFound(format!(
            "{} does not exist; pass the directory of an unpacked MovieLens release",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(crate::Error::InvalidArgument(format!(
            "{} is not a directory; pass the directory of an unpacked MovieLens release \
             (or name the ratings and movies files explicitly)",
            dir.display()
        )));
    }
    if let Some(found) = layout_in(dir) {
        return Ok(found);
    }

    let mut msg = format!(
        "no MovieLens release in {}: looked for {}",
        dir.display(),
        LAYOUTS
            .iter()
            .map(|(_, r, m)| format!("{r} + {m}"))
            .collect::<Vec<_>>()
            .join(", or ")
    );
    let present: Vec<&str> = LAYOUTS
        .iter()
        .flat_map(|(_, r, m)| [*r, *m])
        .filter(|name| dir.join(name).is_file())
        .collect();
    if !present.is_empty() {
        msg.push_str(&format!("; found only {}", present.join(", ")));
    }
    if let Some(sub) = subdir_with_release(dir) {
        msg.push_str(&format!(
            "; {} holds one, did you mean that?",
            sub.display()
        ));
    }
    Err(crate::Error::NotFound(msg))
}

/// One call for the common case: a release directory in, validated data out.
pub fn read_dir(dir: &Path, opts: ReadOptions) -> crate::Result<Dataset> {
    let (format, ratings, movies) = detect_format(dir)?;
    tracing::debug!(dir = %dir.display(), %format, "reading MovieLens release");
    let (r_layout, m_layout) = match format {
        Format::Csv => (Layout::Csv, Layout::Csv),
        Format::Dat => (Layout::Dat, Layout::Dat),
        Format::Ml100k => (Layout::Tab, Layout::Item),
    };
    read_pair(&ratings, Some(r_layout), &movies, Some(m_layout), opts)
}

/// For files that do not sit in a standard release directory (renamed
/// exports, a subset cut for testing). Each file's layout comes from its name
/// (`u.data`/`.tsv` tab, `.dat` `::`, `.csv` comma, `u.item` pipe) or, for an
/// unknown name, from its first line. Ratings for movies the movie file does
/// not list are `UnknownMovie` issues, so the store never holds orphans.
pub fn read_files(ratings: &Path, movies: &Path, opts: ReadOptions) -> crate::Result<Dataset> {
    read_pair(ratings, None, movies, None, opts)
}

/// Movies alone, for refreshing titles and genres without touching ratings.
pub fn read_movies(
    path: &Path,
    opts: ReadOptions,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Movie>> {
    read_movies_as(path, None, opts, skipped)
}

/// Ratings alone: the initial load and the weekly batch files share this, so
/// a batch is held to the same rules as the original release. With
/// `known_movies`, ratings of unlisted movies are `UnknownMovie` issues.
/// A repeated (user, movie) pair is a `DuplicateRating` on the later line.
pub fn read_ratings(
    path: &Path,
    opts: ReadOptions,
    known_movies: Option<&HashSet<i32>>,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Rating>> {
    let filter = known_movies.map(MovieFilter::from_set);
    read_ratings_as(path, None, opts, filter.as_ref(), skipped)
}

// ---------------------------------------------------------------------------
// Layouts and detection
// ---------------------------------------------------------------------------

const LAYOUTS: [(Format, &str, &str); 3] = [
    (Format::Csv, "ratings.csv", "movies.csv"),
    (Format::Dat, "ratings.dat", "movies.dat"),
    (Format::Ml100k, "u.data", "u.item"),
];

fn layout_in(dir: &Path) -> Option<(Format, PathBuf, PathBuf)> {
    LAYOUTS.iter().find_map(|&(format, r, m)| {
        let (r, m) = (dir.join(r), dir.join(m));
        (r.is_file() && m.is_file()).then_some((format, r, m))
    })
}

fn subdir_with_release(dir: &Path) -> Option<PathBuf> {
    let mut subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && layout_in(p).is_some())
        .collect();
    subs.sort();
    subs.into_iter().next()
}

/// How a single file is laid out. Ratings use Csv/Dat/Tab, movies Csv/Dat/Item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// RFC 4180 with a header line.
    Csv,
    /// `::`-separated, no header.
    Dat,
    /// Tab-separated, no header (ml-100k `u.data`).
    Tab,
    /// Pipe-separated with genre flags (ml-100k `u.item`).
    Item,
}

impl Layout {
    fn describe(self) -> &'static str {
        match self {
            Layout::Csv => "comma-separated",
            Layout::Dat => "'::'-separated",
            Layout::Tab => "tab-separated",
            Layout::Item => "pipe-separated (u.item)",
        }
    }
}

fn layout_from_name(path: &Path) -> Option<Layout> {
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    match name.as_str() {
        "u.data" => return Some(Layout::Tab),
        "u.item" => return Some(Layout::Item),
        _ => {}
    }
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    match ext.as_str() {
        "csv" => Some(Layout::Csv),
        "dat" => Some(Layout::Dat),
        "tsv" | "tab" | "data" => Some(Layout::Tab),
        "item" => Some(Layout::Item),
        _ => None,
    }
}

fn layout_from_content(head: &[u8]) -> Layout {
    let line = first_line(head);
    if contains_seq(line, b"::") {
        Layout::Dat
    } else if line.iter().filter(|&&b| b == b'|').count() >= ML100K_COLUMNS - 1 {
        Layout::Item
    } else if line.contains(&b'\t') {
        Layout::Tab
    } else {
        Layout::Csv
    }
}

fn first_line(head: &[u8]) -> &[u8] {
    head.split(|&b| b == b'\n' || b == b'\r')
        .find(|l| !l.trim_ascii().is_empty())
        .unwrap_or(&[])
}

fn contains_seq(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------
// Reading files
// ---------------------------------------------------------------------------

fn read_pair(
    ratings: &Path,
    r_layout: Option<Layout>,
    movies: &Path,
    m_layout: Option<Layout>,
    opts: ReadOptions,
) -> crate::Result<Dataset> {
    let mut skipped = SkipReport::default();
    let movies_v = read_movies_as(movies, m_layout, opts, &mut skipped)?;
    let filter = MovieFilter::from_ids(movies_v.iter().map(|m| m.movie_id));
    let ratings_v = read_ratings_as(ratings, r_layout, opts, Some(&filter), &mut skipped)?;
    Ok(Dataset {
        movies: movies_v,
        ratings: ratings_v,
        skipped,
    })
}

fn read_movies_as(
    path: &Path,
    layout: Option<Layout>,
    opts: ReadOptions,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Movie>> {
    let start = Instant::now();
    let src = Source::open(path)?;
    let layout = layout
        .or_else(|| layout_from_name(path))
        .unwrap_or_else(|| layout_from_content(&src.head));
    let mut sink = MovieSink {
        issues: Issues::new(path, opts, skipped),
        out: Vec::new(),
        seen: HashMap::new(),
        rejoined: 0,
    };
    let rows = match layout {
        Layout::Csv => movies_csv(src, &mut sink)?,
        Layout::Dat | Layout::Item => movies_lines(src, layout, &mut sink)?,
        Layout::Tab => {
            return Err(crate::Error::InvalidArgument(format!(
                "{} is tab-separated like a u.data ratings file; a movie file must be \
                 movies.csv, movies.dat or u.item",
                path.display()
            )))
        }
    };
    if rows == 0 {
        return Err(empty_file(path));
    }
    if sink.rejoined > 0 {
        tracing::debug!(
            file = %path.display(),
            rows = sink.rejoined,
            "rejoined titles with unquoted commas"
        );
    }
    tracing::debug!(
        file = %path.display(),
        movies = sink.out.len(),
        elapsed_ms = start.elapsed().as_millis() as u64,
        "read movies"
    );
    Ok(sink.out)
}

fn read_ratings_as(
    path: &Path,
    layout: Option<Layout>,
    opts: ReadOptions,
    known: Option<&MovieFilter<'_>>,
    skipped: &mut SkipReport,
) -> crate::Result<Vec<Rating>> {
    let start = Instant::now();
    let src = Source::open(path)?;
    let layout = layout
        .or_else(|| layout_from_name(path))
        .unwrap_or_else(|| layout_from_content(&src.head));
    // Roughly 20 bytes per row in every release; reserving up front avoids
    // copying a multi-gigabyte vector while it grows. Untouched capacity
    // costs no physical memory.
    let capacity = ((src.len / 20) as usize).min(1 << 26);
    let mut sink = RatingSink::new(Issues::new(path, opts, skipped), known, capacity);
    let rows = match layout {
        Layout::Csv => ratings_csv(src, &mut sink)?,
        Layout::Dat | Layout::Tab => ratings_lines(src, layout, &mut sink)?,
        Layout::Item => {
            return Err(crate::Error::InvalidArgument(format!(
                "{} looks like a u.item movie list, not a ratings file",
                path.display()
            )))
        }
    };
    if rows == 0 {
        return Err(empty_file(path));
    }
    let out = sink.finish()?;
    tracing::debug!(
        file = %path.display(),
        ratings = out.len(),
        elapsed_ms = start.elapsed().as_millis() as u64,
        "read ratings"
    );
    Ok(out)
}

fn empty_file(path: &Path) -> crate::Error {
    InputError {
        file: path.to_path_buf(),
        line: 0,
        kind: IssueKind::EmptyFile,
        detail: "the file has no data rows".into(),
    }
    .into()
}

/// An opened input with its encoding checked, BOM removed and line endings
/// normalised, plus its first bytes for layout sniffing.
struct Source {
    path: PathBuf,
    len: u64,
    head: Vec<u8>,
    reader: LfReader<io::Chain<Cursor<Vec<u8>>, File>>,
}

impl Source {
    fn open(path: &Path) -> crate::Result<Source> {
        let io_err = |e| crate::Error::io(path, e);
        let mut file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut head = vec![0u8; HEAD_BYTES];
        let mut n = 0;
        while n < head.len() {
            match file.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        head.truncate(n);
        if looks_utf16(&head) {
            return Err(InputError {
                file: path.to_path_buf(),
                line: 0,
                kind: IssueKind::Encoding,
                detail: "file looks like UTF-16; save it as UTF-8".into(),
            }
            .into());
        }
        if head.starts_with(b"\xEF\xBB\xBF") {
            head.drain(..3);
        }
        let reader = LfReader::new(Cursor::new(head.clone()).chain(file));
        Ok(Source {
            path: path.to_path_buf(),
            len,
            head,
            reader,
        })
    }
}

fn looks_utf16(head: &[u8]) -> bool {
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return true;
    }
    // Without a BOM: ASCII text with every other byte NUL.
    head.len() >= 4
        && ((head[1] == 0 && head[3] == 0 && head[0] != 0)
            || (head[0] == 0 && head[2] == 0 && head[1] != 0))
}

/// Rewrites CRLF and lone CR to LF as bytes stream through, so line numbers
/// count the same physical lines an editor shows whatever the file's origin.
/// Also notes when the input runs out, which tells whether the CSV reader's
/// last record ended at a newline or at end of file (see
/// `record_start_line`).
struct LfReader<R> {
    inner: R,
    after_cr: bool,
    eof: bool,
}

impl<R: Read> LfReader<R> {
    fn new(inner: R) -> Self {
        LfReader {
            inner,
            after_cr: false,
            eof: false,
        }
    }
}

impl<R: Read> Read for LfReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.inner.read(buf)?;
            if n == 0 {
                self.eof = true;
                return Ok(0);
            }
            let m = if !self.after_cr && !buf[..n].contains(&b'\r') {
                n
            } else {
                let mut w = 0;
                for r in 0..n {
                    let b = buf[r];
                    if b == b'\n' && self.after_cr {
                        self.after_cr = false;
                        continue;
                    }
                    self.after_cr = b == b'\r';
                    buf[w] = if b == b'\r' { b'\n' } else { b };
                    w += 1;
                }
                w
            };
            // A chunk that was only the LF of a split CRLF: read on, since
            // returning 0 would signal end of file.
            if m > 0 {
                return Ok(m);
            }
        }
    }
}

/// Applies `--skip-invalid`: either the first problem aborts the read, or
/// every skippable problem is counted and its row dropped.
struct Issues<'a> {
    file: &'a Path,
    skip: bool,
    report: &'a mut SkipReport,
}

impl<'a> Issues<'a> {
    fn new(file: &'a Path, opts: ReadOptions, report: &'a mut SkipReport) -> Self {
        Issues {
            file,
            skip: opts.skip_invalid,
            report,
        }
    }

    fn error(&self, line: u64, kind: IssueKind, detail: impl Into<String>) -> InputError {
        InputError {
            file: self.file.to_path_buf(),
            line,
            kind,
            detail: detail.into(),
        }
    }

    fn skips(&self, kind: IssueKind) -> bool {
        self.skip && kind.skippable()
    }

    /// Ok(()) when the row was recorded and should be dropped.
    fn raise(&mut self, e: InputError) -> crate::Result<()> {
        if self.skips(e.kind) {
            self.report.record(e);
            Ok(())
        } else {
            Err(e.into())
        }
    }
}

/// A problem found in one row, before it is tied to a file and line.
type RowIssue = (IssueKind, String);

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

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

fn ratings_csv(src: Source, sink: &mut RatingSink<'_, '_>) -> crate::Result<u64> {
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

fn movies_csv(src: Source, sink: &mut MovieSink<'_>) -> crate::Result<u64> {
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

// ---------------------------------------------------------------------------
// Line-based layouts (DAT, u.data, u.item)
// ---------------------------------------------------------------------------

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

fn ratings_lines(src: Source, layout: Layout, sink: &mut RatingSink<'_, '_>) -> crate::Result<u64> {
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

fn movies_lines(src: Source, layout: Layout, sink: &mut MovieSink<'_>) -> crate::Result<u64> {
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

// ---------------------------------------------------------------------------
// Row validation
// ---------------------------------------------------------------------------

fn column_count_issue(found: usize, expected: &[&str], layout: Layout) -> RowIssue {
    let sep = match layout {
        Layout::Csv => ",",
        Layout::Dat => "::",
        Layout::Tab => "<tab>",
        Layout::Item => "|",
    };
    (
        IssueKind::ColumnCount,
        format!(
            "expected {} {} fields ({}), found {found}",
            expected.len(),
            layout.describe(),
            expected.join(sep)
        ),
    )
}

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

enum IntError {
    NotInteger,
    Overflow,
}

/// Integer parsing straight from bytes: the hot loop of every ratings read.
fn parse_int(field: &[u8]) -> Result<i64, IntError> {
    // Fast path: plain digits, too few to overflow. The loop has no branch;
    // a non-digit byte adds up to 255 per place, which can overflow i64
    // (and panic where overflow checks are on), so it wraps: the value is
    // discarded unless every byte was a digit.
    if !field.is_empty() && field.len() <= 18 {
        let mut v: i64 = 0;
        let mut all_digits = true;
        for &c in field {
            let d = c.wrapping_sub(b'0');
            all_digits &= d < 10;
            v = v.wrapping_mul(10).wrapping_add(i64::from(d));
        }
        if all_digits {
            return Ok(v);
        }
    }
    let b = field.trim_ascii();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(IntError::NotInteger);
    }
    let mut v: i64 = 0;
    for &c in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(c - b'0')))
            .ok_or(IntError::Overflow)?;
    }
    Ok(if neg { -v } else { v })
}

fn show(field: &[u8]) -> String {
    format!("{:?}", truncate(&String::from_utf8_lossy(field), 40))
}

fn truncate(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => Cow::Owned(format!("{}...", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

fn parse_id(name: &str, field: &[u8]) -> Result<i32, RowIssue> {
    match parse_int(field) {
        Ok(v) if v > 0 && v <= i64::from(i32::MAX) => Ok(v as i32),
        Ok(v) if v <= 0 => Err((
            IssueKind::NotNumeric,
            format!("{name} {v} is not a positive integer"),
        )),
        Ok(_) | Err(IntError::Overflow) => Err((
            IssueKind::NotNumeric,
            format!("{name} {} is too large for a 32-bit id", show(field)),
        )),
        Err(IntError::NotInteger) => Err((
            IssueKind::NotNumeric,
            format!("{name} {} is not an integer", show(field)),
        )),
    }
}

fn parse_rating_value(field: &[u8]) -> Result<f32, RowIssue> {
    let b = field.trim_ascii();
    // MovieLens writes "4" or "3.5"; only anything else goes through the
    // general float parser.
    let value = match *b {
        [d] if d.is_ascii_digit() => f64::from(d - b'0'),
        [d, b'.', e] if d.is_ascii_digit() && e.is_ascii_digit() => {
            f64::from(d - b'0') + f64::from(e - b'0') / 10.0
        }
        _ => match std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
        {
            Some(v) if v.is_finite() => v,
            _ => {
                return Err((
                    IssueKind::NotNumeric,
                    format!("rating {} is not a number", show(field)),
                ))
            }
        },
    };
    match check_rating(value) {
        Ok(()) => Ok(value as f32),
        Err(e) => Err((
            e.into(),
            format!("rating {} {e}", String::from_utf8_lossy(b)),
        )),
    }
}

fn parse_rating_row(f: [&[u8]; 4]) -> Result<Rating, RowIssue> {
    let user_id = parse_id("userId", f[0])?;
    let movie_id = parse_id("movieId", f[1])?;
    let rating = parse_rating_value(f[2])?;
    let timestamp = match parse_int(f[3]) {
        Ok(t) => t,
        Err(IntError::NotInteger) => {
            return Err((
                IssueKind::NotNumeric,
                format!("timestamp {} is not an integer", show(f[3])),
            ))
        }
        Err(IntError::Overflow) => {
            return Err((
                IssueKind::NotNumeric,
                format!("timestamp {} is too large", show(f[3])),
            ))
        }
    };
    Ok(Rating {
        user_id,
        movie_id,
        rating,
        timestamp,
    })
}

/// MovieLens spells a genre two ways across releases; store the modern one.
fn normalize_genres(genres: &str) -> Cow<'_, str> {
    let g = genres.trim();
    if g.is_empty() {
        Cow::Borrowed(NO_GENRES)
    } else if g.contains("Children's") {
        Cow::Owned(g.replace("Children's", "Children"))
    } else {
        Cow::Borrowed(g)
    }
}

// ---------------------------------------------------------------------------
// Movie collection
// ---------------------------------------------------------------------------

struct MovieSink<'a> {
    issues: Issues<'a>,
    out: Vec<Movie>,
    /// movieId -> line of its first listing.
    seen: HashMap<i32, u64>,
    rejoined: u64,
}

impl MovieSink<'_> {
    fn problem(&mut self, line: u64, kind: IssueKind, detail: String) -> crate::Result<()> {
        let e = self.issues.error(line, kind, detail);
        self.issues.raise(e)
    }

    fn add(&mut self, line: u64, id: &[u8], title: &str, genres: &str) -> crate::Result<()> {
        match self.validate(line, id, title, genres) {
            Ok(movie) => {
                self.out.push(movie);
                Ok(())
            }
            Err((kind, detail)) => self.problem(line, kind, detail),
        }
    }

    fn validate(
        &mut self,
        line: u64,
        id: &[u8],
        title: &str,
        genres: &str,
    ) -> Result<Movie, RowIssue> {
        let movie_id = parse_id("movieId", id)?;
        // Several releases carry stray trailing spaces in titles.
        let title = title.trim();
        if title.is_empty() {
            return Err((IssueKind::Malformed, "title is empty".into()));
        }
        // PostgreSQL text cannot hold NUL; refuse it here, with the line,
        // rather than fail the whole load at COPY time.
        if title.contains('\0') || genres.contains('\0') {
            return Err((
                IssueKind::Malformed,
                "NUL byte in the title or genres".into(),
            ));
        }
        let chars = title.chars().count();
        if chars > TITLE_MAX_CHARS {
            return Err((
                IssueKind::TooLong,
                format!(
                    "title is {chars} characters, more than the {TITLE_MAX_CHARS} the database allows"
                ),
            ));
        }
        let genres = normalize_genres(genres);
        let chars = genres.chars().count();
        if chars > GENRES_MAX_CHARS {
            return Err((
                IssueKind::TooLong,
                format!(
                    "genres are {chars} characters, more than the {GENRES_MAX_CHARS} the database allows"
                ),
            ));
        }
        if let Some(first) = self.seen.get(&movie_id) {
            return Err((
                IssueKind::DuplicateMovie,
                format!("movieId {movie_id} is already listed on line {first}"),
            ));
        }
        self.seen.insert(movie_id, line);
        Ok(Movie {
            movie_id,
            title: title.to_string(),
            genres: genres.into_owned(),
            pca_features: None,
        })
    }
}

// ---------------------------------------------------------------------------
// Rating collection: unknown movies and duplicate detection
// ---------------------------------------------------------------------------

/// Membership test for known movieIds; a bitset when ids are dense (every
/// release), because this runs once per rating.
enum MovieFilter<'a> {
    Bits(Vec<u64>),
    Borrowed(&'a HashSet<i32>),
    Owned(HashSet<i32>),
}

/// Ids above this use a hash set instead of a bitset (16 MiB at most).
const BITSET_MAX_ID: i32 = 1 << 27;

impl<'a> MovieFilter<'a> {
    fn bits(ids: impl Iterator<Item = i32>, max: i32) -> MovieFilter<'a> {
        let mut bits = vec![0u64; (max.max(0) as usize) / 64 + 1];
        for id in ids.filter(|&id| id >= 0) {
            bits[id as usize / 64] |= 1 << (id % 64);
        }
        MovieFilter::Bits(bits)
    }

    fn from_set(set: &'a HashSet<i32>) -> MovieFilter<'a> {
        let max = set.iter().copied().max().unwrap_or(0);
        if max <= BITSET_MAX_ID {
            Self::bits(set.iter().copied(), max)
        } else {
            MovieFilter::Borrowed(set)
        }
    }

    fn from_ids(ids: impl Iterator<Item = i32> + Clone) -> MovieFilter<'a> {
        let max = ids.clone().max().unwrap_or(0);
        if max <= BITSET_MAX_ID {
            Self::bits(ids, max)
        } else {
            MovieFilter::Owned(ids.collect())
        }
    }

    fn contains(&self, id: i32) -> bool {
        match self {
            MovieFilter::Bits(bits) => {
                id >= 0
                    && bits
                        .get(id as usize / 64)
                        .is_some_and(|w| w & (1 << (id % 64)) != 0)
            }
            MovieFilter::Borrowed(set) => set.contains(&id),
            MovieFilter::Owned(set) => set.contains(&id),
        }
    }
}

/// A fast, well-mixed hasher for packed (user, movie) keys, looked up once
/// per rating when a file has duplicates.
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        // murmur3's 64-bit finaliser.
        let mut h = self.0 ^ x;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type PairMap = HashMap<u64, usize, BuildHasherDefault<MixHasher>>;

fn pair_key(r: &Rating) -> u64 {
    (u64::from(r.user_id as u32) << 32) | u64::from(r.movie_id as u32)
}

/// How duplicates are found. Releases list each user's ratings together, so
/// checking one user's run at a time needs memory for one user only. A file
/// that returns to an earlier user is checked as a whole once read, by
/// sorting packed (user, movie) keys: far faster and smaller than a hash map
/// over tens of millions of pairs.
enum Dups {
    Grouped {
        /// The current user's ratings are `out[run_start..]`.
        run_start: usize,
        /// Whether the run is sorted by movieId (then a duplicate is always
        /// the previous row and is caught immediately; otherwise the run is
        /// checked when it ends).
        sorted: bool,
        finished: HashSet<i32>,
        scratch: Vec<u32>,
    },
    Global,
}

struct RatingSink<'a, 'f> {
    issues: Issues<'a>,
    known: Option<&'f MovieFilter<'f>>,
    out: Vec<Rating>,
    /// `(index, line)`: `out[index]` came from `line`, and the rows after it
    /// from consecutive lines until the next anchor. Lets a duplicate name
    /// the first occurrence's line without storing a line per rating.
    anchors: Vec<(usize, u64)>,
    /// The line right after the last row pushed to `out`.
    next_line: u64,
    dups: Dups,
}

impl<'a, 'f> RatingSink<'a, 'f> {
    fn new(issues: Issues<'a>, known: Option<&'f MovieFilter<'f>>, capacity: usize) -> Self {
        RatingSink {
            issues,
            known,
            out: Vec::with_capacity(capacity),
            anchors: Vec::new(),
            next_line: 0,
            dups: Dups::Grouped {
                run_start: 0,
                sorted: true,
                finished: HashSet::new(),
                scratch: Vec::new(),
            },
        }
    }

    /// Reports a problem with the row on `line`. Without `--skip-invalid`
    /// the read stops here, but a duplicate on an earlier line that is still
    /// waiting in the current run is the first problem and is reported
    /// instead.
    fn problem(&mut self, line: u64, kind: IssueKind, detail: String) -> crate::Result<()> {
        let e = self.issues.error(line, kind, detail);
        if !self.issues.skips(kind) {
            if let Some(earlier) = self.pending_duplicate() {
                return Err(earlier.into());
            }
        }
        self.issues.raise(e)
    }

    fn duplicate(&mut self, line: u64, r: &Rating, first_line: u64) -> crate::Result<()> {
        let e = self.issues.error(
            line,
            IssueKind::DuplicateRating,
            duplicate_detail(r, first_line),
        );
        self.issues.raise(e)
    }

    fn accept(&mut self, line: u64, r: Rating) -> crate::Result<()> {
        if let Some(known) = self.known {
            if !known.contains(r.movie_id) {
                return self.problem(
                    line,
                    IssueKind::UnknownMovie,
                    format!("movieId {} is not in the movie file", r.movie_id),
                );
            }
        }
        let Dups::Grouped {
            run_start, sorted, ..
        } = &mut self.dups
        else {
            return self.accept_global(line, r);
        };
        if let Some(&last) = self.out[*run_start..].last() {
            if last.user_id == r.user_id {
                if *sorted {
                    if r.movie_id == last.movie_id {
                        let last_line = self.next_line - 1;
                        return self.duplicate(line, &r, last_line);
                    }
                    *sorted = r.movie_id > last.movie_id;
                }
                self.push_out(line, r);
                return Ok(());
            }
            self.end_run()?;
        }
        let Dups::Grouped {
            run_start,
            finished,
            ..
        } = &mut self.dups
        else {
            unreachable!("end_run keeps the grouped mode");
        };
        if finished.contains(&r.user_id) {
            self.go_global();
            return self.accept_global(line, r);
        }
        *run_start = self.out.len();
        self.push_out(line, r);
        Ok(())
    }

    fn accept_global(&mut self, line: u64, r: Rating) -> crate::Result<()> {
        self.push_out(line, r);
        Ok(())
    }

    fn push_out(&mut self, line: u64, r: Rating) {
        if line != self.next_line {
            self.anchors.push((self.out.len(), line));
        }
        self.out.push(r);
        self.next_line = line + 1;
    }

    /// Duplicates not yet reported, as `(index, index of first occurrence)`
    /// into `out`, in file order: those of the current run, or of the whole
    /// file in global mode.
    fn run_duplicates(&mut self) -> Vec<(usize, usize)> {
        if let Dups::Global = self.dups {
            return global_duplicates(&self.out);
        }
        let Dups::Grouped {
            run_start,
            sorted: false,
            scratch,
            ..
        } = &mut self.dups
        else {
            return Vec::new();
        };
        let run = &self.out[*run_start..];
        scratch.clear();
        scratch.extend(0..run.len() as u32);
        scratch.sort_unstable_by_key(|&i| (run[i as usize].movie_id, i));
        let mut dups = Vec::new();
        for same in scratch.chunk_by(|&a, &b| run[a as usize].movie_id == run[b as usize].movie_id)
        {
            let first = *run_start + same[0] as usize;
            dups.extend(same[1..].iter().map(|&i| (*run_start + i as usize, first)));
        }
        dups.sort_unstable();
        dups
    }

    /// Closes the current user's run: drops and reports its duplicates (in
    /// line order) and remembers the user, so a return to it is noticed.
    fn end_run(&mut self) -> crate::Result<()> {
        if let Dups::Global = self.dups {
            return Ok(());
        }
        let dups = self.run_duplicates();
        let Dups::Grouped {
            run_start,
            sorted,
            finished,
            ..
        } = &mut self.dups
        else {
            return Ok(());
        };
        let start = *run_start;
        *sorted = true;
        *run_start = self.out.len();
        let Some(first) = self.out.get(start) else {
            return Ok(());
        };
        finished.insert(first.user_id);
        if dups.is_empty() {
            return Ok(());
        }
        // Rare: rebuild the tail without the duplicates.
        let anchors = &self.anchors;
        let tail: Vec<(Rating, u64)> = (start..self.out.len())
            .map(|i| (self.out[i], line_of(anchors, i)))
            .collect();
        let first_lines: Vec<u64> = dups.iter().map(|&(_, f)| line_of(anchors, f)).collect();
        self.out.truncate(start);
        let keep = self.anchors.partition_point(|&(i, _)| i < start);
        self.anchors.truncate(keep);
        self.next_line = u64::MAX;
        let mut next_dup = dups.iter().zip(first_lines).peekable();
        for (i, (r, line)) in tail.into_iter().enumerate() {
            if let Some(&(&(d, _), first_line)) = next_dup.peek() {
                if d == start + i {
                    next_dup.next();
                    self.duplicate(line, &r, first_line)?;
                    continue;
                }
            }
            self.push_out(line, r);
        }
        if let Dups::Grouped { run_start, .. } = &mut self.dups {
            *run_start = self.out.len();
        }
        Ok(())
    }

    fn pending_duplicate(&mut self) -> Option<InputError> {
        let &(d, first) = self.run_duplicates().first()?;
        let r = self.out[d];
        Some(self.issues.error(
            line_of(&self.anchors, d),
            IssueKind::DuplicateRating,
            duplicate_detail(&r, line_of(&self.anchors, first)),
        ))
    }

    fn go_global(&mut self) {
        tracing::debug!(
            file = %self.issues.file.display(),
            "ratings are not grouped by user; checking duplicates across the whole file"
        );
        self.dups = Dups::Global;
    }

    fn finish(mut self) -> crate::Result<Vec<Rating>> {
        if let Dups::Grouped { .. } = self.dups {
            self.end_run()?;
            return Ok(self.out);
        }
        let dups = global_duplicates(&self.out);
        if dups.is_empty() {
            return Ok(self.out);
        }
        let mut drop = vec![false; self.out.len()];
        for &(d, first) in &dups {
            let r = self.out[d];
            let (line, first_line) = (line_of(&self.anchors, d), line_of(&self.anchors, first));
            self.duplicate(line, &r, first_line)?;
            drop[d] = true;
        }
        let mut i = 0;
        self.out.retain(|_| {
            i += 1;
            !drop[i - 1]
        });
        Ok(self.out)
    }
}

/// Duplicate (user, movie) pairs anywhere in `out` as `(index, index of
/// first occurrence)`, in file order. Sorting the keys finds whether any pair
/// repeats; only repeated keys are then tracked to locate the occurrences.
fn global_duplicates(out: &[Rating]) -> Vec<(usize, usize)> {
    let mut keys: Vec<u64> = out.iter().map(pair_key).collect();
    keys.sort_unstable();
    let mut repeated: PairMap = keys
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| (w[0], usize::MAX))
        .collect();
    drop(keys);
    let mut dups = Vec::new();
    if repeated.is_empty() {
        return dups;
    }
    for (i, r) in out.iter().enumerate() {
        if let Some(first) = repeated.get_mut(&pair_key(r)) {
            if *first == usize::MAX {
                *first = i;
            } else {
                dups.push((i, *first));
            }
        }
    }
    dups
}

fn duplicate_detail(r: &Rating, first_line: u64) -> String {
    format!(
        "user {} already rated movie {} on line {first_line}",
        r.user_id, r.movie_id
    )
}

fn line_of(anchors: &[(usize, u64)], index: usize) -> u64 {
    let k = anchors.partition_point(|&(i, _)| i <= index);
    match k.checked_sub(1).map(|k| anchors[k]) {
        Some((i, line)) => line + (index - i) as u64,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R_HEAD: &str = "userId,movieId,rating,timestamp\n";
    const M_HEAD: &str = "movieId,title,genres\n";

    fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn strict() -> ReadOptions {
        ReadOptions::default()
    }

    fn lenient() -> ReadOptions {
        ReadOptions { skip_invalid: true }
    }

    fn input_err<T: std::fmt::Debug>(r: crate::Result<T>) -> InputError {
        match r {
            Err(crate::Error::Input(e)) => e,
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    /// Asserts kind and line, and that the message names the file.
    fn check(e: &InputError, kind: IssueKind, line: u64, file: &str) {
        assert_eq!(e.kind, kind, "{e}");
        assert_eq!(e.line, line, "{e}");
        let msg = crate::Error::Input(e.clone()).to_string();
        assert!(msg.contains(file), "message {msg:?} should name {file}");
        assert!(msg.contains(&format!(":{line}:")), "{msg}");
    }

    fn ratings_file(content: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "ratings.csv", content);
        (dir, p)
    }

    fn strict_ratings_err(content: impl AsRef<[u8]>) -> InputError {
        let (_dir, p) = ratings_file(content);
        input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()))
    }

    fn strict_movies_err(content: impl AsRef<[u8]>) -> InputError {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "movies.csv", content);
        input_err(read_movies(&p, strict(), &mut SkipReport::default()))
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/movielens")
    }

    fn shared_data() -> PathBuf {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
        assert!(
            p.is_dir(),
            "MovieLens sample data not found at {}; it must hold ml-latest-small/ and ml-25m-movies/",
            p.display()
        );
        p
    }

    fn r(user_id: i32, movie_id: i32, rating: f32, timestamp: i64) -> Rating {
        Rating {
            user_id,
            movie_id,
            rating,
            timestamp,
        }
    }

    // --- one test per IssueKind -------------------------------------------

    #[test]
    fn empty_file_is_an_error_even_when_skipping() {
        for content in [
            "",
            R_HEAD,
            "userId,movieId,rating,timestamp\n\n\n",
            "\n  \n",
        ] {
            let e = strict_ratings_err(content);
            check(&e, IssueKind::EmptyFile, 0, "ratings.csv");
            let (_dir, p) = ratings_file(content);
            let e = input_err(read_ratings(
                &p,
                lenient(),
                None,
                &mut SkipReport::default(),
            ));
            check(&e, IssueKind::EmptyFile, 0, "ratings.csv");
        }
        check(
            &strict_movies_err(M_HEAD),
            IssueKind::EmptyFile,
            0,
            "movies.csv",
        );
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "ratings.dat", "\n");
        let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
        check(&e, IssueKind::EmptyFile, 0, "ratings.dat");
    }

    #[test]
    fn invalid_utf8_is_an_encoding_issue_on_its_line() {
        // NUL is valid UTF-8 but PostgreSQL text cannot hold it.
        let e = strict_movies_err(
            b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Heat\0 (1995),Drama\n",
        );
        check(&e, IssueKind::Malformed, 3, "movies.csv");
        assert!(e.detail.contains("NUL"), "{}", e.detail);
        let e = strict_movies_err(b"movieId,title,genres\n7,Heat (1995),Dra\0ma\n");
        check(&e, IssueKind::Malformed, 2, "movies.csv");
        let e = strict_movies_err(
            b"movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Caf\xe9 (2000),Drama\n",
        );
        check(&e, IssueKind::Encoding, 3, "movies.csv");
        assert!(e.detail.contains("0xE9"), "{}", e.detail);
        let e = strict_ratings_err(b"userId,movieId,rating,timestamp\n1,1,4.0,5\n1,\xff2,4.0,5\n");
        check(&e, IssueKind::Encoding, 3, "ratings.csv");
    }

    #[test]
    fn utf16_is_an_encoding_error_for_the_whole_file() {
        let text = "movieId,title,genres\n1,Toy Story (1995),Comedy\n";
        let mut le = vec![0xFF, 0xFE];
        le.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        let mut be = vec![0xFE, 0xFF];
        be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
        let no_bom: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
        for bytes in [le, be, no_bom] {
            let e = strict_movies_err(&bytes);
            check(&e, IssueKind::Encoding, 0, "movies.csv");
            assert!(e.detail.contains("UTF-16"), "{}", e.detail);
            let dir = tempfile::tempdir().unwrap();
            let p = write(dir.path(), "movies.csv", &bytes);
            let e = input_err(read_movies(&p, lenient(), &mut SkipReport::default()));
            assert_eq!(e.kind, IssueKind::Encoding);
        }
    }

    #[test]
    fn empty_title_and_open_quote_are_malformed() {
        let e = strict_movies_err("movieId,title,genres\n1,Toy Story (1995),Comedy\n3,  ,Drama\n");
        check(&e, IssueKind::Malformed, 3, "movies.csv");
        let e = strict_movies_err(
            "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,\"Broken (1999),Drama\n3,Fine (2000),Comedy\n",
        );
        check(&e, IssueKind::Malformed, 3, "movies.csv");
        assert!(e.detail.contains("quote"), "{}", e.detail);
        // u.item genre flags must be 0 or 1.
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "u.item",
            "1|Toy Story (1995)|01-Jan-1995||url|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n\
             2|GoldenEye (1995)|01-Jan-1995||url|0|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0|x|0|0\n",
        );
        let e = input_err(read_movies(&p, strict(), &mut SkipReport::default()));
        check(&e, IssueKind::Malformed, 2, "u.item");
        assert!(e.detail.contains("Thriller"), "{}", e.detail);
    }

    #[test]
    fn missing_or_extra_columns_are_column_count() {
        let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,4.0\n"));
        check(&e, IssueKind::ColumnCount, 3, "ratings.csv");
        assert!(e.detail.contains("found 3"), "{}", e.detail);
        let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n\n1,2,4.0,5,9\n"));
        check(&e, IssueKind::ColumnCount, 4, "ratings.csv");
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "ratings.dat", "1::1::4::5\n1::2::4\n");
        let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
        check(&e, IssueKind::ColumnCount, 2, "ratings.dat");
        let p = write(dir.path(), "u.data", "1\t1\t4\t5\n1\t2\t4\t5\t6\n");
        let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
        check(&e, IssueKind::ColumnCount, 2, "u.data");
        let e = strict_movies_err("movieId,title,genres\n1,Toy Story (1995)\n");
        check(&e, IssueKind::ColumnCount, 2, "movies.csv");
        // An unquoted comma whose last field is not a genre list.
        let e = strict_movies_err("movieId,title,genres\n1,Toy Story (1995),Comedy,extra\n");
        check(&e, IssueKind::ColumnCount, 2, "movies.csv");
    }

    #[test]
    fn non_numeric_fields_name_the_field() {
        let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,4.0,5\nabc,3,4.0,5\n"));
        check(&e, IssueKind::NotNumeric, 4, "ratings.csv");
        assert!(
            e.detail.contains("userId \"abc\" is not an integer"),
            "{}",
            e.detail
        );
        let cases = [
            ("1,x,4.0,5", "movieId \"x\" is not an integer"),
            ("0,1,4.0,5", "userId 0 is not a positive integer"),
            ("1,-3,4.0,5", "movieId -3 is not a positive integer"),
            ("1,3000000000,4.0,5", "movieId \"3000000000\" is too large"),
            ("1,1,four,5", "rating \"four\" is not a number"),
            ("1,1,NaN,5", "rating \"NaN\" is not a number"),
            ("1,1,4.0,12.5", "timestamp \"12.5\" is not an integer"),
            ("1,1,4.0,", "timestamp \"\" is not an integer"),
        ];
        for (row, detail) in cases {
            let e = strict_ratings_err(format!("{R_HEAD}{row}\n"));
            check(&e, IssueKind::NotNumeric, 2, "ratings.csv");
            assert!(e.detail.contains(detail), "{row}: {}", e.detail);
        }
        let e = strict_movies_err("movieId,title,genres\nabc,Toy Story (1995),Comedy\n");
        check(&e, IssueKind::NotNumeric, 2, "movies.csv");
    }

    #[test]
    fn ratings_outside_the_scale_are_out_of_range() {
        for bad in ["5.5", "0", "0.0", "-1", "10"] {
            let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,{bad},5\n"));
            check(&e, IssueKind::RatingOutOfRange, 3, "ratings.csv");
            assert!(e.detail.contains(bad), "{}", e.detail);
        }
    }

    #[test]
    fn ratings_off_the_half_step_are_reported() {
        for bad in ["3.7", "4.25", "0.75", "4.50001"] {
            let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,{bad},5\n"));
            check(&e, IssueKind::RatingNotHalfStep, 3, "ratings.csv");
        }
        // Every valid spelling of a half step is accepted.
        let (_dir, p) = ratings_file(format!(
            "{R_HEAD}1,1,4,5\n1,2,3.50,5\n1,3, 0.5 ,5\n1,4,5.0,5\n"
        ));
        let got = read_ratings(&p, strict(), None, &mut SkipReport::default()).unwrap();
        let values: Vec<f32> = got.iter().map(|r| r.rating).collect();
        assert_eq!(values, [4.0, 3.5, 0.5, 5.0]);
    }

    #[test]
    fn duplicate_rating_names_the_first_line() {
        // Adjacent in a sorted run.
        let e = strict_ratings_err(format!("{R_HEAD}1,1,4.0,5\n1,2,4.0,5\n1,2,3.0,6\n"));
        check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
        assert!(e.detail.contains("line 3"), "{}", e.detail);
        // Within an unsorted run (ml-1m style).
        let e = strict_ratings_err(format!(
            "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n1,9,3.0,6\n2,1,4.0,5\n"
        ));
        check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
        assert!(e.detail.contains("line 2"), "{}", e.detail);
        // A user coming back after other users (unsorted file, like u.data).
        let e = strict_ratings_err(format!(
            "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n\n2,1,4.0,5\n1,3,4.0,5\n1,2,1.0,7\n"
        ));
        check(&e, IssueKind::DuplicateRating, 7, "ratings.csv");
        assert!(e.detail.contains("line 3"), "{}", e.detail);
        // ... and over a later bad row once the whole file is being checked.
        let e = strict_ratings_err(format!(
            "{R_HEAD}1,9,4.0,5\n2,1,4.0,5\n1,9,3.0,6\n1,x,3.0,6\n"
        ));
        check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
        assert!(e.detail.contains("line 2"), "{}", e.detail);
        // The earlier duplicate wins over a later bad row in the same run.
        let e = strict_ratings_err(format!(
            "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n1,9,3.0,6\n1,x,3.0,6\n"
        ));
        check(&e, IssueKind::DuplicateRating, 4, "ratings.csv");
    }

    #[test]
    fn duplicate_lines_stay_right_after_dropping_rows() {
        let (_dir, p) = ratings_file(format!(
            "{R_HEAD}1,9,4.0,5\n1,2,4.0,5\n1,9,3.0,6\n1,5,3.0,6\n2,1,4.0,5\n1,5,1.0,7\n1,2,1.0,7\n"
        ));
        let mut skipped = SkipReport::default();
        let got = read_ratings(&p, lenient(), None, &mut skipped).unwrap();
        assert_eq!(
            got,
            [
                r(1, 9, 4.0, 5),
                r(1, 2, 4.0, 5),
                r(1, 5, 3.0, 6),
                r(2, 1, 4.0, 5)
            ]
        );
        let found: Vec<(u64, &str)> = skipped
            .examples
            .iter()
            .map(|e| (e.line, e.detail.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (4, "user 1 already rated movie 9 on line 2"),
                (7, "user 1 already rated movie 5 on line 5"),
                (8, "user 1 already rated movie 2 on line 3"),
            ]
        );
    }

    #[test]
    fn duplicate_movie_names_the_first_line() {
        let e = strict_movies_err(
            "movieId,title,genres\n1,A (1995),Comedy\n2,B (1995),Drama\n1,C (1996),Drama\n",
        );
        check(&e, IssueKind::DuplicateMovie, 4, "movies.csv");
        assert!(e.detail.contains("line 2"), "{}", e.detail);
    }

    #[test]
    fn ratings_for_unlisted_movies_are_unknown_movie() {
        let dir = tempfile::tempdir().unwrap();
        let m = write(
            dir.path(),
            "movies.csv",
            format!("{M_HEAD}1,A (1995),Comedy\n2,B (1995),Drama\n"),
        );
        let rp = write(
            dir.path(),
            "ratings.csv",
            format!("{R_HEAD}1,1,4.0,5\n1,2,4.0,5\n1,99,4.0,5\n"),
        );
        let e = input_err(read_files(&rp, &m, strict()));
        check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");
        assert!(e.detail.contains("99"), "{}", e.detail);
        let e = input_err(read_dir(dir.path(), strict()));
        check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");

        let known: HashSet<i32> = [1, 2].into();
        let e = input_err(read_ratings(
            &rp,
            strict(),
            Some(&known),
            &mut SkipReport::default(),
        ));
        check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");
        // Huge ids take the hash-set path.
        let known: HashSet<i32> = [1, 2, i32::MAX].into();
        let e = input_err(read_ratings(
            &rp,
            strict(),
            Some(&known),
            &mut SkipReport::default(),
        ));
        check(&e, IssueKind::UnknownMovie, 4, "ratings.csv");
        // Without a movie list nothing is unknown.
        assert_eq!(
            read_ratings(&rp, strict(), None, &mut SkipReport::default())
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn wrong_header_is_bad_header_even_when_skipping() {
        let e = strict_ratings_err("user,movie,rating,timestamp\n1,1,4.0,5\n");
        check(&e, IssueKind::BadHeader, 1, "ratings.csv");
        assert!(
            e.detail.contains("userId,movieId,rating,timestamp"),
            "{}",
            e.detail
        );
        // Missing header: the first line is data.
        let e = strict_ratings_err("1,1,4.0,5\n");
        check(&e, IssueKind::BadHeader, 1, "ratings.csv");
        assert!(e.detail.contains("looks like data"), "{}", e.detail);
        // A DAT file with a .csv name.
        let e = strict_ratings_err("1::1::4::5\n");
        assert!(e.detail.contains(".dat"), "{}", e.detail);
        // Leading blank lines and a BOM shift the header's line.
        let e = strict_ratings_err("\u{feff}\n\nuserId,movieId,rating\n1,1,4.0\n");
        check(&e, IssueKind::BadHeader, 3, "ratings.csv");
        let (_dir, p) = ratings_file("a,b,c,d\n1,1,4.0,5\n");
        let e = input_err(read_ratings(
            &p,
            lenient(),
            None,
            &mut SkipReport::default(),
        ));
        check(&e, IssueKind::BadHeader, 1, "ratings.csv");
        let e = strict_movies_err("movieId,name,genres\n1,A (1995),Comedy\n");
        check(&e, IssueKind::BadHeader, 1, "movies.csv");
    }

    #[test]
    fn overlong_title_or_genres_is_too_long() {
        let ok = "é".repeat(TITLE_MAX_CHARS); // 1000 bytes, 500 characters
        let long = "a".repeat(TITLE_MAX_CHARS + 1);
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "movies.csv", format!("{M_HEAD}1,{ok},Comedy\n"));
        let movies = read_movies(&p, strict(), &mut SkipReport::default()).unwrap();
        assert_eq!(movies[0].title.chars().count(), TITLE_MAX_CHARS);

        let e = strict_movies_err(format!("{M_HEAD}1,{ok},Comedy\n2,{long},Drama\n"));
        check(&e, IssueKind::TooLong, 3, "movies.csv");
        assert!(e.detail.contains("title"), "{}", e.detail);
        let genres = "Comedy|".repeat(29); // 203 characters
        let e = strict_movies_err(format!("{M_HEAD}1,A (1995),{genres}\n"));
        check(&e, IssueKind::TooLong, 2, "movies.csv");
        assert!(e.detail.contains("genres"), "{}", e.detail);
    }

    // --- skipping ---------------------------------------------------------

    #[test]
    fn skip_invalid_counts_each_kind_and_keeps_good_rows() {
        let dir = tempfile::tempdir().unwrap();
        let m = write(
            dir.path(),
            "movies.csv",
            format!("{M_HEAD}1,A (1995),Comedy\n2,B (1995),Drama\n3,,Drama\n2,B again,Drama\n4,C (1997),Drama\n"),
        );
        let rp = write(
            dir.path(),
            "ratings.csv",
            b"userId,movieId,rating,timestamp\n\
              1,1,4.0,5\n\
              1,2,9.0,5\n\
              1,2,3.3,5\n\
              1,4,3.0,5\n\
              1,x,3.0,5\n\
              1,1,2.0,6\n\
              1,3,2.0,6\n\
              1,2\n\
              2,\xff,1.0,5\n\
              2,2,1.0,5\n\
              2,1,1.0,5\n\
              2,2,1.5,5\n",
        );
        let ds = read_files(&rp, &m, lenient()).unwrap();
        assert_eq!(ds.movies.len(), 3);
        assert_eq!(
            ds.ratings,
            [
                r(1, 1, 4.0, 5),
                r(1, 4, 3.0, 5),
                r(2, 2, 1.0, 5),
                r(2, 1, 1.0, 5)
            ]
        );
        let c = |k| ds.skipped.counts.get(&k).copied().unwrap_or(0);
        assert_eq!(c(IssueKind::Malformed), 1);
        assert_eq!(c(IssueKind::DuplicateMovie), 1);
        assert_eq!(c(IssueKind::RatingOutOfRange), 1);
        assert_eq!(c(IssueKind::RatingNotHalfStep), 1);
        assert_eq!(c(IssueKind::NotNumeric), 1);
        assert_eq!(c(IssueKind::DuplicateRating), 2);
        assert_eq!(c(IssueKind::UnknownMovie), 1);
        assert_eq!(c(IssueKind::ColumnCount), 1);
        assert_eq!(c(IssueKind::Encoding), 1);
        assert_eq!(ds.skipped.total(), 10);
        let examples: Vec<(&str, u64, IssueKind)> = ds
            .skipped
            .examples
            .iter()
            .map(|e| {
                (
                    e.file.file_name().unwrap().to_str().unwrap(),
                    e.line,
                    e.kind,
                )
            })
            .collect();
        assert_eq!(
            examples,
            [
                ("movies.csv", 4, IssueKind::Malformed),
                ("movies.csv", 5, IssueKind::DuplicateMovie),
                ("ratings.csv", 3, IssueKind::RatingOutOfRange),
                ("ratings.csv", 4, IssueKind::RatingNotHalfStep),
                ("ratings.csv", 6, IssueKind::NotNumeric),
            ]
        );

        // Duplicates found when an unsorted run closes, and across users.
        let p = write(
            dir.path(),
            "batch.csv",
            format!("{R_HEAD}5,9,4.0,5\n5,2,4.0,5\n5,9,3.0,6\n6,1,4.0,5\n5,2,1.0,7\n6,1,2.0,8\n"),
        );
        let mut skipped = SkipReport::default();
        let got = read_ratings(&p, lenient(), None, &mut skipped).unwrap();
        assert_eq!(got, [r(5, 9, 4.0, 5), r(5, 2, 4.0, 5), r(6, 1, 4.0, 5)]);
        let lines: Vec<(u64, &str)> = skipped
            .examples
            .iter()
            .map(|e| (e.line, e.detail.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (4, "user 5 already rated movie 9 on line 2"),
                (6, "user 5 already rated movie 2 on line 3"),
                (7, "user 6 already rated movie 1 on line 5"),
            ]
        );
    }

    // --- formats ----------------------------------------------------------

    #[test]
    fn csv_quoted_titles_with_commas_and_quotes() {
        let ds = read_dir(&fixtures().join("csv"), strict()).unwrap();
        assert!(ds.skipped.is_empty());
        let title = |id| {
            ds.movies
                .iter()
                .find(|m| m.movie_id == id)
                .unwrap()
                .title
                .clone()
        };
        assert_eq!(title(11), "American President, The (1995)");
        assert_eq!(title(7789), "11'09\"01 - September 11 (2002)");
        assert_eq!(title(114), "Café au lait (Métisse) (1993)");
        assert_eq!(ds.movies.len(), 6);
        assert_eq!(ds.ratings.len(), 7);
        assert_eq!(ds.ratings[0], r(1, 1, 4.0, 964982703));
        assert_eq!(ds.ratings[3], r(2, 1, 0.5, 1445714835));
        let m = &ds.movies[5];
        assert_eq!(
            (m.genres.as_str(), m.pca_features.is_none()),
            ("(no genres listed)", true)
        );
        assert_eq!(m.genre_list().count(), 0);
    }

    #[test]
    fn csv_line_numbers_survive_bom_crlf_blank_lines_and_multiline_records() {
        // CRLF, a BOM, blank lines, and no final newline.
        let e = strict_ratings_err(b"\xEF\xBB\xBFuserId,movieId,rating,timestamp\r\n1,1,4.0,5\r\n\r\n\r\n1,2,4.0,5\r\n1,3,7.0,5");
        check(&e, IssueKind::RatingOutOfRange, 6, "ratings.csv");
        let e = strict_ratings_err("userId,movieId,rating,timestamp\r1,1,4.0,5\r1,2,x,5\r");
        check(&e, IssueKind::NotNumeric, 3, "ratings.csv");
        // A quoted line break is skipped as malformed; later lines keep
        // their physical numbers.
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "movies.csv",
            "movieId,title,genres\n1,\"Two\nLines (1995)\",Comedy\n\n2,\"Fine, Really (1996)\",Drama\n3,\"\",Drama\n",
        );
        let mut skipped = SkipReport::default();
        let movies = read_movies(&p, lenient(), &mut skipped).unwrap();
        assert_eq!(movies.len(), 1);
        assert_eq!(movies[0].title, "Fine, Really (1996)");
        let got: Vec<(IssueKind, u64)> =
            skipped.examples.iter().map(|e| (e.kind, e.line)).collect();
        assert_eq!(got, [(IssueKind::Malformed, 2), (IssueKind::Malformed, 6)]);
    }

    #[test]
    fn csv_titles_with_unquoted_commas_are_rejoined() {
        // ml-25m and ml-32m ship a few rows like this.
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "movies.csv",
            format!("{M_HEAD}117845,T,O,U,C,H,I,N,G (1969),(no genres listed)\n80584,Patrik Age 1.5 (Patrik 1,5) (2008),Comedy|Drama|Romance\n"),
        );
        let movies = read_movies(&p, strict(), &mut SkipReport::default()).unwrap();
        assert_eq!(movies[0].title, "T,O,U,C,H,I,N,G (1969)");
        assert_eq!(movies[1].title, "Patrik Age 1.5 (Patrik 1,5) (2008)");
        assert_eq!(movies[1].genres, "Comedy|Drama|Romance");
    }

    #[test]
    fn dat_reads_latin1_titles_and_modern_genre_names() {
        let dir = fixtures().join("dat");
        let ds = read_dir(&dir, strict()).unwrap();
        assert_eq!(ds.movies.len(), 5);
        assert_eq!(ds.ratings.len(), 6);
        let m = ds.movies.iter().find(|m| m.movie_id == 73).unwrap();
        assert_eq!(m.title, "Misérables, Les (1995)");
        assert_eq!(ds.movies[0].genres, "Animation|Children|Comedy");
        assert_eq!(ds.ratings[0], r(1, 1193, 5.0, 978300760));

        // UTF-8 lines still read as UTF-8; half stars (ml-10m) are fine.
        let tmp = tempfile::tempdir().unwrap();
        let m = write(
            tmp.path(),
            "movies.dat",
            "1::Amélie (2001)::Comedy|Romance\r\n2::Caf\u{e9}::Drama\n",
        );
        let rp = write(
            tmp.path(),
            "ratings.dat",
            "1::1::3.5::838985046\n1::2::5::838983525\n",
        );
        let ds = read_files(&rp, &m, strict()).unwrap();
        assert_eq!(ds.movies[0].title, "Amélie (2001)");
        assert_eq!(ds.movies[0].genres, "Comedy|Romance");
        assert_eq!(ds.ratings[0].rating, 3.5);
        // Latin-1 bytes never produce an encoding error in a .dat file.
        let m = write(
            tmp.path(),
            "movies.dat",
            b"1::\xc0 bout de souffle (1960)::Crime\n",
        );
        let movies = read_movies(&m, strict(), &mut SkipReport::default()).unwrap();
        assert_eq!(movies[0].title, "À bout de souffle (1960)");
        let e = input_err(read_movies(
            &write(tmp.path(), "m.dat", "1::::Crime\n"),
            strict(),
            &mut SkipReport::default(),
        ));
        check(&e, IssueKind::Malformed, 1, "m.dat");
    }

    #[test]
    fn ml100k_reads_genre_flags_and_latin1_titles() {
        let dir = fixtures().join("ml-100k");
        let ds = read_dir(&dir, strict()).unwrap();
        let by_id = |id| ds.movies.iter().find(|m| m.movie_id == id).unwrap();
        assert_eq!(by_id(1).genres, "Animation|Children|Comedy");
        assert_eq!(by_id(2).genres, "Action|Adventure|Thriller");
        assert_eq!(by_id(267).genres, "(no genres listed)");
        assert_eq!(by_id(267).title, "unknown");
        assert_eq!(by_id(1309).title, "Très belle (1997)");
        assert_eq!(by_id(1309).genres, "Drama");
        assert_eq!(ds.ratings.len(), 5);
        assert_eq!(ds.ratings[0], r(196, 1, 3.0, 881250949));
        assert_eq!(ds.ratings[4], r(186, 1, 5.0, 891717743));

        // u.data is not grouped by user, so duplicates are found globally.
        let tmp = tempfile::tempdir().unwrap();
        let p = write(
            tmp.path(),
            "u.data",
            "196\t1\t3\t1\n186\t2\t3\t1\n196\t1\t2\t2\n",
        );
        let e = input_err(read_ratings(&p, strict(), None, &mut SkipReport::default()));
        check(&e, IssueKind::DuplicateRating, 3, "u.data");
        assert!(e.detail.contains("line 1"), "{}", e.detail);
        // A movie file needs all 24 columns.
        let p = write(
            tmp.path(),
            "u.item",
            "1|Toy Story (1995)|01-Jan-1995||url|0|0\n",
        );
        let e = input_err(read_movies(&p, strict(), &mut SkipReport::default()));
        check(&e, IssueKind::ColumnCount, 1, "u.item");
        assert!(e.detail.contains("expected 24"), "{}", e.detail);
    }

    #[test]
    fn read_files_infers_layouts_from_names_and_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let dat = fixtures().join("dat");
        let item = fixtures().join("ml-100k/u.item");
        // Unknown extensions: sniffed from the first line.
        let rp = write(
            tmp.path(),
            "week-12.txt",
            std::fs::read(dat.join("ratings.dat")).unwrap(),
        );
        let m = write(
            tmp.path(),
            "titles.txt",
            std::fs::read(dat.join("movies.dat")).unwrap(),
        );
        let ds = read_files(&rp, &m, strict()).unwrap();
        assert_eq!((ds.ratings.len(), ds.movies.len()), (6, 5));
        let rp = write(tmp.path(), "batch.tsv", "196\t1\t3\t881250949\n");
        let ds = read_files(&rp, &item, strict()).unwrap();
        assert_eq!(ds.ratings, [r(196, 1, 3.0, 881250949)]);
        let rp = write(tmp.path(), "batch.txt", "22\t267\t1\t878887116\n");
        let m = write(tmp.path(), "items.txt", std::fs::read(&item).unwrap());
        let ds = read_files(&rp, &m, strict()).unwrap();
        assert_eq!(ds.ratings.len(), 1);
        assert_eq!(ds.movies.len(), 4);
        let rp = write(tmp.path(), "batch", format!("{R_HEAD}1,1,4.0,5\n"));
        let m = fixtures().join("csv/movies.csv");
        assert_eq!(read_files(&rp, &m, strict()).unwrap().ratings.len(), 1);
        // A movie list passed as ratings is refused up front.
        let e = read_ratings(&item, strict(), None, &mut SkipReport::default()).unwrap_err();
        assert!(matches!(e, crate::Error::InvalidArgument(_)), "{e}");
        // A missing file is an I/O error naming it.
        let e = read_files(&tmp.path().join("nope.csv"), &m, strict()).unwrap_err();
        assert!(
            matches!(e, crate::Error::Io { .. }) && e.to_string().contains("nope.csv"),
            "{e}"
        );
    }

    #[test]
    fn detect_format_recognises_each_layout() {
        let f = fixtures();
        for (sub, format, r, m) in [
            ("csv", Format::Csv, "ratings.csv", "movies.csv"),
            ("dat", Format::Dat, "ratings.dat", "movies.dat"),
            ("ml-100k", Format::Ml100k, "u.data", "u.item"),
        ] {
            let (got, rp, mp) = detect_format(&f.join(sub)).unwrap();
            assert_eq!(got, format);
            assert_eq!((rp, mp), (f.join(sub).join(r), f.join(sub).join(m)));
        }
    }

    #[test]
    fn detect_format_explains_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let e = detect_format(tmp.path()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, crate::Error::NotFound(_)));
        for name in [
            "ratings.csv",
            "movies.csv",
            "ratings.dat",
            "movies.dat",
            "u.data",
            "u.item",
        ] {
            assert!(msg.contains(name), "{msg}");
        }
        assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");

        write(tmp.path(), "ratings.csv", R_HEAD);
        let msg = detect_format(tmp.path()).unwrap_err().to_string();
        assert!(msg.contains("found only ratings.csv"), "{msg}");

        let sub = tmp.path().join("ml-latest-small");
        std::fs::create_dir(&sub).unwrap();
        write(&sub, "ratings.csv", R_HEAD);
        write(&sub, "movies.csv", M_HEAD);
        let msg = detect_format(tmp.path()).unwrap_err().to_string();
        assert!(msg.contains("ml-latest-small"), "{msg}");

        let e = detect_format(&tmp.path().join("missing")).unwrap_err();
        assert!(matches!(e, crate::Error::NotFound(_)) && e.to_string().contains("missing"));
        let e = detect_format(&tmp.path().join("ratings.csv")).unwrap_err();
        assert!(matches!(e, crate::Error::InvalidArgument(_)), "{e}");
    }

    // --- real releases ----------------------------------------------------

    #[test]
    fn reads_ml_latest_small() {
        let dir = shared_data().join("ml-latest-small");
        let ds = read_dir(&dir, strict()).unwrap();
        assert_eq!(ds.ratings.len(), 100_836);
        assert_eq!(ds.movies.len(), 9_742);
        assert!(ds.skipped.is_empty());
        assert_eq!(ds.ratings[0], r(1, 1, 4.0, 964982703));
        assert_eq!(ds.movies[0].title, "Toy Story (1995)");
        assert_eq!(
            ds.movies[0].genres,
            "Adventure|Animation|Children|Comedy|Fantasy"
        );
        let quoted = ds.movies.iter().find(|m| m.movie_id == 7789).unwrap();
        assert_eq!(quoted.title, "11'09\"01 - September 11 (2002)");
    }

    #[test]
    fn reads_ml_25m_movies() {
        let p = shared_data().join("ml-25m-movies/movies.csv");
        let movies = read_movies(&p, strict(), &mut SkipReport::default()).unwrap();
        assert_eq!(movies.len(), 62_423);
        let duck = movies.iter().find(|m| m.movie_id == 2031).unwrap();
        assert_eq!(
            duck.title,
            "Million Dollar Duck;The (a.k.a. $1,000 000 Duck) (1971)"
        );
        assert_eq!(duck.genres, "Children|Comedy");
    }

    // --- internals --------------------------------------------------------

    #[test]
    fn line_of_follows_anchors() {
        let anchors = [(0, 2), (3, 9), (4, 20)];
        let lines: Vec<u64> = (0..6).map(|i| line_of(&anchors, i)).collect();
        assert_eq!(lines, [2, 3, 4, 9, 20, 21]);
    }

    #[test]
    fn lf_reader_normalises_split_crlf() {
        struct Chunks(Vec<&'static [u8]>);
        impl Read for Chunks {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Ok(0);
                }
                let c = self.0.remove(0);
                buf[..c.len()].copy_from_slice(c);
                Ok(c.len())
            }
        }
        let mut rdr = LfReader::new(Chunks(vec![b"a\r", b"\n", b"b\rc\r\n", b"d"]));
        let mut out = Vec::new();
        rdr.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"a\nb\nc\nd");
        assert!(rdr.eof);
    }
}
