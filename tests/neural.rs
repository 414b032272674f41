//! The transformer tasks on the tiny random BERT fixture and a small separable dataset
//! whose words are in the fixture's vocabulary.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orchestrate::plan;
use orchestrate::scheduler::Outcome;
use orchestrate::spec;
use orchestrate::store::Store;
use serde_json::Value;

fn experiment(body: &str) -> String {
    support::models::tiny_bert_experiment("", body)
}

struct Run {
    outcomes: BTreeMap<String, Outcome>,
    cache: PathBuf,
}

impl Run {
    fn metrics(&self, task: &str) -> Value {
        match &self.outcomes[task] {
            Outcome::Ran { metrics, .. } => serde_json::to_value(metrics).unwrap(),
            other => panic!("{task}: {other:?}"),
        }
    }

    fn error(&self, task: &str) -> &str {
        match &self.outcomes[task] {
            Outcome::Failed(error) => error,
            other => panic!("{task} should fail: {other:?}"),
        }
    }

    /// A JSON file of `task`'s artifact.
    fn json_file(&self, task: &str, file: &str) -> Value {
        let store = Store::open(&self.cache).unwrap();
        let (key, _) = store
            .list()
            .unwrap()
            .into_iter()
            .find(|(_, m)| m.as_ref().is_ok_and(|m| m.task == task))
            .unwrap_or_else(|| panic!("no artifact of {task}"));
        serde_json::from_slice(&std::fs::read(store.artifact_dir(&key).join(file)).unwrap()).unwrap()
    }

    /// Manifest of the artifact of `task` (the most recent one of that name).
    fn manifest(&self, task: &str) -> orchestrate::store::Manifest {
        let store = Store::open(&self.cache).unwrap();
        store
            .list()
            .unwrap()
            .into_iter()
            .map(|(_, m)| m.unwrap())
            .find(|m| m.task == task)
            .unwrap()
    }
}

fn run(dir: &Path, cache: &str, body: &str) -> Run {
    let path = dir.join("exp.toml");
    std::fs::write(&path, experiment(body)).unwrap();
    let cache = dir.join(cache);
    let outcomes = support::run_in_process(&path, &cache, 1);
    Run { outcomes, cache }
}

const FINETUNE: &str = "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e-3\nepochs = 4\n\
                        [tasks.reloaded]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\", model = \"finetune\" }\n";

#[test]
fn fine_tuning_lowers_the_loss_and_its_checkpoint_reloads_to_identical_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), "cache", FINETUNE);
    let metrics = run.metrics("finetune");
    let epochs = metrics["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 4);
    let first = epochs[0]["train_loss"].as_f64().unwrap();
    let last = epochs[3]["train_loss"].as_f64().unwrap();
    assert!(last < first * 0.9, "training loss should fall: {first} → {last}");
    assert_eq!(metrics["trainable_params"], 18_924, "every parameter of the tiny BERT");
    let reloaded = run.metrics("reloaded");
    for field in ["accuracy", "f1", "eval_loss"] {
        assert_eq!(
            reloaded[field], metrics[field],
            "{field} after reloading the checkpoint"
        );
    }
    let files = run.manifest("finetune").files;
    for file in [
        "checkpoint/config.json",
        "checkpoint/model.safetensors",
        "checkpoint/tokenizer.json",
    ] {
        assert!(files.contains_key(file), "{file} in the HF layout: {:?}", files.keys());
    }
}

