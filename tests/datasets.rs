//! The `dataset` kind on the files users keep: a headerless TSV, JSON Lines, Parquet, an
//! aclImdb-style folder, one CSV split by `eval_fraction`; and its input errors.

mod support;

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Rows of the tiny fixture: (review, label).
fn rows(split: &str) -> Vec<(String, u8)> {
    let mut reader =
        csv::Reader::from_path(Path::new(ROOT).join("tests/fixtures/tiny").join(format!("{split}.csv"))).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[1].to_string(), r[2].parse().unwrap())
        })
        .collect()
}

fn experiment(dataset: &str) -> String {
    format!(
        "[experiment]\nname = \"formats\"\n\n[datasets.data]\n{dataset}\n\n\
         [tasks.tfidf]\nkind = \"tfidf\"\ninputs = {{ data = \"data\" }}\nmax_features = 50\n\n\
         [tasks.logreg]\nkind = \"logreg\"\ninputs = {{ features = \"tfidf\" }}\n"
    )
}

/// Runs `exp.toml` in `dir`; returns the dataset's metrics row counts from its artifact.
fn run_ok(dir: &Path) -> (usize, usize) {
    let out = support::orchestrate(dir).args(["run", "exp.toml"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("3 ran"), "{err}");
    let metrics = glob_metrics(&dir.join("cache"));
    (metrics.0, metrics.1)
}

/// (train_rows, eval_rows) of the one dataset artifact under `cache`.
fn glob_metrics(cache: &Path) -> (usize, usize) {
    let mut stack = vec![cache.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "metrics.json") {
                let value: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                if let (Some(t), Some(e)) = (value["train_rows"].as_u64(), value["eval_rows"].as_u64()) {
                    return (t as usize, e as usize);
                }
            }
        }
    }
    panic!("no dataset metrics under {}", cache.display());
}

/// Writes `exp.toml` with `dataset` and runs it: the run must fail; returns its stderr.
fn fails(dir: &Path, dataset: &str) -> String {
    std::fs::write(dir.join("exp.toml"), experiment(dataset)).unwrap();
    let out = support::orchestrate(dir).args(["run", "exp.toml"]).output().unwrap();
    assert!(!out.status.success(), "{dataset} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_split(dir: &Path, name: &str, split: &str, line: impl Fn(&str, u8) -> String) {
    let body: String = rows(split).iter().map(|(t, l)| line(t, *l)).collect();
    std::fs::write(dir.join(name), body).unwrap();
}

#[test]
fn headerless_tsv() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "eval"] {
        // The UCI sentence files: `sentence<TAB>label`, no header, stray quotes kept.
        write_split(dir.path(), &format!("{split}.txt"), split, |t, l| {
            format!("\"{t}\t{l}\n")
        });
    }
    std::fs::write(
        dir.path().join("exp.toml"),
        experiment("train = \"train.txt\"\neval = \"eval.txt\"\ndelimiter = \"\\t\"\nhas_header = false\ntext_column = \"0\"\nlabel_column = \"1\""),
    )
    .unwrap();
    assert_eq!(run_ok(dir.path()), (40, 20));
    // The default column names do not exist in a headerless file: the error says why.
    let err = fails(
        dir.path(),
        "train = \"train.txt\"\neval = \"eval.txt\"\nhas_header = false",
    );
    assert!(
        err.contains("train.txt: no column `text` (columns: 0, 1)") && err.contains("named by index"),
        "{err}"
    );
}

#[test]
fn json_lines_with_named_labels() {
    let dir = tempfile::tempdir().unwrap();
    for split in ["train", "eval"] {
        write_split(dir.path(), &format!("{split}.jsonl"), split, |t, l| {
            format!(
                "{}\n",
                serde_json::json!({"sentence": t, "sentiment": if l == 1 { "pos" } else { "neg" }})
            )
        });
    }
    std::fs::write(
        dir.path().join("exp.toml"),
        experiment("train = \"train.jsonl\"\neval = \"eval.jsonl\"\ntext_column = \"sentence\"\nlabel_column = \"sentiment\"\nlabels = { neg = 0, pos = 1 }"),
    )
    .unwrap();
    assert_eq!(run_ok(dir.path()), (40, 20));
}

