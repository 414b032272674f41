//! `adapter`: bottleneck adapters (Houlsby et al., 2019; Pfeiffer placement as an option)
//! with the semantics and field names of the AdapterHub `adapters` library's `BnConfig`
//! (`crate::model::bottleneck`): a `config` preset — `"double_seq_bn"` (alias
//! `"houlsby"`, the default: after attention and feed-forward, swish) or `"seq_bn"` (alias
//! `"pfeiffer"`: after the feed-forward only, relu, the original LayerNorm before the
//! adapter) — with per-field overrides (`reduction_factor` or `bottleneck_size`,
//! `non_linearity`, `mh_adapter`, `output_adapter`, `original_ln_before`,
//! `original_ln_after`, `residual_before_ln`, `adapter_residual_before_ln`, `ln_before`,
//! `ln_after`, `init_weights`, `scaling`, `dropout`, `leave_out`). Only the adapters and
//! `modules_to_save` (the lab's classification head by default) train.
//!
//! Output: `adapter/` in the library's `save_adapter(…, use_safetensors=True)` layout —
//! `adapter_config.json`, `adapter.safetensors`, `head_config.json` and
//! `model_head.safetensors` (the head outside the encoder: `pre_classifier` + `classifier`,
//! or BERT's `classifier`) — that `model.load_adapter("adapter")` loads, plus
//! `modules_to_save.safetensors` with any trained module inside the encoder (BERT's
//! `bert.pooler`, which the lab trains with the head and the library keeps frozen), under
//! its model name, and `orchestrate.json`.
//!
//! The learning rate is Trainer's default (5e-5) as on every training kind; adapters usually
//! want more (Houlsby et al. swept 3e-5, 3e-4 and 3e-3): see docs/task-kinds.md.

use anyhow::{Context as _, Result};

use super::training::{self, training_params};
use super::{check, Context, Metrics, ParamError, Task, ValidateContext};
use crate::model::bottleneck::{
    self, BottleneckSize, BottleneckSpec, InitWeights, NonLinearity, PostAdd, ResidualBeforeLn,
};
use crate::model::{LoadedModel, Method};
use crate::train;

pub struct Adapter;

training_params! {
    pub struct Params {
        /// The preset: `"double_seq_bn"`/`"houlsby"` (default) or `"seq_bn"`/`"pfeiffer"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub config: Option<String>,
        /// The adapter's name in the library (`adapters.<name>.` in parameter names).
        #[serde(default = "default_name")]
        pub adapter_name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub mh_adapter: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub output_adapter: Option<bool>,
        /// Hidden size ÷ bottleneck width (16 in both presets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reduction_factor: Option<f64>,
        /// The bottleneck width, instead of `reduction_factor` (saved as the reduction
        /// factor `hidden / bottleneck_size`, which the library turns back into this width).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub bottleneck_size: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub non_linearity: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub original_ln_before: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub original_ln_after: Option<bool>,
        /// `true`, `false` or `"post_add"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub residual_before_ln: Option<ResidualBeforeLn>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub adapter_residual_before_ln: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ln_before: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ln_after: Option<bool>,
        /// `"bert"` (default), `"houlsby"` or `"mam_adapter"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub init_weights: Option<InitWeights>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub scaling: Option<f64>,
        /// Dropout on the adapter's output (0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dropout: Option<f64>,
        /// Layers (from 0) left without adapters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub leave_out: Option<Vec<usize>>,
        /// Modules trained and saved in full; default the classification head.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub modules_to_save: Option<Vec<String>>,
    }
}

fn default_name() -> String {
    "adapter".into()
}

/// A preset's fields (the library's `SeqBnConfig`, `DoubleSeqBnConfig`).
struct Preset {
    mh_adapter: bool,
    original_ln_before: bool,
    non_linearity: &'static str,
}

/// The preset names, for messages.
const PRESETS: &str = "double_seq_bn (houlsby), seq_bn (pfeiffer)";

fn preset(name: Option<&str>) -> Option<Preset> {
    Some(match name.unwrap_or("double_seq_bn") {
        "double_seq_bn" | "houlsby" => Preset {
            mh_adapter: true,
            original_ln_before: false,
            non_linearity: "swish",
        },
        "seq_bn" | "pfeiffer" => Preset {
            mh_adapter: false,
            original_ln_before: true,
            non_linearity: "relu",
        },
        _ => return None,
    })
}

impl Params {
    /// The model layer's spec: the preset with the given fields over it.
    pub fn spec(&self) -> Result<BottleneckSpec> {
        let p = preset(self.config.as_deref())
            .with_context(|| format!("unknown adapter config {:?}: expected one of {PRESETS}", self.config))?;
        let size = match (self.reduction_factor, self.bottleneck_size) {
            (_, Some(width)) => BottleneckSize::Width(width as i64),
            (Some(rf), None) => BottleneckSize::ReductionFactor(rf),
            (None, None) => BottleneckSize::ReductionFactor(16.0),
        };
        Ok(BottleneckSpec {
            name: self.adapter_name.clone(),
            mh_adapter: self.mh_adapter.unwrap_or(p.mh_adapter),
            output_adapter: self.output_adapter.unwrap_or(true),
            size,
            non_linearity: self.non_linearity.clone().unwrap_or_else(|| p.non_linearity.into()),
            original_ln_before: self.original_ln_before.unwrap_or(p.original_ln_before),
            original_ln_after: self.original_ln_after.unwrap_or(true),
            residual_before_ln: self.residual_before_ln.unwrap_or(ResidualBeforeLn::Bool(true)),
            adapter_residual_before_ln: self.adapter_residual_before_ln.unwrap_or(false),
            ln_before: self.ln_before.unwrap_or(false),
            ln_after: self.ln_after.unwrap_or(false),
            init_weights: self.init_weights.unwrap_or(InitWeights::Bert),
            scaling: self.scaling.unwrap_or(1.0),
            dropout: self.dropout.unwrap_or(0.0),
            leave_out: self.leave_out.iter().flatten().map(|&i| i as i64).collect(),
            modules_to_save: self.modules_to_save.clone(),
        })
    }

