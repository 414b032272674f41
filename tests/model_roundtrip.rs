//! Saving: a checkpoint saved by orchestrate reloads (here, and in transformers).
//!
//! The tiny fixtures are perturbed (as training would), saved, and reloaded; the
//! logits must match. With ORCHESTRATE_ROUNDTRIP_DIR set, the saved folders and the Rust
//! logits (`rust_outputs.safetensors`) are kept there for scripts/check_roundtrip.py, which
//! loads them with transformers (see scripts/roundtrip.sh).

use std::path::{Path, PathBuf};

use orchestrate::model::{self, DeviceChoice, LoadOptions};
use tch::Tensor;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceChoice::Cpu,
        ..LoadOptions::default()
    }
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
    // Perturb every parameter, as training would.
    tch::manual_seed(11);
    tch::no_grad(|| {
        for (_, mut t) in m.named_parameters() {
            let noise = t.randn_like() * 0.05;
            let _ = t.f_add_(&noise).unwrap();
        }
    });
    let (ids, mask) = m.encode(&texts, 64).unwrap();
    let logits = tch::no_grad(|| m.forward(&ids, &mask, false)).unwrap();
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
