//! Weekly batches into `ratings_buffer`, with the spec's audit trail in
//! `ingestion_metadata`: 'in_progress' when a batch starts (committed at
//! once, so an interrupted batch is visible), then 'completed' with its count
//! or 'failed' with the reason. The rows and the 'completed' mark are one
//! transaction, so a batch lands whole or not at all. A batch whose process
//! died stays 'in_progress' until the next ingestion sees that no process is
//! ingesting and marks it 'failed' as interrupted (`tests/faults.rs`).

use std::collections::HashSet;
use std::path::Path;

use crate::data::{formats, ReadOptions, SkipReport};
use crate::store::{IdempotentWrite, Store};
use crate::types::Rating;
use crate::{Error, Result};

/// What an ingestion did.
#[derive(Debug, Clone)]
pub struct IngestReport {
    pub batch_id: String,
    pub records: u64,
    pub skipped: SkipReport,
}

/// Checks a batch id against the schema (`VARCHAR(50)`, non-empty).
pub fn validate_batch_id(batch_id: &str) -> Result<()> {
    if batch_id.trim().is_empty() {
        return Err(Error::InvalidArgument("batch id must not be empty".into()));
    }
    if batch_id.chars().count() > 50 {
        return Err(Error::InvalidArgument(format!(
            "batch id {batch_id:?} is longer than 50 characters (ingestion_metadata.batch_id is VARCHAR(50))"
        )));
    }
    if batch_id.chars().any(|c| c.is_control()) {
        return Err(Error::InvalidArgument(format!(
            "batch id {batch_id:?} contains control characters"
        )));
    }
    Ok(())
}

/// What [`append_api_ratings`] stored, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appended {
    pub accepted: u64,
    /// The day's batch (`api_YYYY-MM-DD`, UTC) in `ingestion_metadata`.
    pub batch_id: String,
}

/// A client's name for one write (`Idempotency-Key`) and a digest of the
/// request it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    pub key: String,
    /// Hex SHA-256 of the request as sent (see [`request_hash`]).
    pub request_hash: String,
}

/// Hex SHA-256 of `bytes`: what tells a retry (same request) from a
/// reused key (another request).
pub fn request_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How an API append ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored now.
    Stored(Appended),
    /// The key was seen before (by any process sharing the database):
    /// nothing was stored, and this is what the first attempt answered,
    /// status and body.
    Replayed { status: u16, body: String },
}

/// Appends ratings received through the HTTP API to the batch of the UTC
/// day of `now`, in one transaction with that batch's audit row.
///
/// The caller has validated each rating (ids, the 0.5 grid, no repeated
/// pair); this checks what only the database knows, that every movie is in
/// the catalogue, so the buffer never holds a rating training would have
/// to drop. All or nothing: [`Error::UnknownMovie`] names the first
/// unknown movie and nothing is stored.
///
/// With a `key`, the write happens at most once: the key and the answer
/// commit with the ratings, and a later call with the same key (a client's
/// retry after a timeout or a lost connection, to this server or another)
/// stores nothing and gets [`AppendOutcome::Replayed`];
/// [`Error::IdempotencyKeyReused`] when the same key comes with another
/// request.
pub fn append_api_ratings(
    store: &mut dyn Store,
    ratings: &[Rating],
    now: chrono::DateTime<chrono::Utc>,
    key: Option<&RequestKey>,
) -> Result<AppendOutcome> {
    let batch_id = crate::store::api_batch_id(now.date_naive());
    let mut ids: Vec<i32> = ratings.iter().map(|r| r.movie_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let known: HashSet<i32> = store
        .movies_by_id(&ids)?
        .into_iter()
        .map(|m| m.movie_id)
        .collect();
    if let Some(r) = ratings.iter().find(|r| !known.contains(&r.movie_id)) {
        return Err(Error::UnknownMovie {
            movie_id: r.movie_id,
        });
    }
    let appended = Appended {
        accepted: ratings.len() as u64,
        batch_id,
    };
    let Some(key) = key else {
        let accepted = store.append_to_batch(&appended.batch_id, ratings)?;
        return Ok(AppendOutcome::Stored(Appended {
            accepted,
            ..appended
        }));
    };
    let write = IdempotentWrite {
        key: key.key.clone(),
        request_hash: key.request_hash.clone(),
        status: 201,
        response: serde_json::to_string(&appended)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode the answer: {e}")))?,
    };
    match store.append_to_batch_once(&appended.batch_id, ratings, &write)? {
        None => Ok(AppendOutcome::Stored(appended)),
        Some(earlier) if earlier.request_hash == key.request_hash => Ok(AppendOutcome::Replayed {
            status: earlier.status,
            body: earlier.response,
        }),
        Some(_) => Err(Error::IdempotencyKeyReused {
            key: key.key.clone(),
        }),
    }
}

/// Ingests a ratings file (any format `load` reads) as batch `batch_id`.
///
/// Every validation of `load` applies, and ratings for movies not in
/// `movies` are rejected (the spec's "application enforces referential
/// integrity"). A batch id that completed before is refused; a failed or
/// interrupted one is retried from scratch.
pub fn ingest_file(
    store: &mut dyn Store,
    path: &Path,
    batch_id: &str,
    read: ReadOptions,
) -> Result<IngestReport> {
    validate_batch_id(batch_id)?;
    store.begin_ingestion(batch_id)?;
    crate::failpoint::hit("ingest:after_metadata_in_progress");
    let result = read_and_write(store, path, batch_id, read);
    if let Err(e) = &result {
        // Best effort: the batch's rows are not in the buffer either way; the
        // audit row should say why. A lost connection may make this fail too,
        // and the row then stays 'in_progress' until the next ingestion marks
        // it interrupted.
        if !matches!(e, Error::Conflict(_)) {
            let _ = store.fail_ingestion(batch_id, &e.to_string());
        }
    }
    result
}

fn read_and_write(
    store: &mut dyn Store,
    path: &Path,
    batch_id: &str,
    read: ReadOptions,
) -> Result<IngestReport> {
    let movies = store.movie_ids()?;
    if movies.is_empty() {
        return Err(Error::NotFound(
            "the movies table is empty: load a dataset before ingesting batches".into(),
        ));
    }
    let mut skipped = SkipReport::default();
    let ratings = formats::read_ratings(path, read, Some(&movies), &mut skipped)?;
    let notes = if skipped.is_empty() {
        format!("{} ratings from {}", ratings.len(), path.display())
    } else {
        format!(
            "{} ratings from {}; {} invalid rows skipped",
            ratings.len(),
            path.display(),
            skipped.total()
        )
    };
    let records = store.complete_ingestion(batch_id, &ratings, &notes)?;
    Ok(IngestReport {
        batch_id: batch_id.to_string(),
        records,
        skipped,
    })
}
