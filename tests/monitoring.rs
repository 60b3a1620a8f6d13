//! Batch ingestion, drift checks, retraining and pipeline cycles against
//! real SQLite files and real PostgreSQL databases.

mod common;

use std::path::PathBuf;

use cinematch::data::ReadOptions;
use cinematch::models::{Algo, Hyperparams};
use cinematch::pipeline::cycle::{run_cycle, CycleOptions};
use cinematch::pipeline::drift_check::{check, Thresholds};
use cinematch::pipeline::ingest::ingest_file;
use cinematch::pipeline::retrain::{retrain, RetrainOptions, RetrainOutcome};
use cinematch::progress::Silent;
use cinematch::registry::{self, TrainOptions};
use cinematch::store::Store;
use cinematch::{Error, Split};
use common::TestDb;

fn batch_file(dir: &std::path::Path, name: &str, rows: &[(i32, i32, f32)]) -> PathBuf {
    let mut s = String::from("userId,movieId,rating,timestamp\n");
    for (i, (u, m, r)) in rows.iter().enumerate() {
        s.push_str(&format!("{u},{m},{r:.1},{}\n", 2_000_000_000 + i));
    }
    let p = dir.join(name);
    std::fs::write(&p, s).unwrap();
    p
}

fn count(store: &mut dyn Store, table: &str) -> i64 {
    store
        .table_counts()
        .unwrap()
        .into_iter()
        .find(|t| t.table == table)
        .unwrap()
        .rows
}

fn ingestion_is_atomic_audited_and_retryable(db: TestDb) {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let tmp = tempfile::tempdir().unwrap();
    // A bad row at the end: nothing of the batch may land.
    let bad = batch_file(
        tmp.path(),
        "w1.csv",
        &[(1, 1, 4.0), (2, 2, 3.5), (3, 3, 7.0)],
    );
    let err = ingest_file(s.as_mut(), &bad, "batch_w1", ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("w1.csv:4"), "{err}");
    assert_eq!(count(s.as_mut(), "ratings_buffer"), 0);
    let audit = s.ingestions().unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].status.as_deref(), Some("failed"));
    assert!(audit[0].notes.as_deref().unwrap().contains("w1.csv:4"));
    // Unknown movie: rejected (referential integrity).
    let unknown = batch_file(tmp.path(), "w1b.csv", &[(1, 1, 4.0), (2, 999, 3.5)]);
    let err = ingest_file(s.as_mut(), &unknown, "batch_w1", ReadOptions::default()).unwrap_err();
    assert!(err.to_string().contains("999"), "{err}");
    assert_eq!(count(s.as_mut(), "ratings_buffer"), 0);
    // The failed batch id can be retried.
    let good = batch_file(
        tmp.path(),
        "w1c.csv",
        &[(1, 1, 4.0), (2, 2, 3.5), (41, 3, 5.0)],
    );
    let r = ingest_file(s.as_mut(), &good, "batch_w1", ReadOptions::default()).unwrap();
    assert_eq!(r.records, 3);
    assert_eq!(count(s.as_mut(), "ratings_buffer"), 3);
    let audit = s.ingestions().unwrap();
    assert_eq!(audit.len(), 1, "one audit row per batch id");
    assert_eq!(audit[0].status.as_deref(), Some("completed"));
    assert_eq!(audit[0].record_count, Some(3));
    // A completed batch is refused and nothing doubles.
    let err = ingest_file(s.as_mut(), &good, "batch_w1", ReadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert_eq!(count(s.as_mut(), "ratings_buffer"), 3);
    assert_eq!(
        s.ingestions().unwrap()[0].status.as_deref(),
        Some("completed")
    );
    // An interrupted batch (killed after 'in_progress') is visible and retryable.
    s.begin_ingestion("batch_w2").unwrap();
    let audit = db.store().ingestions().unwrap();
    assert!(audit
        .iter()
        .any(|i| i.batch_id == "batch_w2" && i.status.as_deref() == Some("in_progress")));
    let w2 = batch_file(tmp.path(), "w2.csv", &[(5, 5, 2.0)]);
    ingest_file(s.as_mut(), &w2, "batch_w2", ReadOptions::default()).unwrap();
    assert_eq!(count(s.as_mut(), "ratings_buffer"), 4);
    assert_eq!(s.buffer_ratings(Some("batch_w2")).unwrap().len(), 1);
}

