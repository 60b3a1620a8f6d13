//! Lists of users scored from the history the champion already knew
//! (strategy `model`), kept so that a returning user's list is computed once
//! per model version rather than on every request. Ranking a user of a
//! large catalogue scans every movie (and for iALS explanations solves the
//! user's system), far more than answering from memory. Production
//! recommenders keep such lists (Gorse computes each user's in a batch job
//! and serves them from a cache); here they are filled two ways: on a
//! user's first request, and ahead of requests by the server's
//! precomputation ([`Recommender::precompute`]).
//!
//! A list is a pure function of the model (one cache per [`Recommender`],
//! which a new champion or snapshot replaces), the user and the user's
//! history, which enters the entry as a fingerprint: a rating merged into
//! the training data changes it, so a movie the user has rated never comes
//! back from the cache. One entry per user holds the deepest list computed,
//! with or without explanations: the top `k` of a model is the first `k` of
//! its top `n ≥ k` (one total order: score, then movie), and an item's
//! explanation does not depend on `k`, so a list of 10 with explanations
//! answers `k = 3` without them. Fold-in lists (ratings newer than the
//! model) and genre-filtered lists are always computed.
//!
//! Memory is bounded by a number of items (about 40 bytes each): once the
//! budget is spent, further lists are computed on every request until the
//! next snapshot starts a new cache.
//!
//! [`Recommender`]: super::Recommender
//! [`Recommender::precompute`]: super::Recommender::precompute

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Ranked, MAX_REASONS};
use crate::types::Rated;

/// Items (movies of cached lists) kept at most: 4,000,000 is every list of
/// 10 of 400,000 users, about 160 MB.
pub const DEFAULT_LIST_CACHE_ITEMS: usize = 4_000_000;

/// One cached movie, flat: no allocation per item.
#[derive(Debug, Clone, Copy)]
struct Item {
    movie_id: i32,
    score: f32,
    /// NaN for none.
    predicted: f32,
    reasons: u8,
    because: [(i32, f32); MAX_REASONS],
}

impl Item {
    fn new(r: &Ranked) -> Item {
        let mut because = [(0, 0.0); MAX_REASONS];
        let reasons = r.because.len().min(MAX_REASONS);
        because[..reasons].copy_from_slice(&r.because[..reasons]);
        Item {
            movie_id: r.movie_id,
            score: r.score,
            predicted: r.predicted_rating.unwrap_or(f32::NAN),
            reasons: reasons as u8,
            because,
        }
    }

    fn ranked(&self, explain: bool) -> Ranked {
        Ranked {
            movie_id: self.movie_id,
            score: self.score,
            predicted_rating: (!self.predicted.is_nan()).then_some(self.predicted),
            because: if explain {
                self.because[..usize::from(self.reasons)].to_vec()
            } else {
                Vec::new()
            },
        }
    }
}

struct Entry {
    history: u64,
    explained: bool,
    /// Fewer movies than asked for were left: the list is all of them, so
    /// it answers any `k`.
    complete: bool,
    items: Box<[Item]>,
}

impl Entry {
    fn answers(&self, k: usize, explain: bool, history: u64) -> bool {
        self.history == history
            && (self.explained || !explain)
            && (self.items.len() >= k || self.complete)
    }
}

#[derive(Default)]
struct Lists {
    by_user: HashMap<i32, Entry>,
    /// Items over all entries.
    items: usize,
}

pub(super) struct ListCache {
    budget: usize,
    lists: Mutex<Lists>,
}

