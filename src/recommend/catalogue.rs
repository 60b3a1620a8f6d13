//! The movies a [`super::Recommender`] answers with: titles and genres for
//! the items, each model movie's genres as bits for genre filters, the
//! cold-start ranking and a dense id table for fast exclusions.

use std::collections::HashMap;

use crate::types::Movie;

/// The catalogue as seen from one model's movie indices.
pub(super) struct ModelCatalogue {
    pub movies: HashMap<i32, Movie>,
    /// Movie ids by popularity, best first, with the damped mean.
    pub popular: Vec<(i32, f64)>,
    /// Genres of the model's movies, by dense movie index.
    pub genres: GenreIndex,
    /// Dense model index by movie id, for excluding rated movies without
    /// hashing; empty when ids are too sparse for a table.
    index_by_id: Vec<u32>,
}

impl ModelCatalogue {
    pub fn new(
        model_movies: &[i32],
        movies: Vec<Movie>,
        popular: Vec<(i32, f64)>,
    ) -> ModelCatalogue {
        let movies: HashMap<i32, Movie> = movies.into_iter().map(|m| (m.movie_id, m)).collect();
        ModelCatalogue {
            genres: GenreIndex::new(model_movies, &movies),
            index_by_id: index_table(model_movies),
            movies,
            popular,
        }
    }

    /// The dense index of `id` in the model whose movie ids built this
    /// catalogue, through the table when there is one.
    #[inline]
    pub fn index(&self, id: i32, lookup: impl Fn(i32) -> Option<usize>) -> Option<usize> {
        match usize::try_from(id)
            .ok()
            .and_then(|i| self.index_by_id.get(i))
        {
            Some(&m) if m != u32::MAX => Some(m as usize),
            Some(_) => None,
            None if self.index_by_id.is_empty() => lookup(id),
            None => None,
        }
    }

    /// Whether movie `id` has genre `g` (any case).
    pub fn in_genre(&self, id: i32, g: &str) -> bool {
        self.movies
            .get(&id)
            .is_some_and(|m| m.genre_list().any(|x| x.eq_ignore_ascii_case(g)))
    }
}

/// `table[id]` = dense index of movie `id` (`u32::MAX` for none), when the
/// largest id is at most 8 per movie or 2²⁰ (MovieLens ids: a few hundred
/// KB); empty otherwise, and lookups hash instead.
fn index_table(movie_ids: &[i32]) -> Vec<u32> {
    let Some(&max) = movie_ids.last() else {
        return Vec::new();
    };
    let len = usize::try_from(max).map_or(usize::MAX, |m| m + 1);
    if movie_ids[0] < 0 || len > (8 * movie_ids.len()).max(1 << 20) {
        return Vec::new();
    }
    let mut table = vec![u32::MAX; len];
    for (i, &id) in movie_ids.iter().enumerate() {
        table[id as usize] = i as u32;
    }
    table
}

/// Each model movie's genres as bits, for genre-filtered recommendations
/// without string comparisons per movie.
pub(super) struct GenreIndex {
    /// Distinct genres of the model's movies, as spelled in the catalogue
    /// (at most 64; `bits` is empty when there are more).
    names: Vec<String>,
    /// By dense movie index: bit `i` set when the movie has `names[i]`.
    bits: Vec<u64>,
    /// The model's movie ids, for the slow path.
    ids: Vec<i32>,
}

impl GenreIndex {
    fn new(model_movies: &[i32], movies: &HashMap<i32, Movie>) -> GenreIndex {
        let mut names: Vec<String> = Vec::new();
        let mut bits = Vec::with_capacity(model_movies.len());
        for id in model_movies {
            let mut b = 0u64;
            for g in movies.get(id).into_iter().flat_map(Movie::genre_list) {
                let i = match names.iter().position(|n| n.eq_ignore_ascii_case(g)) {
                    Some(i) => i,
                    None => {
                        names.push(g.to_string());
                        names.len() - 1
                    }
                };
                if i < 64 {
                    b |= 1 << i;
                }
            }
            bits.push(b);
        }
        if names.len() > 64 {
            bits.clear();
        }
        GenreIndex {
            names,
            bits,
            ids: model_movies.to_vec(),
        }
    }

    /// Sets the score of every model movie outside genre `g` to −∞.
    pub fn exclude_others(&self, g: &str, movies: &HashMap<i32, Movie>, scores: &mut [f32]) {
        if self.bits.is_empty() {
            for (s, id) in scores.iter_mut().zip(&self.ids) {
                let ok = movies
                    .get(id)
                    .is_some_and(|m| m.genre_list().any(|x| x.eq_ignore_ascii_case(g)));
                if !ok {
                    *s = f32::NEG_INFINITY;
                }
            }
            return;
        }
        let bit = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(g))
            .map_or(0, |i| 1u64 << i);
        for (s, b) in scores.iter_mut().zip(&self.bits) {
            if b & bit == 0 {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}
