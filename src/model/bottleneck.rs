//! Bottleneck adapters (Houlsby et al., 2019; Pfeiffer et al., 2020) as the AdapterHub
//! `adapters` library (1.3.0, `adapters.methods.modeling.Adapter` and
//! `methods.bottleneck.BottleneckLayer`) implements them for BERT and DistilBERT.
//!
//! A bottleneck sits where a sublayer's output (after its output dense and dropout: BERT's
//! `BertSelfOutput`/`BertOutput`, DistilBERT's attention `out_lin` and `ffn`) meets the
//! residual and the original LayerNorm, and takes over that residual + LayerNorm. With `h`
//! the sublayer's output, `x` its input (the residual) and `LN` the original LayerNorm:
//!
//! 1. `pre_forward`: the adapter's residual is `h` (`residual_before_ln = true`); with
//!    `original_ln_before`, `h ← LN(h + x)` (and `residual_before_ln = "post_add"` takes the
//!    residual after the add); with `residual_before_ln = false`, the residual is `h` after that.
//! 2. the bottleneck: `up = adapter_up(act(adapter_down(ln_before?(h)))) · scaling`,
//!    dropout, then `+ residual` before or after the optional `ln_after`
//!    (`adapter_residual_before_ln`);
//! 3. `post_forward`: with `original_ln_after`, `LN(out + x)`; else `out` as it is.
//!
//! Houlsby (`double_seq_bn`): after attention and feed-forward, swish, `reduction_factor`
//! 16, `original_ln_before = false`. Pfeiffer (`seq_bn`): after the feed-forward only, relu,
//! `original_ln_before = true`. The bottleneck width is `hidden // reduction_factor` (at
//! least 1).
//!
//! Parameters live in the model's `VarStore` under the library's names, e.g.
//! `bert.encoder.layer.0.output.adapters.<name>.adapter_down.0.weight` or
//! `distilbert.transformer.layer.0.attention_adapters.adapters.<name>.adapter_up.bias`;
//! with `ln_before` the down projection is `adapter_down.1` and the LayerNorm
//! `adapter_norm_before` (which torch's state dict also lists as `adapter_down.0`: see
//! [`adapter_tensors`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::Tensor;

use super::error::{ModelError, Result};
use super::layers::{linear_node, linear_op, Dropout, LayerNorm};
use super::tree::ModuleNode;
use super::{LoadedModel, Network};

/// The eps of the adapter's own LayerNorms (`torch.nn.LayerNorm`'s default).
const ADAPTER_LN_EPS: f64 = 1e-5;

/// `residual_before_ln`: `true`, `false` or `"post_add"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResidualBeforeLn {
    Bool(bool),
    PostAdd(PostAdd),
}

/// The string `"post_add"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostAdd {
    PostAdd,
}

/// The library's `init_weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitWeights {
    /// N(0, 0.02) weights, zero biases (`init_bert_weights`).
    Bert,
    /// Truncated N(0, 0.01) in ±0.02, zero biases.
    Houlsby,
    /// Down: kaiming-uniform (a = √5, i.e. U(±1/√in)); up: zeros.
    MamAdapter,
}

