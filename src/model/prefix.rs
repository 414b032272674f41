//! Prefix tuning (Li & Liang, 2021) as PEFT implements it (`peft.tuners.prefix_tuning`,
//! `PeftModel.get_prompt`, `PeftModelForSequenceClassification._prefix_tuning_forward`):
//! every layer's self-attention attends to `num_virtual_tokens` learned keys and values in
//! front of the input's own, transformers' `past_key_values`:
//! - the prefix encoder gives `[num_virtual_tokens, num_layers · 2 · hidden]`, viewed as
//!   `[n, layers · 2, heads, head_dim]`; layer `l` takes slice `2l` as keys, `2l + 1` as
//!   values (PEFT's `permute([2, 0, 3, 1, 4]).split(2)`);
//! - without `prefix_projection` the encoder is that tensor itself (`torch.nn.Embedding`,
//!   N(0, 1)); with it, `num_virtual_tokens` embeddings of the hidden size go through
//!   `Linear(hidden, encoder_hidden_size) → tanh → Linear(encoder_hidden_size, layers · 2 ·
//!   hidden)` (torch's default Linear initialisation); `init_weights = "zero"` zeroes the
//!   last map (or the embedding) so training starts from the base model's function;
//! - the attention mask gains ones in front for the virtual keys, and the real tokens'
//!   positions start at `num_virtual_tokens` (BERT's `past_key_values_length`), so virtual
//!   tokens + input must fit `max_position_embeddings`; the hidden states, the pooling and
//!   the head see only the real tokens.
//!
//! transformers' DistilBERT takes no `past_key_values`, so PEFT refuses prefix tuning on it;
//! orchestrate applies the same construction to DistilBERT's attention (keys and values
//! prefixed, positions shifted), and its adapter is in PEFT's layout but only BERT's loads in
//! PEFT.
//!
//! PEFT saves the prefix as `prompt_embeddings`, the encoder's output (with a projection, the
//! projected tensor: a loaded adapter is the flat prefix), and every other trained module as
//! `base_model.<name>`: see [`adapter_tensors`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::nn::Init;
use tch::{Kind, Tensor};

use super::error::{ModelError, Result};
use super::layers::{linear_op, KvPrefix};
use super::prompt::PROMPT_EMBEDDINGS;
use super::LoadedModel;

/// The encoder's variables live under this module at the `VarStore` root, named as PEFT's
/// `PrefixEncoder` names them (`embedding.weight`, `transform.0.weight`, `transform.2.bias`).
const ENCODER: &str = "prefix_encoder";

/// PEFT's `PrefixTuningConfig.init_weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrefixInit {
    /// N(0, 1) embedding, torch's default Linear initialisation (PEFT's `None`).
    #[default]
    Random,
    /// The last map (or the embedding) zero: the prefix starts as zero keys and values.
    Zero,
}

/// A prefix-tuning configuration, PEFT's `PrefixTuningConfig` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixTuningSpec {
    pub num_virtual_tokens: i64,
    pub prefix_projection: bool,
    /// The MLP's width with `prefix_projection`; `None`: the model's hidden size (PEFT's).
    pub encoder_hidden_size: Option<i64>,
    pub init: PrefixInit,
    /// `None`: the classification head.
    pub modules_to_save: Option<Vec<String>>,
}

/// The trained prefix: the flat embedding, or embedding + two-layer MLP.
#[derive(Debug)]
pub struct PrefixEncoder {
    pub num_virtual_tokens: i64,
    pub num_layers: i64,
    pub num_heads: i64,
    pub hidden: i64,
    embedding: Tensor,
    transform: Option<[(Tensor, Tensor); 2]>,
}

impl PrefixEncoder {
    /// `[num_virtual_tokens, num_layers · 2 · hidden]`: what PEFT's `PrefixEncoder.forward`
    /// returns for one sequence.
    pub fn flat(&self) -> Result<Tensor> {
        let Some([(w1, b1), (w2, b2)]) = &self.transform else {
            return Ok(self.embedding.shallow_clone());
        };
        let h = linear_op(&self.embedding, w1, Some(b1))?.f_tanh()?;
        Ok(linear_op(&h, w2, Some(b2))?.f_to_kind(Kind::Float)?)
    }

    /// One [`KvPrefix`] per layer, expanded over `batch`.
    pub fn layer_prefixes(&self, batch: i64) -> Result<Vec<KvPrefix>> {
        let head_dim = self.hidden / self.num_heads;
        // [n, layers·2, heads, head_dim] → [layers·2, heads, n, head_dim]
        let per_layer = self
            .flat()?
            .f_view([self.num_virtual_tokens, self.num_layers * 2, self.num_heads, head_dim])?
            .f_permute([1, 2, 0, 3])?;
        let expand = |t: Tensor| -> Result<Tensor> {
            Ok(t.f_unsqueeze(0)?
                .f_expand([batch, self.num_heads, self.num_virtual_tokens, head_dim], false)?)
        };
        (0..self.num_layers)
            .map(|l| {
                Ok(KvPrefix {
                    keys: expand(per_layer.f_get(2 * l)?)?,
                    values: expand(per_layer.f_get(2 * l + 1)?)?,
                })
            })
            .collect()
    }
}

