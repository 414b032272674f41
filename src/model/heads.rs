//! Sequence-classification heads, as in transformers.
//!
//! - DistilBERT: `pre_classifier` (dim→dim) → ReLU → dropout(`seq_classif_dropout`) →
//!   `classifier` (dim→num_labels), on the first token's hidden state.
//! - BERT: `bert.pooler.dense` + tanh on the first token (inside `BertModel`, as in HF),
//!   dropout(`classifier_dropout` or `hidden_dropout_prob`) → `classifier`.
//!
//! For head-tuning, the head is `pre_classifier` + `classifier` (DistilBERT) and
//! `bert.pooler` + `classifier` (BERT): see [`HEAD_PREFIXES_DISTILBERT`], [`HEAD_PREFIXES_BERT`].

use tch::nn;
use tch::Tensor;

use super::config::{BertConfig, DistilBertConfig};
use super::error::Result;
use super::layers::{linear, Dropout, LinearSlot};
use super::tree::ModuleNode;

/// Parameter-name prefixes of DistilBERT's classification head.
pub const HEAD_PREFIXES_DISTILBERT: &[&str] = &["pre_classifier.", "classifier."];
/// Parameter-name prefixes of BERT's classification head (pooler included).
pub const HEAD_PREFIXES_BERT: &[&str] = &["bert.pooler.", "classifier."];

/// `DistilBertForSequenceClassification`'s head.
#[derive(Debug)]
pub struct DistilBertHead {
    pub pre_classifier: LinearSlot,
    pub classifier: LinearSlot,
    pub dropout: Dropout,
}

impl DistilBertHead {
    /// `p` is the model root: the layers are `pre_classifier` and `classifier`.
    pub fn new(p: &nn::Path, c: &DistilBertConfig, num_labels: i64) -> Result<Self> {
        Ok(DistilBertHead {
            pre_classifier: linear(&(p / "pre_classifier"), c.dim, c.dim, c.initializer_range)?,
            classifier: linear(&(p / "classifier"), c.dim, num_labels, c.initializer_range)?,
            dropout: Dropout {
                p: c.seq_classif_dropout,
            },
        })
    }

    /// `hidden [batch, seq, dim]` → logits `[batch, num_labels]`.
    pub fn forward_t(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_pooled(&hidden.f_select(1, 0)?, train)
    }

    /// `pooled [batch, dim]` (the first token's hidden state, or a mean) → logits.
    pub fn forward_pooled(&self, pooled: &Tensor, train: bool) -> Result<Tensor> {
        let pooled = self.pre_classifier.forward_t(pooled, train)?.f_relu()?;
        let pooled = self.dropout.forward_t(&pooled, train)?;
        self.classifier.forward_t(&pooled, train)
    }

    pub(crate) fn children(&self) -> Vec<(&'static str, ModuleNode)> {
        vec![
            ("pre_classifier", self.pre_classifier.module_node()),
            ("classifier", self.classifier.module_node()),
            ("dropout", self.dropout.module_node()),
        ]
    }
}

/// `BertPooler`: dense + tanh on the first token.
#[derive(Debug)]
pub struct BertPooler {
    pub dense: LinearSlot,
}

impl BertPooler {
    pub fn new(p: &nn::Path, c: &BertConfig) -> Result<Self> {
        Ok(BertPooler {
            dense: linear(&(p / "dense"), c.hidden_size, c.hidden_size, c.initializer_range)?,
        })
    }

    pub fn forward_t(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_pooled(&hidden.f_select(1, 0)?, train)
    }

    /// `pooled [batch, hidden]` (the first token's hidden state, or a mean) → dense + tanh.
    pub fn forward_pooled(&self, pooled: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.dense.forward_t(pooled, train)?.f_tanh()?)
    }

    pub fn module_node(&self) -> ModuleNode {
        ModuleNode::new(
            "BertPooler",
            vec![
                ("dense", self.dense.module_node()),
                ("activation", ModuleNode::leaf("Tanh", "")),
            ],
        )
    }
}

/// `BertForSequenceClassification`'s dropout + classifier (the pooler lives in `BertModel`).
#[derive(Debug)]
pub struct BertHead {
    pub dropout: Dropout,
    pub classifier: LinearSlot,
}

impl BertHead {
    pub fn new(p: &nn::Path, c: &BertConfig, num_labels: i64) -> Result<Self> {
        Ok(BertHead {
            dropout: Dropout {
                p: c.classifier_dropout.unwrap_or(c.hidden_dropout_prob),
            },
            classifier: linear(&(p / "classifier"), c.hidden_size, num_labels, c.initializer_range)?,
        })
    }

    /// `pooled [batch, hidden]` → logits.
    pub fn forward_t(&self, pooled: &Tensor, train: bool) -> Result<Tensor> {
        self.classifier
            .forward_t(&self.dropout.forward_t(pooled, train)?, train)
    }

    pub(crate) fn children(&self) -> Vec<(&'static str, ModuleNode)> {
        vec![
            ("dropout", self.dropout.module_node()),
            ("classifier", self.classifier.module_node()),
        ]
    }
}
