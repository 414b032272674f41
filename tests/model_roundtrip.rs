//! Saving: a checkpoint saved by orchestrate reloads (here, and in transformers).
//!
//! The tiny fixtures are perturbed (as training would), saved, and reloaded; the
//! logits must match. With ORCHESTRATE_ROUNDTRIP_DIR set, the saved folders and the Rust
//! logits (`rust_outputs.safetensors`) are kept there for scripts/check_roundtrip.py, which
//! loads them with transformers (see scripts/roundtrip.sh).

mod support;

use std::path::{Path, PathBuf};

use orchestrate::model::adapters::{self, BiasMode, Ia3Spec, LoraInit, LoraSpec, QloraSpec};
use orchestrate::model::bottleneck::{self, BottleneckSize, BottleneckSpec, InitWeights, PostAdd, ResidualBeforeLn};
use orchestrate::model::nf4::{self, BlockMaxima, Nf4Weight};
use orchestrate::model::prefix::{PrefixInit, PrefixTuningSpec};
use orchestrate::model::prompt::{PromptStart, PromptTuningSpec};
use orchestrate::model::{self, LoadOptions, Method};
use support::models::{cpu, fixture};
use tch::Tensor;

/// Adds seeded noise to `params`, as training would, so a round trip cannot pass on
/// untouched pretrained weights.
fn perturb(params: Vec<(String, tch::Tensor)>, seed: i64, scale: f64) {
    tch::manual_seed(seed);
    tch::no_grad(|| {
        for (_, mut t) in params {
            let noise = t.randn_like() * scale;
            let _ = t.f_add_(&noise).unwrap();
        }
    });
}

/// The fixture texts' ids, mask and logits under `m`.
fn encode_and_forward(m: &model::LoadedModel, texts: &[&str]) -> (tch::Tensor, tch::Tensor, tch::Tensor) {
    let (ids, mask) = m.encode(texts, 64).unwrap();
    let logits = tch::no_grad(|| m.forward(&ids, &mask, false)).unwrap();
    (ids, mask, logits)
}

/// What scripts/check_roundtrip.py compares Python's logits against.
fn write_rust_outputs(out: &Path, ids: Tensor, mask: Tensor, logits: Tensor) {
    Tensor::write_safetensors(
        &[
            ("input_ids", ids),
            ("attention_mask", mask),
            ("logits", logits.contiguous()),
        ],
        out.join("rust_outputs.safetensors"),
    )
    .unwrap();
}

