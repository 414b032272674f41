//! Parameter counts (random init from the distilbert-base-uncased config, no weights)
//! and `orchestrate inspect`'s report.

mod support;

use std::path::PathBuf;

use orchestrate::model::{self, inspect, DeviceChoice, LoadOptions, Method};

fn base_config() -> PathBuf {
    support::models::fixture("distilbert-base-uncased-config/config.json")
}

fn fixture(name: &str) -> String {
    support::models::fixture(name).to_string_lossy().into_owned()
}

fn base_model() -> model::LoadedModel {
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        weights: false,
        seed: Some(0),
        ..LoadOptions::default()
    };
    model::load(base_config().to_str().unwrap(), &opts).unwrap()
}

#[test]
fn distilbert_base_counts_full_head_and_qv() {
    let mut m = base_model();
    assert_eq!(m.config.num_labels, 2);
    let full = m.param_counts();
    assert_eq!((full.trainable, full.all), (66_955_010, 66_955_010));

    m.apply_method(&Method::Head).unwrap();
    let head = m.param_counts();
    assert_eq!((head.trainable, head.all), (592_130, 66_955_010));
    assert_eq!(
        head.to_string(),
        "trainable params: 592,130 || all params: 66,955,010 || trainable%: 0.8844"
    );

    // The 12 q and v linear layers (6 blocks × q_lin, v_lin), weights and biases.
    let qv = m.count_params(|n| n.contains(".attention.q_lin.") || n.contains(".attention.v_lin."));
    assert_eq!(qv.all, 7_087_104);
}

#[test]
fn linear_layers_are_addressable_by_hf_name() {
    let mut m = base_model();
    let names = m.linear_names();
    assert_eq!(names.len(), 6 * 6 + 2);
    assert!(names.contains(&"distilbert.transformer.layer.0.attention.q_lin".to_string()));
    assert!(names.contains(&"pre_classifier".to_string()));
    let qv: Vec<&String> = names
        .iter()
        .filter(|n| n.ends_with("q_lin") || n.ends_with("v_lin"))
        .collect();
    assert_eq!(qv.len(), 12);

    // Replace one layer by a wrapper that doubles its output: the forward pass sees it.
    #[derive(Debug)]
    struct Doubled(model::LinearSlot);
    impl model::LinearLayer for Doubled {
        fn forward_t(&self, xs: &tch::Tensor, train: bool) -> model::Result<tch::Tensor> {
            Ok(self.0.forward_t(xs, train)? * 2.0)
        }
        fn in_features(&self) -> i64 {
            self.0.in_features()
        }
        fn out_features(&self) -> i64 {
            self.0.out_features()
        }
        fn module_node(&self) -> model::ModuleNode {
            model::ModuleNode::new("Doubled", vec![("base_layer", self.0.module_node())])
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
            self
        }
    }
    let ids = tch::Tensor::from_slice(&[101i64, 2023, 3185, 102]).unsqueeze(0);
    let mask = ids.ones_like();
    let before = tch::no_grad(|| m.forward(&ids, &mask, false)).unwrap();
    m.replace_linear("classifier", |old| Ok(Box::new(Doubled(old))))
        .unwrap();
    let after = tch::no_grad(|| m.forward(&ids, &mask, false)).unwrap();
    assert!((after - before * 2.0).abs().max().double_value(&[]) < 1e-5);
    assert!(m
        .module_tree()
        .render()
        .contains("(classifier): Doubled(\n    (base_layer): Linear(in_features=768, out_features=2, bias=True)\n  )"));
    assert!(m.replace_linear("nope", Ok).is_err());
}

#[test]
fn inspect_config_prints_tree_and_peft_lines() {
    let full = inspect::run(base_config().to_str().unwrap(), &Method::Full).unwrap();
    assert!(full.starts_with("DistilBertForSequenceClassification(\n  (distilbert): DistilBertModel("));
    assert!(full.contains("(0-5): 6 x TransformerBlock("));
    assert!(full.contains("\ntrainable params: 66,955,010 || all params: 66,955,010 || trainable%: 100.0000\n"));
    let head = inspect::run(base_config().to_str().unwrap(), &Method::Head).unwrap();
    assert!(head.contains("\nmethod: head\n"));
    assert!(head.contains("\ntrainable params: 592,130 || all params: 66,955,010 || trainable%: 0.8844\n"));
    print!("{head}");
}

#[test]
fn inspect_folder_and_bad_method() {
    let out = inspect::run(&fixture("tiny-bert"), &Method::Head).unwrap();
    assert!(out.starts_with("BertForSequenceClassification("));
    // pooler (32·32+32) + classifier (32·3+3)
    assert!(out.contains("trainable params: 1,155 || "), "{out}");
    let err = "prefix".parse::<Method>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown method \"prefix\": expected one of full, head, bitfit, lora, ia3, qlora, prompt_tuning, prefix_tuning, adapter"
    );
}

