//! 4-bit NormalFloat (Dettmers et al. 2023, QLoRA) as bitsandbytes stores it: each block of
//! 64 weights (row-major) keeps its absolute maximum and one 4-bit index per weight into the
//! 16-value NF4 code book, two indices a byte (the first in the high nibble). With double
//! quantization the block maxima are themselves quantized: their mean is subtracted and the
//! rest stored as 8-bit indices into bitsandbytes' signed dynamic map, in blocks of 256 with
//! one float32 maximum each. [`Nf4Linear`] dequantizes its weight for every matmul.
//!
//! Rounding is bitsandbytes' (`quantize_4bit`, `quantize_blockwise`): scale by the block
//! maximum, clamp to [−1, 1], take the nearest code (midpoints as bounds). The 4-bit indices
//! are bitsandbytes' to the byte; for the 8-bit block maxima its CPU kernel's approximate
//! binary search sometimes lands one code off the nearest, which this does not copy
//! (scripts/check_nf4.py counts those and checks ours is the nearer).

use std::any::Any;

use tch::{Kind, Tensor};

use super::error::{ModelError, Result};
use super::layers::{linear_node, linear_op, Linear, LinearLayer};
use super::tree::ModuleNode;
use super::LoadedModel;

/// bitsandbytes' NF4 code book (`get_4bit_type("nf4")`, the QLoRA paper's appendix E).
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// Weights per absmax block (bitsandbytes' default for 4-bit, and the paper's).
pub const BLOCK_SIZE: i64 = 64;
/// Block maxima per second-level block with double quantization.
pub const NESTED_BLOCK_SIZE: i64 = 256;