fn roundtrip(name: &str, out: &Path, num_labels: Option<i64>) {
    let texts = [
        "the movie was great",
        "this film was really boring and the plot was bad",
        "loved it",
    ];
    let opts = LoadOptions {
        num_labels,
        reinit_mismatched_head: true,
        seed: Some(7),
        ..cpu()
    };
    let m = model::load(fixture(name).to_str().unwrap(), &opts).unwrap();
    perturb(m.named_parameters(), 11, 0.05);
    let (ids, mask, logits) = encode_and_forward(&m, &texts);
    m.save(out).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json", "vocab.txt"] {
        assert!(out.join(f).is_file(), "{name}: saved folder lacks {f}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let labels = num_labels.unwrap_or(m.config.num_labels);
    assert_eq!(config["id2label"].as_object().unwrap().len() as i64, labels);
    assert!(config["architectures"][0]
        .as_str()
        .unwrap()
        .ends_with("ForSequenceClassification"));

    let back = model::load(out.to_str().unwrap(), &cpu()).unwrap();
    assert!(back.report.is_clean(), "{}", back.report);
    assert_eq!(back.config.num_labels, labels);
    let logits2 = tch::no_grad(|| back.forward(&ids, &mask, false)).unwrap();
    assert_eq!(logits.size(), vec![3, labels]);
    let d = (&logits - &logits2).abs().max().double_value(&[]);
    assert!(d == 0.0, "{name}: reloaded logits differ by {d}");
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    let saved: Vec<String> = Tensor::read_safetensors(out.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut saved_sorted = saved.clone();
    saved_sorted.sort();
    assert_eq!(names, saved_sorted);
    write_rust_outputs(out, ids, mask, logits);
}

fn out_dir(name: &str) -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("ORCHESTRATE_ROUNDTRIP_DIR") {
        Some(d) => (None, PathBuf::from(d).join(name)),
        None => {
            let t = tempfile::tempdir().unwrap();
            let p = t.path().join(name);
            (Some(t), p)
        }
    }
}

#[test]
fn distilbert_save_and_reload() {
    let (_keep, dir) = out_dir("distilbert");
    roundtrip("tiny-distilbert", &dir, None);
}

#[test]
fn bert_save_and_reload() {
    let (_keep, dir) = out_dir("bert");
    roundtrip("tiny-bert", &dir, None);
}

#[test]
fn bert_with_new_head_save_and_reload() {
    // 3-label checkpoint re-headed for 2 labels (HF's ignore_mismatched_sizes), then saved.
    let (_keep, dir) = out_dir("bert-2-labels");
    roundtrip("tiny-bert", &dir, Some(2));
}

/// An adapter folder for PEFT: the base model saved under `base/`, the adapter under
/// `adapter/`, and the Rust logits of base + adapter (with perturbed adapter weights, as
/// training would leave them). Merging must give the same logits without the adapter.
fn adapter_roundtrip(name: &str, out: &Path, method: &Method, config: serde_json::Value) {
    let texts = [
        "the movie was great",
        "this film was really boring and the plot was bad",
    ];
    let mut m = model::load(fixture(name).to_str().unwrap(), &cpu()).unwrap();
    m.save(&out.join("base")).unwrap();
    m.apply_method(method).unwrap();
    perturb(m.trainable_parameters(), 5, 0.1);
    let (ids, mask, logits) = encode_and_forward(&m, &texts);
    adapters::save_adapter(&mut m, &out.join("adapter"), &config).unwrap();
    let saved = Tensor::read_safetensors(out.join("adapter/adapter_model.safetensors")).unwrap();
    let prompt_learning = matches!(method, Method::PromptTuning(_) | Method::PrefixTuning(_));
    assert!(
        saved.iter().all(|(k, _)| if prompt_learning {
            k == "prompt_embeddings" || k.starts_with("base_model.")
        } else {
            k.starts_with("base_model.model.")
        }),
        "PEFT's key prefix"
    );
    let saved_numel: i64 = saved.iter().map(|(_, t)| t.numel() as i64).sum();
    let trainable = m.param_counts().trainable;
    // A projected prefix is saved as the MLP's output, as PEFT saves it.
    if !matches!(method, Method::PrefixTuning(spec) if spec.prefix_projection) {
        assert_eq!(saved_numel, trainable, "the adapter holds exactly what trains");
    }
    write_trainable(out, &m);
    if matches!(method, Method::Lora(_)) {
        let merged = adapters::merged_tensors(&mut m).unwrap();
        m.save_tensors(&out.join("merged"), &merged).unwrap();
        let back = model::load(out.join("merged").to_str().unwrap(), &cpu()).unwrap();
        assert!(back.report.is_clean(), "{}", back.report);
        let merged_logits = tch::no_grad(|| back.forward(&ids, &mask, false)).unwrap();
        let d = (&logits - &merged_logits).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{name}: merged logits differ by {d}");
    }
    write_rust_outputs(out, ids, mask, logits);
}

/// What PEFT must count as trainable for the same config (scripts/check_roundtrip.py).
fn write_trainable(out: &Path, m: &model::LoadedModel) {
    let trainable = m.param_counts().trainable;
    std::fs::write(out.join("trainable.json"), format!("{{\"trainable\": {trainable}}}\n")).unwrap();
}

fn lora(r: i64, targets: &[&str]) -> LoraSpec {
    LoraSpec {
        r,
        lora_alpha: 2.0 * r as f64,
        lora_dropout: 0.1,
        target_modules: Some(targets.iter().map(|s| s.to_string()).collect()),
        bias: BiasMode::None,
        modules_to_save: None,
        init: LoraInit::Normal,
        use_rslora: false,
        use_dora: false,
    }
}

#[test]
fn lora_adapter_round_trip_distilbert() {
    let (_keep, dir) = out_dir("peft-lora-distilbert");
    let spec = lora(4, &["q_lin", "v_lin"]);
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 4, "lora_alpha": 8.0, "lora_dropout": 0.1,
        "target_modules": ["q_lin", "v_lin"], "bias": "none", "modules_to_save": ["pre_classifier", "classifier"],
    });
    adapter_roundtrip("tiny-distilbert", &dir, &Method::Lora(spec), config);
}

