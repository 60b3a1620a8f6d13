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
        let mut sum = 0.0f64;
        let mut entries = Vec::with_capacity(ratings.len());
        for r in ratings {
            if !r.rating.is_finite() {
                return Err(Error::InvalidArgument(format!(
                    "rating of user {} for movie {} is not a finite number",
                    r.user_id, r.movie_id
                )));
            }
            sum += r.rating as f64;
            entries.push(Entry {
                u: uix[&r.user_id],
                i: mix[&r.movie_id],
                r: r.rating,
            });
        }
        Ok(TrainSet {
            global_mean: sum / ratings.len() as f64,
            user_ids,
            movie_ids,
            entries,
        })
    }

    /// The same users and movies with each rating replaced by `f(rating)`,
    /// and dropped where `f` gives `None`: how ranking models turn stars
    /// into their implicit signal while keeping every id's index.
    pub fn map_values(&self, f: impl Fn(f32) -> Option<f32>) -> TrainSet {
        let entries: Vec<Entry> = self
            .entries
            .iter()
            .filter_map(|e| f(e.r).map(|r| Entry { r, ..*e }))
            .collect();
        let global_mean = if entries.is_empty() {
            0.0
        } else {
            entries.iter().map(|e| e.r as f64).sum::<f64>() / entries.len() as f64
        };
        TrainSet {
            user_ids: self.user_ids.clone(),
            movie_ids: self.movie_ids.clone(),
            entries,
            global_mean,
        }
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
pub(crate) fn index_map(ids: &[i32]) -> HashMap<i32, u32> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| (id, i as u32))
        .collect()
}
