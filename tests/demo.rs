//! The demo story on both backends, checked from the tables it leaves:
//! drift alerts exactly in the drifted week, for the injected kinds, and a
//! retrain that merged every batch.

mod common;

use cinematch::pipeline::demo::{self, DemoOptions};
use cinematch::progress::Silent;
use cinematch::{IngestionStatus, Split};
use common::TestDb;

fn demo_story_alerts_only_in_the_drifted_week(db: TestDb) {
    let work = tempfile::tempdir().unwrap();
    let mut store = db.store();
    let opts = DemoOptions::new(work.path().to_path_buf());
    let mut lines = Vec::new();
    let report = demo::run(store.as_mut(), &opts, &Silent, &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert_eq!(report.weeks.len(), 3);
    for (i, (batch, cycle)) in report.weeks.iter().enumerate() {
        assert_eq!(batch, &format!("batch_w{}", i + 1));
        assert!(cycle.succeeded);
        assert_eq!(
            cycle.drift,
            i == 2,
            "drift detected in {batch}: {:?}",
            cycle.steps
        );
    }
    // drift_alerts: every check's rows start with the spec's rating_mean;
    // the third week's rows are the newest.
    let mut alerts = store.drift_alerts(None).unwrap();
    alerts.sort_by_key(|a| a.id);
    let starts: Vec<i64> = alerts
        .iter()
        .filter(|a| a.feature_name == "rating_mean")
        .map(|a| a.id)
        .collect();
    assert_eq!(starts.len(), 3, "one check per week");
    let week_of = |id: i64| starts.iter().filter(|s| **s <= id).count();
    for week in 1..=3 {
        let names: Vec<&str> = alerts
            .iter()
            .filter(|a| week_of(a.id) == week)
            .map(|a| a.feature_name.as_str())
            .collect();
        for spec in ["rating_mean", "rating_std", "rating_distribution_ks"] {
            assert!(names.contains(&spec), "week {week} lacks {spec}: {names:?}");
        }
    }
    for a in &alerts {
        let week = week_of(a.id);
        if week < 3 {
            assert!(
                !(a.alert_triggered
                    && cinematch::pipeline::drift_check::triggers_retraining(&a.feature_name)),
                "clean week {week} asked for a retrain: {a:?}"
            );
        }
    }
    let fired: Vec<&str> = alerts
        .iter()
        .filter(|a| week_of(a.id) == 3 && a.alert_triggered)
        .map(|a| a.feature_name.as_str())
        .collect();
    // The injected kinds: a mean shift (+0.6) and a Comedy shift with more
    // Comedy, seen by the spec's tests and by their calibrated twins, which
    // ask for the retrain.
    for expected in [
        "rating_mean",
        "rating_distribution_ks",
        "rating_mean_calibrated",
        "rating_distribution_ks_calibrated",
        "genre_mix_js",
    ] {
        assert!(
            fired.contains(&expected),
            "{expected} did not fire: {fired:?}"
        );
    }
    // Nothing about new users or movies was injected.
    assert!(!fired.contains(&"unseen_users_share"), "{fired:?}");
    assert!(!fired.contains(&"unseen_movies_share"), "{fired:?}");

    // ingestion_metadata: three completed batches of 10,000.
    let ing = store.ingestions().unwrap();
    assert_eq!(ing.len(), 3);
    assert!(ing
        .iter()
        .all(|i| i.status == Some(IngestionStatus::Completed) && i.record_count == Some(10_000)));
    // model_metrics: a rating model (svd) and a ranking model (ease) on the
    // train split, then the drift-triggered retrain of the champion on
    // train + 3 batches.
    let runs = store.model_runs().unwrap();
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[0].data_size, Some(70_000));
    assert_eq!(runs[1].data_size, Some(70_000));
    assert_eq!(runs[2].data_size, Some(100_000));
    let algo = |i: usize| -> String {
        let n: serde_json::Value = serde_json::from_str(runs[i].notes.as_deref().unwrap()).unwrap();
        n["algorithm"].as_str().unwrap().to_string()
    };
    assert_eq!(
        (algo(0), algo(1), algo(2)),
        ("svd".into(), "ease".into(), "ease".into())
    );
    // The ranking model predicts no ratings (NULL RMSE) and wins on NDCG@10,
    // the default objective; the rating model keeps its RMSE.
    assert!(runs[0].rmse.is_some() && runs[1].rmse.is_none());
    let ndcg = |i: usize| runs[i].evaluation.as_ref().unwrap().ndcg_at_10.unwrap();
    assert!(ndcg(1) > ndcg(0), "ease {} vs svd {}", ndcg(1), ndcg(0));
    assert_eq!(
        store.champion().unwrap().as_deref(),
        Some(runs[2].model_version.as_str())
    );
    let notes: serde_json::Value = serde_json::from_str(runs[2].notes.as_deref().unwrap()).unwrap();
    assert_eq!(notes["kind"], "retrain");
    assert_eq!(
        notes["batches"],
        serde_json::json!(["batch_w1", "batch_w2", "batch_w3"])
    );
    // The buffer was merged: nothing lost, nothing doubled.
    assert!(store.buffer_ratings(None).unwrap().is_empty());
    assert_eq!(store.ratings(Split::Train).unwrap().len(), 70_000 + 30_000);
    assert_eq!(store.ratings(Split::Test).unwrap().len(), 30_000);
    assert!(lines.iter().any(|l| l.contains("Week 3")));

    // Running it again on the same database is a clear refusal.
    let err = demo::run(store.as_mut(), &opts, &Silent, &mut |_| {})
        .err()
        .unwrap();
    assert!(err.to_string().contains("already holds data"), "{err}");
}

on_both_backends!(demo_story_alerts_only_in_the_drifted_week);