    fn validate_adapter(&self, cx: &ValidateContext) -> Result<(), ParamError> {
        let p = preset(self.config.as_deref()).ok_or_else(|| {
            ParamError::at(
                "config",
                format!(
                    "unknown adapter config {:?}: expected one of {PRESETS}",
                    self.config.as_deref().unwrap_or("")
                ),
            )
        })?;
        if self.adapter_name.is_empty()
            || !self
                .adapter_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(ParamError::at(
                "adapter_name",
                format!(
                    "adapter_name {:?} must be letters, digits, `_` or `-` (it is part of parameter names)",
                    self.adapter_name
                ),
            ));
        }
        if self.reduction_factor.is_some() && self.bottleneck_size.is_some() {
            return Err(ParamError::at(
                "bottleneck_size",
                "give reduction_factor or bottleneck_size, not both",
            ));
        }
        if let Some(rf) = self.reduction_factor {
            check::positive("reduction_factor", rf)?;
        }
        if self.bottleneck_size == Some(0) {
            return Err(ParamError::at("bottleneck_size", "bottleneck_size must be at least 1"));
        }
        let non_linearity = self.non_linearity.as_deref().unwrap_or(p.non_linearity);
        if NonLinearity::from_name(non_linearity).is_none() {
            return Err(ParamError::at(
                "non_linearity",
                format!("non_linearity {non_linearity:?} is not one of {}", NonLinearity::NAMES),
            ));
        }
        if !self.mh_adapter.unwrap_or(p.mh_adapter) && !self.output_adapter.unwrap_or(true) {
            let key = if self.output_adapter.is_some() {
                "output_adapter"
            } else {
                "mh_adapter"
            };
            return Err(ParamError::at(
                key,
                "mh_adapter and output_adapter are both false: no adapter would be added",
            ));
        }
        if self.residual_before_ln == Some(ResidualBeforeLn::PostAdd(PostAdd::PostAdd))
            && !self.original_ln_before.unwrap_or(p.original_ln_before)
        {
            return Err(ParamError::at(
                "residual_before_ln",
                "residual_before_ln = \"post_add\" takes the residual after the original LayerNorm's add: \
                 it needs original_ln_before = true",
            ));
        }
        if let Some(scaling) = self.scaling {
            if !scaling.is_finite() {
                return Err(ParamError::at(
                    "scaling",
                    format!("scaling must be a finite number, got {scaling}"),
                ));
            }
        }
        if let Some(dropout) = self.dropout {
            check::fraction("dropout", dropout)?;
        }
        let Some(config) = cx.model else { return Ok(()) };
        let layers = config.num_layers() as usize;
        if let Some(&bad) = self.leave_out.iter().flatten().find(|&&i| i >= layers) {
            return Err(ParamError::at(
                "leave_out",
                format!(
                    "leave_out lists layer {bad}, but the model has {layers} layers (0 to {})",
                    layers - 1
                ),
            ));
        }
        if let Some(size) = self.bottleneck_size {
            let hidden = config.hidden_size();
            let spec = self.spec().map_err(|e| ParamError::at("config", e.to_string()))?;
            if spec.down_sample(hidden) != size as i64 {
                return Err(ParamError::at(
                    "bottleneck_size",
                    format!(
                        "bottleneck_size = {size} is not reachable as the library computes widths \
                         (hidden {hidden} // reduction_factor {}): use reduction_factor",
                        spec.reduction_factor(hidden)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Writes `adapter/` (see the module doc); returns its path.
fn save(params: &Params, spec: &BottleneckSpec, model: &LoadedModel, ctx: &Context) -> Result<std::path::PathBuf> {
    let dir = ctx.output(super::lora::ADAPTER_DIR);
    bottleneck::save_adapter(model, spec, &params.model, &dir)
        .with_context(|| format!("cannot save the adapter to {}", dir.display()))?;
    let info = training::CheckpointInfo {
        pooling: params.pooling,
        method: "adapter".into(),
        base_model: params.model.clone(),
    };
    training::write_info(&dir, &info)?;
    Ok(dir)
}

impl Task for Adapter {
    const KIND: &'static str = "adapter";
    const VERSION: u32 = 1;
    type Params = Params;

    trains_on_tokens!(Params);

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_training()?;
        params.validate_adapter(cx)
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let spec = params.spec()?;
        let (model, outcome) = training::fit(ctx, &params.training(), &Method::Adapter(spec.clone()))?;
        let dir = save(params, &spec, &model, ctx)?;
        let mut metrics = training::training_metrics("adapter", &model, &outcome)?;
        let bytes = std::fs::metadata(dir.join("adapter.safetensors"))?.len();
        let hidden = model.config.hidden_size();
        metrics.extra.insert(
            "reduction_factor".into(),
            bottleneck::number(spec.reduction_factor(hidden)),
        );
        metrics
            .extra
            .insert("bottleneck_size".into(), spec.down_sample(hidden).into());
        metrics.extra.insert("adapter_bytes".into(), bytes.into());
        Ok(metrics)
    }
}
