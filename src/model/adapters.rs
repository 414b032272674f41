//! PEFT's methods on the tch models, with PEFT's semantics and names: LoRA and IA3 wrap
//! linear layers (see [`LinearLayer`]), BitFit is a choice of trainable parameters, and an
//! adapter is saved as PEFT saves it (`adapter_config.json` + `adapter_model.safetensors`,
//! keys `base_model.model.<module>.lora_A.weight`), so `PeftModel.from_pretrained` loads it.
//!
//! - LoRA: `y = W x + b + (alpha / r) · B A dropout(x)`, A `[r, in]`, B `[out, r]` = 0 at the
//!   start; `use_rslora` scales by `alpha / sqrt(r)`; `init = pissa` starts B A at W's top-r
//!   singular triplets and freezes the residual instead of W.
//! - DoRA: `y = m / ‖W + s·B A‖ · (W + s·B A) x + b`, with the row norms detached from the
//!   gradient as PEFT (and the paper's section 4.3) does; `m` (`lora_magnitude_vector`)
//!   starts at the row norms of W, so the layer starts as the base layer.
//! - IA3: a learned vector `ia3_l` (ones at the start) scales a layer's output, or, for the
//!   feed-forward modules, its input.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init, VarStore};
use tch::Tensor;

use super::error::{ModelError, Result};
use super::layers::{linear_op, Dropout, Linear, LinearLayer, LinearSlot};
use super::surgery;
use super::targets::{default_ia3_targets, matches_any};
use super::tree::ModuleNode;
use super::LoadedModel;

/// How LoRA's A and B start. PEFT's names where PEFT has the initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraInit {
    /// A ~ N(0, 1), B = 0: the lab's initialisation. PEFT has no equivalent.
    #[default]
    Normal,
    /// PEFT's `"gaussian"`: A ~ N(0, std 1/r), B = 0.
    Gaussian,
    /// PEFT's default (`true`): A = `kaiming_uniform_(a=√5)`, i.e. U(−1/√in, 1/√in); B = 0.
    Kaiming,
    /// PEFT's `"pissa"` (Meng et al. 2024): B A = the top-r singular triplets of W (scaled
    /// by 1/scaling), and the frozen base becomes the residual W − scaling · B A.
    Pissa,
}

impl LoraInit {
    /// `init_lora_weights` as PEFT reads it. The lab's N(0, 1) has no PEFT value: `false`
    /// ("PEFT does not initialise the adapter") is the one that claims no distribution, and
    /// a loaded adapter takes its weights from the file either way.
    pub fn peft_value(self) -> serde_json::Value {
        match self {
            LoraInit::Normal => serde_json::json!(false),
            LoraInit::Gaussian => serde_json::json!("gaussian"),
            LoraInit::Kaiming => serde_json::json!(true),
            LoraInit::Pissa => serde_json::json!("pissa"),
        }
    }
}

/// PEFT's `bias` option: which biases train besides the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BiasMode {
    #[default]
    None,
    All,
    LoraOnly,
}

/// A LoRA configuration, PEFT's `LoraConfig` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub r: i64,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    /// `None`: the model type's default (q_lin, v_lin / query, value).
    pub target_modules: Option<Vec<String>>,
    pub bias: BiasMode,
    /// `None`: the classification head.
    pub modules_to_save: Option<Vec<String>>,
    pub init: LoraInit,
    pub use_rslora: bool,
    /// DoRA (Liu et al. 2024): a trained magnitude per output row over the
    /// row-normalised direction `W + scaling · B A` (PEFT's `use_dora`).
    pub use_dora: bool,
}

impl LoraSpec {
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }
}

/// QLoRA (Dettmers et al. 2023): LoRA on a frozen base whose encoder linear layers are
/// NF4 (see `nf4`), optionally with the block maxima quantized too.
#[derive(Debug, Clone, PartialEq)]
pub struct QloraSpec {
    pub lora: LoraSpec,
    /// bitsandbytes' `bnb_4bit_use_double_quant`.
    pub double_quant: bool,
}

