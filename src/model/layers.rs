//! Building blocks with PyTorch semantics and PyTorch's printed form.
//!
//! Every layer owns its parameters as tensors registered in the model's `VarStore` under
//! their Hugging Face names (`…attention.q_lin.weight`). Linear layers are held as
//! `Box<dyn LinearLayer>` so that later code (LoRA, IA3, SVD surgery) can wrap or replace
//! any of them by name, see [`LinearLayer`] and `LoadedModel::replace_linear`.

use std::any::Any;
use std::fmt::Debug;

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use super::error::Result;
use super::tree::ModuleNode;

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
        Ok(xs.f_linear(&self.weight, self.bias.as_ref())?)
    }
    fn in_features(&self) -> i64 {
        self.weight.size()[1]
    }
    fn out_features(&self) -> i64 {
        self.weight.size()[0]
    }
    fn module_node(&self) -> ModuleNode {
        ModuleNode::leaf(
            "Linear",
            format!(
                "in_features={}, out_features={}, bias={}",
                self.in_features(),
                self.out_features(),
                if self.bias.is_some() { "True" } else { "False" }
            ),
        )
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
        Ok(xs.f_dropout(self.p, train)?)
    }

    pub fn module_node(&self) -> ModuleNode {
        ModuleNode::leaf("Dropout", format!("p={}, inplace=False", py_float(self.p)))
    }
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
/// `scaled_dot_product_attention` (flash attention on CPU): the same result, faster on long
/// inputs, as it never materialises the `[batch, heads, seq, seq]` scores (measured in
/// docs/performance.md). With dropout it is
/// transformers' eager attention, so training draws its dropout masks exactly as before
/// (libtorch's fused kernels do not take dropout on CPU: they fall back to a slower one).
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    dropout: &Dropout,
    train: bool,
) -> Result<Tensor> {
    let head_dim = *q.size().last().expect("4-d query") as f64;
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
