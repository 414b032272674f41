//! The default model, all-MiniLM-L6-v2 (installed by scripts/setup.sh into
//! models/all-MiniLM-L6-v2/): it loads as BERT and its mean-pooled embeddings put two
//! paraphrases closer together than an unrelated sentence. Skipped, with a message, when
//! the model is not installed, unless `ORCHESTRATE_REQUIRE_MINILM=1` (set by scripts/test.sh,
//! which installs it) makes that a failure.

mod support;

use std::path::PathBuf;

use orchestrate::model::adapters::{BiasMode, LoraInit, LoraSpec};
use orchestrate::model::{self, inspect, DeviceChoice, LoadOptions, Method};
use tch::{Kind, Tensor};

fn minilm() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let missing = (!dir.join("model.safetensors").is_file())
        .then(|| format!("{} is not installed (run scripts/setup.sh)", dir.display()));
    support::resources::available("MINILM", missing).then_some(dir)
}

/// Mean of the last hidden states over real tokens, L2-normalised (sentence-transformers'
/// pooling + Normalize for this model).
fn embed(m: &model::LoadedModel, texts: &[&str]) -> Tensor {
    let (ids, mask) = m.encode(texts, 256).unwrap();
    let out = tch::no_grad(|| m.forward_with_hidden_states(&ids, &mask, false)).unwrap();
    let last = out.hidden_states.last().unwrap();
    let w = mask.to_kind(Kind::Float).unsqueeze(-1);
    let mean = (last * &w).sum_dim_intlist(1, false, Kind::Float) / w.sum_dim_intlist(1, false, Kind::Float);
    let norm = mean.norm_scalaropt_dim(2.0, [-1], true);
    mean / norm
}

#[test]
fn minilm_paraphrases_are_closer_than_unrelated_sentences() {
    let Some(dir) = minilm() else { return };
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        seed: Some(0),
        ..LoadOptions::default()
    };
    let m = model::load(dir.to_str().unwrap(), &opts).unwrap();
    // A BertModel checkpoint: names gain "bert.", the classification head is new.
    assert_eq!(m.report.added_prefix.as_deref(), Some("bert."));
    assert_eq!(m.report.newly_initialized, vec!["classifier.bias", "classifier.weight"]);
    assert!(m.report.unexpected.is_empty(), "{:?}", m.report.unexpected);
    print!("{}", m.report);

    let texts = [
        "The film was wonderful and I enjoyed every minute of it.",
        "I loved this movie, it was a great watch from start to finish.",
        "The stock market fell sharply after the interest rate announcement.",
    ];
    let e = embed(&m, &texts);
    let sim = e.matmul(&e.tr());
    let s = |i: i64, j: i64| sim.double_value(&[i, j]);
    println!(
        "cosine: paraphrases {:.4}, unrelated {:.4} / {:.4}",
        s(0, 1),
        s(0, 2),
        s(1, 2)
    );
    assert!(s(0, 1) > s(0, 2) + 0.2 && s(0, 1) > s(1, 2) + 0.2);
}

#[test]
fn minilm_inspect_counts() {
    let Some(dir) = minilm() else { return };
    let out = inspect::run(dir.to_str().unwrap(), &Method::Full).unwrap();
    // BertModel 22,713,216 + classifier 384·2+2.
    assert!(
        out.contains("trainable params: 22,713,986 || all params: 22,713,986 || trainable%: 100.0000"),
        "{out}"
    );
    let out = inspect::run(dir.to_str().unwrap(), &Method::Head).unwrap();
    // pooler 384·384+384 + classifier 770.
    assert!(
        out.contains("trainable params: 148,610 || all params: 22,713,986 || trainable%: 0.6543"),
        "{out}"
    );
    // PEFT's count for LoRA r=6 on query,value + pooler/classifier: 6·(384+384)·2·6 + 148,610.
    let lora = LoraSpec {
        r: 6,
        lora_alpha: 12.0,
        lora_dropout: 0.1,
        target_modules: None,
        bias: BiasMode::None,
        modules_to_save: None,
        init: LoraInit::Kaiming,
        use_rslora: false,
        use_dora: false,
    };
    let out = inspect::run(dir.to_str().unwrap(), &Method::Lora(lora)).unwrap();
    assert!(out.contains("trainable params: 203,906 ||"), "{out}");
}

/// The experiments on MiniLM as checked in plan against the real weights' config: every task
/// validates (ranks, targets, max_len) and gets a key.
#[test]
fn the_minilm_experiments_plan() {
    let Some(_) = minilm() else { return };
    let root = env!("CARGO_MANIFEST_DIR");
    for (file, tasks) in [
        ("lab.toml", 39),
        ("peft-family.toml", 17),
        ("pissa-rank.toml", 33),
        ("peft-lr-probe.toml", 15),
        ("bf16-accuracy.toml", 11),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = support::orchestrate(dir.path())
            .env("ORCHESTRATE_CACHE_DIR", dir.path().join("cache"))
            .args(["plan", &format!("{root}/experiments/{file}")])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(
            stdout.contains(&format!("{tasks} tasks, {tasks} to run")),
            "{file}: {stdout}"
        );
    }
}
