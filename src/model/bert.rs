//! BERT encoder, mirroring transformers'
//! [modeling_bert.py](https://github.com/huggingface/transformers/blob/main/src/transformers/models/bert/modeling_bert.py):
//! weight paths are HF's (`embeddings.token_type_embeddings`,
//! `encoder.layer.{i}.attention.self.query`, `attention.output.dense`,
//! `intermediate.dense`, `output.LayerNorm`). Token type ids are all 0, as for
//! single-sentence classification.

use tch::nn;
use tch::{Kind, Tensor};

use super::bottleneck::Bottleneck;
use super::config::BertConfig;
use super::error::Result;
use super::heads::BertPooler;
use super::layers::{
    additive_mask, attention, compute_kind, linear, Activation, Dropout, Embedding, KvPrefix, LayerNorm, LinearSlot,
};
use super::tree::ModuleNode;

/// `BertEmbeddings`: word + position + token type embeddings, LayerNorm, dropout.
#[derive(Debug)]
pub struct BertEmbeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
}

impl BertEmbeddings {
    pub fn new(p: &nn::Path, c: &BertConfig) -> Result<Self> {
        let (h, std) = (c.hidden_size, c.initializer_range);
        Ok(BertEmbeddings {
            word_embeddings: Embedding::new(&(p / "word_embeddings"), c.vocab_size, h, std, c.pad_token_id)?,
            position_embeddings: Embedding::new(&(p / "position_embeddings"), c.max_position_embeddings, h, std, None)?,
            token_type_embeddings: Embedding::new(&(p / "token_type_embeddings"), c.type_vocab_size, h, std, None)?,
            layer_norm: LayerNorm::new(&(p / "LayerNorm"), h, c.layer_norm_eps)?,
            dropout: Dropout {
                p: c.hidden_dropout_prob,
            },
        })
    }

    pub fn forward_t(&self, input_ids: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_embeds_t(&self.word_embeddings.forward(input_ids)?, 0, train)
    }

    /// transformers' `inputs_embeds` path: `inputs_embeds [batch, seq, hidden]` in place of
    /// the word embeddings; token types 0 and positions `past..past + seq` (transformers'
    /// `past_key_values_length`: the prefix tuning's virtual tokens come first).
    pub fn forward_embeds_t(&self, inputs_embeds: &Tensor, past: i64, train: bool) -> Result<Tensor> {
        let (batch, seq) = (inputs_embeds.size()[0], inputs_embeds.size()[1]);
        let positions =
            Tensor::f_arange_start(past, past + seq, (Kind::Int64, inputs_embeds.device()))?.f_unsqueeze(0)?;
        let token_types = Tensor::f_zeros([batch, seq], (Kind::Int64, inputs_embeds.device()))?;
        let xs = inputs_embeds
            .f_add(&self.token_type_embeddings.forward(&token_types)?)?
            .f_add(&self.position_embeddings.forward(&positions)?)?;
        self.dropout.forward_t(&self.layer_norm.forward(&xs)?, train)
    }

    fn module_node(&self) -> ModuleNode {
        ModuleNode::new(
            "BertEmbeddings",
            vec![
                ("word_embeddings", self.word_embeddings.module_node()),
                ("position_embeddings", self.position_embeddings.module_node()),
                ("token_type_embeddings", self.token_type_embeddings.module_node()),
                ("LayerNorm", self.layer_norm.module_node()),
                ("dropout", self.dropout.module_node()),
            ],
        )
    }
}

/// `BertSelfAttention`: query/key/value projections and scaled dot-product attention.
#[derive(Debug)]
pub struct BertSelfAttention {
    pub num_heads: i64,
    pub hidden: i64,
    pub query: LinearSlot,
    pub key: LinearSlot,
    pub value: LinearSlot,
    pub dropout: Dropout,
}

/// `BertSelfOutput` and `BertOutput`: dense → dropout → LayerNorm(· + residual).
#[derive(Debug)]
pub struct BertResidualOutput {
    pub dense: LinearSlot,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
    /// A bottleneck adapter after the dropout (`crate::model::bottleneck`): it takes over
    /// the residual + LayerNorm.
    pub adapter: Option<Bottleneck>,
    class: &'static str,
}