#[test]
fn one_seed_gives_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e-3\nepochs = 1\n";
    let a = run(dir.path(), "a", body).manifest("finetune");
    let b = run(dir.path(), "b", body).manifest("finetune");
    assert_eq!(
        a.files["checkpoint/model.safetensors"],
        b.files["checkpoint/model.safetensors"]
    );
    let other_seed = run(dir.path(), "c", &format!("{body}seed = 7\n")).manifest("finetune");
    assert_ne!(
        a.files["checkpoint/model.safetensors"],
        other_seed.files["checkpoint/model.safetensors"]
    );
    // Length-grouped batches are as reproducible as the plain shuffle.
    let grouped = format!("{body}group_by_length = true\n");
    let g1 = run(dir.path(), "g1", &grouped).manifest("finetune");
    let g2 = run(dir.path(), "g2", &grouped).manifest("finetune");
    assert_eq!(
        g1.files["checkpoint/model.safetensors"],
        g2.files["checkpoint/model.safetensors"]
    );
    assert_ne!(a.key, g1.key);
}

#[test]
fn a_training_writes_its_batch_order_and_replays_a_given_one() {
    let dir = tempfile::tempdir().unwrap();
    let body =
        "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e-3\nepochs = 2\ngroup_by_length = true\n";
    let own = run(dir.path(), "own", body);
    let order = own.json_file("finetune", "batch_order.json");
    let examples = order["examples"].as_u64().unwrap() as usize;
    let epochs: Vec<Vec<usize>> = serde_json::from_value(order["epochs"].clone()).unwrap();
    assert_eq!(epochs.len(), 2);
    for epoch in &epochs {
        let mut sorted = epoch.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (0..examples).collect::<Vec<_>>(),
            "a permutation of the training split"
        );
    }
    assert_ne!(epochs[0], epochs[1], "each epoch draws its own order");
    let weights = |run: &Run| run.manifest("finetune").files["checkpoint/model.safetensors"].clone();

    // Fed its own order, a training is the same run, under a key of its own.
    let with_order = |file: &str| format!("{body}batch_order = \"{file}\"\n");
    std::fs::write(dir.path().join("own.json"), serde_json::to_vec(&order).unwrap()).unwrap();
    let replayed = run(dir.path(), "replayed", &with_order("own.json"));
    assert_eq!(weights(&replayed), weights(&own));
    assert_ne!(replayed.manifest("finetune").key, own.manifest("finetune").key);
    assert_eq!(replayed.json_file("finetune", "batch_order.json"), order);

    // Another order trains another model, and is the order it reports.
    let reversed: Vec<Vec<usize>> = epochs.iter().map(|e| e.iter().rev().copied().collect()).collect();
    let mut other = order.clone();
    other["epochs"] = serde_json::to_value(&reversed).unwrap();
    std::fs::write(dir.path().join("reversed.json"), serde_json::to_vec(&other).unwrap()).unwrap();
    let reordered = run(dir.path(), "reordered", &with_order("reversed.json"));
    assert_ne!(weights(&reordered), weights(&own));
    assert_eq!(reordered.json_file("finetune", "batch_order.json"), other);

    // An order that is not a permutation fails the task, naming the file and the place.
    let mut twice = order.clone();
    twice["epochs"][1][3] = twice["epochs"][1][0].clone();
    std::fs::write(dir.path().join("twice.json"), serde_json::to_vec(&twice).unwrap()).unwrap();
    let bad = run(dir.path(), "bad", &with_order("twice.json"));
    let error = bad.error("finetune");
    assert!(
        error.contains("twice.json") && error.contains("epoch 2, position 3"),
        "{error}"
    );
}

