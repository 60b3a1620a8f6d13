//! The storage conformance suite: every test here runs against a real SQLite
//! file and a real PostgreSQL database, through the one `Store` trait.

mod common;

use cinematch::pipeline::load::{self, LoadOptions, Source};
use cinematch::progress::Silent;
use cinematch::store::schema::SPEC_TABLES;
use cinematch::store::{
    ArtifactBlob, ChangeKind, IdempotentWrite, ModelEvaluation, NewModelRun, RunCommit, Store,
    TuningTrial,
};
use cinematch::{Error, IngestionStatus, Movie, Rating, Split};
use common::TestDb;

// Reference figures for ml-latest-small, computed independently with Python's
// csv and statistics modules:
//   r=[float(x['rating']) for x in csv.DictReader(open('ratings.csv'))]
//   len(r), sum(r)/len(r), statistics.stdev(r)
//   -> 100836 3.501556983616962 1.042529239060635 ; movies.csv -> 9742 rows
const SMALL_RATINGS: i64 = 100_836;
const SMALL_MOVIES: i64 = 9_742;
/// Train rows of ml-latest-small under the default split (seed 42, 70%),
/// the split `scripts/compare_surprise.sh` measured the Surprise references on.
const SMALL_TRAIN: i64 = 70_585;
const SMALL_MEAN: f64 = 3.501556983616962;

fn counts(db: &TestDb) -> Vec<(String, i64)> {
    db.store()
        .table_counts()
        .unwrap()
        .into_iter()
        .map(|t| (t.table, t.rows))
        .collect()
}

fn rows_of(db: &TestDb, table: &str) -> i64 {
    counts(db)
        .into_iter()
        .find(|(t, _)| t == table)
        .map(|(_, n)| n)
        .unwrap_or_else(|| panic!("table {table} missing"))
}

fn tiny() -> (Vec<Movie>, Vec<Rating>, Vec<Split>) {
    let movies = vec![
        Movie {
            movie_id: 1,
            title: "Toy Story (1995)".into(),
            genres: "Adventure|Animation|Children|Comedy|Fantasy".into(),
            pca_features: Some(vec![0.5, -0.25, 0.0, 1.0, 0.125, 0.0, 0.0, 0.0, 0.0, -1.5]),
        },
        Movie {
            movie_id: 2,
            title: "Heat, the \"Remake\" (1995)".into(),
            genres: "Action|Crime".into(),
            pca_features: None,
        },
    ];
    let ratings = vec![
        Rating {
            user_id: 1,
            movie_id: 1,
            rating: 4.5,
            timestamp: 300,
        },
        Rating {
            user_id: 1,
            movie_id: 2,
            rating: 0.5,
            timestamp: 100,
        },
        Rating {
            user_id: 2,
            movie_id: 1,
            rating: 5.0,
            timestamp: 200,
        },
    ];
    let splits = vec![Split::Train, Split::Train, Split::Test];
    (movies, ratings, splits)
}

fn migrate_is_idempotent_and_versioned(db: TestDb) {
    let mut s = db.store(); // open() migrates
    assert_eq!(
        s.schema_version().unwrap().as_deref(),
        Some(cinematch::store::schema::latest_version())
    );
    assert!(
        s.migrate().unwrap().is_empty(),
        "second migrate applies nothing"
    );
    let mut s2 = db.store();
    assert!(s2.migrate().unwrap().is_empty());
    let tables: Vec<String> = counts(&db).into_iter().map(|(t, _)| t).collect();
    // The spec's six tables come first, in the spec's order.
    assert_eq!(&tables[..6], SPEC_TABLES);
    let spec_rows: Vec<i64> = counts(&db).into_iter().take(6).map(|(_, n)| n).collect();
    assert_eq!(
        spec_rows,
        vec![0; 6],
        "a new database has empty spec tables"
    );
    assert!(tables.contains(&"cinematch_schema".to_string()));
}

fn roundtrip_of_movies_and_ratings(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    let summary = s
        .load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    assert_eq!((summary.movies, summary.train, summary.test), (2, 2, 1));
    assert_eq!(s.movies().unwrap(), movies);
    let train = s.ratings(Split::Train).unwrap();
    // Ordered by timestamp, as the spec's training query.
    assert_eq!(train, vec![ratings[1], ratings[0]]);
    assert_eq!(s.ratings(Split::Test).unwrap(), vec![ratings[2]]);
}

fn split_stats_match_hand_computation(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let stats = s.split_stats().unwrap();
    assert_eq!(stats.len(), 2);
    let train = stats.iter().find(|x| x.split == "train").unwrap();
    // train ratings 4.5 and 0.5: mean 2.5, sample std sqrt(((2)^2+(2)^2)/1) = 2.828427...
    assert_eq!(train.records, 2);
    assert!((train.avg_rating - 2.5).abs() < 1e-12);
    assert!((train.std_rating - 8f64.sqrt()).abs() < 1e-9);
    let test = stats.iter().find(|x| x.split == "test").unwrap();
    assert_eq!(
        (test.records, test.avg_rating, test.std_rating),
        (1, 5.0, 0.0)
    );
}

fn loading_twice_refuses_then_replace_works(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let before = counts(&db);
    let err = s
        .load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap_err();
    let (n_ratings, n_movies) = (ratings.len() as i64, movies.len() as i64);
    assert!(
        matches!(err, Error::DatasetLoaded { ratings: r, movies: m } if r == n_ratings && m == n_movies),
        "{err}"
    );
    // The library says what is wrong; the CLI adds the flag (tests/cli_load.rs).
    assert!(err.to_string().contains("already holds a dataset"), "{err}");
    assert!(!err.to_string().contains("--"), "{err}");
    assert_eq!(counts(&db), before, "a refused load changes nothing");
    let summary = s
        .load_dataset(&movies[..1], &ratings[..1], &splits[..1], true, &Silent)
        .unwrap();
    assert!(summary.replaced);
    assert_eq!(rows_of(&db, "ratings"), 1);
    assert_eq!(rows_of(&db, "movies"), 1);
}

fn failed_write_rolls_back_everything(db: TestDb) {
    // A rating the database's CHECK rejects, after valid rows in the same
    // load: the whole load must roll back, replaced data included.
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let before = counts(&db);
    let mut bad = ratings.clone();
    bad.push(Rating {
        user_id: 9,
        movie_id: 1,
        rating: 7.0,
        timestamp: 1,
    });
    let mut bad_splits = splits.clone();
    bad_splits.push(Split::Train);
    assert!(s
        .load_dataset(&movies, &bad, &bad_splits, true, &Silent)
        .is_err());
    drop(s);
    assert_eq!(counts(&db), before);
    assert_eq!(db.store().ratings(Split::Train).unwrap().len(), 2);
}

