//! Building blocks with PyTorch semantics and PyTorch's printed form.
//!
//! Every layer owns its parameters as tensors registered in the model's `VarStore` under
//! their Hugging Face names (`…attention.q_lin.weight`). Linear layers are held as
//! `Box<dyn LinearLayer>` so that later code (LoRA, IA3, SVD surgery) can wrap or replace
//! any of them by name, see [`LinearLayer`] and `LoadedModel::replace_linear`.

use std::any::Any;
use std::cell::Cell;
use std::fmt::Debug;

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use super::error::Result;
use super::tree::ModuleNode;

thread_local! {
    static AUTOCAST: Cell<Option<Kind>> = const { Cell::new(None) };
    static DROPOUT_MASKS: Cell<DropoutMasks> = const { Cell::new(DropoutMasks::Bits16) };
}

/// Mixed precision on this thread while the guard lives, as `torch.autocast` does: linear
/// layers and attention compute in `kind` (bfloat16), their weights cast from the float32
/// master copies on the way in, so gradients reach those in float32; layer norms, the
/// residual stream and whatever the caller does with the logits stay float32. `None` turns it
/// off for the guard's lifetime.
pub fn autocast(kind: Option<Kind>) -> AutocastGuard {
    AutocastGuard {
        previous: AUTOCAST.replace(kind),
    }
}

/// Restores the previous autocast setting when dropped.
#[must_use = "autocast lasts only while the guard lives"]
pub struct AutocastGuard {
    previous: Option<Kind>,
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        AUTOCAST.set(self.previous);
    }
}

/// How [`Dropout`] draws its masks in training mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropoutMasks {
    /// Sixteen random bits per element, four elements to one 64-bit draw, kept when they are
    /// at least `round(p · 65536)`: `p` is quantised to a multiple of 1/65536 and the kept
    /// values are scaled by the inverse of the quantised keep rate, so the expectation is
    /// unchanged. A fraction of a float Bernoulli draw per element.
    #[default]
    Bits16,
    /// `torch.nn.functional.dropout`: one float Bernoulli draw per element, as transformers.
    Torch,
}

impl DropoutMasks {
    pub fn is_default(&self) -> bool {
        *self == DropoutMasks::default()
    }
}

/// Dropout on this thread draws its masks as `masks` says while the guard lives.
pub fn dropout_masks(masks: DropoutMasks) -> DropoutMasksGuard {
    DropoutMasksGuard {
        previous: DROPOUT_MASKS.replace(masks),
    }
}

/// Restores the previous mask scheme when dropped.
#[must_use = "the mask scheme lasts only while the guard lives"]
pub struct DropoutMasksGuard {
    previous: DropoutMasks,
}

impl Drop for DropoutMasksGuard {
    fn drop(&mut self) {
        DROPOUT_MASKS.set(self.previous);
    }
}

/// The kind matmuls run in: the autocast kind, else `native` (the tensors' own).
pub(crate) fn compute_kind(native: Kind) -> Kind {
    AUTOCAST.get().unwrap_or(native)
}

/// `t` in the autocast kind (a no-op outside autocast or for a tensor already in it).
pub(crate) fn autocast_input(t: &Tensor) -> Result<Tensor> {
    match AUTOCAST.get() {
        Some(kind) if t.kind() != kind && t.is_floating_point() => Ok(t.f_to_kind(kind)?),
        _ => Ok(t.shallow_clone()),
    }
}

/// `xs Wᵀ + b`, in the autocast kind when one is set.
pub fn linear_op(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    if AUTOCAST.get().is_none() {
        return Ok(xs.f_linear(weight, bias)?);
    }
    let bias = bias.map(autocast_input).transpose()?;
    Ok(autocast_input(xs)?.f_linear(&autocast_input(weight)?, bias.as_ref())?)
}

/// The node `print(model)` shows for a linear layer of class `class`.
pub(crate) fn linear_node(class: &str, in_features: i64, out_features: i64, bias: bool) -> ModuleNode {
    ModuleNode::leaf(
        class,
        format!(
            "in_features={in_features}, out_features={out_features}, bias={}",
            if bias { "True" } else { "False" }
        ),
    )
}

