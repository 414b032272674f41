//! Prompt tuning (Lester et al., 2021) as PEFT implements it (`peft.tuners.prompt_tuning`,
//! `PeftModelForSequenceClassification.forward`): `num_virtual_tokens` learned embeddings are
//! put in front of the input's word embeddings, and the encoder reads them as any other
//! `inputs_embeds`:
//! - the attention mask gains ones in front (the virtual tokens are always attended to);
//! - token type ids are zeros over the longer sequence, and the position embeddings number
//!   it from 0 (virtual tokens take positions `0..n`, the real tokens `n..n + seq`), so
//!   virtual tokens + input must fit `max_position_embeddings`;
//! - the head pools what transformers' head pools of that sequence: the first position is the
//!   first virtual token (`pooling = "mean"` averages over virtual and real tokens).
//!
//! The embeddings are one parameter, [`PROMPT_EMBEDDINGS`] at the root of the model's
//! `VarStore` (so counts, optimizer states and resume states see it like any parameter),
//! `[num_virtual_tokens · num_transformer_submodules, hidden]`, started as PEFT's
//! `PromptTuningInit` says: `RANDOM` — `torch.nn.Embedding`'s N(0, 1); `SAMPLE_VOCAB` — the
//! word embeddings of uniformly drawn vocabulary ids; `TEXT` — the word embeddings of a
//! text's tokens (special tokens included, as `tokenizer(text)` gives them), cut to the
//! number of virtual tokens or repeated to fill it.
//!
//! PEFT saves the embeddings as `prompt_embeddings` and every other trained module as
//! `base_model.<name>` (prompt learning does not wrap the model in a tuner, so no `.model`):
//! see [`adapter_tensors`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::nn::Init;
use tch::{Kind, Tensor};

use super::error::{ModelError, Result};
use super::tokenizer::ModelTokenizer;
use super::LoadedModel;

/// The variable (and the adapter key) holding the virtual tokens' embeddings.
pub const PROMPT_EMBEDDINGS: &str = "prompt_embeddings";

/// PEFT's `PromptTuningInit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PromptTuningInit {
    /// N(0, 1), `torch.nn.Embedding`'s initialisation.
    #[default]
    Random,
    /// The word embeddings of `prompt_tuning_init_text`'s tokens.
    Text,
    /// The word embeddings of ids drawn uniformly from the vocabulary.
    SampleVocab,
}

impl PromptTuningInit {
    pub fn as_str(self) -> &'static str {
        match self {
            PromptTuningInit::Random => "RANDOM",
            PromptTuningInit::Text => "TEXT",
            PromptTuningInit::SampleVocab => "SAMPLE_VOCAB",
        }
    }
}

/// How the prompt starts, with what each way needs.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptStart {
    Random,
    SampleVocab,
    /// `text` tokenized by `tokenizer` (`None`: the model's own tokenizer).
    Text {
        text: String,
        tokenizer: Option<std::path::PathBuf>,
    },
}

/// A prompt-tuning configuration, PEFT's `PromptTuningConfig` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTuningSpec {
    pub num_virtual_tokens: i64,
    /// 1 for encoder-only models (2 would be an encoder-decoder's).
    pub num_transformer_submodules: i64,
    pub start: PromptStart,
    /// `None`: the classification head.
    pub modules_to_save: Option<Vec<String>>,
}

impl PromptTuningSpec {
    /// Rows of the embedding: PEFT's `total_virtual_tokens`.
    pub fn total_virtual_tokens(&self) -> i64 {
        self.num_virtual_tokens * self.num_transformer_submodules
    }
}

/// The ids `text` starts the prompt with: `tokenizer(text)["input_ids"]` cut to `total`, or
/// repeated until there are `total`.
pub fn text_ids(tokenizer: &ModelTokenizer, text: &str, total: usize) -> Result<Vec<i64>> {
    let encoding = tokenizer
        .tokenizer
        .encode(text, true)
        .map_err(|e| ModelError::Encode { message: e.to_string() })?;
    let ids: Vec<i64> = encoding.get_ids().iter().map(|&id| id as i64).collect();
    if ids.is_empty() {
        return Err(ModelError::Encode {
            message: format!("prompt_tuning_init_text {text:?} gives no tokens"),
        });
    }
    Ok(ids.iter().copied().cycle().take(total).collect())
}

/// Registers the prompt embeddings in `model` (see the module doc for the initialisations)
/// and makes `model` put them in front of every input.
pub fn inject_prompt(model: &mut LoadedModel, spec: &PromptTuningSpec) -> Result<()> {
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
    let total = spec.total_virtual_tokens();
    let dim = model.config.hidden_size();
    let words = model.network.word_embeddings().shallow_clone();
    let from_words = |ids: Tensor| -> Result<Tensor> {
        Ok(tch::no_grad(|| words.f_index_select(0, &ids.f_to_device(words.device())?))?.f_to_kind(Kind::Float)?)
    };
    let start = match &spec.start {
        PromptStart::Random => None,
        PromptStart::SampleVocab => {
            let vocab = words.size()[0];
            Some(from_words(Tensor::f_randint(
                vocab,
                [total],
                (Kind::Int64, tch::Device::Cpu),
            )?)?)
        }
        PromptStart::Text { text, tokenizer } => {
            let loaded;
            let tok = match tokenizer {
                Some(folder) => {
                    loaded = ModelTokenizer::from_folder(folder)?.ok_or_else(|| ModelError::MissingFile {
                        folder: folder.clone(),
                        file: "tokenizer.json (or vocab.txt)".into(),
                        hint: " for prompt_tuning_init = \"TEXT\"".into(),
                    })?;
                    &loaded
                }
                None => model.tokenizer.as_ref().ok_or_else(|| ModelError::Encode {
                    message: format!(
                        "prompt_tuning_init = \"TEXT\" needs a tokenizer, and the model from {} has none \
                         (set tokenizer_name_or_path)",
                        model.config.path.display()
                    ),
                })?,
            };
            let ids = text_ids(tok, text, total as usize)?;
            if let Some(&bad) = ids.iter().find(|&&id| id >= words.size()[0]) {
                return Err(ModelError::Encode {
                    message: format!("prompt_tuning_init_text: token id {bad} is beyond the model's vocabulary"),
                });
            }
            Some(from_words(Tensor::f_from_slice(&ids)?)?)
        }
    };
    let weight = model
        .vs
        .root()
        .f_var(PROMPT_EMBEDDINGS, &[total, dim], Init::Randn { mean: 0.0, stdev: 1.0 })?;
    if let Some(start) = start {
        tch::no_grad(|| weight.shallow_clone().f_copy_(&start))?;
    }
    model.virtual_tokens = Some(super::VirtualTokens::Prompt(weight));
    Ok(())
}

/// The adapter's tensors under PEFT's keys for prompt learning: the embeddings as
/// `prompt_embeddings`, every other trainable parameter as `base_model.<name>`.
pub fn adapter_tensors(model: &LoadedModel) -> HashMap<String, Tensor> {
    model
        .trainable_parameters()
        .into_iter()
        .map(|(name, tensor)| {
            let key = if name == PROMPT_EMBEDDINGS {
                name
            } else {
                format!("base_model.{name}")
            };
            (key, tensor.detach())
        })
        .collect()
}