fn ml_latest_small_loads_with_exact_split(db: TestDb) {
    let dir = common::shared_data("ml-latest-small");
    let mut s = db.store();
    let report = load::load(
        s.as_mut(),
        &Source::Dir(dir),
        &LoadOptions::default(),
        &Silent,
    )
    .unwrap();
    assert_eq!(report.summary.movies as i64, SMALL_MOVIES);
    assert_eq!(
        (report.summary.train + report.summary.test) as i64,
        SMALL_RATINGS
    );
    assert_eq!(rows_of(&db, "ratings"), SMALL_RATINGS);
    assert_eq!(rows_of(&db, "movies"), SMALL_MOVIES);
    let stats = s.split_stats().unwrap();
    let train = stats.iter().find(|x| x.split == "train").unwrap();
    let test = stats.iter().find(|x| x.split == "test").unwrap();
    // Exactly the split the Surprise references in tests/quality.rs were
    // measured on (seed 42): any other count means another split.
    assert_eq!(
        (train.records, test.records),
        (SMALL_TRAIN, SMALL_RATINGS - SMALL_TRAIN),
        "train/test rows"
    );
    let mean = (train.avg_rating * train.records as f64 + test.avg_rating * test.records as f64)
        / SMALL_RATINGS as f64;
    assert!((mean - SMALL_MEAN).abs() < 1e-9, "mean {mean}");
    // Search folds accents alike on both backends: `pokemon` finds the five
    // Pokémon movies, as `pokémon` does.
    let plain = search_ids(s.as_mut(), "pokemon", None, 100);
    assert_eq!(plain.len(), 5, "{plain:?}");
    assert_eq!(search_ids(s.as_mut(), "pokémon", None, 100), plain);
    // Every movie got a 10-dimensional PCA vector.
    let movies = s.movies().unwrap();
    assert!(movies
        .iter()
        .all(|m| m.pca_features.as_ref().map(Vec::len) == Some(10)));
    // The same seed gives the same split on a second database.
    let other = common::SqliteDb::new();
    let mut s2 = other.store();
    load::load(
        s2.as_mut(),
        &Source::Dir(common::shared_data("ml-latest-small")),
        &LoadOptions::default(),
        &Silent,
    )
    .unwrap();
    let key = |v: Vec<Rating>| {
        let mut k: Vec<(i32, i32)> = v.into_iter().map(|r| (r.user_id, r.movie_id)).collect();
        k.sort();
        k
    };
    assert_eq!(
        key(s.ratings(Split::Test).unwrap()),
        key(s2.ratings(Split::Test).unwrap())
    );
}

fn table_sizes_cover_every_table(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let sizes = s.table_sizes().unwrap();
    for t in SPEC_TABLES {
        let size = sizes
            .iter()
            .find(|x| x.table == *t)
            .unwrap_or_else(|| panic!("{t}"));
        assert!(size.bytes > 0, "{t}: every table takes at least a page");
    }
    let ratings_size = sizes.iter().find(|x| x.table == "ratings").unwrap().bytes;
    assert!(
        ratings_size > 0,
        "a table with rows and indexes takes space"
    );
    assert!(
        sizes.windows(2).all(|w| w[0].bytes >= w[1].bytes),
        "largest first"
    );
}

fn blob(tag: u8) -> ArtifactBlob {
    ArtifactBlob {
        algorithm: "svd".into(),
        format_version: 1,
        checksum: 0xDEAD_BEEF,
        bytes: vec![tag, 0, 255, 7],
    }
}

fn run(rmse: f64) -> NewModelRun {
    NewModelRun {
        run_id: "abc123".into(),
        rmse: Some(rmse),
        mae: Some(rmse * 0.8),
        precision_at_10: Some(0.7),
        data_size: 70_000,
        notes: r#"{"algorithm":"svd"}"#.into(),
        evaluation: ModelEvaluation {
            algorithm: "svd".into(),
            ndcg_at_10: Some(0.05),
            recall_at_10: Some(0.02),
            catalogue_precision_at_10: Some(0.04),
            coverage: Some(0.5),
            users_evaluated: Some(600),
            users_eligible: Some(603),
            test_ratings: Some(30_000),
        },
    }
}

/// A ranking model's run: no rating metrics (NULL in the spec's columns,
/// not an invented number), its ranking metrics in `model_evaluations`,
/// queryable by SQL as the spec's `ORDER BY rmse` is.
fn ranking_runs_keep_null_rmse_and_queryable_ndcg(db: TestDb) {
    let mut s = db.store();
    let (svd, _) = s
        .insert_model_run(&run(0.9), &blob(1), &RunCommit::default())
        .unwrap();
    let mut ease = run(0.0);
    ease.rmse = None;
    ease.mae = None;
    ease.precision_at_10 = None;
    ease.evaluation = ModelEvaluation {
        algorithm: "ease".into(),
        ndcg_at_10: Some(0.35),
        recall_at_10: Some(0.2),
        catalogue_precision_at_10: Some(0.29),
        coverage: Some(0.04),
        users_evaluated: Some(603),
        users_eligible: Some(603),
        test_ratings: Some(30_251),
    };
    let (e, _) = s
        .insert_model_run(&ease, &blob(2), &RunCommit::default())
        .unwrap();
    assert_eq!((e.rmse, e.mae, e.precision_at_10), (None, None, None));
    assert_eq!(e.evaluation.as_ref().unwrap().ndcg_at_10, Some(0.35));
    let runs = s.model_runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].evaluation.as_ref().unwrap().algorithm, "svd");
    assert_eq!(runs[1].evaluation, Some(ease.evaluation.clone()));
    // A run without a test split: every metric NULL.
    let mut blind = run(0.0);
    blind.rmse = None;
    blind.mae = None;
    blind.precision_at_10 = None;
    blind.evaluation = ModelEvaluation {
        algorithm: "ease".into(),
        test_ratings: Some(0),
        ..ModelEvaluation::default()
    };
    let (b, _) = s
        .insert_model_run(&blind, &blob(3), &RunCommit::default())
        .unwrap();
    let be = b.evaluation.unwrap();
    assert_eq!((be.ndcg_at_10, be.users_evaluated), (None, None));
    // The best list by SQL, as an analyst would ask it.
    let best = db.query_strings(
        "SELECT m.model_version FROM model_metrics m
           JOIN model_evaluations e ON e.model_version = m.model_version
          WHERE e.ndcg_at_10 IS NOT NULL ORDER BY e.ndcg_at_10 DESC LIMIT 1",
    );
    assert_eq!(best, vec![e.model_version.clone()]);
    let nulls =
        db.query_strings("SELECT model_version FROM model_metrics WHERE rmse IS NULL ORDER BY id");
    assert_eq!(nulls, vec![e.model_version, b.model_version]);
    assert_ne!(svd.model_version, best[0]);
}

