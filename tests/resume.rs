//! Resuming after a kill. A run killed at any moment — right after an epoch's state is
//! saved (the test hook aborts the process there), or by SIGKILL at random moments, while
//! tasks write their artifacts included — is finished by the next `run`, which reuses every
//! finished task, resumes the interrupted training from its last saved epoch and ends with
//! exactly the artifacts of an uninterrupted run: the same weights, bit for bit, and the same
//! metrics but for the times.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Instant;

use orchestrate::store::Store;
use serde_json::Value;
use support::{count_events, json_lines, orchestrate, orchestrate_process};

const ABORT_AFTER_EPOCH: &str = "ORCHESTRATE_TEST_ABORT_AFTER_EPOCH";

/// The tiny BERT fixture (dropout 0.1, so the random state matters) on the small dataset,
/// with `tasks` after the tokenizer.
fn experiment(tasks: &str) -> String {
    let defaults = "lr = 1e-2\nlogging_steps = 3\n";
    format!(
        "[experiment]\nname = \"resume\"\n{}",
        support::models::tiny_bert_experiment(defaults, tasks)
    )
}

const FINETUNE: &str = "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e-3\nepochs = 4\n\
                        [tasks.reloaded]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\", model = \"finetune\" }\n";

/// Every kind that trains through `train::train`, and mixed precision.
const EVERY_TRAINING_KIND: &str = "[tasks.features]\nkind = \"features\"\ninputs = \"tokens\"\n\
     [tasks.head]\nkind = \"headtune\"\ninputs = \"features\"\nepochs = 3\n\
     [tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\nepochs = 2\nr = 2\nmerge = true\n\
     [tasks.pissa_dora]\nkind = \"lora\"\ninputs = \"tokens\"\nepochs = 2\nr = 2\ninit = \"pissa\"\nuse_dora = true\nlora_dropout = 0.1\n\
     [tasks.qlora]\nkind = \"qlora\"\ninputs = \"tokens\"\nepochs = 2\nr = 2\n\
     [tasks.ia3]\nkind = \"ia3\"\ninputs = \"tokens\"\nepochs = 2\n\
     [tasks.bitfit]\nkind = \"bitfit\"\ninputs = \"tokens\"\nepochs = 2\n\
     [tasks.prompt]\nkind = \"prompt_tuning\"\ninputs = \"tokens\"\nepochs = 2\nnum_virtual_tokens = 4\n\
     [tasks.prefix]\nkind = \"prefix_tuning\"\ninputs = \"tokens\"\nepochs = 2\nnum_virtual_tokens = 3\nprefix_projection = true\nencoder_hidden_size = 8\n\
     [tasks.adapter]\nkind = \"adapter\"\ninputs = \"tokens\"\nepochs = 2\ndropout = 0.1\n\
     [tasks.bf16]\nkind = \"finetune\"\ninputs = \"tokens\"\nepochs = 2\nprecision = \"bf16\"\n";

/// One `orchestrate --json run` on `cache`: how it ended and its events.
fn run(dir: &Path, cache: &str, env: &[(&str, &str)]) -> (ExitStatus, Vec<Value>) {
    let output = orchestrate_process(dir)
        .args(["--json", "run", "exp.toml", "--cache-dir", cache])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (output.status, json_lines(&output.stdout))
}

fn run_to_the_end(dir: &Path, cache: &str) -> Vec<Value> {
    let (status, events) = run(dir, cache, &[]);
    assert!(status.success(), "run on {cache} failed: {events:?}");
    events
}

/// Times and memory peaks differ from run to run; nothing else may.
fn is_measurement(key: &str) -> bool {
    key == "seconds"
        || key.ends_with("_s")
        || key.ends_with("_runtime")
        || key.contains("per_second")
        || key == "peak_rss_bytes"
}

fn without_measurements(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !is_measurement(key))
                .map(|(key, value)| (key.clone(), without_measurements(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_measurements).collect()),
        other => other.clone(),
    }
}

/// What a finished cache holds, by task: the blake3 of every file but `metrics.json`
/// (weights, adapters, features, tokens) and the metrics without their times and memory peaks.
fn results(cache: &Path) -> BTreeMap<String, Value> {
    let store = Store::open(cache).unwrap();
    store
        .list()
        .unwrap()
        .into_iter()
        .map(|(key, manifest)| {
            let manifest = manifest.unwrap_or_else(|e| panic!("{key}: {e:#}"));
            let dir = store.artifact_dir(&key);
            let metrics: Value = serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
            // trainer_state.json holds the run's times, so it compares by content without them.
            let files: BTreeMap<&String, Value> = manifest
                .files
                .iter()
                .filter(|(name, _)| *name != "metrics.json")
                .map(|(name, entry)| {
                    let value = if name.ends_with("trainer_state.json") {
                        without_measurements(&serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap())
                    } else {
                        Value::String(entry.blake3.clone())
                    };
                    (name, value)
                })
                .collect();
            (
                manifest.task.clone(),
                serde_json::json!({ "files": files, "metrics": without_measurements(&metrics) }),
            )
        })
        .collect()
}

