//! `ia3`: IA3 (Liu et al., 2022) with PEFT's semantics and field names: learned vectors
//! scale the outputs of the `target_modules` (default: keys, values and the feed-forward
//! output) — or, for the `feedforward_modules`, their inputs. Only those vectors and
//! `modules_to_save` (the classification head by default) train.
//!
//! Output: `adapter/` in PEFT's format (`adapter_config.json`, `adapter_model.safetensors`).

use anyhow::Result;

use super::training::{self, training_params};
use super::{check, Context, Metrics, ParamError, Task, ValidateContext};
use crate::model::adapters::Ia3Spec;
use crate::model::Method;
use crate::train;

pub struct Ia3;

training_params! {
    pub struct Params {
        /// Layer names or globs; default PEFT's mapping (k, v and the feed-forward output).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub target_modules: Option<Vec<String>>,
        /// Targets whose input (not output) is scaled; default PEFT's mapping.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub feedforward_modules: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub modules_to_save: Option<Vec<String>>,
    }
}

impl Params {
    pub fn spec(&self) -> Ia3Spec {
        Ia3Spec {
            target_modules: self.target_modules.clone(),
            feedforward_modules: self.feedforward_modules.clone(),
            modules_to_save: self.modules_to_save.clone(),
        }
    }
}

impl Task for Ia3 {
    const KIND: &'static str = "ia3";
    // 2: own AdamW and per-epoch dropout seeds, so that training can resume.
    // 3: dropout masks from 16-bit lanes by default (`dropout_masks`).
    const VERSION: u32 = 3;
    type Params = Params;

    trains_on_tokens!(Params);

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_training()?;
        let Some(config) = cx.model else { return Ok(()) };
        let (targets, feedforward) = params.spec().targets(config.model_type());
        check::rank_and_targets("target_modules", 1, "target_modules", &targets, cx.model)?;
        let targeted: Vec<String> = crate::model::linear_layers(config)
            .into_iter()
            .map(|layer| layer.name)
            .filter(|name| crate::model::targets::matches_any(&targets, name))
            .collect();
        match feedforward.iter().find(|ff| {
            !targeted
                .iter()
                .any(|name| crate::model::targets::matches_any(std::slice::from_ref(ff), name))
        }) {
            Some(ff) => Err(ParamError::at(
                "feedforward_modules",
                format!(
                    "feedforward module {ff:?} is not among the IA3 target modules ({})",
                    targets.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let spec = params.spec();
        let (mut model, outcome) = training::fit(ctx, &params.training(), &Method::Ia3(spec.clone()))?;
        let (targets, feedforward) = spec.targets(model.config.model_type());
        let modules_to_save = super::lora::modules_to_save(&model, &params.modules_to_save);
        let config = serde_json::json!({
            "peft_type": "IA3",
            "task_type": "SEQ_CLS",
            "base_model_name_or_path": params.model,
            "target_modules": targets,
            "feedforward_modules": feedforward,
            "modules_to_save": modules_to_save,
            "init_ia3_weights": true,
            "fan_in_fan_out": false,
            "inference_mode": true,
            "revision": null,
        });
        let info = training::CheckpointInfo {
            pooling: params.pooling,
            method: "IA3".into(),
            base_model: params.model.clone(),
        };
        super::lora::save_adapter(ctx, &mut model, &config, &info)?;
        training::training_metrics("IA3", &model, &outcome)
    }
}
