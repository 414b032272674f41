//! Sweep expansion, defaults and deterministic topological order.

use orchestrate::graph::TaskGraph;
use orchestrate::spec::{self, Experiment};

fn load(body: &str) -> Experiment {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exp.toml");
    std::fs::write(
        &path,
        format!("[datasets.imdb]\ntrain = \"train.csv\"\neval = \"eval.csv\"\n{body}"),
    )
    .unwrap();
    spec::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn names(experiment: &Experiment) -> Vec<&str> {
    experiment.tasks.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn a_sweep_expands_into_named_members() {
    let e = load("[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nsweep.alpha = [0.1, 1.0, 2]\n");
    assert_eq!(
        names(&e),
        ["imdb", "f", "nb[alpha=0.1]", "nb[alpha=1.0]", "nb[alpha=2]"]
    );
    let alphas: Vec<f64> = e.tasks[2..]
        .iter()
        .map(|t| t.params["alpha"].as_f64().unwrap())
        .collect();
    assert_eq!(alphas, [0.1, 1.0, 2.0]);
    assert!(e.tasks[2..].iter().all(|t| t.group == "nb"));
}

#[test]
fn several_lists_make_a_grid_in_file_order() {
    let e = load("[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\n[tasks.lr.sweep]\nc = [0.5, 1.0]\nmax_iter = [10, 100]\n");
    assert_eq!(
        names(&e)[2..],
        [
            "lr[c=0.5,max_iter=10]",
            "lr[c=0.5,max_iter=100]",
            "lr[c=1.0,max_iter=10]",
            "lr[c=1.0,max_iter=100]"
        ]
    );
}

#[test]
fn dependents_of_a_sweep_expand_with_it_and_diamonds_join() {
    let body = "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nsweep.max_features = [10, 20]\n\
                [tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\nsweep.c = [1.0, 2.0]\n\
                [tasks.pinned]\nkind = \"naive_bayes\"\ninputs = \"f[max_features=20]\"\n";
    let e = load(body);
    assert_eq!(
        names(&e),
        [
            "imdb",
            "f[max_features=10]",
            "f[max_features=20]",
            "lr[max_features=10,c=1.0]",
            "lr[max_features=10,c=2.0]",
            "lr[max_features=20,c=1.0]",
            "lr[max_features=20,c=2.0]",
            "pinned[max_features=20]",
        ]
    );
    // Each logistic regression reads the features of its own sweep member.
    let lr = &e.tasks[e.find("lr[max_features=20,c=2.0]").unwrap()];
    assert_eq!(e.tasks[lr.inputs["features"]].name, "f[max_features=20]");
}

#[test]
fn defaults_apply_shared_then_per_kind_then_task() {
    let body = "[defaults]\nmax_iter = 7\nalpha = 0.3\n[defaults.logreg]\nc = 0.25\n\
                [tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n\
                [tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\n\
                [tasks.lr2]\nkind = \"logreg\"\ninputs = \"f\"\nc = 4.0\nmax_iter = 9\n\
                [tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\n";
    let e = load(body);
    let get = |name: &str| e.tasks[e.find(name).unwrap()].params.clone();
    assert_eq!(get("lr")["max_iter"], 7);
    assert_eq!(get("lr")["c"], 0.25);
    assert_eq!(get("lr2")["c"], 4.0);
    assert_eq!(get("lr2")["max_iter"], 9);
    assert_eq!(get("nb")["alpha"], 0.3);
    // Unset parameters resolve to the kind's defaults.
    assert_eq!(get("f")["max_features"], 5000);
    assert_eq!(get("lr")["tol"], 0.0001);
}

#[test]
fn includes_share_datasets_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("common.toml"),
        "[datasets.imdb]\ntrain = \"t.csv\"\neval = \"e.csv\"\n[defaults]\nmax_iter = 5\n",
    )
    .unwrap();
    let path = dir.path().join("exp.toml");
    std::fs::write(&path, "include = \"common.toml\"\n[defaults]\nmax_iter = 6\n[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\n").unwrap();
    let e = spec::load(&path).unwrap();
    assert_eq!(e.name, "exp");
    assert_eq!(
        e.tasks[e.find("lr").unwrap()].params["max_iter"],
        6,
        "the including file wins"
    );
}

