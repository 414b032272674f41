//! The `orchestrate` binary as users call it.

use predicates::prelude::*;

mod support;

use support::{orchestrate, sandbox, EXPERIMENT};

#[test]
fn run_prints_the_table_writes_reports_and_a_second_run_does_nothing() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-j", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("TF-IDF + logistic regression"))
        .stdout(predicate::str::contains("nb[alpha=0.5]"))
        .stderr(predicate::str::contains("5 ran, 0 cached"));
    for ext in ["md", "csv", "json"] {
        assert!(
            dir.path().join(format!("reports/tiny.{ext}")).exists(),
            "reports/tiny.{ext}"
        );
    }
    orchestrate(dir.path())
        .args(["run", "exp.toml"])
        .assert()
        .success()
        .stderr(predicate::str::contains("0 ran, 5 cached"))
        .stderr(predicate::str::contains("running").not());
}

#[test]
fn cache_dir_comes_from_the_flag_or_the_environment() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["--cache-dir", "elsewhere", "run", "exp.toml", "--quiet"])
        .assert()
        .success();
    assert!(dir.path().join("elsewhere/artifacts").is_dir());
    assert!(!dir.path().join("cache").exists());
    orchestrate(dir.path())
        .env("ORCHESTRATE_CACHE_DIR", "elsewhere")
        .args(["run", "exp.toml"])
        .assert()
        .success()
        .stderr(predicate::str::contains("0 ran, 5 cached"));
}

#[test]
fn a_malformed_file_gets_file_line_column() {
    let dir = sandbox();
    std::fs::write(
        dir.path().join("bad.toml"),
        EXPERIMENT.replace("max_features = 50", "max_features = \"lots\""),
    )
    .unwrap();
    orchestrate(dir.path())
        .args(["run", "bad.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "bad.toml:12:1: invalid parameters for `tfidf`",
        ))
        .stderr(predicate::str::contains("key: tasks.tfidf.max_features"));
}

