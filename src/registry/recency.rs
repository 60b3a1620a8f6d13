//! Choosing, on time-ordered evidence, how much a returning user's recent
//! ratings outweigh their old ones when their list is made.
//!
//! The random split the spec evaluates on cannot see recency: a held-out
//! rating is as likely to be from a user's first week as from their last,
//! so fading old ratings only costs NDCG there (ease 0.3482 -> 0.3283 at a
//! year's half-life on ml-latest-small). A deployment serves the future,
//! where what someone rated lately predicts their next choice better
//! (README, the backtest). So every trained run keeps its evaluated
//! hyperparameters and records, beside them, the history half-life it
//! serves with (see [`crate::models::signal::Weighting::recent`]), chosen
//! the way it will be used: the latest ten slices of 3% of everything the
//! store knows (in time order) are held out one at a time; each returning
//! user of a slice is scored from their ratings before it, on the movies
//! they rated 4.0 or more in it that the model never trained on (test-split
//! ratings only, so nothing is judged on what it memorised). No fading is
//! kept unless a half-life beats it by [`MARGIN`].

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::eval::ndcg_at_k;
use crate::models::signal::HalfLife;
use crate::models::Model;
use crate::types::{Rated, Rating};

/// Returning users scored per slice at most (a deterministic sample).
const USERS_PER_SLICE: usize = 300;
const RELEVANT: f32 = 4.0;
const K: usize = 10;
/// A half-life is served only if its mean NDCG@10 beats no fading by this
/// share: the evidence is a few hundred users, and no fading is what the
/// run was evaluated with.
pub const MARGIN: f64 = 0.02;
/// Half-lives tried, in days (besides none).
const CANDIDATES: [f64; 4] = [30.0, 90.0, 365.0, 1095.0];

/// One candidate's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecencyScore {
    pub half_life: HalfLife,
    pub ndcg_at_10: f64,
}

/// The half-life chosen and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecencyChoice {
    pub chosen: HalfLife,
    /// Returning users scored over all slices (0: no evidence, none kept).
    pub users: u64,
    pub candidates: Vec<RecencyScore>,
}

/// Chooses the history half-life `model` serves with, from the ratings it
/// trained on (`trained`) and the held-out test split (`held_out`). `None`
/// for models whose lists do not come from a history they can fade.
pub fn choose(model: &mut Model, trained: &[Rating], held_out: &[Rating]) -> Option<RecencyChoice> {
    if !model.scores_history() || model.history_half_life().is_none() {
        return None;
    }
    let before = model.history_half_life()?;
    let mut rows: Vec<(&Rating, bool)> = trained
        .iter()
        .map(|r| (r, false))
        .chain(held_out.iter().map(|r| (r, true)))
        .collect();
    rows.sort_unstable_by_key(|(r, _)| (r.timestamp, r.user_id, r.movie_id));
    // Each user's ratings with their position in time.
    let mut by_user: HashMap<i32, Vec<(usize, Rated)>> = HashMap::new();
    for (pos, (r, _)) in rows.iter().enumerate() {
        by_user
            .entry(r.user_id)
            .or_default()
            .push((pos, Rated::from(*r)));
    }
    let mut half_lives = vec![HalfLife::NONE];
    half_lives.extend(CANDIDATES.iter().map(|&d| HalfLife::days(d)));
    let mut sums = vec![0.0f64; half_lives.len()];
    let mut users = 0u64;
    let mut scores = Vec::new();
    for slice in super::cold_start::held_out_slices(rows.len()) {
        let start = slice.start;
        let mut relevant: HashMap<i32, Vec<i32>> = HashMap::new();
        for (r, test) in &rows[slice] {
            if *test && r.rating >= RELEVANT {
                relevant.entry(r.user_id).or_default().push(r.movie_id);
            }
        }
        let mut sample: Vec<(i32, Vec<Rated>, Vec<i32>)> = Vec::new();
        for (user, mut rel) in relevant {
            let history: Vec<Rated> = by_user[&user]
                .iter()
                .take_while(|(pos, _)| *pos < start)
                .map(|(_, h)| *h)
                .collect();
            if history.is_empty() {
                continue;
            }
            let rated: HashSet<i32> = history.iter().map(|h| h.movie_id).collect();
            rel.retain(|m| !rated.contains(m));
            rel.sort_unstable();
            rel.dedup();
            if !rel.is_empty() {
                sample.push((user, history, rel));
            }
        }
        sample.sort_by_key(|(u, _, _)| crate::eval::sample_order(*u));
        sample.truncate(USERS_PER_SLICE);
        for (c, &h) in half_lives.iter().enumerate() {
            model.set_history_half_life(h);
            for (user, history, rel) in &sample {
                if model.score(*user, history, true, &mut scores).is_none() {
                    continue;
                }
                let top = top_unrated(model.movie_ids(), &mut scores, history, K);

                sums[c] += ndcg_at_k(&top, rel, K);
            }
        }
        users += sample.len() as u64;
    }
    model.set_history_half_life(before);
    let candidates: Vec<RecencyScore> = half_lives
        .iter()
        .zip(&sums)
        .map(|(&half_life, &s)| RecencyScore {
            half_life,
            ndcg_at_10: if users == 0 { 0.0 } else { s / users as f64 },
        })
        .collect();
    let none = candidates[0].ndcg_at_10;
    let best = candidates.iter().skip(1).fold(&candidates[0], |b, c| {
        if c.ndcg_at_10 > b.ndcg_at_10 {
            c
        } else {
            b
        }
    });
    let chosen = if users > 0 && best.ndcg_at_10 > none * (1.0 + MARGIN) {
        best.half_life
    } else {
        HalfLife::NONE
    };
    Some(RecencyChoice {
        chosen,
        users,
        candidates,
    })
}

/// The `k` best-scored movies not in `history`, best first (ties to the
/// lower id: the ids ascend), through the serving code's selection.
fn top_unrated(ids: &[i32], scores: &mut [f32], history: &[Rated], k: usize) -> Vec<i32> {
    let rated: HashSet<i32> = history.iter().map(|h| h.movie_id).collect();
    for (s, id) in scores.iter_mut().zip(ids) {
        if rated.contains(id) {
            *s = f32::NEG_INFINITY;
        }
    }
    crate::topk::select_top(scores, k)
        .into_iter()
        .map(|i| ids[i])
        .collect()
}
