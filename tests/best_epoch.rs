//! Trainer's best-model selection and early stopping: the run ends after `patience` epochs
//! without an improvement and publishes the best epoch's weights — the very weights a
//! separate training of the same configuration holds after that epoch — and a run killed
//! in between resumes to the same result.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{json_lines, orchestrate_process};
use tch::Tensor;

const ABORT_AFTER_EPOCH: &str = "ORCHESTRATE_TEST_ABORT_AFTER_EPOCH";
const PATIENCE: usize = 2;

/// A training that overshoots (lr 2e-2): its accuracy peaks early, so the best epoch is not
/// the last one.
fn training(selection: bool) -> String {
    let mut task =
        "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 2e-2\nepochs = 8\nlogging_steps = 4\n"
            .to_string();
    if selection {
        task += &format!(
            "metric_for_best_model = \"accuracy\"\nload_best_model_at_end = true\nearly_stopping_patience = {PATIENCE}\n"
        );
    }
    support::models::tiny_bert_experiment("", &task)
}

fn run(dir: &Path, cache: &str, env: &[(&str, &str)]) -> (bool, Vec<Value>) {
    let output = orchestrate_process(dir)
        .args(["--json", "run", "exp.toml", "--cache-dir", cache])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (output.status.success(), json_lines(&output.stdout))
}

fn artifact(dir: &Path, cache: &str, task: &str) -> PathBuf {
    let store = orchestrate::store::Store::open(dir.join(cache)).unwrap();
    let (key, _) = store
        .list()
        .unwrap()
        .into_iter()
        .find(|(_, m)| m.as_ref().unwrap().task == task)
        .unwrap();
    store.artifact_dir(&key)
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

/// The trainable parameters a resume state holds (`param/<name>`).
fn state_params(state_dir: &Path) -> HashMap<String, Tensor> {
    tensors(&state_dir.join("state.safetensors"))
        .into_iter()
        .filter_map(|(name, t)| name.strip_prefix("param/").map(|n| (n.to_string(), t)))
        .collect()
}

/// The resume state a run aborted after `epoch` left.
fn state_after(dir: &Path, cache: &str, epoch: usize) -> PathBuf {
    let resume = dir.join(cache).join("resume");
    let key_dir = std::fs::read_dir(&resume).unwrap().next().unwrap().unwrap().path();
    key_dir.join(format!("epoch-{epoch:04}"))
}

/// Every tensor of `params` equals the checkpoint's of the same name (there must be some).
fn same_weights(checkpoint: &HashMap<String, Tensor>, params: &HashMap<String, Tensor>) -> bool {
    let shared: Vec<&String> = params.keys().filter(|k| checkpoint.contains_key(*k)).collect();
    assert!(
        shared.len() > 10,
        "the state and the checkpoint name their tensors alike"
    );
    shared.iter().all(|name| checkpoint[*name].equal(&params[*name]))
}

#[test]
fn early_stopping_publishes_the_best_epoch_as_a_separate_training_has_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), training(true)).unwrap();
    let (ok, _) = run(dir.path(), "cache", &[]);
    assert!(ok);
    let published = artifact(dir.path(), "cache", "finetune");
    let metrics: Value = serde_json::from_slice(&std::fs::read(published.join("metrics.json")).unwrap()).unwrap();
    let epochs = metrics["epochs"].as_array().unwrap();
    let accuracy: Vec<f64> = epochs.iter().map(|e| e["eval_accuracy"].as_f64().unwrap()).collect();
    // Trainer's rule: the first epoch that no later one beats.
    let best = 1 + (0..accuracy.len()).fold(0, |b, i| if accuracy[i] > accuracy[b] { i } else { b });
    let stopped = accuracy.len();
    assert_eq!(metrics["best_epoch"], best, "{accuracy:?}");
    assert!(stopped < 8, "stopped early: {accuracy:?}");
    assert_eq!(metrics["stopped_after_epoch"], stopped);
    assert_eq!(
        stopped - best,
        PATIENCE,
        "{PATIENCE} epochs without a better accuracy: {accuracy:?}"
    );
    assert!(
        best < stopped,
        "a best epoch before the last makes this test mean something"
    );
    assert_eq!(
        metrics["accuracy"].as_f64().unwrap(),
        accuracy[best - 1],
        "the metrics are the best epoch's"
    );
    let report = std::fs::read_to_string(dir.path().join("reports/exp.md")).unwrap();
    let header = report.lines().find(|l| l.starts_with("| task")).unwrap();
    let row = report.lines().find(|l| l.starts_with("| finetune")).unwrap();
    let column = header
        .split('|')
        .position(|c| c.trim() == "best epoch")
        .expect("a best-epoch column");
    assert_eq!(row.split('|').nth(column).unwrap().trim(), best.to_string(), "{report}");

    // The same configuration without selection, trained separately and stopped after the
    // best epoch and after the last one.
    std::fs::write(dir.path().join("exp.toml"), training(false)).unwrap();
    let checkpoint = tensors(&published.join("checkpoint/model.safetensors"));
    for (epoch, cache, equal) in [(best, "at-best", true), (stopped, "at-stop", false)] {
        let epoch_text = epoch.to_string();
        let (ok, _) = run(dir.path(), cache, &[(ABORT_AFTER_EPOCH, epoch_text.as_str())]);
        assert!(!ok, "aborted after epoch {epoch}");
        let params = state_params(&state_after(dir.path(), cache, epoch));
        assert_eq!(same_weights(&checkpoint, &params), equal, "epoch {epoch}");
    }

    // transformers' TrainerState file, with the same numbers.
    let state: Value = serde_json::from_slice(&std::fs::read(published.join("trainer_state.json")).unwrap()).unwrap();
    let steps_per_epoch = 8; // 64 examples, batch 8
    assert_eq!(state["best_metric"].as_f64().unwrap(), accuracy[best - 1]);
    assert_eq!(state["best_global_step"], best * steps_per_epoch);
    assert_eq!(
        state["best_model_checkpoint"],
        format!("checkpoint-{}", best * steps_per_epoch)
    );
    assert_eq!(state["global_step"], stopped * steps_per_epoch);
    assert_eq!(state["max_steps"], 8 * steps_per_epoch);
    let history = state["log_history"].as_array().unwrap();
    let evals: Vec<f64> = history.iter().filter_map(|e| e["eval_accuracy"].as_f64()).collect();
    assert_eq!(evals, accuracy);
    let losses = history.iter().filter(|e| e.get("loss").is_some()).count();
    assert_eq!(losses, stopped * steps_per_epoch / 4, "a loss every logging_steps");
    assert!(history.last().unwrap()["train_runtime"].as_f64().unwrap() > 0.0);
    assert_eq!(
        state["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"],
        PATIENCE
    );
    if let Some(python) = support::resources::hf_python("transformers") {
        let check = format!(
            "from transformers import TrainerState\ns = TrainerState.load_from_json({:?})\n\
             assert s.best_metric == {} and s.global_step == {} and len(s.log_history) == {}\nprint('ok')",
            published.join("trainer_state.json").display().to_string(),
            accuracy[best - 1],
            stopped * steps_per_epoch,
            history.len()
        );
        let output = std::process::Command::new(python)
            .args(["-c", &check])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
}

