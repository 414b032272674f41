//! `prompt_tuning`: prompt tuning (Lester et al., 2021) with PEFT's semantics and the field
//! names of PEFT's `PromptTuningConfig` (`num_virtual_tokens`, `prompt_tuning_init`,
//! `prompt_tuning_init_text`, `tokenizer_name_or_path`, `token_dim`,
//! `num_transformer_submodules`, `num_attention_heads`, `num_layers`, `modules_to_save`) on top
//! of Trainer's arguments: `num_virtual_tokens` learned embeddings go in front of every input
//! (`crate::model::prompt`), and only they and `modules_to_save` (the classification head by
//! default) train.
//!
//! Output: `adapter/` in PEFT's format (`adapter_config.json`, `adapter_model.safetensors` with
//! `prompt_embeddings` and the head as `base_model.<module>`) that
//! `PeftModel.from_pretrained(base, "adapter")` loads, plus `orchestrate.json`.
//!
//! The learning rate is Trainer's default (5e-5) as on every training kind; prompt tuning
//! usually wants far more (PEFT's examples use 1e-3 to 3e-2): see docs/task-kinds.md.

use std::num::NonZeroUsize;
use std::path::Path;

use anyhow::Result;

use super::training::{self, training_params};
use super::{Context, Metrics, ParamError, Task, ValidateContext};
use crate::model::prompt::{PromptStart, PromptTuningInit, PromptTuningSpec};
use crate::model::Method;
use crate::train;

pub struct PromptTuning;

training_params! {
    pub struct Params {
        /// Virtual tokens in front of every input.
        #[serde(default = "default_virtual_tokens")]
        pub num_virtual_tokens: NonZeroUsize,
        /// `"RANDOM"` (N(0, 1)), `"TEXT"` (the embeddings of `prompt_tuning_init_text`'s
        /// tokens) or `"SAMPLE_VOCAB"` (of random vocabulary ids).
        #[serde(default)]
        pub prompt_tuning_init: PromptTuningInit,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prompt_tuning_init_text: Option<String>,
        /// The tokenizer of the `TEXT` initialisation (a folder relative to the experiment
        /// file, or a hub id); default the model's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tokenizer_name_or_path: Option<String>,
        /// PEFT's fields read from the model's config; given, they must agree with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token_dim: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub num_transformer_submodules: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub num_attention_heads: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub num_layers: Option<usize>,
        /// Modules trained and saved in full; default the classification head.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub modules_to_save: Option<Vec<String>>,
    }
}

fn default_virtual_tokens() -> NonZeroUsize {
    NonZeroUsize::new(20).unwrap()
}

impl Params {
    /// The model layer's spec; a `tokenizer_name_or_path` resolves against `base_dir`.
    pub fn spec(&self, base_dir: &Path) -> Result<PromptTuningSpec> {
        let start = match self.prompt_tuning_init {
            PromptTuningInit::Random => PromptStart::Random,
            PromptTuningInit::SampleVocab => PromptStart::SampleVocab,
            PromptTuningInit::Text => PromptStart::Text {
                text: self.prompt_tuning_init_text.clone().unwrap_or_default(),
                tokenizer: match &self.tokenizer_name_or_path {
                    Some(tokenizer) => Some(super::tokenize::model_path(base_dir, tokenizer)?),
                    None => None,
                },
            },
        };
        Ok(PromptTuningSpec {
            num_virtual_tokens: self.num_virtual_tokens.get() as i64,
            num_transformer_submodules: self.num_transformer_submodules.unwrap_or(1) as i64,
            start,
            modules_to_save: self.modules_to_save.clone(),
        })
    }
}

/// `adapter_config.json` as PEFT writes it (`PromptTuningConfig.to_dict()`).
fn adapter_config(
    params: &Params,
    config: &crate::model::ModelConfig,
    modules_to_save: &[String],
) -> serde_json::Value {
    let tokenizer = match params.prompt_tuning_init {
        PromptTuningInit::Text => Some(
            params
                .tokenizer_name_or_path
                .clone()
                .unwrap_or_else(|| params.model.clone()),
        ),
        _ => params.tokenizer_name_or_path.clone(),
    };
    serde_json::json!({
        "peft_type": "PROMPT_TUNING",
        "task_type": "SEQ_CLS",
        "base_model_name_or_path": params.model,
        "num_virtual_tokens": params.num_virtual_tokens.get(),
        "token_dim": config.hidden_size(),
        "num_transformer_submodules": params.num_transformer_submodules.unwrap_or(1),
        "num_attention_heads": config.num_attention_heads(),
        "num_layers": config.num_layers(),
        "prompt_tuning_init": params.prompt_tuning_init,
        "prompt_tuning_init_text": params.prompt_tuning_init_text,
        "tokenizer_name_or_path": tokenizer,
        "tokenizer_kwargs": null,
        "modules_to_save": modules_to_save,
        "inference_mode": true,
        "auto_mapping": null,
        "revision": null,
    })
}

