//! Choosing the list users nobody knows get, on evidence rather than by
//! taste.
//!
//! Every trained run picks its [`ColdStart`] the way it will be used: the
//! latest ten slices of 3% of everything the store knows (train, test and
//! buffer, in time order) are held out one at a time; each candidate list is built
//! from the ratings before a slice, as serving would build it then, and
//! scored on the users who first appear in that slice (NDCG@10 on the
//! movies they rated 4.0 or more, the backtest's metric). The best mean
//! wins and is recorded in the run's notes with every candidate's score;
//! the server and the CLI serve what the champion recorded.
//!
//! Candidates: the damped mean rating (what CineMatch served before), the
//! all-time most-rated list, and trending lists counting only the latest
//! 1, 2.5, 5, 10, 25 or 50% of the ratings known; the counting lists also
//! counting only ratings of 4 stars or more (what the held-out newcomers
//! are judged on). On a time-ordered replay
//! of ml-latest-small the trending lists win clearly (README); on data
//! without newcomers (every user present from the start) there is no
//! evidence, and the all-time most-rated list is kept.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::eval::ndcg_at_k;
use crate::models::popular::{by_count, popularity, ColdStart};
use crate::store::MovieStats;
use crate::types::Rating;

/// Held-out slices, each this share of the ratings known: ten of them
/// (the latest 30%), so that a few hundred newcomers decide on
/// ml-latest-small rather than a few dozen.
const SLICE_SHARE: f64 = 0.03;
const SLICES: usize = 10;

/// The held-out slices of `n` time-ordered rows, oldest first: the latest
/// [`SLICES`] of [`SLICE_SHARE`] each, every one with some history before
/// it. The serving choices of a run ([`choose`] and
/// [`super::recency::choose`]) are all judged on these.
pub(super) fn held_out_slices(n: usize) -> Vec<std::ops::Range<usize>> {
    let slice = ((n as f64 * SLICE_SHARE) as usize).max(1);
    (0..SLICES)
        .filter_map(|f| n.checked_sub((SLICES - f) * slice))
        .filter(|&start| start > 0)
        .map(|start| start..start + slice)
        .collect()
}
/// Trending windows tried, as shares of the ratings known.
const WINDOW_SHARES: [f64; 6] = [0.01, 0.025, 0.05, 0.10, 0.25, 0.50];
/// A held-out rating this good makes its movie relevant (as in the
/// evaluation and the backtest).
const RELEVANT: f32 = 4.0;
const K: usize = 10;

/// One candidate's score on the held-out slices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStartScore {
    pub list: ColdStart,
    /// Mean NDCG@10 over the newcomers of every slice.
    pub ndcg_at_10: f64,
}

/// The list chosen and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColdStartChoice {
    pub chosen: ColdStart,
    /// Newcomers scored over all slices (0: no evidence, most-rated kept).
    pub users: u64,
    pub candidates: Vec<ColdStartScore>,
}

