//! The cache end to end on the tiny fixture dataset: hits, misses, propagation, sharing,
//! corruption and failed writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use orchestrate::plan::{self, Reason, Status};
use orchestrate::scheduler::Outcome;
use orchestrate::spec;
use orchestrate::store::Store;

mod support;

/// The shared tiny experiment with a single naive Bayes, so that the tests edit `alpha`.
static EXPERIMENT: LazyLock<String> =
    LazyLock::new(|| support::edited(support::EXPERIMENT, &[("sweep.alpha = [0.5, 1.0]", "alpha = 1.0")]));

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: support::sandbox_with(&EXPERIMENT),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        std::fs::write(self.path(name), text).unwrap();
        self.path(name)
    }

    fn store(&self) -> Store {
        Store::open(self.path("cache")).unwrap()
    }

    /// Runs an experiment file; returns task name → outcome.
    fn run(&self, file: &str) -> BTreeMap<String, Outcome> {
        support::run_in_process(&self.path(file), &self.path("cache"), 2)
    }

    fn statuses(&self, file: &str) -> BTreeMap<String, Status> {
        let experiment = spec::load(&self.path(file)).unwrap();
        let plan = plan::plan(&experiment, &self.store()).unwrap();
        experiment
            .tasks
            .iter()
            .map(|t| t.name.clone())
            .zip(plan.entries.into_iter().map(|e| e.status))
            .collect()
    }
}

fn ran(outcomes: &BTreeMap<String, Outcome>) -> Vec<&str> {
    outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Ran { .. }))
        .map(|(n, _)| n.as_str())
        .collect()
}

fn accuracy(outcomes: &BTreeMap<String, Outcome>, task: &str) -> f64 {
    match &outcomes[task] {
        Outcome::Ran { metrics, .. } => metrics.accuracy.unwrap(),
        other => panic!("{task}: {other:?}"),
    }
}

#[test]
fn first_run_computes_everything_and_second_run_nothing() {
    let sandbox = Sandbox::new();
    let first = sandbox.run("exp.toml");
    assert_eq!(ran(&first), ["data", "logreg", "nb", "tfidf"]);
    // The fixture separates the classes with sentiment words.
    assert!(accuracy(&first, "logreg") >= 0.8, "{first:?}");
    assert!(accuracy(&first, "nb") >= 0.8, "{first:?}");
    let second = sandbox.run("exp.toml");
    assert!(ran(&second).is_empty(), "{second:?}");
    assert!(second.values().all(|o| matches!(o, Outcome::Cached)));
}

#[test]
fn changing_one_parameter_reruns_that_task_and_its_dependents_only() {
    let sandbox = Sandbox::new();
    sandbox.run("exp.toml");

    sandbox.write("exp.toml", &EXPERIMENT.replace("c = 1.0", "c = 0.5"));
    let statuses = sandbox.statuses("exp.toml");
    let Status::Run(reasons) = &statuses["logreg"] else {
        panic!("logreg should rerun")
    };
    assert_eq!(reasons.len(), 1);
    assert!(
        matches!(&reasons[0], Reason::ParamChanged { name, .. } if name == "c"),
        "{reasons:?}"
    );
    assert_eq!(ran(&sandbox.run("exp.toml")), ["logreg"]);

    sandbox.write(
        "exp.toml",
        &EXPERIMENT.replace("max_features = 50", "max_features = 40"),
    );
    assert_eq!(ran(&sandbox.run("exp.toml")), ["logreg", "nb", "tfidf"]);
    let Status::Cached(_) = sandbox.statuses("exp.toml")["nb"] else {
        panic!("cached after the run")
    };
}