/// A linear map `y = x Wᵀ + b` as a replaceable module.
///
/// Implementations other than [`Linear`] (adapters) live in later modules; they receive
/// the original layer and keep it (or its weights) as they need.
pub trait LinearLayer: Debug + Send {
    /// Applies the layer; `train` switches dropout-like behaviour inside adapters.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;
    fn in_features(&self) -> i64;
    fn out_features(&self) -> i64;
    /// The node `print(model)` shows for this layer.
    fn module_node(&self) -> ModuleNode;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// `torch.nn.Linear`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// Creates `weight [out, in]` ~ N(0, std) and a zero `bias` under `p`, as transformers'
    /// `_init_weights` does for these models.
    pub fn new(p: &nn::Path, in_features: i64, out_features: i64, std: f64) -> Result<Linear> {
        let weight = p.f_var(
            "weight",
            &[out_features, in_features],
            Init::Randn { mean: 0.0, stdev: std },
        )?;
        let bias = Some(p.f_zeros("bias", &[out_features])?);
        Ok(Linear { weight, bias })
    }
}

impl LinearLayer for Linear {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        linear_op(xs, &self.weight, self.bias.as_ref())
    }
    fn in_features(&self) -> i64 {
        self.weight.size()[1]
    }
    fn out_features(&self) -> i64 {
        self.weight.size()[0]
    }
    fn module_node(&self) -> ModuleNode {
        linear_node("Linear", self.in_features(), self.out_features(), self.bias.is_some())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// A linear layer slot: `Box<dyn LinearLayer>` plus a helper constructor.
pub type LinearSlot = Box<dyn LinearLayer>;

pub(crate) fn linear(p: &nn::Path, i: i64, o: i64, std: f64) -> Result<LinearSlot> {
    Ok(Box::new(Linear::new(p, i, o, std)?))
}

/// `torch.nn.Embedding`.
#[derive(Debug)]
pub struct Embedding {
    pub weight: Tensor,
    pub padding_idx: Option<i64>,
}

impl Embedding {
    pub fn new(p: &nn::Path, num: i64, dim: i64, std: f64, padding_idx: Option<i64>) -> Result<Self> {
        let weight = p.f_var("weight", &[num, dim], Init::Randn { mean: 0.0, stdev: std })?;
        if let Some(idx) = padding_idx.filter(|&i| i >= 0 && i < num) {
            // transformers zeroes the padding row at init.
            tch::no_grad(|| -> Result<(), tch::TchError> {
                let mut row = weight.f_get(idx)?;
                let _ = row.f_zero_()?;
                Ok(())
            })?;
        }
        Ok(Embedding { weight, padding_idx })
    }

    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(
            &self.weight,
            ids,
            self.padding_idx.unwrap_or(-1),
            false,
            false,
        )?)
    }

    pub fn module_node(&self) -> ModuleNode {
        let s = self.weight.size();
        let extra = match self.padding_idx {
            Some(i) => format!("{}, {}, padding_idx={i}", s[0], s[1]),
            None => format!("{}, {}", s[0], s[1]),
        };
        ModuleNode::leaf("Embedding", extra)
    }
}

/// `torch.nn.LayerNorm` over the last dimension.
#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(p: &nn::Path, dim: i64, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: p.f_ones("weight", &[dim])?,
            bias: p.f_zeros("bias", &[dim])?,
            eps,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dim = self.weight.size()[0];
        // Under autocast a lower-precision input is normalised in the weights' float32.
        let xs = if xs.kind() == self.weight.kind() {
            xs.shallow_clone()
        } else {
            xs.f_to_kind(self.weight.kind())?
        };
        Ok(xs.f_layer_norm([dim], Some(&self.weight), Some(&self.bias), self.eps, true)?)
    }

    pub fn module_node(&self) -> ModuleNode {
        ModuleNode::leaf(
            "LayerNorm",
            format!(
                "({},), eps={}, elementwise_affine=True",
                self.weight.size()[0],
                py_float(self.eps)
            ),
        )
    }
}

/// `torch.nn.Dropout`: active only when `train` is true.
#[derive(Debug, Clone, Copy)]
pub struct Dropout {
    pub p: f64,
}

impl Dropout {
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(xs.shallow_clone());
        }
        match DROPOUT_MASKS.get() {
            DropoutMasks::Torch => Ok(xs.f_dropout(self.p, train)?),
            DropoutMasks::Bits16 => bits16_dropout(xs, self.p),
        }
    }

    pub fn module_node(&self) -> ModuleNode {
        ModuleNode::leaf("Dropout", format!("p={}, inplace=False", py_float(self.p)))
    }
}

