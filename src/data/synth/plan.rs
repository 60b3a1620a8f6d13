//! The weekly plan: before any batch rating is drawn, who rates how much in
//! each week, which new movies and users appear, and which (user, movie)
//! pairs involve a newcomer.

use std::collections::HashSet;
use std::ops::Range;

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::drift::{DriftKind, Effect};
use super::random::{below, domain, normal, rng_for, unit, AliasTable};
use super::week::{WeeklyOptions, WEEK_SECONDS};
use super::world::{
    draw_movie, year_of, Scratch, SynthWorld, BASE_STREAM, USER_BIAS_SD, WHOLE_STAR_USERS,
    ZIPF_OFFSET,
};
use crate::{Error, Result};

/// Average ratings per movie introduced by [`DriftKind::NewMovies`]; sets
/// how many new movies a week gets. MovieLens's new titles collect a few
/// dozen ratings in their first week.
const NEW_MOVIE_RATINGS: u64 = 20;
/// Average ratings per new user (MovieLens's minimum per published user).
const NEW_USER_RATINGS: u64 = 20;

/// Everything decided about a week before any rating is drawn.
pub(super) struct WeekPlan {
    pub(super) week: u32,
    /// Inclusive, for timestamp draws.
    pub(super) window: (i64, i64),
    pub(super) kinds: Vec<DriftKind>,
    pub(super) effect: Effect,
    /// Genre-boosted base-movie weights and their table; `None` = the
    /// world's own popularity.
    pub(super) boosted: Option<(Vec<f64>, AliasTable)>,
    pub(super) new_movies: Range<usize>,
    pub(super) new_users: Range<usize>,
    /// (user index, movie index) ratings involving a new user or movie.
    pub(super) special: Vec<(u32, u32)>,
}

/// How a week's ratings divide between history users and newcomers.
#[derive(Debug, Clone, Copy)]
struct Slots {
    by_new_users: u64,
    on_new_movies: u64,
    /// By a new user on a new movie.
    both: u64,
    new_user_old_movie: u64,
    old_user_new_movie: u64,
    old_user_old_movie: u64,
}

impl Slots {
    /// Exact counts: a share `s` of the `n` ratings are by new users, `s`
    /// are on new movies, and the two overlap as if independent.
    fn new(n: u64, s: f64) -> Slots {
        let by_new_users = (s * n as f64).round() as u64;
        let on_new_movies = by_new_users;
        let both = (s * by_new_users as f64).round() as u64;
        Slots {
            by_new_users,
            on_new_movies,
            both,
            new_user_old_movie: by_new_users - both,
            old_user_new_movie: on_new_movies - both,
            old_user_old_movie: n - by_new_users - (on_new_movies - both),
        }
    }
}

/// Share of a history user's unrated movies the batches may use up.
///
/// Batch movies are matched to the rater's history (see `weekly::Marks::pick`),
/// which needs unrated movies left at every score. A user who has already
/// rated most of the catalogue would otherwise end up rating just the
/// leftovers nobody wanted: measured on a default world, the two heaviest
/// raters (6,080 and 5,645 of 9,000 movies) fell 0.26 stars below their
/// history by week 4, taking the clean week's mean 0.04 down. Their excess
/// is handed to stand-ins instead (see [`plan_weeks`]).
const MAX_ROOM_SHARE: f64 = 0.5;

/// A history user's part of one week.
#[derive(Debug, Clone, Default)]
pub(super) struct UserWeek {
    /// Week index (0-based).
    pub(super) week: u32,
    /// Ratings matched to the user's own history.
    pub(super) own: u32,
    /// Ratings matched to these noise-free scores, taken over from a rater
    /// who had no room left (see [`plan_weeks`]).
    pub(super) targets: Vec<f64>,
}

/// An activity-weighted draw among the users `eligible` accepts: by
/// rejection while that is cheap, then by a linear scan. `None` if nobody
/// with weight is eligible.
fn draw_eligible(
    weights: &[f64],
    alias: &AliasTable,
    rng: &mut ChaCha8Rng,
    eligible: impl Fn(usize) -> bool,
) -> Option<usize> {
    if weights.is_empty() {
        return None;
    }
    for _ in 0..64 {
        let u = alias.sample(rng);
        if eligible(u) {
            return Some(u);
        }
    }
    let total: f64 = (0..weights.len())
        .filter(|&u| eligible(u))
        .map(|u| weights[u])
        .sum();
    if total <= 0.0 {
        return None;
    }
    let mut t = unit(rng) * total;
    let mut last = None;
    for u in (0..weights.len()).filter(|&u| eligible(u) && weights[u] > 0.0) {
        last = Some(u);
        if t < weights[u] {
            return Some(u);
        }
        t -= weights[u];
    }
    last
}