/// The bottleneck's non-linearity, by transformers' `ACT2FN` names (lower case, as the
/// library looks them up), plus the library's own `leakyrelu`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonLinearity {
    Relu,
    /// `swish` (torch's `SiLU`) and `silu` (transformers' `SiLUActivation`).
    Silu(&'static str),
    Gelu,
    /// `gelu_new` and `gelu_pytorch_tanh`.
    GeluTanh(&'static str),
    Tanh,
    Sigmoid,
    LeakyRelu,
}

impl NonLinearity {
    /// The names accepted, for error messages.
    pub const NAMES: &'static str = "relu, swish, silu, gelu, gelu_new, gelu_pytorch_tanh, tanh, sigmoid, leakyrelu";

    pub fn from_name(name: &str) -> Option<NonLinearity> {
        Some(match name.to_lowercase().as_str() {
            "relu" => NonLinearity::Relu,
            "swish" => NonLinearity::Silu("SiLU"),
            "silu" => NonLinearity::Silu("SiLUActivation"),
            "gelu" => NonLinearity::Gelu,
            "gelu_new" => NonLinearity::GeluTanh("NewGELUActivation"),
            "gelu_pytorch_tanh" => NonLinearity::GeluTanh("GELUTanh"),
            "tanh" => NonLinearity::Tanh,
            "sigmoid" => NonLinearity::Sigmoid,
            "leakyrelu" => NonLinearity::LeakyRelu,
            _ => return None,
        })
    }

    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            NonLinearity::Relu => xs.f_relu()?,
            NonLinearity::Silu(_) => xs.f_silu()?,
            NonLinearity::Gelu => xs.f_gelu("none")?,
            NonLinearity::GeluTanh(_) => xs.f_gelu("tanh")?,
            NonLinearity::Tanh => xs.f_tanh()?,
            NonLinearity::Sigmoid => xs.f_sigmoid()?,
            NonLinearity::LeakyRelu => xs.f_leaky_relu()?,
        })
    }

    fn module_node(&self) -> ModuleNode {
        let f = match self {
            NonLinearity::Relu => ModuleNode::leaf("ReLU", ""),
            NonLinearity::Silu(class) | NonLinearity::GeluTanh(class) => ModuleNode::leaf(*class, ""),
            NonLinearity::Gelu => ModuleNode::leaf("GELUActivation", ""),
            NonLinearity::Tanh => ModuleNode::leaf("Tanh", ""),
            NonLinearity::Sigmoid => ModuleNode::leaf("Sigmoid", ""),
            // `nn.functional.leaky_relu` is a function, not a module: no child.
            NonLinearity::LeakyRelu => return ModuleNode::new("Activation_Function_Class", vec![]),
        };
        ModuleNode::new("Activation_Function_Class", vec![("f", f)])
    }
}

/// A bottleneck adapter configuration: the library's `BnConfig` fields that orchestrate
/// implements (sequential adapters without gating, PHM or invertible adapters).
#[derive(Debug, Clone, PartialEq)]
pub struct BottleneckSpec {
    /// The adapter's name in the library (`adapters.<name>.`).
    pub name: String,
    pub mh_adapter: bool,
    pub output_adapter: bool,
    pub size: BottleneckSize,
    /// The name as given (saved as given in `adapter_config.json`).
    pub non_linearity: String,
    pub original_ln_before: bool,
    pub original_ln_after: bool,
    pub residual_before_ln: ResidualBeforeLn,
    pub adapter_residual_before_ln: bool,
    pub ln_before: bool,
    pub ln_after: bool,
    pub init_weights: InitWeights,
    pub scaling: f64,
    pub dropout: f64,
    /// Layers (from 0) without adapters.
    pub leave_out: Vec<i64>,
    /// `None`: the classification head.
    pub modules_to_save: Option<Vec<String>>,
}

/// How wide the bottleneck is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BottleneckSize {
    /// The library's `reduction_factor`: the width is `hidden // reduction_factor`.
    ReductionFactor(f64),
    /// A width, saved as the reduction factor `hidden / width`.
    Width(i64),
}

impl BottleneckSpec {
    /// The library's `reduction_factor` for a hidden size.
    pub fn reduction_factor(&self, hidden: i64) -> f64 {
        match self.size {
            BottleneckSize::ReductionFactor(rf) => rf,
            BottleneckSize::Width(width) => hidden as f64 / width as f64,
        }
    }

    /// The bottleneck width for a hidden size: `int(hidden // reduction_factor)` with
    /// Python's float floor division, at least 1.
    pub fn down_sample(&self, hidden: i64) -> i64 {
        (py_floordiv(hidden as f64, self.reduction_factor(hidden)) as i64).max(1)
    }

    /// Whether `param` is one of this adapter's parameters.
    pub fn owns(&self, param: &str) -> bool {
        param.contains(&format!(".adapters.{}.", self.name))
    }
}

