//! Title and genre search through the `movies_fts` FTS5 table.

use super::rows::movie_row;
use super::SqliteStore;
use crate::types::Movie;
use crate::Result;

pub(super) fn search_movies(
    store: &mut SqliteStore,
    query: &str,
    genre: Option<&str>,
    limit: usize,
) -> Result<Vec<Movie>> {
    let Some((words, genre)) = crate::store::search_plan(query, genre, limit) else {
        return Ok(Vec::new());
    };
    // Every user value is a bound parameter. The FTS5 expressions are
    // built from `search_words`, runs of alphanumerics, each inside a
    // double-quoted FTS5 string, so nothing in them is FTS5 syntax.
    let mut terms: Vec<String> = words.iter().map(|w| format!("title : \"{w}\" *")).collect();
    let genre_words = genre.map(crate::store::search_words).unwrap_or_default();
    if !genre_words.is_empty() {
        terms.push(format!("genres : \"{}\"", genre_words.join(" ")));
    }
    let mut params: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    if !terms.is_empty() {
        params.push(Box::new(terms.join(" AND ")));
        conds.push(format!(
            "m.movieId IN (SELECT rowid FROM movies_fts WHERE movies_fts MATCH ?{})",
            params.len()
        ));
    }
    if let Some(g) = genre {
        // FTS5 matches genre words; this keeps exactly the genre asked
        // for ("Fi" must not find "Sci-Fi").
        params.push(Box::new(g.to_string()));
        conds.push(format!(
            "instr('|' || lower(COALESCE(m.genres, '')) || '|', '|' || lower(?{}) || '|') > 0",
            params.len()
        ));
    }
    let mut exact: Vec<String> = Vec::new();
    for w in &words {
        params.push(Box::new(format!("title : \"{w}\"")));
        exact.push(format!(
            "(m.movieId IN (SELECT rowid FROM movies_fts WHERE movies_fts MATCH ?{}))",
            params.len()
        ));
    }
    let by_words = if exact.is_empty() {
        String::new()
    } else {
        format!("{} DESC,", exact.join(" + "))
    };
    params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT m.movieId, m.title, m.genres, m.pca_features FROM movies m
          WHERE {}
          ORDER BY {by_words}
                   (SELECT COUNT(*) FROM ratings r
                     WHERE r.movieId = m.movieId AND r.data_split = 'train') DESC,
                   m.movieId
          LIMIT ?{}",
        conds.join(" AND "),
        params.len()
    );
    let mut stmt = store.conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), movie_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
