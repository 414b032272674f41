//! Models and datasets by hub id against a mock hub on 127.0.0.1 (tests/mock_hub): first
//! download into Python's cache layout, a warm cache with the server stopped, offline mode,
//! a moved `main` re-keying, 404/401, a connection cut mid-file, and a cache shared with
//! Python's huggingface_hub.

mod mock_hub;
mod support;

use std::path::{Path, PathBuf};

use mock_hub::MockHub;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn fixture(path: &str) -> PathBuf {
    Path::new(ROOT).join("tests/fixtures").join(path)
}

/// A hub with the tiny DistilBERT as `distilbert-base-uncased` and the tiny IMDB Parquet
/// files as `stanfordnlp/imdb`.
fn hub() -> MockHub {
    let hub = MockHub::start();
    hub.push_folder("models", "distilbert-base-uncased", &fixture("models/tiny-distilbert"));
    hub.push_folder("datasets", "stanfordnlp/imdb", &fixture("hub/imdb"));
    hub
}

const EXPERIMENT: &str = r#"[experiment]
name = "hub"

[defaults]
model = "distilbert-base-uncased"
threads = 1

[datasets.imdb]
hub = "stanfordnlp/imdb"
train = "train[:30]"
eval = "test[:50%]"

[tasks.tokens]
kind = "tokenize"
inputs = { data = "imdb" }
max_len = 32

[tasks.zero_shot]
kind = "evaluate"
inputs = { tokens = "tokens" }
"#;

/// `orchestrate` in `dir` with its Hugging Face home there and the mock hub as endpoint.
fn orchestrate(dir: &Path, endpoint: &str) -> assert_cmd::Command {
    let mut cmd = support::orchestrate(dir);
    cmd.env("HF_HOME", dir.join("hf"))
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("XDG_CACHE_HOME");
    cmd
}

fn run(dir: &Path, endpoint: &str, args: &[&str]) -> (bool, String, String) {
    let out = orchestrate(dir, endpoint).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_offline(dir: &Path, endpoint: &str) -> (bool, String) {
    let out = orchestrate(dir, endpoint)
        .env("HF_HUB_OFFLINE", "1")
        .args(["run", "exp.toml"])
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn sandbox(experiment: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), experiment).unwrap();
    dir
}

fn model_dir(dir: &Path) -> PathBuf {
    dir.join("hf/hub/models--distilbert-base-uncased")
}

#[test]
fn downloads_once_then_runs_from_the_cache_with_the_hub_stopped() {
    let mut hub = hub();
    let dir = sandbox(EXPERIMENT);
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(ok, "{err}");
    assert!(err.contains("3 ran, 0 cached"), "{err}");
    // Python's layout: refs/main → snapshots/<commit>/ of links into blobs/.
    let repo = model_dir(dir.path());
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    let snapshot = repo.join("snapshots").join(commit.trim());
    for file in ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt"] {
        let link = snapshot.join(file);
        assert!(
            std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
            "{file}"
        );
        assert_eq!(
            std::fs::read(&link).unwrap(),
            std::fs::read(fixture("models/tiny-distilbert").join(file)).unwrap()
        );
    }
    assert!(
        !snapshot.join("expected.safetensors").exists(),
        "only the files a model needs"
    );
    let shard = dir
        .path()
        .join("hf/hub/datasets--stanfordnlp--imdb/snapshots")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("plain_text/train-00000-of-00001.parquet");
    assert!(shard.is_file(), "{}", shard.display());
    assert!(!hub.downloads().is_empty());
    // The report records the commit each hub file came from.
    let (ok, report, err) = run(dir.path(), &hub.endpoint(), &["--json", "report", "exp.toml"]);
    assert!(ok, "{err}");
    assert!(
        report.contains("tokens.model_revision") && report.contains(commit.trim()),
        "{report}"
    );
    // Server stopped: nothing is downloaded and nothing runs.
    hub.stop();
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(ok, "{err}");
    assert!(err.contains("0 ran, 3 cached"), "{err}");
    assert!(err.contains("unreachable"), "says it used the cache: {err}");
    // Offline mode: the same without even asking.
    let (ok, err) = run_offline(dir.path(), &hub.endpoint());
    assert!(ok && err.contains("0 ran, 3 cached"), "{err}");
    assert!(!err.contains("unreachable"), "{err}");
}