#[test]
fn why_names_the_changed_key_part() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-q"])
        .assert()
        .success();
    std::fs::write(
        dir.path().join("exp.toml"),
        EXPERIMENT.replace("max_features = 50", "max_features = 30"),
    )
    .unwrap();
    orchestrate(dir.path())
        .args(["why", "logreg", "-e", "exp.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("input `features` (tfidf) changed"))
        .stdout(predicate::str::contains("parameter `max_features` changed (50 → 30)"))
        .stdout(predicate::str::contains("\"kind\": \"logreg\""));
    orchestrate(dir.path())
        .args(["plan", "exp.toml"])
        .assert()
        .success()
        .stdout(predicate::str::contains("4 to run"))
        .stdout(predicate::str::contains("cached"));
    orchestrate(dir.path())
        .args(["why", "nope", "-e", "exp.toml"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("no task `nope`"));
}

#[test]
fn only_runs_a_task_with_its_inputs_and_dry_run_runs_nothing() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["run", "exp.toml", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("5 tasks, 5 to run"))
        .stdout(predicate::str::contains("never built"));
    assert!(!dir.path().join("cache/artifacts").exists(), "dry run wrote nothing");
    orchestrate(dir.path())
        .args(["run", "exp.toml", "--only", "logreg"])
        .assert()
        .success()
        .stderr(predicate::str::contains("3 ran, 0 cached"))
        .stderr(predicate::str::contains(
            "not in the cache: nb[alpha=0.5], nb[alpha=1.0]",
        ));
    orchestrate(dir.path())
        .args(["run", "exp.toml", "--only", "nope"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--only nope: no such task"));
}

#[test]
fn report_reads_the_cache_only_and_says_what_is_missing() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["report", "exp.toml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("3 of 3 reported tasks are not in the cache"));
    assert!(!dir.path().join("cache/artifacts").exists(), "report computed nothing");
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-q"])
        .assert()
        .success();
    let out = orchestrate(dir.path())
        .args(["report", "exp.toml"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let order: Vec<usize> = ["logreg", "nb[alpha=0.5]", "nb[alpha=1.0]"]
        .iter()
        .map(|t| out.find(t).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
}

#[test]
fn json_output_is_one_event_per_line() {
    let dir = sandbox();
    let out = orchestrate(dir.path())
        .args(["--json", "run", "exp.toml"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let events: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.iter().filter(|k| **k == "task_finished").count(), 5);
    assert_eq!(kinds[kinds.len() - 2..], ["run_finished", "report"]);
    let report = &events.last().unwrap()["report"];
    assert_eq!(report["rows"].as_array().unwrap().len(), 3);

    let ls = orchestrate(dir.path())
        .args(["--json", "ls"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let ls: serde_json::Value = serde_json::from_slice(&ls).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 5);
}

#[test]
fn a_failing_task_fails_the_run_but_not_independent_tasks() {
    let dir = sandbox();
    std::fs::write(dir.path().join("exp.toml"), with_a_failing_task()).unwrap();
    orchestrate(dir.path())
        .args(["run", "exp.toml"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "FAILED  sparse: min_df = 1000 documents is more than the",
        ))
        .stderr(predicate::str::contains("5 ran, 0 cached, 1 failed"));
}

#[test]
fn the_run_ends_with_each_failure_and_the_dependents_it_skipped() {
    let dir = sandbox();
    let broken = "\n[datasets.broken]\ntrain = \"broken.csv\"\neval = \"eval.csv\"\ntext_column = \"review\"\n\n\
                  [tasks.broken_tfidf]\nkind = \"tfidf\"\ninputs = { data = \"broken\" }\n";
    std::fs::write(dir.path().join("exp.toml"), with_a_failing_task() + broken).unwrap();
    std::fs::write(dir.path().join("broken.csv"), "index,review,label\n1,fine,1\n2,,0\n").unwrap();
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-q"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("2 tasks failed:\n"))
        .stderr(predicate::str::contains(
            "broken.csv:3 (row 2): empty text in column `review` (1 dependent skipped)\n",
        ))
        .stderr(predicate::str::contains(
            "  sparse: min_df = 1000 documents is more than the 40 training documents: no term can pass it\n",
        ));
}

#[test]
fn fail_fast_starts_nothing_after_the_first_failure() {
    let dir = sandbox();
    std::fs::write(dir.path().join("exp.toml"), with_a_failing_task()).unwrap();
    // -j 1 runs data, tfidf, logreg, then sparse, which fails: the nb members never start.
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-j", "1", "--fail-fast"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "skipped  nb[alpha=1.0]: the run stopped at the first failure",
        ))
        .stderr(predicate::str::contains("3 ran, 0 cached, 1 failed, 2 skipped"))
        .stderr(predicate::str::contains("running  nb[alpha=1.0]").not());
    // Without it, the independent tasks run.
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-j", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("2 ran, 3 cached, 1 failed"));
}

/// The experiment with `sparse`, a TF-IDF whose `min_df` only the data can show impossible
/// (it fails when it runs, independent of the other tasks), declared before `nb`.
fn with_a_failing_task() -> String {
    let sparse = "[tasks.sparse]\nkind = \"tfidf\"\ninputs = { data = \"data\" }\nmin_df = 1000\n\n[tasks.nb]";
    EXPERIMENT.replacen("[tasks.nb]", sparse, 1)
}

#[test]
fn inspect_counts_peft_methods_on_distilbert_base() {
    let dir = tempfile::tempdir().unwrap();
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/distilbert-base-uncased-config/config.json"
    );
    // `orchestrate inspect CONFIG --method lora --set S…`
    let inspect_lora = |sets: &[&str]| {
        let mut cmd = orchestrate(dir.path());
        cmd.args(["inspect", config, "--method", "lora"]);
        for set in sets {
            cmd.args(["--set", set]);
        }
        cmd.assert()
    };
    // The lab's LoRA: r=6, alpha=12 on q_lin and v_lin (the default targets) plus the head;
    // "all" counts the adapters too, as PEFT does (66,955,010 + 12 · 6 · (768 + 768)).
    inspect_lora(&["r=6", "lora_alpha=12"])
        .success()
        .stdout(predicate::str::contains(
            "trainable params: 702,722 || all params: 67,065,602 || trainable%: 1.0478",
        ));
    // DoRA adds a magnitude per output of each target: 12 · 768 (PEFT prints 711,938 too).
    inspect_lora(&["r=6", "lora_alpha=12", "use_dora=true"])
        .success()
        .stdout(predicate::str::contains("trainable params: 711,938 ||"));
    inspect_lora(&["r=6", "init=\"pissa\""])
        .success()
        .stdout(predicate::str::contains("trainable params: 702,722 ||"));
    // QLoRA trains what LoRA trains; its 4-bit weights count as PEFT counts them.
    orchestrate(dir.path())
        .args([
            "inspect",
            config,
            "--method",
            "qlora",
            "--set",
            "r=6",
            "--set",
            "lora_alpha=12",
        ])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("trainable params: 702,722 || all params: 67,065,602").and(
                predicate::str::contains("Linear4bit(in_features=768, out_features=768, bias=True)"),
            ),
        );
    inspect_lora(&["r=0"])
        .failure()
        .stderr(predicate::str::contains("LoRA rank r must be at least 1, got 0"));
    inspect_lora(&["target_modules=q_lin,nope"])
        .failure()
        .stderr(predicate::str::contains("nope").and(predicate::str::contains("v_lin")));
}

#[test]
fn completions_name_the_subcommands_and_their_options_for_each_shell() {
    let dir = sandbox();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef orchestrate"),
        ("fish", "complete -c orchestrate"),
    ] {
        let output = orchestrate(dir.path()).args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
        for word in ["run", "plan", "why", "report", "set", "dry-run", "cache-dir"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    orchestrate(dir.path())
        .args(["completions", "tcsh"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("invalid value 'tcsh'"));
}

#[test]
fn each_task_records_its_peak_memory_for_ls_and_the_report() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-q"])
        .assert()
        .success();
    let output = orchestrate(dir.path()).args(["ls", "--json"]).output().unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.len(), 5);
    for artifact in &listed {
        let peak = artifact["peak_rss_bytes"].as_u64().unwrap_or_default();
        // The process itself (libtorch linked) is tens of MiB; a missing or zero value fails.
        assert!(peak > 10 << 20, "{artifact}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("reports/tiny.json")).unwrap()).unwrap();
    for entry in report["entries"].as_array().unwrap() {
        assert!(entry["peak_rss_bytes"]["mean"].as_f64().unwrap() > 10e6, "{entry}");
    }
    let markdown = std::fs::read_to_string(dir.path().join("reports/tiny.md")).unwrap();
    assert!(markdown.contains("| peak RSS |"), "{markdown}");
    orchestrate(dir.path())
        .args(["ls"])
        .assert()
        .success()
        .stdout(predicate::str::contains("peak RSS"))
        .stdout(predicate::str::contains(" MiB"));
}

#[test]
fn bench_step_times_the_phases_of_the_methods_step() {
    let dir = tempfile::tempdir().unwrap();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/tiny-bert");
    let out = orchestrate(dir.path())
        .args(["--json", "bench-step", model, "--method", "lora", "--set", "r=2"])
        .args([
            "--seq",
            "16",
            "--batch",
            "2",
            "--warmup",
            "1",
            "--steps",
            "2",
            "--precision",
            "bf16",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["method"], "lora");
    assert_eq!(v["precision"], "bf16");
    assert_eq!(v["profile"]["steps"], 2);
    // r = 2 on query and value of 2 layers (2 · 2 · 2 · (32 + 32)) + pooler and a 2-label classifier.
    assert_eq!(v["trainable"], 2 * 2 * 2 * 64 + (32 * 32 + 32) + (32 * 2 + 2));
    for phase in ["forward_s", "backward_s", "update_s"] {
        assert!(v["profile"][phase].as_f64().unwrap() > 0.0, "{phase}: {v}");
    }
    orchestrate(dir.path())
        .args(["bench-step", model, "--precision", "fp16"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--precision \"fp16\": expected fp32 or bf16"));
}