#[test]
fn lora_adapter_round_trip_bert_all_biases() {
    let (_keep, dir) = out_dir("peft-lora-bert");
    let mut spec = lora(2, &["query", "value", "intermediate.dense"]);
    spec.bias = BiasMode::All;
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 2, "lora_alpha": 4.0, "lora_dropout": 0.1,
        "target_modules": ["query", "value", "intermediate.dense"], "bias": "all",
        "modules_to_save": ["pooler", "classifier"],
    });
    adapter_roundtrip("tiny-bert", &dir, &Method::Lora(spec), config);
}

/// PiSSA: the adapter starts at W's top singular triplets and the base is the residual, so
/// before training the model is the pretrained one; PEFT recomputes the residual from the
/// saved (original) base when it loads `init_lora_weights = "pissa"`.
#[test]
fn pissa_adapter_round_trip_bert() {
    let (_keep, dir) = out_dir("peft-pissa-bert");
    let mut spec = lora(4, &["query", "value", "output.dense"]);
    spec.init = LoraInit::Pissa;
    let untouched = model::load(fixture("tiny-bert").to_str().unwrap(), &cpu()).unwrap();
    let mut pissa = model::load(fixture("tiny-bert").to_str().unwrap(), &cpu()).unwrap();
    pissa.apply_method(&Method::Lora(spec.clone())).unwrap();
    let texts = ["the movie was great", "loved it"];
    let (_, _, before) = encode_and_forward(&untouched, &texts);
    let (_, _, start) = encode_and_forward(&pissa, &texts);
    let d = (&before - &start).abs().max().double_value(&[]);
    assert!(
        d < 1e-5,
        "PiSSA must start at the pretrained model, logits differ by {d}"
    );
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 4, "lora_alpha": 8.0, "lora_dropout": 0.1,
        "target_modules": ["query", "value", "output.dense"], "bias": "none",
        "modules_to_save": ["pooler", "classifier"], "init_lora_weights": "pissa",
    });
    adapter_roundtrip("tiny-bert", &dir, &Method::Lora(spec), config);
}

/// DoRA: the magnitude starts at W's row norms (the model starts as the pretrained one) and
/// is saved as PEFT's `lora_magnitude_vector`; merging scales W + s·B A row by row.
#[test]
fn dora_adapter_round_trip_distilbert() {
    let (_keep, dir) = out_dir("peft-dora-distilbert");
    let mut spec = lora(4, &["q_lin", "v_lin", "lin1"]);
    spec.use_dora = true;
    spec.init = LoraInit::Gaussian;
    let mut dora = model::load(fixture("tiny-distilbert").to_str().unwrap(), &cpu()).unwrap();
    dora.apply_method(&Method::Lora(spec.clone())).unwrap();
    let magnitudes = dora
        .trainable_parameters()
        .into_iter()
        .filter(|(n, _)| n.ends_with(".lora_magnitude_vector"))
        .count();
    assert_eq!(
        magnitudes,
        2 * 3,
        "one magnitude vector per target in each of the 2 layers"
    );
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 4, "lora_alpha": 8.0, "lora_dropout": 0.1,
        "target_modules": ["q_lin", "v_lin", "lin1"], "bias": "none",
        "modules_to_save": ["pre_classifier", "classifier"], "use_dora": true, "init_lora_weights": "gaussian",
    });
    adapter_roundtrip("tiny-distilbert", &dir, &Method::Lora(spec), config);
}

/// PiSSA and DoRA together, as PEFT allows: the magnitude starts at the norms of
/// residual + s·B A, i.e. of W.
#[test]
fn pissa_dora_adapter_round_trip_bert() {
    let (_keep, dir) = out_dir("peft-pissa-dora-bert");
    let mut spec = lora(2, &["query", "value"]);
    spec.init = LoraInit::Pissa;
    spec.use_dora = true;
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 2, "lora_alpha": 4.0, "lora_dropout": 0.1,
        "target_modules": ["query", "value"], "bias": "none",
        "modules_to_save": ["pooler", "classifier"], "init_lora_weights": "pissa", "use_dora": true,
    });
    adapter_roundtrip("tiny-bert", &dir, &Method::Lora(spec), config);
}