/// The same tasks with the same results, task by task.
fn assert_same_results(cache: &Path, reference: &Path) {
    let (actual, expected) = (results(cache), results(reference));
    assert_eq!(actual.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (task, result) in &actual {
        assert_eq!(
            result,
            &expected[task],
            "{task} in {} differs from {}",
            cache.display(),
            reference.display()
        );
    }
}

/// Resume states still in the cache (none once every training has its artifact).
fn resume_states(cache: &Path) -> usize {
    Store::open(cache).unwrap().resume_keys().unwrap().len()
}

fn events_of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// No rerun may find a corrupt artifact or resume state: both are published by a rename,
/// so a kill leaves them whole or absent.
fn assert_nothing_partial_was_read(events: &[Value]) {
    for started in events_of(events, "task_started") {
        let reasons = started["reasons"].to_string();
        assert!(!reasons.contains("corrupt"), "a partial artifact was found: {started}");
    }
    assert_eq!(count_events(events, "resume_state_ignored"), 0, "{events:?}");
}

#[test]
fn every_training_kind_resumes_after_an_abort_to_the_uninterrupted_result() {
    let dir = support::sandbox_with(&experiment(&format!("{FINETUNE}{EVERY_TRAINING_KIND}")));
    run_to_the_end(dir.path(), "reference");

    // Each run aborts right after the first epoch a training saves: the training it
    // interrupted resumes in the next run (and trains on, past epoch 1), the next training
    // starts and aborts in turn, until a run gets through.
    let mut interrupted: Option<String> = None;
    let mut resumed = Vec::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    for attempt in 1.. {
        // One run per training and a last one that gets through, plus room for new kinds.
        assert!(attempt <= 14, "more runs than trainings");
        let (status, events) = run(dir.path(), "resumed", &[(ABORT_AFTER_EPOCH, "1")]);
        assert_nothing_partial_was_read(&events);
        let resumes = events_of(&events, "task_resumed");
        if let Some(task) = interrupted.take() {
            assert_eq!(resumes.len(), 1, "{events:?}");
            assert_eq!(resumes[0]["task"], task.as_str());
            assert_eq!(resumes[0]["epoch"], 1);
            resumed.push(task);
        } else {
            assert!(resumes.is_empty(), "{events:?}");
        }
        // Every task finished before an abort is reused.
        let cached: BTreeSet<&str> = events_of(&events, "task_cached")
            .iter()
            .map(|e| e["task"].as_str().unwrap())
            .collect();
        assert!(
            finished.iter().all(|task| cached.contains(task.as_str())),
            "attempt {attempt} rebuilt some of {finished:?}: {events:?}"
        );
        finished.extend(
            events_of(&events, "task_finished")
                .iter()
                .map(|e| e["task"].as_str().unwrap().to_string()),
        );
        if status.success() {
            break;
        }
        let started = events_of(&events, "task_started");
        interrupted = Some(started.last().unwrap()["task"].as_str().unwrap().to_string());
    }
    resumed.sort();
    assert_eq!(
        resumed,
        [
            "adapter",
            "bf16",
            "bitfit",
            "finetune",
            "head",
            "ia3",
            "lora",
            "pissa_dora",
            "prefix",
            "prompt",
            "qlora"
        ]
    );

    assert_same_results(&dir.path().join("resumed"), &dir.path().join("reference"));
    assert_eq!(
        resume_states(&dir.path().join("resumed")),
        0,
        "states outlive their artifacts"
    );
    orchestrate(dir.path())
        .args(["verify", "--cache-dir", "resumed"])
        .assert()
        .success();
}

#[test]
fn a_corrupt_resume_state_is_ignored_and_training_starts_over() {
    let dir = support::sandbox_with(&experiment(FINETUNE));
    run_to_the_end(dir.path(), "reference");
    let (status, _) = run(dir.path(), "cache", &[(ABORT_AFTER_EPOCH, "1")]);
    assert!(!status.success(), "the hook aborts the run");
    // Resumed (the terminal says so) and aborted again, after epoch 2.
    let output = orchestrate_process(dir.path())
        .args(["run", "exp.toml", "--cache-dir", "cache"])
        .env(ABORT_AFTER_EPOCH, "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("resumed  finetune after epoch 1/4"), "{stderr}");
    assert!(!output.status.success());

    // Flip one byte of the saved weights: the state no longer matches its manifest.
    let resume = dir.path().join("cache/resume");
    let key_dir = std::fs::read_dir(&resume).unwrap().next().unwrap().unwrap().path();
    let state = key_dir.join("epoch-0002/state.safetensors");
    let mut bytes = std::fs::read(&state).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&state, bytes).unwrap();

    // `gc` keeps the state of a task that still has to finish, and only that.
    let gc = |file: &str| {
        let output = orchestrate(dir.path())
            .args(["gc", "--dry-run", file])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(!gc("exp.toml").contains("resume state"), "{}", gc("exp.toml"));
    std::fs::write(dir.path().join("tokens-only.toml"), experiment("")).unwrap();
    assert!(
        gc("tokens-only.toml").contains("would remove resume state"),
        "{}",
        gc("tokens-only.toml")
    );

    let events = run_to_the_end(dir.path(), "cache");
    let ignored = events_of(&events, "resume_state_ignored");
    assert_eq!(ignored.len(), 1, "{events:?}");
    let reason = ignored[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("after epoch 2 is corrupt") && reason.contains("state.safetensors has blake3"),
        "{reason}"
    );
    assert_eq!(count_events(&events, "task_resumed"), 0);
    assert_same_results(&dir.path().join("cache"), &dir.path().join("reference"));
}

/// xorshift64: a seeded sequence with no dependency.
struct Moments(u64);

impl Moments {
    /// A fraction in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What a killed run left in its cache: staging directories of the tasks (or resume states)
/// it was writing, and whether one of them was sealed (its manifest written) but not yet
/// renamed into place.
fn staging_left(cache: &Path) -> (usize, bool) {
    let Ok(entries) = std::fs::read_dir(cache.join("tmp")) else {
        return (0, false);
    };
    let dirs: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    let sealed = dirs.iter().any(|d| d.join("manifest.json").exists());
    (dirs.len(), sealed)
}

#[test]
fn sigkill_at_twenty_random_moments_never_changes_the_result() {
    const KILLS: usize = 20;
    let dir = support::sandbox_with(&experiment(&format!(
        "{FINETUNE}[tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\nepochs = 3\nr = 2\nmerge = true\n"
    )));
    let started = Instant::now();
    run_to_the_end(dir.path(), "reference");
    let mut duration = started.elapsed();

    // One moment in each twentieth of the run's duration, at a seeded place within it. A run
    // that ends before its moment (the machine got faster) does not count as a kill: the
    // duration shrinks to that moment and the twentieth is tried again.
    let mut moments = Moments(0x9e37_79b9_7f4a_7c15);
    let (mut kills, mut attempt) = (0, 0);
    let (mut resumed, mut mid_write, mut sealed_unpublished, mut ended_first) = (0, 0, 0, 0);
    while kills < KILLS {
        assert!(attempt < 2 * KILLS, "runs keep ending before their kill");
        let at = duration.mul_f64((kills as f64 + moments.next()) / KILLS as f64);
        let cache = format!("kill-{attempt}");
        attempt += 1;
        let mut child = orchestrate_process(dir.path())
            .args(["--json", "run", "exp.toml", "--cache-dir", &cache])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_some() {
            ended_first += 1;
            duration = at;
        } else {
            kills += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (staging, sealed) = staging_left(&dir.path().join(&cache));
        mid_write += usize::from(staging > 0);
        sealed_unpublished += usize::from(sealed);

        let events = run_to_the_end(dir.path(), &cache);
        assert_nothing_partial_was_read(&events);
        resumed += count_events(&events, "task_resumed");
        assert_same_results(&dir.path().join(&cache), &dir.path().join("reference"));
        assert_eq!(resume_states(&dir.path().join(&cache)), 0);
        orchestrate(dir.path())
            .args(["verify", "--cache-dir", &cache])
            .assert()
            .success();
    }
    eprintln!(
        "{KILLS} SIGKILLs over a {duration:?} run: {mid_write} while a task was writing its outputs \
         ({sealed_unpublished} of them with a sealed, unpublished directory), {resumed} trainings \
         resumed; {ended_first} runs ended before their kill"
    );
    assert!(resumed > 0, "no kill landed between two epochs");
    assert!(mid_write > 0, "no kill landed while a task was writing");
}