fn drift_check_on_empty_buffer_writes_nothing(db: TestDb) {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let err = check(s.as_mut(), None, &Thresholds::default()).unwrap_err();
    assert!(err.to_string().contains("nothing to compare"), "{err}");
    assert_eq!(count(s.as_mut(), "drift_alerts"), 0);
}

fn drift_check_records_every_test(db: TestDb) {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    registry::train(
        s.as_mut(),
        &TrainOptions::new(Hyperparams::default_for(Algo::Baseline)),
        &Silent,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Everyone rates 5.0: a large upward shift of the mean.
    let rows: Vec<(i32, i32, f32)> = (1..=20)
        .flat_map(|u| (1..=5).map(move |m| (u, m, 5.0)))
        .collect();
    let f = batch_file(tmp.path(), "w.csv", &rows);
    ingest_file(s.as_mut(), &f, "batch_w1", ReadOptions::default()).unwrap();
    let report = check(s.as_mut(), Some("batch_w1"), &Thresholds::default()).unwrap();
    let names: Vec<&str> = report
        .alerts
        .iter()
        .map(|a| a.feature_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "rating_mean",
            "rating_std",
            "rating_distribution_ks",
            "rating_psi",
            "rating_chi2",
            "genre_mix_js",
            "unseen_users_share",
            "unseen_movies_share",
            "performance_rmse"
        ]
    );
    let mean = &report.alerts[0];
    assert!(mean.alert_triggered);
    assert!(
        mean.notes.starts_with("Baseline: ") && mean.notes.contains(", New: 5.000"),
        "{}",
        mean.notes
    );
    let stored = s.drift_alerts(None).unwrap();
    assert_eq!(stored.len(), 9);
    assert!(
        stored.iter().all(|a| a.alert_date == stored[0].alert_date),
        "one check, one date"
    );
    assert!(stored
        .iter()
        .any(|a| a.feature_name == "rating_distribution_ks"
            && a.alert_triggered
            && a.notes.as_deref().unwrap().starts_with("KS test p-value: ")));
    // The spec's "Is retraining needed?" query sees it.
    assert!(
        !cinematch::pipeline::retrain::retraining_needed(s.as_mut(), 86400)
            .unwrap()
            .is_empty()
    );
}