#[test]
fn head_tuning_trains_the_head_only_from_features_computed_once() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.features]\nkind = \"features\"\ninputs = \"tokens\"\n\
                [tasks.head]\nkind = \"headtune\"\ninputs = \"features\"\nepochs = 2\nsweep.lr = [1e-2, 1e-3]\n\
                [tasks.naive]\nkind = \"headtune\"\ninputs = \"tokens\"\nepochs = 2\nlr = 1e-2\n\
                [tasks.zero_shot]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\" }\n";
    let run = run(dir.path(), "cache", body);
    // One features artifact serves both sweep members.
    assert_eq!(run.outcomes.keys().filter(|t| t.starts_with("features")).count(), 1);
    for task in ["head[lr=0.01]", "head[lr=0.001]", "naive"] {
        let metrics = run.metrics(task);
        // BERT's head: pooler (32×32 + 32) + classifier (32×2 + 2).
        assert_eq!(metrics["trainable_params"], 1_122, "{task}");
        assert_eq!(metrics["epochs"].as_array().unwrap().len(), 2, "{task}");
    }
    assert_eq!(run.metrics("head[lr=0.01]")["method"], "head-tuning (cached features)");
    assert_eq!(run.metrics("naive")["method"], "head-tuning");
    assert_eq!(run.metrics("zero_shot")["method"], "zero-shot");

    // The encoder in the head-tuned checkpoint is the pretrained one, bit for bit.
    let checkpoint = run
        .cache
        .join("artifacts")
        .join(&run.manifest("naive").key)
        .join("checkpoint/model.safetensors");
    let tuned = std::fs::read(checkpoint).unwrap();
    let tuned = safetensors::SafeTensors::deserialize(&tuned).unwrap();
    let base = std::fs::read(support::models::fixture("tiny-bert").join("model.safetensors")).unwrap();
    let base = safetensors::SafeTensors::deserialize(&base).unwrap();
    let name = "bert.encoder.layer.0.attention.self.query.weight";
    assert_eq!(tuned.tensor(name).unwrap().data(), base.tensor(name).unwrap().data());
}

#[test]
fn bad_input_fails_the_task_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.nothing_left]\nkind = \"tokenize\"\ninputs = \"data\"\nmax_len = 3\ndrop_longer = true\n\
                [tasks.diverges]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e12\nepochs = 1\n\
                [tasks.fine]\nkind = \"features\"\ninputs = \"tokens\"\n";
    let run = run(dir.path(), "cache", body);
    assert!(
        run.error("nothing_left")
            .contains("the train split has no examples left"),
        "{}",
        run.error("nothing_left")
    );
    let diverged = run.error("diverges");
    assert!(
        diverged.contains("at step") && diverged.contains("training diverged"),
        "{diverged}"
    );
    assert!(
        matches!(run.outcomes["fine"], Outcome::Ran { .. }),
        "independent tasks still run"
    );
}

#[test]
fn a_checkpoint_whose_head_does_not_fit_the_labels_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let three = dir.path().join("three.csv");
    std::fs::write(&three, "text,label\ngreat movie,2\nbad film,0\nthe plot,1\n").unwrap();
    let body = format!(
        "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nepochs = 1\n\
         [datasets.three]\ntrain = \"{0}\"\neval = \"{0}\"\n\
         [tasks.tokens3]\nkind = \"tokenize\"\ninputs = \"three\"\nmax_len = 32\n\
         [tasks.mismatch]\nkind = \"evaluate\"\ninputs = {{ tokens = \"tokens3\", model = \"finetune\" }}\n",
        three.display()
    );
    let run = run(dir.path(), "cache", &body);
    let error = run.error("mismatch");
    assert!(error.contains("has 2 labels, but 3 were requested"), "{error}");
}