/// Python's `a // b` for floats (CPython's `float_floor_div`): from `fmod`, so it can be
/// one below `floor(a / b)` when the quotient rounds up to a whole number (32 // 6.4 is 4).
pub fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && (b < 0.0) != (m < 0.0) {
        div -= 1.0;
    }
    if div == 0.0 {
        return 0.0_f64.copysign(a / b);
    }
    let mut floor = div.floor();
    if div - floor > 0.5 {
        floor += 1.0;
    }
    floor
}

/// One bottleneck adapter (the library's `Adapter`) with the residual and LayerNorm logic
/// around it (`pre_forward`, `post_forward`).
#[derive(Debug)]
pub struct Bottleneck {
    pub name: String,
    pub norm_before: Option<LayerNorm>,
    pub down_weight: Tensor,
    pub down_bias: Tensor,
    pub non_linearity: NonLinearity,
    pub up_weight: Tensor,
    pub up_bias: Tensor,
    pub norm_after: Option<LayerNorm>,
    pub scaling: f64,
    pub dropout: Dropout,
    original_ln_before: bool,
    original_ln_after: bool,
    residual_before_ln: ResidualBeforeLn,
    adapter_residual_before_ln: bool,
}

/// torch's `trunc_normal_`: inverse-CDF sampling of N(mean, std) truncated to [a, b].
fn trunc_normal(t: &Tensor, mean: f64, std: f64, a: f64, b: f64) -> Result<()> {
    let cdf = |x: f64| (1.0 + erf((x - mean) / std / std::f64::consts::SQRT_2)) / 2.0;
    let (l, u) = (cdf(a), cdf(b));
    tch::no_grad(|| -> Result<()> {
        let mut t = t.shallow_clone();
        let _ = t.f_uniform_(2.0 * l - 1.0, 2.0 * u - 1.0)?;
        let _ = t.f_erfinv_()?;
        let _ = t.f_mul_scalar_(std * std::f64::consts::SQRT_2)?;
        let _ = t.f_add_scalar_(mean)?;
        let _ = t.f_clamp_(a, b)?;
        Ok(())
    })
}

/// The error function (std has none; torch's, in float64).
fn erf(x: f64) -> f64 {
    Tensor::from(x).erf().double_value(&[])
}

impl Bottleneck {
    /// Creates the adapter's parameters under `p` (`…adapters.<name>`), initialised as the
    /// library's `init_weights` says.
    pub fn new(p: &nn::Path, hidden: i64, spec: &BottleneckSpec) -> Result<Bottleneck> {
        let non_linearity = NonLinearity::from_name(&spec.non_linearity).ok_or_else(|| ModelError::Surgery {
            message: format!(
                "non_linearity {:?} is not one of {}",
                spec.non_linearity,
                NonLinearity::NAMES
            ),
        })?;
        let down = spec.down_sample(hidden);
        let norm_before = match spec.ln_before {
            true => Some(LayerNorm::new(&(p / "adapter_norm_before"), hidden, ADAPTER_LN_EPS)?),
            false => None,
        };
        let down_path = p / "adapter_down" / if spec.ln_before { "1" } else { "0" };
        let up_path = p / "adapter_up";
        let zeros = Init::Const(0.0);
        let (down_weight, up_weight) = match spec.init_weights {
            InitWeights::Bert => (
                down_path.f_var("weight", &[down, hidden], Init::Randn { mean: 0.0, stdev: 0.02 })?,
                up_path.f_var("weight", &[hidden, down], Init::Randn { mean: 0.0, stdev: 0.02 })?,
            ),
            InitWeights::Houlsby => {
                let d = down_path.f_var("weight", &[down, hidden], zeros)?;
                trunc_normal(&d, 0.0, 1e-2, -2e-2, 2e-2)?;
                let u = up_path.f_var("weight", &[hidden, down], zeros)?;
                trunc_normal(&u, 0.0, 1e-2, -2e-2, 2e-2)?;
                (d, u)
            }
            InitWeights::MamAdapter => {
                let bound = 1.0 / (hidden as f64).sqrt();
                (
                    down_path.f_var("weight", &[down, hidden], Init::Uniform { lo: -bound, up: bound })?,
                    up_path.f_var("weight", &[hidden, down], zeros)?,
                )
            }
        };
        let down_bias = down_path.f_var("bias", &[down], zeros)?;
        let up_bias = up_path.f_var("bias", &[hidden], zeros)?;
        let norm_after = match spec.ln_after {
            true => Some(LayerNorm::new(&(p / "adapter_norm_after"), hidden, ADAPTER_LN_EPS)?),
            false => None,
        };
        Ok(Bottleneck {
            name: spec.name.clone(),
            norm_before,
            down_weight,
            down_bias,
            non_linearity,
            up_weight,
            up_bias,
            norm_after,
            scaling: spec.scaling,
            dropout: Dropout { p: spec.dropout },
            original_ln_before: spec.original_ln_before,
            original_ln_after: spec.original_ln_after,
            residual_before_ln: spec.residual_before_ln,
            adapter_residual_before_ln: spec.adapter_residual_before_ln,
        })
    }