fn tuning_trials_round_trip(db: TestDb) {
    let mut s = db.store();
    let t = |study: &str, trial: i64, value: Option<f64>| TuningTrial {
        study: study.into(),
        trial,
        algorithm: "ease".into(),
        params: r#"{"algo":"ease","lambda":500.0}"#.into(),
        objective: "ndcg@10".into(),
        value,
        validation_ratings: 21_175,
        seconds: 1.5,
    };
    let all = vec![
        t("s1", 1, Some(0.18)),
        t("s1", 2, None),
        t("s2", 1, Some(0.2)),
    ];
    for x in &all {
        s.insert_tuning_trial(x).unwrap();
    }
    assert_eq!(s.tuning_trials(None).unwrap(), all);
    assert_eq!(s.tuning_trials(Some("s1")).unwrap(), all[..2].to_vec());
    assert!(s.tuning_trials(Some("nope")).unwrap().is_empty());
}

fn registry_versions_champion_and_rollback(db: TestDb) {
    let mut s = db.store();
    assert_eq!(s.champion().unwrap(), None);
    assert!(matches!(s.rollback(), Err(Error::NotFound(_))));
    let a = s
        .insert_model_run(&run(0.9), &blob(1), &RunCommit::default())
        .unwrap()
        .0;
    assert_eq!(a.model_version, "run_abc123_v1");
    assert_eq!(a.rmse, Some(0.9));
    assert_eq!(a.data_size, Some(70_000));
    // The first model becomes the champion; later ones do not by themselves.
    assert_eq!(s.champion().unwrap().as_deref(), Some("run_abc123_v1"));
    let b = s
        .insert_model_run(&run(0.85), &blob(2), &RunCommit::default())
        .unwrap()
        .0;
    assert_eq!(b.model_version, "run_abc123_v2");
    assert_eq!(s.champion().unwrap().as_deref(), Some("run_abc123_v1"));
    assert_eq!(s.artifact(&b.model_version).unwrap(), Some(blob(2)));
    assert_eq!(s.artifact("run_nope_v9").unwrap(), None);
    let runs = s.model_runs().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| r.model_version.as_str())
            .collect::<Vec<_>>(),
        ["run_abc123_v1", "run_abc123_v2"]
    );
    assert!(runs[0].training_date <= runs[1].training_date);

    assert!(matches!(
        s.promote("run_nope_v9", "x"),
        Err(Error::UnknownModel { version }) if version == "run_nope_v9"
    ));
    s.promote(&b.model_version, "better rmse").unwrap();
    assert_eq!(s.champion().unwrap().as_deref(), Some("run_abc123_v2"));
    let c = s
        .insert_model_run(&run(0.8), &blob(3), &RunCommit::default())
        .unwrap()
        .0;
    s.promote(&c.model_version, "better").unwrap();
    s.promote(&c.model_version, "again").unwrap();
    // Rollback walks back through distinct champions, one step at a time.
    assert_eq!(
        s.rollback().unwrap(),
        ("run_abc123_v3".to_string(), "run_abc123_v2".to_string())
    );
    assert_eq!(s.champion().unwrap().as_deref(), Some("run_abc123_v2"));
    assert_eq!(
        s.rollback().unwrap(),
        ("run_abc123_v2".to_string(), "run_abc123_v1".to_string())
    );
    assert!(matches!(s.rollback(), Err(Error::NotFound(_))));
    // Another process sees the same registry.
    assert_eq!(
        db.store().champion().unwrap().as_deref(),
        Some("run_abc123_v1")
    );
    let promos = db.store().promotions().unwrap();
    assert_eq!(promos.len(), 4);
    assert_eq!(promos.iter().filter(|p| p.rolled_back).count(), 3);
}

/// Issue 10, item 5: a promotion decided on a champion read earlier lands
/// only if that is still the champion; otherwise nothing at all is written.
fn compare_and_set_promotion(db: TestDb) {
    let mut s = db.store();
    let a = s
        .insert_model_run(&run(0.9), &blob(1), &RunCommit::default())
        .unwrap()
        .0;
    let b = s
        .insert_model_run(&run(0.85), &blob(2), &RunCommit::default())
        .unwrap()
        .0;
    s.promote(&b.model_version, "by hand").unwrap();
    // A retrain read champion b; meanwhile b is rolled back to a.
    s.rollback().unwrap();
    let promote_c = RunCommit {
        promote_reason: Some("better".into()),
        promote_if_champion_is: Some(Some(b.model_version.clone())),
        ..RunCommit::default()
    };
    let err = s
        .insert_model_run(&run(0.8), &blob(3), &promote_c)
        .unwrap_err();
    match &err {
        Error::ChampionChanged { expected, actual } => {
            assert_eq!(expected.as_deref(), Some(b.model_version.as_str()));
            assert_eq!(actual.as_deref(), Some(a.model_version.as_str()));
        }
        other => panic!("expected ChampionChanged, got {other:?}"),
    }
    assert_eq!(s.model_runs().unwrap().len(), 2, "nothing recorded");
    assert_eq!(s.champion().unwrap(), Some(a.model_version.clone()));
    // Expecting the actual champion, it lands.
    let promote_c = RunCommit {
        promote_if_champion_is: Some(Some(a.model_version.clone())),
        ..promote_c
    };
    let (c, _) = s.insert_model_run(&run(0.8), &blob(3), &promote_c).unwrap();
    assert_eq!(s.champion().unwrap(), Some(c.model_version.clone()));

    // The same as a store operation on its own.
    let err = s
        .promote_if_champion_is(Some(&a.model_version), &b.model_version, "x")
        .unwrap_err();
    assert!(matches!(err, Error::ChampionChanged { .. }), "{err}");
    assert_eq!(s.champion().unwrap(), Some(c.model_version.clone()));
    s.promote_if_champion_is(Some(&c.model_version), &b.model_version, "x")
        .unwrap();
    assert_eq!(s.champion().unwrap(), Some(b.model_version.clone()));
    assert!(matches!(
        s.promote_if_champion_is(Some(&b.model_version), "run_nope_v9", "x"),
        Err(Error::UnknownModel { version }) if version == "run_nope_v9"
    ));
    // On an empty registry, "no champion" is the expectation to meet.
    let other = match &db {
        TestDb::Pg(_) => TestDb::Pg(common::PgDb::new()),
        TestDb::Sqlite(_) => TestDb::Sqlite(common::SqliteDb::new()),
    };
    let mut e = other.store();
    let promote_first = RunCommit {
        promote_reason: Some("first".into()),
        promote_if_champion_is: Some(None),
        ..RunCommit::default()
    };
    let (first, _) = e
        .insert_model_run(&run(0.9), &blob(1), &promote_first)
        .unwrap();
    assert_eq!(e.champion().unwrap(), Some(first.model_version));
}

