//! Layer surgery: pick linear layers by name, read and overwrite their weights, re-initialise
//! them, and build truncated-SVD (rank-r) approximations of weight matrices.
//!
//! Target patterns follow PEFT's `target_modules`: a plain name matches a layer whose full
//! HF module name equals it or ends with `.name` (`q_lin`, `attention.self.query`); a
//! pattern with `*` or `?` is a glob over the full name (`*.layer.[0-2].attention.q_lin`,
//! `*.attention.self.query`). Every pattern must match something: a typo fails with the list
//! of layer names the model has.

use globset::{Glob, GlobMatcher};
use tch::{Kind, Tensor};

use super::error::{ModelError, Result};
use super::layers::Linear;
use super::LoadedModel;

/// One `target_modules` entry, compiled.
enum Pattern {
    Suffix(String),
    Glob(GlobMatcher),
}

impl Pattern {
    fn new(pattern: &str) -> Result<Pattern> {
        if pattern.contains(['*', '?', '[']) {
            let glob = Glob::new(pattern).map_err(|e| ModelError::Surgery {
                message: format!("invalid module pattern {pattern:?}: {e}"),
            })?;
            Ok(Pattern::Glob(glob.compile_matcher()))
        } else {
            Ok(Pattern::Suffix(pattern.to_string()))
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Suffix(s) => name == s || name.strip_suffix(s.as_str()).is_some_and(|head| head.ends_with('.')),
            Pattern::Glob(g) => g.is_match(name),
        }
    }
}

/// Whether any of `patterns` names the module `name` (no validation; see [`select`]).
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .filter_map(|p| Pattern::new(p).ok())
        .any(|p| p.matches(name))
}

/// [`select`] over `targets`, or over the model type's query and value layers (the lab's
/// and LoRA's default) when none are given.
pub fn select_targets(model: &mut LoadedModel, targets: Option<&[String]>) -> Result<Vec<String>> {
    let patterns = super::adapters::lora_targets(targets, model.config.model_type());
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
                available: module_kinds(&names).join(", "),
            });
        }
        selected.extend(hits.into_iter().cloned());
    }
    selected.sort_by_key(|n| names.iter().position(|m| m == n));
    selected.dedup();
    Ok(selected)
}

/// Distinct layer names with the layer index removed (`attention.q_lin`, `ffn.lin1`,
/// `pre_classifier`): what a user types as a target.
fn module_kinds(names: &[String]) -> Vec<String> {
    let mut kinds: Vec<String> = Vec::new();
    for name in names {
        let short = match name.find(".layer.") {
            Some(at) => {
                let rest = &name[at + ".layer.".len()..];
                rest.split_once('.').map_or(rest, |(_, tail)| tail).to_string()
            }
            None => name.clone(),
        };
        if !kinds.contains(&short) {
            kinds.push(short);
        }
    }
    kinds
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
            module_kinds(&[
                "a.layer.0.attention.q_lin".into(),
                "a.layer.1.attention.q_lin".into(),
                "classifier".into()
            ]),
            vec!["attention.q_lin".to_string(), "classifier".to_string()]
        );
    }
}
