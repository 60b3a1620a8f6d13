//! Plain records shared by every layer: what a rating and a movie are.

use serde::{Deserialize, Serialize};

/// One explicit rating as MovieLens publishes it.
///
/// `rating` is kept as `f32`: MovieLens ratings are half stars, exactly
/// representable, and halving the memory matters at tens of millions of rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub user_id: i32,
    pub movie_id: i32,
    pub rating: f32,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Which side of the train/test split a stored rating belongs to
/// (`ratings.data_split` in the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    /// The literal stored in `data_split`, as the schema's CHECK constraint spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Split> {
        match s {
            "train" => Some(Split::Train),
            "test" => Some(Split::Test),
            _ => None,
        }
    }
}

/// A rating together with the split it was assigned to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitRating {
    pub rating: Rating,
    pub split: Split,
}

/// A movie row: title with year, pipe-separated genres, and the PCA genre
/// embedding that content-based fallbacks use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Movie {
    pub movie_id: i32,
    pub title: String,
    /// Pipe-separated, e.g. `Adventure|Animation|Children`; MovieLens writes
    /// `(no genres listed)` for none.
    pub genres: String,
    pub pca_features: Option<Vec<f64>>,
}

impl Movie {
    /// The individual genres, skipping MovieLens's "(no genres listed)" marker.
    pub fn genre_list(&self) -> impl Iterator<Item = &str> {
        self.genres
            .split('|')
            .map(str::trim)
            .filter(|g| !g.is_empty() && *g != "(no genres listed)")
    }
}

/// The genre list MovieLens uses in its modern releases (ml-latest, ml-25m).
pub const MOVIELENS_GENRES: &[&str] = &[
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];