/// Issue 10, item 6: the lease row behind the pipeline lock. One holder at a
/// time; renewing moves the expiry; an expired lease, or one whose holder is
/// named as dead, can be taken over; release is by the holder only.
fn leases_exclude_renew_expire_and_release(db: TestDb) {
    use cinematch::store::LeaseGrant;
    use std::time::Duration;
    let mut a = db.store();
    let mut b = db.store();
    let minute = Duration::from_secs(60);
    assert_eq!(a.lease("pipeline").unwrap(), None);
    assert_eq!(
        a.acquire_lease("pipeline", "A", minute, None).unwrap(),
        LeaseGrant::Acquired
    );
    let held = a.lease("pipeline").unwrap().unwrap();
    assert_eq!(held.holder, "A");
    assert!(
        // SQLite's julianday arithmetic is exact to about a millisecond.
        held.remaining_secs > 50.0 && held.remaining_secs <= 60.01,
        "{held:?}"
    );
    // B is refused and told who holds it.
    match b.acquire_lease("pipeline", "B", minute, None).unwrap() {
        LeaseGrant::Held(l) => assert_eq!(l.holder, "A"),
        LeaseGrant::Acquired => panic!("two holders"),
    }
    // Other names are independent.
    assert_eq!(
        b.acquire_lease("other", "B", minute, None).unwrap(),
        LeaseGrant::Acquired
    );
    // A takes it again (re-entrant for the same holder) without losing it.
    assert_eq!(
        a.acquire_lease("pipeline", "A", minute, None).unwrap(),
        LeaseGrant::Acquired
    );
    assert_eq!(
        a.lease("pipeline").unwrap().unwrap().acquired_at,
        held.acquired_at
    );
    // Renewal by the holder only.
    assert!(a
        .renew_lease("pipeline", "A", Duration::from_secs(3600))
        .unwrap());
    assert!(a.lease("pipeline").unwrap().unwrap().remaining_secs > 3000.0);
    assert!(!b.renew_lease("pipeline", "B", minute).unwrap());
    // Release by someone else does nothing.
    b.release_lease("pipeline", "B").unwrap();
    assert_eq!(a.lease("pipeline").unwrap().unwrap().holder, "A");
    // Taking over a holder known to be dead.
    assert_eq!(
        b.acquire_lease("pipeline", "B", minute, Some("A")).unwrap(),
        LeaseGrant::Acquired
    );
    assert_eq!(b.lease("pipeline").unwrap().unwrap().holder, "B");
    assert!(
        !a.renew_lease("pipeline", "A", minute).unwrap(),
        "A lost it"
    );
    // An expired lease is free for anyone.
    assert!(b.renew_lease("pipeline", "B", Duration::ZERO).unwrap());
    std::thread::sleep(Duration::from_millis(20));
    let expired = a.lease("pipeline").unwrap().unwrap();
    assert!(expired.remaining_secs < 0.0, "{expired:?}");
    assert_eq!(
        a.acquire_lease("pipeline", "A", minute, None).unwrap(),
        LeaseGrant::Acquired
    );
    assert!(
        !b.renew_lease("pipeline", "B", minute).unwrap(),
        "B lost it"
    );
    a.release_lease("pipeline", "A").unwrap();
    assert_eq!(b.lease("pipeline").unwrap(), None);
    // A second connection to the same database sees the same leases.
    let mut again = a.reopen().unwrap();
    assert_eq!(again.lease("other").unwrap().unwrap().holder, "B");
}

/// Issue 10, item 3: clearing is per batch, recorded in the audit trail,
/// and a cleared batch can be ingested again; merged batches cannot be
/// cleared (re-ingesting them would double them).
fn clearing_a_batch_is_scoped_audited_and_reversible(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let r = |u: i32, m: i32, ts: i64| Rating {
        user_id: u,
        movie_id: m,
        rating: 3.0,
        timestamp: ts,
    };
    for (batch, rows) in [
        ("w1", vec![r(5, 1, 1), r(6, 2, 2)]),
        ("w2", vec![r(7, 1, 3)]),
    ] {
        s.begin_ingestion(batch).unwrap();
        s.complete_ingestion(batch, &rows, "ok").unwrap();
    }
    s.append_to_batch("api_2025-01-06", &[r(8, 2, 4)]).unwrap();
    let status = |s: &mut Box<dyn cinematch::store::Store>, b: &str| {
        s.ingestions()
            .unwrap()
            .into_iter()
            .find(|i| i.batch_id == b)
            .unwrap()
    };

    assert_eq!(s.clear_batch("w1").unwrap(), 2);
    let w1 = status(&mut s, "w1");
    assert_eq!(w1.status, Some(IngestionStatus::Cleared));
    assert_eq!(w1.record_count, Some(2));
    assert!(w1
        .notes
        .as_deref()
        .unwrap()
        .contains("2 buffered ratings deleted"));
    // Only w1 went.
    let left: Vec<(Option<String>, i64)> = s.buffer_counts().unwrap();
    assert_eq!(
        left,
        [
            (Some("api_2025-01-06".to_string()), 1),
            (Some("w2".to_string()), 1)
        ]
    );
    assert!(s.buffer_ratings(Some("w1")).unwrap().is_empty());
    // Nothing left to clear: an error, and the audit row stays as it is.
    assert!(matches!(s.clear_batch("w1"), Err(Error::NotFound(_))));
    assert!(matches!(s.clear_batch("nope"), Err(Error::NotFound(_))));
    // The cleared batch is ingested again, in full.
    s.begin_ingestion("w1").unwrap();
    s.complete_ingestion("w1", &[r(5, 1, 1), r(6, 2, 2), r(9, 1, 5)], "again")
        .unwrap();
    let w1 = status(&mut s, "w1");
    assert_eq!(w1.status, Some(IngestionStatus::Completed));
    assert_eq!(w1.record_count, Some(3));
    assert_eq!(s.buffer_ratings(Some("w1")).unwrap().len(), 3);
    // Being ingested: refused.
    s.begin_ingestion("w3").unwrap();
    assert!(matches!(s.clear_batch("w3"), Err(Error::Conflict(_))));
    s.fail_ingestion("w3", "test").unwrap();
    // The API's batch, cleared when named, reopens with the next rating.
    assert_eq!(s.clear_batch("api_2025-01-06").unwrap(), 1);
    assert_eq!(
        status(&mut s, "api_2025-01-06").status,
        Some(IngestionStatus::Cleared)
    );
    s.append_to_batch("api_2025-01-06", &[r(8, 1, 6)]).unwrap();
    let api = status(&mut s, "api_2025-01-06");
    assert_eq!(api.status, Some(IngestionStatus::Completed));
    assert_eq!(api.record_count, Some(1));
    // After a merge nothing is buffered: clearing must not reopen the batch.
    s.merge_buffer().unwrap();
    let err = s.clear_batch("w2").unwrap_err();
    assert!(err.to_string().contains("merged into ratings"), "{err}");
    assert_eq!(
        status(&mut s, "w2").status,
        Some(IngestionStatus::Completed)
    );
    assert!(matches!(
        s.begin_ingestion("w2"),
        Err(Error::BatchCompleted { .. })
    ));
}