fn retrain_merges_exactly_once_and_keeps_rejected(db: TestDb) {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let first = registry::train(
        s.as_mut(),
        &TrainOptions::new(Hyperparams::default_for(Algo::Baseline)),
        &Silent,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<(i32, i32, f32)> = (1..=10)
        .flat_map(|u| (1..=4).map(move |m| (u + 100, m, 3.0)))
        .collect();
    let f = batch_file(tmp.path(), "w.csv", &rows);
    ingest_file(s.as_mut(), &f, "batch_w1", ReadOptions::default()).unwrap();
    let train_before = s.ratings(Split::Train).unwrap().len();
    let test_before = s.ratings(Split::Test).unwrap().len();
    let buffer_before = count(s.as_mut(), "ratings_buffer") as usize;
    assert_eq!(buffer_before, 40);

    // --if-drift without alerts: nothing happens.
    let opts = RetrainOptions {
        if_drift: true,
        ..RetrainOptions::default()
    };
    assert!(matches!(
        retrain(s.as_mut(), &opts, &Silent).unwrap(),
        RetrainOutcome::Skipped { .. }
    ));
    assert_eq!(count(s.as_mut(), "ratings_buffer") as usize, buffer_before);

    // A tolerance of -100% rejects any challenger: it is kept with the reason.
    let opts = RetrainOptions {
        tolerance: -1.0,
        ..RetrainOptions::default()
    };
    let RetrainOutcome::Retrained {
        run,
        promoted,
        merged,
        ..
    } = retrain(s.as_mut(), &opts, &Silent).unwrap()
    else {
        panic!("expected a retrain")
    };
    assert!(!promoted);
    assert_eq!(merged as usize, buffer_before);
    assert_eq!(
        s.champion().unwrap().as_deref(),
        Some(first.run.model_version.as_str())
    );
    let notes: serde_json::Value = serde_json::from_str(run.notes.as_deref().unwrap()).unwrap();
    assert_eq!(notes["kind"], "retrain");
    assert_eq!(notes["batches"][0], "batch_w1");
    assert!(notes["decision"].as_str().unwrap().starts_with("rejected"));
    assert_eq!(
        notes["algorithm"], "baseline",
        "the champion's algorithm is reused"
    );
    // The invariant: train after = train before + buffer before; test unchanged; buffer empty.
    assert_eq!(
        s.ratings(Split::Train).unwrap().len(),
        train_before + buffer_before
    );
    assert_eq!(s.ratings(Split::Test).unwrap().len(), test_before);
    assert_eq!(count(s.as_mut(), "ratings_buffer"), 0);
    assert_eq!(run.data_size, Some((train_before + buffer_before) as i64));
}

fn pipeline_cycles_are_recorded_idempotent_and_exclusive(db: TestDb) {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    registry::train(
        s.as_mut(),
        &TrainOptions::new(Hyperparams::default_for(Algo::Baseline)),
        &Silent,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<(i32, i32, f32)> = (1..=20)
        .flat_map(|u| (1..=5).map(move |m| (u, m, 5.0)))
        .collect();
    let f = batch_file(tmp.path(), "w.csv", &rows);
    let opts = CycleOptions {
        batch: Some((f.clone(), "batch_w1".into())),
        ..CycleOptions::default()
    };

    // Another process holding the lock: the cycle refuses and records nothing.
    let mut other = db.store();
    assert!(other.try_lock_pipeline().unwrap());
    let err = run_cycle(s.as_mut(), &opts, &Silent).unwrap_err();
    assert!(err.to_string().contains("another pipeline cycle"), "{err}");
    assert!(s.pipeline_runs().unwrap().is_empty());
    other.unlock_pipeline().unwrap();
    drop(other);

    let report = run_cycle(s.as_mut(), &opts, &Silent).unwrap();
    assert!(report.succeeded);
    assert!(report.drift);
    let statuses: Vec<(&str, &str)> = report.steps.iter().map(|x| (x.name, x.status)).collect();
    assert_eq!(
        statuses,
        [("ingest", "ok"), ("drift_check", "ok"), ("retrain", "ok")]
    );
    assert_eq!(
        count(s.as_mut(), "ratings_buffer"),
        0,
        "retrain merged the buffer"
    );
    assert_eq!(s.model_runs().unwrap().len(), 2);
    // Running the same cycle again: the batch is skipped, nothing is doubled.
    let train_after = s.ratings(Split::Train).unwrap().len();
    let again = run_cycle(s.as_mut(), &opts, &Silent).unwrap();
    assert!(again.succeeded);
    assert_eq!(again.steps[0].status, "skipped");
    assert_eq!(
        again.steps[1].status, "skipped",
        "empty buffer: nothing to compare"
    );
    assert_eq!(s.ratings(Split::Train).unwrap().len(), train_after);
    let runs = s.pipeline_runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs
        .iter()
        .all(|r| r.status == "succeeded" && r.finished_at.is_some()));
    let steps: serde_json::Value = serde_json::from_str(runs[1].steps.as_deref().unwrap()).unwrap();
    assert_eq!(steps.as_array().unwrap().len(), 3);
}

fn archive_moves_old_alerts_in_one_go(db: TestDb) {
    let mut s = db.store();
    s.insert_drift_alerts(&[cinematch::store::NewDriftAlert {
        feature_name: "rating_mean".into(),
        drift_score: 0.2,
        threshold: 0.1,
        alert_triggered: true,
        notes: "Baseline: 3.5, New: 4.2".into(),
    }])
    .unwrap();
    assert_eq!(
        s.archive_drift_alerts(3600).unwrap(),
        0,
        "fresh alerts stay"
    );
    assert_eq!(s.drift_alerts(None).unwrap().len(), 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(s.archive_drift_alerts(1).unwrap(), 1);
    assert!(s.drift_alerts(None).unwrap().is_empty());
    assert_eq!(count(s.as_mut(), "drift_alerts_archive"), 1);
}

on_both_backends!(
    ingestion_is_atomic_audited_and_retryable,
    drift_check_on_empty_buffer_writes_nothing,
    drift_check_records_every_test,
    retrain_merges_exactly_once_and_keeps_rejected,
    pipeline_cycles_are_recorded_idempotent_and_exclusive,
    archive_moves_old_alerts_in_one_go,
);
