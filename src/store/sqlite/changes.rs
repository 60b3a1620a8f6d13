//! The change log servers follow (`data_versions`, `data_changes`), the
//! idempotency records of API writes, and the busy timeout.

use rusqlite::{params, OptionalExtension, Transaction};

use super::rows::rating_row;
use super::{SqliteStore, NOW};
use crate::store::{
    ChangeKind, DataChange, IdempotentWrite, CHANGES_KEPT, IDEMPOTENCY_RETENTION_SECS,
};
use crate::types::Rating;
use crate::{Error, Result};

/// The busy timeout of a store nobody has set one for.
pub(super) const DEFAULT_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `ingested_at` for the rows of one write, so the change log can name
/// them: [`NOW`]'s format with microseconds, which sorts and compares with
/// it as text. Two writes in the same microsecond would share it, and a
/// reader would read both of them for either: more than asked, never less.
pub(super) fn stamp() -> String {
    stamp_text(chrono::Utc::now().naive_utc())
}

/// A time as `ingested_at` holds it (see [`stamp`]).
pub(super) fn stamp_text(t: chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// Records a change in `tx` (SQLite has one writer at a time, so versions
/// follow commit order).
pub(super) fn record_change(
    tx: &Transaction<'_>,
    kind: ChangeKind,
    batch_id: Option<&str>,
    ingested_at: Option<&str>,
    rows: u64,
) -> Result<i64> {
    let version: i64 = tx.query_row(
        "INSERT INTO data_versions (name, version) VALUES ('changes', 1)
         ON CONFLICT (name) DO UPDATE SET version = data_versions.version + 1
         RETURNING version",
        [],
        |r| r.get(0),
    )?;
    let kind_name: &str = kind.into();
    tx.execute(
        &format!(
            "INSERT INTO data_changes (version, kind, batch_id, ingested_at, row_count, changed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
        ),
        params![version, kind_name, batch_id, ingested_at, rows as i64],
    )?;
    let keep_from = match kind {
        ChangeKind::Append => version - CHANGES_KEPT,
        _ => version,
    };
    tx.execute("DELETE FROM data_changes WHERE version < ?1", [keep_from])?;
    Ok(version)
}

/// Records `write` in `tx` unless its key is known; then returns the
/// earlier record and the caller writes nothing.
pub(super) fn claim_key(
    tx: &Transaction<'_>,
    write: &IdempotentWrite,
) -> Result<Option<IdempotentWrite>> {
    tx.execute(
        "DELETE FROM api_idempotency
          WHERE created_at < strftime('%Y-%m-%d %H:%M:%f', 'now', ?1)",
        [format!("-{IDEMPOTENCY_RETENTION_SECS} seconds")],
    )?;
    let fresh = tx.execute(
        &format!(
            "INSERT INTO api_idempotency (idempotency_key, request_hash, status_code, response, created_at)
             VALUES (?1, ?2, ?3, ?4, {NOW})
             ON CONFLICT (idempotency_key) DO NOTHING"
        ),
        params![write.key, write.request_hash, write.status, write.response],
    )?;
    if fresh == 1 {
        return Ok(None);
    }
    let earlier = tx
        .query_row(
            "SELECT request_hash, status_code, response FROM api_idempotency
              WHERE idempotency_key = ?1",
            [&write.key],
            |r| {
                Ok(IdempotentWrite {
                    key: write.key.clone(),
                    request_hash: r.get(0)?,
                    status: r.get(1)?,
                    response: r.get(2)?,
                })
            },
        )
        .optional()?;
    earlier
        .map(Some)
        .ok_or_else(|| Error::Conflict(format!("idempotency key {:?} vanished", write.key)))
}

pub(super) fn data_version(store: &mut SqliteStore) -> Result<i64> {
    Ok(store.conn.query_row(
        "SELECT COALESCE((SELECT version FROM data_versions WHERE name = 'changes'), 0)",
        [],
        |r| r.get(0),
    )?)
}

pub(super) fn dataset_version(store: &mut SqliteStore) -> Result<i64> {
    Ok(store.conn.query_row(
        "SELECT COALESCE((SELECT version FROM data_versions WHERE name = 'dataset'), 0)",
        [],
        |r| r.get(0),
    )?)
}

pub(super) fn data_changes(store: &mut SqliteStore, after: i64) -> Result<Vec<DataChange>> {
    let mut stmt = store.conn.prepare(
        "SELECT version, kind, batch_id, row_count FROM data_changes
          WHERE version > ?1 ORDER BY version",
    )?;
    let rows = stmt
        .query_map([after], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(version, kind, batch_id, rows)| {
            Ok(DataChange {
                version,
                kind: kind.parse().map_err(|_| {
                    Error::Conflict(format!("data_changes: unknown change kind {kind:?}"))
                })?,
                batch_id,
                rows,
            })
        })
        .collect()
}

pub(super) fn appended_ratings(
    store: &mut SqliteStore,
    after: i64,
    upto: i64,
) -> Result<Vec<Rating>> {
    let mut stmt = store.conn.prepare(
        "SELECT b.userId, b.movieId, b.rating, b.timestamp
           FROM data_changes c
           JOIN ratings_buffer b ON b.batch_id = c.batch_id AND b.ingested_at = c.ingested_at
          WHERE c.kind = 'append' AND c.version > ?1 AND c.version <= ?2
          ORDER BY c.version",
    )?;
    let rows = stmt
        .query_map([after, upto], rating_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn set_statement_timeout(
    store: &mut SqliteStore,
    limit: Option<std::time::Duration>,
) -> Result<()> {
    store
        .conn
        .busy_timeout(limit.unwrap_or(DEFAULT_BUSY_TIMEOUT))?;
    Ok(())
}
