//! Batch ingestion: the audit trail in `ingestion_metadata` and
//! `ratings_buffer`; the ingestion leases that tell orphaned batches from
//! running ones are the store's (`crate::store::claim_ingestion`).

use rusqlite::{params, Transaction};

use super::changes::{claim_key, record_change, stamp, stamp_text};
use super::rows::parse_ts;
use super::SqliteStore;
use super::NOW;
use crate::store::{BufferBound, BufferSnapshot, ChangeKind, IdempotentWrite, Ingestion};
use crate::types::{IngestionStatus, Rating};
use crate::{Error, Result};

/// The audit row's status of `batch_id`: `None` without a row, `Some(None)`
/// for a row whose status is NULL.
fn batch_status(
    tx: &rusqlite::Transaction<'_>,
    batch_id: &str,
) -> Result<Option<Option<IngestionStatus>>> {
    use rusqlite::OptionalExtension;
    Ok(tx
        .query_row(
            "SELECT status FROM ingestion_metadata WHERE batch_id = ?1",
            [batch_id],
            |r| r.get(0),
        )
        .optional()?)
}

pub(super) fn begin_ingestion(store: &mut SqliteStore, batch_id: &str) -> Result<()> {
    let holder = store.holder.clone();
    crate::store::begin_leased_ingestion(store, &holder, batch_id, open_batch)
}