#[test]
fn ia3_adapter_round_trip_bert() {
    let (_keep, dir) = out_dir("peft-ia3-bert");
    let spec = Ia3Spec {
        target_modules: None,
        feedforward_modules: None,
        modules_to_save: None,
    };
    let (targets, feedforward) = spec.targets("bert");
    let config = serde_json::json!({
        "peft_type": "IA3", "task_type": "SEQ_CLS", "target_modules": targets,
        "feedforward_modules": feedforward, "modules_to_save": ["pooler", "classifier"],
    });
    adapter_roundtrip("tiny-bert", &dir, &Method::Ia3(spec), config);
}

/// QLoRA: the adapter trained on the NF4 base loads in PEFT onto the dequantized base
/// (saved as `base/`) and gives our logits; the 4-bit base takes under a sixth of the
/// float32 bytes of the layers it replaces.
#[test]
fn qlora_adapter_round_trip_bert() {
    let (_keep, dir) = out_dir("peft-qlora-bert");
    let texts = [
        "the movie was great",
        "this film was really boring and the plot was bad",
    ];
    let spec = QloraSpec {
        lora: lora(2, &["query", "value"]),
        double_quant: true,
    };
    let mut m = model::load(fixture("tiny-bert").to_str().unwrap(), &cpu()).unwrap();
    let all_before = m.param_counts().all;
    m.apply_method(&Method::Qlora(spec)).unwrap();
    assert_eq!(
        m.param_counts().all,
        all_before + 2 * 2 * 2 * 64,
        "4-bit weights still count, as PEFT counts them"
    );
    perturb(m.trainable_parameters(), 5, 0.1);
    let (ids, mask, logits) = encode_and_forward(&m, &texts);
    let base = nf4::dequantized_base(&mut m).unwrap();
    m.save_tensors(&dir.join("base"), &base).unwrap();
    let reloaded = model::load(dir.join("base").to_str().unwrap(), &cpu()).unwrap();
    assert!(reloaded.report.is_clean(), "{}", reloaded.report);
    let config = serde_json::json!({
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 2, "lora_alpha": 4.0, "lora_dropout": 0.1,
        "target_modules": ["query", "value"], "bias": "none", "modules_to_save": ["pooler", "classifier"],
    });
    adapters::save_adapter(&mut m, &dir.join("adapter"), &config).unwrap();
    write_trainable(&dir, &m);
    let (stored, float32) = nf4::frozen_bytes(&mut m);
    assert!(stored < float32, "{stored} vs {float32}");
    write_rust_outputs(&dir, ids, mask, logits);
}

/// The NF4 quantizer's output for scripts/check_nf4.py, which quantizes the same weights
/// with bitsandbytes and compares bytes and values.
#[test]
fn nf4_quantizations_for_bitsandbytes() {
    let (_keep, dir) = out_dir("nf4");
    std::fs::create_dir_all(&dir).unwrap();
    tch::manual_seed(17);
    // 37 columns: the last 64-block is short; 300 × 37 weights: a short 256-block of maxima.
    let weights = [
        ("short_blocks", Tensor::randn([300, 37], tch::kind::FLOAT_CPU) * 0.05),
        ("square", Tensor::randn([384, 384], tch::kind::FLOAT_CPU) * 0.02),
    ];
    let mut tensors: Vec<(String, Tensor)> = Vec::new();
    for (name, weight) in weights {
        for double in [false, true] {
            let q = Nf4Weight::quantize(&weight, double).unwrap();
            let tag = format!("{name}.{}", if double { "double" } else { "plain" });
            tensors.push((format!("{tag}.packed"), q.packed.shallow_clone()));
            tensors.push((format!("{tag}.dequantized"), q.dequantize().unwrap()));
            match &q.maxima {
                BlockMaxima::Plain(absmax) => tensors.push((format!("{tag}.absmax"), absmax.shallow_clone())),
                BlockMaxima::Double {
                    indices,
                    absmax,
                    offset,
                    code,
                } => {
                    tensors.push((format!("{tag}.absmax"), indices.shallow_clone()));
                    tensors.push((format!("{tag}.nested_absmax"), absmax.shallow_clone()));
                    tensors.push((format!("{tag}.offset"), Tensor::from_slice(&[*offset as f32])));
                    tensors.push((format!("{tag}.nested_code"), code.shallow_clone()));
                }
            }
        }
        tensors.push((format!("{name}.weight"), weight));
    }
    Tensor::write_safetensors(&tensors, dir.join("nf4.safetensors")).unwrap();
}