#[test]
fn editing_a_data_file_reruns_everything_below_it_and_moving_it_does_not() {
    let sandbox = Sandbox::new();
    sandbox.run("exp.toml");
    std::fs::create_dir(sandbox.path("moved")).unwrap();
    for file in ["train.csv", "eval.csv"] {
        std::fs::rename(sandbox.path(file), sandbox.path("moved").join(file)).unwrap();
    }
    sandbox.write(
        "moved.toml",
        &EXPERIMENT
            .replace("\"train.csv\"", "\"moved/train.csv\"")
            .replace("\"eval.csv\"", "\"moved/eval.csv\""),
    );
    assert!(ran(&sandbox.run("moved.toml")).is_empty(), "same content, same keys");

    let eval = sandbox.path("moved/eval.csv");
    let text = std::fs::read_to_string(&eval).unwrap();
    std::fs::write(&eval, text.replacen(",1\r\n", ",0\r\n", 1)).unwrap();
    let Status::Run(reasons) = &sandbox.statuses("moved.toml")["data"] else {
        panic!("data should rerun")
    };
    assert!(
        matches!(&reasons[0], Reason::FileChanged { name, .. } if name == "eval"),
        "{reasons:?}"
    );
    assert_eq!(ran(&sandbox.run("moved.toml")), ["data", "logreg", "nb", "tfidf"]);
}

#[test]
fn two_experiments_with_the_same_task_share_one_artifact() {
    let sandbox = Sandbox::new();
    sandbox.run("exp.toml");
    // Other experiment name, other task names, same configuration up to logreg.
    let other = "[experiment]\nname = \"other\"\n[datasets.imdb]\ntrain = \"train.csv\"\neval = \"eval.csv\"\ntext_column = \"review\"\n\
                 [tasks.features]\nkind = \"tfidf\"\ninputs = \"imdb\"\nmax_features = 50\n\
                 [tasks.lr]\nkind = \"logreg\"\ninputs = \"features\"\n";
    sandbox.write("other.toml", other);
    let outcomes = sandbox.run("other.toml");
    assert!(ran(&outcomes).is_empty(), "{outcomes:?}");
    assert_eq!(sandbox.store().list().unwrap().len(), 4);
}

#[test]
fn a_corrupted_artifact_is_detected_and_rebuilt() {
    let sandbox = Sandbox::new();
    sandbox.run("exp.toml");
    let experiment = spec::load(&sandbox.path("exp.toml")).unwrap();
    let store = sandbox.store();
    let key = plan::plan(&experiment, &store).unwrap().entries[experiment.find("tfidf").unwrap()]
        .key
        .clone();
    let features = store.artifact_dir(&key).join("features.safetensors");
    let mut bytes = std::fs::read(&features).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&features, &bytes).unwrap();

    let Status::Run(reasons) = &sandbox.statuses("exp.toml")["tfidf"] else {
        panic!("corrupt tfidf must rerun")
    };
    assert!(
        matches!(&reasons[0], Reason::Corrupt { detail } if detail.contains("features.safetensors")),
        "{reasons:?}"
    );
    // Its dependents' keys do not change: they stay cached.
    assert_eq!(ran(&sandbox.run("exp.toml")), ["tfidf"]);
    assert!(sandbox.statuses("exp.toml").values().all(Status::is_cached));

    // A stray file in an artifact is corruption too.
    std::fs::write(store.artifact_dir(&key).join("extra.bin"), b"x").unwrap();
    assert!(!sandbox.statuses("exp.toml")["tfidf"].is_cached());
    // So is a missing manifest.
    std::fs::remove_file(store.artifact_dir(&key).join("manifest.json")).unwrap();
    assert!(!sandbox.statuses("exp.toml")["tfidf"].is_cached());
    assert_eq!(ran(&sandbox.run("exp.toml")), ["tfidf"]);
}

#[test]
fn a_task_that_fails_while_writing_leaves_no_artifact_and_no_partial_file() {
    let sandbox = Sandbox::new();
    // The dataset task writes train.jsonl, then fails on a bad row of the eval CSV.
    let mut eval = std::fs::read_to_string(sandbox.path("eval.csv")).unwrap();
    eval.push_str("99,\"\",1\n");
    std::fs::write(sandbox.path("eval.csv"), eval).unwrap();
    let outcomes = sandbox.run("exp.toml");
    let Outcome::Failed(error) = &outcomes["data"] else {
        panic!("{outcomes:?}")
    };
    assert!(error.contains("eval.csv:22 (row 21): empty text"), "{error}");
    for task in ["tfidf", "logreg", "nb"] {
        assert!(
            matches!(outcomes[task], Outcome::Skipped(_)),
            "{task}: {:?}",
            outcomes[task]
        );
    }
    let store = sandbox.store();
    assert!(store.list().unwrap().is_empty(), "no artifact was published");
    let leftovers: Vec<_> = std::fs::read_dir(store.root().join("tmp")).unwrap().collect();
    assert!(leftovers.is_empty(), "the staging directory was removed: {leftovers:?}");
}