/// [`DropoutMasks::Bits16`]: uniform 64-bit draws (`random_` over the whole `int64` range)
/// reinterpreted as four `int16` lanes each, compared with the quantised threshold; the
/// mask, scaled in `xs`'s kind as torch's own dropout scales it, is what autograd keeps.
fn bits16_dropout(xs: &Tensor, p: f64) -> Result<Tensor> {
    const LANES: f64 = 65536.0;
    let dropped = (p * LANES).round();
    if dropped >= LANES {
        return Ok(xs.f_zeros_like()?);
    }
    let numel = xs.numel() as i64;
    let mut words = Tensor::f_empty([(numel + 3) / 4], (Kind::Int64, xs.device()))?;
    let _ = words.f_random_from_(i64::MIN, None)?;
    let lanes = words
        .f_view_dtype(Kind::Int16)?
        .f_narrow(0, 0, numel)?
        .f_view(xs.size().as_slice())?;
    let keep = lanes.f_ge(dropped as i64 + i64::from(i16::MIN))?;
    let mask = keep.f_to_kind(xs.kind())?.f_mul_scalar(LANES / (LANES - dropped))?;
    Ok(xs.f_mul(&mask)?)
}

/// transformers' `ACT2FN` activations used by these models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `"gelu"`: exact (erf) GELU, `GELUActivation`.
    Gelu,
    /// `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`: tanh approximation.
    GeluTanh(&'static str),
    Relu,
}

impl Activation {
    pub fn from_name(name: &str) -> Option<Activation> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" => Activation::GeluTanh("NewGELUActivation"),
            "gelu_pytorch_tanh" => Activation::GeluTanh("PytorchGELUTanh"),
            "gelu_fast" => Activation::GeluTanh("FastGELUActivation"),
            "relu" => Activation::Relu,
            _ => return None,
        })
    }

    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Gelu => xs.f_gelu("none")?,
            Activation::GeluTanh(_) => xs.f_gelu("tanh")?,
            Activation::Relu => xs.f_relu()?,
        })
    }

    pub fn module_node(&self) -> ModuleNode {
        let class = match self {
            Activation::Gelu => "GELUActivation",
            Activation::GeluTanh(c) => c,
            Activation::Relu => "ReLU",
        };
        ModuleNode::leaf(class, "")
    }
}

/// Formats a float as Python's `repr(float)` does for the usual values (0.1, 1e-12, 0.0).
pub(crate) fn py_float(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e16) {
        // Python: 1e-12, 1.5e-05
        let s = format!("{x:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { "-" } else { "+" };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let s = format!("{x}");
    if s.contains('.') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// Scaled dot-product attention of `q`, `k`, `v` (`[batch, heads, seq, head_dim]`) under the
/// additive `mask`, with dropout on the attention probabilities when training.
///
/// Without dropout (evaluation, or a model without attention dropout) it is libtorch's fused
/// `scaled_dot_product_attention` (flash attention on CPU): the same result, much faster at
/// long sequences, without materialising the `[batch, heads, seq, seq]` scores. With dropout
/// it is transformers' eager attention (libtorch's fused kernels do not take dropout on CPU:
/// they fall back to a slower one). Under autocast it all runs in the autocast kind.
/// One layer's key and value prefixes, `[batch, heads, virtual tokens, head_dim]` each:
/// prefix tuning's `past_key_values` (see `super::prefix`), attended to before the input's
/// own keys and values.
#[derive(Debug)]
pub struct KvPrefix {
    pub keys: Tensor,
    pub values: Tensor,
}

impl KvPrefix {
    /// `k` and `v` (`[batch, heads, seq, head_dim]`) with the prefix in front, as transformers'
    /// cache update concatenates the past before the new keys.
    pub(crate) fn prepend(prefix: Option<&KvPrefix>, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let Some(prefix) = prefix else { return Ok((k, v)) };
        let keys = Tensor::f_cat(&[prefix.keys.f_to_kind(k.kind())?, k], 2)?;
        let values = Tensor::f_cat(&[prefix.values.f_to_kind(v.kind())?, v], 2)?;
        Ok((keys, values))
    }
}

pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    dropout: &Dropout,
    train: bool,
) -> Result<Tensor> {
    let head_dim = *q.size().last().expect("4-d query") as f64;
    let (q, k, v, mask) = (
        autocast_input(q)?,
        autocast_input(k)?,
        autocast_input(v)?,
        autocast_input(mask)?,
    );
    let (q, k, v, mask) = (&q, &k, &v, &mask);
    if !train || dropout.p == 0.0 {
        return Ok(Tensor::f_scaled_dot_product_attention(
            q,
            k,
            v,
            Some(mask),
            0.0,
            false,
            None,
            false,
        )?);
    }
    let scores = q
        .f_matmul(&k.f_transpose(2, 3)?)?
        .f_mul_scalar(1.0 / head_dim.sqrt())?
        .f_add(mask)?;
    let probs = dropout.forward_t(&scores.f_softmax(-1, scores.kind())?, train)?;
    Ok(probs.f_matmul(v)?)
}

/// Additive attention mask `[batch, 1, 1, seq]`: 0 where `mask` is 1, the dtype's most
/// negative value where it is 0 (transformers' `_prepare_4d_attention_mask`).
pub(crate) fn additive_mask(mask: &Tensor, kind: Kind) -> Result<Tensor> {
    let m = mask.f_to_kind(kind)?.f_unsqueeze(1)?.f_unsqueeze(1)?;
    let min = match kind {
        Kind::Double => f64::MIN,
        Kind::Half => -65504.0,
        Kind::BFloat16 => -3.3895313892515355e38,
        _ => f32::MIN as f64,
    };
    Ok(m.f_neg()?.f_add_scalar(1.0)?.f_mul_scalar(min)?)
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn floats_print_as_python_repr() {
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(1e-12), "1e-12");
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(2.5e-7), "2.5e-07");
        assert_eq!(py_float(1.0), "1.0");
    }
}