    /// The sublayer's output `h` (after its dropout), its input `x` and its LayerNorm →
    /// the block's output (see the module doc).
    pub fn forward_t(&self, h: &Tensor, x: &Tensor, layer_norm: &LayerNorm, train: bool) -> Result<Tensor> {
        let mut hidden = h.shallow_clone();
        let mut residual = match self.residual_before_ln {
            ResidualBeforeLn::Bool(true) => Some(h.shallow_clone()),
            _ => None,
        };
        if self.original_ln_before {
            hidden = hidden.f_add(x)?;
            if let ResidualBeforeLn::PostAdd(_) = self.residual_before_ln {
                residual = Some(hidden.shallow_clone());
            }
            hidden = layer_norm.forward(&hidden)?;
        }
        if self.residual_before_ln == ResidualBeforeLn::Bool(false) {
            residual = Some(hidden.shallow_clone());
        }
        let residual = residual.ok_or_else(|| ModelError::Surgery {
            message: "residual_before_ln = \"post_add\" needs original_ln_before = true".into(),
        })?;
        let input = match &self.norm_before {
            Some(ln) => ln.forward(&hidden)?,
            None => hidden,
        };
        let down = self
            .non_linearity
            .forward(&linear_op(&input, &self.down_weight, Some(&self.down_bias))?)?;
        let mut up = linear_op(&down, &self.up_weight, Some(&self.up_bias))?;
        if self.scaling != 1.0 {
            up = up.f_mul_scalar(self.scaling)?;
        }
        let mut out = self.dropout.forward_t(&up, train)?;
        let residual = residual.f_to_kind(out.kind())?;
        if self.adapter_residual_before_ln {
            out = out.f_add(&residual)?;
        }
        if let Some(ln) = &self.norm_after {
            out = ln.forward(&out)?;
        }
        if !self.adapter_residual_before_ln {
            out = out.f_add(&residual)?;
        }
        if self.original_ln_after {
            out = layer_norm.forward(&out.f_add(x)?)?;
        }
        Ok(out)
    }

    /// The library's `Adapter` node.
    fn module_node(&self) -> ModuleNode {
        let (hidden, down) = (self.down_weight.size()[1], self.down_weight.size()[0]);
        let mut sequential = Vec::new();
        if let Some(ln) = &self.norm_before {
            sequential.push(ln.module_node());
        }
        sequential.push(linear_node("Linear", hidden, down, true));
        sequential.push(self.non_linearity.module_node());
        let sequential: Vec<(String, ModuleNode)> = sequential
            .into_iter()
            .enumerate()
            .map(|(i, m)| (i.to_string(), m))
            .collect();
        let mut children: Vec<(String, ModuleNode)> = Vec::new();
        if let Some(ln) = &self.norm_before {
            children.push(("adapter_norm_before".into(), ln.module_node()));
        }
        children.push(("non_linearity".into(), self.non_linearity.module_node()));
        children.push((
            "adapter_down".into(),
            ModuleNode {
                class: "Sequential".into(),
                extra: String::new(),
                children: sequential,
                is_list: false,
            },
        ));
        children.push(("adapter_up".into(), linear_node("Linear", down, hidden, true)));
        if let Some(ln) = &self.norm_after {
            children.push(("adapter_norm_after".into(), ln.module_node()));
        }
        children.push(("dropout".into(), self.dropout.module_node()));
        ModuleNode {
            class: "Adapter".into(),
            extra: String::new(),
            children,
            is_list: false,
        }
    }