fn user_ratings_and_movie_stats(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let mine = s.user_ratings(1).unwrap();
    assert_eq!(
        mine,
        vec![ratings[1], ratings[0]],
        "both splits, by timestamp"
    );
    assert!(s.user_ratings(42).unwrap().is_empty());
    // Train split only: movie 1 has one train rating (4.5), movie 2 one (0.5).
    let stats = s.movie_stats().unwrap();
    assert_eq!(stats.len(), 2);
    assert_eq!(
        (stats[0].movie_id, stats[0].count, stats[0].mean),
        (1, 1, 4.5)
    );
    assert_eq!(
        (stats[1].movie_id, stats[1].count, stats[1].mean),
        (2, 1, 0.5)
    );
    let found = s.movies_by_id(&[2, 99, 2]).unwrap();
    assert_eq!(found, vec![movies[1].clone()]);
}

/// A catalogue to check search by hand. Train-split rating counts:
/// 1: 1 (plus 2 test ratings, which do not count), 2: 3, 3: 2, 4: 2, 5: 1,
/// 6: 4, 7: 5, 9: 1, the others 0.
fn search_catalogue() -> (Vec<Movie>, Vec<Rating>, Vec<Split>) {
    let m = |id: i32, title: &str, genres: &str| Movie {
        movie_id: id,
        title: title.into(),
        genres: genres.into(),
        pca_features: None,
    };
    let movies = vec![
        m(
            1,
            "Toy Story (1995)",
            "Adventure|Animation|Children|Comedy|Fantasy",
        ),
        m(
            2,
            "Toy Story 2 (1999)",
            "Adventure|Animation|Children|Comedy|Fantasy",
        ),
        m(3, "Story of Us, The (1999)", "Comedy|Drama"),
        m(4, "Toys (1992)", "Comedy|Fantasy"),
        m(5, "Heat (1995)", "Action|Crime|Thriller"),
        m(6, "Heathers (1989)", "Comedy"),
        m(7, "Storytelling (2001)", "Comedy|Drama"),
        m(8, "Toy Soldiers (1991)", "Action|Drama"),
        m(9, "Stalker (1979)", "Drama|Mystery|Sci-Fi"),
        m(10, "Sci-Fi Boys (2006)", "Documentary"),
        m(11, "Near Dark (1987)", "(no genres listed)"),
        m(12, "Andrei Rublev (1966)", "Drama|War"),
    ];
    let train: &[(i32, i32)] = &[
        (2, 3),
        (3, 2),
        (4, 2),
        (5, 1),
        (6, 4),
        (7, 5),
        (9, 1),
        (1, 1),
    ];
    let mut ratings = Vec::new();
    let mut splits = Vec::new();
    for &(movie, n) in train {
        for user in 1..=n {
            ratings.push(Rating {
                user_id: user,
                movie_id: movie,
                rating: 4.0,
                timestamp: i64::from(movie * 100 + user),
            });
            splits.push(Split::Train);
        }
    }
    for user in [7, 8] {
        ratings.push(Rating {
            user_id: user,
            movie_id: 1,
            rating: 5.0,
            timestamp: 9_000 + i64::from(user),
        });
        splits.push(Split::Test);
    }
    (movies, ratings, splits)
}

fn search_ids(
    s: &mut dyn cinematch::store::Store,
    q: &str,
    genre: Option<&str>,
    limit: usize,
) -> Vec<i32> {
    s.search_movies(q, genre, limit)
        .unwrap_or_else(|e| panic!("search {q:?} genre {genre:?}: {e}"))
        .into_iter()
        .map(|m| m.movie_id)
        .collect()
}

/// Diacritics fold alike on both backends (SQLite's FTS5 removes them;
/// PostgreSQL's title index translates them, schema 1.9): for every letter
/// the fold table names, a title holding it is found by the word with the
/// base letter and by the word as written, and nothing else is; a letter
/// with two marks (`ế`), which FTS5 keeps, matches only itself; a title
/// written decomposed (`e` + U+0301) is found as `e`. The table
/// itself is checked against SQLite here: a letter FTS5 did not fold would
/// not be found by its base letter on SQLite.
fn search_folds_diacritics_alike(db: TestDb) {
    use cinematch::store::schema::{FOLD_FROM, FOLD_TO};
    let pairs: Vec<(char, char)> = FOLD_FROM.chars().zip(FOLD_TO.chars()).collect();
    assert_eq!(pairs.len(), FOLD_TO.chars().count());
    assert!(pairs.len() > 300, "{} letters", pairs.len());
    // Movie i + 1 is titled `q<letter>q (2000)`; the last one `qếq` (two marks).
    let mut movies: Vec<Movie> = pairs
        .iter()
        .enumerate()
        .map(|(i, (c, _))| Movie {
            movie_id: i as i32 + 1,
            title: format!("q{c}q (2000)"),
            genres: "Drama".into(),
            pca_features: None,
        })
        .collect();
    let two_marks = movies.len() as i32 + 1;
    movies.push(Movie {
        movie_id: two_marks,
        title: "qếq (2000)".into(),
        genres: "Drama".into(),
        pca_features: None,
    });
    // Written decomposed: `e` and a combining acute accent.
    let decomposed = two_marks + 1;
    movies.push(Movie {
        movie_id: decomposed,
        title: "qe\u{301}q (2000)".into(),
        genres: "Drama".into(),
        pca_features: None,
    });
    let mut s = db.store();
    s.load_dataset(&movies, &[], &[], false, &Silent).unwrap();
    let folded = |base: char| -> Vec<i32> {
        let mut ids: Vec<i32> = pairs
            .iter()
            .enumerate()
            .filter(|(_, (_, b))| b.eq_ignore_ascii_case(&base))
            .map(|(i, _)| i as i32 + 1)
            .collect();
        if base.eq_ignore_ascii_case(&'e') {
            ids.push(decomposed);
        }
        ids.sort_unstable();
        ids
    };
    for (c, base) in &pairs {
        let expected = folded(*base);
        for q in [format!("q{base}q"), format!("q{c}q")] {
            let mut found = search_ids(s.as_mut(), &q, None, 1000);
            found.sort_unstable();
            assert_eq!(
                found, expected,
                "search {q:?} (the fold of {c:?} is {base:?})"
            );
        }
    }
    assert_eq!(search_ids(s.as_mut(), "qếq", None, 10), [two_marks]);
    let mut plain_e = search_ids(s.as_mut(), "qeq", None, 1000);
    plain_e.sort_unstable();
    assert_eq!(plain_e, folded('e'));
    assert!(plain_e.contains(&decomposed));
}

