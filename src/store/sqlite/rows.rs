//! Conversions from SQLite rows to the store's records.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};

use crate::types::{IngestionStatus, Movie, PipelineStatus, Rating};

pub(super) fn movie_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Movie> {
    let pca: Option<String> = r.get(3)?;
    Ok(Movie {
        movie_id: r.get(0)?,
        title: r.get(1)?,
        genres: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        pca_features: pca.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

pub(super) fn rating_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Rating> {
    Ok(Rating {
        user_id: r.get(0)?,
        movie_id: r.get(1)?,
        rating: r.get::<_, f64>(2)? as f32,
        timestamp: r.get(3)?,
    })
}

pub(super) fn parse_ts(s: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap_or_default()
}

/// Status columns as their enums; a value no CineMatch writes is a
/// conversion error naming it, never a panic.
macro_rules! status_column {
    ($ty:ty, $what:literal) => {
        impl FromSql for $ty {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let s = value.as_str()?;
                s.parse()
                    .map_err(|_| FromSqlError::Other(format!("unknown {} {s:?}", $what).into()))
            }
        }
    };
}

status_column!(IngestionStatus, "ingestion status");
status_column!(PipelineStatus, "pipeline run status");
