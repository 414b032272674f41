//! DistilBERT encoder, mirroring transformers'
//! [modeling_distilbert.py](https://github.com/huggingface/transformers/blob/main/src/transformers/models/distilbert/modeling_distilbert.py):
//! struct fields and weight paths are HF's names (`embeddings`, `transformer.layer.{i}`,
//! `attention.q_lin`, `sa_layer_norm`, `ffn.lin1`, `output_layer_norm`).

use tch::nn;
use tch::{Kind, Tensor};

use super::bottleneck::Bottleneck;
use super::config::DistilBertConfig;
use super::error::Result;
use super::layers::{
    additive_mask, attention, compute_kind, linear, Activation, Dropout, Embedding, KvPrefix, LayerNorm, LinearSlot,
};
use super::tree::ModuleNode;

const LN_EPS: f64 = 1e-12;

/// `Embeddings`: word + learned position embeddings, LayerNorm, dropout.
#[derive(Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
}

impl Embeddings {
    pub fn new(p: &nn::Path, c: &DistilBertConfig) -> Result<Self> {
        let std = c.initializer_range;
        Ok(Embeddings {
            word_embeddings: Embedding::new(&(p / "word_embeddings"), c.vocab_size, c.dim, std, c.pad_token_id)?,
            position_embeddings: Embedding::new(
                &(p / "position_embeddings"),
                c.max_position_embeddings,
                c.dim,
                std,
                None,
            )?,
            layer_norm: LayerNorm::new(&(p / "LayerNorm"), c.dim, LN_EPS)?,
            dropout: Dropout { p: c.dropout },
        })
    }

    pub fn forward_t(&self, input_ids: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_embeds_t(&self.word_embeddings.forward(input_ids)?, 0, train)
    }

    /// transformers' `inputs_embeds` path: `inputs_embeds [batch, seq, dim]` in place of the
    /// word embeddings, positions `past..past + seq` added (`past`: prefix tuning's virtual
    /// tokens, numbered first as BERT numbers its `past_key_values`).
    pub fn forward_embeds_t(&self, inputs_embeds: &Tensor, past: i64, train: bool) -> Result<Tensor> {
        let seq = inputs_embeds.size()[1];
        let positions =
            Tensor::f_arange_start(past, past + seq, (Kind::Int64, inputs_embeds.device()))?.f_unsqueeze(0)?;
        let xs = inputs_embeds.f_add(&self.position_embeddings.forward(&positions)?)?;
        self.dropout.forward_t(&self.layer_norm.forward(&xs)?, train)
    }

    fn module_node(&self) -> ModuleNode {
        ModuleNode::new(
            "Embeddings",
            vec![
                ("word_embeddings", self.word_embeddings.module_node()),
                ("position_embeddings", self.position_embeddings.module_node()),
                ("LayerNorm", self.layer_norm.module_node()),
                ("dropout", self.dropout.module_node()),
            ],
        )
    }
}

/// `DistilBertSelfAttention` (a.k.a. `MultiHeadSelfAttention`).
#[derive(Debug)]
pub struct SelfAttention {
    pub n_heads: i64,
    pub dim: i64,
    pub q_lin: LinearSlot,
    pub k_lin: LinearSlot,
    pub v_lin: LinearSlot,
    pub out_lin: LinearSlot,
    pub dropout: Dropout,
}

impl SelfAttention {
    pub fn new(p: &nn::Path, c: &DistilBertConfig) -> Result<Self> {
        let (d, std) = (c.dim, c.initializer_range);
        Ok(SelfAttention {
            n_heads: c.n_heads,
            dim: d,
            q_lin: linear(&(p / "q_lin"), d, d, std)?,
            k_lin: linear(&(p / "k_lin"), d, d, std)?,
            v_lin: linear(&(p / "v_lin"), d, d, std)?,
            out_lin: linear(&(p / "out_lin"), d, d, std)?,
            dropout: Dropout { p: c.attention_dropout },
        })
    }

