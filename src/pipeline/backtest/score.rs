//! Scoring one replayed week: the lists a deployment served at the start of
//! the week, and two lists computed on exactly the same knowledge (the
//! all-time most-rated list and a trending list), each judged on what every
//! user rated in the week.
//!
//! A user counts when they rated in the week at least one movie they had
//! not rated before with 4.0 stars or more (their relevant movies); the
//! list is their top k of movies they had not rated, scored with the
//! evaluation's metrics (NDCG@k with binary gains, recall@k = hits / number
//! relevant). Users with no rating known before the week are `new`, the
//! others `returning`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::eval::ranking_metrics;
use crate::recommend::{Known, Recommender, Request};
use crate::types::Rating;
use crate::Result;

/// A rating at least this good makes its movie relevant.
pub const RELEVANT: f32 = 4.0;

/// Means over the users of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    pub users: u64,
    pub ndcg_at_10: f64,
    pub recall_at_10: f64,
}

/// A list's scores over all users, returning users and new users.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ListScores {
    pub all: GroupScore,
    pub returning: GroupScore,
    pub new: GroupScore,
}

/// Sums while scoring, then means.
#[derive(Default)]
struct Sums {
    n: [u64; 2],
    ndcg: [f64; 2],
    recall: [f64; 2],
}

impl Sums {
    fn add(&mut self, new: bool, ndcg: f64, recall: f64) {
        let g = usize::from(new);
        self.n[g] += 1;
        self.ndcg[g] += ndcg;
        self.recall[g] += recall;
    }

    fn scores(&self) -> ListScores {
        let group = |n: u64, ndcg: f64, recall: f64| GroupScore {
            users: n,
            ndcg_at_10: if n == 0 { 0.0 } else { ndcg / n as f64 },
            recall_at_10: if n == 0 { 0.0 } else { recall / n as f64 },
        };
        ListScores {
            all: group(
                self.n[0] + self.n[1],
                self.ndcg[0] + self.ndcg[1],
                self.recall[0] + self.recall[1],
            ),
            returning: group(self.n[0], self.ndcg[0], self.recall[0]),
            new: group(self.n[1], self.ndcg[1], self.recall[1]),
        }
    }
}

/// The three lists' scores of one week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WeekScores {
    pub served: ListScores,
    pub most_rated: ListScores,
    pub trending: ListScores,
}

/// Each user's relevant movies of the week (ascending), given what was
/// known before it.
pub fn relevant_movies(week: &[Rating], known: &Known) -> BTreeMap<i32, Vec<i32>> {
    let mut out: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for r in week.iter().filter(|r| r.rating >= RELEVANT) {
        let rated = known
            .history(r.user_id)
            .binary_search_by_key(&r.movie_id, |h| h.movie_id)
            .is_ok();
        if !rated {
            out.entry(r.user_id).or_default().push(r.movie_id);
        }
    }
    for ids in out.values_mut() {
        ids.sort_unstable();
        ids.dedup();
    }
    out
}

/// Scores the week's users: `rec` and `known` as a server would hold them
/// at the start of the week, `most_rated` and `trending` the baselines'
/// rankings (best first) from the same store.
pub fn score_week(
    relevant: &BTreeMap<i32, Vec<i32>>,
    known: &Known,
    rec: &Recommender,
    most_rated: &[(i32, f64)],
    trending: &[(i32, f64)],
    k: usize,
) -> Result<WeekScores> {
    let (mut served, mut most, mut trend) = (Sums::default(), Sums::default(), Sums::default());
    for (&user, rel) in relevant {
        let history = known.history(user);
        let new = history.is_empty();
        let req = Request {
            fresh: known.is_fresh(user),
            ..Request::new(user, k, history)
        };
        let (_, top) = rec.recommend_ids(&req)?;
        let ids: Vec<i32> = top.iter().map(|r| r.movie_id).collect();
        let m = ranking_metrics(&ids, rel, k);
        served.add(new, m.ndcg, m.recall);
        let rated: HashSet<i32> = history.iter().map(|h| h.movie_id).collect();
        for (list, sums) in [(most_rated, &mut most), (trending, &mut trend)] {
            let ids: Vec<i32> = list
                .iter()
                .map(|p| p.0)
                .filter(|m| !rated.contains(m))
                .take(k)
                .collect();
            let m = ranking_metrics(&ids, rel, k);
            sums.add(new, m.ndcg, m.recall);
        }
    }
    Ok(WeekScores {
        served: served.scores(),
        most_rated: most.scores(),
        trending: trend.scores(),
    })
}

/// Means over weeks of each week's group means (the replay's summary:
/// every week weighs the same), skipping weeks where a group had no user.
pub fn mean_over_weeks<'a>(weeks: impl Iterator<Item = &'a ListScores> + Clone) -> ListScores {
    let mean = |pick: fn(&ListScores) -> GroupScore| {
        let scored: Vec<GroupScore> = weeks.clone().map(pick).filter(|g| g.users > 0).collect();
        let n = scored.len() as f64;
        if scored.is_empty() {
            return GroupScore::default();
        }
        GroupScore {
            users: scored.iter().map(|g| g.users).sum(),
            ndcg_at_10: scored.iter().map(|g| g.ndcg_at_10).sum::<f64>() / n,
            recall_at_10: scored.iter().map(|g| g.recall_at_10).sum::<f64>() / n,
        }
    };
    ListScores {
        all: mean(|l| l.all),
        returning: mean(|l| l.returning),
        new: mean(|l| l.new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn week(users: u64, ndcg: f64) -> ListScores {
        let g = GroupScore {
            users,
            ndcg_at_10: ndcg,
            recall_at_10: ndcg / 2.0,
        };
        ListScores {
            all: g,
            returning: g,
            new: GroupScore::default(),
        }
    }

    /// Every week weighs the same whatever its user count, and a group
    /// absent in every week stays absent (0 users), not a zero score.
    #[test]
    fn weeks_weigh_the_same() {
        let weeks = [week(10, 0.2), week(1, 0.5)];
        let m = mean_over_weeks(weeks.iter());
        assert!((m.all.ndcg_at_10 - 0.35).abs() < 1e-12);
        assert!((m.all.recall_at_10 - 0.175).abs() < 1e-12);
        assert_eq!(m.all.users, 11);
        assert_eq!(m.new, GroupScore::default());
    }
}