    /// `(adapters): ModuleDict((<name>): Adapter(…))`, what the library adds to a module.
    pub fn adapters_node(adapter: Option<&Bottleneck>) -> ModuleNode {
        let children = adapter
            .map(|a| vec![(a.name.clone(), a.module_node())])
            .unwrap_or_default();
        ModuleNode {
            class: "ModuleDict".into(),
            extra: String::new(),
            children,
            is_list: false,
        }
    }

    /// DistilBERT's `BottleneckLayer` node (`attention_adapters`, `output_adapters`).
    pub fn layer_node(adapter: Option<&Bottleneck>) -> ModuleNode {
        ModuleNode::new(
            "BottleneckLayer",
            vec![
                ("adapters", Bottleneck::adapters_node(adapter)),
                ("adapter_fusion_layer", ModuleNode::new("ModuleDict", vec![])),
            ],
        )
    }
}

/// Adds the spec's adapters to every layer not in `leave_out`: after attention
/// (`mh_adapter`) and after the feed-forward (`output_adapter`).
pub fn inject_bottleneck(model: &mut LoadedModel, spec: &BottleneckSpec) -> Result<()> {
    let hidden = model.config.hidden_size();
    let reduction_factor = spec.reduction_factor(hidden);
    if !(reduction_factor > 0.0 && reduction_factor.is_finite()) {
        return Err(ModelError::Surgery {
            message: format!("reduction_factor must be positive, got {reduction_factor}"),
        });
    }
    if !spec.mh_adapter && !spec.output_adapter {
        return Err(ModelError::Surgery {
            message: "mh_adapter and output_adapter are both false: no adapter to add".into(),
        });
    }
    let root = model.vs.root();
    let keep = |i: usize| !spec.leave_out.contains(&(i as i64));
    match &mut model.network {
        Network::Bert { bert, .. } => {
            for (i, layer) in bert.layer.iter_mut().enumerate().filter(|(i, _)| keep(*i)) {
                let base = &root / "bert" / "encoder" / "layer" / i;
                if spec.mh_adapter {
                    let p = &base / "attention" / "output" / "adapters" / spec.name.as_str();
                    layer.attention_output.adapter = Some(Bottleneck::new(&p, hidden, spec)?);
                }
                if spec.output_adapter {
                    let p = &base / "output" / "adapters" / spec.name.as_str();
                    layer.output.adapter = Some(Bottleneck::new(&p, hidden, spec)?);
                }
            }
        }
        Network::DistilBert { distilbert, .. } => {
            for (i, block) in distilbert.layer.iter_mut().enumerate().filter(|(i, _)| keep(*i)) {
                let base = &root / "distilbert" / "transformer" / "layer" / i;
                if spec.mh_adapter {
                    let p = &base / "attention_adapters" / "adapters" / spec.name.as_str();
                    block.attention_adapters = Some(Bottleneck::new(&p, hidden, spec)?);
                }
                if spec.output_adapter {
                    let p = &base / "output_adapters" / "adapters" / spec.name.as_str();
                    block.output_adapters = Some(Bottleneck::new(&p, hidden, spec)?);
                }
            }
        }
    }
    Ok(())
}

/// The tensors of the library's `adapter.safetensors`: the adapter's parameters under
/// their names, with `adapter_norm_before.*` also as `adapter_down.0.*` (torch's state dict
/// lists a module registered twice under both names, and the library saves that).
pub fn adapter_tensors(model: &LoadedModel, spec: &BottleneckSpec) -> HashMap<String, Tensor> {
    let mut out = HashMap::new();
    for (name, t) in model.vs.variables() {
        if !spec.owns(&name) {
            continue;
        }
        if let Some((module, field)) = name.rsplit_once(".adapter_norm_before.") {
            out.insert(format!("{module}.adapter_down.0.{field}"), t.detach());
        }
        out.insert(name, t.detach());
    }
    out
}

