//! Bad input: each mistake gives a clear error naming the file and, where there is one,
//! the tensor.

mod support;

use std::path::Path;

use orchestrate::model::{self, DeviceChoice, LoadOptions, ModelError};
use support::models::{cpu, fixture};
use tch::Tensor;

/// A temp copy of a fixture folder.
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn load_err(dir: &Path, opts: &LoadOptions) -> (ModelError, String) {
    let e = model::load(dir.to_str().unwrap(), opts).unwrap_err();
    let s = e.to_string();
    (e, s)
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Rewrites model.safetensors with `f` applied to its (name, tensor) list.
fn edit_weights(dir: &Path, f: impl FnOnce(&mut Vec<(String, Tensor)>)) {
    let p = dir.join("model.safetensors");
    let mut ts = Tensor::read_safetensors(&p).unwrap();
    f(&mut ts);
    Tensor::write_safetensors(&ts, &p).unwrap();
}

#[test]
fn missing_files() {
    for (file, expect) in [
        ("config.json", "missing config.json"),
        ("model.safetensors", "missing model.safetensors"),
    ] {
        let dir = copy_of("tiny-distilbert");
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let (e, s) = load_err(dir.path(), &cpu());
        assert!(matches!(e, ModelError::MissingFile { .. }), "{s}");
        assert!(
            s.contains(expect) && s.contains(&dir.path().display().to_string()),
            "{s}"
        );
    }
    // No tokenizer at all.
    let dir = copy_of("tiny-distilbert");
    for f in ["tokenizer.json", "vocab.txt"] {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let (_, s) = load_err(dir.path(), &cpu());
    assert!(s.ends_with("missing tokenizer.json (or vocab.txt)"), "{s}");
    // Only a PyTorch pickle: say how to convert.
    let dir = copy_of("tiny-distilbert");
    std::fs::rename(
        dir.path().join("model.safetensors"),
        dir.path().join("pytorch_model.bin"),
    )
    .unwrap();
    let (_, s) = load_err(dir.path(), &cpu());
    assert!(s.contains("found only pytorch_model.bin"), "{s}");
    // A path that is nothing.
    let e = model::load("/nonexistent/model-folder", &cpu())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"/nonexistent/model-folder\" is neither a model folder"),
        "{e}"
    );
}

#[test]
fn vocab_txt_is_enough_as_tokenizer() {
    let dir = copy_of("tiny-distilbert");
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let m = model::load(dir.path().to_str().unwrap(), &cpu()).unwrap();
    let (ids, _) = m.encode(&["the movie was great"], 16).unwrap();
    let full = model::load(fixture("tiny-distilbert").to_str().unwrap(), &cpu()).unwrap();
    let (ids2, _) = full.encode(&["the movie was great"], 16).unwrap();
    assert_eq!(
        Vec::<i64>::try_from(ids.flatten(0, -1)).unwrap(),
        Vec::<i64>::try_from(ids2.flatten(0, -1)).unwrap()
    );
}

#[test]
fn unsupported_model_type_and_bad_config() {
    let dir = copy_of("tiny-distilbert");
    edit_config(dir.path(), |v| v["model_type"] = "roberta".into());
    let (e, s) = load_err(dir.path(), &cpu());
    assert!(matches!(e, ModelError::UnsupportedModelType { .. }));
    assert!(s.contains("config.json: unsupported model_type \"roberta\""), "{s}");

    let dir = copy_of("tiny-bert");
    edit_config(dir.path(), |v| v["hidden_size"] = "wide".into());
    let (_, s) = load_err(dir.path(), &cpu());
    assert!(s.contains("config.json: invalid config: field hidden_size"), "{s}");

    let dir = copy_of("tiny-bert");
    edit_config(dir.path(), |v| v["num_attention_heads"] = 5.into());
    let (_, s) = load_err(dir.path(), &cpu());
    assert!(
        s.contains("hidden size 32 is not a multiple of the number of attention heads 5"),
        "{s}"
    );
}

#[test]
fn tokenizer_vocabulary_larger_than_embeddings() {
    let dir = copy_of("tiny-bert");
    // The tokenizer has 61 tokens; shrink the embeddings to 50 rows (config and weights agree).
    edit_config(dir.path(), |v| v["vocab_size"] = 50.into());
    edit_weights(dir.path(), |ts| {
        for (n, t) in ts.iter_mut() {
            if n == "bert.embeddings.word_embeddings.weight" {
                *t = t.narrow(0, 0, 50).contiguous();
            }
        }
    });
    let (e, s) = load_err(dir.path(), &cpu());
    assert!(matches!(e, ModelError::VocabMismatch { .. }), "{s}");
    assert!(s.contains("tokenizer.json has 61 tokens"), "{s}");
    assert!(s.contains("bert.embeddings.word_embeddings.weight"), "{s}");
    assert!(s.contains("has only 50 rows"), "{s}");
}

