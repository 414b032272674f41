//! Two `orchestrate` processes on one cache: per-artifact locks make every artifact built
//! once, the other process waits and reuses it; a lock left by a killed process is free.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use orchestrate::store::{LockHolder, Store};
use support::{assert_cache_intact, count_events, json_lines, orchestrate_process};

/// Enough generated reviews in three classes that logistic regression takes a while in a
/// debug build (three classes take linfa's dense multinomial fit; a binary fit is sparse and
/// done in milliseconds), so the second process really arrives while the first is building.
fn write_generated_dataset(dir: &Path, train_rows: usize, eval_rows: usize) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        // xorshift64: deterministic, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let cues = [
        ["awful", "boring", "dull", "weak"],
        ["great", "superb", "moving", "fine"],
        ["long", "french", "silent", "colour"],
    ];
    for (file, rows) in [("train.csv", train_rows), ("eval.csv", eval_rows)] {
        let mut csv = String::from("review,label\n");
        for _ in 0..rows {
            let label = next() % 3;
            let mut words: Vec<String> = (0..40).map(|_| format!("w{}", next() % 3000)).collect();
            for _ in 0..3 {
                words.push(cues[label as usize][(next() % 4) as usize].to_string());
            }
            csv += &format!("{},{label}\n", words.join(" "));
        }
        std::fs::write(dir.join(file), csv).unwrap();
    }
}

/// The CLI tests' experiment, with features and iterations to keep logreg busy.
fn experiment() -> String {
    support::EXPERIMENT.replace("max_features = 50", "max_features = 300") + "\n[defaults]\nmax_iter = 30\n"
}

/// Reads a child's JSON lines on a thread; `until` returns once a line matching it arrived.
struct Events {
    lines: std::sync::Arc<Mutex<Vec<serde_json::Value>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Events {
    fn follow(child: &mut Child) -> Self {
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                sink.lock().unwrap().extend(json_lines(line.as_bytes()));
            }
        });
        Self { lines, reader }
    }

    fn until(&self, what: &str, pick: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.lines.lock().unwrap().iter().any(&pick) {
            assert!(
                Instant::now() < deadline,
                "no {what} in {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(self) -> Vec<serde_json::Value> {
        self.reader.join().unwrap();
        std::sync::Arc::try_unwrap(self.lines).unwrap().into_inner().unwrap()
    }
}

#[test]
fn two_processes_on_one_cache_build_every_artifact_once() {
    let dir = tempfile::tempdir().unwrap();
    write_generated_dataset(dir.path(), 600, 150);
    std::fs::write(dir.path().join("exp.toml"), experiment()).unwrap();
    let spawn = |jobs: &str| {
        orchestrate_process(dir.path())
            .args(["--json", "run", "exp.toml", "-j", jobs])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    // The second starts once the first is inside logreg: it must wait for that artifact
    // (and may build the naive Bayes members meanwhile, with -j 2).
    let mut first = spawn("1");
    let first_events = Events::follow(&mut first);
    first_events.until("logreg start", |e| {
        e["event"] == "task_started" && e["task"] == "logreg"
    });
    let mut second = spawn("2");
    let second_events = Events::follow(&mut second);
    assert!(first.wait().unwrap().success(), "first run failed");
    assert!(second.wait().unwrap().success(), "second run failed");
    let (first_events, second_events) = (first_events.finish(), second_events.finish());

    // Every artifact was built exactly once, by one process or the other.
    let mut built: Vec<&str> = first_events
        .iter()
        .chain(&second_events)
        .filter(|e| e["event"] == "task_finished")
        .map(|e| e["task"].as_str().unwrap())
        .collect();
    built.sort();
    assert_eq!(built, ["data", "logreg", "nb[alpha=0.5]", "nb[alpha=1.0]", "tfidf"]);
    assert_eq!(
        count_events(&second_events, "task_failed") + count_events(&first_events, "task_failed"),
        0
    );
    // The overlap was real: the second process found logreg locked by the first.
    let waited = second_events
        .iter()
        .find(|e| e["event"] == "task_waiting" && e["task"] == "logreg")
        .unwrap_or_else(|| panic!("the second run never waited: {second_events:?}"));
    assert_eq!(waited["holder_pid"], first.id());
    assert!(
        second_events
            .iter()
            .any(|e| e["event"] == "task_cached" && e["task"] == "logreg"),
        "the second run reuses the first one's logreg"
    );
    // Same cache, same tables.
    let report = |events: &[serde_json::Value]| events.last().unwrap()["report"].clone();
    assert_eq!(report(&first_events)["rows"].as_array().unwrap().len(), 3);
    assert_eq!(report(&first_events), report(&second_events));
    assert_cache_intact(dir.path(), 5);
    let leftovers = std::fs::read_dir(dir.path().join("cache/tmp")).unwrap().count();
    assert_eq!(leftovers, 0, "no staging directory left behind");
}

/// Not a test on its own: run as a child by the test below, it takes a lock and sleeps
/// until it is killed.
#[test]
#[ignore = "helper process for a_lock_left_by_a_killed_process_is_free"]
fn hold_a_lock_until_killed() {
    let Ok(cache) = std::env::var("ORCHESTRATE_TEST_LOCK_CACHE") else {
        return;
    };
    let store = Store::open(cache).unwrap();
    let me = LockHolder::this_process("holder", "test");
    let _lock = store.lock("somekey", &me, &|_| {}, &AtomicBool::new(false)).unwrap();
    println!("locked");
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn a_lock_left_by_a_killed_process_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("cache")).unwrap();
    let mut holder = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hold_a_lock_until_killed", "--ignored", "--nocapture"])
        .env("ORCHESTRATE_TEST_LOCK_CACHE", store.root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap() == "locked"), "the helper never took the lock");

    // Held: a taker is told who holds it (and gives up here instead of waiting).
    let me = LockHolder::this_process("taker", "test");
    let seen = Mutex::new(None);
    let give_up = AtomicBool::new(false);
    let on_wait = |holder: Option<LockHolder>| {
        *seen.lock().unwrap() = holder;
        give_up.store(true, Ordering::Relaxed);
    };
    let err = store.lock("somekey", &me, &on_wait, &give_up).unwrap_err();
    assert!(format!("{err:#}").contains("interrupted while waiting"), "{err:#}");
    let seen = seen.into_inner().unwrap().expect("the lock file names its holder");
    assert_eq!((seen.pid, seen.task.as_str()), (holder.id(), "holder"));

    // kill -9: no chance to clean up. The OS released the lock with the process.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let started = Instant::now();
    let lock = store
        .lock(
            "somekey",
            &me,
            &|h| panic!("still held by {h:?}"),
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(orchestrate::store::read_holder(lock.path()).unwrap(), me);
}
