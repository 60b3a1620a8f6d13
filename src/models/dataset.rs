//! Ratings remapped to dense indices: what every algorithm trains on.

use std::collections::HashMap;

use crate::types::Rating;
use crate::{Error, Result};

/// One training observation with dense indices, packed to 12 bytes so an
/// epoch streams through memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Entry {
    pub u: u32,
    pub i: u32,
    pub r: f32,
}

/// Ratings with users and movies renumbered `0..n` in ascending id order.
///
/// Ascending order makes the index of an id independent of the order the
/// ratings arrived in, so a model is a function of the rating *set* plus the
/// seed (SGD's visiting order aside).
pub(crate) struct TrainSet {
    pub user_ids: Vec<i32>,
    pub movie_ids: Vec<i32>,
    pub entries: Vec<Entry>,
    /// When each entry was rated (unix seconds), aligned with `entries`:
    /// what recency-weighted models ([`super::HalfLife`]) read.
    pub timestamps: Vec<i64>,
    /// Mean rating, accumulated in f64.
    pub global_mean: f64,
}

impl TrainSet {
    pub fn new(ratings: &[Rating]) -> Result<TrainSet> {
        if ratings.is_empty() {
            return Err(Error::InvalidArgument(
                "cannot train a model on zero ratings; load ratings and check the train split"
                    .into(),
            ));
        }
        if u32::try_from(ratings.len()).is_err() {
            return Err(Error::InvalidArgument(format!(
                "{} ratings exceed the 2^32 a model can train on",
                ratings.len()
            )));
        }
        let mut user_ids: Vec<i32> = ratings.iter().map(|r| r.user_id).collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let mut movie_ids: Vec<i32> = ratings.iter().map(|r| r.movie_id).collect();
        movie_ids.sort_unstable();
        movie_ids.dedup();
        let uix = index_map(&user_ids);
        let mix = index_map(&movie_ids);
        let mut entries = Vec::with_capacity(ratings.len());
        let mut timestamps: Vec<i64> = ratings.iter().map(|r| r.timestamp).collect();
        for r in ratings {
            if !r.rating.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "rating of user {} for movie {} is not a finite number",
                    r.user_id, r.movie_id
                )));
            }
            entries.push(Entry {
                u: uix[&r.user_id],
                i: mix[&r.movie_id],
                r: r.rating,
            });
        }
        if let Some(dropped) = superseded(&entries, ratings, user_ids.len()) {
            let mut keep = dropped.iter().map(|d| !d);
            entries.retain(|_| keep.next().unwrap_or(true));
            let mut keep = dropped.iter().map(|d| !d);
            timestamps.retain(|_| keep.next().unwrap_or(true));
        }
        let sum: f64 = entries.iter().map(|e| f64::from(e.r)).sum();
        Ok(TrainSet {
            global_mean: sum / entries.len() as f64,
            user_ids,
            movie_ids,
            entries,
            timestamps,
        })
    }

    /// The same users and movies with each rating replaced by `f(rating,
    /// timestamp)`, and dropped where `f` gives `None`: how ranking models
    /// turn stars and times into their implicit signal
    /// ([`super::signal::Weighting`]) while keeping every id's index.
    pub fn map_weights(&self, f: impl Fn(f32, i64) -> Option<f32>) -> TrainSet {
        let (entries, timestamps): (Vec<Entry>, Vec<i64>) = self
            .entries
            .iter()
            .zip(&self.timestamps)
            .filter_map(|(e, &t)| f(e.r, t).map(|r| (Entry { r, ..*e }, t)))
            .unzip();
        let global_mean = if entries.is_empty() {
            0.0
        } else {
            entries.iter().map(|e| e.r as f64).sum::<f64>() / entries.len() as f64
        };
        TrainSet {
            user_ids: self.user_ids.clone(),
            movie_ids: self.movie_ids.clone(),
            entries,
            timestamps,
            global_mean,
        }
    }

    /// The newest rating's time: what a recency-weighted model measures
    /// ages from (0 for an empty set).
    pub fn reference_time(&self) -> i64 {
        self.timestamps.iter().copied().max().unwrap_or(0)
    }

    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    pub fn n_movies(&self) -> usize {
        self.movie_ids.len()
    }

    /// Ratings grouped by user (`by_user = true`) or by movie, as CSR:
    /// `(offsets, other-side index, rating)`. Within a row, entries keep
    /// their input order, so the grouping is deterministic.
    pub fn csr(&self, by_user: bool) -> Csr {
        let rows = if by_user {
            self.n_users()
        } else {
            self.n_movies()
        };
        let key = |e: &Entry| if by_user { e.u } else { e.i } as usize;
        let mut offsets = vec![0usize; rows + 1];
        for e in &self.entries {
            offsets[key(e) + 1] += 1;
        }
        for r in 0..rows {
            offsets[r + 1] += offsets[r];
        }
        let mut fill = offsets.clone();
        let mut cols = vec![0u32; self.entries.len()];
        let mut vals = vec![0f32; self.entries.len()];
        for e in &self.entries {
            let slot = &mut fill[key(e)];
            cols[*slot] = if by_user { e.i } else { e.u };
            vals[*slot] = e.r;
            *slot += 1;
        }
        Csr {
            offsets,
            cols,
            vals,
        }
    }
}

