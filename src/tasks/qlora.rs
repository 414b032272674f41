//! `qlora`: QLoRA (Dettmers et al. 2023). The encoder's linear layers are frozen in 4-bit
//! NormalFloat (bitsandbytes' layout: blocks of 64, `bnb_4bit_use_double_quant` quantizes
//! the block maxima too) and dequantized for each matmul; LoRA adapters (PEFT's fields, as
//! `lora`) and `modules_to_save` (the head, kept in float32) train on top.
//!
//! Output: `adapter/` in PEFT's LoRA format, to load onto the base model; the metrics give
//! the frozen base's bytes as stored (`base_bytes`) next to float32's (`base_bytes_fp32`).

use anyhow::Result;

use super::lora::lora_params;
use super::training;
use super::{Context, Metrics, ParamError, Task, ValidateContext};
use crate::model::adapters::{LoraInit, QloraSpec};
use crate::model::{nf4, Method};
use crate::train;

pub struct Qlora;

lora_params! {
    pub struct Params {
        /// bitsandbytes' 4-bit type; NF4 is QLoRA's (FP4 is not implemented).
        #[serde(default = "default_quant_type")]
        pub bnb_4bit_quant_type: String,
        /// QLoRA's double quantization of the block maxima (the paper's recipe; transformers'
        /// `BitsAndBytesConfig` defaults to false).
        #[serde(default = "default_double_quant")]
        pub bnb_4bit_use_double_quant: bool,
    }
}

fn default_quant_type() -> String {
    "nf4".into()
}

fn default_double_quant() -> bool {
    true
}

impl Params {
    pub fn spec(&self) -> QloraSpec {
        QloraSpec {
            lora: self.lora_spec(),
            double_quant: self.bnb_4bit_use_double_quant,
        }
    }
}

impl Task for Qlora {
    const KIND: &'static str = "qlora";
    const VERSION: u32 = 1;
    type Params = Params;

    trains_on_tokens!(Params);

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_lora(cx)?;
        if params.bnb_4bit_quant_type != "nf4" {
            return Err(ParamError::at(
                "bnb_4bit_quant_type",
                format!(
                    "{:?} is not supported; QLoRA's 4-bit type is \"nf4\"",
                    params.bnb_4bit_quant_type
                ),
            ));
        }
        if params.init == LoraInit::Pissa {
            return Err(ParamError::at(
                "init",
                "\"pissa\" needs the float weights it factorises; on a 4-bit base use the lora kind's init = \"pissa\"",
            ));
        }
        Ok(())
    }

    fn report_role() -> crate::tasks::ReportRole {
        crate::tasks::ReportRole::RankCurve { rank: "r" }
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let spec = params.spec();
        let (mut model, outcome) = training::fit(ctx, &params.training(), &Method::Qlora(spec.clone()))?;
        let targets = crate::model::targets::lora_targets(params.target_modules.as_deref(), model.config.model_type());
        let modules_to_save = super::lora::modules_to_save(&model, &params.modules_to_save);
        let info = training::CheckpointInfo {
            pooling: params.pooling,
            method: "QLoRA".into(),
            base_model: params.model.clone(),
        };
        let config = super::lora::adapter_config(&params.model, &spec.lora, &targets, &modules_to_save);
        let adapter = super::lora::save_adapter(ctx, &mut model, &config, &info)?;
        let (stored, float32) = nf4::frozen_bytes(&mut model);
        let mut metrics = training::training_metrics("QLoRA", &model, &outcome)?;
        super::lora::record_adapter(&mut metrics, &spec.lora, &adapter)?;
        metrics.extra.insert("base_bytes".into(), stored.into());
        metrics.extra.insert("base_bytes_fp32".into(), float32.into());
        Ok(metrics)
    }
}