#[cfg(test)]
mod dropout_tests {
    use super::*;

    fn train_dropout(xs: &Tensor, p: f64, masks: DropoutMasks) -> Tensor {
        let _masks = dropout_masks(masks);
        Dropout { p }.forward_t(xs, true).unwrap()
    }

    #[test]
    fn bits16_masks_keep_the_quantised_rate_and_scale_the_kept_values() {
        tch::manual_seed(7);
        let xs = Tensor::ones([3, 7, 4099], (Kind::Float, tch::Device::Cpu));
        for p in [0.1, 0.5, 0.9] {
            let ys = train_dropout(&xs, p, DropoutMasks::Bits16);
            let kept = ys.ne(0.0);
            let keep_rate = f64::try_from(kept.to_kind(Kind::Double).mean(Kind::Double)).unwrap();
            let quantised_keep = 1.0 - (p * 65536.0).round() / 65536.0;
            // 86k draws: three standard deviations of the binomial rate are under 0.006.
            assert!((keep_rate - (1.0 - p)).abs() < 0.006, "p {p}: kept {keep_rate}");
            let values = ys.masked_select(&kept);
            let scale = 1.0 / quantised_keep;
            let spread = f64::try_from((values - scale).abs().max()).unwrap();
            assert!(spread < 1e-6, "p {p}: kept values are not 1/(1-p)");
        }
    }

    #[test]
    fn bits16_lanes_are_independent_of_their_position_in_the_draw() {
        // Four lanes share one 64-bit draw; a sign bit lost in any lane would show as a
        // keep rate far from 1 - p in that lane.
        tch::manual_seed(11);
        let xs = Tensor::ones([4 * 40_000], (Kind::Float, tch::Device::Cpu));
        let kept = train_dropout(&xs, 0.5, DropoutMasks::Bits16)
            .ne(0.0)
            .to_kind(Kind::Double)
            .view([-1, 4]);
        let per_lane = Vec::<f64>::try_from(kept.mean_dim(0, false, Kind::Double)).unwrap();
        for (lane, rate) in per_lane.iter().enumerate() {
            assert!((rate - 0.5).abs() < 0.01, "lane {lane} keeps {rate}");
        }
    }

    #[test]
    fn bits16_masks_follow_the_seed_and_carry_the_gradient() {
        let _torch = crate::train::exclusive_torch();
        let xs = Tensor::randn([5, 33], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        tch::manual_seed(3);
        let a = train_dropout(&xs, 0.3, DropoutMasks::Bits16);
        tch::manual_seed(3);
        let b = train_dropout(&xs, 0.3, DropoutMasks::Bits16);
        assert!(a.equal(&b), "the same seed draws the same mask");
        a.sum(Kind::Float).backward();
        let grad = xs.grad();
        let expected = a.detach().ne(0.0).to_kind(Kind::Float) * (65536.0 / (65536.0 - (0.3f64 * 65536.0).round()));
        assert!(
            grad.allclose(&expected, 1e-6, 1e-6, false),
            "the gradient is the scaled mask"
        );
    }

    #[test]
    fn torch_masks_are_torch_dropout_and_eval_is_the_identity() {
        // No other test may draw between the seeding and the dropout.
        let _torch = crate::train::exclusive_torch();
        let xs = Tensor::randn([4, 16], (Kind::Float, tch::Device::Cpu));
        tch::manual_seed(5);
        let ours = train_dropout(&xs, 0.2, DropoutMasks::Torch);
        tch::manual_seed(5);
        assert!(ours.equal(&xs.dropout(0.2, true)));
        assert!(Dropout { p: 0.2 }.forward_t(&xs, false).unwrap().equal(&xs));
    }
}