/// Registers the prefix encoder's parameters in `model` (see the module doc) and makes every
/// layer attend to its prefix.
pub fn inject_prefix(model: &mut LoadedModel, spec: &PrefixTuningSpec) -> Result<()> {
    if spec.num_virtual_tokens < 1 {
        return Err(ModelError::Surgery {
            message: format!("num_virtual_tokens must be at least 1, got {}", spec.num_virtual_tokens),
        });
    }
    if model.virtual_tokens.is_some() {
        return Err(ModelError::Surgery {
            message: "the model already has virtual tokens (prompt or prefix)".into(),
        });
    }
    let (hidden, layers, heads) = (
        model.config.hidden_size(),
        model.config.num_layers(),
        model.config.num_attention_heads(),
    );
    let (n, flat) = (spec.num_virtual_tokens, layers * 2 * hidden);
    let root = model.vs.root();
    let zero = spec.init == PrefixInit::Zero;
    let normal = Init::Randn { mean: 0.0, stdev: 1.0 };
    let encoder = &root / ENCODER;
    let embedding = &encoder / "embedding";
    let (embedding, transform) = match spec.prefix_projection {
        false => (
            embedding.f_var("weight", &[n, flat], if zero { Init::Const(0.0) } else { normal })?,
            None,
        ),
        true => {
            let encoder_hidden = spec.encoder_hidden_size.unwrap_or(hidden);
            let embedding = embedding.f_var("weight", &[n, hidden], normal)?;
            // torch.nn.Linear's reset_parameters: weight and bias U(±1/√in).
            let torch_linear = |index: usize, input: i64, output: i64, zero: bool| -> Result<(Tensor, Tensor)> {
                let bound = 1.0 / (input as f64).sqrt();
                let init = if zero {
                    Init::Const(0.0)
                } else {
                    Init::Uniform { lo: -bound, up: bound }
                };
                let p = &encoder / "transform" / index;
                Ok((
                    p.f_var("weight", &[output, input], init)?,
                    p.f_var("bias", &[output], init)?,
                ))
            };
            let first = torch_linear(0, hidden, encoder_hidden, false)?;
            let second = torch_linear(2, encoder_hidden, flat, zero)?;
            (embedding, Some([first, second]))
        }
    };
    model.virtual_tokens = Some(super::VirtualTokens::Prefix(PrefixEncoder {
        num_virtual_tokens: n,
        num_layers: layers,
        num_heads: heads,
        hidden,
        embedding,
        transform,
    }));
    Ok(())
}

/// Whether `name` is one of the prefix encoder's parameters.
pub fn is_prefix_parameter(name: &str) -> bool {
    name.strip_prefix(ENCODER).is_some_and(|rest| rest.starts_with('.'))
}

/// The adapter's tensors under PEFT's keys for prefix tuning: the flat prefix as
/// `prompt_embeddings`, every other trainable parameter as `base_model.<name>`.
pub fn adapter_tensors(model: &LoadedModel, encoder: &PrefixEncoder) -> Result<HashMap<String, Tensor>> {
    let mut tensors: HashMap<String, Tensor> = model
        .trainable_parameters()
        .into_iter()
        .filter(|(name, _)| !is_prefix_parameter(name))
        .map(|(name, tensor)| (format!("base_model.{name}"), tensor.detach()))
        .collect();
    let flat = tch::no_grad(|| encoder.flat())?;
    tensors.insert(PROMPT_EMBEDDINGS.to_string(), flat.f_detach()?.f_contiguous()?);
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{self, LoadOptions};

    fn tiny(name: &str) -> LoadedModel {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/models")
            .join(name);
        let opts = LoadOptions {
            device: model::DeviceChoice::Cpu,
            ..LoadOptions::default()
        };
        model::load(folder.to_str().unwrap(), &opts).unwrap()
    }

    /// The prefix reaches every layer's attention, in both encoders: the logits move with it,
    /// and its keys and values are the flat tensor's slices in PEFT's order.
    #[test]
    fn the_prefix_changes_the_logits_and_splits_as_peft_does() {
        let _torch = crate::train::exclusive_torch();
        for name in ["tiny-bert", "tiny-distilbert"] {
            let mut m = tiny(name);
            let ids = Tensor::from_slice(&[2i64, 10, 11, 12, 3, 0]).view([1, 6]);
            let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 0]).view([1, 6]);
            let before = tch::no_grad(|| m.forward(&ids, &mask, false)).unwrap();
            let spec = PrefixTuningSpec {
                num_virtual_tokens: 3,
                prefix_projection: false,
                encoder_hidden_size: None,
                init: PrefixInit::Random,
                modules_to_save: None,
            };
            inject_prefix(&mut m, &spec).unwrap();
            let after = tch::no_grad(|| m.forward(&ids, &mask, false)).unwrap();
            let moved = (&after - &before).abs().max().double_value(&[]);
            assert!(moved > 1e-3, "{name}: the prefix moved the logits by only {moved}");
            let Some(crate::model::VirtualTokens::Prefix(encoder)) = &m.virtual_tokens else {
                panic!()
            };
            let (hidden, heads) = (m.config.hidden_size(), m.config.num_attention_heads());
            let flat = encoder.flat().unwrap();
            let prefixes = encoder.layer_prefixes(2).unwrap();
            assert_eq!(prefixes.len() as i64, m.config.num_layers());
            // Layer 1's values: slice 3 of [n, layers·2, heads, head_dim], token 2, head 1.
            let expected = flat.view([3, -1, heads, hidden / heads]).get(2).get(3).get(1);
            let got = prefixes[1].values.get(1).get(1).get(2);
            assert!(got.equal(&expected), "{name}: PEFT's key/value order");
        }
    }
}
