//! Named leases with an expiry by the database's clock (see `Store::acquire_lease`).

use rusqlite::{params, Transaction};

use super::rows::parse_ts;
use super::SqliteStore;
use super::NOW;
use crate::store::{Lease, LeaseGrant};
use crate::Result;

pub(super) fn acquire_lease(
    store: &mut SqliteStore,
    name: &str,
    holder: &str,
    ttl: std::time::Duration,
    take_over: Option<&str>,
) -> Result<LeaseGrant> {
    // IMMEDIATE: one writer at a time, so the check and the write are one step.
    let tx = store
        .conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let n = tx.execute(
        &format!(
            "INSERT INTO cinematch_leases (name, holder, acquired_at, expires_at)
             VALUES (?1, ?2, {NOW}, strftime('%Y-%m-%d %H:%M:%f', 'now', ?3))
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                acquired_at = CASE WHEN cinematch_leases.holder = excluded.holder
                                   THEN cinematch_leases.acquired_at ELSE excluded.acquired_at END,
                expires_at = excluded.expires_at
              WHERE cinematch_leases.expires_at < {NOW}
                 OR cinematch_leases.holder = excluded.holder
                 OR cinematch_leases.holder = ?4"
        ),
        params![name, holder, ttl_modifier(ttl), take_over],
    )?;
    let held = if n == 1 { None } else { lease_in(&tx, name)? };
    tx.commit()?;
    Ok(match held {
        None => LeaseGrant::Acquired,
        Some(lease) => LeaseGrant::Held(lease),
    })
}

pub(super) fn renew_lease(
    store: &mut SqliteStore,
    name: &str,
    holder: &str,
    ttl: std::time::Duration,
) -> Result<bool> {
    let n = store.conn.execute(
        "UPDATE cinematch_leases SET expires_at = strftime('%Y-%m-%d %H:%M:%f', 'now', ?3)
          WHERE name = ?1 AND holder = ?2",
        params![name, holder, ttl_modifier(ttl)],
    )?;
    Ok(n == 1)
}

pub(super) fn release_lease(store: &mut SqliteStore, name: &str, holder: &str) -> Result<()> {
    store.conn.execute(
        "DELETE FROM cinematch_leases WHERE name = ?1 AND holder = ?2",
        [name, holder],
    )?;
    Ok(())
}

pub(super) fn lease(store: &mut SqliteStore, name: &str) -> Result<Option<Lease>> {
    let tx = store.conn.transaction()?;
    let lease = lease_in(&tx, name)?;
    tx.commit()?;
    Ok(lease)
}

/// SQLite's date modifier for "`ttl` from now", to the millisecond.
fn ttl_modifier(ttl: std::time::Duration) -> String {
    format!("+{:.3} seconds", ttl.as_secs_f64())
}

fn lease_in(tx: &Transaction<'_>, name: &str) -> Result<Option<Lease>> {
    let row = tx.query_row(
        &format!(
            "SELECT name, holder, acquired_at, expires_at,
                    (julianday(expires_at) - julianday({NOW})) * 86400.0
               FROM cinematch_leases WHERE name = ?1"
        ),
        [name],
        |r| {
            Ok(Lease {
                name: r.get(0)?,
                holder: r.get(1)?,
                acquired_at: parse_ts(&r.get::<_, String>(2)?),
                expires_at: parse_ts(&r.get::<_, String>(3)?),
                remaining_secs: r.get(4)?,
            })
        },
    );
    match row {
        Ok(l) => Ok(Some(l)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
