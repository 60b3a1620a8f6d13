//! Title and genre search through the full-text GIN indexes.

use super::PgStore;
use crate::store::{SearchMatch, MAX_SEARCH_MATCHES};
use crate::Result;

pub(super) fn search_matches(
    store: &mut PgStore,
    query: &str,
    genre: Option<&str>,
) -> Result<Vec<SearchMatch>> {
    let Some((words, genre)) = crate::store::search_plan(query, genre, MAX_SEARCH_MATCHES) else {
        return Ok(Vec::new());
    };
    // The titles' tsvector folds diacritics (as FTS5 does on SQLite): the
    // words must be folded the same way to match. A word of combining marks
    // alone folds to nothing, and (as on SQLite) matches nothing.
    let folded: Vec<String> = words
        .iter()
        .map(|w| crate::store::schema::fold_diacritics(w))
        .filter(|w| !w.is_empty())
        .collect();
    if folded.is_empty() && !words.is_empty() {
        return Ok(Vec::new());
    }
    let words = folded;
    let (sql, params) = search_sql(&words, genre, MAX_SEARCH_MATCHES);
    let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
        params.iter().map(|p| p.as_ref()).collect();
    let rows = store.client.query(&sql, &refs)?;
    Ok(rows
        .iter()
        .map(|r| SearchMatch {
            movie_id: r.get(0),
            whole_words: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
        })
        .collect())
}

/// The title side of search: ASCII punctuation to spaces and diacritics to
/// their base letters, then the `simple` configuration. Exactly the
/// expression of schema 1.9's `idx_movies_title_fts` (one macro makes both),
/// so the planner can use that index.
pub const TITLE_TSVECTOR: &str = crate::store::schema::title_tsvector!("m.title");

/// A parameter of [`search_sql`]'s statement.
pub type SearchParam = Box<dyn postgres::types::ToSql + Sync>;

/// The search statement for `words` (from [`super::search_words`]), an
/// optional genre and a cap on the matches, with its parameters in order:
/// the prefix tsquery of every word (`'toy':* & 'story':*`), the genre, one
/// exact tsquery per word, the cap. It returns each match's id and how many
/// words match a whole title word, and reads no rating. Public so the
/// schema tests can EXPLAIN exactly what the store runs.
///
/// Titles use [`TITLE_TSVECTOR`]: punctuation as spaces and the `simple`
/// configuration (lower-casing, no stemming or stop words, so "the" and
/// "stories" mean what they say), which splits titles into the words FTS5
/// sees on SQLite, through `idx_movies_title_fts` (schema 1.4). Genres use the spec's own
/// GIN expression, `to_tsvector('english', genres)`, so the planner can use
/// `idx_movies_genres`; an exact check on the `|`-separated list then keeps
/// exactly the genre asked for. The words are runs of alphanumerics, quoted
/// as tsquery lexemes, so no tsquery operator can come from the input, and
/// every value is a bound parameter.
#[doc(hidden)]
pub fn search_sql(
    words: &[String],
    genre: Option<&str>,
    limit: usize,
) -> (String, Vec<SearchParam>) {
    let mut params: Vec<SearchParam> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    if !words.is_empty() {
        let prefix = words
            .iter()
            .map(|w| format!("'{w}':*"))
            .collect::<Vec<_>>()
            .join(" & ");
        params.push(Box::new(prefix));
        conds.push(format!(
            "{TITLE_TSVECTOR} @@ to_tsquery('simple', ${}::text)",
            params.len()
        ));
    }
    if let Some(g) = genre {
        params.push(Box::new(g.to_string()));
        let n = params.len();
        conds.push(format!(
            "to_tsvector('english', m.genres) @@ plainto_tsquery('english', ${n}::text)
               AND position(lower('|' || ${n}::text || '|') IN lower('|' || COALESCE(m.genres, '') || '|')) > 0"
        ));
    }
    let mut rank: Vec<String> = Vec::new();
    for w in words {
        params.push(Box::new(format!("'{w}'")));
        rank.push(format!(
            "({TITLE_TSVECTOR} @@ to_tsquery('simple', ${}::text))::int",
            params.len()
        ));
    }
    let whole_words = if rank.is_empty() {
        "0".to_string()
    } else {
        rank.join(" + ")
    };
    params.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT m.movieid, ({whole_words})::int4 FROM movies m
          WHERE {}
          LIMIT ${}::int8",
        if conds.is_empty() {
            "TRUE".to_string()
        } else {
            conds.join(" AND ")
        },
        params.len()
    );
    (sql, params)
}
