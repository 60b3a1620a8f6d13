//! The ranking workflow from the command line, on both backends: the
//! champion chosen on NDCG@10 (a ranking model beats a rating model), honest
//! tuning that never reads the test split, and deployments that train on
//! every rating (`load --train-fraction 1`), whose runs carry no test
//! metrics rather than invented ones.

mod common;

use std::process::Command;

use common::TestDb;

fn cinematch(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .arg("--db")
        .arg(db)
        .arg("-q")
        .args(args)
        .env_remove("CINEMATCH_DB")
        .env_remove("DATABASE_URL")
        .env_remove("NEON_CONNECTION_STRING")
        .env_remove("CINEMATCH_OBJECTIVE")
        .env_remove("MLFLOW_TRACKING_URI")
        .output()
        .expect("run cinematch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn ok(db: &str, args: &[&str]) -> String {
    let (success, out, err) = cinematch(db, args);
    assert!(success, "cinematch {args:?} failed:\n{out}\n{err}");
    out
}

/// A small synthetic MovieLens release written by `cinematch data synth`.
fn synth(dir: &std::path::Path) -> String {
    let out = dir.join("synth");
    let (success, o, e) = cinematch(
        "sqlite://unused.db",
        &[
            "data",
            "synth",
            "--out",
            out.to_str().unwrap(),
            "--users",
            "300",
            "--movies",
            "400",
            "--ratings",
            "20000",
            "--seed",
            "7",
        ],
    );
    assert!(success, "{o}\n{e}");
    out.to_str().unwrap().to_string()
}

fn ndcg_of(db: &TestDb, version: &str) -> Option<f64> {
    db.store()
        .model_runs()
        .unwrap()
        .into_iter()
        .find(|r| r.model_version == version)
        .and_then(|r| r.evaluation.and_then(|e| e.ndcg_at_10))
}

fn version_in(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.starts_with("run_"))
        .unwrap_or_else(|| panic!("no model version in {out}"))
        .to_string()
}

/// An svd champion is replaced by an ease run that lists better on the
/// default objective (NDCG@10), and `models list` shows both metrics; with
/// `--objective rmse` a ranking model can never win (it has no RMSE).
fn a_ranking_model_wins_on_ndcg(db: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let url = db.url();
    ok(url, &["load", &data]);
    let svd = version_in(&ok(url, &["train", "--algo", "svd"]));
    assert_eq!(
        db.store().champion().unwrap().as_deref(),
        Some(svd.as_str())
    );
    // Under rmse, ease cannot be promoted.
    let out = ok(url, &["--objective", "rmse", "train", "--algo", "ease"]);
    assert!(out.contains("the champion is unchanged"), "{out}");
    assert_eq!(
        db.store().champion().unwrap().as_deref(),
        Some(svd.as_str())
    );
    // Under the default objective it is, when its NDCG@10 is higher.
    let out = ok(url, &["train", "--algo", "ease"]);
    let ease = version_in(&out);
    let (e, s) = (ndcg_of(&db, &ease).unwrap(), ndcg_of(&db, &svd).unwrap());
    assert!(e > s, "ease NDCG {e} vs svd {s}");
    assert!(out.contains("is the champion: NDCG@10"), "{out}");
    assert_eq!(
        db.store().champion().unwrap().as_deref(),
        Some(ease.as_str())
    );
    let list = ok(url, &["models", "list"]);
    assert!(list.contains("ndcg@10_change"), "{list}");
    let ease_line = list.lines().find(|l| l.contains(&ease)).unwrap();
    assert!(
        ease_line.contains(" *"),
        "the champion is starred: {ease_line}"
    );
    assert!(ease_line.contains("ease"), "{ease_line}");
}

/// `tune` scores trials on a validation split carved from train only: the
/// same search after every test rating was changed records exactly the same
/// trials (values and parameters); only the winner's final test evaluation
/// differs.
fn tune_never_reads_the_test_split(db: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let url = db.url();
    ok(url, &["load", &data]);
    let args = [
        "tune",
        "--algo",
        "ease",
        "--trials",
        "4",
        "--no-promote",
        "--seed",
        "3",
    ];
    let out = ok(url, &args);
    assert!(out.contains("the test split was not read"), "{out}");
    let first = db.store().tuning_trials(None).unwrap();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|t| t.value.is_some()));
    // Vandalize the test split.
    let mut s = db.store();
    let test = s.ratings(cinematch::Split::Test).unwrap();
    assert!(!test.is_empty());
    drop(s);
    let flipped = match &db {
        TestDb::Pg(d) => d
            .client()
            .execute(
                "UPDATE ratings SET rating = 5.5 - rating WHERE data_split = 'test'",
                &[],
            )
            .unwrap() as usize,
        TestDb::Sqlite(d) => d
            .conn()
            .execute(
                "UPDATE ratings SET rating = 5.5 - rating WHERE data_split = 'test'",
                [],
            )
            .unwrap(),
    };
    assert_eq!(flipped, test.len());
    ok(url, &args);
    let all = db.store().tuning_trials(None).unwrap();
    assert_eq!(all.len(), 8);
    let (a, b) = all.split_at(4);
    assert_ne!(a[0].study, b[0].study);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(
            (&x.params, x.value, x.validation_ratings),
            (&y.params, y.value, y.validation_ratings)
        );
    }
}

/// `load --train-fraction 1`: no test split; `train` and `retrain` make a
/// champion whose test metrics are absent (NULL), not zero.
fn training_on_every_rating_records_no_test_metrics(db: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let url = db.url();
    let out = ok(url, &["load", &data, "--train-fraction", "1"]);
    assert!(out.contains(" 0 test"), "{out}");
    let out = ok(url, &["train", "--algo", "ease"]);
    assert!(out.contains("no test split"), "{out}");
    let v1 = version_in(&out);
    let run = |v: &str| {
        db.store()
            .model_runs()
            .unwrap()
            .into_iter()
            .find(|r| r.model_version == v)
            .unwrap()
    };
    let r1 = run(&v1);
    assert_eq!((r1.rmse, r1.mae, r1.precision_at_10), (None, None, None));
    let e = r1.evaluation.unwrap();
    assert_eq!(
        (e.ndcg_at_10, e.recall_at_10, e.coverage),
        (None, None, None)
    );
    assert_eq!(e.test_ratings, Some(0));
    assert_eq!(db.store().champion().unwrap().as_deref(), Some(v1.as_str()));
    // A batch, then a retrain: promoted (no evidence against the newer
    // training), still without test metrics, the buffer merged.
    let batch = tmp.path().join("w1.csv");
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for u in 1..=20 {
        for m in 1..=5 {
            csv.push_str(&format!("{u},{},{},{}\n", 300 + m, 4.0, 1_700_000_000 + u));
        }
    }
    std::fs::write(&batch, csv).unwrap();
    ok(
        url,
        &["ingest", batch.to_str().unwrap(), "--batch-id", "batch_w1"],
    );
    let out = ok(url, &["retrain"]);
    assert!(out.contains("no test split"), "{out}");
    let champion = db.store().champion().unwrap().unwrap();
    assert_ne!(champion, v1);
    let r2 = run(&champion);
    assert_eq!(r2.rmse, None);
    assert_eq!(r2.evaluation.unwrap().ndcg_at_10, None);
    assert!(db.store().buffer_ratings(None).unwrap().is_empty());
}

on_both_backends!(
    a_ranking_model_wins_on_ndcg,
    tune_never_reads_the_test_split,
    training_on_every_rating_records_no_test_metrics,
);
