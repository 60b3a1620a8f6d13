//! MLflow tracking against a real `mlflow server` on loopback (started by
//! `scripts/test.sh`, reached through `MLFLOW_TEST_URI`). What CineMatch sent
//! is read back independently, with raw HTTP requests to MLflow's REST API,
//! and compared with the `model_metrics` row the training wrote.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use cinematch::models::{Algo, Hyperparams};
use cinematch::pipeline::retrain::{retrain, RetrainOptions, RetrainOutcome};
use cinematch::progress::Silent;
use cinematch::registry::{self, TrainOptions};
use cinematch::store::{ModelRun, Store};
use cinematch::tracking::MlflowConfig;
use common::TestDb;

/// The server `scripts/test.sh` starts. Tests refuse to run without it
/// rather than silently skipping MLflow.
fn mlflow_uri() -> String {
    std::env::var("MLFLOW_TEST_URI")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| {
            panic!(
                "MLFLOW_TEST_URI is not set: run the tests with ./scripts/test.sh, which starts \
                 a throwaway MLflow tracking server, or point MLFLOW_TEST_URI at one \
                 (e.g. `mlflow server --host 127.0.0.1 --port 5000` -> http://127.0.0.1:5000)"
            )
        })
        .trim_end_matches('/')
        .to_string()
}

// ---- an independent MLflow REST client: raw HTTP/1.1 over a TcpStream ----

fn http(method: &str, path_and_query: &str, body: Option<&Value>) -> (u16, Value) {
    let uri = mlflow_uri();
    let hostport = uri
        .strip_prefix("http://")
        .expect("MLFLOW_TEST_URI must be http://host:port");
    let hostport = hostport.split('/').next().unwrap();
    let mut s = TcpStream::connect(hostport).expect("connect to the MLflow test server");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\
         Accept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut payload = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        payload = dechunk(&payload);
    }
    let text = String::from_utf8_lossy(&payload);
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text.to_string()));
    (status, v)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_str = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

fn api_get(path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let mut p = format!("/api/2.0/mlflow/{path}");
    for (i, (k, v)) in query.iter().enumerate() {
        p.push(if i == 0 { '?' } else { '&' });
        p.push_str(&format!(
            "{k}={}",
            url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
        ));
    }
    http("GET", &p, None)
}

fn api_post(path: &str, body: Value) -> (u16, Value) {
    http("POST", &format!("/api/2.0/mlflow/{path}"), Some(&body))
}