/// PEFT's `PromptTuningConfig` for a prompt on a tiny fixture (hidden 32, 4 heads, 2 layers).
fn prompt_config(modules_to_save: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "PROMPT_TUNING", "task_type": "SEQ_CLS", "num_virtual_tokens": 5, "token_dim": 32,
        "num_transformer_submodules": 1, "num_attention_heads": 4, "num_layers": 2,
        "prompt_tuning_init": "RANDOM", "modules_to_save": modules_to_save,
    })
}

fn prompt_spec() -> Method {
    Method::PromptTuning(PromptTuningSpec {
        num_virtual_tokens: 5,
        num_transformer_submodules: 1,
        start: PromptStart::Random,
        modules_to_save: None,
    })
}

#[test]
fn prompt_tuning_adapter_round_trip_distilbert() {
    let (_keep, dir) = out_dir("peft-prompt-distilbert");
    adapter_roundtrip(
        "tiny-distilbert",
        &dir,
        &prompt_spec(),
        prompt_config(&["pre_classifier", "classifier"]),
    );
}

#[test]
fn prompt_tuning_adapter_round_trip_bert() {
    let (_keep, dir) = out_dir("peft-prompt-bert");
    adapter_roundtrip(
        "tiny-bert",
        &dir,
        &prompt_spec(),
        prompt_config(&["pooler", "classifier"]),
    );
}

/// PEFT's `PrefixTuningConfig` on tiny-bert (hidden 32, 4 heads, 2 layers). transformers'
/// DistilBERT takes no `past_key_values`, so PEFT has no prefix tuning to compare with there.
fn prefix_config(projection: Option<i64>) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "PREFIX_TUNING", "task_type": "SEQ_CLS", "num_virtual_tokens": 3, "token_dim": 32,
        "num_transformer_submodules": 1, "num_attention_heads": 4, "num_layers": 2,
        "encoder_hidden_size": projection.unwrap_or(32), "prefix_projection": projection.is_some(),
        "modules_to_save": ["pooler", "classifier"],
    })
}

fn prefix_spec(projection: Option<i64>) -> Method {
    Method::PrefixTuning(PrefixTuningSpec {
        num_virtual_tokens: 3,
        prefix_projection: projection.is_some(),
        encoder_hidden_size: projection,
        init: PrefixInit::Random,
        modules_to_save: None,
    })
}

#[test]
fn prefix_tuning_adapter_round_trip_bert() {
    let (_keep, dir) = out_dir("peft-prefix-bert");
    adapter_roundtrip("tiny-bert", &dir, &prefix_spec(None), prefix_config(None));
}

#[test]
fn prefix_tuning_with_projection_adapter_round_trip_bert() {
    let (_keep, dir) = out_dir("peft-prefix-projection-bert");
    adapter_roundtrip("tiny-bert", &dir, &prefix_spec(Some(16)), prefix_config(Some(16)));
}