/// The version of the library whose layout [`save_adapter`] writes.
pub const LIBRARY_VERSION: &str = "adapters.1.3.0";

/// A number as JSON, whole numbers without a fraction (as Python writes `16`).
pub fn number(x: f64) -> serde_json::Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        (x as i64).into()
    } else {
        x.into()
    }
}

/// `adapter_config.json` as the library writes it (`BnConfig.to_dict()` and the model's
/// meta data); `model_name` is what the model was loaded from.
pub fn adapter_config(model: &LoadedModel, spec: &BottleneckSpec, model_name: &str) -> serde_json::Value {
    let residual_before_ln = match spec.residual_before_ln {
        ResidualBeforeLn::Bool(b) => serde_json::Value::Bool(b),
        ResidualBeforeLn::PostAdd(_) => "post_add".into(),
    };
    serde_json::json!({
        "config": {
            "adapter_residual_before_ln": spec.adapter_residual_before_ln,
            "cross_adapter": false,
            "dropout": spec.dropout,
            "factorized_phm_W": true,
            "factorized_phm_rule": false,
            "hypercomplex_nonlinearity": "glorot-uniform",
            "init_weights": spec.init_weights,
            "init_weights_seed": null,
            "inv_adapter": null,
            "inv_adapter_reduction_factor": null,
            "is_parallel": false,
            "learn_phm": true,
            "leave_out": spec.leave_out,
            "ln_after": spec.ln_after,
            "ln_before": spec.ln_before,
            "mh_adapter": spec.mh_adapter,
            "non_linearity": spec.non_linearity,
            "original_ln_after": spec.original_ln_after,
            "original_ln_before": spec.original_ln_before,
            "output_adapter": spec.output_adapter,
            "phm_bias": true,
            "phm_c_init": "normal",
            "phm_dim": 4,
            "phm_init_range": 0.0001,
            "phm_layer": false,
            "phm_rank": 1,
            "reduction_factor": number(spec.reduction_factor(model.config.hidden_size())),
            "residual_before_ln": residual_before_ln,
            "scaling": spec.scaling,
            "shared_W_phm": false,
            "shared_phm_rule": true,
            "stochastic_depth": 0.0,
            "use_gating": false,
        },
        "hidden_size": model.config.hidden_size(),
        "model_class": model.model_class(),
        "model_name": model_name,
        "model_type": model.config.model_type(),
        "name": spec.name,
        "version": LIBRARY_VERSION,
    })
}

/// `head_config.json` for the library's static head.
fn head_config(model: &LoadedModel, model_name: &str) -> serde_json::Value {
    serde_json::json!({
        "config": null,
        "hidden_size": model.config.hidden_size(),
        "label2id": model.config.to_json()["label2id"],
        "model_class": model.model_class(),
        "model_name": model_name,
        "model_type": model.config.model_type(),
        "name": null,
        "num_labels": model.config.num_labels,
        "version": LIBRARY_VERSION,
    })
}

fn write_json(path: &std::path::Path, value: &serde_json::Value) -> Result<()> {
    let json = serde_json::to_string_pretty(value).expect("JSON values serialize");
    std::fs::write(path, json + "\n").map_err(|e| ModelError::io(path, e))
}

