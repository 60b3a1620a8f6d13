//! The change log servers follow (`data_versions`, `data_changes`), the
//! idempotency records of API writes, and the statement timeout.

use super::rows::rating_row;
use super::PgStore;
use crate::store::{
    ChangeKind, DataChange, IdempotentWrite, CHANGES_KEPT, IDEMPOTENCY_RETENTION_SECS,
};
use crate::types::Rating;
use crate::{Error, Result};

/// Records a change as the last statements of `tx`. The counter row is
/// locked from here to the commit, so versions are handed out in commit
/// order and a reader that saw version `v` has seen every change before it;
/// taking it last keeps that lock short.
pub(super) fn record_change(
    tx: &mut postgres::Transaction<'_>,
    kind: ChangeKind,
    batch_id: Option<&str>,
    ingested_at: Option<chrono::NaiveDateTime>,
    rows: u64,
) -> Result<i64> {
    let version: i64 = tx
        .query_one(
            "INSERT INTO data_versions (name, version) VALUES ('changes', 1)
             ON CONFLICT (name) DO UPDATE SET version = data_versions.version + 1
             RETURNING version",
            &[],
        )?
        .get(0);
    let kind_name: &str = kind.into();
    tx.execute(
        "INSERT INTO data_changes (version, kind, batch_id, ingested_at, row_count, changed_at)
         VALUES ($1, $2, $3, $4, $5, clock_timestamp())",
        &[
            &version,
            &kind_name,
            &batch_id,
            &ingested_at,
            &(rows as i64),
        ],
    )?;
    // After anything but an append, readers reload everything: older rows
    // are of no use to anyone.
    let keep_from = match kind {
        ChangeKind::Append => version - CHANGES_KEPT,
        _ => version,
    };
    tx.execute("DELETE FROM data_changes WHERE version < $1", &[&keep_from])?;
    Ok(version)
}

/// Starts an idempotent write inside `tx`: records `write` unless its key
/// is known, in which case the earlier record is returned and the caller
/// writes nothing. A concurrent transaction with the same key makes this
/// wait until it ends.
pub(super) fn claim_key(
    tx: &mut postgres::Transaction<'_>,
    write: &IdempotentWrite,
) -> Result<Option<IdempotentWrite>> {
    tx.execute(
        "DELETE FROM api_idempotency
          WHERE created_at < clock_timestamp() - make_interval(secs => $1)",
        &[&(IDEMPOTENCY_RETENTION_SECS as f64)],
    )?;
    let fresh = tx.execute(
        "INSERT INTO api_idempotency (idempotency_key, request_hash, status_code, response, created_at)
         VALUES ($1, $2, $3, $4, clock_timestamp())
         ON CONFLICT (idempotency_key) DO NOTHING",
        &[
            &write.key,
            &write.request_hash,
            &i32::from(write.status),
            &write.response,
        ],
    )?;
    if fresh == 1 {
        return Ok(None);
    }
    let r = tx.query_one(
        "SELECT request_hash::text, status_code, response FROM api_idempotency
          WHERE idempotency_key = $1",
        &[&write.key],
    )?;
    Ok(Some(IdempotentWrite {
        key: write.key.clone(),
        request_hash: r.get(0),
        status: u16::try_from(r.get::<_, i32>(1)).unwrap_or(500),
        response: r.get(2),
    }))
}

pub(super) fn data_version(store: &mut PgStore) -> Result<i64> {
    Ok(store
        .client
        .query_one(
            "SELECT COALESCE((SELECT version FROM data_versions WHERE name = 'changes'), 0)::int8",
            &[],
        )?
        .get(0))
}

pub(super) fn dataset_version(store: &mut PgStore) -> Result<i64> {
    Ok(store
        .client
        .query_one(
            "SELECT COALESCE((SELECT version FROM data_versions WHERE name = 'dataset'), 0)::int8",
            &[],
        )?
        .get(0))
}

pub(super) fn data_changes(store: &mut PgStore, after: i64) -> Result<Vec<DataChange>> {
    let rows = store.client.query(
        "SELECT version, kind::text, batch_id::text, row_count FROM data_changes
          WHERE version > $1 ORDER BY version",
        &[&after],
    )?;
    rows.iter()
        .map(|r| {
            let kind: String = r.get(1);
            Ok(DataChange {
                version: r.get(0),
                kind: kind
                    .parse()
                    .map_err(|_| Error::Postgres(format!("unknown change kind {kind:?}")))?,
                batch_id: r.get(2),
                rows: r.get(3),
            })
        })
        .collect()
}

pub(super) fn appended_ratings(store: &mut PgStore, after: i64, upto: i64) -> Result<Vec<Rating>> {
    let rows = store.client.query(
        "SELECT b.userid, b.movieid, b.rating, b.timestamp
           FROM data_changes c
           JOIN ratings_buffer b ON b.batch_id = c.batch_id AND b.ingested_at = c.ingested_at
          WHERE c.kind = 'append' AND c.version > $1 AND c.version <= $2
          ORDER BY c.version",
        &[&after, &upto],
    )?;
    Ok(rows.iter().map(rating_row).collect())
}

pub(super) fn set_statement_timeout(
    store: &mut PgStore,
    limit: Option<std::time::Duration>,
) -> Result<()> {
    // 0 is PostgreSQL's "no limit"; a limit rounds up to a whole millisecond.
    let ms = limit.map_or(0, |d| d.as_millis().clamp(1, i32::MAX as u128));
    store
        .client
        .batch_execute(&format!("SET statement_timeout = {ms}"))?;
    Ok(())
}