#[test]
fn a_moved_main_rekeys_and_why_names_the_commits() {
    let hub = hub();
    let dir = sandbox(EXPERIMENT);
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(ok, "{err}");
    let old = std::fs::read_to_string(model_dir(dir.path()).join("refs/main")).unwrap();
    // The same files under a new commit: only the revision changed.
    let new = hub.push_folder("models", "distilbert-base-uncased", &fixture("models/tiny-distilbert"));
    assert_ne!(old.trim(), new);
    let (ok, out, err) = run(dir.path(), &hub.endpoint(), &["why", "tokens", "-e", "exp.toml"]);
    assert!(ok, "{err}");
    let expected = format!("model revision changed ({} → {})", &old[..7], &new[..7]);
    assert!(out.contains(&expected), "{out}");
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(ok, "{err}");
    assert!(err.contains("2 ran, 1 cached"), "the dataset stays cached: {err}");
    // A pinned revision (`model@<branch, tag or commit>`) reads the old commit again, from the cache.
    let pinned = format!("model = \"distilbert-base-uncased@{}\"", old.trim());
    let (ok, err) = run_with_model(dir.path(), &hub.endpoint(), &pinned);
    assert!(ok, "{err}");
    assert!(err.contains("0 ran, 3 cached"), "{err}");
    // `revision = …` beside the model (in [defaults] here) is the same pin, the same keys.
    let with_key = format!("model = \"distilbert-base-uncased\"\nrevision = \"{}\"", old.trim());
    let (ok, err) = run_with_model(dir.path(), &hub.endpoint(), &with_key);
    assert!(ok, "{err}");
    assert!(err.contains("0 ran, 3 cached"), "{err}");
    // Both spellings at once is an error that names the key.
    let both = format!(
        "model = \"distilbert-base-uncased@{}\"\nrevision = \"{}\"",
        new.trim(),
        old.trim()
    );
    let (ok, err) = run_with_model(dir.path(), &hub.endpoint(), &both);
    assert!(!ok);
    assert!(err.contains("revision") && err.contains("not both"), "{err}");
}

/// Runs the experiment with its `model = …` default line replaced by `model_lines`.
fn run_with_model(dir: &Path, endpoint: &str, model_lines: &str) -> (bool, String) {
    let text = EXPERIMENT.replace("model = \"distilbert-base-uncased\"", model_lines);
    std::fs::write(dir.join("exp.toml"), text).unwrap();
    let (ok, _, err) = run(dir, endpoint, &["run", "exp.toml"]);
    (ok, err)
}

#[test]
fn hub_errors_name_the_repository_and_what_to_do() {
    let hub = hub();
    let gated = hub.push_folder("models", "org/gated", &fixture("models/tiny-distilbert"));
    hub.gate("models", "org/gated");
    let mut bin_only = std::collections::BTreeMap::new();
    bin_only.insert(
        "config.json".to_string(),
        std::fs::read(fixture("models/tiny-distilbert/config.json")).unwrap(),
    );
    bin_only.insert("pytorch_model.bin".to_string(), b"not really".to_vec());
    bin_only.insert("vocab.txt".to_string(), b"[PAD]\n".to_vec());
    hub.push("models", "org/old-weights", bin_only);
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "distilbert-base-uncased",
            "stanfordnlp/unknown",
            &["dataset `stanfordnlp/unknown` not found on the hub", "404"],
        ),
        (
            "org/missing",
            "stanfordnlp/imdb",
            &["model `org/missing` not found on the hub", "404"],
        ),
        (
            "org/gated",
            "stanfordnlp/imdb",
            &["model `org/gated` is gated or private (401)", "set HF_TOKEN"],
        ),
        (
            "org/old-weights",
            "stanfordnlp/imdb",
            &["model `org/old-weights`", "has only pytorch_model.bin"],
        ),
        (
            "distilbert-base-uncased@v9",
            "stanfordnlp/imdb",
            &["model `distilbert-base-uncased` has no revision `v9`"],
        ),
    ];
    for (model, dataset, fragments) in cases {
        let dir = sandbox(
            &EXPERIMENT
                .replace("\"distilbert-base-uncased\"", &format!("\"{model}\""))
                .replace("\"stanfordnlp/imdb\"", &format!("\"{dataset}\"")),
        );
        let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
        assert!(!ok, "{model}: should fail");
        for fragment in *fragments {
            assert!(err.contains(fragment), "{model}/{dataset}: {fragment:?} in {err}");
        }
        assert!(
            !err.contains(" ran,"),
            "fails while planning, before any task runs: {err}"
        );
    }
    // The token opens the gated repo.
    let dir = sandbox(&EXPERIMENT.replace("\"distilbert-base-uncased\"", "\"org/gated\""));
    let out = orchestrate(dir.path(), &hub.endpoint())
        .env("HF_TOKEN", mock_hub::TOKEN)
        .args(["run", "exp.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir
        .path()
        .join("hf/hub/models--org--gated/snapshots")
        .join(&gated)
        .is_dir());

    // Offline with nothing cached; a slice past the split's end.
    let dir = sandbox(EXPERIMENT);
    let (ok, err) = run_offline(dir.path(), &hub.endpoint());
    assert!(!ok);
    assert!(
        err.contains("is not in the Hugging Face cache") && err.contains("HF_HUB_OFFLINE is set"),
        "{err}"
    );
    assert!(err.contains("stanfordnlp/imdb"), "{err}");
    let dir = sandbox(&EXPERIMENT.replace("train[:30]", "train[:10000]"));
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(!ok);
    assert!(
        err.contains("dataset `stanfordnlp/imdb`")
            && err.contains("row 10000 is out of range, the `train` split has 40 rows"),
        "{err}"
    );
    let dir = sandbox(&EXPERIMENT.replace("test[:50%]", "validation"));
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(!ok);
    assert!(err.contains("no split `validation`"), "{err}");
}