fn search_ranks_words_then_train_ratings(db: TestDb) {
    let (movies, ratings, splits) = search_catalogue();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let s = s.as_mut();
    // Every word must start a title word: "Story of Us" has no "toy", "Toys"
    // no "story". Both Toy Storys match both words whole; 2 has 3 train
    // ratings, 1 only 1 (its 2 test ratings do not count).
    assert_eq!(search_ids(s, "toy story", None, 20), [2, 1]);
    assert_eq!(
        search_ids(s, "TOY   Story!", None, 20),
        [2, 1],
        "case and punctuation"
    );
    assert_eq!(search_ids(s, "toy stor", None, 20), [2, 1], "prefixes");
    // Whole-word matches (by train ratings) before prefix-only ones, whatever
    // their ratings: Storytelling has 5.
    assert_eq!(search_ids(s, "story", None, 20), [2, 3, 1, 7]);
    assert_eq!(
        search_ids(s, "heat", None, 20),
        [5, 6],
        "Heat before Heathers (4 ratings)"
    );
    assert_eq!(search_ids(s, "toy", None, 20), [2, 1, 8, 4]);
    assert_eq!(search_ids(s, "1995", None, 20), [1, 5], "years are words");
    assert!(
        search_ids(s, "toy heat", None, 20).is_empty(),
        "all words must match"
    );
    assert!(search_ids(s, "zzz", None, 20).is_empty());
    // Limit.
    assert_eq!(search_ids(s, "toy", None, 2), [2, 1]);
    assert_eq!(search_ids(s, "toy", None, 1), [2]);
    assert!(search_ids(s, "toy", None, 0).is_empty());
    // Genre: exactly that genre, in any case; alone it lists by train ratings.
    assert_eq!(search_ids(s, "", Some("drama"), 20), [7, 3, 9, 8, 12]);
    assert_eq!(search_ids(s, "  ", Some("Drama"), 3), [7, 3, 9]);
    assert_eq!(search_ids(s, "story", Some("Comedy"), 20), [2, 3, 1, 7]);
    assert_eq!(search_ids(s, "story", Some("DRAMA"), 20), [3, 7]);
    assert_eq!(search_ids(s, "toy", Some("Action"), 20), [8]);
    assert_eq!(
        search_ids(s, "", Some("sci-fi"), 20),
        [9],
        "not Sci-Fi Boys, a documentary"
    );
    assert_eq!(search_ids(s, "", Some("(no genres listed)"), 20), [11]);
    for partial in ["Fi", "Sci", "Drama|War", "Dram", "Comedy|Drama"] {
        assert!(
            search_ids(s, "", Some(partial), 20).is_empty(),
            "genre {partial:?} is not a genre"
        );
    }
    // Neither words nor genre: nothing asked, nothing found.
    assert!(search_ids(s, "", None, 20).is_empty());
    assert!(search_ids(s, "", Some("  "), 20).is_empty());
}

fn search_treats_hostile_input_as_words(db: TestDb) {
    let (movies, ratings, splits) = search_catalogue();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let before_counts = counts(&db);
    let s = s.as_mut();
    // Operators of FTS5 and tsquery are plain words or separators.
    assert_eq!(
        search_ids(s, "NEAR(", None, 20),
        [11],
        "the word near: Near Dark"
    );
    assert_eq!(
        search_ids(s, "AND", None, 20),
        [12],
        "the word and: Andrei Rublev"
    );
    for heat in [
        "heat*", "-heat", "^heat", "heat:*", "\"heat\"", "(heat)", "+heat", "heat'", "'heat",
    ] {
        assert_eq!(search_ids(s, heat, None, 20), [5, 6], "{heat:?}");
    }
    assert_eq!(search_ids(s, "toy & !story", None, 20), [2, 1]);
    assert_eq!(search_ids(s, "toy <-> story", None, 20), [2, 1]);
    assert_eq!(
        search_ids(s, "toy\u{0}story", None, 20),
        [2, 1],
        "NUL separates"
    );
    let comedy = search_ids(s, "", Some("Comedy"), 20);
    assert_eq!(comedy, [7, 6, 2, 3, 4, 1], "Comedy by train ratings");
    for nothing in [
        "\"",
        "*",
        "\"\"",
        ":*",
        "&|!",
        "<->",
        "\\",
        "%",
        "_",
        "'",
        "''",
        "(",
        ")",
        "{title}",
        "toy\" OR \"heat",
        "toy | heat",
        "NOT toy",
        "title:heat",
        "genres:comedy",
        ";DROP TABLE movies;--",
        "'); DROP TABLE movies; --",
        "\"); DROP TABLE movies_fts; --",
        "heat' OR '1'='1",
        "\u{0}",
    ] {
        assert!(
            search_ids(s, nothing, None, 20).is_empty(),
            "{nothing:?} found something"
        );
        // With a genre: no words (only separators) is the genre alone,
        // words that match nothing stay nothing.
        let want: &[i32] = if nothing.chars().any(char::is_alphanumeric) {
            &[]
        } else {
            &comedy
        };
        assert_eq!(
            search_ids(s, nothing, Some("Comedy"), 20),
            want,
            "{nothing:?} in Comedy"
        );
    }
    // Odd characters and sizes: the words they hold, never an error. Both
    // backends drop the combining mark U+0345 (SQLite's FTS5 tokenizer, and
    // PostgreSQL's diacritic folding, schema 1.9) and find "toy".
    let long = "toy ".repeat(5_000);
    let toys: &[i32] = &[2, 1, 8, 4];
    for (odd, want) in [
        ("\u{345}", &[][..]),
        ("\u{345}toy", toys),
        ("½", &[]),
        ("Amélie", &[]),
        ("ß", &[]),
        ("日本", &[]),
        ("\u{1F600}", &[]),
        (long.as_str(), toys),
    ] {
        let short: String = odd.chars().take(12).collect();
        assert_eq!(search_ids(s, odd, None, 20), want, "{short:?}");
        assert!(
            search_ids(s, odd, Some(odd), 20).is_empty(),
            "{short:?} is no genre"
        );
    }
    for genre in [
        "\"",
        "*",
        "%",
        "_",
        "'",
        "\\",
        "Drama' OR '1'='1",
        "Drama\u{0}",
        "NEAR(",
        "Comedy\" OR \"Drama",
        ";DROP TABLE movies;--",
    ] {
        assert!(
            search_ids(s, "", Some(genre), 20).is_empty(),
            "genre {genre:?} found something"
        );
        assert!(search_ids(s, "toy", Some(genre), 20).is_empty());
    }
    assert_eq!(
        search_ids(s, "toy story", None, usize::MAX),
        [2, 1],
        "huge limit"
    );
    // Nothing was dropped or changed.
    assert_eq!(counts(&db), before_counts);
    assert_eq!(s.movies().unwrap(), movies);
    assert_eq!(search_ids(s, "toy story", Some("Animation"), 20), [2, 1]);
}

