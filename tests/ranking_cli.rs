//! The ranking workflow from the command line, on both backends: the
//! champion chosen on NDCG@10 (a ranking model beats a rating model), honest
//! tuning that never reads the test split, and deployments that train on
//! every rating (`load --train-fraction 1`), whose runs carry no test
//! metrics rather than invented ones.

mod common;

use std::process::Command;

use cinematch::Split;
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
    the_registry_and_movies_by_name,
);

/// The same number (or both absent), through JSON text (serde_json's
/// parser may be off in the last bit).
#[track_caller]
fn same(json: Option<f64>, stored: Option<f64>) {
    match (json, stored) {
        (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}"),
        (a, b) => assert_eq!(a, b),
    }
}

/// The run in `models list --json` (the API's `/api/models` body) named `v`.
fn listed<'a>(list: &'a serde_json::Value, v: &str) -> &'a serde_json::Value {
    list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["modelVersion"] == v)
        .unwrap_or_else(|| panic!("{v} not in {list}"))
}

/// The registry as a newcomer uses it (issue 19): `--json` that parses and
/// says what the store holds, the change against the previous run of the
/// same algorithm (not an ease run in between), versions by `vN` and
/// prefix, compare, and a retrain that records nothing when nothing is new;
/// movies by title, genres checked, every user's list exported.
fn the_registry_and_movies_by_name(db: TestDb) {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth(tmp.path());
    let url = db.url();
    ok(url, &["load", &data]);
    let svd1 = version_in(&ok(url, &["train", "--algo", "svd", "--epochs", "5"]));
    let ease = version_in(&ok(url, &["train", "--algo", "ease"]));
    let svd2 = version_in(&ok(
        url,
        &["train", "--algo", "svd", "--epochs", "5", "--factors", "8"],
    ));
    let list: serde_json::Value =
        serde_json::from_str(&ok(url, &["models", "list", "--json"])).unwrap();
    let runs = db.store().model_runs().unwrap();
    assert_eq!(list["models"].as_array().unwrap().len(), runs.len());
    for r in &runs {
        let m = listed(&list, &r.model_version);
        let e = r.evaluation.as_ref().unwrap();
        same(m["ndcgAt10"].as_f64(), e.ndcg_at_10);
        same(m["precisionAt10"].as_f64(), r.precision_at_10);
        same(
            m["cataloguePrecisionAt10"].as_f64(),
            e.catalogue_precision_at_10,
        );
    }
    let champion = db.store().champion().unwrap().unwrap();
    assert_eq!(list["champion"], champion.as_str());
    // svd2's change is against svd1, not against the ease run before it.
    let (n1, n2) = (ndcg_of(&db, &svd1).unwrap(), ndcg_of(&db, &svd2).unwrap());
    let m2 = listed(&list, &svd2);
    assert_eq!(m2["previousSameAlgorithm"], svd1.as_str());
    assert!((m2["objectiveChange"].as_f64().unwrap() - (n2 - n1)).abs() < 1e-12);
    assert!(listed(&list, &ease)["objectiveChange"].is_null());
    assert_eq!(m2["hyperparameters"]["factors"], 8);
    // The table shows the tuned parameters only.
    let table = ok(url, &["models", "list"]);
    let row = table.lines().find(|l| l.contains(&svd2)).unwrap();
    assert!(
        row.contains("factors=8") && row.contains("epochs=5"),
        "{row}"
    );
    assert!(table.contains("rated_p@10"), "{table}");

    // vN, a prefix, and the objective first in `models show`.
    let shown: serde_json::Value =
        serde_json::from_str(&ok(url, &["models", "show", "v3", "--json"])).unwrap();
    assert_eq!(shown["modelVersion"], svd2.as_str());
    let prefix = &svd1[..10];
    let show = ok(url, &["models", "show", prefix]);
    assert!(
        show.lines()
            .next()
            .unwrap()
            .starts_with("ndcg@10 (objective)"),
        "{show}"
    );
    assert!(show.contains(&svd1), "{show}");
    let (okk, _, err) = cinematch(url, &["models", "show", "run_"]);
    assert!(!okk && err.contains("names several models"), "{err}");
    let cmp: serde_json::Value = serde_json::from_str(&ok(
        url,
        &["models", "compare", "v1", &svd2, "v2", "--json"],
    ))
    .unwrap();
    let versions: Vec<&str> = cmp["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["modelVersion"].as_str().unwrap())
        .collect();
    assert_eq!(versions, [svd1.as_str(), svd2.as_str(), ease.as_str()]);
    let factors = cmp["hyperparameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "factors")
        .unwrap();
    assert_eq!(factors["values"][1], "8");
    assert_eq!(factors["differs"], true);
    let ndcg = cmp["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "ndcg_at_10")
        .unwrap();
    let best = if ndcg_of(&db, &ease).unwrap() >= n1.max(n2) {
        2
    } else {
        9
    };
    assert_eq!(ndcg["best"][0], best, "{ndcg}");

    // Nothing new: retrain says so and records nothing; --force retrains.
    let before = db.store().model_runs().unwrap().len();
    let out = ok(url, &["retrain"]);
    assert!(out.contains("nothing new"), "{out}");
    assert_eq!(db.store().model_runs().unwrap().len(), before);
    let out = ok(url, &["retrain", "--force"]);
    assert!(
        out.contains("retrained") && !out.trim_end().ends_with("RMSE"),
        "{out}"
    );
    assert_eq!(db.store().model_runs().unwrap().len(), before + 1);

    // Movies by name, genres checked.
    let found: serde_json::Value = serde_json::from_str(&ok(
        url,
        &["search", "synthetic movie 12", "--json", "--limit", "5"],
    ))
    .unwrap();
    assert_eq!(found["movies"][0]["movieId"], 12, "{found}");
    assert_eq!(found["count"], found["movies"].as_array().unwrap().len());
    let sim: serde_json::Value = serde_json::from_str(&ok(
        url,
        &[
            "similar",
            "--movie",
            "Synthetic Movie 12",
            "--k",
            "3",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(sim["movie"]["movieId"], 12);
    assert_eq!(sim["items"].as_array().unwrap().len(), 3);
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .args(["--db", url, "-q", "similar", "--movie", "synthetic movie"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The candidates, each with its id: "128 Synthetic Movie 128 (2016)".
    let listed: Vec<&str> = err
        .split([':', ';'])
        .map(str::trim)
        .filter(|c| c.contains(" Synthetic Movie "))
        .collect();
    assert_eq!(listed.len(), 10, "{err}");
    for c in listed {
        let (id, title) = c.split_once(' ').unwrap();
        assert!(title.starts_with(&format!("Synthetic Movie {id} (")), "{c}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .args([
            "--db",
            url,
            "-q",
            "recommend",
            "--user",
            "1",
            "--genre",
            "Horrer",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Horrer") && err.contains("Drama"), "{err}");
    let recs: serde_json::Value = serde_json::from_str(&ok(
        url,
        &[
            "recommend",
            "--user",
            "1",
            "--k",
            "4",
            "--genre",
            "drama",
            "--json",
        ],
    ))
    .unwrap();
    let items = recs["items"].as_array().unwrap();
    assert_eq!((recs["userId"].as_i64(), items.len()), (Some(1), 4));
    assert!(items
        .iter()
        .all(|i| i["genres"].as_array().unwrap().contains(&"Drama".into())));

    // --json of the monitoring commands says what the store holds.
    let batch = tmp.path().join("w1.csv");
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for u in 1..=7 {
        csv.push_str(&format!("{u},{},4.0,{}\n", 390 + u, 1_700_000_000 + u));
    }
    std::fs::write(&batch, csv).unwrap();
    ok(
        url,
        &["ingest", batch.to_str().unwrap(), "--batch-id", "w1"],
    );
    let json = |args: &[&str]| -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&ok(url, &a)).unwrap()
    };
    let buffer = json(&["buffer", "status"]);
    let counts = db.store().buffer_counts().unwrap();
    assert_eq!(buffer["total"], counts.iter().map(|(_, n)| n).sum::<i64>());
    assert_eq!(buffer["batches"][0]["batchId"], "w1");
    assert_eq!(buffer["batches"][0]["ratings"], 7);
    let status = json(&["db", "status"]);
    for t in db.store().table_counts().unwrap() {
        let row = status["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["table"] == t.table.as_str())
            .unwrap_or_else(|| panic!("{} missing from {status}", t.table));
        assert_eq!(row["rows"], t.rows, "{}", t.table);
    }
    let stats = json(&["db", "stats"]);
    assert_eq!(
        stats["splits"].as_array().unwrap().len(),
        db.store().split_stats().unwrap().len()
    );
    let drift = json(&["drift", "status", "--window", "30d"]);
    assert_eq!(
        drift["alerts"].as_array().unwrap().len(),
        db.store().drift_alerts(Some(30 * 86400)).unwrap().len()
    );
    let history = json(&["pipeline", "history"]);
    assert_eq!(
        history["runs"].as_array().unwrap().len(),
        db.store().pipeline_runs().unwrap().len()
    );

    // Every user's list: users x k rows of userId,rank,movieId,score,strategy.
    let csv = tmp.path().join("recs.csv");
    ok(
        url,
        &[
            "recommend",
            "--all-users",
            "--k",
            "3",
            "--out",
            csv.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("userId,rank,movieId,score,strategy"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let users: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[0]).collect();
    // Each user gets min(3, movies they have not rated) rows: a synthetic
    // heavy user rated all 400 movies and has nothing left to watch.
    let mut store = db.store();
    let catalogue = store.movies().unwrap().len();
    let mut seen: std::collections::BTreeMap<String, std::collections::BTreeSet<i32>> =
        Default::default();
    for r in [Split::Train, Split::Test]
        .into_iter()
        .flat_map(|s| store.ratings(s).unwrap())
    {
        seen.entry(r.user_id.to_string())
            .or_default()
            .insert(r.movie_id);
    }
    let left = |u: &String| (catalogue - seen[u].len()).min(3);
    let expected: std::collections::BTreeSet<&str> = seen
        .keys()
        .filter(|u| left(u) > 0)
        .map(String::as_str)
        .collect();
    assert!(expected.len() > 290, "{}", expected.len());
    assert_eq!(users, expected, "every user with something to watch, once");
    assert_eq!(rows.len(), seen.keys().map(left).sum::<usize>());
    assert!(rows
        .iter()
        .all(|r| r.len() == 5 && ["1", "2", "3"].contains(&r[1])));
}

/// The bar: `recommend --all-users --out recs.csv` on
/// ml-latest-small writes 610 users x 10 rows (a baseline champion, the
/// cheapest to train; SQLite only, the export reads through the store).
#[test]
fn ml_latest_small_exports_610_users_times_10() {
    let db = common::SqliteDb::new();
    let data = common::shared_data("ml-latest-small");
    ok(&db.url, &["load", data.to_str().unwrap()]);
    ok(&db.url, &["train", "--algo", "baseline", "--no-ranking"]);
    let csv = db.dir.path().join("recs.csv");
    let out = ok(
        &db.url,
        &["recommend", "--all-users", "--out", csv.to_str().unwrap()],
    );
    assert!(out.contains("6100 recommendations for 610 users"), "{out}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut per_user: std::collections::BTreeMap<i32, Vec<i32>> = Default::default();
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            assert_eq!(line, "userId,rank,movieId,score,strategy");
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[4], "model", "{line}");
        let ranks = per_user.entry(f[0].parse().unwrap()).or_default();
        ranks.push(f[1].parse().unwrap());
        f[3].parse::<f32>().unwrap();
    }
    assert_eq!(per_user.len(), 610);
    assert!(per_user
        .values()
        .all(|r| *r == (1..=10).collect::<Vec<_>>()));
    let jsonl = db.dir.path().join("recs.jsonl");
    ok(
        &db.url,
        &[
            "recommend",
            "--all-users",
            "--k",
            "1",
            "--out",
            jsonl.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 610);
    assert!(rows.iter().all(|r| r["rank"] == 1 && r["movieId"].is_i64()));
}