#[test]
fn inspect_resolves_hub_ids_in_the_hf_cache() {
    // A fake HF cache: models--ORG--NAME/refs/main + snapshots/<rev>/config.json.
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/models--lab--tiny-distilbert");
    let snap = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(PathBuf::from(fixture("tiny-distilbert")).join(f), snap.join(f)).unwrap();
    }
    // The only test in this binary that touches HF_HOME.
    std::env::set_var("HF_HOME", home.path());
    std::env::remove_var("HF_HUB_CACHE");
    // The cache alone: a missing model is not looked for on the hub.
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let out = inspect::run("lab/tiny-distilbert", &Method::Full).unwrap();
    assert!(out.contains("Embedding(64, 32, padding_idx=0)"));
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        ..LoadOptions::default()
    };
    let m = model::load("lab/tiny-distilbert", &opts).unwrap();
    assert_eq!(m.source, model::ModelSource::Folder(snap.clone()));
    let err = model::load("lab/not-downloaded", &opts).unwrap_err().to_string();
    assert!(err.contains("not in the Hugging Face cache"), "{err}");
    assert!(err.contains("models--lab--not-downloaded"), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE is set"), "{err}");
}

#[test]
fn prompt_tuning_counts_as_peft_prints_them() {
    // 20 virtual tokens × 768 + pre_classifier and classifier (PEFT: 607,490 trainable).
    let method =
        orchestrate::tasks::method("prompt_tuning", base_config().to_str().unwrap(), toml::Table::new()).unwrap();
    let out = inspect::run(base_config().to_str().unwrap(), &method).unwrap();
    assert!(out.contains("\nmethod: prompt_tuning\n"), "{out}");
    assert!(
        out.contains("\ntrainable params: 607,490 || all params: 66,970,370 || "),
        "{out}"
    );
}

#[test]
fn prefix_tuning_counts_as_peft_prints_them() {
    let base = base_config();
    let count = |params: &str| {
        let method =
            orchestrate::tasks::method("prefix_tuning", base.to_str().unwrap(), toml::from_str(params).unwrap())
                .unwrap();
        inspect::run(base.to_str().unwrap(), &method).unwrap()
    };
    // 20 virtual tokens × 6 layers × (keys + values) × 768 + pre_classifier and classifier.
    let flat = count("");
    assert!(flat.contains("\nmethod: prefix_tuning\n"), "{flat}");
    assert!(
        flat.contains("\ntrainable params: 776,450 || all params: 67,139,330 || "),
        "{flat}"
    );
    // Projected: 20 × 768 embeddings, Linear(768, 128), Linear(128, 6 · 2 · 768), + head.
    let projected = count("prefix_projection = true\nencoder_hidden_size = 128");
    let mlp = 20 * 768 + (768 * 128 + 128) + (128 * 9216 + 9216);
    let expected = format!(
        "\ntrainable params: {} || ",
        orchestrate::model::params::thousands(mlp + 592_130)
    );
    assert!(projected.contains(&expected), "{expected} in {projected}");
}

/// The AdapterHub `adapters` library (1.3.0) on distilbert-base-uncased's config, random
/// init, after `add_adapter(name, config)` and `train_adapter(name)`, counts
/// Houlsby (`double_seq_bn`): 1,486,658 trainable of 67,849,538 — 6 layers × 2 adapters ×
/// (768·48 + 48 + 48·768 + 768) + pre_classifier and classifier (592,130);
/// Pfeiffer (`seq_bn`): 1,039,394 of 67,402,274 (one adapter a layer).
#[test]
fn adapter_counts_as_the_adapters_library_counts_them() {
    let config = base_config();
    let houlsby = orchestrate::tasks::method("adapter", config.to_str().unwrap(), toml::Table::new()).unwrap();
    let out = inspect::run(config.to_str().unwrap(), &houlsby).unwrap();
    assert!(out.contains("\nmethod: adapter\n"), "{out}");
    assert!(
        out.contains("\ntrainable params: 1,486,658 || all params: 67,849,538 || "),
        "{out}"
    );
    assert!(out.contains("(attention_adapters): BottleneckLayer("), "{out}");
    assert!(
        out.contains("(0): Linear(in_features=768, out_features=48, bias=True)"),
        "{out}"
    );
    assert!(out.contains("(f): SiLU()"), "{out}");
    let mut params = toml::Table::new();
    params.insert("config".into(), "pfeiffer".into());
    let pfeiffer = orchestrate::tasks::method("adapter", config.to_str().unwrap(), params).unwrap();
    let out = inspect::run(config.to_str().unwrap(), &pfeiffer).unwrap();
    assert!(
        out.contains("\ntrainable params: 1,039,394 || all params: 67,402,274 || "),
        "{out}"
    );
    let mut params = toml::Table::new();
    params.insert("reduction_factor".into(), 0.0.into());
    let zero = orchestrate::tasks::method("adapter", config.to_str().unwrap(), params).unwrap();
    let err = inspect::run(config.to_str().unwrap(), &zero).unwrap_err();
    assert!(
        err.to_string().contains("reduction_factor must be positive, got 0"),
        "{err}"
    );
}
