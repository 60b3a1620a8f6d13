//! Named leases with an expiry by the database's clock (see `Store::acquire_lease`).

use super::PgStore;
use crate::store::{Lease, LeaseGrant, Store};
use crate::{Error, Result};

/// "Now" in UTC whatever the session's time zone: lease times must agree
/// across sessions, and behind a transaction-mode pooler the `SET TIME ZONE`
/// of `conn::connect` may not reach the server connection that runs a
/// statement.
const UTC_NOW: &str = "(clock_timestamp() AT TIME ZONE 'UTC')";

pub(super) fn acquire_lease(
    store: &mut PgStore,
    name: &str,
    holder: &str,
    ttl: std::time::Duration,
    take_over: Option<&str>,
) -> Result<LeaseGrant> {
    // One statement, one implicit transaction: the row lock of ON
    // CONFLICT makes concurrent takers queue, and only one can see the
    // lease free or expired.
    for _ in 0..3 {
        let n = store.client.execute(
            &format!(
                "INSERT INTO cinematch_leases (name, holder, acquired_at, expires_at)
             VALUES ($1, $2, {UTC_NOW}, {UTC_NOW} + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder,
                acquired_at = CASE WHEN cinematch_leases.holder = EXCLUDED.holder
                                   THEN cinematch_leases.acquired_at ELSE EXCLUDED.acquired_at END,
                expires_at = EXCLUDED.expires_at
              WHERE cinematch_leases.expires_at < {UTC_NOW}
                 OR cinematch_leases.holder = EXCLUDED.holder
                 OR cinematch_leases.holder = $4"
            ),
            &[&name, &holder, &ttl.as_secs_f64(), &take_over],
        )?;
        if n == 1 {
            return Ok(LeaseGrant::Acquired);
        }
        if let Some(lease) = store.lease(name)? {
            return Ok(LeaseGrant::Held(lease));
        }
        // Released in between: try again.
    }
    Err(Error::Busy(format!(
        "the lease {name:?} changed hands repeatedly while taking it; try again"
    )))
}

pub(super) fn renew_lease(
    store: &mut PgStore,
    name: &str,
    holder: &str,
    ttl: std::time::Duration,
) -> Result<bool> {
    let n = store.client.execute(
        &format!(
            "UPDATE cinematch_leases SET expires_at = {UTC_NOW} + make_interval(secs => $3)
              WHERE name = $1 AND holder = $2"
        ),
        &[&name, &holder, &ttl.as_secs_f64()],
    )?;
    Ok(n == 1)
}

pub(super) fn release_lease(store: &mut PgStore, name: &str, holder: &str) -> Result<()> {
    store.client.execute(
        "DELETE FROM cinematch_leases WHERE name = $1 AND holder = $2",
        &[&name, &holder],
    )?;
    Ok(())
}

pub(super) fn lease(store: &mut PgStore, name: &str) -> Result<Option<Lease>> {
    let row = store.client.query_opt(
        &format!(
            "SELECT name::text, holder, acquired_at, expires_at,
                EXTRACT(EPOCH FROM (expires_at - {UTC_NOW}))::float8
           FROM cinematch_leases WHERE name = $1"
        ),
        &[&name],
    )?;
    Ok(row.map(|r| Lease {
        name: r.get(0),
        holder: r.get(1),
        acquired_at: r.get(2),
        expires_at: r.get(3),
        remaining_secs: r.get(4),
    }))
}