#[test]
fn parquet_file_and_its_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(ROOT).join("tests/fixtures/hub/reviews.parquet"),
        dir.path().join("reviews.parquet"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("exp.toml"),
        experiment("train = \"reviews.parquet[:30]\"\neval = \"reviews.parquet[30:]\"\ntext_column = \"review\""),
    )
    .unwrap();
    assert_eq!(run_ok(dir.path()), (30, 10));
    let err = fails(dir.path(), "train = \"reviews.parquet\"\neval = \"reviews.parquet\"");
    assert!(
        err.contains("reviews.parquet: no column `text` (columns: review, label)"),
        "{err}"
    );
}

#[test]
fn aclimdb_folder() {
    let dir = tempfile::tempdir().unwrap();
    for (split, folder) in [("train", "train"), ("eval", "test")] {
        for (i, (text, label)) in rows(split).iter().enumerate() {
            let class = if *label == 1 { "pos" } else { "neg" };
            let path = dir.path().join("aclImdb").join(folder).join(class);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join(format!("{i}_{}.txt", if *label == 1 { 8 } else { 2 })), text).unwrap();
        }
    }
    // The unlabelled reviews of the real download are skipped.
    std::fs::create_dir_all(dir.path().join("aclImdb/train/unsup")).unwrap();
    std::fs::write(dir.path().join("aclImdb/train/unsup/0_0.txt"), "no label").unwrap();
    std::fs::write(
        dir.path().join("exp.toml"),
        experiment("train = \"aclImdb/train\"\neval = \"aclImdb/test\""),
    )
    .unwrap();
    assert_eq!(run_ok(dir.path()), (40, 20));
    let labels = std::fs::read_to_string(find(&dir.path().join("cache"), "labels.json")).unwrap();
    assert_eq!(serde_json::from_str::<Vec<String>>(&labels).unwrap(), ["neg", "pos"]);
    // Editing a review re-keys the dataset.
    std::fs::write(dir.path().join("aclImdb/train/pos/1_8.txt"), "changed").unwrap();
    let out = support::orchestrate(dir.path())
        .args(["run", "exp.toml"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("3 ran"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find(dir: &Path, name: &str) -> std::path::PathBuf {
    fn search(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
        std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                search(&path, name)
            } else {
                path.file_name().is_some_and(|n| n == name).then_some(path)
            }
        })
    }
    search(dir, name).unwrap_or_else(|| panic!("no {name} under {}", dir.display()))
}

#[test]
fn one_csv_split_by_eval_fraction_keeps_the_label_balance() {
    let dir = support::sandbox_with(&experiment(
        "train = \"train.csv\"\ntext_column = \"review\"\neval_fraction = 0.2\nstratify = true",
    ));
    assert_eq!(run_ok(dir.path()), (32, 8));
    let eval = std::fs::read_to_string(find(&dir.path().join("cache"), "eval.jsonl")).unwrap();
    let positives = eval.lines().filter(|l| l.ends_with("\"label\":1}")).count();
    let total_positive = rows("train").iter().filter(|(_, l)| *l == 1).count();
    assert_eq!(positives, (total_positive as f64 * 0.2).ceil() as usize, "{eval}");
}

#[test]
fn malformed_splits_and_fractions_fail_at_spec_load_with_their_position() {
    let cases = [
        (
            "train = \"train.csv\"\neval = \"eval.csv[:abc]\"",
            6,
            "`abc` is not a row number or a percentage",
        ),
        (
            "train = \"train.csv\"\neval_fraction = 1.5",
            6,
            "eval_fraction must be between 0 and 1",
        ),
        (
            "train = \"train.csv\"\neval = \"eval.csv\"\ndelimiter = \";;\"",
            7,
            "delimiter must be one ASCII character",
        ),
    ];
    for (dataset, line, message) in cases {
        let dir = support::sandbox_with(&experiment(dataset));
        let out = support::orchestrate(dir.path())
            .args(["run", "exp.toml"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(&format!("exp.toml:{line}:")), "{dataset}: {err}");
        assert!(err.contains(message), "{err}");
    }
    // `eval` and `eval_fraction` both, or neither: named before anything runs.
    let dir = support::sandbox_with(&experiment("train = \"train.csv\"\ntext_column = \"review\""));
    let out = support::orchestrate(dir.path())
        .args(["run", "exp.toml"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("give `eval` (a file or split) or `eval_fraction`") && !err.contains(" ran,"),
        "{err}"
    );
}