/// An IA3 configuration, PEFT's `IA3Config` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Ia3Spec {
    /// `None`: the model type's default (PEFT's mapping).
    pub target_modules: Option<Vec<String>>,
    /// Which targets scale their input instead of their output; `None`: PEFT's mapping.
    pub feedforward_modules: Option<Vec<String>>,
    pub modules_to_save: Option<Vec<String>>,
}

impl Ia3Spec {
    /// (target modules, feed-forward modules): the given ones, else PEFT's mapping.
    pub fn targets(&self, model_type: &str) -> (Vec<String>, Vec<String>) {
        let (default_targets, default_feedforward) = default_ia3_targets(model_type);
        (
            self.target_modules.clone().unwrap_or(default_targets),
            self.feedforward_modules.clone().unwrap_or(default_feedforward),
        )
    }
}

/// `torch.nn.Linear` plus a LoRA update (`peft.tuners.lora.Linear`), with DoRA's
/// magnitude when `magnitude` is set.
#[derive(Debug)]
pub struct LoraLinear {
    pub base: LinearSlot,
    pub lora_a: Tensor,
    pub lora_b: Tensor,
    pub scaling: f64,
    pub dropout: Dropout,
    /// DoRA's `lora_magnitude_vector`, `[out]`.
    pub magnitude: Option<Tensor>,
}

/// The Euclidean norm of each row of `[out, in]` `weight`: DoRA's `‖·‖` per output.
fn row_norms(weight: &Tensor) -> Result<Tensor> {
    Ok(weight
        .f_square()?
        .f_sum_dim_intlist(&[1i64][..], false, None)?
        .f_sqrt()?)
}

impl LoraLinear {
    fn plain_base(&self) -> Result<&Linear> {
        plain_linear(&self.base, "merging LoRA")
    }

    /// `W + scaling · B A`, without gradient.
    fn directional_weight(&self) -> Result<Tensor> {
        let base = self.plain_base()?;
        tch::no_grad(|| {
            let delta = self.lora_b.f_matmul(&self.lora_a)?.f_mul_scalar(self.scaling)?;
            Ok(base.weight.f_add(&delta)?)
        })
    }

    /// `W + scaling · B A`, and for DoRA scaled to the magnitude row by row: the plain
    /// layer this one computes (dropout aside).
    pub fn merged_weight(&self) -> Result<Tensor> {
        let weight = self.directional_weight()?;
        match &self.magnitude {
            None => Ok(weight),
            Some(magnitude) => tch::no_grad(|| {
                let scale = magnitude.f_div(&row_norms(&weight)?)?.f_unsqueeze(1)?;
                Ok(weight.f_mul(&scale)?)
            }),
        }
    }

    /// PEFT's `DoraLinearLayer.forward`: what DoRA adds to the base output `out`.
    fn dora_update(
        &self,
        magnitude: &Tensor,
        out: &Tensor,
        dropped: &Tensor,
        lora: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let base = self.plain_base()?;
        // The norm is a constant for the gradient (DoRA, section 4.3).
        let norms = row_norms(&self.directional_weight()?)?;
        let scale = magnitude.f_div(&norms)?.f_to_kind(out.kind())?;
        // With dropout active PEFT recomputes the base term on the dropped input.
        let base_term = if train && self.dropout.p > 0.0 {
            linear_op(dropped, &base.weight, None)?
        } else {
            match &base.bias {
                Some(bias) => out.f_sub(&bias.f_to_kind(out.kind())?)?,
                None => out.shallow_clone(),
            }
        };
        let lora = lora.f_mul_scalar(self.scaling)?.f_mul(&scale)?;
        Ok(base_term.f_mul(&scale.f_sub_scalar(1.0)?)?.f_add(&lora)?)
    }
}