/// Chooses the cold-start list for a store that knows `known` (any order).
/// Windows are sized for the whole of `known`, the data the list will be
/// served from.
pub fn choose(known: &[Rating]) -> ColdStartChoice {
    let mut rows: Vec<&Rating> = known.iter().collect();
    rows.sort_unstable_by_key(|r| (r.timestamp, r.user_id, r.movie_id));
    let n = rows.len();
    let windows: Vec<u64> = {
        let mut w: Vec<u64> = WINDOW_SHARES
            .iter()
            .map(|s| ((n as f64 * s).round() as u64).max(1))
            .collect();
        w.dedup();
        w
    };
    let mut candidates: Vec<ColdStart> = vec![ColdStart::TopRated];
    for liked in [false, true] {
        candidates.push(ColdStart::MostRated { liked });
        candidates.extend(
            windows
                .iter()
                .map(|&window| ColdStart::Trending { window, liked }),
        );
    }

    let mut sums = vec![0.0f64; candidates.len()];
    let mut users = 0u64;
    for std::ops::Range { start, end } in held_out_slices(n) {
        let before = &rows[..start];
        let seen: HashSet<i32> = before.iter().map(|r| r.user_id).collect();
        let mut relevant: HashMap<i32, Vec<i32>> = HashMap::new();
        let mut newcomers: HashSet<i32> = HashSet::new();
        for r in &rows[start..end] {
            if !seen.contains(&r.user_id) {
                newcomers.insert(r.user_id);
                if r.rating >= RELEVANT {
                    relevant.entry(r.user_id).or_default().push(r.movie_id);
                }
            }
        }
        if relevant.is_empty() {
            continue;
        }
        for ids in relevant.values_mut() {
            ids.sort_unstable();
            ids.dedup();
        }
        for (c, kind) in candidates.iter().enumerate() {
            let list = list_from(before, *kind);
            let top: Vec<i32> = list.iter().take(K).map(|p| p.0).collect();
            sums[c] += relevant
                .values()
                .map(|rel| ndcg_at_k(&top, rel, K))
                .sum::<f64>();
        }
        users += relevant.len() as u64;
    }
    let scores: Vec<ColdStartScore> = candidates
        .iter()
        .zip(&sums)
        .map(|(&list, &s)| ColdStartScore {
            list,
            ndcg_at_10: if users == 0 { 0.0 } else { s / users as f64 },
        })
        .collect();
    let chosen = if users == 0 {
        ColdStart::MostRated { liked: false }
    } else {
        scores
            .iter()
            .fold(None::<&ColdStartScore>, |best, s| match best {
                Some(b) if b.ndcg_at_10 >= s.ndcg_at_10 => Some(b),
                _ => Some(s),
            })
            .map_or(ColdStart::MostRated { liked: false }, |s| s.list)
    };
    ColdStartChoice {
        chosen,
        users,
        candidates: scores,
    }
}

/// The list `kind` makes from `before` (sorted by time), as serving would
/// make it from a store holding exactly those ratings.
fn list_from(before: &[&Rating], kind: ColdStart) -> Vec<(i32, f64)> {
    let Some((latest, min_stars)) = kind.counts() else {
        let mut sums: HashMap<i32, (i64, f64)> = HashMap::new();
        for r in before {
            let e = sums.entry(r.movie_id).or_default();
            e.0 += 1;
            e.1 += f64::from(r.rating);
        }
        let stats: Vec<MovieStats> = sums
            .into_iter()
            .map(|(movie_id, (count, sum))| MovieStats {
                movie_id,
                count,
                mean: sum / count as f64,
            })
            .collect();
        return popularity(&stats);
    };
    let from = latest.map_or(0, |w| before.len().saturating_sub(w as usize));
    let mut c: HashMap<i32, i64> = HashMap::new();
    for r in &before[from..] {
        if min_stars.is_none_or(|m| r.rating >= m) {
            *c.entry(r.movie_id).or_default() += 1;
        }
    }
    by_count(&c.into_iter().collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(user_id: i32, movie_id: i32, rating: f32, timestamp: i64) -> Rating {
        Rating {
            user_id,
            movie_id,
            rating,
            timestamp,
        }
    }

    /// Old users loved movie 1 long ago; lately everyone rates movie 2, and
    /// so do the newcomers of the held-out slices: a short trending window
    /// finds it, the all-time and the mean-rating lists do not.
    #[test]
    fn recent_taste_wins_when_newcomers_follow_it() {
        let mut known = Vec::new();
        let mut t = 0;
        for u in 0..600 {
            known.push(r(u, 1, 5.0, t));
            t += 1;
        }
        for u in 600..1000 {
            known.push(r(u, 2, 4.0, t));
            t += 1;
        }
        let choice = choose(&known);
        assert!(choice.users > 0);
        match choice.chosen {
            ColdStart::Trending { window, .. } => assert!(window <= 400, "{window}"),
            other => panic!("chose {other}"),
        }
        let most = choice
            .candidates
            .iter()
            .find(|c| c.list == ColdStart::MostRated { liked: false })
            .unwrap();
        // The all-time list puts movie 1 first and movie 2 second for
        // every newcomer: NDCG = 1/log2(3) exactly.
        assert!((most.ndcg_at_10 - 1.0 / 3f64.log2()).abs() < 1e-12);
    }

    #[test]
    fn without_newcomers_the_most_rated_list_stays() {
        let known: Vec<Rating> = (0..200).map(|i| r(i % 5, i, 4.0, i as i64)).collect();
        let choice = choose(&known);
        assert_eq!(choice.users, 0);
        assert_eq!(choice.chosen, ColdStart::MostRated { liked: false });
    }
}
