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

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup that answers what the table never would, to tell which of
    /// the two paths answered.
    fn sentinel(_: i32) -> Option<usize> {
        Some(999)
    }

    #[test]
    fn dense_ids_are_found_through_the_table() {
        let ids = [1, 5, 9];
        let cat = ModelCatalogue::new(&ids, vec![], vec![]);
        assert_eq!(cat.index(1, sentinel), Some(0));
        assert_eq!(cat.index(5, sentinel), Some(1));
        assert_eq!(cat.index(9, sentinel), Some(2));
        // Not in the model: a gap in the table, past its end, negative.
        assert_eq!(cat.index(4, sentinel), None);
        assert_eq!(cat.index(10, sentinel), None);
        assert_eq!(cat.index(-1, sentinel), None);
    }

    #[test]
    fn sparse_or_negative_ids_go_to_the_lookup() {
        let lookup = |id: i32| [1, 10_000_000].iter().position(|&m| m == id);
        let sparse = ModelCatalogue::new(&[1, 10_000_000], vec![], vec![]);
        assert_eq!(sparse.index(10_000_000, lookup), Some(1));
        assert_eq!(sparse.index(1, sentinel), Some(999));
        let negative = ModelCatalogue::new(&[-3, 2], vec![], vec![]);
        assert_eq!(negative.index(2, sentinel), Some(999));
        let empty = ModelCatalogue::new(&[], vec![], vec![]);
        assert_eq!(empty.index(1, sentinel), Some(999));
    }

    /// The table is built while the largest id is below 8 per movie or 2^20,
    /// whichever is larger: exactly at each bound it is, one past it not.
    #[test]
    fn the_table_stops_exactly_at_its_size_bound() {
        let uses_table = |ids: &[i32]| {
            let cat = ModelCatalogue::new(ids, vec![], vec![]);
            cat.index(ids[0], sentinel) == Some(0)
        };
        let mib = 1 << 20;
        assert!(uses_table(&[0, mib - 1]), "table of 2^20 entries");
        assert!(!uses_table(&[0, mib]), "table of 2^20 + 1 entries");
        // 200,000 movies: 8 per movie is 1.6M entries, above 2^20.
        let n = 200_000;
        let mut ids: Vec<i32> = (0..n - 1).collect();
        ids.push(8 * n - 1);
        assert!(uses_table(&ids), "table of 8 entries per movie");
        *ids.last_mut().unwrap() = 8 * n;
        assert!(!uses_table(&ids), "table of 8 per movie + 1");
    }

    #[test]
    fn genres_match_in_any_case() {
        let cat = ModelCatalogue::new(
            &[1, 2],
            vec![
                Movie::with_genres(1, "Comedy|Sci-Fi"),
                Movie::with_genres(2, "(no genres listed)"),
            ],
            vec![],
        );
        assert!(cat.in_genre(1, "sci-fi"));
        assert!(cat.in_genre(1, "COMEDY"));
        assert!(!cat.in_genre(1, "Drama"));
        assert!(!cat.in_genre(2, "(no genres listed)"));
        assert!(!cat.in_genre(3, "Comedy"), "not in the catalogue");
    }

    /// Which movies keep their score after `exclude_others(g)`.
    fn kept(ids: &[i32], movies: &[Movie], g: &str) -> Vec<i32> {
        let map: HashMap<i32, Movie> = movies.iter().map(|m| (m.movie_id, m.clone())).collect();
        let index = GenreIndex::new(ids, &map);
        let mut scores = vec![1.0f32; ids.len()];
        index.exclude_others(g, &map, &mut scores);
        assert!(scores.iter().all(|&s| s == 1.0 || s == f32::NEG_INFINITY));
        ids.iter()
            .zip(&scores)
            .filter(|(_, &s)| s == 1.0)
            .map(|(&id, _)| id)
            .collect()
    }

    #[test]
    fn a_genre_filter_keeps_exactly_that_genre() {
        let movies = [
            Movie::with_genres(1, "Comedy|Drama"),
            Movie::with_genres(2, "Drama"),
            Movie::with_genres(3, "Horror"),
            Movie::with_genres(4, "(no genres listed)"),
        ];
        let ids = [1, 2, 3, 4, 5]; // 5 has no catalogue row
        assert_eq!(kept(&ids, &movies, "drama"), vec![1, 2]);
        assert_eq!(kept(&ids, &movies, "Horror"), vec![3]);
        assert_eq!(kept(&ids, &movies, "Western"), Vec::<i32>::new());
    }

    /// Up to 64 distinct genres the filter works on bits; beyond, on the
    /// genre strings; both keep the same movies, the 64th genre included.
    #[test]
    fn sixty_four_genres_use_bits_and_more_use_strings() {
        for count in [64, 65] {
            let movies: Vec<Movie> = (0..count)
                .map(|i| Movie::with_genres(i, &format!("G{i}")))
                .collect();
            let ids: Vec<i32> = (0..count).collect();
            let map: HashMap<i32, Movie> = movies.iter().map(|m| (m.movie_id, m.clone())).collect();
            assert_eq!(GenreIndex::new(&ids, &map).bits.is_empty(), count > 64);
            for g in [0, 62, 63, count - 1] {
                assert_eq!(
                    kept(&ids, &movies, &format!("g{g}")),
                    vec![g],
                    "{count} genres"
                );
            }
        }
    }
}