impl LinearLayer for LoraLinear {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let out = self.base.forward_t(xs, train)?;
        let dropped = self.dropout.forward_t(xs, train)?;
        let update = linear_op(&linear_op(&dropped, &self.lora_a, None)?, &self.lora_b, None)?;
        match &self.magnitude {
            None => Ok(out.f_add(&update.f_mul_scalar(self.scaling)?)?),
            Some(magnitude) => {
                let dora = self.dora_update(magnitude, &out, &dropped, &update, train)?;
                Ok(out.f_add(&dora)?)
            }
        }
    }
    fn in_features(&self) -> i64 {
        self.base.in_features()
    }
    fn out_features(&self) -> i64 {
        self.base.out_features()
    }
    fn module_node(&self) -> ModuleNode {
        let r = self.lora_a.size()[0];
        let linear =
            |i: i64, o: i64| ModuleNode::leaf("Linear", format!("in_features={i}, out_features={o}, bias=False"));
        let mut children = vec![
            ("base_layer", self.base.module_node()),
            ("lora_dropout", self.dropout.module_node()),
            ("lora_A", linear(self.in_features(), r)),
            ("lora_B", linear(r, self.out_features())),
        ];
        if self.magnitude.is_some() {
            children.push((
                "lora_magnitude_vector",
                ModuleNode::leaf("lora.dora.DoraLinearLayer", String::new()),
            ));
        }
        ModuleNode::new("lora.Linear", children)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// `torch.nn.Linear` with IA3 scaling (`peft.tuners.ia3.Linear`).
#[derive(Debug)]
pub struct Ia3Linear {
    pub base: LinearSlot,
    /// `[out, 1]`, or `[1, in]` for a feed-forward module.
    pub ia3_l: Tensor,
    pub feedforward: bool,
}

impl LinearLayer for Ia3Linear {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        // The vector in the kind of what it scales, so that autocast keeps bfloat16 branches so.
        let scale = self.ia3_l.f_flatten(0, -1)?;
        if self.feedforward {
            self.base.forward_t(&xs.f_mul(&scale.f_to_kind(xs.kind())?)?, train)
        } else {
            let out = self.base.forward_t(xs, train)?;
            Ok(out.f_mul(&scale.f_to_kind(out.kind())?)?)
        }
    }
    fn in_features(&self) -> i64 {
        self.base.in_features()
    }
    fn out_features(&self) -> i64 {
        self.base.out_features()
    }
    fn module_node(&self) -> ModuleNode {
        ModuleNode::new("ia3.Linear", vec![("base_layer", self.base.module_node())])
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// The `nn::Path` of a dotted HF module name (tch paths take one segment at a time).
fn path_of<'a>(vs: &'a VarStore, name: &str) -> nn::Path<'a> {
    name.split('.').fold(vs.root(), |path, segment| path / segment)
}

