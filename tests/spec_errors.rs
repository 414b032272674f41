//! Every class of experiment-file error names the file, line, column and key.

use std::path::PathBuf;

use orchestrate::spec;

const HEAD: &str = r#"[experiment]
name = "t"

[datasets.imdb]
train = "train.csv"
eval = "eval.csv"
"#;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// (case, file body after HEAD, expected line, column, key, message fragment)
type Case = (
    &'static str,
    &'static str,
    usize,
    usize,
    Option<&'static str>,
    &'static str,
);
const CASES: &[Case] = &[
    ("syntax", "[tasks.tfidf\nkind = 1\n", 7, 13, None, "invalid TOML"),
    ("unknown top-level key", "[task.tfidf]\nkind = \"tfidf\"\n", 7, 2, Some("task"), "unknown top-level key `task`"),
    ("unknown kind", "[tasks.x]\nkind = \"svm\"\n", 8, 8, Some("tasks.x.kind"), "unknown task kind `svm`"),
    ("missing kind", "[tasks.x]\ninputs = { data = \"imdb\" }\n", 7, 8, Some("tasks.x"), "has no `kind`"),
    ("kind of wrong type", "[tasks.x]\nkind = 3\n", 8, 8, Some("tasks.x.kind"), "must be a string, found integer"),
    ("unknown parameter", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\nmax_featurs = 10\n", 10, 1, Some("tasks.tfidf.max_featurs"), "unknown parameter `max_featurs`"),
    ("wrong parameter type", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\nmax_features = \"many\"\n", 10, 1, Some("tasks.tfidf.max_features"), "invalid type: string \"many\""),
    ("unknown input slot", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { dataset = \"imdb\" }\n", 9, 12, Some("tasks.tfidf.inputs.dataset"), "has no input `dataset`"),
    ("missing input", "[tasks.tfidf]\nkind = \"tfidf\"\n", 7, 8, Some("tasks.tfidf.inputs"), "needs input `data`"),
    ("missing reference", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imbd\" }\n", 9, 19, Some("tasks.tfidf.inputs.data"), "unknown task `imbd`"),
    ("reference of the wrong kind", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\n[tasks.lr]\nkind = \"logreg\"\ninputs = { features = \"imdb\" }\n", 12, 23, Some("tasks.lr.inputs.features"), "must be a task of kind tfidf, but `imdb` is a `dataset`"),
    ("sweep that is not a list", "[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nsweep = { alpha = 1.0 }\n", 10, 19, Some("tasks.nb.sweep.alpha"), "must be a list of values to sweep over"),
    ("sweep of an unknown parameter", "[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nsweep = { beta = [1.0] }\n", 10, 11, Some("tasks.nb.sweep.beta"), "unknown parameter `beta`"),
    ("set and swept", "[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nalpha = 1.0\nsweep = { alpha = [1.0] }\n", 11, 11, Some("tasks.nb.sweep.alpha"), "both set and swept"),
    ("swept value of the wrong type", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nsweep = { lowercase = [true, \"no\"] }\n", 10, 11, Some("tasks.f.lowercase"), "invalid type: string \"no\""),
    ("duplicate task", "[tasks.imdb]\nkind = \"tfidf\"\ninputs = \"imdb\"\n", 7, 8, Some("tasks.imdb"), "declared twice"),
    ("bad default", "[defaults]\nmax_itr = 10\n", 8, 1, Some("defaults.max_itr"), "neither a parameter of any task kind"),
    ("bad per-kind default", "[defaults.logreg]\nalpha = 10\n", 8, 1, Some("defaults.logreg.alpha"), "unknown parameter `alpha` for kind `logreg`"),
    ("default of the wrong type", "[defaults]\nmax_iter = \"x\"\n[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\n", 8, 1, Some("tasks.lr.max_iter"), "invalid type: string \"x\""),
    ("group_by_length neither a bool nor \"shuffled\"", "[tasks.t]\nkind = \"tokenize\"\ninputs = \"imdb\"\nmodel = \"m\"\n[tasks.ft]\nkind = \"finetune\"\ninputs = \"t\"\nmodel = \"m\"\ngroup_by_length = \"sorted\"\n", 15, 1, Some("tasks.ft.group_by_length"), "expected true, false or \"shuffled\""),
    ("invalid task name", "[tasks.\"a[b]\"]\nkind = \"tfidf\"\n", 7, 8, Some("tasks.a[b]"), "invalid task name"),
];

#[test]
fn each_error_class_names_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (case, body, line, col, key, fragment) in CASES {
        let path = write(&dir, "exp.toml", &format!("{HEAD}{body}"));
        let err = spec::load(&path).expect_err(case);
        assert_eq!(err.line_col(), Some((*line, *col)), "{case}: {err}");
        assert_eq!(err.key.as_deref(), *key, "{case}: {err}");
        assert!(
            err.message.contains(fragment),
            "{case}: {:?} should contain {fragment:?}",
            err.message
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}:{col}: ", path.display())),
            "{case}: {shown}"
        );
        assert!(shown.contains('^'), "{case}: the rendering points at the span\n{shown}");
    }
}

#[test]
fn a_cycle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.a]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\n[tasks.lr]\nkind = \"logreg\"\ninputs = { features = \"b\" }\n[tasks.b]\nkind = \"tfidf\"\ninputs = { data = \"lr\" }\n";
    let path = write(&dir, "exp.toml", &format!("{HEAD}{body}"));
    let err = spec::load(&path).unwrap_err();
    assert!(
        err.message.contains("dependency cycle: lr -> b -> lr"),
        "{}",
        err.message
    );
    assert_eq!(err.line_col(), Some((10, 8)));
}

#[test]
fn did_you_mean_for_typos() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = \"imdb\"\nmax_featurs = 10\n";
    let path = write(&dir, "exp.toml", &format!("{HEAD}{body}"));
    let err = spec::load(&path).unwrap_err();
    assert!(err.to_string().contains("did you mean `max_features`?"), "{err}");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let common = write(&dir, "common.toml", "[defaults.tfidf]\nmin_dff = 2\n");
    let path = write(&dir, "exp.toml", &format!("include = [\"common.toml\"]\n{HEAD}"));
    let err = spec::load(&path).unwrap_err();
    assert_eq!(err.location.as_ref().unwrap().source.path, common);
    assert_eq!(err.line_col(), Some((2, 1)));

    let path = write(&dir, "loop.toml", "include = \"loop.toml\"\n");
    let err = spec::load(&path).unwrap_err();
    assert!(err.message.contains("include cycle"), "{err}");

    let path = write(&dir, "missing.toml", "include = \"nope.toml\"\n");
    let err = spec::load(&path).unwrap_err();
    assert!(err.message.contains("cannot read included file"), "{err}");
    assert_eq!(err.line_col(), Some((1, 11)));

    // A device would be read forever (a hazard spotted while writing the loader fuzz target).
    let path = write(&dir, "device.toml", "include = \"/dev/zero\"\n");
    let err = spec::load(&path).unwrap_err();
    assert!(err.message.contains("/dev/zero: not a regular file"), "{err}");
    assert_eq!(err.line_col(), Some((1, 11)));
}

#[test]
fn unreadable_file_is_an_error_not_a_panic() {
    let err = spec::load(std::path::Path::new("/nonexistent/exp.toml")).unwrap_err();
    assert!(err
        .to_string()
        .contains("cannot read experiment file /nonexistent/exp.toml"));
}