/// Compressed sparse rows of the rating matrix (or its transpose).
pub(crate) struct Csr {
    pub offsets: Vec<usize>,
    pub cols: Vec<u32>,
    pub vals: Vec<f32>,
}

impl Csr {
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[r], self.offsets[r + 1]);
        (&self.cols[a..b], &self.vals[a..b])
    }
}

/// Id → dense index for a list of distinct ids.
/// Which ratings a later one replaces: a user who rated a movie more than
/// once (a re-rating posted through the API and merged into `ratings`,
/// which has no key on the pair) counts once, with the latest rating (the
/// largest timestamp; on a tie, the later row). Training on both would
/// weigh the movie twice and keep stars the user took back. `None` when
/// every (user, movie) is rated once, as in MovieLens releases; one
/// counting sort by user and a small sort per user find out.
fn superseded(entries: &[Entry], ratings: &[Rating], n_users: usize) -> Option<Vec<bool>> {
    let mut offsets = vec![0usize; n_users + 1];
    for e in entries {
        offsets[e.u as usize + 1] += 1;
    }
    for u in 0..n_users {
        offsets[u + 1] += offsets[u];
    }
    let mut next = offsets.clone();
    let mut by_user = vec![0u32; entries.len()];
    for (at, e) in entries.iter().enumerate() {
        by_user[next[e.u as usize]] = at as u32;
        next[e.u as usize] += 1;
    }
    let mut dropped: Option<Vec<bool>> = None;
    let mut row: Vec<(u32, i64, u32)> = Vec::new();
    for u in 0..n_users {
        row.clear();
        row.extend(
            by_user[offsets[u]..offsets[u + 1]]
                .iter()
                .map(|&at| (entries[at as usize].i, ratings[at as usize].timestamp, at)),
        );
        row.sort_unstable();
        for pair in row.windows(2) {
            if pair[0].0 == pair[1].0 {
                dropped.get_or_insert_with(|| vec![false; entries.len()])[pair[0].2 as usize] =
                    true;
            }
        }
    }
    dropped
}

pub(crate) fn index_map(ids: &[i32]) -> HashMap<i32, u32> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| (id, i as u32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rating(user_id: i32, movie_id: i32, rating: f32, timestamp: i64) -> Rating {
        Rating {
            user_id,
            movie_id,
            rating,
            timestamp,
        }
    }

    /// A movie rated twice by one user counts once, with the later stars
    /// (by timestamp, then by row); other users' ratings of it and the
    /// order of the rest are untouched, and the mean is over what counts.
    #[test]
    fn a_re_rating_replaces_the_earlier_one() {
        let ratings = [
            rating(1, 10, 2.0, 100),
            rating(2, 10, 4.0, 100),
            rating(1, 20, 3.0, 100),
            rating(1, 10, 5.0, 200),
            rating(2, 20, 1.0, 300),
            rating(2, 20, 1.5, 300),
        ];
        let set = TrainSet::new(&ratings).unwrap();
        let got: Vec<(u32, u32, f32)> = set.entries.iter().map(|e| (e.u, e.i, e.r)).collect();
        assert_eq!(
            got,
            vec![(1, 0, 4.0), (0, 1, 3.0), (0, 0, 5.0), (1, 1, 1.5)]
        );
        assert_eq!(set.global_mean, (4.0 + 3.0 + 5.0 + 1.5) / 4.0);
        // Written the other way round, the later timestamp still wins;
        // of the two at 300, the later row is now the 1-star one.
        let mut reversed = ratings;
        reversed.reverse();
        let set = TrainSet::new(&reversed).unwrap();
        let got: Vec<(u32, u32, f32)> = set.entries.iter().map(|e| (e.u, e.i, e.r)).collect();
        assert_eq!(
            got,
            vec![(1, 1, 1.0), (0, 0, 5.0), (0, 1, 3.0), (1, 0, 4.0)]
        );
    }

    #[test]
    fn unique_pairs_keep_every_rating_in_order() {
        let ratings = [
            rating(3, 10, 2.0, 5),
            rating(1, 10, 4.0, 1),
            rating(3, 11, 3.5, 9),
        ];
        let set = TrainSet::new(&ratings).unwrap();
        let got: Vec<(u32, u32, f32)> = set.entries.iter().map(|e| (e.u, e.i, e.r)).collect();
        assert_eq!(got, vec![(1, 0, 2.0), (0, 0, 4.0), (1, 1, 3.5)]);
    }
}
