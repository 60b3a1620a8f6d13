//! Backtest results (`backtests`, schema 1.8).

use super::PgStore;
use crate::store::BacktestRow;
use crate::Result;

pub(super) fn insert_backtest(store: &mut PgStore, b: &BacktestRow) -> Result<i64> {
    let row = store.client.query_one(
        "INSERT INTO backtests (backtest_id, policy, source, served_ndcg_at_10, \
         most_rated_ndcg_at_10, trending_ndcg_at_10, report) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         RETURNING id::int8",
        &[
            &b.backtest_id,
            &b.policy,
            &b.source,
            &b.served_ndcg_at_10,
            &b.most_rated_ndcg_at_10,
            &b.trending_ndcg_at_10,
            &b.report,
        ],
    )?;
    Ok(row.get(0))
}

pub(super) fn backtests(store: &mut PgStore, limit: usize) -> Result<Vec<BacktestRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = store.client.query(
        "SELECT id::int8, backtest_id::text, created_at, policy::text, source, \
         served_ndcg_at_10, most_rated_ndcg_at_10, trending_ndcg_at_10, report \
         FROM backtests ORDER BY id DESC LIMIT $1",
        &[&limit],
    )?;
    Ok(rows
        .iter()
        .map(|r| BacktestRow {
            id: r.get(0),
            backtest_id: r.get(1),
            created_at: r.get(2),
            policy: r.get(3),
            source: r.get(4),
            served_ndcg_at_10: r.get(5),
            most_rated_ndcg_at_10: r.get(6),
            trending_ndcg_at_10: r.get(7),
            report: r.get(8),
        })
        .collect())
}