/// Parameters of the tiny BERT fixture by name, from its safetensors file.
fn fixture_numels() -> BTreeMap<String, usize> {
    let bytes = std::fs::read(support::models::fixture("tiny-bert").join("model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().iter().product()))
        .collect()
}

/// BERT's head for 2 labels: pooler (32×32 + 32) + classifier (32×2 + 2).
const HEAD: u64 = 1_122;

#[test]
fn lora_ia3_and_bitfit_train_only_their_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\nlr = 1e-2\nepochs = 2\nsweep.r = [1, 4]\n\
                lora_alpha = \"2*r\"\nmerge = true\n\
                [tasks.merged]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\", model = \"lora\" }\n\
                [tasks.ia3]\nkind = \"ia3\"\ninputs = \"tokens\"\nlr = 1e-2\nepochs = 1\n\
                [tasks.bitfit]\nkind = \"bitfit\"\ninputs = \"tokens\"\nlr = 1e-2\nepochs = 1\n";
    let run = run(dir.path(), "cache", body);
    for r in [1u64, 4] {
        let lora = run.metrics(&format!("lora[r={r}]"));
        // q and v in 2 layers: r × (32 + 32) each.
        assert_eq!(lora["trainable_params"], 2 * 2 * r * 64 + HEAD, "r={r}");
        assert_eq!(lora["lora_alpha"], 2.0 * r as f64);
        assert_eq!(lora["method"], "LoRA");
        assert_eq!(lora["r"], r);
        // The merged checkpoint is the same model without the adapter.
        let merged = run.metrics(&format!("merged[r={r}]"));
        assert_eq!(merged["accuracy"], lora["accuracy"], "r={r}");
        let (a, b) = (
            merged["eval_loss"].as_f64().unwrap(),
            lora["eval_loss"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-5, "merged eval loss {a} vs {b}");
        let files = run.manifest(&format!("lora[r={r}]")).files;
        for file in [
            "adapter/adapter_config.json",
            "adapter/adapter_model.safetensors",
            "checkpoint/model.safetensors",
        ] {
            assert!(files.contains_key(file), "{file}: {:?}", files.keys());
        }
        assert!(
            lora["adapter_bytes"].as_u64().unwrap() < 20_000,
            "an adapter, not a model"
        );
    }
    // key and value scale outputs (32 each); attention.output.dense and output.dense are
    // feed-forward modules in PEFT's mapping and scale inputs (32 and 37).
    assert_eq!(run.metrics("ia3")["trainable_params"], 2 * (32 + 32 + 32 + 37) + HEAD);
    let biases: usize = fixture_numels()
        .iter()
        .filter(|(name, _)| name.ends_with(".bias") && !name.starts_with("classifier.") && !name.contains("pooler"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(run.metrics("bitfit")["trainable_params"], biases as u64 + HEAD);
}

#[test]
fn pissa_and_dora_train_merge_and_write_peft_fields() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.dora]\nkind = \"lora\"\ninputs = \"tokens\"\nlr = 1e-2\nepochs = 2\nr = 2\n\
                lora_dropout = 0.1\ninit = \"pissa\"\nuse_dora = true\nmerge = true\n\
                [tasks.merged]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\", model = \"dora\" }\n\
                [tasks.normal]\nkind = \"lora\"\ninputs = \"tokens\"\nepochs = 1\nr = 2\n\
                [tasks.gaussian]\nkind = \"lora\"\ninputs = \"tokens\"\nepochs = 1\nr = 2\ninit = \"gaussian\"\n";
    let run = run(dir.path(), "cache", body);
    let dora = run.metrics("dora");
    assert_eq!(dora["method"], "PiSSA + DoRA");
    // q and v in 2 layers: r × (32 + 32) for A and B, and a magnitude of 32 each.
    assert_eq!(dora["trainable_params"], 2 * 2 * (2 * 64 + 32) + HEAD);
    let merged = run.metrics("merged");
    assert_eq!(merged["accuracy"], dora["accuracy"]);
    let (a, b) = (
        merged["eval_loss"].as_f64().unwrap(),
        dora["eval_loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-5, "merged eval loss {a} vs {b}");
    let config = run.json_file("dora", "adapter/adapter_config.json");
    assert_eq!(config["init_lora_weights"], "pissa");
    assert_eq!(config["use_dora"], true);
    // The lab's N(0, 1) is not PEFT's "gaussian" (std 1/r): the config must not claim it is.
    assert_eq!(
        run.json_file("normal", "adapter/adapter_config.json")["init_lora_weights"],
        false
    );
    assert_eq!(
        run.json_file("gaussian", "adapter/adapter_config.json")["init_lora_weights"],
        "gaussian"
    );
}

#[test]
fn qlora_trains_adapters_on_a_four_bit_base() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.qlora]\nkind = \"qlora\"\ninputs = \"tokens\"\nlr = 1e-2\nepochs = 2\nr = 2\n\
                lora_alpha = 4\nlora_dropout = 0.1\n\
                [tasks.plain]\nkind = \"qlora\"\ninputs = \"tokens\"\nepochs = 1\nr = 2\nbnb_4bit_use_double_quant = false\n";
    let run = run(dir.path(), "cache", body);
    let qlora = run.metrics("qlora");
    // The same trainable parameters as LoRA: q and v in 2 layers, r × (32 + 32) each.
    assert_eq!(qlora["trainable_params"], 2 * 2 * 2 * 64 + HEAD);
    assert_eq!(qlora["method"], "QLoRA");
    let (stored, float32) = (
        qlora["base_bytes"].as_u64().unwrap(),
        qlora["base_bytes_fp32"].as_u64().unwrap(),
    );
    // The encoder's linear weights (6 a layer, 2 layers) go from 4 bytes to ~0.52 a weight;
    // embeddings, layer norms and biases stay float32.
    let linear: u64 = fixture_numels()
        .iter()
        .filter(|(name, _)| {
            name.starts_with("bert.encoder.") && name.ends_with(".weight") && !name.contains("LayerNorm")
        })
        .map(|(_, n)| *n as u64)
        .sum();
    assert!(
        float32 - stored > linear * 3,
        "{stored} of {float32} bytes; {linear} quantized weights"
    );
    let plain = run.metrics("plain");
    assert!(
        plain["base_bytes"].as_u64().unwrap() > stored,
        "double quantization stores less"
    );
    assert_eq!(plain["base_bytes_fp32"], float32);
    let config = run.json_file("qlora", "adapter/adapter_config.json");
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["r"], 2);
    assert!(qlora["accuracy"].as_f64().is_some());
}

#[test]
fn svd_sweeps_and_the_surgery_check_reuse_cached_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let body = |ranks: &str| {
        format!(
            "[tasks.finetune]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e-3\nepochs = 2\n\
             [tasks.features]\nkind = \"features\"\ninputs = \"tokens\"\n\
             [tasks.headtune]\nkind = \"headtune\"\ninputs = \"features\"\nlr = 1e-2\nepochs = 2\n\
             [tasks.svd]\nkind = \"svd_approx\"\ninputs = {{ tokens = \"tokens\", finetuned = \"finetune\", headtuned = \"headtune\" }}\n\
             sweep.variant = [\"weights\", \"delta\"]\nsweep.rank = {ranks}\n\
             [tasks.surgery]\nkind = \"surgery_check\"\ninputs = {{ tokens = \"tokens\", model = \"finetune\" }}\n"
        )
    };
    let first = run(dir.path(), "cache", &body("\"halving\""));
    // Hidden size 32: 32, 16, 8, 4, 2, 1.
    for variant in ["weights", "delta"] {
        for rank in [32, 16, 8, 4, 2, 1] {
            let m = first.metrics(&format!("svd[variant={variant},rank={rank}]"));
            assert_eq!(m["rank"], rank);
            assert_eq!(m["trainable_params"], 2 * 2 * rank * 64 + HEAD);
        }
    }
    let full_w = first.metrics("svd[variant=weights,rank=32]");
    let full_d = first.metrics("svd[variant=delta,rank=32]");
    assert_eq!(
        full_w["accuracy"], full_d["accuracy"],
        "full rank: both variants are the fine-tuned weights"
    );
    let (lw, ld) = (
        full_w["eval_loss"].as_f64().unwrap(),
        full_d["eval_loss"].as_f64().unwrap(),
    );
    assert!((lw - ld).abs() < 1e-5, "{lw} vs {ld}");
    for m in [&full_w, &full_d] {
        assert!(m["relative_error"].as_f64().unwrap() < 1e-5, "{m}");
    }
    let low = first.metrics("svd[variant=weights,rank=1]")["relative_error"]
        .as_f64()
        .unwrap();
    assert!(
        low > 0.05,
        "a rank-1 approximation of a random 32×32 weight is far off: {low}"
    );

    let surgery = first.metrics("surgery");
    assert_eq!(surgery["original_accuracy"], surgery["restored_accuracy"]);
    assert_eq!(surgery["original_loss"], surgery["restored_loss"]);
    assert_ne!(
        surgery["original_loss"], surgery["random_loss"],
        "random q and v change the model"
    );

    // One added rank: only its two members run; every checkpoint comes from the cache.
    let second = run(dir.path(), "cache", &body("[1, 2, 3]"));
    let ran: Vec<&String> = second
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Ran { .. }))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(ran, ["svd[variant=delta,rank=3]", "svd[variant=weights,rank=3]"]);
}