#[test]
fn failures_do_not_stop_independent_branches() {
    let sandbox = Sandbox::new();
    // A file without the text column: only running the dataset task finds that out.
    sandbox.write("broken.csv", "text,label\nfine,1\n");
    let body = format!(
        "{}\n[datasets.broken]\ntrain = \"broken.csv\"\neval = \"broken.csv\"\ntext_column = \"review\"\n\n\
         [tasks.broken_tfidf]\nkind = \"tfidf\"\ninputs = {{ data = \"broken\" }}\n",
        *EXPERIMENT
    );
    sandbox.write("exp.toml", &body);
    let outcomes = sandbox.run("exp.toml");
    let Outcome::Failed(error) = &outcomes["broken"] else {
        panic!("{outcomes:?}")
    };
    assert!(error.contains("review"), "{error}");
    assert!(matches!(outcomes["broken_tfidf"], Outcome::Skipped(_)), "{outcomes:?}");
    assert!(matches!(outcomes["logreg"], Outcome::Ran { .. }));
    assert!(matches!(outcomes["nb"], Outcome::Ran { .. }));
}

#[test]
fn gc_keeps_what_experiments_reference() {
    let sandbox = Sandbox::new();
    sandbox.run("exp.toml");
    sandbox.write("exp.toml", &EXPERIMENT.replace("c = 1.0", "c = 0.5"));
    sandbox.run("exp.toml");
    assert_eq!(sandbox.store().list().unwrap().len(), 5);
    let settings = orchestrate::commands::Settings::new(
        sandbox.path("cache"),
        sandbox.path("reports"),
        orchestrate::reporter::Mode::Quiet,
    );
    let collected = orchestrate::commands::gc(&settings, &[sandbox.path("exp.toml")], true).unwrap();
    assert_eq!(collected.artifacts.len(), 1, "{collected:?}");
    assert_eq!(collected.artifacts[0].task.as_deref(), Some("logreg"));
    let out = orchestrate::commands::view::render(&collected, settings.mode)
        .unwrap()
        .stdout;
    assert!(out.contains("would remove 1 artifacts"), "{out}");
    assert_eq!(sandbox.store().list().unwrap().len(), 5, "dry run removes nothing");
    orchestrate::commands::gc(&settings, &[sandbox.path("exp.toml")], false).unwrap();
    assert_eq!(sandbox.store().list().unwrap().len(), 4);
    assert!(sandbox.statuses("exp.toml").values().all(Status::is_cached));
}

#[test]
fn the_same_key_always_gives_byte_identical_artifacts() {
    let sandbox = Sandbox::new();
    let mut builds = Vec::new();
    // Several fresh builds: hash-map ordering bugs show up only some of the time.
    for attempt in 0..4 {
        sandbox.run("exp.toml");
        builds.push(
            sandbox
                .store()
                .list()
                .unwrap()
                .into_iter()
                .map(|(k, m)| (k, m.unwrap()))
                .collect::<Vec<_>>(),
        );
        std::fs::rename(sandbox.path("cache"), sandbox.path(&format!("build{attempt}"))).unwrap();
    }
    let first = builds.remove(0);
    for second in builds {
        assert_eq!(first.len(), second.len());
        for ((key_a, mut a), (key_b, mut b)) in first.clone().into_iter().zip(second) {
            assert_eq!(key_a, key_b);
            // Only the timings in metrics.json may differ.
            a.files.remove("metrics.json");
            b.files.remove("metrics.json");
            assert_eq!(a.files, b.files, "{} ({key_a})", a.task);
        }
    }
}
