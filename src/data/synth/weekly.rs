//! Weekly batches after the history: [`generate_weekly`] plans the weeks
//! (see `plan`), then draws each history user's batch ratings in parallel,
//! matched to their history, and writes `batches/batch_wN.csv`. Batches are
//! drawn from the same world as the history, so a model trained on the
//! history predicts clean weeks as well as its test set.

use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::drift::{resolve_drift, DriftKind};
use super::history::write_history;
use super::plan::{plan_weeks, WeekPlan};
use super::random::{below, domain, normal, rng_for, AliasTable};
use super::week::{WeeklyOptions, WEEK_SECONDS};
use super::world::{round_stars, to_stars, Scratch, SynthWorld, BASE_STREAM};
use super::{SynthOptions, SynthReport};
use crate::data::writer::{batch_path, prepare_batch_dir, write_ratings_file};
use crate::progress::Progress;
use crate::types::Rating;
use crate::{Error, Result};

/// A batch movie counts as matching a history movie when their noise-free
/// scores differ by at most this many stars (see [`Marks::pick`]): well
/// below the rating noise and the half-star rounding, so the match is
/// invisible in the histogram.
const MATCH_TOLERANCE: f64 = 0.05;
/// Most candidates drawn per batch pick; only the rare extreme scores need
/// that many, and the closest one is kept if none matches.
const MATCH_CANDIDATES: usize = 256;

/// One batch file, for the CLI to print and tests to check against.
#[derive(Debug, Clone, PartialEq)]
pub struct WeekReport {
    pub week: u32,
    pub path: std::path::PathBuf,
    /// The window `[start, end)` in unix seconds all its timestamps fall in.
    pub start: i64,
    pub end: i64,
    pub ratings: u64,
    pub mean_rating: f64,
    pub std_rating: f64,
    /// Movies and users first appearing this week ([`DriftKind::NewMovies`]).
    pub new_movies: u32,
    pub new_users: u32,
    /// Ratings on new movies, and ratings by new users.
    pub new_movie_ratings: u64,
    pub new_user_ratings: u64,
    /// What was injected; empty for a clean week.
    pub drift: Vec<DriftKind>,
}

/// What [`generate_weekly`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyReport {
    /// The history (`ratings.csv`), identical to what [`generate`](super::generate) reports.
    pub history: SynthReport,
    /// Rows of `movies.csv`: the base catalogue plus every new movie.
    pub catalogue_movies: u32,
    pub weeks: Vec<WeekReport>,
}

