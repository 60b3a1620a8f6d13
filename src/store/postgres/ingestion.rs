//! Batch ingestion: the audit trail in `ingestion_metadata` and
//! `ratings_buffer`; the ingestion leases that tell orphaned batches from
//! running ones are the store's (`crate::store::claim_ingestion`), rows in
//! `cinematch_leases` rather than session locks, which a transaction-mode
//! pooler would break.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::changes::{claim_key, record_change};
use super::PgStore;
use crate::store::{BufferSnapshot, ChangeKind, IdempotentWrite, Ingestion};
use crate::types::{IngestionStatus, Rating};
use crate::{Error, Result};

/// The spec's "option 2" merge as one statement: the rows deleted are exactly
/// the rows inserted, so a rating that arrives meanwhile is either moved or
/// stays buffered, never lost or doubled. `$1` bounds it to the rows a
/// retrain read ([`BufferBound`]); NULL moves the whole buffer.
pub(super) const MERGE_BUFFER: &str = "WITH moved AS (DELETE FROM ratings_buffer
        WHERE $1::timestamp IS NULL OR ingested_at <= $1 OR ingested_at IS NULL
        RETURNING userid, movieid, rating, timestamp)
     INSERT INTO ratings (userid, movieid, rating, timestamp, data_split, loaded_at)
     SELECT userid, movieid, rating, timestamp, 'train', NOW() FROM moved";

/// "Now" in UTC whatever the session's time zone, for `ingested_at`: the
/// database's clock, so stamps of every process compare.
const UTC_NOW: &str = "SELECT (clock_timestamp() AT TIME ZONE 'UTC')";

/// Counts appended ratings in a batch's audit row; a batch cleared earlier
/// (`buffer clear`) is open again, counting from zero. SET expressions all
/// see the old row, so `status` is tested before it changes.
const APPEND_AUDIT_PG: &str = "UPDATE ingestion_metadata SET
        record_count = CASE WHEN status = 'cleared' THEN 0 ELSE COALESCE(record_count, 0) END + $2,
        notes = CASE WHEN status = 'cleared' THEN 'ratings received through the API (after a clear)' ELSE notes END,
        status = CASE WHEN status = 'cleared' THEN 'completed' ELSE status END,
        ingestion_date = clock_timestamp()
      WHERE batch_id = $1";

pub(super) fn begin_ingestion(store: &mut PgStore, batch_id: &str) -> Result<()> {
    let holder = store.holder.clone();
    crate::store::begin_leased_ingestion(store, &holder, batch_id, open_batch)
}

