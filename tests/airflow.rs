//! The Airflow DAG (`deploy/airflow/cinematch_dag.py`) against real Apache
//! Airflow, installed by `scripts/airflow.sh` into a virtualenv in
//! `target/` (`scripts/test.sh` does it; `CINEMATCH_TEST_AIRFLOW` names the
//! virtualenv). Without Airflow the tests fail, they do not skip.
//!
//! - A real `DagBag` loads the file with no import error and no warning;
//!   the tasks run in order, and every command is a real `cinematch`
//!   subcommand with real flags.
//! - `airflow dags test` runs one weekly cycle against a throwaway SQLite
//!   store (with its own Airflow home and SQLite metadata database). The
//!   commands as Airflow rendered them branch on exit codes, never on output
//!   text: a retried run of the week succeeds without ingesting twice, a
//!   missing batch file fails the task.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cinematch::store;
use cinematch::IngestionStatus;

/// The virtualenv with Airflow, checked to be complete.
fn airflow_venv() -> PathBuf {
    let venv = std::env::var_os("CINEMATCH_TEST_AIRFLOW")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/airflow-venv"));
    assert!(
        venv.join(".cinematch-airflow").is_file() && venv.join("bin/airflow").is_file(),
        "Apache Airflow is not installed in {}: `./scripts/test.sh` installs it \
         (or `source scripts/airflow.sh && airflow_install`); see its install log",
        venv.display()
    );
    venv
}

/// A command of the virtualenv with an environment of its own: Airflow's
/// home and metadata database in `home`, the DAG folder `dags`, no example
/// DAGs, no usage reports, and none of the developer's Airflow or CineMatch
/// settings.
fn airflow_cmd(program: &str, home: &Path, dags: &Path) -> Command {
    let mut c = Command::new(airflow_venv().join("bin").join(program));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("AIRFLOW") || k.starts_with("CINEMATCH_") || k.starts_with("MLFLOW_") {
            c.env_remove(&*k);
        }
    }
    c.env_remove("DATABASE_URL")
        .env_remove("NEON_CONNECTION_STRING")
        .env("AIRFLOW_HOME", home)
        .env("AIRFLOW__CORE__DAGS_FOLDER", dags)
        .env("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        .env(
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            format!("sqlite:///{}", home.join("airflow.db").display()),
        )
        .env("SCARF_ANALYTICS", "false")
        .env("DO_NOT_TRACK", "true");
    c
}

fn succeeded(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {}\n--- stdout:\n{}\n--- stderr:\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
}

/// The last 60 lines: Airflow logs a lot.
fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A temporary Airflow home and a DAG folder holding a copy of the DAG.
fn airflow_dirs(tmp: &Path) -> (PathBuf, PathBuf) {
    let (home, dags) = (tmp.join("airflow-home"), tmp.join("dags"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&dags).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/airflow/cinematch_dag.py"),
        dags.join("cinematch_dag.py"),
    )
    .unwrap();
    (home, dags)
}