#[test]
fn a_relative_model_path_in_defaults_is_relative_to_the_file_that_sets_it() {
    // experiments/exp.toml includes experiments/common/shared.toml; the model lives in
    // models/tiny, next to experiments/.
    let root = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-bert");
    let model = root.path().join("models/tiny");
    std::fs::create_dir_all(&model).unwrap();
    for file in std::fs::read_dir(&fixture).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, model.join(file.file_name().unwrap())).unwrap();
    }
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    let common = root.path().join("experiments/common");
    std::fs::create_dir_all(&common).unwrap();
    let shared = format!(
        "[datasets.tiny]\ntrain = \"{}\"\neval = \"{}\"\n\
         [tasks.tokens]\nkind = \"tokenize\"\ninputs = \"tiny\"\nmax_len = 16\n",
        data.join("train.csv").display(),
        data.join("eval.csv").display()
    );
    let folder = |e: &Experiment, task: &str| {
        let task = &e.tasks[e.find(task).unwrap()];
        task.base_dir
            .join(task.params["model"].as_str().unwrap())
            .canonicalize()
            .unwrap()
    };
    let expected = model.canonicalize().unwrap();
    let exp = root.path().join("experiments/exp.toml");
    let include = "include = \"common/shared.toml\"\n";
    let main = "[tasks.ft]\nkind = \"finetune\"\ninputs = \"tokens\"\n";

    // Set in the including file: the included file's task gets the same folder.
    std::fs::write(common.join("shared.toml"), &shared).unwrap();
    std::fs::write(&exp, format!("{include}[defaults]\nmodel = \"../models/tiny\"\n{main}")).unwrap();
    let e = spec::load(&exp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(folder(&e, "tokens"), expected);
    assert_eq!(folder(&e, "ft"), expected);

    // Set in the included file: the including file's task gets the same folder.
    std::fs::write(
        common.join("shared.toml"),
        format!("[defaults]\nmodel = \"../../models/tiny\"\n{shared}"),
    )
    .unwrap();
    std::fs::write(&exp, format!("{include}{main}")).unwrap();
    let e = spec::load(&exp).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(folder(&e, "tokens"), expected);
    assert_eq!(folder(&e, "ft"), expected);
}

#[test]
fn topological_order_is_deterministic_and_respects_inputs() {
    // Declared before their inputs, in a scrambled order.
    let body = "[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f2\"\n\
                [tasks.lr]\nkind = \"logreg\"\ninputs = \"f1\"\n\
                [tasks.f2]\nkind = \"tfidf\"\ninputs = \"imdb\"\n\
                [tasks.f1]\nkind = \"tfidf\"\ninputs = \"imdb\"\n";
    let first = load(body);
    for _ in 0..5 {
        assert_eq!(names(&load(body)), names(&first));
    }
    assert_eq!(names(&first), ["imdb", "f2", "nb", "f1", "lr"]);
    let graph = TaskGraph::new(&first.tasks);
    let order = graph.topological_order();
    for (position, &task) in order.iter().enumerate() {
        for upstream in graph.dependencies(task) {
            assert!(
                order[..position].contains(&upstream),
                "{} before its input",
                first.tasks[task].name
            );
        }
    }
}

#[test]
fn a_lora_grid_over_target_modules_and_dropout() {
    // HW7's shape: r × target_modules × lora_dropout, alpha tied to the rank.
    let e = load(
        "[tasks.tokens]\nkind = \"tokenize\"\ninputs = \"imdb\"\nmodel = \"m\"\n\
         [tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\nmodel = \"m\"\nlora_alpha = \"2*r\"\n\
         [tasks.lora.sweep]\nr = [32, 64]\n\
         target_modules = [[\"q_lin\", \"k_lin\", \"v_lin\", \"out_lin\"], [\"q_lin\", \"k_lin\", \"v_lin\", \"out_lin\", \"lin1\", \"lin2\"]]\n\
         lora_dropout = [0.1, 0.2]\n",
    );
    let members: Vec<_> = e.tasks.iter().filter(|t| t.group == "lora").collect();
    assert_eq!(members.len(), 8);
    let combos: std::collections::BTreeSet<(i64, usize, String)> = members
        .iter()
        .map(|t| {
            (
                t.params["r"].as_i64().unwrap(),
                t.params["target_modules"].as_array().unwrap().len(),
                t.params["lora_dropout"].to_string(),
            )
        })
        .collect();
    assert_eq!(combos.len(), 8, "every combination once: {combos:?}");
    let names: std::collections::BTreeSet<&str> = members.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.len(), 8, "distinct member names: {names:?}");
}

#[test]
fn every_shipped_experiment_file_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/experiments");
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let experiment = spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(!experiment.tasks.is_empty(), "{}", path.display());
            loaded += 1;
        }
    }
    assert!(loaded >= 4, "{loaded} experiment files");
}
