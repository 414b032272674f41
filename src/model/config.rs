//! Model configuration read straight from a Hugging Face `config.json`.
//!
//! Field names and defaults are transformers' own
//! ([`DistilBertConfig`](https://github.com/huggingface/transformers/blob/main/src/transformers/models/distilbert/configuration_distilbert.py),
//! [`BertConfig`](https://github.com/huggingface/transformers/blob/main/src/transformers/models/bert/configuration_bert.py)),
//! so a config written by transformers (any version) reads here unchanged. The raw JSON is
//! kept so that saving writes back every field we do not model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ModelError, Result};

/// `DistilBertConfig` (defaults = distilbert-base-uncased).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct DistilBertConfig {
    pub vocab_size: i64,
    pub max_position_embeddings: i64,
    pub sinusoidal_pos_embds: bool,
    pub n_layers: i64,
    pub n_heads: i64,
    pub dim: i64,
    pub hidden_dim: i64,
    pub dropout: f64,
    pub attention_dropout: f64,
    pub activation: String,
    pub initializer_range: f64,
    pub seq_classif_dropout: f64,
    pub pad_token_id: Option<i64>,
}

impl Default for DistilBertConfig {
    fn default() -> Self {
        DistilBertConfig {
            vocab_size: 30522,
            max_position_embeddings: 512,
            sinusoidal_pos_embds: false,
            n_layers: 6,
            n_heads: 12,
            dim: 768,
            hidden_dim: 4 * 768,
            dropout: 0.1,
            attention_dropout: 0.1,
            activation: "gelu".into(),
            initializer_range: 0.02,
            seq_classif_dropout: 0.2,
            pad_token_id: Some(0),
        }
    }
}

/// `BertConfig` (defaults = bert-base-uncased).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: i64,
    pub type_vocab_size: i64,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: Option<i64>,
    pub position_embedding_type: String,
    pub classifier_dropout: Option<f64>,
}

impl Default for BertConfig {
    fn default() -> Self {
        BertConfig {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: Some(0),
            position_embedding_type: "absolute".into(),
            classifier_dropout: None,
        }
    }
}

/// The architecture-specific part of a config.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchConfig {
    DistilBert(DistilBertConfig),
    Bert(BertConfig),
}

/// Fields every `PretrainedConfig` has that matter for sequence classification.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct Common {
    model_type: Option<String>,
    num_labels: Option<i64>,
    id2label: Option<BTreeMap<String, String>>,
}

/// A parsed `config.json`.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub arch: ArchConfig,
    /// Number of classification labels: `id2label`'s length, else `num_labels`, else 2
    /// (transformers' default).
    pub num_labels: i64,
    /// The file it came from (for error messages).
    pub path: PathBuf,
    /// The whole JSON object, written back (updated) on save.
    pub raw: serde_json::Map<String, serde_json::Value>,
}

/// Activations transformers' `ACT2FN` maps these names to.
pub(crate) const SUPPORTED_ACTIVATIONS: &[&str] = &["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu"];

impl ModelConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: &Path) -> Result<ModelConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses config JSON; `path` is only used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<ModelConfig> {
        let err = |message: String| ModelError::Config {
            path: path.to_owned(),
            message,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| err(format!("not JSON: {e}")))?;
        let raw = match &value {
            serde_json::Value::Object(map) => map.clone(),
            _ => return Err(err("expected a JSON object".into())),
        };
        let common: Common = parse(&value, path)?;
        let model_type = common
            .model_type
            .clone()
            .ok_or_else(|| err("no \"model_type\" field".into()))?;
        let arch = match model_type.as_str() {
            "distilbert" => ArchConfig::DistilBert(parse(&value, path)?),
            "bert" => ArchConfig::Bert(parse(&value, path)?),
            _ => {
                return Err(ModelError::UnsupportedModelType {
                    path: path.to_owned(),
                    model_type,
                })
            }
        };
        let num_labels = match (&common.id2label, common.num_labels) {
            (Some(map), _) if !map.is_empty() => map.len() as i64,
            (_, Some(n)) => n,
            _ => 2,
        };
        let config = ModelConfig {
            arch,
            num_labels,
            path: path.to_owned(),
            raw,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let err = |message: String| ModelError::Config {
            path: self.path.clone(),
            message,
        };
        let (hidden, heads, act) = match &self.arch {
            ArchConfig::DistilBert(c) => {
                if c.sinusoidal_pos_embds {
                    // Only initialisation differs; loaded weights would still work, but a
                    // random init would not match transformers. Keep it explicit.
                    return Err(err("sinusoidal_pos_embds = true is not supported".into()));
                }
                (c.dim, c.n_heads, c.activation.as_str())
            }
            ArchConfig::Bert(c) => {
                if c.position_embedding_type != "absolute" {
                    return Err(err(format!(
                        "position_embedding_type {:?} is not supported (only \"absolute\")",
                        c.position_embedding_type
                    )));
                }
                (c.hidden_size, c.num_attention_heads, c.hidden_act.as_str())
            }
        };
        if heads <= 0 || hidden <= 0 || hidden % heads != 0 {
            return Err(err(format!(
                "hidden size {hidden} is not a multiple of the number of attention heads {heads}"
            )));
        }
        if !SUPPORTED_ACTIVATIONS.contains(&act) {
            return Err(err(format!(
                "activation {act:?} is not supported (supported: {})",
                SUPPORTED_ACTIVATIONS.join(", ")
            )));
        }
        if self.num_labels < 1 {
            return Err(err(format!("num_labels must be at least 1, got {}", self.num_labels)));
        }
        Ok(())
    }