impl ListCache {
    /// A cache holding at most `budget` items (0 keeps nothing).
    pub(super) fn new(budget: usize) -> ListCache {
        ListCache {
            budget,
            lists: Mutex::new(Lists::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The user's top `k` (without reasons unless `explain`), if a held
    /// list answers it.
    pub(super) fn get(
        &self,
        user: i32,
        k: usize,
        explain: bool,
        history: &[Rated],
    ) -> Option<Vec<Ranked>> {
        if self.budget == 0 {
            return None;
        }
        let fp = fingerprint(history);
        let lists = self.lock();
        let entry = lists.by_user.get(&user)?;
        entry.answers(k, explain, fp).then(|| {
            let n = k.min(entry.items.len());
            entry.items[..n].iter().map(|i| i.ranked(explain)).collect()
        })
    }

    /// Whether a held list answers the request (see [`ListCache::get`]).
    pub(super) fn answers(&self, user: i32, k: usize, explain: bool, history: &[Rated]) -> bool {
        let fp = fingerprint(history);
        self.lock()
            .by_user
            .get(&user)
            .is_some_and(|e| e.answers(k, explain, fp))
    }

    /// Keeps `list`, the user's top `k` (with reasons if `explain`), unless
    /// the held list already answers everything it does or the budget is
    /// spent. Returns whether the list is held.
    pub(super) fn put(
        &self,
        user: i32,
        k: usize,
        explain: bool,
        history: &[Rated],
        list: &[Ranked],
    ) -> bool {
        if self.budget == 0 {
            return false;
        }
        let entry = Entry {
            history: fingerprint(history),
            explained: explain,
            complete: list.len() < k,
            items: list.iter().map(Item::new).collect(),
        };
        let mut lists = self.lock();
        let held = lists.by_user.get(&user);
        if held.is_some_and(|h| {
            h.answers(entry.items.len(), explain, entry.history) && (h.complete || !entry.complete)
        }) {
            return true;
        }
        let freed = held.map_or(0, |h| h.items.len());
        if lists.items - freed + entry.items.len() > self.budget {
            return false;
        }
        lists.items = lists.items - freed + entry.items.len();
        lists.by_user.insert(user, entry);
        true
    }

    /// Whether a list of `k` more movies fits in the budget.
    pub(super) fn has_room(&self, k: usize) -> bool {
        self.lock().items + k <= self.budget
    }

    /// Users with a list held.
    pub(super) fn len(&self) -> usize {
        self.lock().by_user.len()
    }
}

/// A 64-bit hash of the history in order (FNV-1a over each movie id,
/// rating and time): any added, removed or changed rating changes it.
fn fingerprint(history: &[Rated]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ history.len() as u64;
    for r in history {
        let word = (u64::from(r.movie_id as u32) << 32) | u64::from(r.stars.to_bits());
        for byte in word
            .to_le_bytes()
            .into_iter()
            .chain(r.timestamp.to_le_bytes())
        {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::rated;

    fn list(ids: &[i32]) -> Vec<Ranked> {
        ids.iter()
            .map(|&movie_id| Ranked {
                movie_id,
                score: movie_id as f32,
                predicted_rating: (movie_id % 2 == 0).then_some(3.5),
                because: vec![(1, 0.75), (9, 0.25)],
            })
            .collect()
    }

    fn plain(ids: &[i32]) -> Vec<Ranked> {
        let mut l = list(ids);
        l.iter_mut().for_each(|r| r.because.clear());
        l
    }

    #[test]
    fn a_changed_history_misses() {
        let cache = ListCache::new(100);
        let h = rated(&[(1, 4.0), (2, 3.5)]);
        assert!(cache.put(7, 2, true, &h, &list(&[3, 4])));
        assert_eq!(cache.get(7, 2, true, &h), Some(list(&[3, 4])));
        assert_eq!(cache.get(8, 2, true, &h), None, "the user is in the key");
        assert_eq!(
            cache.get(7, 2, true, &rated(&[(1, 4.0)])),
            None,
            "one rating fewer"
        );
        assert_eq!(
            cache.get(7, 2, true, &rated(&[(1, 4.0), (2, 4.0)])),
            None,
            "a changed rating"
        );
        assert_eq!(
            cache.get(7, 2, true, &rated(&[(1, 4.0), (2, 3.5), (3, 5.0)])),
            None,
            "a merged rating"
        );
    }

    #[test]
    fn a_deeper_list_answers_shorter_ones_and_plain_ones() {
        let cache = ListCache::new(100);
        let h = rated(&[(1, 4.0)]);
        cache.put(7, 4, true, &h, &list(&[5, 6, 7, 8]));
        assert_eq!(cache.get(7, 2, true, &h), Some(list(&[5, 6])));
        assert_eq!(cache.get(7, 3, false, &h), Some(plain(&[5, 6, 7])));
        assert_eq!(cache.get(7, 5, true, &h), None, "deeper than held");
        // A list without reasons does not answer a request for them, and
        // does not replace one that has them and answers it.
        cache.put(7, 2, false, &h, &plain(&[5, 6]));
        assert_eq!(cache.get(7, 4, true, &h), Some(list(&[5, 6, 7, 8])));
        cache.put(8, 2, false, &h, &plain(&[5, 6]));
        assert_eq!(cache.get(8, 2, true, &h), None);
        assert_eq!(cache.get(8, 1, false, &h), Some(plain(&[5])));
        // A shorter list than asked for is every movie left: any k.
        cache.put(9, 10, true, &h, &list(&[2, 3]));
        assert_eq!(cache.get(9, 50, true, &h), Some(list(&[2, 3])));
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let cache = ListCache::new(100);
        for user in 0..1_000 {
            let held = cache.put(user, 3, true, &rated(&[(1, 4.0)]), &list(&[2, 3, 4]));
            assert_eq!(held, user < 33, "user {user}");
        }
        assert_eq!(cache.len(), 33);
        assert_eq!(cache.lock().items, 99);
        // Replacing a held list frees its items first.
        assert!(cache.put(0, 4, true, &rated(&[(1, 4.0)]), &list(&[2, 3, 4, 5])));
        assert_eq!(cache.lock().items, 100);
        assert_eq!(
            cache.get(32, 3, true, &rated(&[(1, 4.0)])),
            Some(list(&[2, 3, 4]))
        );
    }

    #[test]
    fn zero_budget_keeps_nothing() {
        let cache = ListCache::new(0);
        assert!(!cache.put(1, 10, true, &[], &list(&[2])));
        assert_eq!(cache.get(1, 10, true, &[]), None);
        assert_eq!(cache.len(), 0);
    }
}
