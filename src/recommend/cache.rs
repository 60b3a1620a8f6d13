//! Lists of users scored from the history the champion already knew
//! (strategy `model`), kept so that a returning user's list is computed once
//! per model version rather than on every request: for EASE a list costs
//! the user's history times the item matrix plus the explanations, far more
//! than answering from memory. Production recommenders keep such lists
//! (Gorse caches each user's recommendations); here they are computed on
//! first request instead of in a batch job.
//!
//! A list is a pure function of the model (one cache per [`Recommender`],
//! which a new champion replaces), the user, `k`, whether explanations were
//! asked for, and the user's history, which enters the key as a fingerprint:
//! a rating merged into the training data changes it, so a movie the user
//! has rated never comes back from the cache. Fold-in lists (ratings newer
//! than the model) and genre-filtered lists are always computed.
//!
//! [`Recommender`]: super::Recommender

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Ranked;

/// Entries kept before the cache starts over (about 1 KB each with
/// explanations): bounded memory whatever the number of users.
pub const DEFAULT_LIST_CACHE_ENTRIES: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    user: i32,
    k: usize,
    explain: bool,
    history: u64,
}

pub(super) struct ListCache {
    capacity: usize,
    map: Mutex<HashMap<Key, Arc<Vec<Ranked>>>>,
}

impl ListCache {
    pub(super) fn new(capacity: usize) -> ListCache {
        ListCache {
            capacity,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn get(
        &self,
        user: i32,
        k: usize,
        explain: bool,
        history: &[(i32, f32)],
    ) -> Option<Vec<Ranked>> {
        if self.capacity == 0 {
            return None;
        }
        let key = key(user, k, explain, history);
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&key).map(|list| list.as_ref().clone())
    }

    pub(super) fn put(
        &self,
        user: i32,
        k: usize,
        explain: bool,
        history: &[(i32, f32)],
        list: &[Ranked],
    ) {
        if self.capacity == 0 {
            return;
        }
        let key = key(user, k, explain, history);
        let list = Arc::new(list.to_vec());
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&key) {
            // Starting over keeps memory bounded with no bookkeeping per
            // hit; the lists are recomputed on demand.
            map.clear();
        }
        map.insert(key, list);
    }

    pub(super) fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn key(user: i32, k: usize, explain: bool, history: &[(i32, f32)]) -> Key {
    Key {
        user,
        k,
        explain,
        history: fingerprint(history),
    }
}

/// A 64-bit hash of the history in order (FNV-1a over each movie id and
/// rating): any added, removed or changed rating changes it.
fn fingerprint(history: &[(i32, f32)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ history.len() as u64;
    for &(movie, stars) in history {
        let word = (u64::from(movie as u32) << 32) | u64::from(stars.to_bits());
        for byte in word.to_le_bytes() {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[i32]) -> Vec<Ranked> {
        ids.iter()
            .map(|&movie_id| Ranked {
                movie_id,
                score: 1.0,
                predicted_rating: None,
                because: vec![(1, 1.0)],
            })
            .collect()
    }

    #[test]
    fn a_changed_history_misses() {
        let cache = ListCache::new(10);
        let h = [(1, 4.0), (2, 3.5)];
        cache.put(7, 10, true, &h, &list(&[3, 4]));
        assert_eq!(cache.get(7, 10, true, &h), Some(list(&[3, 4])));
        assert_eq!(cache.get(7, 10, false, &h), None, "explain is in the key");
        assert_eq!(cache.get(7, 5, true, &h), None, "k is in the key");
        assert_eq!(cache.get(8, 10, true, &h), None, "the user is in the key");
        assert_eq!(
            cache.get(7, 10, true, &[(1, 4.0)]),
            None,
            "one rating fewer"
        );
        assert_eq!(
            cache.get(7, 10, true, &[(1, 4.0), (2, 4.0)]),
            None,
            "a changed rating"
        );
        assert_eq!(
            cache.get(7, 10, true, &[(1, 4.0), (2, 3.5), (3, 5.0)]),
            None,
            "a merged rating"
        );
    }

    #[test]
    fn memory_stays_bounded() {
        let cache = ListCache::new(100);
        for user in 0..1_000 {
            cache.put(user, 10, true, &[(1, 4.0)], &list(&[2]));
            assert!(cache.len() <= 100);
        }
        assert_eq!(cache.get(999, 10, true, &[(1, 4.0)]), Some(list(&[2])));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let cache = ListCache::new(0);
        cache.put(1, 10, true, &[], &list(&[2]));
        assert_eq!(cache.get(1, 10, true, &[]), None);
        assert_eq!(cache.len(), 0);
    }
}
