//! The snapshot requests are answered from: the champion's recommender,
//! the catalogue and every user's ratings, loaded together (see `state` for
//! how it follows the database, and `precompute` for the lists computed
//! from it ahead of requests). Below both, so neither imports the other.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicUsize;

use crate::recommend::{Known, Recommender};
use crate::registry;
use crate::store::{MovieStats, Store};
use crate::types::{Movie, Rated};
use crate::{Error, Result};

/// The catalogue as the API shows it, with what the movie page and search
/// results need (search itself runs in the store's full-text indexes).
pub struct Catalogue {
    /// Sorted by movie id.
    movies: Vec<Movie>,
    stats: HashMap<i32, MovieStats>,
    /// Every genre in the catalogue, as spelled there.
    genres: BTreeSet<String>,
}

impl Catalogue {
    fn new(mut movies: Vec<Movie>, stats: &[MovieStats]) -> Catalogue {
        movies.sort_by_key(|m| m.movie_id);
        let genres = movies
            .iter()
            .flat_map(|m| m.genre_list().map(str::to_string))
            .collect();
        Catalogue {
            movies,
            stats: stats.iter().map(|s| (s.movie_id, *s)).collect(),
            genres,
        }
    }

    pub fn len(&self) -> usize {
        self.movies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.movies.is_empty()
    }

    pub fn get(&self, movie_id: i32) -> Option<&Movie> {
        self.movies
            .binary_search_by_key(&movie_id, |m| m.movie_id)
            .ok()
            .map(|i| &self.movies[i])
    }

    /// Training-split rating count and mean, `None` for a movie nobody rated.
    pub fn stats(&self, movie_id: i32) -> Option<MovieStats> {
        self.stats.get(&movie_id).copied()
    }

    pub fn genres(&self) -> impl Iterator<Item = &str> {
        self.genres.iter().map(String::as_str)
    }

    /// The catalogue's spelling of a genre typed in any case, `None` if no
    /// movie has it (so a typo is an error, not an empty list).
    pub fn canonical_genre(&self, genre: &str) -> Option<&str> {
        let genre = genre.trim();
        self.genres().find(|g| g.eq_ignore_ascii_case(genre))
    }
}

/// Everything requests read, loaded together so it is always consistent.
pub struct Snapshot {
    /// `None` while the database holds no champion yet.
    pub recommender: Option<Recommender>,
    pub catalogue: Catalogue,
    /// Every user's ratings and who is fresh, when this was loaded.
    known: Known,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub load_seconds: f64,
    /// The database's change version read before anything else: every
    /// change up to it is in this snapshot.
    pub(super) data_version: i64,
    /// Users whose list the background precomputation has not reached yet
    /// (see the `precompute` module); 0 when it is done, stopped or off.
    pub(crate) precompute_remaining: AtomicUsize,
}

impl Snapshot {
    pub fn model_version(&self) -> Option<&str> {
        self.recommender.as_ref().map(|r| r.model_version.as_str())
    }

    pub fn users_with_ratings(&self) -> usize {
        self.known.users()
    }

    /// Users with ratings and none buffered (whose lists the model makes
    /// from what it learned), most ratings first, then by id.
    pub(crate) fn settled_users(&self) -> Vec<i32> {
        self.known.settled_users()
    }

    /// What `user` had rated when this was loaded, ascending by movie.
    pub fn history(&self, user: i32) -> &[Rated] {
        self.known.history(user)
    }

    /// Whether `user` had buffered ratings when this was loaded.
    pub fn is_fresh(&self, user: i32) -> bool {
        self.known.is_fresh(user)
    }

    /// Reads the champion, the catalogue and every user's ratings
    /// ([`Known::load`]). `list_cache_items` bounds the recommender's list
    /// cache.
    pub(super) fn load(store: &mut dyn Store, list_cache_items: usize) -> Result<Snapshot> {
        let t0 = std::time::Instant::now();
        let data_version = store.data_version()?;
        let champion = match registry::load_champion(store) {
            Ok(found) => Some(found),
            Err(Error::NotFound(why)) => {
                tracing::debug!("no champion to serve: {why}");
                None
            }
            Err(e) => return Err(e),
        };
        let movies = store.movies()?;
        let stats = store.movie_stats()?;
        let known = Known::load(store)?;
        let recommender = match champion {
            Some((version, model)) => Some(
                Recommender::assemble(store, version, model, movies.clone(), &stats)?
                    .with_list_cache(list_cache_items),
            ),
            None => None,
        };
        Ok(Snapshot {
            recommender,
            catalogue: Catalogue::new(movies, &stats),
            known,
            loaded_at: chrono::Utc::now(),
            load_seconds: t0.elapsed().as_secs_f64(),
            data_version,
            precompute_remaining: AtomicUsize::new(0),
        })
    }
}
