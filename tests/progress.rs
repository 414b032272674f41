//! What a run prints when stderr is a pipe (CI, Slurm logs, `2>&1 | tee`): plain lines, a
//! progress line per running task at the configured interval, the estimate once the cache
//! has finished tasks of the same kinds.

mod support;

use support::models::tiny_bert_experiment;
use support::orchestrate;

const TRAINING: &str = "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nepochs = 3\nbatch_size = 2\n";

fn run_piped(dir: &std::path::Path, args: &[&str]) -> String {
    let output = orchestrate(dir).args(["run", "exp.toml"]).args(args).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_piped_run_prints_periodic_plain_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), tiny_bert_experiment("", TRAINING)).unwrap();
    let stderr = run_piped(dir.path(), &["--progress-interval", "0"]);
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "no control characters in a log: {stderr:?}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(" progress  finetune "))
        .collect();
    // 64 examples, batch 2, 3 epochs: 96 steps, then the evaluations; interval 0 prints each.
    assert!(lines.len() >= 96, "{} progress lines:\n{stderr}", lines.len());
    let step = lines
        .iter()
        .find(|l| l.contains("/96 ("))
        .expect("a training step line");
    for part in ["epoch ", "loss ", "samples/s", "elapsed", "eta ", "tasks done"] {
        assert!(step.contains(part), "{part:?} in {step:?}");
    }

    // The default interval (30 s) prints none in a run this short, and a rerun with one
    // changed parameter starts with an estimate from the tasks this cache has finished.
    let stderr = run_piped(dir.path(), &["--set", "tasks.finetune.lr=1e-4"]);
    assert!(!stderr.contains(" progress  "), "{stderr}");
    let first = stderr.lines().next().unwrap();
    assert!(first.contains("1 to run") && first.contains(", estimated "), "{first}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("  running  finetune") && l.contains("(estimated ")),
        "{stderr}"
    );
}

#[test]
fn plan_shows_no_estimate_on_an_empty_cache_and_one_per_task_once_it_has_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), tiny_bert_experiment("", TRAINING)).unwrap();
    let plan = |extra: &[&str]| -> serde_json::Value {
        let output = orchestrate(dir.path())
            .args(["plan", "exp.toml", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success());
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let empty = plan(&[]);
    for task in empty["tasks"].as_array().unwrap() {
        assert!(task["estimated_s"].is_null(), "{task}");
    }
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-q"])
        .assert()
        .success();
    let rerun = plan(&["--set", "tasks.finetune.epochs=6"]);
    let tasks = rerun["tasks"].as_array().unwrap();
    let finetune = tasks.iter().find(|t| t["task"] == "finetune").unwrap();
    let estimate = finetune["estimated_s"]
        .as_f64()
        .expect("an estimate from the finished run");
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&orchestrate(dir.path()).args(["ls", "--json"]).output().unwrap().stdout).unwrap();
    let actual = listed.iter().find(|a| a["task"] == "finetune").unwrap()["duration_s"]
        .as_f64()
        .unwrap();
    // One finished run at 3 epochs: the model is time ∝ work, so 6 epochs is twice its time.
    assert!((estimate / actual - 2.0).abs() < 1e-6, "{estimate} vs {actual}");
    assert!(tasks
        .iter()
        .filter(|t| t["cached"] == true)
        .all(|t| t.get("estimated_s").is_none()));
}
