//! Drift injection: the changes a week can carry, their CLI form, the
//! checks both the CLI and programmatic specs go through, and how a week's
//! drift changes each rating and each movie's chance of being rated.
//!
//! Monitoring compares each week's new ratings with the training history, so
//! testing it needs weeks that are known to be clean (a detector must stay
//! quiet) and weeks with a known, controlled change (it must fire, and on the
//! right statistic).

use std::fmt;

use crate::types::MOVIELENS_GENRES;
use crate::{Error, Result};

/// A genre drift of `delta` stars also multiplies its movies' sampling
/// weight by `1 + GENRE_BOOST * |delta|`: a genre that suddenly rates
/// differently is usually one that is suddenly watched more (a hit release,
/// a festival), and the genre-mix statistics need something to detect.
pub const GENRE_BOOST: f64 = 4.0;

/// Largest drift shift accepted, in stars: beyond it every rating clips.
const MAX_SHIFT: f64 = 4.5;
/// Largest spread factor accepted.
const MAX_SPREAD: f64 = 10.0;
/// The CLI form, quoted in parse errors.
const DRIFT_EXAMPLE: &str = "mean:+0.4,genre:Comedy:+0.3,new-movies:0.2,spread:1.5";

/// A change injected into one week's batch.
#[derive(Debug, Clone, PartialEq)]
pub enum DriftKind {
    /// Shift every rating of the week by `delta` stars before rounding and
    /// clipping: moves the mean, and with it the KS statistic, PSI and
    /// chi-square of the rating histogram. Clipping at 5 stars absorbs part
    /// of a positive shift (about a fifth of +0.4).
    Mean(f64),
    /// Shift the ratings of movies having `genre` by `delta` stars and
    /// multiply those movies' sampling weight by `1 + GENRE_BOOST * |delta|`,
    /// so both the genre's ratings and the week's genre mix (Jensen–Shannon
    /// divergence of genre shares) drift.
    Genre { genre: String, delta: f64 },
    /// This share of the week's ratings are on brand-new movies (ids above
    /// every existing id, listed in `movies.csv` but never rated in the
    /// history), and independently the same share are by brand-new users
    /// (ids above every history user): the "unseen movies/users" drift. The
    /// newcomers follow the world's model, so only their novelty changes.
    NewMovies(f64),
    /// Scale every rating's deviation from the history's mean by this
    /// factor before rounding and clipping (1.5 widens, 0.5 narrows):
    /// moves the standard deviation while keeping the mean (up to clipping).
    Spread(f64),
}

impl DriftKind {
    /// The name used in the CLI form, for errors and duplicate checks.
    fn name(&self) -> &'static str {
        match self {
            DriftKind::Mean(_) => "mean",
            DriftKind::Genre { .. } => "genre",
            DriftKind::NewMovies(_) => "new-movies",
            DriftKind::Spread(_) => "spread",
        }
    }

    /// Range checks shared by [`parse_drift`] and [`generate_weekly`](super::generate_weekly), so a
    /// programmatic spec cannot do what the CLI refuses. Returns the kind
    /// with its genre spelled as MovieLens spells it.
    fn checked(&self) -> std::result::Result<DriftKind, String> {
        let shift = |what: &str, d: f64| {
            if d.is_finite() && d.abs() <= MAX_SHIFT {
                Ok(())
            } else {
                Err(format!(
                    "{what} must be a shift in stars between -{MAX_SHIFT} and +{MAX_SHIFT}, got {d}"
                ))
            }
        };
        match self {
            DriftKind::Mean(d) => shift("mean", *d).map(|()| self.clone()),
            DriftKind::Genre { genre, delta } => {
                shift("the genre shift", *delta)?;
                let canonical = MOVIELENS_GENRES
                    .iter()
                    .find(|g| g.eq_ignore_ascii_case(genre.trim()))
                    .ok_or_else(|| {
                        format!(
                            "unknown genre \"{genre}\"; synthetic movies use {}",
                            MOVIELENS_GENRES.join(", ")
                        )
                    })?;
                Ok(DriftKind::Genre {
                    genre: (*canonical).to_string(),
                    delta: *delta,
                })
            }
            DriftKind::NewMovies(s) => {
                if (0.0..=1.0).contains(s) {
                    Ok(self.clone())
                } else {
                    Err(format!(
                        "new-movies is the share of the week's ratings on new movies, \
                         between 0 and 1; got {s}"
                    ))
                }
            }
            DriftKind::Spread(f) => {
                if f.is_finite() && *f > 0.0 && *f <= MAX_SPREAD {
                    Ok(self.clone())
                } else {
                    Err(format!(
                        "spread scales deviations from the mean and must be above 0 and at \
                         most {MAX_SPREAD} (1.5 widens, 0.5 narrows); got {f}"
                    ))
                }
            }
        }
    }
}

/// The CLI form, which [`parse_drift`] reads back.
impl fmt::Display for DriftKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriftKind::Mean(d) => write!(f, "mean:{d:+}"),
            DriftKind::Genre { genre, delta } => write!(f, "genre:{genre}:{delta:+}"),
            DriftKind::NewMovies(s) => write!(f, "new-movies:{s}"),
            DriftKind::Spread(s) => write!(f, "spread:{s}"),
        }
    }
}

/// The drift injected into week `week` (1-based).
#[derive(Debug, Clone, PartialEq)]
pub struct DriftSpec {
    pub week: u32,
    pub kinds: Vec<DriftKind>,
}