/// Writes the library's `save_adapter(dir, name, use_safetensors=True)` files:
/// `adapter_config.json`, `adapter.safetensors`, and, for the trained modules outside the
/// encoder (the library's static head), `head_config.json` + `model_head.safetensors`;
/// trained modules inside the encoder (BERT's pooler, which the library does not train)
/// go to `modules_to_save.safetensors` under their model names.
pub fn save_adapter(model: &LoadedModel, spec: &BottleneckSpec, model_name: &str, dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    super::checkpoint::save(&adapter_tensors(model, spec), &dir.join("adapter.safetensors"))?;
    write_json(
        &dir.join("adapter_config.json"),
        &adapter_config(model, spec, model_name),
    )?;
    let base = model.network.base_prefix();
    let (mut head, mut inside) = (HashMap::new(), HashMap::new());
    for (name, t) in model.trainable_parameters() {
        if spec.owns(&name) {
            continue;
        }
        let into = if name.starts_with(base) { &mut inside } else { &mut head };
        into.insert(name, t.detach());
    }
    if !head.is_empty() {
        super::checkpoint::save(&head, &dir.join("model_head.safetensors"))?;
        write_json(&dir.join("head_config.json"), &head_config(model, model_name))?;
    }
    if !inside.is_empty() {
        super::checkpoint::save(&inside, &dir.join("modules_to_save.safetensors"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_as_python_floor_divides() {
        // int(768 // 16) = 48; int(32 // 6.4) = 4 (not floor(32 / 6.4) = 5); at least 1.
        assert_eq!(py_floordiv(768.0, 16.0), 48.0);
        assert_eq!(py_floordiv(32.0, 32.0 / 5.0), 4.0);
        assert_eq!(py_floordiv(32.0, 32.0 / 7.0), 7.0);
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(1.0, 0.3), 3.0);
        let spec = |rf| BottleneckSpec {
            name: "a".into(),
            mh_adapter: true,
            output_adapter: true,
            size: BottleneckSize::ReductionFactor(rf),
            non_linearity: "relu".into(),
            original_ln_before: false,
            original_ln_after: true,
            residual_before_ln: ResidualBeforeLn::Bool(true),
            adapter_residual_before_ln: false,
            ln_before: false,
            ln_after: false,
            init_weights: InitWeights::Bert,
            scaling: 1.0,
            dropout: 0.0,
            leave_out: vec![],
            modules_to_save: None,
        };
        assert_eq!(spec(64.0).down_sample(32), 1);
        assert_eq!(spec(0.5).down_sample(32), 64);
    }

    #[test]
    fn initialisations_are_the_librarys() {
        let _torch = crate::train::exclusive_torch();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let spec = |init| BottleneckSpec {
            name: "a".into(),
            mh_adapter: true,
            output_adapter: true,
            size: BottleneckSize::ReductionFactor(4.0),
            non_linearity: "swish".into(),
            original_ln_before: false,
            original_ln_after: true,
            residual_before_ln: ResidualBeforeLn::Bool(true),
            adapter_residual_before_ln: false,
            ln_before: false,
            ln_after: false,
            init_weights: init,
            scaling: 1.0,
            dropout: 0.0,
            leave_out: vec![],
            modules_to_save: None,
        };
        let std = |t: &Tensor| t.std(true).double_value(&[]);
        let max = |t: &Tensor| t.abs().max().double_value(&[]);
        let bert = Bottleneck::new(&(vs.root() / "bert"), 512, &spec(InitWeights::Bert)).unwrap();
        assert!((std(&bert.down_weight) - 0.02).abs() < 1e-3);
        assert_eq!(max(&bert.down_bias) + max(&bert.up_bias), 0.0);
        let houlsby = Bottleneck::new(&(vs.root() / "houlsby"), 512, &spec(InitWeights::Houlsby)).unwrap();
        // N(0, 0.01) cut at two standard deviations: std 0.0088, nothing beyond 0.02.
        assert!(max(&houlsby.up_weight) <= 0.02);
        assert!(
            (std(&houlsby.down_weight) - 0.0088).abs() < 5e-4,
            "{}",
            std(&houlsby.down_weight)
        );
        let mam = Bottleneck::new(&(vs.root() / "mam"), 512, &spec(InitWeights::MamAdapter)).unwrap();
        assert_eq!(max(&mam.up_weight), 0.0);
        let bound = 1.0 / 512f64.sqrt();
        assert!(max(&mam.down_weight) <= bound && max(&mam.down_weight) > 0.9 * bound);
    }
}