/// Writes a history and weekly batches drawn from one synthetic world.
///
/// Layout: `DIR/ratings.csv` and `DIR/movies.csv` as [`generate`](super::generate) writes
/// them (the ratings byte-identical, so the history's timestamps end at
/// `opts.end_timestamp`), except that `movies.csv` also lists every movie
/// that [`DriftKind::NewMovies`] introduces, so loading the history and then
/// ingesting batches never meets an unknown movie. Then
/// `DIR/batches/batch_w1.csv ..= batch_wN.csv` in the same CSV format
/// (stale `batch_w*.csv` files from an earlier run are removed first), week
/// k's timestamps in `[end + (k-1)*7d, end + k*7d)`. Week 1 therefore
/// starts at the history's last second, which may hold history ratings too.
///
/// Batch ratings are by history users, chosen in proportion to their
/// history activity (so the mix of raters matches the history's), on movies
/// they rated neither in the history nor in an earlier week, with the same
/// latent tastes and noise. Each user's movies continue their own weighted
/// draw without replacement, so heavy raters, who have already rated the
/// popular films, move into the catalogue's tail, as in reality; the tests
/// check that this leaves clean weeks statistically indistinguishable from
/// the history. Output is a pure function of the options (same seed, same
/// bytes, whatever the thread count).
pub fn generate_weekly(
    dir: &Path,
    opts: &SynthOptions,
    weekly: &WeeklyOptions,
    progress: &dyn Progress,
) -> Result<WeeklyReport> {
    let mut world = SynthWorld::new(opts)?;
    let per_week = resolve_drift(weekly.weeks, &weekly.drift)?;
    let end = opts.end_timestamp;
    i64::from(weekly.weeks)
        .checked_mul(WEEK_SECONDS)
        .and_then(|d| end.checked_add(d))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} weeks after timestamp {end} overflow the timestamp range",
                weekly.weeks
            ))
        })?;
    let (mut plans, per_user) = plan_weeks(&mut world, weekly, per_week)?;
    let n_weeks = plans.len();

    let history = write_history(dir, &world, progress)?;
    for p in &mut plans {
        p.effect.center = history.mean_rating;
    }

    progress.stage("batches", Some(u64::from(weekly.weeks)));
    let batch_dir = prepare_batch_dir(dir)?;

    // Existing users on existing movies: per user, all weeks in order, so
    // each week avoids the history and the earlier weeks.
    let m = world.popularity.len();
    let base_users = world.user_count.len();
    let active: Vec<usize> = (0..base_users)
        .filter(|&u| !per_user[u].is_empty())
        .collect();
    let world = &world;
    let plans_ref = &plans;
    let per_user_ref = &per_user;
    let drawn: Vec<Vec<(u32, Vec<Rating>)>> = active
        .par_iter()
        .map_init(
            || {
                (
                    Scratch::default(),
                    Marks::new(m),
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                )
            },
            |(scratch, marks, rated, picks, templates), &u| {
                rated.clear();
                let (a, b) = world.user_period[u];
                let count = world.user_count[u] as usize;
                world.fill_user(u, count, (a, b), BASE_STREAM, scratch, rated);
                marks.next_user();
                templates.clear();
                for r in rated.iter() {
                    let i = r.movie_id as usize - 1;
                    marks.set(i);
                    templates.push(world.score(u, i));
                }
                let mut out = Vec::with_capacity(per_user_ref[u].len());
                for uw in &per_user_ref[u] {
                    let plan = &plans_ref[uw.week as usize];
                    let stream = (u64::from(plan.week) << 32) | u as u64;
                    let mut rng = rng_for(world.opts.seed, domain::BATCHES, stream);
                    let (weights, alias) = match &plan.boosted {
                        Some((w, t)) => (w.as_slice(), t),
                        None => (world.popularity.as_slice(), &world.alias),
                    };
                    marks.next_week();
                    picks.clear();
                    let score = |i: usize| world.score(u, i);
                    for _ in 0..uw.own {
                        let target = (!templates.is_empty())
                            .then(|| templates[below(&mut rng, templates.len() as u64) as usize]);
                        // None is ruled out by planning (room per user).
                        if let Some(i) = marks.pick(target, weights, alias, score, &mut rng) {
                            picks.push(i as u32);
                        }
                    }
                    for &t in &uw.targets {
                        if let Some(i) = marks.pick(Some(t), weights, alias, score, &mut rng) {
                            picks.push(i as u32);
                        }
                    }
                    picks.sort_unstable();
                    let ratings = picks
                        .iter()
                        .map(|&i| world.batch_rating(u, i as usize, plan, &mut rng))
                        .collect();
                    out.push((uw.week, ratings));
                }
                out
            },
        )
        .collect();
    let mut weeks: Vec<Vec<Rating>> = vec![Vec::new(); n_weeks];
    for user in drawn {
        for (w, ratings) in user {
            weeks[w as usize].extend(ratings);
        }
    }

    let mut reports = Vec::with_capacity(n_weeks);
    for (plan, mut ratings) in plans.iter().zip(weeks) {
        let mut rng = rng_for(opts.seed, domain::WEEK_RATINGS, u64::from(plan.week));
        for &(u, i) in &plan.special {
            ratings.push(world.batch_rating(u as usize, i as usize, plan, &mut rng));
        }
        ratings.sort_unstable_by_key(|r| (r.user_id, r.movie_id));
        let path = batch_path(&batch_dir, plan.week);
        write_ratings_file(&path, &ratings)?;
        let n = ratings.len() as f64;
        let mean = ratings.iter().map(|r| f64::from(r.rating)).sum::<f64>() / n.max(1.0);
        let var = ratings
            .iter()
            .map(|r| (f64::from(r.rating) - mean).powi(2))
            .sum::<f64>()
            / n.max(1.0);
        reports.push(WeekReport {
            week: plan.week,
            path,
            start: plan.window.0,
            end: plan.window.1 + 1,
            ratings: ratings.len() as u64,
            mean_rating: mean,
            std_rating: var.sqrt(),
            new_movies: plan.new_movies.len() as u32,
            new_users: plan.new_users.len() as u32,
            new_movie_ratings: ratings.iter().filter(|r| r.movie_id as usize > m).count() as u64,
            new_user_ratings: ratings
                .iter()
                .filter(|r| r.user_id as usize > base_users)
                .count() as u64,
            drift: plan.kinds.clone(),
        });
        progress.advance(1);
    }
    progress.finish();
    Ok(WeeklyReport {
        history,
        catalogue_movies: world.movie_genres.len() as u32,
        weeks: reports,
    })
}

