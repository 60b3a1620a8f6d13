//! Title and genre search through the `movies_fts` FTS5 table.

use super::SqliteStore;
use crate::store::{SearchMatch, MAX_SEARCH_MATCHES};
use crate::Result;

/// Every match with how many words match a whole title word; no rating is
/// read (see `Store::search_matches`).
pub(super) fn search_matches(
    store: &mut SqliteStore,
    query: &str,
    genre: Option<&str>,
) -> Result<Vec<SearchMatch>> {
    let Some((words, genre)) = crate::store::search_plan(query, genre, MAX_SEARCH_MATCHES) else {
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
    let whole_words = if exact.is_empty() {
        "0".to_string()
    } else {
        exact.join(" + ")
    };
    params.push(Box::new(
        i64::try_from(MAX_SEARCH_MATCHES).unwrap_or(i64::MAX),
    ));
    let sql = format!(
        "SELECT m.movieId, {whole_words} FROM movies m
          WHERE {}
          LIMIT ?{}",
        conds.join(" AND "),
        params.len()
    );
    let mut stmt = store.conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            Ok(SearchMatch {
                movie_id: r.get(0)?,
                whole_words: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