/// Wraps every layer `spec` targets in a [`LoraLinear`]; returns their names.
pub fn inject_lora(model: &mut LoadedModel, spec: &LoraSpec) -> Result<Vec<String>> {
    if spec.r < 1 {
        return Err(ModelError::Surgery {
            message: format!("LoRA rank r must be at least 1, got {}", spec.r),
        });
    }
    if spec.lora_alpha.is_nan() || spec.lora_alpha <= 0.0 {
        return Err(ModelError::Surgery {
            message: format!("lora_alpha must be positive, got {}", spec.lora_alpha),
        });
    }
    if !(0.0..1.0).contains(&spec.lora_dropout) {
        return Err(ModelError::Surgery {
            message: format!("lora_dropout must be in [0, 1), got {}", spec.lora_dropout),
        });
    }
    let names = surgery::select_targets(model, spec.target_modules.as_deref())?;
    let vs = &model.vs;
    let scaling = spec.scaling();
    let mut created = Vec::new();
    for name in &names {
        let path = path_of(vs, name);
        let slot = model.network.linear_slot(name)?;
        let (fan_in, fan_out) = (slot.in_features(), slot.out_features());
        if spec.r > fan_in.min(fan_out) {
            return Err(ModelError::RankOutOfRange {
                rank: spec.r,
                shape: vec![fan_out, fan_in],
                max: fan_in.min(fan_out),
            });
        }
        let (lora_a, lora_b) = match spec.init {
            LoraInit::Pissa => {
                let base = plain_linear(slot, "PiSSA")?;
                let (a, b) = pissa_factors(&base.weight, spec.r, scaling)?;
                // The frozen base becomes the residual, as PEFT's `pissa_init` leaves it.
                tch::no_grad(|| -> Result<()> {
                    let delta = b.f_matmul(&a)?.f_mul_scalar(scaling)?;
                    let _ = base.weight.shallow_clone().f_sub_(&delta)?;
                    Ok(())
                })?;
                (
                    (&path / "lora_A").f_var_copy("weight", &a)?,
                    (&path / "lora_B").f_var_copy("weight", &b)?,
                )
            }
            init => {
                let init_a = match init {
                    LoraInit::Gaussian => Init::Randn {
                        mean: 0.0,
                        stdev: 1.0 / spec.r as f64,
                    },
                    LoraInit::Kaiming => {
                        let bound = 1.0 / (fan_in as f64).sqrt();
                        Init::Uniform { lo: -bound, up: bound }
                    }
                    LoraInit::Normal | LoraInit::Pissa => Init::Randn { mean: 0.0, stdev: 1.0 },
                };
                let lora_a = (&path / "lora_A").f_var("weight", &[spec.r, fan_in], init_a)?;
                (lora_a, (&path / "lora_B").f_zeros("weight", &[fan_out, spec.r])?)
            }
        };
        let magnitude = if spec.use_dora {
            let base = plain_linear(slot, "DoRA")?;
            let weight = tch::no_grad(|| -> Result<Tensor> {
                Ok(base.weight.f_add(&lora_b.f_matmul(&lora_a)?.f_mul_scalar(scaling)?)?)
            })?;
            Some(path.f_var_copy("lora_magnitude_vector", &row_norms(&weight)?)?)
        } else {
            None
        };
        created.push((name.clone(), lora_a, lora_b, magnitude));
    }
    for (name, lora_a, lora_b, magnitude) in created {
        let dropout = Dropout { p: spec.lora_dropout };
        model.replace_linear(&name, |base| {
            Ok(Box::new(LoraLinear {
                base,
                lora_a,
                lora_b,
                scaling,
                dropout,
                magnitude,
            }))
        })?;
    }
    Ok(names)
}

/// `slot` as the plain linear layer `method` needs under its adapter.
fn plain_linear<'a>(slot: &'a LinearSlot, method: &str) -> Result<&'a Linear> {
    slot.as_any()
        .downcast_ref::<Linear>()
        .ok_or_else(|| ModelError::Surgery {
            message: format!("{method} needs a plain linear layer under the adapter, not another adapter"),
        })
}

/// PiSSA's A `[r, in]` and B `[out, r]` for weight W as PEFT's `pissa_init` computes
/// them: W = U S Vᴴ (float32), A = √(S_r / scaling) Vᴴ_r, B = U_r √(S_r / scaling).
fn pissa_factors(weight: &Tensor, r: i64, scaling: f64) -> Result<(Tensor, Tensor)> {
    tch::no_grad(|| {
        // `Tensor::svd` works on CPU everywhere; `linalg_svd` with an empty driver does not.
        let (u, s, v) = weight.f_to_kind(tch::Kind::Float)?.f_svd(true, true)?;
        let root = s.f_narrow(0, 0, r)?.f_div_scalar(scaling)?.f_sqrt()?;
        let a = v
            .f_narrow(1, 0, r)?
            .f_transpose(0, 1)?
            .f_mul(&root.f_unsqueeze(1)?)?
            .f_contiguous()?;
        let b = u.f_narrow(1, 0, r)?.f_mul(&root.f_unsqueeze(0)?)?.f_contiguous()?;
        Ok((a, b))
    })
}