/// Titles are split into words at every non-alphanumeric character on
/// both backends (PostgreSQL's parser alone would keep `Sex.com` as a host
/// name and drop `<b>` as markup).
fn search_splits_titles_at_punctuation(db: TestDb) {
    let m = |id: i32, title: &str| Movie {
        movie_id: id,
        title: title.into(),
        genres: "Drama".into(),
        pca_features: None,
    };
    let movies = vec![
        m(1, "E.T. the Extra-Terrestrial (1982)"),
        m(2, "<b>Bold</b> Move (2001)"),
        m(3, "Sex.com (2000)"),
        m(4, "M*A*S*H (1970)"),
        m(5, "Spider-Man (2002)"),
        m(6, "Amélie (2001)"),
        m(7, "Tora! Tora! Tora! (1970)"),
    ];
    let mut s = db.store();
    s.load_dataset(&movies, &[], &[], false, &Silent).unwrap();
    let s = s.as_mut();
    for (q, want) in [
        ("E.T.", &[1][..]),
        ("e t", &[1]),
        ("extra terrestrial", &[1]),
        ("terrestrial", &[1]),
        ("bold", &[2]),
        ("<b>bold</b>", &[2]),
        ("move", &[2]),
        ("com", &[3]),
        ("sex.com", &[3]),
        ("m a s h", &[4]),
        ("M*A*S*H", &[4]),
        ("mash", &[]),
        ("man", &[5]),
        ("spider-man", &[5]),
        ("spiderman", &[]),
        ("amélie", &[6]),
        ("tora", &[7]),
        ("1970", &[4, 7]),
        ("200", &[2, 3, 5, 6]),
    ] {
        assert_eq!(search_ids(s, q, None, 20), want, "{q:?}");
    }
}

fn search_follows_the_catalogue(db: TestDb) {
    let (movies, ratings, splits) = search_catalogue();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    assert_eq!(search_ids(s.as_mut(), "toy story", None, 20), [2, 1]);
    // Replacing the dataset replaces what the indexes find.
    let heat = vec![Movie {
        movie_id: 40,
        title: "Toy Heat (2030)".into(),
        genres: "Drama".into(),
        pca_features: None,
    }];
    s.load_dataset(&heat, &[], &[], true, &Silent).unwrap();
    assert!(search_ids(s.as_mut(), "toy story", None, 20).is_empty());
    assert_eq!(search_ids(s.as_mut(), "toy", None, 20), [40]);
    assert_eq!(search_ids(s.as_mut(), "", Some("Drama"), 20), [40]);
    assert!(search_ids(s.as_mut(), "", Some("Comedy"), 20).is_empty());
    // Another connection sees the same.
    assert_eq!(search_ids(db.store().as_mut(), "heat", None, 20), [40]);
}

fn r(user_id: i32, movie_id: i32, rating: f32) -> Rating {
    Rating {
        user_id,
        movie_id,
        rating,
        timestamp: 1_000,
    }
}

/// The change log servers follow: every write of ratings, the buffer or the
/// movies is one numbered change, in commit order; the appends' rows are
/// found again exactly; a merge, a clear or a load is a change of its own
/// kind, after which only it is kept; a reset starts over.
fn changes_are_numbered_and_name_their_rows(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    assert_eq!(s.data_version().unwrap(), 0);
    assert!(s.data_changes(0).unwrap().is_empty());
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    s.append_to_batch("api_2030-01-01", &[r(7, 1, 4.0), r(7, 2, 3.5)])
        .unwrap();
    s.append_to_batch("api_2030-01-01", &[r(8, 1, 2.0)])
        .unwrap();
    s.begin_ingestion("week_1").unwrap();
    s.complete_ingestion("week_1", &[r(9, 2, 5.0)], "a file")
        .unwrap();
    assert_eq!(s.data_version().unwrap(), 4);
    let kinds: Vec<(i64, ChangeKind, Option<String>, i64)> = s
        .data_changes(0)
        .unwrap()
        .into_iter()
        .map(|c| (c.version, c.kind, c.batch_id, c.rows))
        .collect();
    let api = Some("api_2030-01-01".to_string());
    assert_eq!(
        kinds,
        [
            (1, ChangeKind::Load, None, 3),
            (2, ChangeKind::Append, api.clone(), 2),
            (3, ChangeKind::Append, api.clone(), 1),
            (4, ChangeKind::Append, Some("week_1".into()), 1),
        ]
    );
    assert_eq!(s.data_changes(3).unwrap().len(), 1);
    let users = |rs: Vec<Rating>| {
        rs.iter()
            .map(|r| (r.user_id, r.movie_id))
            .collect::<Vec<_>>()
    };
    // Each append's rows, and only those.
    assert_eq!(users(s.appended_ratings(1, 2).unwrap()), [(7, 1), (7, 2)]);
    assert_eq!(users(s.appended_ratings(2, 3).unwrap()), [(8, 1)]);
    assert_eq!(
        users(s.appended_ratings(1, 4).unwrap()),
        [(7, 1), (7, 2), (8, 1), (9, 2)]
    );
    assert!(s.appended_ratings(4, 4).unwrap().is_empty());
    // Another connection sees the same numbers.
    assert_eq!(db.store().data_version().unwrap(), 4);

    s.clear_batch("week_1").unwrap();
    assert_eq!(s.data_version().unwrap(), 5, "the clear is a change");
    assert_eq!(s.merge_buffer().unwrap(), 3);
    assert_eq!(s.data_version().unwrap(), 6, "the merge is a change");
    // A merge of nothing changes nothing.
    assert_eq!(s.merge_buffer().unwrap(), 0);
    assert_eq!(s.data_version().unwrap(), 6);
    let after: Vec<(i64, ChangeKind)> = s
        .data_changes(0)
        .unwrap()
        .into_iter()
        .map(|c| (c.version, c.kind))
        .collect();
    // After a reload-everything change only it is kept: a reader behind
    // it sees the gap and reloads.
    assert_eq!(after, [(6, ChangeKind::Merge)]);
    // Merged rows are no longer the buffer's.
    assert!(s.appended_ratings(1, 6).unwrap().is_empty());
    s.reset().unwrap();
    assert_eq!(s.data_version().unwrap(), 0);
}