#[test]
fn adapter_mistakes_are_errors_before_anything_runs() {
    // The spec error table (tests/spec_errors.rs) has each case with its span; here the
    // experiment as a whole stops at plan time, before the tokenize task it would need.
    let dir = tempfile::tempdir().unwrap();
    for (name, body, fragment) in [
        (
            "names.toml",
            "[tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\ntarget_modules = [\"q_lin\"]\n",
            "matches no linear layer",
        ),
        (
            "rank.toml",
            "[tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\nr = 100\n",
            "r = 100 is beyond the rank of",
        ),
        (
            "ff.toml",
            "[tasks.ia3]\nkind = \"ia3\"\ninputs = \"tokens\"\nfeedforward_modules = [\"intermediate.dense\"]\n",
            "not among the IA3 target modules",
        ),
        (
            "alpha.toml",
            "[tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\nlora_alpha = -2\n",
            "lora_alpha must be positive",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, experiment(body)).unwrap();
        let error = spec::load(&path).unwrap_err().to_string();
        assert!(
            error.contains(fragment) && error.contains(&format!("{name}:")),
            "{error}"
        );
    }
}

#[test]
fn a_three_seed_sweep_is_reported_as_mean_and_std() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.features]\nkind = \"features\"\ninputs = \"tokens\"\n\
                [tasks.head]\nkind = \"headtune\"\ninputs = \"features\"\nepochs = 2\nlr = 1e-2\n\
                sweep.seed = [42, 43, 44]\n";
    let run = run(dir.path(), "cache", body);
    let losses: Vec<f64> = ["head[seed=42]", "head[seed=43]", "head[seed=44]"]
        .iter()
        .map(|task| run.metrics(task)["eval_loss"].as_f64().unwrap())
        .collect();
    assert!(
        losses[0] != losses[1] && losses[1] != losses[2],
        "seeds must differ: {losses:?}"
    );
    let experiment = spec::load(&dir.path().join("exp.toml")).unwrap();
    let store = Store::open(&run.cache).unwrap();
    let report = orchestrate::report::collect(&plan::plan(&experiment, &store).unwrap(), &store).unwrap();
    let entries = report.entries();
    let head = entries
        .iter()
        .find(|e| e.group == "head")
        .expect("one entry for the three seeds");
    assert_eq!((head.n, entries.iter().filter(|e| e.group == "head").count()), (3, 1));
    let accuracy = head.accuracy.unwrap();
    assert_eq!(accuracy.n, 3);
    assert!(accuracy.std.is_some());
    let markdown = orchestrate::report::markdown(&report);
    let line = markdown.lines().find(|l| l.starts_with("| head ")).unwrap();
    assert!(line.contains(" ± "), "{line}");
}