/// The DAG as a real `DagBag` sees it, as JSON.
fn load_dag(home: &Path, dags: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get("cinematch_weekly")
out = {
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "warnings": {str(k): list(v) for k, v in bag.captured_warnings.items()},
    "dag_ids": sorted(bag.dag_ids),
}
if dag is not None:
    out.update({
        "dag": dag.dag_id,
        "schedule": str(dag.schedule),
        "max_active_runs": dag.max_active_runs,
        "catchup": dag.catchup,
        "order": [t.task_id for t in dag.topological_sort()],
        "downstream": {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks},
        "operators": sorted({type(t).__name__ for t in dag.tasks}),
        "retries": {t.task_id: t.retries for t in dag.tasks},
        "commands": {t.task_id: t.bash_command for t in dag.tasks},
    })
print("DAGBAG " + json.dumps(out))
"#;
    let out = airflow_cmd("python", home, dags)
        .arg("-c")
        .arg(script)
        .arg(dags)
        .output()
        .unwrap();
    succeeded("loading the DAG in a DagBag", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("DAGBAG "))
        .unwrap_or_else(|| panic!("no DagBag report in: {stdout}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn airflow_dagbag_loads_the_dag_with_tasks_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, dags) = airflow_dirs(tmp.path());
    let v = load_dag(&home, &dags);
    assert_eq!(v["import_errors"], serde_json::json!({}), "{v}");
    assert_eq!(
        v["warnings"],
        serde_json::json!({}),
        "deprecated imports or other warnings: {v}"
    );
    assert_eq!(v["dag_ids"], serde_json::json!(["cinematch_weekly"]));
    assert_eq!(v["schedule"], "0 9 * * MON");
    assert_eq!(v["max_active_runs"], 1, "cycles never overlap");
    assert_eq!(v["catchup"], false);
    assert_eq!(
        v["order"],
        serde_json::json!(["ingest", "drift_check", "retrain_if_drift", "vacuum"])
    );
    assert_eq!(
        v["downstream"],
        serde_json::json!({
            "ingest": ["drift_check"],
            "drift_check": ["retrain_if_drift"],
            "retrain_if_drift": ["vacuum"],
            "vacuum": [],
        })
    );
    assert_eq!(v["operators"], serde_json::json!(["BashOperator"]));
    for (task, n) in v["retries"].as_object().unwrap() {
        assert_eq!(n, 3, "{task}: Airflow retries a failed or busy step");
    }
    let commands = v["commands"].as_object().unwrap();
    assert_eq!(commands.len(), 4);
    // Every command names a real subcommand with real flags: ask the
    // binary for its help.
    for (task, cmd) in commands {
        let cmd = cmd.as_str().unwrap();
        assert!(!cmd.contains("grep"), "{task} matches output text: {cmd}");
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(words[0], "cinematch", "{task}");
        let sub: Vec<&str> = words[1..]
            .iter()
            .take_while(|w| !w.starts_with('-') && !w.contains('/') && !w.contains('{'))
            .copied()
            .collect();
        assert!(!sub.is_empty(), "{task}: no subcommand in {cmd}");
        let help = Command::new(env!("CARGO_BIN_EXE_cinematch"))
            .args(&sub)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{task}: `cinematch {}` is not a command",
            sub.join(" ")
        );
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            let flag = flag.split('=').next().unwrap();
            assert!(
                String::from_utf8_lossy(&help.stdout).contains(flag),
                "{task}: `cinematch {}` has no flag {flag}",
                sub.join(" ")
            );
        }
    }
}

fn cinematch(db: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_cinematch"))
        .args(["-q", "--db", db])
        .args(args)
        .env_remove("CINEMATCH_DB")
        .output()
        .unwrap();
    succeeded(&format!("cinematch {args:?}"), &out);
}

/// A CineMatch store with a champion, and an inbox holding the batch of the
/// week of 2025-12-15 (the DAG's start) as the DAG names it.
fn cinematch_world(tmp: &Path) -> (String, PathBuf) {
    let data = tmp.join("data");
    let inbox = tmp.join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let db = format!("sqlite://{}", tmp.join("cm.db").display());
    let data_s = data.to_str().unwrap();
    cinematch(
        "sqlite::memory:",
        &[
            "data",
            "synth",
            "--out",
            data_s,
            "--users",
            "150",
            "--movies",
            "100",
            "--ratings",
            "6000",
            "--weeks",
            "1",
            "--weekly-ratings",
            "600",
        ],
    );
    cinematch(&db, &["load", data_s]);
    cinematch(&db, &["train", "--algo", "baseline", "--no-ranking"]);
    std::fs::copy(
        data.join("batches/batch_w1.csv"),
        inbox.join("batch_20251215.csv"),
    )
    .unwrap();
    (db, inbox)
}

/// `PATH` with the `cinematch` under test first.
fn path_with_cinematch() -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cinematch")).parent().unwrap();
    format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// What Airflow's metadata database says: the state of each DAG run and
