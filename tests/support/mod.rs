//! What the test files share, in one place: each file declares `mod support;` and uses
//! what it needs (nothing is copied from file to file).
//!
//! - here: a sandbox with the tiny fixture and an experiment on it, the `orchestrate`
//!   binary run inside it, and the same experiment planned and run in-process;
//! - [`models`]: the model fixtures, CPU load options, the tiny-BERT experiment;
//! - [`golden`]: golden-file comparison (`UPDATE_GOLDEN=1` rewrites);
//! - [`resources`]: a resource CI provides (Slurm, a tmpfs, the default model) is skipped
//!   when missing, unless its `ORCHESTRATE_REQUIRE_*` makes that a failure.
#![allow(dead_code)] // each test file uses a part

pub mod golden;
pub mod models;
pub mod resources;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use assert_cmd::Command;
use orchestrate::scheduler::{self, Options, Outcome};
use orchestrate::{plan, spec, store::Store};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny");

pub const EXPERIMENT: &str = r#"[experiment]
name = "tiny"

[datasets.data]
train = "train.csv"
eval = "eval.csv"
text_column = "review"

[tasks.tfidf]
kind = "tfidf"
inputs = { data = "data" }
max_features = 50

[tasks.logreg]
kind = "logreg"
inputs = { features = "tfidf" }
c = 1.0

[tasks.nb]
kind = "naive_bayes"
inputs = { features = "tfidf" }
sweep.alpha = [0.5, 1.0]
"#;

pub fn sandbox() -> tempfile::TempDir {
    sandbox_with(EXPERIMENT)
}

/// The tiny fixture's CSVs next to `exp.toml` holding `experiment`.
pub fn sandbox_with(experiment: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for file in ["train.csv", "eval.csv"] {
        std::fs::copy(Path::new(FIXTURES).join(file), dir.path().join(file)).unwrap();
    }
    std::fs::write(dir.path().join("exp.toml"), experiment).unwrap();
    dir
}

pub fn orchestrate(dir: &Path) -> Command {
    Command::from_std(orchestrate_process(dir))
}

/// The same as a plain process, for tests that run several at once.
pub fn orchestrate_process(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("orchestrate"));
    cmd.current_dir(dir)
        .env_remove("ORCHESTRATE_CACHE_DIR")
        .env_remove("ORCHESTRATE_REPORTS_DIR");
    cmd
}

/// The JSON lines `orchestrate --json run` printed.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
        .collect()
}

/// How many events of this kind, e.g. `task_finished`.
pub fn count_events(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// Task name → artifact key, from `orchestrate --json ls`.
pub fn artifact_keys_by_task(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let ls = orchestrate(dir).args(["--json", "ls"]).output().unwrap();
    let ls: Vec<serde_json::Value> = serde_json::from_slice(&ls.stdout).unwrap();
    ls.iter()
        .map(|a| {
            (
                a["task"].as_str().unwrap().to_string(),
                a["key"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `orchestrate verify` passes on `artifacts` artifacts.
pub fn assert_cache_intact(dir: &Path, artifacts: usize) {
    orchestrate(dir)
        .arg("verify")
        .assert()
        .success()
        .stdout(predicates::str::contains(format!("{artifacts} artifacts checked")))
        .stdout(predicates::str::contains("all intact"));
}

/// Plans and runs the experiment file at `path` in-process on the cache at `cache`, with `jobs`
/// workers: task name → outcome.
pub fn run_in_process(path: &Path, cache: &Path, jobs: usize) -> BTreeMap<String, Outcome> {
    let experiment = spec::load(path).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(cache).unwrap();
    let plan = plan::plan(&experiment, &store).unwrap();
    let cancel = AtomicBool::new(false);
    let options = Options {
        jobs,
        only: None,
        fail_fast: false,
        cancel: &cancel,
        executor: None,
        detach: false,
    };
    let summary = scheduler::run(&plan, &store, &options, &|_| {}).unwrap();
    summary
        .outcomes
        .into_iter()
        .map(|(i, o)| (experiment.tasks[i].name.clone(), o))
        .collect()
}

/// `text` with each `(from, to)` replaced; panics when `from` is not there, so that an edit
/// made to a shared experiment cannot silently do nothing.
pub fn edited(text: &str, edits: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "`{from}` is not in the experiment:\n{text}");
        text = text.replace(from, to);
    }
    text
}