#[test]
fn label_count_mismatch() {
    // The checkpoint's classifier has 3 labels; the task wants 2.
    let opts = LoadOptions {
        num_labels: Some(2),
        ..cpu()
    };
    let (e, s) = load_err(&fixture("tiny-bert"), &opts);
    assert!(
        matches!(
            e,
            ModelError::LabelMismatch {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{s}"
    );
    assert!(
        s.contains("model.safetensors: tensor classifier.weight has 3 labels, but 2 were requested"),
        "{s}"
    );
    // HF's ignore_mismatched_sizes: the head is re-initialised and reported.
    let opts = LoadOptions {
        num_labels: Some(2),
        reinit_mismatched_head: true,
        ..cpu()
    };
    let m = model::load(fixture("tiny-bert").to_str().unwrap(), &opts).unwrap();
    assert_eq!(m.report.mismatched.len(), 2);
    assert!(m.report.to_string().contains("classifier.weight: found shape [3, 32]"));
    // config.json says 2 labels but the weights have 3.
    let dir = copy_of("tiny-bert");
    edit_config(dir.path(), |v| {
        v.as_object_mut().unwrap().remove("id2label");
        v.as_object_mut().unwrap().remove("label2id");
        v["num_labels"] = 2.into();
    });
    let (_, s) = load_err(dir.path(), &cpu());
    assert!(
        s.contains("classifier.weight has 3 labels, but 2 were requested (id2label/num_labels in"),
        "{s}"
    );
}

#[test]
fn wrong_tensor_shape() {
    let dir = copy_of("tiny-distilbert");
    edit_weights(dir.path(), |ts| {
        for (n, t) in ts.iter_mut() {
            if n == "distilbert.transformer.layer.1.ffn.lin1.weight" {
                *t = t.narrow(0, 0, 30).contiguous();
            }
        }
    });
    let (e, s) = load_err(dir.path(), &cpu());
    assert!(matches!(e, ModelError::ShapeMismatch { .. }));
    assert!(
        s.ends_with("model.safetensors: tensor distilbert.transformer.layer.1.ffn.lin1.weight has shape [30, 32], but the model expects [37, 32]"),
        "{s}"
    );
}

#[test]
fn missing_and_unexpected_tensors() {
    // An encoder tensor missing: an error listing it.
    let dir = copy_of("tiny-distilbert");
    edit_weights(dir.path(), |ts| {
        ts.retain(|(n, _)| !n.ends_with("layer.0.attention.k_lin.bias"))
    });
    let (e, s) = load_err(dir.path(), &cpu());
    assert!(matches!(e, ModelError::MissingTensors { .. }));
    assert!(
        s.ends_with("missing 1 tensor(s) the model needs: distilbert.transformer.layer.0.attention.k_lin.bias"),
        "{s}"
    );

    // A bare-encoder checkpoint (no head, names without "distilbert."), plus an MLM tensor:
    // loads; the head is listed as newly initialised, the extra tensor as unexpected.
    let dir = copy_of("tiny-distilbert");
    edit_weights(dir.path(), |ts| {
        ts.retain(|(n, _)| n.starts_with("distilbert."));
        for (n, _) in ts.iter_mut() {
            *n = n.trim_start_matches("distilbert.").to_string();
        }
        ts.push(("vocab_projector.bias".into(), Tensor::zeros([64], tch::kind::FLOAT_CPU)));
    });
    let m = model::load(dir.path().to_str().unwrap(), &cpu()).unwrap();
    assert_eq!(m.report.added_prefix.as_deref(), Some("distilbert."));
    assert_eq!(m.report.unexpected, vec!["vocab_projector.bias"]);
    assert_eq!(
        m.report.newly_initialized,
        vec![
            "classifier.bias",
            "classifier.weight",
            "pre_classifier.bias",
            "pre_classifier.weight"
        ]
    );
    let text = m.report.to_string();
    assert!(text.contains(
        "Some weights of DistilBertForSequenceClassification were not initialized from the model checkpoint at"
    ));
    assert!(text.contains(
        "newly initialized: [classifier.bias, classifier.weight, pre_classifier.bias, pre_classifier.weight]"
    ));
}

#[test]
fn corrupt_safetensors_and_bad_device() {
    let dir = copy_of("tiny-distilbert");
    std::fs::write(dir.path().join("model.safetensors"), b"not a safetensors file").unwrap();
    let (e, s) = load_err(dir.path(), &cpu());
    assert!(matches!(e, ModelError::Safetensors { .. }));
    assert!(s.contains("model.safetensors: invalid safetensors file"), "{s}");

    let e = "gpu".parse::<DeviceChoice>().unwrap_err().to_string();
    assert_eq!(e, "invalid device \"gpu\": expected \"cpu\", \"cuda\" or \"auto\"");
    assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
    if !tch::Cuda::is_available() {
        let opts = LoadOptions {
            device: DeviceChoice::Cuda,
            ..cpu()
        };
        let (e, _) = load_err(&fixture("tiny-bert"), &opts);
        assert!(matches!(e, ModelError::CudaUnavailable));
        assert_eq!(DeviceChoice::Auto.resolve().unwrap(), tch::Device::Cpu);
    }
}

#[test]
fn half_precision_checkpoint_loads_as_f32() {
    let dir = copy_of("tiny-distilbert");
    edit_weights(dir.path(), |ts| {
        for (_, t) in ts.iter_mut() {
            *t = t.to_kind(tch::Kind::Half);
        }
    });
    let half = model::load(dir.path().to_str().unwrap(), &cpu()).unwrap();
    let full = model::load(fixture("tiny-distilbert").to_str().unwrap(), &cpu()).unwrap();
    let (ids, mask) = full.encode(&["the movie was great", "loved it"], 16).unwrap();
    let a = tch::no_grad(|| half.forward(&ids, &mask, false)).unwrap();
    let b = tch::no_grad(|| full.forward(&ids, &mask, false)).unwrap();
    assert_eq!(a.kind(), tch::Kind::Float);
    assert!((a - b).abs().max().double_value(&[]) < 2e-2);
}