/// The audit row of a batch about to be ingested, as 'in_progress'.
fn open_batch(store: &mut SqliteStore, batch_id: &str) -> Result<()> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let status = batch_status(&tx, batch_id)?;
    match status {
        Some(Some(IngestionStatus::Completed)) => {
            return Err(Error::BatchCompleted {
                batch_id: batch_id.to_string(),
            });
        }
        Some(_) => {
            // A failed or interrupted attempt: nothing of it is in the
            // buffer (batches land in one transaction), so retry afresh.
            tx.execute(
                &format!(
                    "UPDATE ingestion_metadata SET status = 'in_progress', record_count = NULL,
                        ingestion_date = {NOW}, notes = 'retry after: ' || COALESCE(notes, status)
                      WHERE batch_id = ?1"
                ),
                [batch_id],
            )?;
        }
        None => {
            tx.execute(
                &format!(
                    "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
                     VALUES (?1, {NOW}, 'in_progress', 'ingestion started')"
                ),
                [batch_id],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn complete_ingestion(
    store: &mut SqliteStore,
    batch_id: &str,
    ratings: &[Rating],
    notes: &str,
) -> Result<u64> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let status: Option<IngestionStatus> = tx
        .query_row(
            "SELECT status FROM ingestion_metadata WHERE batch_id = ?1",
            [batch_id],
            |r| r.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    if status != Some(IngestionStatus::InProgress) {
        return Err(crate::store::batch_not_open(batch_id, status));
    }
    let stamp = stamp();
    insert_into_buffer(&tx, batch_id, ratings, &stamp)?;
    tx.execute(
        &format!(
            "UPDATE ingestion_metadata SET status = 'completed', record_count = ?2,
                ingestion_date = {NOW}, notes = ?3 WHERE batch_id = ?1"
        ),
        params![batch_id, ratings.len() as i64, notes],
    )?;
    record_change(
        &tx,
        ChangeKind::Append,
        Some(batch_id),
        Some(&stamp),
        ratings.len() as u64,
    )?;
    crate::failpoint::hit("ingest:after_rows_before_commit");
    tx.commit()?;
    let holder = store.holder.clone();
    crate::store::release_ingestion(store, &holder, batch_id);
    Ok(ratings.len() as u64)
}

/// Appends in one transaction; with `write`, at most once per its key
/// (returns the earlier record, having written nothing, when the key is
/// known).
pub(super) fn append_to_batch(
    store: &mut SqliteStore,
    batch_id: &str,
    ratings: &[Rating],
    write: Option<&IdempotentWrite>,
) -> Result<(u64, Option<IdempotentWrite>)> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if let Some(w) = write {
        if let Some(earlier) = claim_key(&tx, w)? {
            return Ok((0, Some(earlier)));
        }
    }
    tx.execute(
        &format!(
            "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
             VALUES (?1, {NOW}, 0, 'completed', 'ratings received through the API')
             ON CONFLICT (batch_id) DO NOTHING"
        ),
        [batch_id],
    )?;
    let stamp = stamp();
    insert_into_buffer(&tx, batch_id, ratings, &stamp)?;
    // A batch cleared earlier (`buffer clear`) is open again, counting
    // from zero; SET expressions all see the old row.
    tx.execute(
        &format!(
            "UPDATE ingestion_metadata SET
                record_count = CASE WHEN status = 'cleared' THEN 0 ELSE COALESCE(record_count, 0) END + ?2,
                notes = CASE WHEN status = 'cleared' THEN 'ratings received through the API (after a clear)' ELSE notes END,
                status = CASE WHEN status = 'cleared' THEN 'completed' ELSE status END,
                ingestion_date = {NOW}
              WHERE batch_id = ?1"
        ),
        params![batch_id, ratings.len() as i64],
    )?;
    record_change(
        &tx,
        ChangeKind::Append,
        Some(batch_id),
        Some(&stamp),
        ratings.len() as u64,
    )?;
    crate::failpoint::hit("append:before_commit");
    tx.commit()?;
    Ok((ratings.len() as u64, None))
}

/// Inserts ratings into `ratings_buffer` inside `tx`, each with
/// `ingested_at` = `stamp`.
fn insert_into_buffer(
    tx: &Transaction<'_>,
    batch_id: &str,
    ratings: &[Rating],
    stamp: &str,
) -> Result<()> {
    let mut stmt = tx.prepare(
        "INSERT INTO ratings_buffer (userId, movieId, rating, timestamp, batch_id, ingested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for r in ratings {
        stmt.execute(params![
            r.user_id,
            r.movie_id,
            r.rating as f64,
            r.timestamp,
            batch_id,
            stamp
        ])?;
    }
    Ok(())
}

pub(super) fn fail_ingestion(store: &mut SqliteStore, batch_id: &str, reason: &str) -> Result<()> {
    let failed = store.conn.execute(
        &format!(
            "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
             VALUES (?1, {NOW}, 'failed', ?2)
             ON CONFLICT (batch_id) DO UPDATE SET status = 'failed', notes = excluded.notes,
                ingestion_date = excluded.ingestion_date, record_count = NULL
             WHERE ingestion_metadata.status <> 'completed'"
        ),
        [batch_id, reason],
    );
    let holder = store.holder.clone();
    crate::store::release_ingestion(store, &holder, batch_id);
    failed?;
    Ok(())
}

pub(super) fn ingestions(store: &mut SqliteStore) -> Result<Vec<Ingestion>> {
    let mut stmt = store.conn.prepare(
        "SELECT id, batch_id, ingestion_date, record_count, status, notes
           FROM ingestion_metadata ORDER BY ingestion_date DESC, id DESC",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Ingestion {
                id: r.get(0)?,
                batch_id: r.get(1)?,
                ingestion_date: r.get::<_, Option<String>>(2)?.map(|s| parse_ts(&s)),
                record_count: r.get(3)?,
                status: r.get(4)?,
                notes: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn buffer_counts(store: &mut SqliteStore) -> Result<Vec<(Option<String>, i64)>> {
    let mut stmt = store.conn.prepare(
        "SELECT batch_id, COUNT(*) FROM ratings_buffer GROUP BY batch_id ORDER BY batch_id",
    )?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The bound is taken under the write lock (BEGIN IMMEDIATE waits for the
/// writer in flight to commit), and writers stamp their rows under it too,
/// so rows stamped up to the bound are exactly those committed before it.
pub(super) fn buffer_snapshot(store: &mut SqliteStore) -> Result<BufferSnapshot> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let through = chrono::Utc::now().naive_utc();
    tx.commit()?;
    let mut stmt = store.conn.prepare(
        "SELECT userId, movieId, rating, timestamp, batch_id FROM ratings_buffer
          WHERE ingested_at <= ?1 OR ingested_at IS NULL ORDER BY timestamp",
    )?;
    let read = stmt
        .query_map([stamp_text(through)], |r| {
            Ok((super::rows::rating_row(r)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(BufferSnapshot::new(read, through))
}

pub(super) fn merge_buffer(store: &mut SqliteStore) -> Result<u64> {
    // One writer at a time in SQLite: between BEGIN IMMEDIATE and COMMIT
    // nobody can add to the buffer, so copy-then-delete moves exactly once.
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let moved = merge_buffer_in(&tx, None)?;
    crate::failpoint::hit("merge:before_commit");
    tx.commit()?;
    Ok(moved)
}

pub(super) fn clear_batch(store: &mut SqliteStore, batch_id: &str) -> Result<u64> {
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let status = batch_status(&tx, batch_id)?;
    if status.flatten() == Some(IngestionStatus::InProgress) {
        return Err(crate::store::clear_while_ingesting(batch_id));
    }
    let n = tx.execute("DELETE FROM ratings_buffer WHERE batch_id = ?1", [batch_id])? as u64;
    if n == 0 {
        return Err(crate::store::nothing_to_clear(batch_id, status.flatten()));
    }
    tx.execute(
        &format!(
            "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
             VALUES (?1, {NOW}, ?2, 'cleared', ?3)
             ON CONFLICT (batch_id) DO UPDATE SET status = 'cleared',
                record_count = excluded.record_count, notes = excluded.notes,
                ingestion_date = excluded.ingestion_date"
        ),
        params![batch_id, n as i64, crate::store::cleared_note(n)],
    )?;
    record_change(&tx, ChangeKind::Clear, Some(batch_id), None, n)?;
    tx.commit()?;
    Ok(n)
}

/// The spec's "option 2" merge inside an IMMEDIATE transaction: SQLite has
/// one writer at a time, so nothing can enter the buffer between the copy and
/// the delete and each rating moves exactly once. With a bound, only the
/// rows it names (a retrain's read of the buffer), and only if they are all
/// still there and nothing else is.
pub(super) fn merge_buffer_in(tx: &Transaction<'_>, bound: Option<&BufferBound>) -> Result<u64> {
    let through = bound.map(|b| stamp_text(b.through));
    let which = "?1 IS NULL OR ingested_at <= ?1 OR ingested_at IS NULL";
    let moved = tx.execute(
        &format!(
            "INSERT INTO ratings (userId, movieId, rating, timestamp, data_split, loaded_at)
             SELECT userId, movieId, rating, timestamp, 'train', {NOW} FROM ratings_buffer
              WHERE {which}"
        ),
        [&through],
    )?;
    crate::failpoint::hit("merge:after_insert_before_delete");
    let deleted = tx.execute(
        &format!("DELETE FROM ratings_buffer WHERE {which}"),
        [&through],
    )?;
    if moved != deleted {
        return Err(Error::Conflict(format!(
            "buffer changed during the merge ({moved} copied, {deleted} deleted); nothing was merged"
        )));
    }
    if let Some(b) = bound.filter(|b| b.rows != moved as u64) {
        return Err(crate::store::buffer_changed(b, moved as u64));
    }
    if moved > 0 {
        record_change(tx, ChangeKind::Merge, None, None, moved as u64)?;
    }
    Ok(moved as u64)
}