/// Wraps every layer `spec` targets in an [`Ia3Linear`]; returns their names.
pub fn inject_ia3(model: &mut LoadedModel, spec: &Ia3Spec) -> Result<Vec<String>> {
    let (targets, feedforward) = spec.targets(model.config.model_type());
    let names = surgery::select(model, &targets)?;
    for ff in &feedforward {
        if !names.iter().any(|n| matches_any(std::slice::from_ref(ff), n)) {
            return Err(ModelError::Surgery {
                message: format!("feedforward module {ff:?} is not among the IA3 target modules"),
            });
        }
    }
    let mut created = Vec::new();
    for name in &names {
        let slot = model.network.linear_slot(name)?;
        let is_ff = matches_any(&feedforward, name);
        let shape = if is_ff {
            [1, slot.in_features()]
        } else {
            [slot.out_features(), 1]
        };
        let ia3_l = path_of(&model.vs, name).f_var("ia3_l", &shape, Init::Const(1.0))?;
        created.push((name.clone(), ia3_l, is_ff));
    }
    for (name, ia3_l, feedforward) in created {
        model.replace_linear(&name, |base| {
            Ok(Box::new(Ia3Linear {
                base,
                ia3_l,
                feedforward,
            }))
        })?;
    }
    Ok(names)
}

/// Whether parameter `param` lies inside one of the modules `modules` names (any ancestor
/// module path matches, as PEFT's `modules_to_save` wraps whole modules).
pub fn in_modules(modules: &[String], param: &str) -> bool {
    param
        .match_indices('.')
        .any(|(at, _)| matches_any(modules, &param[..at]))
}

/// The adapter's tensors under PEFT's keys: every trainable parameter, as
/// `base_model.model.<name>`; the bias of a wrapped layer lives under `base_layer`.
pub fn adapter_tensors(model: &mut LoadedModel) -> Result<HashMap<String, Tensor>> {
    let wrapped: Vec<String> = model
        .network
        .linears_mut()
        .into_iter()
        .filter(|(_, slot)| slot.as_any().downcast_ref::<Linear>().is_none())
        .map(|(name, _)| name)
        .collect();
    let mut tensors = HashMap::new();
    for (name, tensor) in model.trainable_parameters() {
        let key = match name.strip_suffix(".bias") {
            Some(module) if wrapped.iter().any(|w| w == module) => format!("{module}.base_layer.bias"),
            _ => name,
        };
        tensors.insert(format!("base_model.model.{key}"), tensor.detach());
    }
    Ok(tensors)
}

/// Writes PEFT's adapter folder: `adapter_config.json` (given) and `adapter_model.safetensors`
/// (prompt learning's keys when the model has virtual tokens, see [`super::prompt`], [`super::prefix`]).
pub fn save_adapter(model: &mut LoadedModel, dir: &Path, config: &serde_json::Value) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let tensors = match &model.virtual_tokens {
        Some(super::VirtualTokens::Prompt(_)) => super::prompt::adapter_tensors(model),
        Some(super::VirtualTokens::Prefix(encoder)) => super::prefix::adapter_tensors(model, encoder)?,
        None => adapter_tensors(model)?,
    };
    super::checkpoint::save(&tensors, &dir.join("adapter_model.safetensors"))?;
    let path = dir.join("adapter_config.json");
    let json = serde_json::to_string_pretty(config).expect("JSON values serialize");
    std::fs::write(&path, json + "\n").map_err(|e| ModelError::io(&path, e))
}

/// The model's tensors with every LoRA update merged into its base weight and the adapter
/// tensors left out: a plain checkpoint transformers loads without PEFT.
pub fn merged_tensors(model: &mut LoadedModel) -> Result<HashMap<String, Tensor>> {
    let mut tensors = model.vs.variables();
    tensors.retain(|name, _| {
        !name.contains(".lora_A.")
            && !name.contains(".lora_B.")
            && !name.ends_with(".lora_magnitude_vector")
            && !name.ends_with(".ia3_l")
    });
    for (name, slot) in model.network.linears_mut() {
        if let Some(lora) = slot.as_any().downcast_ref::<LoraLinear>() {
            tensors.insert(format!("{name}.weight"), lora.merged_weight()?);
        } else if slot.as_any().downcast_ref::<Ia3Linear>().is_some() {
            return Err(ModelError::Surgery {
                message: format!("{name}: merging IA3 adapters is not supported"),
            });
        }
    }
    Ok(tensors)
}
