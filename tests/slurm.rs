//! The Slurm executor against a real Slurm (tests/slurm/start.sh starts a throwaway
//! one-node cluster; `scripts/test.sh` does it for CI). Without `SLURM_CONF` these tests
//! skip with a message, unless `ORCHESTRATE_REQUIRE_SLURM=1` makes that a failure
//! (tests/support/resources.rs).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;
use support::{orchestrate, sandbox_with as sandbox};

/// The shared tiny experiment, run through Slurm (tables may come in any order in TOML).
fn experiment() -> String {
    format!("{}\n[executor]\npoll_interval = 0.2\ncpus = 1\n", support::EXPERIMENT)
}

fn slurm_available() -> bool {
    let missing = std::env::var_os("SLURM_CONF").is_none().then(|| {
        "SLURM_CONF is not set: start a cluster with tests/slurm/start.sh and source target/slurm-ws/slurm.env".into()
    });
    support::resources::available("SLURM", missing)
}

/// Runs `orchestrate --json run …`; returns the exit success and the events.
fn run_json(dir: &Path, args: &[&str]) -> (bool, Vec<Value>) {
    let output = orchestrate(dir).arg("--json").arg("run").args(args).output().unwrap();
    let events = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    (output.status.success(), events)
}

fn tasks_with(events: &[Value], kind: &str) -> Vec<String> {
    let mut tasks: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["task"].as_str().unwrap().to_string())
        .collect();
    tasks.sort();
    tasks
}

/// Report rows without the timings and memory peaks, which differ from run to run.
fn rows_without_measurements(events: &[Value]) -> Vec<Value> {
    let report = events.iter().find(|e| e["event"] == "report").expect("a report event");
    report["report"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let mut row = row.clone();
            let metrics = row["metrics"].as_object_mut().unwrap();
            metrics.remove("train_time_s");
            metrics.remove("eval_time_s");
            metrics.remove("peak_rss_bytes");
            row
        })
        .collect()
}