/// bitsandbytes' `create_dynamic_map(signed=True)`: 256 sorted values in [−1, 1], dense near
/// zero (a decimal exponent and a linear fraction), computed with the same float32 tensor ops.
pub fn dynamic_map() -> Result<Tensor> {
    let mut data: Vec<f64> = Vec::with_capacity(256);
    let max_exponent_bits = 7;
    for i in 0..max_exponent_bits {
        let fraction_items = (1i64 << i) + 1;
        let boundaries = Tensor::f_linspace(0.1, 1.0, fraction_items, (Kind::Float, tch::Device::Cpu))?;
        let means = boundaries
            .f_narrow(0, 0, fraction_items - 1)?
            .f_add(&boundaries.f_narrow(0, 1, fraction_items - 1)?)?
            .f_div_scalar(2.0)?;
        // Python's `10 ** -k` is the double nearest 10⁻ᵏ, which parsing gives.
        let scale: f64 = format!("1e{}", i - (max_exponent_bits - 1)).parse().expect("a number");
        for sign in [1.0, -1.0] {
            let values = means.f_mul_scalar(sign * scale)?;
            data.extend(Vec::<f32>::try_from(&values)?.into_iter().map(f64::from));
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f64::total_cmp);
    Ok(Tensor::from_slice(&data).f_to_kind(Kind::Float)?)
}

/// The index of the nearest code for each value of `scaled` (in [−1, 1]): `bucketize`
/// against the midpoints of the sorted `code`, as bitsandbytes' reference backend does.
fn nearest_code(scaled: &Tensor, code: &Tensor) -> Result<Tensor> {
    let n = code.size()[0];
    let bounds = code
        .f_narrow(0, 0, n - 1)?
        .f_add(&code.f_narrow(0, 1, n - 1)?)?
        .f_div_scalar(2.0)?;
    Ok(scaled.f_bucketize(&bounds, false, false)?)
}

/// How a block is scaled to [−1, 1]: bitsandbytes' 4-bit path multiplies by the reciprocal
/// of the maximum, its CPU 8-bit kernel (the block maxima under double quantization) divides.
#[derive(Clone, Copy)]
enum Scaling {
    Reciprocal,
    Divide,
}

/// Blockwise absmax scaling of flat `values`: (scaled values clamped to [−1, 1], one maximum
/// per block; the last block may be short).
fn blockwise_scale(values: &Tensor, block: i64, scaling: Scaling) -> Result<(Tensor, Tensor)> {
    let n = values.size()[0];
    let blocks = (n + block - 1) / block;
    let padded = values
        .f_constant_pad_nd([0, blocks * block - n])?
        .f_view([blocks, block])?;
    let absmax = padded.f_abs()?.f_amax([1i64].as_slice(), false)?;
    let divisor = absmax.f_clamp_min(1e-38)?.f_unsqueeze(1)?;
    let scaled = match scaling {
        Scaling::Reciprocal => padded.f_mul(&divisor.f_reciprocal()?)?,
        Scaling::Divide => padded.f_div(&divisor)?,
    };
    let scaled = scaled.f_clamp(-1.0, 1.0)?.f_view([-1])?.f_narrow(0, 0, n)?;
    Ok((scaled, absmax))
}

/// `codes` (flat indices) times their block's maximum.
fn blockwise_scale_back(values: &Tensor, absmax: &Tensor, block: i64) -> Result<Tensor> {
    let n = values.size()[0];
    let blocks = absmax.size()[0];
    let padded = values
        .f_constant_pad_nd([0, blocks * block - n])?
        .f_view([blocks, block])?;
    Ok(padded.f_mul(&absmax.f_unsqueeze(1)?)?.f_view([-1])?.f_narrow(0, 0, n)?)
}

/// The block maxima of a 4-bit weight: float32, or 8-bit with their own maxima (double
/// quantization).
#[derive(Debug)]
pub enum BlockMaxima {
    Plain(Tensor),
    Double {
        /// Indices into `code`, one byte per 4-bit block.
        indices: Tensor,
        /// One float32 maximum per [`NESTED_BLOCK_SIZE`] block maxima.
        absmax: Tensor,
        /// The mean subtracted before quantizing.
        offset: f64,
        /// [`dynamic_map`].
        code: Tensor,
    },
}

impl BlockMaxima {
    fn float32(&self) -> Result<Tensor> {
        match self {
            BlockMaxima::Plain(absmax) => Ok(absmax.shallow_clone()),
            BlockMaxima::Double {
                indices,
                absmax,
                offset,
                code,
            } => {
                let values = code.f_index_select(0, &indices.f_to_kind(Kind::Int64)?)?;
                Ok(blockwise_scale_back(&values, absmax, NESTED_BLOCK_SIZE)?.f_add_scalar(*offset)?)
            }
        }
    }

    fn bytes(&self) -> i64 {
        let size = |t: &Tensor| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64;
        match self {
            BlockMaxima::Plain(absmax) => size(absmax),
            // The offset is one float32; the code book is shared by every layer.
            BlockMaxima::Double { indices, absmax, .. } => size(indices) + size(absmax) + 4,
        }
    }
}

/// A weight in NF4: packed indices and the block maxima.
#[derive(Debug)]
pub struct Nf4Weight {
    /// `[ceil(numel / 2), 1]` bytes, as bitsandbytes' `Params4bit` data.
    pub packed: Tensor,
    pub maxima: BlockMaxima,
    pub shape: Vec<i64>,
}

impl Nf4Weight {
    /// Quantizes `weight` (any float kind; computed in float32).
    pub fn quantize(weight: &Tensor, double_quant: bool) -> Result<Nf4Weight> {
        tch::no_grad(|| {
            let flat = weight.f_to_kind(Kind::Float)?.f_flatten(0, -1)?;
            let n = flat.size()[0];
            let code = Tensor::from_slice(&NF4_CODE).f_to_device(weight.device())?;
            let (scaled, absmax) = blockwise_scale(&flat, BLOCK_SIZE, Scaling::Reciprocal)?;
            let indices = nearest_code(&scaled, &code)?
                .f_constant_pad_nd([0, n % 2])?
                .f_view([-1, 2])?;
            let packed = indices
                .f_select(1, 0)?
                .f_mul_scalar(16)?
                .f_add(&indices.f_select(1, 1)?)?
                .f_to_kind(Kind::Uint8)?
                .f_unsqueeze(1)?;
            let maxima = if double_quant {
                let offset = absmax.f_mean(Kind::Float)?.double_value(&[]);
                let centred = absmax.f_sub_scalar(offset)?;
                let (scaled, nested) = blockwise_scale(&centred, NESTED_BLOCK_SIZE, Scaling::Divide)?;
                let code = dynamic_map()?.f_to_device(weight.device())?;
                BlockMaxima::Double {
                    indices: nearest_code(&scaled, &code)?.f_to_kind(Kind::Uint8)?,
                    absmax: nested,
                    // float32 as bitsandbytes keeps it
                    offset: offset as f32 as f64,
                    code,
                }
            } else {
                BlockMaxima::Plain(absmax)
            };
            Ok(Nf4Weight {
                packed,
                maxima,
                shape: weight.size(),
            })
        })
    }

    /// The float32 weight the 4-bit one stands for (`dequantize_4bit`).
    pub fn dequantize(&self) -> Result<Tensor> {
        let numel: i64 = self.shape.iter().product();
        let bytes = self.packed.f_flatten(0, -1)?.f_to_kind(Kind::Int64)?;
        let high = bytes.f_div_scalar_mode(16, "floor")?;
        let low = bytes.f_remainder(16)?;
        let indices = Tensor::f_stack(&[high, low], 1)?.f_view([-1])?.f_narrow(0, 0, numel)?;
        let code = Tensor::from_slice(&NF4_CODE).f_to_device(self.packed.device())?;
        let values = code.f_index_select(0, &indices)?;
        Ok(blockwise_scale_back(&values, &self.maxima.float32()?, BLOCK_SIZE)?.f_view(self.shape.as_slice())?)
    }

    /// Bytes this weight occupies: the packed indices and the block maxima.
    pub fn bytes(&self) -> i64 {
        self.packed.numel() as i64 + self.maxima.bytes()
    }

    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// bitsandbytes' `Linear4bit`: a frozen NF4 weight, dequantized for each matmul, and a
/// float32 bias.
#[derive(Debug)]
pub struct Nf4Linear {
    pub weight: Nf4Weight,
    pub bias: Option<Tensor>,
}

impl Nf4Linear {
    /// Quantizes a plain layer's weight; the bias stays as it is.
    pub fn from_linear(linear: &Linear, double_quant: bool) -> Result<Nf4Linear> {
        Ok(Nf4Linear {
            weight: Nf4Weight::quantize(&linear.weight, double_quant)?,
            bias: linear.bias.as_ref().map(|b| b.shallow_clone()),
        })
    }
}

impl LinearLayer for Nf4Linear {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Result<Tensor> {
        let weight = tch::no_grad(|| self.weight.dequantize())?;
        linear_op(xs, &weight, self.bias.as_ref())
    }
    fn in_features(&self) -> i64 {
        self.weight.shape[1]
    }
    fn out_features(&self) -> i64 {
        self.weight.shape[0]
    }
    fn module_node(&self) -> ModuleNode {
        linear_node(
            "Linear4bit",
            self.in_features(),
            self.out_features(),
            self.bias.is_some(),
        )
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Replaces every linear layer of the encoder by an [`Nf4Linear`] (the head stays float32
/// and trainable, as transformers' bitsandbytes integration keeps the classifier), and the
/// float32 weight in the var store by the packed bytes, so that its memory is freed and
/// the parameter still counts. Returns the quantized layers' names.
pub fn quantize_encoder(model: &mut LoadedModel, double_quant: bool) -> Result<Vec<String>> {
    let head = model.network.head_prefixes();
    let names: Vec<String> = model
        .network
        .linears_mut()
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| !head.iter().any(|prefix| format!("{name}.").starts_with(prefix)))
        .collect();
    for name in &names {
        let mut packed = None;
        model.replace_linear(name, |slot| {
            let linear = slot
                .as_any()
                .downcast_ref::<Linear>()
                .ok_or_else(|| ModelError::Surgery {
                    message: format!("{name}: 4-bit quantization needs a plain linear layer"),
                })?;
            let quantized = Nf4Linear::from_linear(linear, double_quant)?;
            packed = Some(quantized.weight.packed.shallow_clone());
            Ok(Box::new(quantized))
        })?;
        let mut variables = model.vs.variables_.lock().expect("the var store lock");
        if let Some(old) = variables
            .named_variables
            .insert(format!("{name}.weight"), packed.expect("set above"))
        {
            let old = old.data_ptr();
            variables.trainable_variables.retain(|var| var.tensor.data_ptr() != old);
        }
    }
    Ok(names)
}

/// The 4-bit layer under `slot`, itself or under a LoRA adapter.
fn quantized_layer(slot: &super::layers::LinearSlot) -> Option<&Nf4Linear> {
    slot.as_any().downcast_ref::<Nf4Linear>().or_else(|| {
        slot.as_any()
            .downcast_ref::<super::adapters::LoraLinear>()
            .and_then(|lora| lora.base.as_any().downcast_ref::<Nf4Linear>())
    })
}

/// The base model's tensors with every 4-bit weight dequantized and the adapters left out:
/// the float32 model a QLoRA adapter was trained on, which transformers loads as is.
pub fn dequantized_base(model: &mut LoadedModel) -> Result<std::collections::HashMap<String, Tensor>> {
    let mut tensors = model.vs.variables();
    tensors.retain(|name, _| !name.contains(".lora_A.") && !name.contains(".lora_B."));
    for (name, slot) in model.network.linears_mut() {
        if let Some(layer) = quantized_layer(slot) {
            tensors.insert(format!("{name}.weight"), tch::no_grad(|| layer.weight.dequantize())?);
        }
    }
    Ok(tensors)
}

/// Bytes of the frozen parameters as stored, and as float32 would store them.
pub fn frozen_bytes(model: &mut LoadedModel) -> (i64, i64) {
    let (mut stored, mut float32) = (0, 0);
    for (_, tensor) in model.named_parameters() {
        if tensor.requires_grad() || tensor.kind() == Kind::Uint8 {
            continue;
        }
        stored += tensor.numel() as i64 * tensor.kind().elt_size_in_bytes() as i64;
        float32 += tensor.numel() as i64 * 4;
    }
    for (_, slot) in model.network.linears_mut() {
        if let Some(layer) = quantized_layer(slot) {
            stored += layer.weight.bytes();
            float32 += layer.weight.numel() * 4;
        }
    }
    (stored, float32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_values_times_block_maxima_survive_exactly() {
        // Each block holds every code value times its maximum, so quantizing is lossless.
        let code = Tensor::from_slice(&NF4_CODE);
        let block = Tensor::cat(&[&code, &code, &code, &code], 0);
        let weight = Tensor::cat(&[block.f_mul_scalar(0.5).unwrap(), block.f_mul_scalar(3.0).unwrap()], 0)
            .f_view([4, 32])
            .unwrap();
        let q = Nf4Weight::quantize(&weight, false).unwrap();
        assert_eq!(q.packed.size(), vec![64, 1]);
        let back = q.dequantize().unwrap();
        assert_eq!(f64::try_from((&back - &weight).abs().max()).unwrap(), 0.0);
    }

    #[test]
    fn error_is_bounded_by_half_the_widest_code_gap_and_double_quant_is_close() {
        // 37 columns: the last block is short, as in the tiny fixtures. No random draws: other
        // tests rely on the global generator's sequence.
        let weight = (Tensor::arange(300 * 37, tch::kind::FLOAT_CPU) * 0.7)
            .sin()
            .view([300, 37])
            * 0.05;
        let plain = Nf4Weight::quantize(&weight, false).unwrap();
        let back = plain.dequantize().unwrap();
        let blocks = (300 * 37 + 63) / 64;
        let maxima = plain.maxima.float32().unwrap();
        assert_eq!(maxima.size(), vec![blocks]);
        // The widest gap in the code book is −0.6962 − (−1) ≈ 0.304.
        let worst = f64::try_from(maxima.max()).unwrap() * 0.304 / 2.0;
        let err = f64::try_from((&back - &weight).abs().max()).unwrap();
        assert!(err <= worst, "{err} > {worst}");
        let double = Nf4Weight::quantize(&weight, true).unwrap();
        assert!(double.bytes() < plain.bytes());
        let d = f64::try_from((double.dequantize().unwrap() - &back).abs().max()).unwrap();
        assert!(
            d < 0.01 * f64::try_from(maxima.max()).unwrap(),
            "double quantization moved a weight by {d}"
        );
        // 4.5 bits a weight without double quantization, ~4.127 with.
        assert_eq!(plain.bytes(), (300 * 37 + 1) / 2 + 4 * blocks);
    }

    #[test]
    fn dynamic_map_is_sorted_and_spans_minus_one_to_one() {
        let map = Vec::<f32>::try_from(dynamic_map().unwrap()).unwrap();
        assert_eq!(map.len(), 256);
        assert!(map.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            (map[0] + 0.993).abs() < 1e-3 && map[255] == 1.0,
            "{} {}",
            map[0],
            map[255]
        );
        assert_eq!(map.iter().filter(|v| **v == 0.0).count(), 1);
    }
}