/// Decides, week by week, who rates how much, which new movies and users
/// appear, and which (user, movie) pairs involve newcomers. New entities
/// are appended to `world` (their ids continue after the base ones).
///
/// Each rating by a history user on a history movie is assigned to a user
/// drawn by history activity, so the week's raters mix like the history's.
/// A user who has used up [`MAX_ROOM_SHARE`] of their unrated movies hands
/// the rating to a stand-in with the same star habit (whole or half stars),
/// together with the noise-free score of a random movie from their
/// history, and the stand-in rates a movie they score like that. The
/// week's scores, hence its histogram, stay distributed like the history's;
/// only who holds a few of the ratings changes.
///
/// Returns the plans and, per base user, their weeks in order.
#[allow(clippy::type_complexity)]
pub(super) fn plan_weeks(
    world: &mut SynthWorld,
    weekly: &WeeklyOptions,
    per_week: Vec<Vec<DriftKind>>,
) -> Result<(Vec<WeekPlan>, Vec<Vec<UserWeek>>)> {
    let seed = world.opts.seed;
    let m = world.popularity.len();
    let base_users = world.user_count.len();
    let k = world.factors;
    let n = weekly.ratings_per_week;

    // The history's activity: who the history's ratings are by.
    let mut activity: Vec<f64> = world.user_count.iter().map(|&c| f64::from(c)).collect();
    if activity.iter().all(|&w| w == 0.0) {
        // No history ratings: no activity to go by, so all count alike.
        activity.iter_mut().for_each(|w| *w = 1.0);
    }
    let activity_alias = AliasTable::new(&activity);
    // Base movies each user has not rated yet.
    let mut room: Vec<u64> = world
        .user_count
        .iter()
        .zip(&activity)
        .map(|(&c, &w)| if w > 0.0 { m as u64 - u64::from(c) } else { 0 })
        .collect();
    let mut room_total: u64 = room.iter().sum();
    let mut allowance: Vec<u64> = room
        .iter()
        .map(|&r| (MAX_ROOM_SHARE * r as f64) as u64)
        .collect();
    let habit: Vec<bool> = world.user_whole_stars.clone();
    let log_span = ((m as f64 + ZIPF_OFFSET) / ZIPF_OFFSET)
        .ln()
        .max(f64::MIN_POSITIVE);

    let mut plans = Vec::with_capacity(per_week.len());
    let mut per_user: Vec<Vec<UserWeek>> = vec![Vec::new(); base_users];
    let mut own = vec![0u32; base_users];
    let mut moved = vec![0u32; base_users];
    // (stand-in, index into per_user[stand-in], the user they stand in for)
    let mut transfers: Vec<(u32, u32, u32)> = Vec::new();
    for (w, kinds) in per_week.into_iter().enumerate() {
        let week = w as u32 + 1;
        let start = world.opts.end_timestamp + i64::from(w as u32) * WEEK_SECONDS;
        let window = (start, start + WEEK_SECONDS - 1);
        let effect = Effect::new(&kinds);
        let mut rng = rng_for(seed, domain::WEEKS, u64::from(week));

        let Slots {
            by_new_users,
            on_new_movies,
            both,
            new_user_old_movie,
            old_user_new_movie,
            old_user_old_movie,
        } = Slots::new(n, effect.new_share);

        let boosted = (!effect.genres.is_empty()).then(|| {
            let weights: Vec<f64> = (0..m)
                .map(|i| world.popularity[i] * effect.boost(world.movie_genres[i]))
                .collect();
            let table = AliasTable::new(&weights);
            (weights, table)
        });

        // New movies imitate the popularity of a uniformly chosen base
        // movie, and are then rated in proportion to it: the same
        // popularity-weighted mix (and popularity bias) as base movies.
        let mut ent_rng = rng_for(seed, domain::NEW_ENTITIES, u64::from(week));
        let first_movie = world.movie_genres.len();
        // Enough newcomers that their distinct pairs comfortably exceed the
        // ratings they take part in (twice over, since pairs are drawn at
        // random), which only matters in tiny worlds.
        let pair_floor = ((2 * both) as f64).sqrt().ceil() as u64;
        let n_movies = if on_new_movies > 0 {
            let by_old_users = (2 * old_user_new_movie).div_ceil(base_users.max(1) as u64);
            on_new_movies
                .div_ceil(NEW_MOVIE_RATINGS)
                .max(pair_floor)
                .max(by_old_users)
                .max(1) as usize
        } else {
            0
        };
        let year = year_of(start).clamp(1902, i64::from(u16::MAX)) as u16;
        let mut new_weights = Vec::with_capacity(n_movies);
        for _ in 0..n_movies {
            let (pop, weight) = if m > 0 {
                let t = below(&mut ent_rng, m as u64) as usize;
                let r = f64::from(world.movie_rank[t]);
                let pop = 1.0 - 2.0 * ((r + ZIPF_OFFSET) / ZIPF_OFFSET).ln() / log_span;
                (pop, world.popularity[t])
            } else {
                (0.0, 1.0)
            };
            let (bias, genres) = draw_movie(
                &mut ent_rng,
                &world.genre_vecs,
                world.factor_sd,
                pop,
                &mut world.movie_factors,
            );
            world.movie_bias.push(bias);
            world.movie_genres.push(genres);
            world.movie_year.push(year);
            new_weights.push(weight * effect.boost(genres));
        }
        let new_movies = first_movie..world.movie_genres.len();
        check_ids("movies", new_movies.end)?;
        let new_movie_alias = AliasTable::new(&new_weights);

        // New users: fresh tastes from the same distributions; whole-star
        // habits copied from an activity-weighted history user, so the
        // half-star share of the histogram does not move with them.
        let first_user = world.user_bias.len();
        let n_users = if by_new_users > 0 {
            let by_old_movies = (2 * new_user_old_movie).div_ceil(m.max(1) as u64);
            by_new_users
                .div_ceil(NEW_USER_RATINGS)
                .max(pair_floor)
                .max(by_old_movies)
                .max(1) as usize
        } else {
            0
        };
        for _ in 0..n_users {
            world
                .user_bias
                .push((USER_BIAS_SD * normal(&mut ent_rng)) as f32);
            for _ in 0..k {
                let f = world.factor_sd * normal(&mut ent_rng);
                world.user_factors.push(f as f32);
            }
            let whole = if base_users > 0 {
                world.user_whole_stars[activity_alias.sample(&mut ent_rng)]
            } else {
                unit(&mut ent_rng) < WHOLE_STAR_USERS
            };
            world.user_whole_stars.push(whole);
        }
        let new_users = first_user..world.user_bias.len();
        check_ids("users", new_users.end)?;

        // History users on base movies: only counts here; the movies are
        // drawn per user later, in parallel.
        if old_user_old_movie > room_total {
            return Err(Error::InvalidArgument(format!(
                "week {week} needs {old_user_old_movie} more ratings by history users on \
                 history movies, but only {room_total} unrated (user, movie) pairs are left: \
                 add movies or lower the ratings per week"
            )));
        }
        own.iter_mut().for_each(|c| *c = 0);
        moved.iter_mut().for_each(|c| *c = 0);
        let mut donors: Vec<(u32, u32)> = Vec::new();
        for _ in 0..old_user_old_movie {
            let u = activity_alias.sample(&mut rng);
            let rater = if allowance[u] > 0 {
                u
            } else {
                draw_eligible(&activity, &activity_alias, &mut rng, |v| {
                    v != u && allowance[v] > 0 && habit[v] == habit[u]
                })
                .or_else(|| {
                    draw_eligible(&activity, &activity_alias, &mut rng, |v| {
                        v != u && allowance[v] > 0
                    })
                })
                .or_else(|| draw_eligible(&activity, &activity_alias, &mut rng, |v| room[v] > 0))
                .expect("room_total covers the week")
            };
            if rater == u {
                own[u] += 1;
            } else {
                moved[rater] += 1;
                donors.push((rater as u32, u as u32));
            }
            room[rater] -= 1;
            allowance[rater] = allowance[rater].saturating_sub(1);
            room_total -= 1;
        }
        for u in 0..base_users {
            if own[u] > 0 || moved[u] > 0 {
                per_user[u].push(UserWeek {
                    week: w as u32,
                    own: own[u],
                    targets: Vec::with_capacity(moved[u] as usize),
                });
            }
        }
        for (v, u) in donors {
            let entry = per_user[v as usize].len() as u32 - 1;
            transfers.push((v, entry, u));
        }

        // Pairs with a newcomer cannot repeat the history or earlier weeks;
        // only this week's pairs need checking.
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let mut special = Vec::with_capacity((n - old_user_old_movie) as usize);
        let base_table = boosted.as_ref().map_or(&world.alias, |(_, t)| t);
        let new_user =
            |rng: &mut ChaCha8Rng| (new_users.start + below(rng, n_users as u64) as usize) as u32;
        let new_movie = |rng: &mut ChaCha8Rng| (first_movie + new_movie_alias.sample(rng)) as u32;
        let placed =
            place_pairs(new_user_old_movie, &mut rng, &mut seen, &mut special, |r| {
                (new_user(r), base_table.sample(r) as u32)
            }) && place_pairs(both, &mut rng, &mut seen, &mut special, |r| {
                (new_user(r), new_movie(r))
            }) && place_pairs(old_user_new_movie, &mut rng, &mut seen, &mut special, |r| {
                (activity_alias.sample(r) as u32, new_movie(r))
            });
        if !placed {
            return Err(Error::InvalidArgument(format!(
                "week {week}: the world is too small to place {on_new_movies} ratings on new \
                 movies and by new users without repeating a (user, movie) pair; add users \
                 or movies"
            )));
        }
        plans.push(WeekPlan {
            week,
            window,
            kinds,
            effect,
            boosted,
            new_movies,
            new_users,
            special,
        });
    }

    // The handed-over scores: random movies from each donor's history.
    let mut donors: Vec<u32> = transfers.iter().map(|t| t.2).collect();
    donors.sort_unstable();
    donors.dedup();
    let world: &SynthWorld = world;
    let donor_scores: Vec<Vec<f64>> = donors
        .par_iter()
        .map_init(
            || (Scratch::default(), Vec::new()),
            |(scratch, rated), &u| {
                let u = u as usize;
                rated.clear();
                let count = world.user_count[u] as usize;
                world.fill_user(u, count, world.user_period[u], BASE_STREAM, scratch, rated);
                rated
                    .iter()
                    .map(|r| world.score(u, r.movie_id as usize - 1))
                    .collect()
            },
        )
        .collect();
    let mut rng = rng_for(seed, domain::TRANSFERS, 0);
    for (v, entry, u) in transfers {
        let d = donors.binary_search(&u).expect("donor listed");
        let scores = &donor_scores[d];
        let uw = &mut per_user[v as usize][entry as usize];
        if scores.is_empty() {
            // A donor without history (a world with no ratings): nothing
            // to match, so a plain draw by the stand-in.
            uw.own += 1;
        } else {
            uw.targets
                .push(scores[below(&mut rng, scores.len() as u64) as usize]);
        }
    }
    Ok((plans, per_user))
}

fn check_ids(what: &str, count: usize) -> Result<()> {
    if count > i32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "new {what} would need ids beyond {} (ids are 32-bit)",
            i32::MAX
        )));
    }
    Ok(())
}

/// Draws `count` distinct pairs from `draw` into `out`; false when the
/// pairs seem exhausted (too many repeats in a row).
fn place_pairs(
    count: u64,
    rng: &mut ChaCha8Rng,
    seen: &mut HashSet<(u32, u32)>,
    out: &mut Vec<(u32, u32)>,
    mut draw: impl FnMut(&mut ChaCha8Rng) -> (u32, u32),
) -> bool {
    let mut misses = 0u64;
    let mut placed = 0;
    while placed < count {
        let pair = draw(rng);
        if seen.insert(pair) {
            out.push(pair);
            placed += 1;
            misses = 0;
        } else {
            misses += 1;
            if misses > 10_000 {
                return false;
            }
        }
    }
    true
}
