//! `--set KEY=VALUE`: the same keys as the same edit of the file, validated like the file,
//! and listed in the report it produces.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use predicates::prelude::*;
use support::{edited, json_lines, orchestrate, sandbox, EXPERIMENT};

/// Task name → key, from `plan --json` with the given extra arguments.
fn planned_keys(dir: &Path, file: &str, extra: &[&str]) -> BTreeMap<String, String> {
    let output = orchestrate(dir)
        .args(["plan", file, "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["task"].as_str().unwrap().to_string(),
                t["key"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Command-line arguments, and the same change as (old, new) edits of the file.
type Args = &'static [&'static str];
type Edits = &'static [(&'static str, &'static str)];

#[test]
fn an_override_gives_the_keys_of_the_same_edit_in_the_file() {
    let dir = sandbox();
    let cases: [(Args, Edits); 4] = [
        (
            &["--set", "tasks.tfidf.max_features=30"],
            &[("max_features = 50", "max_features = 30")],
        ),
        (
            &["--set", "tasks.nb.sweep.alpha=[0.1, 2.0]"],
            &[("sweep.alpha = [0.5, 1.0]", "sweep.alpha = [0.1, 2.0]")],
        ),
        // Setting a swept parameter replaces its sweep, as replacing the line would.
        (
            &["--set", "tasks.nb.alpha=0.3"],
            &[("sweep.alpha = [0.5, 1.0]", "alpha = 0.3")],
        ),
        (
            &["--set", "defaults.logreg.c=0.25", "--set", "tasks.logreg.c=0.5"],
            &[("c = 1.0", "c = 0.5")],
        ),
    ];
    let base = planned_keys(dir.path(), "exp.toml", &[]);
    for (arguments, edits) in cases {
        std::fs::write(dir.path().join("edited.toml"), edited(EXPERIMENT, edits)).unwrap();
        let by_file = planned_keys(dir.path(), "edited.toml", &[]);
        let by_override = planned_keys(dir.path(), "exp.toml", arguments);
        assert_eq!(by_override, by_file, "{arguments:?}");
        assert_ne!(by_override, base, "{arguments:?} changes something");
    }
}

#[test]
fn a_default_override_reaches_every_task_that_has_the_parameter() {
    let dir = sandbox();
    let with_default = edited(
        EXPERIMENT,
        &[
            ("[datasets.data]", "[defaults]\nc = 0.5\n\n[datasets.data]"),
            ("c = 1.0\n", ""),
        ],
    );
    std::fs::write(dir.path().join("edited.toml"), with_default).unwrap();
    let without_c = edited(EXPERIMENT, &[("c = 1.0\n", "")]);
    std::fs::write(dir.path().join("plain.toml"), without_c).unwrap();
    assert_eq!(
        planned_keys(dir.path(), "plain.toml", &["--set", "defaults.c=0.5"]),
        planned_keys(dir.path(), "edited.toml", &[])
    );
}

#[test]
fn a_bad_override_is_an_error_naming_it_before_anything_runs() {
    let dir = sandbox();
    let cases = [
        (
            "tasks.tfidf.max_features=lots",
            "invalid parameters for `tfidf`",
            "key: tasks.tfidf.max_features",
        ),
        (
            "tasks.tfidf.max_feature=5",
            "unknown parameter `max_feature`",
            "did you mean `max_features`?",
        ),
        (
            "tasks.nope.c=1",
            "no task `nope` in the experiment",
            "declared: data, tfidf, logreg, nb",
        ),
        (
            "tasks.nb.sweep.alpha=0.5",
            "must be a list of values to sweep over",
            "key: tasks.nb.sweep.alpha",
        ),
        (
            "tasks.logreg.inputs=tfidf",
            "`inputs` cannot be overridden",
            "key: tasks.logreg.inputs",
        ),
        (
            "defaults.nope=1",
            "`nope` is not a parameter of any task kind",
            "key: defaults.nope",
        ),
        ("tasks.logreg.c", "expected KEY=VALUE", "1 | tasks.logreg.c"),
        (
            "experiment.name=x",
            "cannot override `experiment.name`",
            "key: experiment.name",
        ),
    ];
    for (set, message, detail) in cases {
        orchestrate(dir.path())
            .args(["run", "exp.toml", "--set", set])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("error: --set:1:"))
            .stderr(predicate::str::contains(message))
            .stderr(predicate::str::contains(detail))
            .stderr(predicate::str::contains(set));
    }
    assert!(
        !dir.path().join("cache").exists() || std::fs::read_dir(dir.path().join("cache")).unwrap().count() == 0,
        "nothing ran"
    );
}

#[test]
fn a_run_with_overrides_reports_them_beside_the_experiments_own_report() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-q"])
        .assert()
        .success();
    let own = std::fs::read_to_string(dir.path().join("reports/tiny.md")).unwrap();
    let output = orchestrate(dir.path())
        .args(["run", "exp.toml", "--json", "--set", "tasks.logreg.c=0.5"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let events = json_lines(&output.stdout);
    let ran: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "task_started")
        .map(|e| e["task"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["logreg"], "only the overridden task reruns");
    let report = events.iter().find(|e| e["event"] == "report").unwrap();
    assert_eq!(report["report"]["overrides"], serde_json::json!(["tasks.logreg.c=0.5"]));
    let files: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let markdown = files.iter().find(|f| f.ends_with(".md")).unwrap();
    assert!(markdown.contains("tiny+set-"), "{markdown}");
    let text = std::fs::read_to_string(dir.path().join(markdown)).unwrap();
    assert!(text.contains("Overrides: --set tasks.logreg.c=0.5"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("reports/tiny.md")).unwrap(),
        own,
        "the experiment's own report is untouched"
    );
    // `report` and `why` with the same override read what that run built.
    orchestrate(dir.path())
        .args(["report", "exp.toml", "--set", "tasks.logreg.c=0.5"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Overrides: --set tasks.logreg.c=0.5"));
    orchestrate(dir.path())
        .args(["why", "logreg", "-e", "exp.toml", "--set", "tasks.logreg.c=0.5"])
        .assert()
        .success()
        .stdout(predicate::str::contains("cached"));
    orchestrate(dir.path())
        .args(["why", "logreg", "-e", "exp.toml", "--set", "tasks.logreg.c=0.25"])
        .assert()
        .success()
        .stdout(predicate::str::contains("parameter `c` changed"));
}