/// `append_to_batch_once`: the key commits with the rows; the same key
/// again (from any connection) writes nothing and returns the record; a
/// write that fails writes no key either.
fn idempotent_appends_store_once(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let write = IdempotentWrite {
        key: "0b7c1f6e-key".into(),
        request_hash: "a".repeat(64),
        status: 201,
        response: r#"{"accepted":2,"batchId":"api_2030-01-01"}"#.into(),
    };
    let two = [r(7, 1, 4.0), r(7, 2, 3.5)];
    assert_eq!(
        s.append_to_batch_once("api_2030-01-01", &two, &write)
            .unwrap(),
        None
    );
    let version = s.data_version().unwrap();
    let mut other = db.store();
    let again = IdempotentWrite {
        request_hash: "b".repeat(64),
        response: "{}".into(),
        ..write.clone()
    };
    assert_eq!(
        other
            .append_to_batch_once("api_2030-01-01", &two, &again)
            .unwrap(),
        Some(write.clone()),
        "the first record, whatever the second call brought"
    );
    assert_eq!(s.buffer_ratings(None).unwrap().len(), 2);
    assert_eq!(s.data_version().unwrap(), version, "nothing was written");
    assert_eq!(
        db.query_strings("SELECT CAST(record_count AS TEXT) FROM ingestion_metadata"),
        ["2"]
    );
    // A failed write (a rating outside the CHECK) keeps no key.
    let bad = IdempotentWrite {
        key: "bad-write".into(),
        ..write.clone()
    };
    assert!(s
        .append_to_batch_once("api_2030-01-01", &[r(7, 1, 9.0)], &bad)
        .is_err());
    assert_eq!(
        db.query_strings("SELECT idempotency_key FROM api_idempotency"),
        ["0b7c1f6e-key"]
    );
    assert_eq!(
        s.append_to_batch_once("api_2030-01-01", &[r(8, 1, 1.0)], &bad)
            .unwrap(),
        None
    );
    assert_eq!(s.buffer_ratings(None).unwrap().len(), 3);
}

/// A retrain's merge moves exactly the rows its read of the buffer named:
/// rows that arrived after the read stay buffered, and a bound that no longer
/// names the rows it was read with (their batch cleared meanwhile) writes
/// nothing at all, not even the run.
fn a_bounded_merge_moves_exactly_the_rows_read(db: TestDb) {
    let (movies, ratings, splits) = tiny();
    let mut s = db.store();
    s.load_dataset(&movies, &ratings, &splits, false, &Silent)
        .unwrap();
    let loaded = rows_of(&db, "ratings");
    s.append_to_batch("api_2030-01-01", &[r(7, 1, 4.0), r(7, 2, 3.5)])
        .unwrap();
    let read = s.buffer_snapshot().unwrap();
    assert_eq!(read.bound.rows, 2);
    s.append_to_batch("api_2030-01-02", &[r(8, 1, 2.0)])
        .unwrap();
    let merge = |bound| RunCommit {
        merge_buffer: Some(bound),
        ..RunCommit::default()
    };
    s.insert_model_run(&run(0.9), &blob(1), &merge(read.bound))
        .unwrap();
    assert_eq!(rows_of(&db, "ratings"), loaded + 2);
    let buffered = |s: &mut Box<dyn Store>| {
        s.buffer_ratings(None)
            .unwrap()
            .iter()
            .map(|r| (r.user_id, r.movie_id))
            .collect::<Vec<_>>()
    };
    assert_eq!(buffered(&mut s), [(8, 1)]);

    let stale = s.buffer_snapshot().unwrap();
    assert_eq!(stale.bound.rows, 1);
    s.clear_batch("api_2030-01-02").unwrap();
    s.append_to_batch("api_2030-01-03", &[r(9, 2, 5.0)])
        .unwrap();
    let runs = s.model_runs().unwrap().len();
    assert!(matches!(
        s.insert_model_run(&run(0.8), &blob(2), &merge(stale.bound)),
        Err(Error::Conflict(_))
    ));
    assert_eq!(s.model_runs().unwrap().len(), runs, "no run recorded");
    assert_eq!(rows_of(&db, "ratings"), loaded + 2);
    assert_eq!(buffered(&mut s), [(9, 2)]);
}

on_both_backends!(
    a_bounded_merge_moves_exactly_the_rows_read,
    changes_are_numbered_and_name_their_rows,
    idempotent_appends_store_once,
    ranking_runs_keep_null_rmse_and_queryable_ndcg,
    tuning_trials_round_trip,
    compare_and_set_promotion,
    leases_exclude_renew_expire_and_release,
    clearing_a_batch_is_scoped_audited_and_reversible,
    search_ranks_words_then_train_ratings,
    search_folds_diacritics_alike,
    search_treats_hostile_input_as_words,
    search_splits_titles_at_punctuation,
    search_follows_the_catalogue,
    registry_versions_champion_and_rollback,
    user_ratings_and_movie_stats,
    migrate_is_idempotent_and_versioned,
    roundtrip_of_movies_and_ratings,
    split_stats_match_hand_computation,
    loading_twice_refuses_then_replace_works,
    failed_write_rolls_back_everything,
    ml_latest_small_loads_with_exact_split,
    table_sizes_cover_every_table,
);