/// Movies a user has rated, as generation stamps so that moving to the
/// next user costs nothing.
pub(super) struct Marks {
    stamp: Vec<u32>,
    epoch: u32,
    /// Weighted table over the unmarked movies, for users who have rated
    /// nearly all the weight (see [`Marks::candidate`]); per user-week.
    local: Option<(AliasTable, Vec<u32>)>,
}

impl Marks {
    fn new(m: usize) -> Self {
        Marks {
            stamp: vec![0; m],
            epoch: 0,
            local: None,
        }
    }

    fn next_user(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        self.local = None;
    }

    /// Call before picking with other weights (a new week).
    fn next_week(&mut self) {
        self.local = None;
    }

    fn set(&mut self, i: usize) {
        self.stamp[i] = self.epoch;
    }

    fn is_set(&self, i: usize) -> bool {
        self.stamp[i] == self.epoch
    }

    /// Picks and marks one unmarked movie whose noise-free score (`score`)
    /// matches `target`: candidates are drawn by `weights` among the
    /// unmarked movies until one is within [`MATCH_TOLERANCE`] of it (or,
    /// after [`MATCH_CANDIDATES`], the closest is kept). The target is the
    /// score of a movie from the rater's history, so new ratings are
    /// distributed like old ones: plain weighted draws would not be, since
    /// heavy raters have already rated the popular films, which rate
    /// higher, and would drift each clean week down (measured: -0.02 to
    /// -0.05 stars by weeks 3 to 6 of a default world). Without a target,
    /// the first candidate: a plain weighted draw. `None` only when every
    /// movie is marked.
    pub(super) fn pick(
        &mut self,
        target: Option<f64>,
        weights: &[f64],
        alias: &AliasTable,
        score: impl Fn(usize) -> f64,
        rng: &mut ChaCha8Rng,
    ) -> Option<usize> {
        let mut best = None;
        let mut gap = f64::INFINITY;
        for _ in 0..MATCH_CANDIDATES {
            let Some(i) = self.candidate(weights, alias, rng) else {
                break;
            };
            let Some(t) = target else {
                best = Some(i);
                break;
            };
            let g = (score(i) - t).abs();
            if g < gap {
                gap = g;
                best = Some(i);
            }
            if g <= MATCH_TOLERANCE {
                break;
            }
        }
        if let Some(i) = best {
            self.set(i);
        }
        best
    }

    /// One unmarked movie drawn by `weights`: by rejection from the world's
    /// alias table while that is cheap, then (once the user has rated
    /// nearly all the weight) from a table over the unmarked movies only,
    /// rebuilt whenever it too is used up.
    fn candidate(
        &mut self,
        weights: &[f64],
        alias: &AliasTable,
        rng: &mut ChaCha8Rng,
    ) -> Option<usize> {
        const TRIES: usize = 64;
        if self.local.is_none() {
            for _ in 0..TRIES {
                let i = alias.sample(rng);
                if !self.is_set(i) {
                    return Some(i);
                }
            }
        }
        loop {
            if let Some((table, ids)) = &self.local {
                if ids.is_empty() {
                    return None;
                }
                for _ in 0..TRIES {
                    let i = ids[table.sample(rng)] as usize;
                    if !self.is_set(i) {
                        return Some(i);
                    }
                }
            }
            let ids: Vec<u32> = (0..weights.len() as u32)
                .filter(|&i| !self.is_set(i as usize))
                .collect();
            let w: Vec<f64> = ids.iter().map(|&i| weights[i as usize]).collect();
            self.local = Some((AliasTable::new(&w), ids));
        }
    }
}

impl SynthWorld {
    /// One batch rating: the world's model, then the week's drift, then
    /// the user's star habit; a uniform time in the week.
    fn batch_rating(&self, u: usize, i: usize, plan: &WeekPlan, rng: &mut ChaCha8Rng) -> Rating {
        let latent = self.score(u, i) + self.opts.noise * normal(rng);
        let stars = plan.effect.stars(to_stars(latent), self.movie_genres[i]);
        let rating = round_stars(stars, self.user_whole_stars[u]);
        let span = (plan.window.1 - plan.window.0) as u64 + 1;
        Rating {
            user_id: u as i32 + 1,
            movie_id: i as i32 + 1,
            rating: rating as f32,
            timestamp: plan.window.0 + below(rng, span) as i64,
        }
    }
}
