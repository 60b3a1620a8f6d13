//! What the store knows about every user, read the way serving reads it:
//! each user's ratings (train, test and buffer, the latest stars of a movie
//! rated twice) with their times, and who has ratings newer than any model
//! (the buffer). The server keeps one in each snapshot, and the backtest
//! builds one each simulated week, so both rank users from exactly the same
//! history.

use std::collections::{HashMap, HashSet};

use crate::store::Store;
use crate::types::{Rated, Rating, Split};
use crate::Result;

/// Every user's ratings and which users are fresh (see the module docs).
#[derive(Default)]
pub struct Known {
    /// Each user's ratings ascending by movie, one per movie.
    history: HashMap<i32, Box<[Rated]>>,
    /// Users with buffered ratings when this was read: newer than any
    /// model trained before the buffer was merged.
    fresh: HashSet<i32>,
}

impl Known {
    /// Reads every rating the store holds.
    ///
    /// The buffer is read before the ratings table: a merge moves rows from
    /// the one to the other, so between the two reads a row is seen twice
    /// (and deduplicated) rather than not at all.
    pub fn load(store: &mut dyn Store) -> Result<Known> {
        let mut history: HashMap<i32, Vec<Rated>> = HashMap::new();
        let mut buffered = store.buffer_ratings(None)?;
        let fresh = buffered.iter().map(|r| r.user_id).collect();
        // Newest first, and before the ratings table: of a (user, movie)
        // rated more than once, the stable sort and `dedup_by_key` below
        // keep the first, the latest stars.
        buffered.reverse();
        add(&mut history, &buffered);
        for split in [Split::Train, Split::Test] {
            add(&mut history, &store.ratings(split)?);
        }
        let history = history
            .into_iter()
            .map(|(u, mut v)| {
                v.sort_by_key(|h| h.movie_id);
                v.dedup_by_key(|h| h.movie_id);
                (u, v.into_boxed_slice())
            })
            .collect();
        Ok(Known { history, fresh })
    }

    /// One user's history as [`Known::load`] would read it (ascending by
    /// movie, the latest stars of a movie rated twice) and whether they are
    /// fresh, without reading anyone else's: what a one-off request (the
    /// CLI) needs.
    pub fn user(store: &mut dyn Store, user: i32) -> Result<(Vec<Rated>, bool)> {
        // By time, so the last of a movie's ratings is its latest.
        let mut history: Vec<Rated> = store.user_ratings(user)?.iter().map(Rated::from).collect();
        history.reverse();
        history.sort_by_key(|h| h.movie_id);
        history.dedup_by_key(|h| h.movie_id);
        let fresh = store
            .buffer_ratings(None)?
            .iter()
            .any(|r| r.user_id == user);
        Ok((history, fresh))
    }

    /// What `user` had rated when this was read, ascending by movie.
    pub fn history(&self, user: i32) -> &[Rated] {
        self.history.get(&user).map_or(&[], |v| v)
    }

    /// Whether `user` had buffered ratings when this was read.
    pub fn is_fresh(&self, user: i32) -> bool {
        self.fresh.contains(&user)
    }

    /// The ids of every user with a rating, ascending.
    pub fn user_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.history.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Users with at least one rating.
    pub fn users(&self) -> usize {
        self.history.len()
    }

    /// Users with ratings and none buffered (whose lists the model makes
    /// from what it learned), most ratings first, then by id.
    pub fn settled_users(&self) -> Vec<i32> {
        let mut users: Vec<(usize, i32)> = self
            .history
            .iter()
            .filter(|(u, _)| !self.fresh.contains(u))
            .map(|(&u, h)| (h.len(), u))
            .collect();
        users.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        users.into_iter().map(|(_, u)| u).collect()
    }
}

fn add(into: &mut HashMap<i32, Vec<Rated>>, ratings: &[Rating]) {
    for r in ratings {
        into.entry(r.user_id).or_default().push(Rated::from(r));
    }
}
