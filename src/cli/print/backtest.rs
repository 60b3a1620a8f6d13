//! `backtest`.

use cinematch::format::thousands;
use cinematch::pipeline::backtest::{BacktestReport, GroupScore, ListScores};

use crate::cli::table;

pub fn backtest(r: &BacktestReport) {
    println!(
        "backtest {} of {}: history {} ratings (until {}), {} weeks; trending baseline = the \
         latest {} ratings known",
        r.backtest_id,
        r.source,
        thousands(r.history_ratings as i64),
        day(r.history_end),
        r.weeks,
        thousands(r.trending_window as i64)
    );
    for p in &r.policies {
        println!();
        println!(
            "policy {} ({}{}): {} retrains, retrain-triggering alerts in {} of {} weeks, {:.1}s",
            p.policy,
            p.algorithm,
            if p.refit { ", refit on everything" } else { "" },
            p.retrains,
            p.alert_weeks,
            p.weeks.len(),
            p.seconds
        );
        let rows: Vec<Vec<String>> = p
            .weeks
            .iter()
            .map(|w| {
                vec![
                    w.week.to_string(),
                    format!("{}..{}", day(w.first_timestamp), day(w.last_timestamp)),
                    w.scores.served.returning.users.to_string(),
                    w.scores.served.new.users.to_string(),
                    format!("{:.4}", w.scores.served.all.ndcg_at_10),
                    format!("{:.4}", w.scores.most_rated.all.ndcg_at_10),
                    format!("{:.4}", w.scores.trending.all.ndcg_at_10),
                    if w.retrained {
                        if w.promoted { "yes, promoted" } else { "yes" }.to_string()
                    } else {
                        "no".to_string()
                    },
                    if w.retrain_alerts.is_empty() {
                        "-".to_string()
                    } else {
                        w.retrain_alerts.join(" ")
                    },
                ]
            })
            .collect();
        table::print(
            &[
                "week",
                "ratings from..to",
                "returning",
                "new",
                "served NDCG@10",
                "most-rated",
                "trending",
                "retrained",
                "retrain alerts",
            ],
            &rows,
        );
        println!("mean over the weeks (NDCG@10 / recall@10):");
        let line = |name: &str, l: &ListScores, base: &ListScores| {
            let cell = |g: GroupScore, b: GroupScore| {
                if g.users == 0 {
                    "-".to_string()
                } else if b.ndcg_at_10 > 0.0 {
                    format!(
                        "{:.4} / {:.4} ({:.2}x)",
                        g.ndcg_at_10,
                        g.recall_at_10,
                        g.ndcg_at_10 / b.ndcg_at_10
                    )
                } else {
                    format!("{:.4} / {:.4}", g.ndcg_at_10, g.recall_at_10)
                }
            };
            vec![
                name.to_string(),
                cell(l.all, base.all),
                cell(l.returning, base.returning),
                cell(l.new, base.new),
            ]
        };
        let m = &p.mean;
        table::print(
            &["list (x most-rated)", "all users", "returning", "new users"],
            &[
                line("served", &m.served, &m.most_rated),
                line("most-rated", &m.most_rated, &m.most_rated),
                line("trending", &m.trending, &m.most_rated),
            ],
        );
    }
}

fn day(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| ts.to_string())
}