/// The `{split}.features` tensor of a features artifact.
fn feature_values(run: &Run, task: &str, split: &str) -> Vec<f32> {
    let path = run
        .cache
        .join("artifacts")
        .join(&run.manifest(task).key)
        .join("features.safetensors");
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = tensors.tensor(&format!("{split}.features")).unwrap();
    view.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn bfloat16_inference_stays_within_its_precision_and_leaves_float32_keys_alone() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.features]\nkind = \"features\"\ninputs = \"tokens\"\nsweep.dtype = [\"float32\", \"bfloat16\"]\n\
                [tasks.zero_shot]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\" }\nsweep.dtype = [\"float32\", \"bfloat16\"]\n";
    let run = run(dir.path(), "cache", body);
    let full = feature_values(&run, "features[dtype=float32]", "eval");
    let half = feature_values(&run, "features[dtype=bfloat16]", "eval");
    assert_eq!(full.len(), half.len());
    let scale = full.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = full.iter().zip(&half).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst > 0.0, "bfloat16 must actually change the arithmetic");
    // bfloat16 keeps 8 bits of mantissa; six layers of rounding stay within a few percent.
    assert!(
        worst < 0.05 * scale,
        "max |float32 − bfloat16| {worst} against max |feature| {scale}"
    );
    let loss = |task: &str| run.metrics(task)["eval_loss"].as_f64().unwrap();
    let (l32, l16) = (loss("zero_shot[dtype=float32]"), loss("zero_shot[dtype=bfloat16]"));
    assert!(
        (l32 - l16).abs() < 0.02 * l32,
        "eval loss {l32} (float32) vs {l16} (bfloat16)"
    );

    // `dtype = "float32"` written out is the default: same key as before the field existed.
    let keys = |extra: &str| {
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            experiment(&format!(
                "[tasks.features]\nkind = \"features\"\ninputs = \"tokens\"\n{extra}"
            )),
        )
        .unwrap();
        let experiment = spec::load(&path).unwrap();
        let store = Store::open(dir.path().join("keys-cache")).unwrap();
        let index = experiment.tasks.iter().position(|t| t.name == "features").unwrap();
        plan::plan(&experiment, &store).unwrap().entries[index].key.clone()
    };
    assert_eq!(keys(""), keys("dtype = \"float32\"\n"));
    assert_ne!(keys(""), keys("dtype = \"bfloat16\"\n"));
}