/// A bottleneck adapter for the AdapterHub `adapters` library: the base under `base/`, the
/// library's `save_adapter` layout under `adapter/`, the Rust logits with perturbed adapter
/// and head weights, and the trainable count (`trainable.json`) that
/// scripts/check_adapters.py (in .venv-adapters) must reproduce. Kept under `bottleneck/`,
/// apart from PEFT's folders, since it needs another transformers.
fn bottleneck_roundtrip(name: &str, dir_name: &str, spec: BottleneckSpec) {
    let (_keep, out) = out_dir(&format!("bottleneck/{dir_name}"));
    let texts = [
        "the movie was great",
        "this film was really boring and the plot was bad",
    ];
    let mut m = model::load(fixture(name).to_str().unwrap(), &cpu()).unwrap();
    m.save(&out.join("base")).unwrap();
    let method = Method::Adapter(spec.clone());
    m.apply_method(&method).unwrap();
    perturb(m.trainable_parameters(), 5, 0.1);
    let (ids, mask, logits) = encode_and_forward(&m, &texts);
    bottleneck::save_adapter(&m, &spec, name, &out.join("adapter")).unwrap();
    let mut saved = 0;
    for file in [
        "adapter.safetensors",
        "model_head.safetensors",
        "modules_to_save.safetensors",
    ] {
        let path = out.join("adapter").join(file);
        if path.is_file() {
            saved += Tensor::read_safetensors(&path)
                .unwrap()
                .iter()
                // LayerNorm before the bottleneck is saved twice, as torch's state dict has it.
                .filter(|(k, _)| !(spec.ln_before && k.contains(".adapter_down.0.")))
                .map(|(_, t)| t.numel() as i64)
                .sum::<i64>();
        }
    }
    let trainable = m.param_counts().trainable;
    assert_eq!(
        saved, trainable,
        "{dir_name}: the adapter files hold exactly what trains"
    );
    std::fs::write(
        out.join("trainable.json"),
        serde_json::json!({ "trainable": trainable, "all": m.param_counts().all }).to_string(),
    )
    .unwrap();
    write_rust_outputs(&out, ids, mask, logits);
}

fn houlsby() -> BottleneckSpec {
    BottleneckSpec {
        name: "adapter".into(),
        mh_adapter: true,
        output_adapter: true,
        size: BottleneckSize::ReductionFactor(16.0),
        non_linearity: "swish".into(),
        original_ln_before: false,
        original_ln_after: true,
        residual_before_ln: ResidualBeforeLn::Bool(true),
        adapter_residual_before_ln: false,
        ln_before: false,
        ln_after: false,
        init_weights: InitWeights::Bert,
        scaling: 1.0,
        dropout: 0.0,
        leave_out: vec![],
        modules_to_save: None,
    }
}

fn pfeiffer() -> BottleneckSpec {
    BottleneckSpec {
        mh_adapter: false,
        non_linearity: "relu".into(),
        original_ln_before: true,
        ..houlsby()
    }
}

#[test]
fn houlsby_adapter_round_trip_distilbert() {
    bottleneck_roundtrip("tiny-distilbert", "houlsby-distilbert", houlsby());
}

#[test]
fn houlsby_adapter_round_trip_bert() {
    // The lab trains BERT's pooler with the head: saved in modules_to_save.safetensors.
    bottleneck_roundtrip("tiny-bert", "houlsby-bert", houlsby());
}

#[test]
fn pfeiffer_adapter_round_trip_bert_with_adapter_layer_norms() {
    let spec = BottleneckSpec {
        name: "sst2".into(),
        ln_before: true,
        ln_after: true,
        size: BottleneckSize::Width(8),
        non_linearity: "gelu".into(),
        init_weights: InitWeights::Houlsby,
        modules_to_save: Some(vec!["classifier".into()]),
        ..pfeiffer()
    };
    bottleneck_roundtrip("tiny-bert", "pfeiffer-ln-bert", spec);
}

#[test]
fn pfeiffer_adapter_round_trip_distilbert_post_add() {
    let spec = BottleneckSpec {
        residual_before_ln: ResidualBeforeLn::PostAdd(PostAdd::PostAdd),
        adapter_residual_before_ln: true,
        ln_after: true,
        scaling: 0.5,
        leave_out: vec![1],
        init_weights: InitWeights::MamAdapter,
        ..pfeiffer()
    };
    bottleneck_roundtrip("tiny-distilbert", "pfeiffer-post-add-distilbert", spec);
}

#[test]
fn adapter_without_original_layer_norm_round_trip_bert() {
    let spec = BottleneckSpec {
        residual_before_ln: ResidualBeforeLn::Bool(false),
        original_ln_after: false,
        original_ln_before: true,
        non_linearity: "tanh".into(),
        ..houlsby()
    };
    bottleneck_roundtrip("tiny-bert", "no-ln-after-bert", spec);
}