#[test]
fn a_run_killed_after_the_best_epoch_resumes_to_the_same_best_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), training(true)).unwrap();
    let (ok, _) = run(dir.path(), "whole", &[]);
    assert!(ok);
    let whole = artifact(dir.path(), "whole", "finetune");
    let metrics: Value = serde_json::from_slice(&std::fs::read(whole.join("metrics.json")).unwrap()).unwrap();
    let best = metrics["best_epoch"].as_u64().unwrap() as usize;
    // Killed one epoch after the best: the state must carry the best weights along.
    let after = (best + 1).to_string();
    let (ok, _) = run(dir.path(), "killed", &[(ABORT_AFTER_EPOCH, after.as_str())]);
    assert!(!ok);
    let (ok, events) = run(dir.path(), "killed", &[]);
    assert!(ok);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "task_resumed" && e["epoch"] == best + 1),
        "{events:?}"
    );
    let resumed = artifact(dir.path(), "killed", "finetune");
    assert_eq!(
        std::fs::read(resumed.join("checkpoint/model.safetensors")).unwrap(),
        std::fs::read(whole.join("checkpoint/model.safetensors")).unwrap(),
        "the resumed run publishes the same best-epoch weights, bit for bit"
    );
    let resumed_metrics: Value = serde_json::from_slice(&std::fs::read(resumed.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(resumed_metrics["best_epoch"], metrics["best_epoch"]);
    assert_eq!(resumed_metrics["accuracy"], metrics["accuracy"]);
}