    /// "distilbert" or "bert".
    pub fn model_type(&self) -> &'static str {
        match self.arch {
            ArchConfig::DistilBert(_) => "distilbert",
            ArchConfig::Bert(_) => "bert",
        }
    }

    /// Rows of the word-embedding matrix.
    /// The longest sequence the position embeddings cover.
    pub fn max_position_embeddings(&self) -> i64 {
        match &self.arch {
            ArchConfig::DistilBert(c) => c.max_position_embeddings,
            ArchConfig::Bert(c) => c.max_position_embeddings,
        }
    }

    pub fn vocab_size(&self) -> i64 {
        match &self.arch {
            ArchConfig::DistilBert(c) => c.vocab_size,
            ArchConfig::Bert(c) => c.vocab_size,
        }
    }

    pub fn hidden_size(&self) -> i64 {
        match &self.arch {
            ArchConfig::DistilBert(c) => c.dim,
            ArchConfig::Bert(c) => c.hidden_size,
        }
    }

    /// Standard deviation of transformers' normal initialisation of linear layers.
    pub fn initializer_range(&self) -> f64 {
        match &self.arch {
            ArchConfig::DistilBert(c) => c.initializer_range,
            ArchConfig::Bert(c) => c.initializer_range,
        }
    }

    pub fn num_layers(&self) -> i64 {
        match &self.arch {
            ArchConfig::DistilBert(c) => c.n_layers,
            ArchConfig::Bert(c) => c.num_hidden_layers,
        }
    }

    pub fn num_attention_heads(&self) -> i64 {
        match &self.arch {
            ArchConfig::DistilBert(c) => c.n_heads,
            ArchConfig::Bert(c) => c.num_attention_heads,
        }
    }

    /// The JSON to save: the original fields, with the label maps and architecture set to
    /// what the model is now (as `save_pretrained` of a `*ForSequenceClassification`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut raw = self.raw.clone();
        let old_labels: Option<BTreeMap<String, String>> =
            raw.get("id2label").and_then(|v| serde_json::from_value(v.clone()).ok());
        if old_labels.as_ref().map(|m| m.len() as i64) != Some(self.num_labels) {
            let id2label: serde_json::Map<String, serde_json::Value> = (0..self.num_labels)
                .map(|i| (i.to_string(), serde_json::Value::from(format!("LABEL_{i}"))))
                .collect();
            let label2id: serde_json::Map<String, serde_json::Value> = (0..self.num_labels)
                .map(|i| (format!("LABEL_{i}"), serde_json::Value::from(i)))
                .collect();
            raw.insert("id2label".into(), id2label.into());
            raw.insert("label2id".into(), label2id.into());
        }
        raw.remove("num_labels");
        let arch = match self.arch {
            ArchConfig::DistilBert(_) => "DistilBertForSequenceClassification",
            ArchConfig::Bert(_) => "BertForSequenceClassification",
        };
        raw.insert("architectures".into(), serde_json::json!([arch]));
        serde_json::Value::Object(raw)
    }
}

fn parse<T: serde::de::DeserializeOwned>(value: &serde_json::Value, path: &Path) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| ModelError::Config {
        path: path.to_owned(),
        message: format!("field {}: {}", e.path(), e.inner()),
    })
}