/// Parses the CLI form, e.g. `mean:+0.4,genre:Comedy:+0.3,new-movies:0.2,spread:1.5`.
///
/// Items are comma-separated, fields colon-separated; names and genres are
/// case-insensitive and spaces around items are ignored. Each kind may
/// appear once (genre once per genre), because two shifts of the same
/// statistic in one week would make the expected effect ambiguous. Errors
/// quote the offending item.
pub fn parse_drift(s: &str) -> Result<Vec<DriftKind>> {
    let bad = |item: &str, why: String| {
        Err(Error::InvalidArgument(format!(
            "drift \"{item}\": {why} (expected e.g. {DRIFT_EXAMPLE})"
        )))
    };
    if s.trim().is_empty() {
        return bad(s, "no drift given".into());
    }
    let mut out: Vec<DriftKind> = Vec::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            return bad(s, "empty item between commas".into());
        }
        let fields: Vec<&str> = item.split(':').map(str::trim).collect();
        let number = |what: &str, v: &str| -> std::result::Result<f64, String> {
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(format!("{what} \"{v}\" is not a number")),
            }
        };
        let name = fields[0].to_ascii_lowercase();
        let arity = match name.as_str() {
            "genre" => 3,
            "mean" | "new-movies" | "new_movies" | "spread" => 2,
            _ => {
                return bad(
                    item,
                    format!(
                        "unknown drift kind \"{}\"; use mean, genre, new-movies or spread",
                        fields[0]
                    ),
                )
            }
        };
        if fields.len() != arity {
            let form = match name.as_str() {
                "genre" => "genre:GENRE:DELTA",
                "mean" => "mean:DELTA",
                "spread" => "spread:FACTOR",
                _ => "new-movies:SHARE",
            };
            return bad(item, format!("expected the form {form}"));
        }
        let parsed = match name.as_str() {
            "mean" => number("the mean shift", fields[1]).map(DriftKind::Mean),
            "genre" => number("the genre shift", fields[2]).map(|delta| DriftKind::Genre {
                genre: fields[1].to_string(),
                delta,
            }),
            "spread" => number("the spread factor", fields[1]).map(DriftKind::Spread),
            _ => number("the new-movies share", fields[1]).map(DriftKind::NewMovies),
        };
        let kind = match parsed.and_then(|k| k.checked()) {
            Ok(k) => k,
            Err(why) => return bad(item, why),
        };
        if let Some(dup) = out.iter().find(|k| same_slot(k, &kind)) {
            return bad(item, format!("repeats \"{dup}\"; give each kind once"));
        }
        out.push(kind);
    }
    Ok(out)
}

/// Whether two kinds would drive the same statistic (same kind, and for
/// genre drift the same genre).
fn same_slot(a: &DriftKind, b: &DriftKind) -> bool {
    match (a, b) {
        (DriftKind::Genre { genre: x, .. }, DriftKind::Genre { genre: y, .. }) => x == y,
        _ => a.name() == b.name(),
    }
}

/// How a week's drift changes each rating and each movie's chance of being
/// rated.
#[derive(Debug, Clone, Default)]
pub(super) struct Effect {
    shift: f64,
    spread: Option<f64>,
    /// (genre bit, shift in stars)
    pub(super) genres: Vec<(u32, f64)>,
    /// Share of ratings on new movies (and by new users).
    pub(super) new_share: f64,
    /// Spread is around this: the history's mean rating.
    pub(super) center: f64,
}

impl Effect {
    pub(super) fn new(kinds: &[DriftKind]) -> Effect {
        let mut e = Effect::default();
        for k in kinds {
            match k {
                DriftKind::Mean(d) => e.shift = *d,
                DriftKind::Spread(f) => e.spread = Some(*f),
                DriftKind::NewMovies(s) => e.new_share = *s,
                DriftKind::Genre { genre, delta } => {
                    if let Some(j) = MOVIELENS_GENRES.iter().position(|g| g == genre) {
                        e.genres.push((1 << j, *delta));
                    }
                }
            }
        }
        e
    }

    pub(super) fn stars(&self, stars: f64, genres: u32) -> f64 {
        let mut s = stars;
        if let Some(f) = self.spread {
            s = self.center + f * (s - self.center);
        }
        s += self.shift;
        for &(bit, d) in &self.genres {
            if genres & bit != 0 {
                s += d;
            }
        }
        s
    }

    /// Sampling-weight multiplier for a movie with these genres.
    pub(super) fn boost(&self, genres: u32) -> f64 {
        self.genres
            .iter()
            .filter(|(bit, _)| genres & bit != 0)
            .map(|(_, d)| 1.0 + GENRE_BOOST * d.abs())
            .product()
    }
}

/// Checks the drift specs and gathers them by week (0-based index).
pub(super) fn resolve_drift(weeks: u32, specs: &[DriftSpec]) -> Result<Vec<Vec<DriftKind>>> {
    let mut per_week: Vec<Vec<DriftKind>> = vec![Vec::new(); weeks as usize];
    for spec in specs {
        if spec.week == 0 || spec.week > weeks {
            return Err(Error::InvalidArgument(format!(
                "drift is set for week {}, but weeks run from 1 to {}",
                spec.week, weeks
            )));
        }
        let slot = &mut per_week[spec.week as usize - 1];
        for k in &spec.kinds {
            let k = k.checked().map_err(|why| {
                Error::InvalidArgument(format!("drift \"{k}\" for week {}: {why}", spec.week))
            })?;
            if let Some(dup) = slot.iter().find(|d| same_slot(d, &k)) {
                return Err(Error::InvalidArgument(format!(
                    "week {} has drift \"{dup}\" and \"{k}\"; give each kind once per week",
                    spec.week
                )));
            }
            slot.push(k);
        }
    }
    Ok(per_week)
}
