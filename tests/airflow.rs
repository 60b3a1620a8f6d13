//! The Airflow DAG imports (against a stand-in `airflow` package, as real
//! Airflow is not installed in CI), defines the cycle's tasks in order, and
//! every command it runs is a real `cinematch` subcommand. Its commands,
//! rendered as Airflow would, run in bash against a real SQLite store: they
//! branch on exit codes (a retried ingest succeeds), never on output text.

use std::process::Command;

#[test]
fn airflow_dag_imports_with_tasks_in_order() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("cinematch_dag", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
dag = mod.dag
order, task = [], dag.tasks["ingest"]
while task is not None:
    order.append(task.task_id)
    task = task.downstream[0] if task.downstream else None
print(json.dumps({"dag": dag.dag_id, "schedule": dag.kwargs.get("schedule"),
                  "order": order,
                  "commands": {t.task_id: t.bash_command for t in dag.tasks.values()}}))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(format!("{root}/deploy/airflow/cinematch_dag.py"))
        .env("PYTHONPATH", format!("{root}/tests/airflow_stub"))
        .output()
        .expect("python3 must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (task, cmd) in v["commands"].as_object().unwrap() {
        assert!(
            !cmd.as_str().unwrap().contains("grep"),
            "{task} matches output text: {cmd}"
        );
    }
    run_rendered_commands(&v["commands"]);
    assert_eq!(v["dag"], "cinematch_weekly");
    assert_eq!(v["schedule"], "0 9 * * MON");
    assert_eq!(
        v["order"],
        serde_json::json!(["ingest", "drift_check", "retrain_if_drift", "vacuum"])
    );
    // Every command names a real subcommand: ask the binary for its help.
    for (task, cmd) in v["commands"].as_object().unwrap() {
        let words: Vec<&str> = cmd.as_str().unwrap().split_whitespace().collect();
        assert_eq!(words[0], "cinematch", "{task}");
        let sub: Vec<&str> = words[1..]
            .iter()
            .take_while(|w| !w.starts_with('-') && !w.contains('/') && !w.contains('{'))
            .copied()
            .collect();
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
    assert!(
        out.status.success(),
        "cinematch {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs each task's command as Airflow's BashOperator would (bash, the
/// template rendered for the run of 2025-01-06), with `cinematch` on PATH.
fn run_rendered_commands(commands: &serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let db = format!("sqlite://{}", tmp.path().join("cm.db").display());
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
        inbox.join("batch_20250106.csv"),
    )
    .unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_cinematch"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let render = |task: &str, day: &str| {
        commands[task]
            .as_str()
            .unwrap()
            .replace(
                "{{ var.value.get('cinematch_inbox', '/data/cinematch/inbox') }}",
                inbox.to_str().unwrap(),
            )
            .replace("{{ ds_nodash }}", day)
    };
    let bash_on = |task: &str, day: &str| {
        let cmd = render(task, day);
        assert!(!cmd.contains("{{"), "{task}: unrendered template in {cmd}");
        let out = Command::new("bash")
            .arg("-c")
            .arg(&cmd)
            .env("PATH", &path)
            .env("CINEMATCH_DB", &db)
            .env_remove("CINEMATCH_LEASE_SECS")
            .env_remove("MLFLOW_TRACKING_URI")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let bash = |task: &str| bash_on(task, "20250106");
    for task in ["ingest", "drift_check", "retrain_if_drift", "vacuum"] {
        let (code, err) = bash(task);
        assert_eq!(code, Some(0), "{task}: {err}");
    }
    // A retried run: the batch is already in, the task still succeeds...
    let (code, err) = bash("ingest");
    assert_eq!(code, Some(0), "retried ingest: {err}");
    assert!(err.contains("already ingested"), "{err}");
    // ...but a real failure still fails the task: next week's file is missing.
    let (code, err) = bash_on("ingest", "20250113");
    assert_eq!(code, Some(1), "a missing batch file: {err}");
    assert!(err.contains("batch_20250113.csv"), "{err}");
}
