//! The numbers that shape a synthetic release like ml-latest-small, which
//! both the world (`world`) and its samplers (`random`) read: one home
//! below both.

/// Spread of user activity (lognormal sigma); ml-latest-small's mean/median
/// ratings per user (165/70) implies about 1.3.
pub(super) const ACTIVITY_SIGMA: f64 = 1.3;
/// MovieLens only publishes users with at least 20 ratings.
pub(super) const MIN_RATINGS_PER_USER: u64 = 20;
/// ml-latest-small's genre counts, in [`MOVIELENS_GENRES`](crate::types::MOVIELENS_GENRES) order: Drama and
/// Comedy dominate, Film-Noir and IMAX are rare.
pub(super) const GENRE_WEIGHTS: [f64; 19] = [
    1828.0, 1263.0, 611.0, 664.0, 3756.0, 1199.0, 440.0, 4361.0, 779.0, 87.0, 978.0, 158.0, 334.0,
    573.0, 1596.0, 980.0, 1894.0, 382.0, 167.0,
];
/// Probability of a movie having 1, 2 or 3 genres.
pub(super) const GENRE_COUNT_WEIGHTS: [f64; 3] = [0.35, 0.38, 0.27];
