//! The library's typed errors. The CLI adds context with `anyhow` at the edge;
//! every message here should tell a user what went wrong and what to do.

use std::path::PathBuf;

use crate::data::InputError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad user data: names the file, the line and the problem.
    #[error(transparent)]
    Input(#[from] InputError),

    /// A file that cannot be read. The I/O error is part of the message, not
    /// a `source`: printing the chain would say it twice.
    #[error("cannot read {}: {reason}", path.display())]
    Io {
        path: PathBuf,
        reason: std::io::Error,
    },

    /// The database URL or TLS settings are unusable. Never contains a password.
    #[error("database configuration: {0}")]
    Config(String),

    #[error("PostgreSQL: {0}")]
    Postgres(String),

    #[error("SQLite: {0}")]
    Sqlite(rusqlite::Error),

    /// A statement ran out of its time (a statement timeout, a lock or a
    /// busy database waited on too long): its transaction was rolled back,
    /// so nothing of it was written.
    #[error("{0}")]
    TimedOut(String),

    /// A request that conflicts with what the database holds (for example
    /// clearing a batch while it is being ingested).
    #[error("{0}")]
    Conflict(String),

    /// A dataset is loaded already: loading another on top would double it.
    /// The caller may ask for it to be replaced; how is the caller's to say.
    #[error(
        "the database already holds a dataset ({ratings} ratings, {movies} movies); \
         loading again would double it"
    )]
    DatasetLoaded { ratings: i64, movies: i64 },

    /// No stored model has this version (a typo, or a version of another
    /// database); the caller knows where the versions can be listed.
    #[error("no stored model {version:?}")]
    UnknownModel { version: String },

    /// A shortened version (a prefix, `vN`) that names several stored
    /// models; the candidates let the caller pick one.
    #[error("{given:?} names several models: {}", candidates.join(", "))]
    AmbiguousModel {
        given: String,
        candidates: Vec<String>,
    },

    /// The batch completed before: ingesting it again would double it.
    /// The pipeline treats it as done; the CLI exits with its own code.
    #[error("batch {batch_id:?} was already ingested (status completed)")]
    BatchCompleted { batch_id: String },

    /// A compare-and-set promotion found another champion than the one it
    /// expected (a rollback or another promotion happened meanwhile);
    /// nothing was written.
    #[error(
        "the champion changed from {} to {} meanwhile",
        expected.as_deref().unwrap_or("none"),
        actual.as_deref().unwrap_or("none")
    )]
    ChampionChanged {
        expected: Option<String>,
        actual: Option<String>,
    },

    /// Another process holds what this one needs (the pipeline lease); trying
    /// again later is the remedy.
    #[error("{0}")]
    Busy(String),

    /// A rating names a movie the catalogue does not have (the spec's
    /// "application enforces referential integrity"); nothing was stored.
    #[error("movieId {movie_id} is not in the catalogue; nothing was stored")]
    UnknownMovie { movie_id: i32 },

    /// A genre no movie of the catalogue has; names the ones there are.
    #[error("no movie has genre {genre:?}; the catalogue's genres are {}", genres.join(", "))]
    UnknownGenre { genre: String, genres: Vec<String> },

    /// A title that fits several movies; the candidates (id and title) let
    /// the caller pick one by id.
    #[error(
        "{title:?} matches {} movies: {}; give the movie id or a longer title",
        candidates.len(),
        candidates.iter().map(|(id, t)| format!("{id} {t}")).collect::<Vec<_>>().join("; ")
    )]
    AmbiguousMovie {
        title: String,
        candidates: Vec<(i32, String)>,
    },

    /// An idempotency key sent again with another request: a client bug
    /// (a key must name one request), never a retry; nothing was stored.
    #[error(
        "Idempotency-Key {key:?} was used for a different request; \
         a key names one request (send a new key for a new request)"
    )]
    IdempotencyKeyReused { key: String },

    /// Something asked for does not exist (unknown user, model version, ...).
    #[error("{0}")]
    NotFound(String),

    /// An argument outside its valid range.
    #[error("{0}")]
    InvalidArgument(String),

    /// A stored model that cannot be decoded (truncated, corrupted, or
    /// written by a newer release): a problem of the data, not of the
    /// request that needed it.
    #[error("model artifact: {0}")]
    Artifact(String),

    /// The HTTP server could not start or stopped (the address is taken,
    /// its settings are unusable, the runtime failed): the operator's to
    /// fix, never a client's mistake, so never [`Error::InvalidArgument`].
    #[error("HTTP server: {0}")]
    Server(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::TimedOut(format!(
                    "SQLite: {e} (another process held the write lock longer than the busy timeout)"
                ))
            }
            _ => Error::Sqlite(e),
        }
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Self {
        use postgres::error::SqlState;
        if let Some(db) = e.as_db_error() {
            if *db.code() == SqlState::QUERY_CANCELED || *db.code() == SqlState::LOCK_NOT_AVAILABLE
            {
                return Error::TimedOut(format!("PostgreSQL: {}", db.message()));
            }
        }
        // `postgres::Error`'s Display is terse ("db error"); the source chain
        // carries the server's message, which is what a user can act on.
        let mut msg = e.to_string();
        if let Some(db) = e.as_db_error() {
            msg = format!("{}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                msg.push_str(&format!(" ({detail})"));
            }
        } else {
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
        }
        Error::Postgres(crate::store::redact(&msg))
    }
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            reason: source,
        }
    }
}
