//! Movies by what people type: an id or a title (`Toy Story`, `toy story
//! 1995`), for the CLI's `similar --movie`, `recommend --rated` and
//! `search`.

use crate::store::Store;
use crate::types::Movie;
use crate::{Error, Result};

/// How many candidates an ambiguous title lists.
pub const MAX_CANDIDATES: usize = 10;

/// The movie `text` names: a movie id (digits) or a title. A title picks
/// the movie whose title is exactly it (any case, with or without the
/// release year), else the only search hit; [`Error::AmbiguousMovie`] with
/// the best hits when several fit, [`Error::NotFound`] when none does.
pub fn find_movie(store: &mut dyn Store, text: &str) -> Result<Movie> {
    let text = text.trim();
    if let Ok(id) = text.parse::<i32>() {
        return store
            .movies_by_id(&[id])?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound(format!("movie {id} is not in the catalogue")));
    }
    let hits = store.search_movies(text, None, 100)?;
    if hits.is_empty() {
        return Err(Error::NotFound(format!(
            "no movie title matches {text:?} (every word must start a word of the title)"
        )));
    }
    let exact: Vec<&Movie> = hits.iter().filter(|m| same_title(&m.title, text)).collect();
    match (exact.as_slice(), hits.as_slice()) {
        ([one], _) => return Ok((*one).clone()),
        ([], [one]) => return Ok(one.clone()),
        _ => {}
    }
    let shown: Vec<&Movie> = if exact.len() > 1 {
        exact
    } else {
        hits.iter().collect()
    };
    Err(Error::AmbiguousMovie {
        title: text.to_string(),
        candidates: shown
            .iter()
            .take(MAX_CANDIDATES)
            .map(|m| (m.movie_id, m.title.clone()))
            .collect(),
    })
}

/// Whether a catalogue title is what was typed: any case, inner spaces
/// collapsed, with or without the trailing `(year)`.
fn same_title(title: &str, typed: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    let (title, typed) = (norm(title), norm(typed));
    if title == typed {
        return true;
    }
    match title.rsplit_once(" (") {
        Some((bare, year)) if year.ends_with(')') => bare == typed,
        _ => false,
    }
}

/// The catalogue's spelling of `genre` typed in any case, among the genres
/// of `movies`; [`Error::UnknownGenre`] naming them when no movie has it.
pub fn canonical_genre<'a>(movies: impl Iterator<Item = &'a Movie>, genre: &str) -> Result<String> {
    let mut genres: Vec<&str> = movies.flat_map(Movie::genre_list).collect();
    genres.sort_unstable();
    genres.dedup();
    let typed = genre.trim();
    genres
        .iter()
        .find(|g| g.eq_ignore_ascii_case(typed))
        .map(|g| g.to_string())
        .ok_or_else(|| Error::UnknownGenre {
            genre: typed.to_string(),
            genres: genres.iter().map(|g| g.to_string()).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_match_with_or_without_the_year() {
        assert!(same_title("Toy Story (1995)", "toy story"));
        assert!(same_title("Toy Story (1995)", "Toy  Story (1995)"));
        assert!(!same_title("Toy Story 2 (1999)", "toy story"));
    }

    #[test]
    fn unknown_genre_names_the_genres() {
        let m = |g: &str| Movie {
            movie_id: 1,
            title: "x".into(),
            genres: g.into(),
            pca_features: None,
        };
        let movies = [m("Horror|Comedy"), m("Drama")];
        assert_eq!(canonical_genre(movies.iter(), "horror").unwrap(), "Horror");
        match canonical_genre(movies.iter(), "Horrer") {
            Err(e @ Error::UnknownGenre { .. }) => {
                assert!(e.to_string().contains("Comedy, Drama, Horror"), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
}
