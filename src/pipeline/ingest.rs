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
use crate::types::{IngestionStatus, Rating};
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

/// Checks the batch id of a file: a valid id ([`validate_batch_id`]) outside
/// the API's prefix (`api_`): those batches are the API's, one per day, and
/// a file under such an id would mix with the ratings users posted.
pub fn validate_file_batch_id(batch_id: &str) -> Result<()> {
    validate_batch_id(batch_id)?;
    if crate::store::is_api_batch(batch_id) {
        return Err(Error::InvalidArgument(format!(
            "batch id {batch_id:?} starts with {:?}, which is reserved for the ratings posted \
             through the API (one batch per day); give the file another batch id (rename it, \
             for the scheduler)",
            crate::store::API_BATCH_PREFIX
        )));
    }
    Ok(())
}

/// What identifies a batch file: its name (never the directory it was
/// found in), size and SHA-256, recorded in the batch's audit row so that
/// the same batch id arriving again with other content is told apart from a
/// repeated delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub name: String,
    pub size: u64,
    /// Hex.
    pub sha256: String,
}

impl FileDigest {
    /// Reads `path` once to hash it.
    pub fn of(path: &Path) -> Result<FileDigest> {
        use sha2::Digest;
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok(FileDigest {
            name: file_name(path),
            size,
            sha256: hex(&hasher.finalize()),
        })
    }

    /// The SHA-256 a batch's audit notes recorded (see the `Display` form),
    /// if they recorded one.
    pub fn recorded_sha256(notes: &str) -> Option<&str> {
        let at = notes.find(SHA256_TAG)? + SHA256_TAG.len();
        let hex = notes.get(at..at + 64)?;
        hex.bytes().all(|b| b.is_ascii_hexdigit()).then_some(hex)
    }
}

const SHA256_TAG: &str = "sha256 ";

impl std::fmt::Display for FileDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} bytes, {SHA256_TAG}{})",
            self.name, self.size, self.sha256
        )
    }
}

/// A path's last component, for messages others may read (the directory a
/// file was found in is nobody else's business).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A failed ingestion as its audit row records it: the problem and where
/// (file name and line), never the offending line's content, which may be
/// anything the file held, nor the directory it was read from.
pub fn audit_message(e: &Error, path: &Path) -> String {
    match e {
        Error::Input(ie) if ie.line > 0 => {
            format!("{}:{}: {}", file_name(&ie.file), ie.line, ie.kind)
        }
        Error::Input(ie) => format!("{}: {}", file_name(&ie.file), ie.kind),
        Error::Io { path: p, reason } => {
            format!("cannot read {}: {}", file_name(p), reason.kind())
        }
        other => other
            .to_string()
            .replace(&path.display().to_string(), &file_name(path)),
    }
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
    /// Hex SHA-256 of the request as parsed, in one canonical form (see
    /// [`request_hash`]): the same ratings however the JSON spells them.
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
/// integrity"). The audit row records the file's name, size and SHA-256
/// ([`FileDigest`]). A batch id that completed before is refused: with
/// [`Error::BatchCompleted`] when this is the same file again (nothing to
/// do), with [`Error::Conflict`] when its content differs from what was
/// ingested under that id (a corrected file must not be silently
/// skipped). A failed or interrupted one is retried from scratch.
pub fn ingest_file(
    store: &mut dyn Store,
    path: &Path,
    batch_id: &str,
    read: ReadOptions,
) -> Result<IngestReport> {
    validate_file_batch_id(batch_id)?;
    if let Err(e) = store.begin_ingestion(batch_id) {
        return Err(match e {
            Error::BatchCompleted { batch_id } => completed_again(store, path, &batch_id),
            e => e,
        });
    }
    crate::failpoint::hit("ingest:after_metadata_in_progress");
    let (digest, result) = match FileDigest::of(path) {
        Ok(d) => {
            let r = read_and_write(store, path, batch_id, read, &d);
            (Some(d), r)
        }
        Err(e) => (None, Err(e)),
    };
    if let Err(e) = &result {
        // Best effort: the batch's rows are not in the buffer either way; the
        // audit row should say why. A lost connection may make this fail too,
        // and the row then stays 'in_progress' until the next ingestion marks
        // it interrupted.
        if !matches!(e, Error::Conflict(_)) {
            let why = match &digest {
                Some(d) => format!("{d}: {}", audit_message(e, path)),
                None => audit_message(e, path),
            };
            let _ = store.fail_ingestion(batch_id, &why);
        }
    }
    result
}

/// A completed batch id delivered again: [`Error::BatchCompleted`] for the
/// same content (or when the audit row predates recorded digests),
/// [`Error::Conflict`] naming both files when it differs.
fn completed_again(store: &mut dyn Store, path: &Path, batch_id: &str) -> Error {
    let digest = match FileDigest::of(path) {
        Ok(d) => d,
        Err(e) => return e,
    };
    let notes = match store.ingestions() {
        Ok(rows) => rows
            .into_iter()
            .find(|i| i.batch_id == batch_id && i.status == Some(IngestionStatus::Completed))
            .and_then(|r| r.notes)
            .unwrap_or_default(),
        Err(e) => return e,
    };
    match FileDigest::recorded_sha256(&notes) {
        Some(sha) if sha != digest.sha256 => Error::Conflict(format!(
            "batch {batch_id:?} was ingested before from another file ({notes}); {digest} \
             differs, so it was not ingested: give a corrected file a new batch id, or \
             `cinematch buffer clear --batch {batch_id}` first while its ratings are still \
             buffered"
        )),
        _ => Error::BatchCompleted {
            batch_id: batch_id.to_string(),
        },
    }
}

fn read_and_write(
    store: &mut dyn Store,
    path: &Path,
    batch_id: &str,
    read: ReadOptions,
    digest: &FileDigest,
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
        format!("{} ratings from {digest}", ratings.len())
    } else {
        format!(
            "{} ratings from {digest}; {} invalid rows skipped",
            ratings.len(),
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
