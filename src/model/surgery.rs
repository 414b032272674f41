//! Layer surgery: pick linear layers by name ([`super::targets`]' patterns), read and
//! overwrite their weights, re-initialise them, and build truncated-SVD (rank-r)
//! approximations of weight matrices.

use tch::{Kind, Tensor};

use super::error::{ModelError, Result};
use super::layers::Linear;
use super::targets::{self, Pattern};
use super::LoadedModel;

/// [`select`] over `targets`, or over the model type's query and value layers (the lab's
/// and LoRA's default) when none are given.
pub fn select_targets(model: &mut LoadedModel, targets: Option<&[String]>) -> Result<Vec<String>> {
    let patterns = targets::lora_targets(targets, model.config.model_type());
    select(model, &patterns)
}

/// The linear layers matched by `patterns`, in module order. Errors name a pattern that
/// matches nothing, with the layer names available.
pub fn select(model: &mut LoadedModel, patterns: &[String]) -> Result<Vec<String>> {
    if patterns.is_empty() {
        return Err(ModelError::Surgery {
            message: "no target modules given".into(),
        });
    }
    let names = model.linear_names();
    let mut selected = Vec::new();
    for pattern in patterns {
        let compiled = Pattern::new(pattern)?;
        let hits: Vec<&String> = names.iter().filter(|n| compiled.matches(n)).collect();
        if hits.is_empty() {
            return Err(ModelError::UnknownTarget {
                pattern: pattern.clone(),
                model_class: model.model_class(),
                available: targets::module_kinds(&names).join(", "),
            });
        }
        selected.extend(hits.into_iter().cloned());
    }
    selected.sort_by_key(|n| names.iter().position(|m| m == n));
    selected.dedup();
    Ok(selected)
}

/// The plain [`Linear`] behind `name` (an adapter-wrapped layer is refused).
pub fn plain_linear<'a>(model: &'a mut LoadedModel, name: &str) -> Result<&'a Linear> {
    let slot = model.linear_mut(name)?;
    slot.as_any()
        .downcast_ref::<Linear>()
        .ok_or_else(|| ModelError::Surgery {
            message: format!("layer {name} is wrapped by an adapter; surgery needs a plain linear layer"),
        })
}

/// A copy of the weight (and bias) of layer `name`.
pub fn extract(model: &mut LoadedModel, name: &str) -> Result<(Tensor, Option<Tensor>)> {
    let linear = plain_linear(model, name)?;
    Ok((linear.weight.copy(), linear.bias.as_ref().map(Tensor::copy)))
}

/// Overwrites layer `name`'s weight (and bias, when given) in place; shapes must agree.
pub fn replace(model: &mut LoadedModel, name: &str, weight: &Tensor, bias: Option<&Tensor>) -> Result<()> {
    let linear = plain_linear(model, name)?;
    copy_into(&linear.weight, weight, name, "weight")?;
    if let (Some(live), Some(new)) = (&linear.bias, bias) {
        copy_into(live, new, name, "bias")?;
    }
    Ok(())
}

fn copy_into(live: &Tensor, new: &Tensor, name: &str, what: &str) -> Result<()> {
    if live.size() != new.size() {
        return Err(ModelError::Surgery {
            message: format!(
                "{name}.{what}: replacement has shape {:?}, the layer {:?}",
                new.size(),
                live.size()
            ),
        });
    }
    tch::no_grad(|| {
        let mut target = live.shallow_clone();
        target.f_copy_(&new.f_to_device(live.device())?.f_to_kind(live.kind())?)
    })?;
    Ok(())
}

/// Re-initialises layer `name` as transformers initialises a fresh one: weight ~ N(0, std),
/// bias 0 (draws from the global generator: seed it first).
pub fn reinitialise(model: &mut LoadedModel, name: &str, std: f64) -> Result<()> {
    let (weight, bias) = extract(model, name)?;
    let fresh = weight.f_randn_like()?.f_mul_scalar(std)?;
    replace(model, name, &fresh, bias.map(|b| b.zeros_like()).as_ref())
}

/// The best rank-`rank` approximation of `matrix` in Frobenius norm: its truncated SVD
/// `U[:, :r] diag(S[:r]) V[:, :r]ᵀ`, computed in float64.
pub fn low_rank(matrix: &Tensor, rank: i64) -> Result<Tensor> {
    let size = matrix.size();
    let full = *size.iter().min().unwrap_or(&0);
    if size.len() != 2 || rank < 1 || rank > full {
        return Err(ModelError::RankOutOfRange {
            rank,
            shape: size,
            max: full,
        });
    }
    // `Tensor::svd` works on CPU everywhere; `linalg_svd` with an empty driver does not.
    let (u, s, v) = matrix.f_to_kind(Kind::Double)?.f_svd(true, true)?;
    let approx = u
        .f_narrow(1, 0, rank)?
        .f_mul(&s.f_narrow(0, 0, rank)?)?
        .f_matmul(&v.f_narrow(1, 0, rank)?.f_transpose(0, 1)?)?;
    Ok(approx.f_to_kind(matrix.kind())?)
}

/// Parameters of a rank-`rank` factorisation of an `[out, in]` matrix: `rank × (out + in)`.
pub fn low_rank_params(shape: &[i64], rank: i64) -> i64 {
    rank * shape.iter().sum::<i64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_k_matrix_is_recovered_at_rank_k() {
        // Holds the generator so that the dropout tests' seeded draws stay theirs.
        let _torch = crate::train::exclusive_torch();
        tch::manual_seed(0);
        let (a, b) = (
            Tensor::randn([12, 3], tch::kind::FLOAT_CPU),
            Tensor::randn([3, 9], tch::kind::FLOAT_CPU),
        );
        let m = a.matmul(&b);
        let err = |r: i64| f64::try_from((low_rank(&m, r).unwrap() - &m).norm()).unwrap();
        assert!(err(3) < 1e-4, "rank-3 matrix at rank 3: error {}", err(3));
        assert!(err(2) > 1e-2, "rank 2 cannot reproduce a rank-3 matrix");
        assert!(err(9) < 1e-4);
        assert!(low_rank(&m, 10).is_err());
        assert!(low_rank(&m, 0).is_err());
    }

    #[test]
    fn suffix_and_glob_patterns() {
        let q = Pattern::new("q_lin").unwrap();
        assert!(q.matches("distilbert.transformer.layer.0.attention.q_lin"));
        assert!(!q.matches("distilbert.transformer.layer.0.attention.xq_lin"));
        let g = Pattern::new("*.attention.self.query").unwrap();
        assert!(g.matches("bert.encoder.layer.5.attention.self.query"));
        assert!(!g.matches("bert.encoder.layer.5.attention.self.key"));
        assert_eq!(
            targets::module_kinds(&[
                "a.layer.0.attention.q_lin".into(),
                "a.layer.1.attention.q_lin".into(),
                "classifier".into()
            ]),
            vec!["attention.q_lin".to_string(), "classifier".to_string()]
        );
    }
}
