//! Parity with Hugging Face transformers: the tiny random checkpoints in
//! tests/fixtures/models/ (made by scripts/make_model_fixtures.py) give the logits and
//! hidden states transformers computed, within 1e-4, including a padded batch; and the
//! printed module tree is transformers' `print(model)`.

mod support;

use orchestrate::model::{self, LoadOptions};
use support::models::{cpu, fixture};
use tch::Tensor;

const TOL: f64 = 1e-4;

fn expected(name: &str) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(fixture(name).join("expected.safetensors")).expect("expected.safetensors")
}

fn get<'a>(tensors: &'a [(String, Tensor)], name: &str) -> &'a Tensor {
    &tensors
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn check_parity(name: &str) {
    let m = model::load(fixture(name).to_str().unwrap(), &cpu()).expect("load");
    assert!(m.report.is_clean(), "{}", m.report);
    let exp = expected(name);
    let ids = get(&exp, "input_ids");
    let mask = get(&exp, "attention_mask");
    assert!(
        bool::try_from(mask.eq(0).any()).unwrap(),
        "fixture batch must contain padding"
    );
    let out = tch::no_grad(|| m.forward_with_hidden_states(ids, mask, false)).expect("forward");
    let d = max_abs_diff(&out.logits, get(&exp, "logits"));
    println!("{name}: logits max abs diff {d:.3e}");
    assert!(d <= TOL, "{name}: logits differ by {d}");
    let n_hidden = exp.iter().filter(|(n, _)| n.starts_with("hidden_states.")).count();
    assert_eq!(out.hidden_states.len(), n_hidden);
    for (i, h) in out.hidden_states.iter().enumerate() {
        let d = max_abs_diff(h, get(&exp, &format!("hidden_states.{i}")));
        println!("{name}: hidden_states.{i} max abs diff {d:.3e}");
        assert!(d <= TOL, "{name}: hidden_states.{i} differ by {d}");
    }
    // Each sequence alone (no padding) gives the same logits as in the padded batch.
    let lengths: Vec<i64> = Vec::try_from(mask.sum_dim_intlist(1, false, tch::Kind::Int64)).unwrap();
    for (row, &len) in lengths.iter().enumerate() {
        let ids1 = ids.get(row as i64).narrow(0, 0, len).unsqueeze(0);
        let mask1 = mask.get(row as i64).narrow(0, 0, len).unsqueeze(0);
        let logits1 = tch::no_grad(|| m.forward(&ids1, &mask1, false)).unwrap();
        let d = max_abs_diff(&logits1.squeeze_dim(0), &out.logits.get(row as i64));
        assert!(d <= TOL, "{name}: row {row} unpadded vs padded differ by {d}");
    }
}

#[test]
fn distilbert_matches_transformers() {
    check_parity("tiny-distilbert");
}

#[test]
fn bert_matches_transformers() {
    check_parity("tiny-bert");
}

#[test]
fn eval_is_deterministic_and_train_mode_uses_dropout() {
    let m = model::load(fixture("tiny-distilbert").to_str().unwrap(), &cpu()).unwrap();
    let exp = expected("tiny-distilbert");
    let (ids, mask) = (get(&exp, "input_ids"), get(&exp, "attention_mask"));
    tch::manual_seed(0);
    let a = tch::no_grad(|| m.forward(ids, mask, false)).unwrap();
    let b = tch::no_grad(|| m.forward(ids, mask, false)).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    let t = tch::no_grad(|| m.forward(ids, mask, true)).unwrap();
    assert!(max_abs_diff(&a, &t) > 1e-6, "dropout should change train-mode logits");
}

#[test]
fn module_tree_is_transformers_print() {
    for name in ["tiny-distilbert", "tiny-bert"] {
        let m = model::load(fixture(name).to_str().unwrap(), &cpu()).unwrap();
        let want = std::fs::read_to_string(fixture(name).join("module_tree.txt")).unwrap();
        assert_eq!(m.module_tree().render(), want.trim_end(), "{name}");
    }
    let base = fixture("distilbert-base-uncased-config");
    let opts = LoadOptions {
        weights: false,
        ..cpu()
    };
    let m = model::load(base.join("config.json").to_str().unwrap(), &opts).unwrap();
    let want = std::fs::read_to_string(base.join("module_tree.txt")).unwrap();
    assert_eq!(m.module_tree().render(), want.trim_end());
}

#[test]
fn parameter_names_are_hugging_face_names() {
    let m = model::load(fixture("tiny-distilbert").to_str().unwrap(), &cpu()).unwrap();
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    for n in [
        "distilbert.embeddings.word_embeddings.weight",
        "distilbert.transformer.layer.0.attention.q_lin.weight",
        "distilbert.transformer.layer.1.ffn.lin2.bias",
        "distilbert.transformer.layer.1.output_layer_norm.weight",
        "pre_classifier.weight",
        "classifier.bias",
    ] {
        assert!(names.contains(&n.to_string()), "missing {n}");
    }
    let m = model::load(fixture("tiny-bert").to_str().unwrap(), &cpu()).unwrap();
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    for n in [
        "bert.embeddings.token_type_embeddings.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.1.attention.output.LayerNorm.bias",
        "bert.encoder.layer.1.intermediate.dense.weight",
        "bert.pooler.dense.weight",
        "classifier.weight",
    ] {
        assert!(names.contains(&n.to_string()), "missing {n}");
    }
}

#[test]
fn tokenizer_matches_transformers() {
    // The sentences of scripts/make_model_fixtures.py.
    let texts = [
        "the movie was great",
        "this film was really boring and the plot was bad",
        "loved it",
    ];
    for name in ["tiny-distilbert", "tiny-bert"] {
        let m = model::load(fixture(name).to_str().unwrap(), &cpu()).unwrap();
        let (ids, mask) = m.encode(&texts, 64).unwrap();
        let exp = expected(name);
        assert!(ids.equal(get(&exp, "input_ids")), "{name}: input_ids");
        assert!(mask.equal(get(&exp, "attention_mask")), "{name}: attention_mask");
    }
}
