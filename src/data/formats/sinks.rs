//! Where parsed rows go: the `--skip-invalid` policy, and the checks that
//! need more than one row (a movieId listed twice, a (user, movie) pair
//! rated twice, a rating of a movie the movie file does not list).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use super::fields::{normalize_genres, parse_id, RowIssue};
use super::{GENRES_MAX_CHARS, TITLE_MAX_CHARS};
use crate::data::{InputError, IssueKind, ReadOptions, SkipReport};
use crate::types::{Movie, Rating};

/// Applies `--skip-invalid`: either the first problem aborts the read, or
/// every skippable problem is counted and its row dropped.
pub(super) struct Issues<'a> {
    file: &'a Path,
    skip: bool,
    report: &'a mut SkipReport,
}

impl<'a> Issues<'a> {
    pub(super) fn new(file: &'a Path, opts: ReadOptions, report: &'a mut SkipReport) -> Self {
        Issues {
            file,
            skip: opts.skip_invalid,
            report,
        }
    }

    pub(super) fn error(
        &self,
        line: u64,
        kind: IssueKind,
        detail: impl Into<String>,
    ) -> InputError {
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

pub(super) struct MovieSink<'a> {
    pub(super) issues: Issues<'a>,
    pub(super) out: Vec<Movie>,
    /// movieId -> line of its first listing.
    seen: HashMap<i32, u64>,
    /// Rows whose title held unquoted commas and was put back together.
    pub(super) rejoined: u64,
}

impl<'a> MovieSink<'a> {
    pub(super) fn new(issues: Issues<'a>) -> Self {
        MovieSink {
            issues,
            out: Vec::new(),
            seen: HashMap::new(),
            rejoined: 0,
        }
    }

    pub(super) fn problem(
        &mut self,
        line: u64,
        kind: IssueKind,
        detail: String,
    ) -> crate::Result<()> {
        let e = self.issues.error(line, kind, detail);
        self.issues.raise(e)
    }

    pub(super) fn add(
        &mut self,
        line: u64,
        id: &[u8],
        title: &str,
        genres: &str,
    ) -> crate::Result<()> {
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

/// Membership test for known movieIds, and where they are listed (for the
/// message about a rating of another movie).
pub(super) struct MovieFilter<'a> {
    ids: MovieIds<'a>,
    /// "the movie file" (a release being read) or "the catalogue" (the
    /// stored movies a batch is checked against).
    listed_in: &'static str,
}

/// The ids: a bitset when they are dense (every release), because this
/// runs once per rating.
enum MovieIds<'a> {
    Bits(Vec<u64>),
    Borrowed(&'a HashSet<i32>),
    Owned(HashSet<i32>),
}

/// Ids above this use a hash set instead of a bitset (16 MiB at most).
const BITSET_MAX_ID: i32 = 1 << 27;

impl<'a> MovieFilter<'a> {
    fn bits(ids: impl Iterator<Item = i32>, max: i32) -> MovieIds<'a> {
        let mut bits = vec![0u64; (max.max(0) as usize) / 64 + 1];
        for id in ids.filter(|&id| id >= 0) {
            bits[id as usize / 64] |= 1 << (id % 64);
        }
        MovieIds::Bits(bits)
    }

    /// The stored catalogue's ids, which a batch is checked against.
    pub(super) fn from_set(set: &'a HashSet<i32>) -> MovieFilter<'a> {
        let max = set.iter().copied().max().unwrap_or(0);
        let ids = if max <= BITSET_MAX_ID {
            Self::bits(set.iter().copied(), max)
        } else {
            MovieIds::Borrowed(set)
        };
        MovieFilter {
            ids,
            listed_in: "the catalogue",
        }
    }

    /// The ids of the movie file read with the ratings.
    pub(super) fn from_ids(ids: impl Iterator<Item = i32> + Clone) -> MovieFilter<'a> {
        let max = ids.clone().max().unwrap_or(0);
        let ids = if max <= BITSET_MAX_ID {
            Self::bits(ids, max)
        } else {
            MovieIds::Owned(ids.collect())
        };
        MovieFilter {
            ids,
            listed_in: "the movie file",
        }
    }

    fn contains(&self, id: i32) -> bool {
        match &self.ids {
            MovieIds::Bits(bits) => {
                id >= 0
                    && bits
                        .get(id as usize / 64)
                        .is_some_and(|w| w & (1 << (id % 64)) != 0)
            }
            MovieIds::Borrowed(set) => set.contains(&id),
            MovieIds::Owned(set) => set.contains(&id),
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

pub(super) struct RatingSink<'a, 'f> {
    pub(super) issues: Issues<'a>,
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
    pub(super) fn new(
        issues: Issues<'a>,
        known: Option<&'f MovieFilter<'f>>,
        capacity: usize,
    ) -> Self {
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
    pub(super) fn problem(
        &mut self,
        line: u64,
        kind: IssueKind,
        detail: String,
    ) -> crate::Result<()> {
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

    pub(super) fn accept(&mut self, line: u64, r: Rating) -> crate::Result<()> {
        if let Some(known) = self.known {
            if !known.contains(r.movie_id) {
                return self.problem(
                    line,
                    IssueKind::UnknownMovie,
                    format!("movieId {} is not in {}", r.movie_id, known.listed_in),
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

    pub(super) fn finish(mut self) -> crate::Result<Vec<Rating>> {
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

    #[test]
    fn line_of_follows_anchors() {
        let anchors = [(0, 2), (3, 9), (4, 20)];
        let lines: Vec<u64> = (0..6).map(|i| line_of(&anchors, i)).collect();
        assert_eq!(lines, [2, 3, 4, 9, 20, 21]);
    }
}
