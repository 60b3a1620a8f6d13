//! Backtest results (`backtests`, schema 1.8).

use rusqlite::params;

use super::rows::parse_ts;
use super::SqliteStore;
use crate::store::BacktestRow;
use crate::Result;

pub(super) fn insert_backtest(store: &mut SqliteStore, b: &BacktestRow) -> Result<i64> {
    store.conn.execute(
        "INSERT INTO backtests (backtest_id, policy, source, served_ndcg_at_10, \
         most_rated_ndcg_at_10, trending_ndcg_at_10, report) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            b.backtest_id,
            b.policy,
            b.source,
            b.served_ndcg_at_10,
            b.most_rated_ndcg_at_10,
            b.trending_ndcg_at_10,
            b.report
        ],
    )?;
    Ok(store.conn.last_insert_rowid())
}

pub(super) fn backtests(store: &mut SqliteStore, limit: usize) -> Result<Vec<BacktestRow>> {
    let mut stmt = store.conn.prepare(
        "SELECT id, backtest_id, created_at, policy, source, served_ndcg_at_10, \
         most_rated_ndcg_at_10, trending_ndcg_at_10, report FROM backtests \
         ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(BacktestRow {
                id: r.get(0)?,
                backtest_id: r.get(1)?,
                created_at: parse_ts(&r.get::<_, String>(2)?),
                policy: r.get(3)?,
                source: r.get(4)?,
                served_ndcg_at_10: r.get(5)?,
                most_rated_ndcg_at_10: r.get(6)?,
                trending_ndcg_at_10: r.get(7)?,
                report: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