/// The experiment's id, or `None` when it does not exist.
fn experiment_id(name: &str) -> Option<String> {
    let (status, v) = api_get("experiments/get-by-name", &[("experiment_name", name)]);
    match status {
        200 => Some(
            v["experiment"]["experiment_id"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        404 => None,
        _ => panic!("experiments/get-by-name: HTTP {status} {v}"),
    }
}

/// Runs of an experiment with the given model version tag.
fn runs_tagged(experiment: &str, model_version: &str) -> Vec<Value> {
    let (status, v) = api_post(
        "runs/search",
        json!({
            "experiment_ids": [experiment],
            "filter": format!("tags.`cinematch.model_version` = '{model_version}'"),
        }),
    );
    assert_eq!(status, 200, "runs/search: {v}");
    v["runs"].as_array().cloned().unwrap_or_default()
}

fn all_runs(experiment: &str) -> Vec<Value> {
    let (status, v) = api_post(
        "runs/search",
        json!({ "experiment_ids": [experiment], "max_results": 1000 }),
    );
    assert_eq!(status, 200, "runs/search: {v}");
    v["runs"].as_array().cloned().unwrap_or_default()
}

fn get_run(run_id: &str) -> Value {
    let (status, v) = api_get("runs/get", &[("run_id", run_id)]);
    assert_eq!(status, 200, "runs/get {run_id}: {v}");
    v["run"].clone()
}

fn kv(run: &Value, what: &str) -> BTreeMap<String, String> {
    run["data"][what]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["key"].as_str().unwrap().to_string(),
                        p["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn metrics(run: &Value) -> BTreeMap<String, f64> {
    run["data"]["metrics"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["key"].as_str().unwrap().to_string(),
                        m["value"].as_f64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

// ---- data and checks ----

fn small_svd() -> Hyperparams {
    registry::params_with_overrides(
        Algo::Svd,
        &[
            ("factors".into(), "8".into()),
            ("epochs".into(), "5".into()),
        ],
    )
    .unwrap()
}

/// `run_<32 hex>_v<N>` -> the MLflow run id.
fn mlflow_run_id_of(model_version: &str) -> String {
    let rest = model_version
        .strip_prefix("run_")
        .unwrap_or_else(|| panic!("{model_version} does not start with run_"));
    let (id, n) = rest
        .rsplit_once("_v")
        .unwrap_or_else(|| panic!("{model_version} has no _v<N>"));
    assert!(n.parse::<u64>().is_ok(), "{model_version}");
    assert!(
        id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{model_version} does not carry an MLflow run id (32 hex digits)"
    );
    assert!(
        model_version.len() <= 50,
        "{model_version} exceeds VARCHAR(50)"
    );
    id.to_string()
}

/// The untracked format: `run_<12 hex>_v<N>`.
fn assert_untracked_version(model_version: &str) {
    let rest = model_version.strip_prefix("run_").unwrap();
    let (id, n) = rest.rsplit_once("_v").unwrap();
    assert!(
        id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit()) && n.parse::<u64>().is_ok(),
        "{model_version} is not the untracked run_<12 hex>_v<N> format"
    );
}

fn row(store: &mut dyn Store, model_version: &str) -> ModelRun {
    store
        .model_runs()
        .unwrap()
        .into_iter()
        .find(|r| r.model_version == model_version)
        .unwrap_or_else(|| panic!("no model_metrics row {model_version}"))
}

fn notes(r: &ModelRun) -> Value {
    serde_json::from_str(r.notes.as_deref().unwrap()).unwrap()
}

/// The MLflow run of `row` matches it: experiment `cinematch`, finished,
/// named and tagged with the model version, params = the notes' params and
/// seed, metrics = the row's columns. Returns the run.
fn assert_run_matches_row(row: &ModelRun, kind: &str) -> Value {
    let run_id = mlflow_run_id_of(&row.model_version);
    let run = get_run(&run_id);
    let exp = experiment_id("cinematch").expect("experiment cinematch exists");
    assert_eq!(run["info"]["run_id"], json!(run_id));
    assert_eq!(run["info"]["experiment_id"], json!(exp), "{run}");
    assert_eq!(run["info"]["status"], json!("FINISHED"), "{run}");
    assert_eq!(run["info"]["run_name"], json!(row.model_version), "{run}");

    let tags = kv(&run, "tags");
    assert_eq!(
        tags.get("cinematch.model_version"),
        Some(&row.model_version),
        "{tags:?}"
    );
    assert_eq!(tags.get("cinematch.kind").map(String::as_str), Some(kind));

    let n = notes(row);
    assert_eq!(n["mlflow_run_id"], json!(run_id));
    assert_eq!(n["mlflow_experiment_id"], json!(exp));
    let params = kv(&run, "params");
    let mut expected: BTreeMap<String, String> = n["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    expected.insert("seed".into(), n["seed"].to_string());
    assert_eq!(params, expected);
    assert_eq!(params["algo"], n["algorithm"].as_str().unwrap());

    // One meaning per metric name: each logged metric's label as a tag.
    assert!(
        tags["cinematch.metric.precision_at_10"].contains("rated-items"),
        "{tags:?}"
    );
    assert!(
        tags["cinematch.metric.ndcg_at_10"].contains("the list a user sees"),
        "{tags:?}"
    );
    let m = metrics(&run);
    assert_eq!(
        m.get("catalogue_precision_at_10"),
        m.get("rank_precision_at_10"),
        "{m:?}"
    );
    assert_eq!(m.get("rmse").copied(), row.rmse, "{m:?}");
    assert_eq!(m.get("mae").copied(), row.mae, "{m:?}");
    assert_eq!(
        m.get("precision_at_10").copied(),
        row.precision_at_10,
        "{m:?}"
    );
    assert_eq!(
        m.get("data_size").copied(),
        row.data_size.map(|d| d as f64),
        "{m:?}"
    );
    for key in [
        "ndcg_at_10",
        "recall_at_10",
        "coverage",
        "train_seconds",
        "eval_seconds",
    ] {
        assert!(m.contains_key(key), "metric {key} missing: {m:?}");
    }
    assert_eq!(
        m["ndcg_at_10"],
        n["metrics"]["ndcg_at_10"].as_f64().unwrap()
    );

    // Found by its tag, exactly once.
    let found = runs_tagged(&exp, &row.model_version);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["info"]["run_id"], json!(run_id));
    run
}

fn tracked() -> Option<MlflowConfig> {
    Some(MlflowConfig::new(mlflow_uri()))
}

/// Tracking with a registered model of its own, so tests running at once
/// do not move each other's aliases.
fn tracked_as(model: &str) -> Option<MlflowConfig> {
    let mut c = MlflowConfig::new(mlflow_uri());
    c.registered_model = model.to_string();
    Some(c)
}

/// The MLflow run id the alias `champion` of `model` points at, as MLflow's
/// registry answers it (`None` when the alias does not exist).
fn champion_alias_run(model: &str) -> Option<String> {
    let (status, v) = api_get(
        "registered-models/alias",
        &[("name", model), ("alias", "champion")],
    );
    if status != 200 {
        return None;
    }
    Some(v["model_version"]["run_id"].as_str()?.to_string())
}

/// Warnings emitted on this thread while `f` runs.
fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf(Arc::new(Mutex::new(Vec::new())));
    let w = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- the tests ----

fn train_creates_a_matching_mlflow_run(db: TestDb) {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let mut opts = TrainOptions::new(small_svd());
    opts.mlflow = tracked();
    let out = registry::train(s.as_mut(), &opts, &Silent).unwrap();
    assert!(out.is_champion);
    let r = row(s.as_mut(), &out.run.model_version);
    let run = assert_run_matches_row(&r, "train");
    let tags = kv(&run, "tags");
    assert_eq!(tags["cinematch.champion"], "true");
    assert_eq!(tags["cinematch.algorithm"], "svd");
    assert_eq!(kv(&run, "params")["factors"], "8");

    // A second run: another MLflow run, another version, both unique.
    let out2 = registry::train(s.as_mut(), &opts, &Silent).unwrap();
    assert_ne!(
        mlflow_run_id_of(&out2.run.model_version),
        mlflow_run_id_of(&out.run.model_version)
    );
    let r2 = row(s.as_mut(), &out2.run.model_version);
    let run2 = assert_run_matches_row(&r2, "train");
    assert_eq!(kv(&run2, "tags")["cinematch.champion"], "false");
}

fn retrain_creates_a_matching_mlflow_run(db: TestDb) {
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    // The champion, untracked.
    let mut opts = TrainOptions::new(small_svd());
    opts.mlflow = None;
    let first = registry::train(s.as_mut(), &opts, &Silent).unwrap();
    assert_untracked_version(&first.run.model_version);
    // New ratings in the buffer.
    let tmp = tempfile::tempdir().unwrap();
    let batch = tmp.path().join("w1.csv");
    let mut csv = String::from("userId,movieId,rating,timestamp\n");
    for u in 41..=45 {
        for m in 1..=10 {
            csv.push_str(&format!(
                "{u},{m},{},{}\n",
                if m % 2 == 0 { 4.5 } else { 2.0 },
                1_700_000_000 + u * 100 + m
            ));
        }
    }
    std::fs::write(&batch, csv).unwrap();
    cinematch::pipeline::ingest::ingest_file(s.as_mut(), &batch, "batch_w1", Default::default())
        .unwrap();

    let ropts = RetrainOptions {
        tolerance: 1.0,
        mlflow: tracked(),
        ..RetrainOptions::default()
    };
    let (run, promoted, decision, merged) = match retrain(s.as_mut(), &ropts, &Silent).unwrap() {
        RetrainOutcome::Retrained {
            run,
            promoted,
            decision,
            merged,
            ..
        } => (run, promoted, decision, merged),
        other => panic!("retrain skipped: {other:?}"),
    };
    assert!(promoted);
    assert_eq!(merged, 50);
    let r = row(s.as_mut(), &run.model_version);
    let mrun = assert_run_matches_row(&r, "retrain");
    let tags = kv(&mrun, "tags");
    assert_eq!(tags["cinematch.trigger"], "unconditional");
    assert_eq!(tags["cinematch.champion_before"], first.run.model_version);
    assert_eq!(tags["cinematch.promoted"], "true");
    assert_eq!(tags["cinematch.champion"], "true");
    assert_eq!(tags["cinematch.decision"], decision);
    assert_eq!(tags["cinematch.merged_ratings"], "50");
    let m = metrics(&mrun);
    assert_eq!(m["buffer_ratings"], 50.0);
    // Retrained with the champion's hyperparameters.
    assert_eq!(kv(&mrun, "params")["factors"], "8");
}

/// A promotion also points the alias `champion` of the MLflow registered
/// model at the promoted run: the first model, then a retrain that is
/// promoted; a run that is not promoted leaves the alias alone.
fn promotions_move_the_mlflow_champion_alias(db: TestDb) {
    let model = unique("cinematch-alias");
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let mut opts = TrainOptions::new(small_svd());
    opts.mlflow = tracked_as(&model);
    let first = registry::train(s.as_mut(), &opts, &Silent).unwrap();
    assert!(first.is_champion);
    let first_run = mlflow_run_id_of(&first.run.model_version);
    assert_eq!(
        champion_alias_run(&model).as_deref(),
        Some(first_run.as_str())
    );
    // The same configuration again is not better: no promotion, no move.
    let second = registry::train(s.as_mut(), &opts, &Silent).unwrap();
    assert!(!second.is_champion);
    assert_eq!(
        champion_alias_run(&model).as_deref(),
        Some(first_run.as_str())
    );
    // A retrain (tolerance 1: promoted) moves it.
    let ropts = RetrainOptions {
        tolerance: 1.0,
        mlflow: tracked_as(&model),
        ..RetrainOptions::default()
    };
    let run = match retrain(s.as_mut(), &ropts, &Silent).unwrap() {
        RetrainOutcome::Retrained { run, promoted, .. } => {
            assert!(promoted);
            run
        }
        other => panic!("retrain skipped: {other:?}"),
    };
    assert_eq!(
        champion_alias_run(&model),
        Some(mlflow_run_id_of(&run.model_version))
    );
    assert_eq!(s.champion().unwrap(), Some(run.model_version));
}

on_both_backends!(
    train_creates_a_matching_mlflow_run,
    retrain_creates_a_matching_mlflow_run,
    promotions_move_the_mlflow_champion_alias
);

#[test]
fn an_unreachable_server_is_a_warning_and_training_succeeds() {
    let db = common::SqliteDb::new();
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let port = closed_port();
    let mut opts = TrainOptions::new(small_svd());
    // Credentials in the URI must not reach the log.
    opts.mlflow = Some(MlflowConfig::new(format!(
        "http://alice:hunter2@127.0.0.1:{port}/?token=t0psecret"
    )));
    let (out, log) = capture_warnings(|| registry::train(s.as_mut(), &opts, &Silent));
    let out = out.expect("training succeeds without MLflow");
    assert_untracked_version(&out.run.model_version);
    assert!(
        log.contains("WARN")
            && log.contains("MLflow")
            && log.contains(&format!("127.0.0.1:{port}")),
        "no clear warning: {log}"
    );
    assert!(log.contains("training continues"), "{log}");
    assert!(
        !log.contains("hunter2") && !log.contains("t0psecret"),
        "secret in the log: {log}"
    );
    let n = notes(&row(s.as_mut(), &out.run.model_version));
    assert!(n.get("mlflow_run_id").is_none(), "{n}");

    // Retrain likewise.
    let ropts = RetrainOptions {
        mlflow: opts.mlflow.clone(),
        ..RetrainOptions::default()
    };
    let (out, log) = capture_warnings(|| retrain(s.as_mut(), &ropts, &Silent));
    let RetrainOutcome::Retrained { run, .. } = out.expect("retrain succeeds without MLflow")
    else {
        panic!("skipped")
    };
    assert_untracked_version(&run.model_version);
    assert!(log.contains("MLflow"), "{log}");
}

#[test]
fn an_mlflow_error_answer_or_a_tls_failure_is_a_warning_too() {
    let db = common::SqliteDb::new();
    let mut s = db.store();
    common::seed_low_rank(s.as_mut());
    let uri = mlflow_uri();
    for (bad, expect) in [
        // Reachable, but not MLflow's API under this prefix: an HTTP error.
        (format!("{uri}/no/such/prefix"), "HTTP 404"),
        // HTTPS against the plain-HTTP server: the TLS handshake fails.
        (uri.replacen("http://", "https://", 1), "unreachable"),
        // Not a tracking server URI CineMatch can use.
        ("file:///tmp/mlruns".to_string(), "http"),
    ] {
        let mut opts = TrainOptions::new(Hyperparams::default_for(Algo::Baseline));
        opts.mlflow = Some(MlflowConfig::new(bad.clone()));
        let (out, log) = capture_warnings(|| registry::train(s.as_mut(), &opts, &Silent));
        let out = out.unwrap_or_else(|e| panic!("{bad}: training failed: {e}"));
        assert_untracked_version(&out.run.model_version);
        assert!(
            log.contains("MLflow") && log.contains(expect),
            "{bad}: {log}"
        );
    }
}

#[test]
fn a_failed_training_ends_its_mlflow_run_as_failed() {
    let db = common::SqliteDb::new();
    let mut s = db.store();
    // No ratings loaded: training fails after the MLflow run was created.
    let mut cfg = MlflowConfig::new(mlflow_uri());
    cfg.experiment = unique("cinematch-failed");
    let mut opts = TrainOptions::new(Hyperparams::default_for(Algo::Baseline));
    opts.mlflow = Some(cfg.clone());
    let err = registry::train(s.as_mut(), &opts, &Silent)
        .err()
        .expect("training fails");
    assert!(err.to_string().contains("no training ratings"), "{err}");
    let exp = experiment_id(&cfg.experiment).expect("the experiment was created");
    let runs = all_runs(&exp);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["info"]["status"], json!("FAILED"), "{:?}", runs[0]);
    let tags = kv(&runs[0], "tags");
    assert_eq!(tags["cinematch.kind"], "train");
    assert!(!tags.contains_key("cinematch.model_version"), "{tags:?}");
    assert!(s.model_runs().unwrap().is_empty());
}

// ---- the CLI: the environment variable turns tracking on, and only it ----

fn cli(db: &str, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cinematch"));
    c.arg("--db").arg(db).args(args);
    for k in [
        "CINEMATCH_DB",
        "DATABASE_URL",
        "NEON_CONNECTION_STRING",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "MLFLOW_TRACKING_TOKEN",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run cinematch");
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "cinematch {args:?} failed:\n{so}\n{se}"
    );
    (so, se)
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[test]
fn cli_train_and_retrain_track_when_mlflow_tracking_uri_is_set() {
    let db = common::SqliteDb::new();
    common::seed_low_rank(db.store().as_mut());
    let exp = unique("cinematch-cli");
    let env = [
        ("MLFLOW_TRACKING_URI", mlflow_uri()),
        ("MLFLOW_EXPERIMENT_NAME", exp.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli(&db.url, &["train", "--algo", "baseline"], &env);
    // Nothing new since train: --force retrains anyway (else nothing is recorded).
    cli(&db.url, &["retrain", "--force"], &env);

    let exp_id = experiment_id(&exp).expect("the experiment was created");
    let runs = db.store().model_runs().unwrap();
    assert_eq!(runs.len(), 2);
    for (r, kind) in runs.iter().zip(["train", "retrain"]) {
        let id = mlflow_run_id_of(&r.model_version);
        let run = get_run(&id);
        assert_eq!(run["info"]["experiment_id"], json!(exp_id));
        assert_eq!(kv(&run, "tags")["cinematch.model_version"], r.model_version);
        assert_eq!(kv(&run, "tags")["cinematch.kind"], kind);
        assert_eq!(metrics(&run)["rmse"], r.rmse.unwrap());
    }
    assert_eq!(all_runs(&exp_id).len(), 2);
}

#[test]
fn cli_without_mlflow_tracking_uri_changes_nothing() {
    let db = common::SqliteDb::new();
    common::seed_low_rank(db.store().as_mut());
    // Everything MLflow reads, except the URI that turns it on.
    let exp = unique("cinematch-off");
    let env = [
        ("MLFLOW_EXPERIMENT_NAME", exp.as_str()),
        ("MLFLOW_TRACKING_TOKEN", "unused"),
    ];
    let (_, stderr) = cli(&db.url, &["train", "--algo", "baseline"], &env);
    // Nothing new since train: --force retrains anyway (else nothing is recorded).
    cli(&db.url, &["retrain", "--force"], &env);
    assert!(!stderr.contains("MLflow"), "{stderr}");
    let runs = db.store().model_runs().unwrap();
    assert_eq!(runs.len(), 2, "train and retrain each recorded a run");
    for r in runs {
        assert_untracked_version(&r.model_version);
        assert!(notes(&r).get("mlflow_run_id").is_none());
    }
    assert_eq!(
        experiment_id(&exp),
        None,
        "an experiment was created without the URI"
    );
    // An empty variable is unset, too.
    let (_, stderr) = cli(
        &db.url,
        &["train", "--algo", "baseline"],
        &[
            ("MLFLOW_TRACKING_URI", ""),
            ("MLFLOW_EXPERIMENT_NAME", exp.as_str()),
        ],
    );
    assert!(!stderr.contains("MLflow"), "{stderr}");
    assert_eq!(experiment_id(&exp), None);
    let runs = db.store().model_runs().unwrap();
    assert_eq!(runs.len(), 3);
    assert_untracked_version(&runs[2].model_version);
}