impl BertResidualOutput {
    fn new(p: &nn::Path, c: &BertConfig, input: i64, class: &'static str) -> Result<Self> {
        Ok(BertResidualOutput {
            dense: linear(&(p / "dense"), input, c.hidden_size, c.initializer_range)?,
            layer_norm: LayerNorm::new(&(p / "LayerNorm"), c.hidden_size, c.layer_norm_eps)?,
            dropout: Dropout {
                p: c.hidden_dropout_prob,
            },
            adapter: None,
            class,
        })
    }

    pub fn forward_t(&self, xs: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.dropout.forward_t(&self.dense.forward_t(xs, train)?, train)?;
        match &self.adapter {
            Some(adapter) => adapter.forward_t(&h, residual, &self.layer_norm, train),
            None => self.layer_norm.forward(&h.f_add(residual)?),
        }
    }

    fn module_node(&self) -> ModuleNode {
        let mut children = vec![
            ("dense", self.dense.module_node()),
            ("LayerNorm", self.layer_norm.module_node()),
            ("dropout", self.dropout.module_node()),
        ];
        if self.adapter.is_some() {
            children.push(("adapters", Bottleneck::adapters_node(self.adapter.as_ref())));
        }
        ModuleNode::new(self.class, children)
    }
}

impl BertSelfAttention {
    pub fn new(p: &nn::Path, c: &BertConfig) -> Result<Self> {
        let (h, std) = (c.hidden_size, c.initializer_range);
        Ok(BertSelfAttention {
            num_heads: c.num_attention_heads,
            hidden: h,
            query: linear(&(p / "query"), h, h, std)?,
            key: linear(&(p / "key"), h, h, std)?,
            value: linear(&(p / "value"), h, h, std)?,
            dropout: Dropout {
                p: c.attention_probs_dropout_prob,
            },
        })
    }

    /// `mask` covers the `prefix`'s keys (first) and the input's.
    pub fn forward_t(&self, xs: &Tensor, mask: &Tensor, prefix: Option<&KvPrefix>, train: bool) -> Result<Tensor> {
        let (b, dph) = (xs.size()[0], self.hidden / self.num_heads);
        let shape = |t: Tensor| -> Result<Tensor> { Ok(t.f_view([b, -1, self.num_heads, dph])?.f_transpose(1, 2)?) };
        let q = shape(self.query.forward_t(xs, train)?)?;
        let k = shape(self.key.forward_t(xs, train)?)?;
        let v = shape(self.value.forward_t(xs, train)?)?;
        let (k, v) = KvPrefix::prepend(prefix, k, v)?;
        Ok(attention(&q, &k, &v, mask, &self.dropout, train)?
            .f_transpose(1, 2)?
            .f_contiguous()?
            .f_view([b, -1, self.hidden])?)
    }

    fn module_node(&self) -> ModuleNode {
        ModuleNode::new(
            "BertSelfAttention",
            vec![
                ("query", self.query.module_node()),
                ("key", self.key.module_node()),
                ("value", self.value.module_node()),
                ("dropout", self.dropout.module_node()),
            ],
        )
    }
}

/// `BertLayer`: attention (self + output), intermediate, output.
#[derive(Debug)]
pub struct BertLayer {
    pub attention_self: BertSelfAttention,
    pub attention_output: BertResidualOutput,
    pub intermediate_dense: LinearSlot,
    pub intermediate_act_fn: Activation,
    pub output: BertResidualOutput,
}

impl BertLayer {
    pub fn new(p: &nn::Path, c: &BertConfig) -> Result<Self> {
        let a = p / "attention";
        Ok(BertLayer {
            attention_self: BertSelfAttention::new(&(&a / "self"), c)?,
            attention_output: BertResidualOutput::new(&(&a / "output"), c, c.hidden_size, "BertSelfOutput")?,
            intermediate_dense: linear(
                &(p / "intermediate" / "dense"),
                c.hidden_size,
                c.intermediate_size,
                c.initializer_range,
            )?,
            intermediate_act_fn: Activation::from_name(&c.hidden_act).unwrap_or(Activation::Gelu),
            output: BertResidualOutput::new(&(p / "output"), c, c.intermediate_size, "BertOutput")?,
        })
    }

    pub fn forward_t(&self, xs: &Tensor, mask: &Tensor, prefix: Option<&KvPrefix>, train: bool) -> Result<Tensor> {
        let ctx = self.attention_self.forward_t(xs, mask, prefix, train)?;
        let attn = self.attention_output.forward_t(&ctx, xs, train)?;
        let inter = self
            .intermediate_act_fn
            .forward(&self.intermediate_dense.forward_t(&attn, train)?)?;
        self.output.forward_t(&inter, &attn, train)
    }