/// The audit row of a batch about to be ingested, as 'in_progress'.
fn open_batch(store: &mut PgStore, batch_id: &str) -> Result<()> {
    let mut tx = store.client.transaction()?;
    tx.execute(
        "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
         VALUES ($1, clock_timestamp(), 'in_progress', 'ingestion started')
         ON CONFLICT (batch_id) DO NOTHING",
        &[&batch_id],
    )?;
    let status: Option<IngestionStatus> = tx
        .query_one(
            "SELECT status::text FROM ingestion_metadata WHERE batch_id = $1 FOR UPDATE",
            &[&batch_id],
        )?
        .try_get(0)?;
    match status {
        Some(IngestionStatus::Completed) => {
            return Err(Error::BatchCompleted {
                batch_id: batch_id.to_string(),
            })
        }
        Some(IngestionStatus::InProgress) => {}
        _ => {
            tx.execute(
                "UPDATE ingestion_metadata SET status = 'in_progress', record_count = NULL,
                    ingestion_date = clock_timestamp(),
                    notes = 'retry after: ' || COALESCE(notes, status)
                  WHERE batch_id = $1",
                &[&batch_id],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn complete_ingestion(
    store: &mut PgStore,
    batch_id: &str,
    ratings: &[Rating],
    notes: &str,
) -> Result<u64> {
    let mut tx = store.client.transaction()?;
    let status: Option<IngestionStatus> = match tx.query_opt(
        "SELECT status::text FROM ingestion_metadata WHERE batch_id = $1 FOR UPDATE",
        &[&batch_id],
    )? {
        Some(r) => r.try_get(0)?,
        None => None,
    };
    if status != Some(IngestionStatus::InProgress) {
        return Err(crate::store::batch_not_open(batch_id, status));
    }
    let (n, stamp) = copy_into_buffer(&mut tx, batch_id, ratings)?;
    tx.execute(
        "UPDATE ingestion_metadata SET status = 'completed', record_count = $2,
            ingestion_date = clock_timestamp(), notes = $3 WHERE batch_id = $1",
        &[&batch_id, &(n as i32), &notes],
    )?;
    record_change(&mut tx, ChangeKind::Append, Some(batch_id), Some(stamp), n)?;
    crate::failpoint::hit("ingest:after_rows_before_commit");
    tx.commit()?;
    let holder = store.holder.clone();
    crate::store::release_ingestion(store, &holder, batch_id);
    Ok(n)
}

/// Appends in one transaction; with `write`, at most once per its key
/// (returns the earlier record, having written nothing, when the key is
/// known).
pub(super) fn append_to_batch(
    store: &mut PgStore,
    batch_id: &str,
    ratings: &[Rating],
    write: Option<&IdempotentWrite>,
) -> Result<(u64, Option<IdempotentWrite>)> {
    let mut tx = store.client.transaction()?;
    if let Some(w) = write {
        if let Some(earlier) = claim_key(&mut tx, w)? {
            return Ok((0, Some(earlier)));
        }
    }
    tx.execute(
        "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
         VALUES ($1, clock_timestamp(), 0, 'completed', 'ratings received through the API')
         ON CONFLICT (batch_id) DO NOTHING",
        &[&batch_id],
    )?;
    let (n, stamp) = copy_into_buffer(&mut tx, batch_id, ratings)?;
    tx.execute(APPEND_AUDIT_PG, &[&batch_id, &(n as i32)])?;
    record_change(&mut tx, ChangeKind::Append, Some(batch_id), Some(stamp), n)?;
    crate::failpoint::hit("append:before_commit");
    tx.commit()?;
    Ok((n, None))
}

pub(super) fn fail_ingestion(store: &mut PgStore, batch_id: &str, reason: &str) -> Result<()> {
    let failed = store.client.execute(
        "INSERT INTO ingestion_metadata (batch_id, ingestion_date, status, notes)
         VALUES ($1, clock_timestamp(), 'failed', $2)
         ON CONFLICT (batch_id) DO UPDATE SET status = 'failed', notes = EXCLUDED.notes,
            ingestion_date = EXCLUDED.ingestion_date, record_count = NULL
          WHERE ingestion_metadata.status IS DISTINCT FROM 'completed'",
        &[&batch_id, &reason],
    );
    let holder = store.holder.clone();
    crate::store::release_ingestion(store, &holder, batch_id);
    failed?;
    Ok(())
}

pub(super) fn ingestions(store: &mut PgStore) -> Result<Vec<Ingestion>> {
    let rows = store.client.query(
        "SELECT id::int8, batch_id::text, ingestion_date, record_count::int8, status::text, notes
           FROM ingestion_metadata ORDER BY ingestion_date DESC NULLS LAST, id DESC",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(Ingestion {
            id: r.get(0),
            batch_id: r.get(1),
            ingestion_date: r.get(2),
            record_count: r.get(3),
            status: r.try_get(4)?,
            notes: r.get(5),
        });
    }
    Ok(out)
}

pub(super) fn buffer_counts(store: &mut PgStore) -> Result<Vec<(Option<String>, i64)>> {
    Ok(store
        .client
        .query(
            "SELECT batch_id::text, COUNT(*) FROM ratings_buffer GROUP BY batch_id ORDER BY batch_id",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// The bound is taken under a SHARE lock on the buffer, which waits for
/// every writer in flight to commit and lets none start; writers stamp
/// their rows after taking their (ROW EXCLUSIVE) lock, with the database's
/// clock. So rows stamped up to the bound are exactly those committed
/// before it, and the lock is held only for that instant, not for the read.
pub(super) fn buffer_snapshot(store: &mut PgStore) -> Result<BufferSnapshot> {
    let mut tx = store.client.transaction()?;
    tx.batch_execute("LOCK TABLE ratings_buffer IN SHARE MODE")?;
    let through: chrono::NaiveDateTime = tx.query_one(UTC_NOW, &[])?.get(0);
    tx.commit()?;
    let rows = store.client.query(
        "SELECT userid, movieid, rating, timestamp, batch_id::text FROM ratings_buffer
          WHERE ingested_at <= $1 OR ingested_at IS NULL ORDER BY timestamp",
        &[&through],
    )?;
    let read = rows
        .iter()
        .map(|r| (super::rows::rating_row(r), r.get(4)))
        .collect();
    Ok(BufferSnapshot::new(read, through))
}

pub(super) fn merge_buffer(store: &mut PgStore) -> Result<u64> {
    // One statement: the rows deleted are exactly the rows inserted, so a
    // rating that arrives meanwhile is either moved or stays buffered.
    let mut tx = store.client.transaction()?;
    let n = tx.execute(MERGE_BUFFER, &[&None::<chrono::NaiveDateTime>])?;
    if n > 0 {
        record_change(&mut tx, ChangeKind::Merge, None, None, n)?;
    }
    crate::failpoint::hit("merge:before_commit");
    tx.commit()?;
    Ok(n)
}

pub(super) fn clear_batch(store: &mut PgStore, batch_id: &str) -> Result<u64> {
    let mut tx = store.client.transaction()?;
    let status: Option<IngestionStatus> = match tx.query_opt(
        "SELECT status::text FROM ingestion_metadata WHERE batch_id = $1 FOR UPDATE",
        &[&batch_id],
    )? {
        Some(r) => r.try_get(0)?,
        None => None,
    };
    if status == Some(IngestionStatus::InProgress) {
        return Err(crate::store::clear_while_ingesting(batch_id));
    }
    let n = tx.execute(
        "DELETE FROM ratings_buffer WHERE batch_id = $1",
        &[&batch_id],
    )?;
    if n == 0 {
        return Err(crate::store::nothing_to_clear(batch_id, status));
    }
    tx.execute(
        "INSERT INTO ingestion_metadata (batch_id, ingestion_date, record_count, status, notes)
         VALUES ($1, clock_timestamp(), $2, 'cleared', $3)
         ON CONFLICT (batch_id) DO UPDATE SET status = 'cleared',
            record_count = EXCLUDED.record_count, notes = EXCLUDED.notes,
            ingestion_date = EXCLUDED.ingestion_date",
        &[&batch_id, &(n as i32), &crate::store::cleared_note(n)],
    )?;
    record_change(&mut tx, ChangeKind::Clear, Some(batch_id), None, n)?;
    tx.commit()?;
    Ok(n)
}

/// Writes ratings into `ratings_buffer` by binary COPY inside `tx`, all
/// with one `ingested_at` (so the change log can name them; PostgreSQL
/// keeps microseconds), returned with the count.
///
/// The stamp is the database's clock read after the buffer's lock is
/// taken, which is what makes a retrain's [`BufferBound`] exact (see
/// [`buffer_snapshot`]).
fn copy_into_buffer(
    tx: &mut postgres::Transaction<'_>,
    batch_id: &str,
    ratings: &[Rating],
) -> Result<(u64, chrono::NaiveDateTime)> {
    // The lock COPY would take, taken by a plain statement first: a
    // statement timeout while waiting for it (another session holding the
    // table) then leaves the connection usable, where a COPY cancelled
    // before it started closes it.
    tx.batch_execute("LOCK TABLE ratings_buffer IN ROW EXCLUSIVE MODE")?;
    let now: chrono::NaiveDateTime = tx.query_one(UTC_NOW, &[])?.get(0);
    let sink = tx.copy_in(
        "COPY ratings_buffer (userid, movieid, rating, timestamp, batch_id, ingested_at) \
         FROM STDIN (FORMAT binary)",
    )?;
    let mut w = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT4,
            Type::INT4,
            Type::FLOAT8,
            Type::INT8,
            Type::VARCHAR,
            Type::TIMESTAMP,
        ],
    );
    for r in ratings {
        let rating = r.rating as f64;
        w.write(&[
            &r.user_id,
            &r.movie_id,
            &rating,
            &r.timestamp,
            &batch_id,
            &now,
        ])?;
    }
    Ok((w.finish()?, now))
}