#[test]
fn bf16_mixed_precision_trains_deterministically_near_float32_under_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.fp32]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e-3\nepochs = 2\n\
                [tasks.bf16]\nkind = \"finetune\"\ninputs = \"tokens\"\nlr = 1e-3\nepochs = 2\nprecision = \"bf16\"\n";
    let first = run(dir.path(), "first", body);
    let second = run(dir.path(), "second", body);
    let (fp32, bf16) = (first.metrics("fp32"), first.metrics("bf16"));
    assert_eq!(
        bf16["epochs"][1]["eval_loss"],
        second.metrics("bf16")["epochs"][1]["eval_loss"],
        "seeded"
    );
    assert_eq!(bf16["log"], second.metrics("bf16")["log"]);
    assert_eq!(
        first.manifest("bf16").files["checkpoint/model.safetensors"],
        second.manifest("bf16").files["checkpoint/model.safetensors"]
    );
    assert_ne!(first.manifest("bf16").key, first.manifest("fp32").key);
    let (loss32, loss16) = (fp32["eval_loss"].as_f64().unwrap(), bf16["eval_loss"].as_f64().unwrap());
    assert_ne!(loss32, loss16, "bf16 computes in another precision");
    assert!((loss32 - loss16).abs() < 0.1 * loss32, "fp32 {loss32} vs bf16 {loss16}");
    // The master weights stay float32.
    let store = Store::open(&first.cache).unwrap();
    let artifact = store.artifact_dir(&first.manifest("bf16").key);
    let weights = safetensors_kinds(&artifact.join("checkpoint/model.safetensors"));
    assert!(weights.iter().all(|kind| kind == "F32"), "{weights:?}");
}

/// The dtype of every tensor in a safetensors file.
fn safetensors_kinds(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    tensors
        .tensors()
        .into_iter()
        .map(|(_, view)| format!("{:?}", view.dtype()))
        .collect()
}