#[test]
fn a_cut_download_leaves_nothing_that_looks_complete_and_resumes() {
    let hub = hub();
    let dir = sandbox(EXPERIMENT);
    hub.cut_next("model.safetensors");
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(!ok, "the cut must fail the run: {err}");
    assert!(err.contains("model.safetensors"), "{err}");
    let repo = model_dir(dir.path());
    let complete: Vec<PathBuf> = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("model.safetensors"))
        .filter(|p| p.exists())
        .collect();
    assert!(complete.is_empty(), "a half file in the snapshot: {complete:?}");
    let (ok, _, err) = run(dir.path(), &hub.endpoint(), &["run", "exp.toml"]);
    assert!(ok, "{err}");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    assert_eq!(
        std::fs::read(repo.join("snapshots").join(commit.trim()).join("model.safetensors")).unwrap(),
        std::fs::read(fixture("models/tiny-distilbert/model.safetensors")).unwrap()
    );
}

/// Python for the cross-cache test: `$ORCHESTRATE_HF_PYTHON`, else `.venv-hf`; it must
/// have huggingface_hub. Skipped without one unless `ORCHESTRATE_REQUIRE_HF=1`.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os("ORCHESTRATE_HF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join(".venv-hf/bin/python"));
    let usable = std::process::Command::new(&python)
        .args(["-c", "import huggingface_hub"])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        return Some(python);
    }
    assert!(
        std::env::var_os("ORCHESTRATE_REQUIRE_HF").is_none(),
        "ORCHESTRATE_REQUIRE_HF is set but {} cannot import huggingface_hub: run scripts/setup-hf.sh",
        python.display()
    );
    eprintln!(
        "skipped: no Python with huggingface_hub ({}); run scripts/setup-hf.sh",
        python.display()
    );
    None
}

#[test]
fn one_cache_serves_python_and_orchestrate() {
    let Some(python) = python() else { return };
    let mut hub = hub();
    let endpoint = hub.endpoint();
    // Python downloads the model; orchestrate then reads it without a download.
    let dir = sandbox(EXPERIMENT);
    let script = "import sys\nfrom huggingface_hub import snapshot_download\n\
                  print(snapshot_download(sys.argv[1], allow_patterns=['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt']))";
    let out = std::process::Command::new(&python)
        .args(["-c", script, "distilbert-base-uncased"])
        .env("HF_HOME", dir.path().join("hf"))
        .env("HF_ENDPOINT", &endpoint)
        .env_remove("HF_HUB_CACHE")
        .env("HF_HUB_DISABLE_XET", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    hub.clear_log();
    let (ok, _, err) = run(dir.path(), &endpoint, &["run", "exp.toml"]);
    assert!(ok, "{err}");
    let model_downloads: Vec<String> = hub
        .downloads()
        .into_iter()
        .filter(|l| !l.contains("/datasets/"))
        .collect();
    assert!(
        model_downloads.is_empty(),
        "orchestrate re-downloaded: {model_downloads:?}"
    );

    // orchestrate downloads (another home); Python finds every file offline.
    let other = sandbox(EXPERIMENT);
    let (ok, _, err) = run(other.path(), &endpoint, &["run", "exp.toml"]);
    assert!(ok, "{err}");
    hub.stop();
    let script = "import sys\nfrom huggingface_hub import hf_hub_download, snapshot_download\n\
                  for f in ['config.json', 'model.safetensors', 'tokenizer.json', 'vocab.txt']:\n    print(hf_hub_download('distilbert-base-uncased', f))\n\
                  print(hf_hub_download('stanfordnlp/imdb', 'plain_text/train-00000-of-00001.parquet', repo_type='dataset'))";
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .env("HF_HOME", other.path().join("hf"))
        .env("HF_ENDPOINT", &endpoint)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("HF_HUB_CACHE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed.lines().count(), 5, "{printed}");
    assert!(
        printed.contains("models--distilbert-base-uncased/snapshots/"),
        "{printed}"
    );
}
