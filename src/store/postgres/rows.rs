//! Conversions from PostgreSQL rows to the store's records.

use postgres::types::Json;

use crate::types::{Movie, Rating};

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