    fn module_node(&self) -> ModuleNode {
        ModuleNode::new(
            "BertLayer",
            vec![
                (
                    "attention",
                    ModuleNode::new(
                        "BertAttention",
                        vec![
                            ("self", self.attention_self.module_node()),
                            ("output", self.attention_output.module_node()),
                        ],
                    ),
                ),
                (
                    "intermediate",
                    ModuleNode::new(
                        "BertIntermediate",
                        vec![
                            ("dense", self.intermediate_dense.module_node()),
                            ("intermediate_act_fn", self.intermediate_act_fn.module_node()),
                        ],
                    ),
                ),
                ("output", self.output.module_node()),
            ],
        )
    }
}

/// `BertModel`: embeddings, `encoder.layer.{i}`, pooler.
#[derive(Debug)]
pub struct BertModel {
    pub embeddings: BertEmbeddings,
    pub layer: Vec<BertLayer>,
    pub pooler: BertPooler,
}

impl BertModel {
    pub fn new(p: &nn::Path, c: &BertConfig) -> Result<Self> {
        let embeddings = BertEmbeddings::new(&(p / "embeddings"), c)?;
        let lp = p / "encoder" / "layer";
        let layer = (0..c.num_hidden_layers)
            .map(|i| BertLayer::new(&(&lp / i), c))
            .collect::<Result<_>>()?;
        let pooler = BertPooler::new(&(p / "pooler"), c)?;
        Ok(BertModel {
            embeddings,
            layer,
            pooler,
        })
    }

    /// Hidden states: embedding output, then each layer's output.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        self.forward_embeds_t(
            &self.embeddings.word_embeddings.forward(input_ids)?,
            attention_mask,
            &[],
            train,
        )
    }

    /// [`BertModel::forward_t`] from `inputs_embeds [batch, seq, hidden]` (transformers'
    /// `inputs_embeds`: what prompt tuning feeds it), with one key/value prefix per layer or
    /// none (prefix tuning's `past_key_values`; `attention_mask` then covers prefix + input).
    pub fn forward_embeds_t(
        &self,
        inputs_embeds: &Tensor,
        attention_mask: &Tensor,
        prefixes: &[KvPrefix],
        train: bool,
    ) -> Result<Vec<Tensor>> {
        let past = prefixes.first().map_or(0, |p| p.keys.size()[2]);
        let mut xs = self.embeddings.forward_embeds_t(inputs_embeds, past, train)?;
        let mask = additive_mask(attention_mask, compute_kind(xs.kind()))?;
        let mut hidden = Vec::with_capacity(self.layer.len() + 1);
        hidden.push(xs.shallow_clone());
        for (i, layer) in self.layer.iter().enumerate() {
            xs = layer.forward_t(&xs, &mask, prefixes.get(i), train)?;
            hidden.push(xs.shallow_clone());
        }
        Ok(hidden)
    }

    pub(crate) fn linears_mut(&mut self, prefix: &str) -> Vec<(String, &mut LinearSlot)> {
        let mut out = Vec::new();
        for (i, l) in self.layer.iter_mut().enumerate() {
            let b = format!("{prefix}encoder.layer.{i}.");
            out.push((format!("{b}attention.self.query"), &mut l.attention_self.query));
            out.push((format!("{b}attention.self.key"), &mut l.attention_self.key));
            out.push((format!("{b}attention.self.value"), &mut l.attention_self.value));
            out.push((format!("{b}attention.output.dense"), &mut l.attention_output.dense));
            out.push((format!("{b}intermediate.dense"), &mut l.intermediate_dense));
            out.push((format!("{b}output.dense"), &mut l.output.dense));
        }
        out.push((format!("{prefix}pooler.dense"), &mut self.pooler.dense));
        out
    }

    pub fn module_node(&self) -> ModuleNode {
        let layers = ModuleNode::list(self.layer.iter().map(|l| l.module_node()).collect());
        ModuleNode::new(
            "BertModel",
            vec![
                ("embeddings", self.embeddings.module_node()),
                ("encoder", ModuleNode::new("BertEncoder", vec![("layer", layers)])),
                ("pooler", self.pooler.module_node()),
            ],
        )
    }
}
