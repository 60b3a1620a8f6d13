//! Whether the lists still work: before a batch is merged, the champion's
//! lists for the batch's users (made from what was known before the batch,
//! through the serving code) are scored on the batch itself, with the
//! backtest's metric (NDCG@10, binary gains, relevant = rated 4.0 or more
//! and not rated before). The distribution tests say the data moved; this
//! says whether the people it serves stopped finding what they watch next.
//!
//! The score is recorded as a `ranking_quality` row of `drift_alerts`. Its
//! threshold is the recent level (the mean of the last [`RECENT`] scores)
//! lowered by the tolerance, and it alerts when the batch scores below it,
//! so the row reads the other way round from the distribution tests (lower
//! is worse). The first batch only sets the level.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::eval::ranking_metrics;
use crate::recommend::{cold_start_list, Recommender, Request};
use crate::store::{NewDriftAlert, Store};
use crate::types::{Rated, Rating};
use crate::{Error, Result};

/// The row's feature name in `drift_alerts`.
pub const FEATURE: &str = "ranking_quality";

/// At most this many of the batch's users are scored (a deterministic
/// sample by id), so a batch of millions costs seconds, not minutes.
pub const MAX_USERS: usize = 2000;

/// The recent level is the mean of this many previous scores.
pub const RECENT: usize = 4;

/// A rating at least this good makes its movie relevant (as the backtest).
pub const RELEVANT: f32 = 4.0;

const K: usize = 10;

/// The batch's list quality, as a row to record; `None` when there is
/// nothing to score (no champion, or no user rated a movie new to them
/// with 4.0 or more).
pub fn measure(
    store: &mut dyn Store,
    batch_id: Option<&str>,
    batch: &[Rating],
    tolerance: f64,
) -> Result<Option<NewDriftAlert>> {
    let rec = match Recommender::load(store) {
        Ok(r) => r,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    // Newcomers get the cold-start list as it was before the batch: the
    // batch's own ratings must not pick what they are judged on.
    let rec = match batch_id {
        Some(id) if rec.cold_start.counts().is_some() => {
            let stats = store.movie_stats()?;
            let list = cold_start_list(store, rec.cold_start, &stats, Some(id))?;
            let kind = rec.cold_start;
            rec.with_cold_start(kind, list)
        }
        _ => rec,
    };
    let in_batch: HashSet<(i32, i32, i64)> = batch
        .iter()
        .map(|r| (r.user_id, r.movie_id, r.timestamp))
        .collect();
    // Users with buffered ratings from before this batch: their lists are
    // folded in from their ratings, as the server would.
    let fresh: HashSet<i32> = store
        .buffer_ratings(None)?
        .iter()
        .filter(|r| !in_batch.contains(&(r.user_id, r.movie_id, r.timestamp)))
        .map(|r| r.user_id)
        .collect();
    let mut by_user: BTreeMap<i32, Vec<&Rating>> = BTreeMap::new();
    for r in batch {
        by_user.entry(r.user_id).or_default().push(r);
    }
    let mut users: Vec<i32> = by_user
        .iter()
        .filter(|(_, rs)| rs.iter().any(|r| r.rating >= RELEVANT))
        .map(|(&u, _)| u)
        .collect();
    users.sort_by_key(|&u| crate::eval::sample_order(u));
    users.truncate(MAX_USERS);

    let (mut n, mut sum, mut new_users) = (0usize, 0.0f64, 0usize);
    for user in users {
        let history = history_before(store, user, &in_batch)?;
        let known: HashSet<i32> = history.iter().map(|h| h.movie_id).collect();
        let mut relevant: Vec<i32> = by_user[&user]
            .iter()
            .filter(|r| r.rating >= RELEVANT && !known.contains(&r.movie_id))
            .map(|r| r.movie_id)
            .collect();
        relevant.sort_unstable();
        relevant.dedup();
        if relevant.is_empty() {
            continue;
        }
        let req = Request {
            fresh: fresh.contains(&user),
            ..Request::new(user, K, &history)
        };
        let (_, top) = rec.recommend_ids(&req)?;
        let ids: Vec<i32> = top.iter().map(|r| r.movie_id).collect();
        sum += ranking_metrics(&ids, &relevant, K).ndcg;
        n += 1;
        new_users += usize::from(history.is_empty());
    }
    if n == 0 {
        return Ok(None);
    }
    let score = sum / n as f64;
    let recent: Vec<f64> = store
        .drift_alerts(None)?
        .into_iter()
        .filter(|a| a.feature_name == FEATURE)
        .filter_map(|a| a.drift_score)
        .take(RECENT)
        .collect();
    let (threshold, alert, level) = if recent.is_empty() {
        (
            0.0,
            false,
            "the first measurement sets the level".to_string(),
        )
    } else {
        let level = recent.iter().sum::<f64>() / recent.len() as f64;
        let threshold = level * (1.0 - tolerance);
        (
            threshold,
            score < threshold,
            format!(
                "recent level {level:.4} (last {} batches), alert below {threshold:.4}",
                recent.len()
            ),
        )
    };
    Ok(Some(NewDriftAlert {
        feature_name: FEATURE.into(),
        drift_score: score,
        threshold,
        alert_triggered: alert,
        notes: format!(
            "NDCG@10 of {}'s lists on the batch: {n} users scored ({new_users} new to the store); {level}; lower is worse",
            rec.model_version
        ),
    }))
}

/// The user's ratings known before the batch (every stored and buffered
/// rating but the batch's own), ascending by movie, the latest stars of a
/// movie rated twice.
fn history_before(
    store: &mut dyn Store,
    user: i32,
    in_batch: &HashSet<(i32, i32, i64)>,
) -> Result<Vec<Rated>> {
    let mut latest: HashMap<i32, Rated> = HashMap::new();
    for r in store.user_ratings(user)? {
        if in_batch.contains(&(r.user_id, r.movie_id, r.timestamp)) {
            continue;
        }
        let h = Rated::from(&r);
        latest
            .entry(r.movie_id)
            .and_modify(|e| {
                if h.timestamp >= e.timestamp {
                    *e = h;
                }
            })
            .or_insert(h);
    }
    let mut out: Vec<Rated> = latest.into_values().collect();
    out.sort_by_key(|h| h.movie_id);
    Ok(out)
}