/// task instance, and each task's command as Airflow rendered it.
fn airflow_states(home: &Path, dags: &Path) -> serde_json::Value {
    let script = r#"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
runs = db.execute("SELECT run_id, state, logical_date FROM dag_run WHERE dag_id = 'cinematch_weekly'").fetchall()
tis = db.execute("SELECT run_id, task_id, state FROM task_instance WHERE dag_id = 'cinematch_weekly'").fetchall()
rendered = db.execute("SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = 'cinematch_weekly'").fetchall()
print(json.dumps({
    "runs": [{"logical_date": d[:10], "state": s} for (_, s, d) in runs],
    "tasks": {t: s for (_, t, s) in tis},
    "rendered": {t: json.loads(f)["bash_command"] for (t, f) in rendered},
}))
"#;
    let out = airflow_cmd("python", home, dags)
        .arg("-c")
        .arg(script)
        .arg(home.join("airflow.db"))
        .output()
        .unwrap();
    succeeded("reading Airflow's metadata database", &out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn airflow_dags_test_runs_one_weekly_cycle() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, dags) = airflow_dirs(tmp.path());
    let (db, inbox) = cinematch_world(tmp.path());
    let out = airflow_cmd("airflow", &home, &dags)
        .args(["db", "migrate"])
        .output()
        .unwrap();
    succeeded("airflow db migrate", &out);

    let out = airflow_cmd("airflow", &home, &dags)
        .args(["dags", "test", "cinematch_weekly", "2025-12-15"])
        .env("AIRFLOW_VAR_CINEMATCH_INBOX", &inbox)
        .env("CINEMATCH_DB", &db)
        .env("PATH", path_with_cinematch())
        .output()
        .unwrap();
    succeeded("airflow dags test", &out);
    let states = airflow_states(&home, &dags);
    assert_eq!(
        states["runs"],
        serde_json::json!([{"logical_date": "2025-12-15", "state": "success"}]),
        "{states}\n{}",
        tail(&out.stdout)
    );
    assert_eq!(
        states["tasks"],
        serde_json::json!({
            "ingest": "success",
            "drift_check": "success",
            "retrain_if_drift": "success",
            "vacuum": "success",
        }),
        "{}",
        tail(&out.stdout)
    );
    // The cycle happened in CineMatch: the week's batch is in, checked.
    let mut s = store::open(&db).unwrap();
    let audit = s.ingestions().unwrap();
    let batch = audit
        .iter()
        .find(|i| i.batch_id == "batch_20251215")
        .unwrap_or_else(|| panic!("no batch_20251215 in {audit:?}"));
    assert_eq!(batch.status, Some(IngestionStatus::Completed));
    assert_eq!(batch.record_count, Some(600));
    assert!(
        !s.drift_alerts(None).unwrap().is_empty(),
        "the drift check recorded its tests"
    );

    // The tasks branch on exit codes. Their commands as Airflow rendered
    // them, run as its BashOperator runs them (bash -c):
    let ingest = states["rendered"]["ingest"].as_str().unwrap().to_string();
    assert!(
        ingest.contains(&format!("{}/batch_20251215.csv", inbox.display())),
        "{ingest}"
    );
    let bash = |cmd: &str| {
        let out = Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .env("PATH", path_with_cinematch())
            .env("CINEMATCH_DB", &db)
            .env_remove("CINEMATCH_LEASE_SECS")
            .env_remove("MLFLOW_TRACKING_URI")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), err)
    };
    // A retried run of the week: the batch is already in (exit 3), the task
    // still succeeds, and nothing is ingested twice.
    let (code, err) = bash(&ingest);
    assert_eq!(code, Some(0), "retried ingest: {err}");
    assert!(err.contains("already ingested"), "{err}");
    assert_eq!(s.buffer_ratings(Some("batch_20251215")).unwrap().len(), 600);
    // A real failure still fails the task: next week's file is missing.
    let (code, err) = bash(&ingest.replace("20251215", "20251222"));
    assert_eq!(code, Some(1), "a missing batch file: {err}");
    assert!(err.contains("batch_20251222.csv"), "{err}");
}