/// `orchestrate --json run exp.toml --executor slurm` in the background, with its events
/// as they come.
fn spawn_driver(dir: &Path) -> (std::process::Child, impl Iterator<Item = Value>) {
    let mut driver = support::orchestrate_process(dir)
        .args(["--json", "run", "exp.toml", "--executor", "slurm"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(driver.stdout.take().unwrap());
    let events = stdout.lines().map(|line| serde_json::from_str(&line.unwrap()).unwrap());
    (driver, events)
}

fn job_states(ids: &[String]) -> Vec<String> {
    let output = Process::new("squeue")
        .args(["-h", "-t", "all", "-o", "%T", "-j", &ids.join(",")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn run_record(dir: &Path) -> Value {
    let runs = dir.join("cache/slurm");
    let mut ids: Vec<_> = std::fs::read_dir(&runs).unwrap().map(|e| e.unwrap().path()).collect();
    ids.sort();
    serde_json::from_slice(&std::fs::read(ids.last().unwrap().join("run.json")).unwrap()).unwrap()
}

#[test]
fn slurm_gives_the_local_executors_results_and_a_rerun_submits_nothing() {
    if !slurm_available() {
        return;
    }
    let dir = sandbox(&experiment());
    let (ok, slurm) = run_json(dir.path(), &["exp.toml", "--executor", "slurm"]);
    assert!(ok, "{slurm:?}");
    assert_eq!(tasks_with(&slurm, "task_submitted").len(), 5);
    assert_eq!(tasks_with(&slurm, "task_finished").len(), 5);

    let (ok, local) = run_json(
        dir.path(),
        &["exp.toml", "--executor", "local", "--cache-dir", "cache-local"],
    );
    assert!(ok);
    assert_eq!(rows_without_measurements(&slurm), rows_without_measurements(&local));
    // Byte-identical artifacts, apart from the timings in metrics.json.
    for key in std::fs::read_dir(dir.path().join("cache-local/artifacts")).unwrap() {
        let key = key.unwrap().file_name();
        let manifest = |cache: &str| -> Value {
            let path = dir
                .path()
                .join(cache)
                .join("artifacts")
                .join(&key)
                .join("manifest.json");
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
        };
        let (mut a, mut b) = (manifest("cache"), manifest("cache-local"));
        for files in [&mut a["files"], &mut b["files"]] {
            files.as_object_mut().unwrap().remove("metrics.json");
        }
        assert_eq!(a["files"], b["files"], "{key:?}");
    }

    let (ok, rerun) = run_json(dir.path(), &["exp.toml", "--executor", "slurm"]);
    assert!(ok);
    assert!(
        tasks_with(&rerun, "task_submitted").is_empty(),
        "a rerun submits nothing"
    );
    assert_eq!(tasks_with(&rerun, "task_cached").len(), 5);
}

#[test]
fn a_failing_job_cancels_its_dependents_and_independent_branches_finish() {
    if !slurm_available() {
        return;
    }
    let experiment = r#"[executor]
kind = "slurm"
poll_interval = 0.2
[datasets.good]
train = "train.csv"
eval = "eval.csv"
text_column = "review"
[datasets.bad]
train = "train.csv"
eval = "bad.csv"
text_column = "review"
[tasks.f_good]
kind = "tfidf"
inputs = "good"
[tasks.lr_good]
kind = "logreg"
inputs = "f_good"
[tasks.f_bad]
kind = "tfidf"
inputs = "bad"
[tasks.lr_bad]
kind = "logreg"
inputs = "f_bad"
"#;
    let dir = sandbox(experiment);
    std::fs::write(dir.path().join("bad.csv"), "index,review,label\n0,fine,1\n1,,0\n").unwrap();
    let (ok, events) = run_json(dir.path(), &["exp.toml"]);
    assert!(!ok, "the run fails");
    let failed: Vec<&Value> = events.iter().filter(|e| e["event"] == "task_failed").collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0]["task"], "bad");
    let error = failed[0]["error"].as_str().unwrap();
    assert!(
        error.contains("FAILED") && error.contains("bad.csv:3 (row 2): empty text"),
        "the job's stderr: {error}"
    );
    assert_eq!(tasks_with(&events, "task_skipped"), ["f_bad", "lr_bad"]);
    assert_eq!(tasks_with(&events, "task_finished"), ["f_good", "good", "lr_good"]);

    let record = run_record(dir.path());
    let jobs = record["jobs"].as_array().unwrap();
    let outcome = |task: &str| jobs.iter().find(|j| j["task"] == task).unwrap()["outcome"].clone();
    assert_eq!(outcome("lr_bad"), "skipped");
    assert_eq!(outcome("lr_good"), "finished");
    let skipped_ids: Vec<String> = jobs
        .iter()
        .filter(|j| j["outcome"] == "skipped")
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while job_states(&skipped_ids).iter().any(|s| s != "CANCELLED") {
        assert!(
            Instant::now() < deadline,
            "dependents were not cancelled: {:?}",
            job_states(&skipped_ids)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn killing_the_driver_mid_run_and_rerunning_reuses_finished_artifacts() {
    if !slurm_available() {
        return;
    }
    let dir = sandbox(&experiment());
    let (mut driver, events) = spawn_driver(dir.path());
    let mut finished_before_kill = Vec::new();
    for event in events {
        if event["event"] == "task_finished" {
            finished_before_kill.push(event["task"].as_str().unwrap().to_string());
            break;
        }
    }
    driver.kill().unwrap(); // SIGKILL: no cleanup at all
    driver.wait().unwrap();
    assert_eq!(finished_before_kill, ["data"]);

    let (ok, rerun) = run_json(dir.path(), &["exp.toml", "--executor", "slurm"]);
    assert!(ok, "{rerun:?}");
    let cached = tasks_with(&rerun, "task_cached");
    assert!(
        cached.contains(&"data".to_string()),
        "finished work is reused: {cached:?}"
    );
    assert!(!tasks_with(&rerun, "task_submitted").contains(&"data".to_string()));
    let (ok, local) = run_json(dir.path(), &["exp.toml", "--cache-dir", "cache-local"]);
    assert!(ok);
    assert_eq!(rows_without_measurements(&rerun), rows_without_measurements(&local));
}

#[test]
fn a_detached_run_is_followed_with_status() {
    if !slurm_available() {
        return;
    }
    let dir = sandbox(&experiment());
    let (ok, events) = run_json(dir.path(), &["exp.toml", "--executor", "slurm", "--detach"]);
    assert!(ok);
    assert_eq!(tasks_with(&events, "task_submitted").len(), 5);
    assert!(
        tasks_with(&events, "task_finished").is_empty(),
        "detached: the driver did not wait"
    );
    let output = orchestrate(dir.path())
        .args(["status", "exp.toml", "--follow"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("nb[alpha=1.0]") && stdout.contains("TF-IDF + logistic regression"),
        "{stdout}"
    );
    let status = orchestrate(dir.path()).args(["status", "exp.toml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("0 to run"), "{stdout}");
    assert_eq!(stdout.matches("finished").count(), 5, "{stdout}");
}

#[test]
fn interrupting_the_driver_cancels_its_jobs() {
    if !slurm_available() {
        return;
    }
    // A long first job keeps the rest pending.
    let experiment = experiment().replace("cpus = 1", "cpus = 1\nsbatch_args = [\"--begin=now+60\"]");
    let dir = sandbox(&experiment);
    let (mut driver, events) = spawn_driver(dir.path());
    let mut jobs = Vec::new();
    for event in events {
        if event["event"] == "task_submitted" {
            jobs.push(event["job"].as_str().unwrap().to_string());
            if jobs.len() == 5 {
                break;
            }
        }
    }
    Process::new("kill")
        .args(["-INT", &driver.id().to_string()])
        .status()
        .unwrap();
    let status = driver.wait().unwrap();
    assert!(!status.success(), "an interrupted run exits non-zero");
    let deadline = Instant::now() + Duration::from_secs(20);
    while job_states(&jobs).iter().any(|s| s != "CANCELLED") {
        assert!(Instant::now() < deadline, "jobs left behind: {:?}", job_states(&jobs));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(std::fs::read_dir(dir.path().join("cache/artifacts"))
        .unwrap()
        .next()
        .is_none());
}
