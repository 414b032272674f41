//! `lora`: LoRA fine-tuning with PEFT's semantics and field names (`r`, `lora_alpha`,
//! `lora_dropout`, `target_modules`, `bias`, `modules_to_save`, `use_rslora`, `use_dora`,
//! `init_lora_weights` as `init`) on top of Trainer's arguments. Only the adapters and `modules_to_save` (the classification head by
//! default) train: frozen weights get no gradients.
//!
//! Output: `adapter/` in PEFT's format (`adapter_config.json`, `adapter_model.safetensors`:
//! kilobytes to a few MB) that `PeftModel.from_pretrained(base, "adapter")` loads, and with
//! `merge = true` also `checkpoint/`, the merged model in the Hugging Face layout.
//!
//! `lora_alpha` is a number or a rule tied to the rank — `"2*r"`, `"r"`, `"0.5*r"` — so a
//! rank sweep keeps alpha/r fixed.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::training;
use super::{Context, Metrics, ParamError, Task, ValidateContext};
use crate::model::adapters::{self, LoraSpec};
use crate::model::{LoadedModel, Method};
use crate::train;

pub struct Lora;

/// Declares a LoRA-family parameter struct: Trainer's arguments, PEFT's `LoraConfig` fields
/// the family shares (`r`, `lora_alpha`, `lora_dropout`, `target_modules`, `bias`,
/// `modules_to_save`, `init`, `use_rslora`), then the kind's own fields; `lora_spec()` gives
/// the shared part as a [`LoraSpec`].
macro_rules! lora_params {
    ($(#[$attr:meta])* pub struct $name:ident { $($(#[$fattr:meta])* pub $field:ident : $ty:ty,)* }) => {
        crate::tasks::training::training_params! {
            $(#[$attr])*
            pub struct $name {
                /// The adapter rank.
                #[serde(default = "crate::tasks::lora::default_r")]
                pub r: usize,
                #[serde(default = "crate::tasks::lora::default_alpha")]
                pub lora_alpha: crate::tasks::lora::Alpha,
                #[serde(default)]
                pub lora_dropout: f64,
                /// Layer names (`q_lin`, `attention.self.query`) or globs; default q,v.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub target_modules: Option<Vec<String>>,
                #[serde(default)]
                pub bias: crate::model::adapters::BiasMode,
                /// Modules trained and saved in full; default the classification head.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub modules_to_save: Option<Vec<String>>,
                #[serde(default)]
                pub init: crate::model::adapters::LoraInit,
                #[serde(default)]
                pub use_rslora: bool,
                $($(#[$fattr])* pub $field: $ty,)*
            }
        }

        impl $name {
            /// The LoRA configuration these parameters describe (without DoRA).
            pub fn lora_spec(&self) -> crate::model::adapters::LoraSpec {
                crate::model::adapters::LoraSpec {
                    r: self.r as i64,
                    lora_alpha: self.lora_alpha.value(self.r),
                    lora_dropout: self.lora_dropout,
                    target_modules: self.target_modules.clone(),
                    bias: self.bias,
                    modules_to_save: self.modules_to_save.clone(),
                    init: self.init,
                    use_rslora: self.use_rslora,
                    use_dora: false,
                }
            }

            /// Checks the training arguments, the dropout, the rank and the targets.
            fn validate_lora(&self, cx: &crate::tasks::ValidateContext) -> Result<(), crate::tasks::ParamError> {
                self.validate_training()?;
                crate::tasks::check::fraction("lora_dropout", self.lora_dropout)?;
                let Some(config) = cx.model else {
                    return crate::tasks::check::rank_and_targets("r", self.r, "target_modules", &[], None);
                };
                let targets =
                    crate::model::targets::lora_targets(self.target_modules.as_deref(), config.model_type());
                crate::tasks::check::rank_and_targets("r", self.r, "target_modules", &targets, cx.model)
            }
        }
    };
}
pub(crate) use lora_params;

lora_params! {
    pub struct Params {
        #[serde(default)]
        pub use_dora: bool,
        /// Also write the merged model as `checkpoint/`.
        #[serde(default)]
        pub merge: bool,
    }
}

pub(crate) fn default_r() -> usize {
    8
}

pub(crate) fn default_alpha() -> Alpha {
    Alpha::Fixed(8.0)
}

/// `lora_alpha`: a positive number, or `k*r` (written `"2*r"`, `"r*2"`, `"r"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AlphaRepr", into = "AlphaRepr")]
pub enum Alpha {
    Fixed(f64),
    PerRank(f64),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum AlphaRepr {
    Number(f64),
    Rule(String),
}

impl TryFrom<AlphaRepr> for Alpha {
    type Error = String;
    fn try_from(repr: AlphaRepr) -> Result<Self, String> {
        let alpha = match repr {
            AlphaRepr::Number(x) => Alpha::Fixed(x),
            AlphaRepr::Rule(rule) => {
                let compact: String = rule.chars().filter(|c| !c.is_whitespace()).collect();
                let factor = if compact == "r" {
                    Some("1")
                } else {
                    compact.strip_suffix("*r").or_else(|| compact.strip_prefix("r*"))
                };
                let factor = factor
                    .and_then(|f| f.parse::<f64>().ok())
                    .ok_or_else(|| format!("lora_alpha {rule:?} is neither a number nor a rule like \"2*r\""))?;
                Alpha::PerRank(factor)
            }
        };
        match alpha {
            Alpha::Fixed(x) | Alpha::PerRank(x) if x.is_nan() || x <= 0.0 => {
                Err(format!("lora_alpha must be positive, got {x}"))
            }
            ok => Ok(ok),
        }
    }
}

impl From<Alpha> for AlphaRepr {
    fn from(alpha: Alpha) -> Self {
        match alpha {
            Alpha::Fixed(x) => AlphaRepr::Number(x),
            Alpha::PerRank(k) => AlphaRepr::Rule(format!("{k}*r")),
        }
    }
}

impl Alpha {
    pub fn value(self, r: usize) -> f64 {
        match self {
            Alpha::Fixed(x) => x,
            Alpha::PerRank(k) => k * r as f64,
        }
    }
}

impl Params {
    pub fn spec(&self) -> LoraSpec {
        LoraSpec {
            use_dora: self.use_dora,
            ..self.lora_spec()
        }
    }
}

/// `adapter_config.json` as PEFT writes it for these fields.
pub(super) fn adapter_config(
    base_model: &str,
    spec: &LoraSpec,
    targets: &[String],
    modules_to_save: &[String],
) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "SEQ_CLS",
        "base_model_name_or_path": base_model,
        "r": spec.r,
        "lora_alpha": spec.lora_alpha,
        "lora_dropout": spec.lora_dropout,
        "target_modules": targets,
        "bias": spec.bias,
        "modules_to_save": modules_to_save,
        "use_rslora": spec.use_rslora,
        "init_lora_weights": spec.init.peft_value(),
        "use_dora": spec.use_dora,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    })
}

pub const ADAPTER_DIR: &str = "adapter";

/// The method as the report names it: PiSSA and DoRA are their own rows and rank curves.
fn method_name(spec: &LoraSpec) -> &'static str {
    match (spec.init, spec.use_dora) {
        (adapters::LoraInit::Pissa, true) => "PiSSA + DoRA",
        (adapters::LoraInit::Pissa, false) => "PiSSA",
        (_, true) => "DoRA",
        _ => "LoRA",
    }
}

/// `modules_to_save` as given, else the classification head's modules.
pub(super) fn modules_to_save(model: &LoadedModel, given: &Option<Vec<String>>) -> Vec<String> {
    match given {
        Some(modules) => modules.clone(),
        None => model.network.head_modules().iter().map(|s| s.to_string()).collect(),
    }
}

/// The LoRA family's own metrics: the rank, alpha and the adapter file's size.
pub(super) fn record_adapter(metrics: &mut Metrics, spec: &LoraSpec, adapter: &std::path::Path) -> Result<()> {
    let bytes = std::fs::metadata(adapter.join("adapter_model.safetensors"))?.len();
    metrics.extra.insert("r".into(), spec.r.into());
    metrics.extra.insert("lora_alpha".into(), spec.lora_alpha.into());
    metrics.extra.insert("adapter_bytes".into(), bytes.into());
    Ok(())
}

/// Writes `adapter/` (PEFT's files plus `orchestrate.json`); returns its path.
pub(super) fn save_adapter(
    ctx: &Context,
    model: &mut LoadedModel,
    config: &serde_json::Value,
    info: &training::CheckpointInfo,
) -> Result<PathBuf> {
    let adapter = ctx.output(ADAPTER_DIR);
    adapters::save_adapter(model, &adapter, config)
        .with_context(|| format!("cannot save the adapter to {}", adapter.display()))?;
    training::write_info(&adapter, info)?;
    Ok(adapter)
}

impl Task for Lora {
    const KIND: &'static str = "lora";
    // 2: own AdamW and per-epoch dropout seeds, so that training can resume.
    // 3: dropout masks from 16-bit lanes by default (`dropout_masks`).
    // 4: `init` names: the lab's N(0, 1) is "normal" (the default); "gaussian" is PEFT's.
    const VERSION: u32 = 4;
    type Params = Params;

    trains_on_tokens!(Params);

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_lora(cx)
    }

    fn report_role() -> crate::tasks::ReportRole {
        crate::tasks::ReportRole::RankCurve { rank: "r" }
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let spec = params.spec();
        let training = params.training();
        let (mut model, outcome) = training::fit(ctx, &training, &Method::Lora(spec.clone()))?;
        let targets = crate::model::targets::lora_targets(params.target_modules.as_deref(), model.config.model_type());
        let modules_to_save = modules_to_save(&model, &params.modules_to_save);
        let method = method_name(&spec).to_string();
        let info = training::CheckpointInfo {
            pooling: params.pooling,
            method: method.clone(),
            base_model: params.model.clone(),
        };
        let config = adapter_config(&params.model, &spec, &targets, &modules_to_save);
        let adapter = save_adapter(ctx, &mut model, &config, &info)?;
        if params.merge {
            let merged = adapters::merged_tensors(&mut model)?;
            let dir = ctx.output(training::CHECKPOINT_DIR);
            model.save_tensors(&dir, &merged)?;
            training::write_info(&dir, &info)?;
        }
        let mut metrics = training::training_metrics(&method, &model, &outcome)?;
        record_adapter(&mut metrics, &spec, &adapter)?;
        Ok(metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alpha(text: &str) -> Result<Alpha, String> {
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("a = {text}")).unwrap()["a"].clone();
        Alpha::deserialize(value).map_err(|e| e.to_string())
    }

    #[test]
    fn alpha_numbers_and_rules() {
        assert_eq!(alpha("12").unwrap().value(6), 12.0);
        assert_eq!(alpha("\"2*r\"").unwrap().value(6), 12.0);
        assert_eq!(alpha("\"r * 2\"").unwrap().value(4), 8.0);
        assert_eq!(alpha("\"r\"").unwrap().value(5), 5.0);
        assert!(alpha("0").unwrap_err().contains("positive"));
        assert!(alpha("-1").unwrap_err().contains("positive"));
        assert!(alpha("\"2*x\"").unwrap_err().contains("neither a number"));
    }
}
