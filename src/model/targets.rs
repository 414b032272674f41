//! Which layers a method targets: PEFT's `target_modules` patterns, the model types'
//! defaults, and the linear layers a config describes (so a spec can be checked without
//! building the model).
//!
//! A plain name matches a layer whose full HF module name equals it or ends with `.name`
//! (`q_lin`, `attention.self.query`); a pattern with `*` or `?` is a glob over the full name
//! (`*.layer.[0-2].attention.q_lin`, `*.attention.self.query`). Every pattern must match
//! something: a typo fails with the list of layer names the model has.

use globset::{Glob, GlobMatcher};

use super::config::{ArchConfig, ModelConfig};
use super::error::{ModelError, Result};

/// One `target_modules` entry, compiled.
pub(crate) enum Pattern {
    Suffix(String),
    Glob(GlobMatcher),
}

impl Pattern {
    pub(crate) fn new(pattern: &str) -> Result<Pattern> {
        if pattern.contains(['*', '?', '[']) {
            let glob = Glob::new(pattern).map_err(|e| ModelError::Surgery {
                message: format!("invalid module pattern {pattern:?}: {e}"),
            })?;
            Ok(Pattern::Glob(glob.compile_matcher()))
        } else {
            Ok(Pattern::Suffix(pattern.to_string()))
        }
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Suffix(s) => name == s || name.strip_suffix(s.as_str()).is_some_and(|head| head.ends_with('.')),
            Pattern::Glob(g) => g.is_match(name),
        }
    }
}

/// Whether any of `patterns` names the module `name` (no validation; see [`select`]).
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .filter_map(|p| Pattern::new(p).ok())
        .any(|p| p.matches(name))
}

/// Distinct layer names with the layer index removed (`attention.q_lin`, `ffn.lin1`,
/// `pre_classifier`): what a user types as a target.
pub fn module_kinds(names: &[String]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for name in names {
        let short = match name.find(".layer.") {
            Some(at) => {
                let rest = &name[at + ".layer.".len()..];
                rest.split_once('.').map_or(rest, |(_, tail)| tail).to_string()
            }
            None => name.clone(),
        };
        if !kinds.contains(&short) {
            kinds.push(short);
        }
    }
    kinds
}

/// LoRA's target modules: `given`, else PEFT's default for the model type (q and v).
pub fn lora_targets(given: Option<&[String]>, model_type: &str) -> Vec<String> {
    given.map_or_else(|| default_lora_targets(model_type), <[String]>::to_vec)
}

/// PEFT's default target modules per model type.
fn default_lora_targets(model_type: &str) -> Vec<String> {
    let names: &[&str] = match model_type {
        "distilbert" => &["q_lin", "v_lin"],
        _ => &["query", "value"],
    };
    names.iter().map(|s| s.to_string()).collect()
}

/// PEFT's IA3 defaults per model type: (target modules, feed-forward modules).
pub(crate) fn default_ia3_targets(model_type: &str) -> (Vec<String>, Vec<String>) {
    let (targets, feedforward): (&[&str], &[&str]) = match model_type {
        "distilbert" => (&["k_lin", "v_lin", "lin2"], &["lin2"]),
        _ => (&["key", "value", "output.dense"], &["output.dense"]),
    };
    let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    (owned(targets), owned(feedforward))
}

/// A linear layer as a config describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearShape {
    /// The HF module name (`distilbert.transformer.layer.0.attention.q_lin`).
    pub name: String,
    pub inputs: i64,
    pub outputs: i64,
}

/// Every linear layer of the sequence-classification model `config` describes, in module
/// order: the names and shapes `Network::linears_mut` has once the model is built.
pub fn linear_layers(config: &ModelConfig) -> Vec<LinearShape> {
    let shape = |name: String, inputs: i64, outputs: i64| LinearShape { name, inputs, outputs };
    let labels = config.num_labels;
    let mut layers = Vec::new();
    match &config.arch {
        ArchConfig::DistilBert(c) => {
            let (d, ffn) = (c.dim, c.hidden_dim);
            for i in 0..c.n_layers {
                let b = format!("distilbert.transformer.layer.{i}.");
                for name in ["q_lin", "k_lin", "v_lin", "out_lin"] {
                    layers.push(shape(format!("{b}attention.{name}"), d, d));
                }
                layers.push(shape(format!("{b}ffn.lin1"), d, ffn));
                layers.push(shape(format!("{b}ffn.lin2"), ffn, d));
            }
            layers.push(shape("pre_classifier".into(), d, d));
            layers.push(shape("classifier".into(), d, labels));
        }
        ArchConfig::Bert(c) => {
            let (h, ffn) = (c.hidden_size, c.intermediate_size);
            for i in 0..c.num_hidden_layers {
                let b = format!("bert.encoder.layer.{i}.");
                for name in [
                    "attention.self.query",
                    "attention.self.key",
                    "attention.self.value",
                    "attention.output.dense",
                ] {
                    layers.push(shape(format!("{b}{name}"), h, h));
                }
                layers.push(shape(format!("{b}intermediate.dense"), h, ffn));
                layers.push(shape(format!("{b}output.dense"), ffn, h));
            }
            layers.push(shape("bert.pooler.dense".into(), h, h));
            layers.push(shape("classifier".into(), h, labels));
        }
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::{linear_layers, LinearShape};
    use crate::model::{load, DeviceChoice, LoadOptions};

    /// The config-only list must be what building the model gives, layer for layer.
    #[test]
    fn linear_layers_from_the_config_are_the_built_models() {
        for fixture in ["tiny-bert", "tiny-distilbert"] {
            let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/").to_string() + fixture;
            let options = LoadOptions {
                device: DeviceChoice::Cpu,
                weights: false,
                require_tokenizer: false,
                ..LoadOptions::default()
            };
            let mut model = load(&folder, &options).unwrap();
            let built: Vec<LinearShape> = model
                .network
                .linears_mut()
                .into_iter()
                .map(|(name, slot)| LinearShape {
                    name,
                    inputs: slot.in_features(),
                    outputs: slot.out_features(),
                })
                .collect();
            assert_eq!(linear_layers(&model.config), built, "{fixture}");
        }
    }
}
