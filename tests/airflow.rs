//! The Airflow DAG imports (against a stand-in `airflow` package, as real
//! Airflow is not installed in CI), defines the cycle's tasks in order, and
//! every command it runs is a real `cinematch` subcommand.

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
