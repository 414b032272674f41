//! The `adapter` kind end to end on the tiny fixtures: it trains only the bottleneck adapters
//! and the head, writes `adapter/` in the AdapterHub `adapters` library's layout, and reports
//! the library's trainable count.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use orchestrate::store::Store;
use serde_json::Value;
use tch::Tensor;

/// Each task's metrics and artifact folder, by task name.
fn artifacts(cache: &Path) -> BTreeMap<String, (Value, std::path::PathBuf)> {
    let store = Store::open(cache).unwrap();
    store
        .list()
        .unwrap()
        .into_iter()
        .map(|(key, manifest)| {
            let manifest = manifest.unwrap();
            let dir = store.artifact_dir(&key);
            let metrics = serde_json::from_slice(&std::fs::read(dir.join("metrics.json")).unwrap()).unwrap();
            (manifest.task.clone(), (metrics, dir))
        })
        .collect()
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

#[test]
fn houlsby_and_pfeiffer_train_adapters_and_save_the_library_layout() {
    let tasks = "[tasks.houlsby]\nkind = \"adapter\"\ninputs = \"tokens\"\nepochs = 1\nlr = 1e-2\n\
                 [tasks.pfeiffer]\nkind = \"adapter\"\ninputs = \"tokens\"\nepochs = 1\nlr = 1e-2\n\
                 config = \"pfeiffer\"\nbottleneck_size = 4\nadapter_name = \"sst2\"\nleave_out = [0]\n\
                 [tasks.bf16]\nkind = \"adapter\"\ninputs = \"tokens\"\nepochs = 1\nprecision = \"bf16\"\nln_before = true\n";
    let dir = support::sandbox_with(&format!(
        "[experiment]\nname = \"adapter\"\n{}",
        support::models::tiny_bert_experiment("", tasks)
    ));
    support::orchestrate(dir.path())
        .args(["run", "exp.toml", "--cache-dir", "cache"])
        .assert()
        .success();
    let artifacts = artifacts(&dir.path().join("cache"));

    // tiny-bert (hidden 32, 2 layers): 4 adapters × (32·2 + 2 + 2·32 + 32) + pooler (1,056)
    // + a classifier for the 2 labels of the data (66), as the library counts them
    // (scripts/check_adapters.py).
    let (metrics, out) = &artifacts["houlsby"];
    assert_eq!(metrics["method"], "adapter");
    assert_eq!(metrics["trainable_params"], 4 * 162 + 1056 + 66);
    assert_eq!(metrics["bottleneck_size"], 2);
    assert_eq!(metrics["reduction_factor"], 16);
    let adapter = out.join("adapter");
    let config: Value = serde_json::from_slice(&std::fs::read(adapter.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["config"]["non_linearity"], "swish");
    assert_eq!(config["config"]["mh_adapter"], true);
    assert_eq!(config["name"], "adapter");
    assert_eq!(config["model_class"], "BertForSequenceClassification");
    let weights = tensors(&adapter.join("adapter.safetensors"));
    assert_eq!(weights.len(), 4 * 4);
    let down = &weights["bert.encoder.layer.0.attention.output.adapters.adapter.adapter_down.0.weight"];
    assert_eq!(down.size(), [2, 32]);
    // Zero-initialised biases moved: the adapters trained.
    let up_bias = &weights["bert.encoder.layer.1.output.adapters.adapter.adapter_up.bias"];
    assert!(up_bias.abs().max().double_value(&[]) > 0.0);
    let head = tensors(&adapter.join("model_head.safetensors"));
    assert_eq!(
        head.keys().collect::<Vec<_>>(),
        ["classifier.bias", "classifier.weight"]
    );
    let pooler = tensors(&adapter.join("modules_to_save.safetensors"));
    assert_eq!(
        pooler.keys().collect::<Vec<_>>(),
        ["bert.pooler.dense.bias", "bert.pooler.dense.weight"]
    );
    assert!(adapter.join("head_config.json").is_file());
    assert!(adapter.join("orchestrate.json").is_file());

    // Pfeiffer: one adapter, after the FFN of layer 1 only, 4 wide (reduction factor 8).
    let (metrics, out) = &artifacts["pfeiffer"];
    assert_eq!(metrics["trainable_params"], (32 * 4 + 4 + 4 * 32 + 32) + 1056 + 66);
    assert_eq!(metrics["reduction_factor"], 8);
    let weights = tensors(&out.join("adapter/adapter.safetensors"));
    let mut names: Vec<&String> = weights.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bert.encoder.layer.1.output.adapters.sst2.adapter_down.0.bias",
            "bert.encoder.layer.1.output.adapters.sst2.adapter_down.0.weight",
            "bert.encoder.layer.1.output.adapters.sst2.adapter_up.bias",
            "bert.encoder.layer.1.output.adapters.sst2.adapter_up.weight",
        ]
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter/adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["config"]["original_ln_before"], true);
    assert_eq!(config["config"]["leave_out"], serde_json::json!([0]));

    // Mixed precision trains the float32 adapters too; the LayerNorm before the bottleneck
    // is saved under both of torch's names.
    let (metrics, out) = &artifacts["bf16"];
    assert!(metrics["accuracy"].as_f64().unwrap() >= 0.0);
    assert_eq!(metrics["trainable_params"], 4 * (162 + 64) + 1056 + 66);
    let weights = tensors(&out.join("adapter/adapter.safetensors"));
    let prefix = "bert.encoder.layer.0.output.adapters.adapter.";
    assert!(weights[&format!("{prefix}adapter_down.1.weight")].kind() == tch::Kind::Float);
    assert!(weights[&format!("{prefix}adapter_norm_before.weight")]
        .equal(&weights[&format!("{prefix}adapter_down.0.weight")]));
}
