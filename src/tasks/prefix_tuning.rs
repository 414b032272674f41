//! `prefix_tuning`: prefix tuning (Li & Liang, 2021) with PEFT's semantics and the field names
//! of PEFT's `PrefixTuningConfig` (`num_virtual_tokens`, `prefix_projection`,
//! `encoder_hidden_size`, `init_weights`, `token_dim`, `num_transformer_submodules`,
//! `num_attention_heads`, `num_layers`, `modules_to_save`) on top of Trainer's arguments:
//! every layer's attention reads `num_virtual_tokens` learned keys and values before the
//! input's (`crate::model::prefix`), and only they (or the MLP that makes them) and
//! `modules_to_save` (the classification head by default) train.
//!
//! Output: `adapter/` in PEFT's format (`adapter_config.json`, `adapter_model.safetensors` with
//! the flat prefix as `prompt_embeddings` and the head as `base_model.<module>`), which
//! `PeftModel.from_pretrained(base, "adapter")` loads for BERT (transformers' DistilBERT takes
//! no `past_key_values`, so PEFT has no prefix tuning for it), plus `orchestrate.json`.

use std::num::NonZeroUsize;

use anyhow::Result;

use super::prompt_tuning::{check_against_model, check_submodules};
use super::training::{self, training_params};
use super::{Context, Metrics, ParamError, Task, ValidateContext};
use crate::model::prefix::{PrefixInit, PrefixTuningSpec};
use crate::model::Method;
use crate::train;

pub struct PrefixTuning;

training_params! {
    pub struct Params {
        /// Virtual keys and values in front of every layer's.
        #[serde(default = "default_virtual_tokens")]
        pub num_virtual_tokens: NonZeroUsize,
        /// Make the prefix with a two-layer MLP from `num_virtual_tokens` embeddings
        /// (Li & Liang's reparametrisation) instead of training it directly.
        #[serde(default)]
        pub prefix_projection: bool,
        /// The MLP's hidden size; default the model's hidden size (PEFT's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub encoder_hidden_size: Option<NonZeroUsize>,
        /// `"zero"`: the prefix starts as zeros (the MLP's last layer, or the embedding);
        /// unset: random (PEFT's `None`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub init_weights: Option<ZeroInit>,
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

/// PEFT's one value of `init_weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroInit {
    Zero,
}

fn default_virtual_tokens() -> NonZeroUsize {
    NonZeroUsize::new(20).unwrap()
}

impl Params {
    /// The model layer's spec.
    pub fn spec(&self) -> PrefixTuningSpec {
        PrefixTuningSpec {
            num_virtual_tokens: self.num_virtual_tokens.get() as i64,
            prefix_projection: self.prefix_projection,
            encoder_hidden_size: self.encoder_hidden_size.map(|h| h.get() as i64),
            init: match self.init_weights {
                Some(ZeroInit::Zero) => PrefixInit::Zero,
                None => PrefixInit::Random,
            },
            modules_to_save: self.modules_to_save.clone(),
        }
    }
}

/// `adapter_config.json` as PEFT writes it (`PrefixTuningConfig.to_dict()`).
fn adapter_config(
    params: &Params,
    config: &crate::model::ModelConfig,
    modules_to_save: &[String],
) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "PREFIX_TUNING",
        "task_type": "SEQ_CLS",
        "base_model_name_or_path": params.model,
        "num_virtual_tokens": params.num_virtual_tokens.get(),
        "token_dim": config.hidden_size(),
        "num_transformer_submodules": params.num_transformer_submodules.unwrap_or(1),
        "num_attention_heads": config.num_attention_heads(),
        "num_layers": config.num_layers(),
        "encoder_hidden_size": params.encoder_hidden_size.map_or(config.hidden_size(), |h| h.get() as i64),
        "prefix_projection": params.prefix_projection,
        "init_weights": params.init_weights,
        "modules_to_save": modules_to_save,
        "inference_mode": true,
        "auto_mapping": null,
        "revision": null,
    })
}

impl Task for PrefixTuning {
    const KIND: &'static str = "prefix_tuning";
    const VERSION: u32 = 1;
    type Params = Params;

    trains_on_tokens!(Params);

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_training()?;
        if params.encoder_hidden_size.is_some() && !params.prefix_projection {
            return Err(ParamError::at(
                "encoder_hidden_size",
                "encoder_hidden_size is the width of the prefix MLP, which only prefix_projection = true has",
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
        let (mut model, outcome) = training::fit(ctx, &params.training(), &Method::PrefixTuning(params.spec()))?;
        let modules_to_save = super::lora::modules_to_save(&model, &params.modules_to_save);
        let config = adapter_config(params, &model.config, &modules_to_save);
        let info = training::CheckpointInfo {
            pooling: params.pooling,
            method: "prefix tuning".into(),
            base_model: params.model.clone(),
        };
        super::lora::save_adapter(ctx, &mut model, &config, &info)?;
        let mut metrics = training::training_metrics("prefix tuning", &model, &outcome)?;
        metrics
            .extra
            .insert("num_virtual_tokens".into(), params.num_virtual_tokens.get().into());
        Ok(metrics)
    }
}