    /// `xs [batch, seq, dim]`, `mask` additive `[batch, 1, 1, seq]`.
    /// `mask` covers the `prefix`'s keys (first) and the input's.
    pub fn forward_t(&self, xs: &Tensor, mask: &Tensor, prefix: Option<&KvPrefix>, train: bool) -> Result<Tensor> {
        let (b, dph) = (xs.size()[0], self.dim / self.n_heads);
        let shape = |t: Tensor| -> Result<Tensor> { Ok(t.f_view([b, -1, self.n_heads, dph])?.f_transpose(1, 2)?) };
        let q = shape(self.q_lin.forward_t(xs, train)?)?;
        let k = shape(self.k_lin.forward_t(xs, train)?)?;
        let v = shape(self.v_lin.forward_t(xs, train)?)?;
        let (k, v) = KvPrefix::prepend(prefix, k, v)?;
        let context = attention(&q, &k, &v, mask, &self.dropout, train)?
            .f_transpose(1, 2)?
            .f_contiguous()?
            .f_view([b, -1, self.dim])?;
        self.out_lin.forward_t(&context, train)
    }

    fn module_node(&self) -> ModuleNode {
        ModuleNode::new(
            "DistilBertSelfAttention",
            vec![
                ("q_lin", self.q_lin.module_node()),
                ("k_lin", self.k_lin.module_node()),
                ("v_lin", self.v_lin.module_node()),
                ("out_lin", self.out_lin.module_node()),
                ("dropout", self.dropout.module_node()),
            ],
        )
    }
}

/// `FFN`: lin1 → activation → lin2 → dropout.
#[derive(Debug)]
pub struct Ffn {
    pub dropout: Dropout,
    pub lin1: LinearSlot,
    pub lin2: LinearSlot,
    pub activation: Activation,
}

impl Ffn {
    pub fn new(p: &nn::Path, c: &DistilBertConfig) -> Result<Self> {
        let std = c.initializer_range;
        Ok(Ffn {
            dropout: Dropout { p: c.dropout },
            lin1: linear(&(p / "lin1"), c.dim, c.hidden_dim, std)?,
            lin2: linear(&(p / "lin2"), c.hidden_dim, c.dim, std)?,
            activation: Activation::from_name(&c.activation).unwrap_or(Activation::Gelu),
        })
    }

    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.activation.forward(&self.lin1.forward_t(xs, train)?)?;
        self.dropout.forward_t(&self.lin2.forward_t(&h, train)?, train)
    }

    fn module_node(&self) -> ModuleNode {
        ModuleNode::new(
            "FFN",
            vec![
                ("dropout", self.dropout.module_node()),
                ("lin1", self.lin1.module_node()),
                ("lin2", self.lin2.module_node()),
                ("activation", self.activation.module_node()),
            ],
        )
    }
}

/// `TransformerBlock`: post-LayerNorm attention and FFN sublayers.
#[derive(Debug)]
pub struct TransformerBlock {
    pub attention: SelfAttention,
    pub sa_layer_norm: LayerNorm,
    pub ffn: Ffn,
    pub output_layer_norm: LayerNorm,
    /// Bottleneck adapters after attention and after the FFN (`crate::model::bottleneck`):
    /// they take over the residual + LayerNorm.
    pub attention_adapters: Option<Bottleneck>,
    pub output_adapters: Option<Bottleneck>,
}

impl TransformerBlock {
    pub fn new(p: &nn::Path, c: &DistilBertConfig) -> Result<Self> {
        Ok(TransformerBlock {
            attention: SelfAttention::new(&(p / "attention"), c)?,
            sa_layer_norm: LayerNorm::new(&(p / "sa_layer_norm"), c.dim, LN_EPS)?,
            ffn: Ffn::new(&(p / "ffn"), c)?,
            output_layer_norm: LayerNorm::new(&(p / "output_layer_norm"), c.dim, LN_EPS)?,
            attention_adapters: None,
            output_adapters: None,
        })
    }