/// A PEFT field given in the spec must be what the model's config says.
fn agrees(key: &str, given: Option<usize>, actual: i64, what: &str) -> Result<(), ParamError> {
    match given {
        Some(value) if value as i64 != actual => Err(ParamError::at(
            key,
            format!("{key} = {value}, but the model's {what} is {actual} (leave it out to use the model's)"),
        )),
        _ => Ok(()),
    }
}

/// What prompt learning checks against the model's config before anything runs: PEFT's
/// `[token_dim, num_attention_heads, num_layers]` where given, and that the virtual tokens
/// plus the `tokens` input's `max_len` fit the position embeddings.
pub(super) fn check_against_model(
    cx: &ValidateContext,
    num_virtual_tokens: NonZeroUsize,
    [token_dim, num_attention_heads, num_layers]: [Option<usize>; 3],
) -> Result<(), ParamError> {
    let Some(config) = cx.model else { return Ok(()) };
    agrees("token_dim", token_dim, config.hidden_size(), "hidden size")?;
    agrees(
        "num_attention_heads",
        num_attention_heads,
        config.num_attention_heads(),
        "number of attention heads",
    )?;
    agrees("num_layers", num_layers, config.num_layers(), "number of layers")?;
    let positions = config.max_position_embeddings() as usize;
    let virtual_tokens = num_virtual_tokens.get();
    let max_len = cx.input_usize("tokens", "max_len");
    if virtual_tokens + max_len.unwrap_or(2) > positions {
        let tokens = match max_len {
            Some(n) => format!("the `tokens` input's max_len = {n}"),
            None => "[CLS] and [SEP]".to_string(),
        };
        return Err(ParamError::at(
            "num_virtual_tokens",
            format!(
                "num_virtual_tokens = {virtual_tokens} plus {tokens} is beyond the model's {positions} positions \
                 (max_position_embeddings in {}): lower num_virtual_tokens or the tokenizer's max_len",
                config.path.display()
            ),
        ));
    }
    Ok(())
}

/// Prompt learning trains one transformer's virtual tokens (2 would be an encoder-decoder's).
pub(super) fn check_submodules(num_transformer_submodules: Option<usize>) -> Result<(), ParamError> {
    match num_transformer_submodules.filter(|&n| n != 1) {
        Some(n) => Err(ParamError::at(
            "num_transformer_submodules",
            format!("num_transformer_submodules = {n}: these encoders have one transformer (1)"),
        )),
        None => Ok(()),
    }
}

impl Task for PromptTuning {
    const KIND: &'static str = "prompt_tuning";
    const VERSION: u32 = 1;
    type Params = Params;

    trains_on_tokens!(Params);

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_training()?;
        if params.prompt_tuning_init == PromptTuningInit::Text
            && params
                .prompt_tuning_init_text
                .as_deref()
                .is_none_or(|t| t.trim().is_empty())
        {
            // Keyed at the init, which is in the file (the missing text is not).
            return Err(ParamError::at(
                "prompt_tuning_init",
                "prompt_tuning_init = \"TEXT\" needs prompt_tuning_init_text (the text whose tokens start the prompt)",
            ));
        }
        check_submodules(params.num_transformer_submodules)?;
        check_against_model(
            cx,
            params.num_virtual_tokens,
            [params.token_dim, params.num_attention_heads, params.num_layers],
        )
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let spec = params.spec(&ctx.base_dir)?;
        let (mut model, outcome) = training::fit(ctx, &params.training(), &Method::PromptTuning(spec))?;
        let modules_to_save = super::lora::modules_to_save(&model, &params.modules_to_save);
        let config = adapter_config(params, &model.config, &modules_to_save);
        let info = training::CheckpointInfo {
            pooling: params.pooling,
            method: "prompt tuning".into(),
            base_model: params.model.clone(),
        };
        super::lora::save_adapter(ctx, &mut model, &config, &info)?;
        let mut metrics = training::training_metrics("prompt tuning", &model, &outcome)?;
        metrics
            .extra
            .insert("num_virtual_tokens".into(), params.num_virtual_tokens.get().into());
        Ok(metrics)
    }
}
