//! Conversions from PostgreSQL rows to the store's records.

use postgres::types::{FromSql, Json, Type};

use crate::types::{IngestionStatus, Movie, PipelineStatus, Rating};

pub(super) fn rating_row(r: &postgres::Row) -> Rating {
    Rating {
        user_id: r.get(0),
        movie_id: r.get(1),
        rating: r.get::<_, f64>(2) as f32,
        timestamp: r.get(3),
    }
}

pub(super) fn movie_row(r: &postgres::Row) -> Movie {
    let pca: Option<Json<Vec<f64>>> = r.get(3);
    Movie {
        movie_id: r.get(0),
        title: r.get(1),
        genres: r.get::<_, Option<String>>(2).unwrap_or_default(),
        pca_features: pca.map(|j| j.0),
    }
}

/// Status columns as their enums; a value no CineMatch writes is a
/// conversion error naming it (read them with `try_get`, never a panic).
macro_rules! status_column {
    ($ty:ty, $what:literal) => {
        impl<'a> FromSql<'a> for $ty {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
                let s = <&str as FromSql>::from_sql(ty, raw)?;
                s.parse()
                    .map_err(|_| format!("unknown {} {s:?}", $what).into())
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

status_column!(IngestionStatus, "ingestion status");
status_column!(PipelineStatus, "pipeline run status");