    pub fn forward_t(&self, xs: &Tensor, mask: &Tensor, prefix: Option<&KvPrefix>, train: bool) -> Result<Tensor> {
        let sa = self.attention.forward_t(xs, mask, prefix, train)?;
        let sa = match &self.attention_adapters {
            Some(adapter) => adapter.forward_t(&sa, xs, &self.sa_layer_norm, train)?,
            None => self.sa_layer_norm.forward(&sa.f_add(xs)?)?,
        };
        let ffn = self.ffn.forward_t(&sa, train)?;
        match &self.output_adapters {
            Some(adapter) => adapter.forward_t(&ffn, &sa, &self.output_layer_norm, train),
            None => self.output_layer_norm.forward(&ffn.f_add(&sa)?),
        }
    }

    fn module_node(&self) -> ModuleNode {
        let mut children = vec![
            ("attention", self.attention.module_node()),
            ("sa_layer_norm", self.sa_layer_norm.module_node()),
            ("ffn", self.ffn.module_node()),
            ("output_layer_norm", self.output_layer_norm.module_node()),
        ];
        if self.attention_adapters.is_some() || self.output_adapters.is_some() {
            children.push((
                "attention_adapters",
                Bottleneck::layer_node(self.attention_adapters.as_ref()),
            ));
            children.push(("output_adapters", Bottleneck::layer_node(self.output_adapters.as_ref())));
        }
        ModuleNode::new("TransformerBlock", children)
    }
}

/// `DistilBertModel`: embeddings + `transformer.layer.{i}`.
#[derive(Debug)]
pub struct DistilBertModel {
    pub embeddings: Embeddings,
    pub layer: Vec<TransformerBlock>,
}

impl DistilBertModel {
    pub fn new(p: &nn::Path, c: &DistilBertConfig) -> Result<Self> {
        let embeddings = Embeddings::new(&(p / "embeddings"), c)?;
        let lp = p / "transformer" / "layer";
        let layer = (0..c.n_layers)
            .map(|i| TransformerBlock::new(&(&lp / i), c))
            .collect::<Result<_>>()?;
        Ok(DistilBertModel { embeddings, layer })
    }

    /// Returns the hidden states: the embedding output followed by each layer's output
    /// (transformers' `output_hidden_states=True`); the last is the encoder output.
    pub fn forward_t(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        self.forward_embeds_t(
            &self.embeddings.word_embeddings.forward(input_ids)?,
            attention_mask,
            &[],
            train,
        )
    }

    /// [`DistilBertModel::forward_t`] from `inputs_embeds [batch, seq, dim]` (transformers'
    /// `inputs_embeds`: what prompt tuning feeds it), with one key/value prefix per layer or
    /// none (prefix tuning; `attention_mask` then covers prefix + input).
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
        for (i, block) in self.layer.iter().enumerate() {
            xs = block.forward_t(&xs, &mask, prefixes.get(i), train)?;
            hidden.push(xs.shallow_clone());
        }
        Ok(hidden)
    }

    pub(crate) fn linears_mut(&mut self, prefix: &str) -> Vec<(String, &mut LinearSlot)> {
        let mut out = Vec::new();
        for (i, l) in self.layer.iter_mut().enumerate() {
            let b = format!("{prefix}transformer.layer.{i}.");
            out.push((format!("{b}attention.q_lin"), &mut l.attention.q_lin));
            out.push((format!("{b}attention.k_lin"), &mut l.attention.k_lin));
            out.push((format!("{b}attention.v_lin"), &mut l.attention.v_lin));
            out.push((format!("{b}attention.out_lin"), &mut l.attention.out_lin));
            out.push((format!("{b}ffn.lin1"), &mut l.ffn.lin1));
            out.push((format!("{b}ffn.lin2"), &mut l.ffn.lin2));
        }
        out
    }

    pub fn module_node(&self) -> ModuleNode {
        let layers = ModuleNode::list(self.layer.iter().map(|l| l.module_node()).collect());
        ModuleNode::new(
            "DistilBertModel",
            vec![
                ("embeddings", self.embeddings.module_node()),
                ("transformer", ModuleNode::new("Transformer", vec![("layer", layers)])),
            ],
        )
    }
}
