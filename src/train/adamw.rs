//! AdamW as `torch.optim.AdamW` computes it on CPU (decoupled weight decay, bias-corrected
//! moments, a step count per parameter), with its state in tensors this module owns.
//! libtorch's C++ optimizer (tch's `COptimizer`) keeps its moments out of reach, and a
//! resumed training needs them to continue exactly where it stopped (`super::resume`).

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context as _, Result};
use tch::Tensor;

/// The first and second moment of one parameter, and how many updates it has had.
struct Moments {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

struct Param {
    name: String,
    tensor: Tensor,
    weight_decay: f64,
    /// Created at the parameter's first update, as torch does.
    moments: Option<Moments>,
}

pub struct AdamW {
    params: Vec<Param>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Two buffers as large as the largest parameter, for the update's intermediates: fresh
    /// temporaries of that size (the word embeddings') cost a page fault per page every step.
    scratch: Option<(Tensor, Tensor)>,
}

/// Names of the moment tensors in a saved state.
const EXP_AVG: &str = "exp_avg/";
const EXP_AVG_SQ: &str = "exp_avg_sq/";

impl AdamW {
    /// `trainable` with each parameter's weight decay.
    pub fn new(trainable: Vec<(String, Tensor, f64)>, beta1: f64, beta2: f64, eps: f64) -> Self {
        let params = trainable
            .into_iter()
            .map(|(name, tensor, weight_decay)| Param {
                name,
                tensor,
                weight_decay,
                moments: None,
            })
            .collect();
        Self {
            params,
            beta1,
            beta2,
            eps,
            scratch: None,
        }
    }

    pub fn tensors(&self) -> impl Iterator<Item = &Tensor> {
        self.params.iter().map(|p| &p.tensor)
    }

    pub fn zero_grad(&mut self) {
        for param in &mut self.params {
            param.tensor.zero_grad();
        }
    }

    /// One update of every parameter that has a gradient, at learning rate `lr`.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        tch::no_grad(|| {
            let (first, second) = match &self.scratch {
                Some(buffers) => buffers,
                None => {
                    let largest = self.params.iter().map(|p| p.tensor.numel()).max().unwrap_or(0) as i64;
                    let options = (
                        tch::Kind::Float,
                        self.params.first().map_or(tch::Device::Cpu, |p| p.tensor.device()),
                    );
                    self.scratch.insert((
                        Tensor::f_empty([largest], options)?,
                        Tensor::f_empty([largest], options)?,
                    ))
                }
            };
            for param in &mut self.params {
                let grad = param.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                if param.weight_decay != 0.0 {
                    let _ = param.tensor.f_mul_scalar_(1.0 - lr * param.weight_decay)?;
                }
                let moments = match &mut param.moments {
                    Some(moments) => moments,
                    empty => empty.insert(Moments {
                        step: 0,
                        exp_avg: param.tensor.f_zeros_like()?,
                        exp_avg_sq: param.tensor.f_zeros_like()?,
                    }),
                };
                moments.step += 1;
                // The same operations as torch's single-tensor AdamW, into the scratch buffers.
                let shape = param.tensor.size();
                let numel = param.tensor.numel() as i64;
                let scaled = first.f_narrow(0, 0, numel)?.f_view(shape.as_slice())?;
                let denom = second.f_narrow(0, 0, numel)?.f_view(shape.as_slice())?;
                let _ = moments.exp_avg.f_lerp_(&grad, 1.0 - beta1)?;
                let _ = moments.exp_avg_sq.f_mul_scalar_(beta2)?;
                let _ = grad.f_mul_scalar_out(&scaled, 1.0 - beta2)?;
                let _ = moments.exp_avg_sq.f_addcmul_(&grad, &scaled)?;
                let bias_correction1 = 1.0 - beta1.powf(moments.step as f64);
                let bias_correction2 = 1.0 - beta2.powf(moments.step as f64);
                let _ = moments.exp_avg_sq.f_sqrt_out(&denom)?;
                let mut denom = denom;
                let _ = denom.f_div_scalar_(bias_correction2.sqrt())?;
                let _ = denom.f_add_scalar_(eps)?;
                let update = moments.exp_avg.f_mul_scalar_out(&scaled, -lr / bias_correction1)?;
                let _ = param.tensor.f_addcdiv_(&update, &denom)?;
            }
            Ok(())
        })
    }

    /// The moments by name (`exp_avg/<param>`, `exp_avg_sq/<param>`) and the step count of
    /// every parameter updated so far.
    pub fn state(&self) -> (Vec<(String, Tensor)>, BTreeMap<String, u64>) {
        let mut tensors = Vec::new();
        let mut steps = BTreeMap::new();
        for param in &self.params {
            if let Some(moments) = &param.moments {
                tensors.push((format!("{EXP_AVG}{}", param.name), moments.exp_avg.shallow_clone()));
                tensors.push((
                    format!("{EXP_AVG_SQ}{}", param.name),
                    moments.exp_avg_sq.shallow_clone(),
                ));
                steps.insert(param.name.clone(), moments.step);
            }
        }
        (tensors, steps)
    }

    /// Takes the state [`AdamW::state`] gave. Checks everything before changing anything, so
    /// a state that does not fit leaves the optimizer as it was.
    pub fn restore(&mut self, tensors: &HashMap<String, Tensor>, steps: &BTreeMap<String, u64>) -> Result<()> {
        let mut restored = Vec::new();
        for (index, param) in self.params.iter().enumerate() {
            let Some(&step) = steps.get(&param.name) else {
                continue;
            };
            let moment = |prefix: &str| -> Result<Tensor> {
                let name = format!("{prefix}{}", param.name);
                let saved = tensors.get(&name).with_context(|| format!("no tensor {name}"))?;
                if saved.size() != param.tensor.size() {
                    bail!(
                        "{name} has shape {:?}, the parameter {:?}",
                        saved.size(),
                        param.tensor.size()
                    );
                }
                Ok(saved
                    .f_to_kind(param.tensor.kind())?
                    .f_to_device(param.tensor.device())?)
            };
            restored.push((
                index,
                Moments {
                    step,
                    exp_avg: moment(EXP_AVG)?,
                    exp_avg_sq: moment(EXP_AVG_SQ)?,
                },
            ));
        }
        if restored.len() != steps.len() {
            bail!("the optimizer state names parameters this model does not train");
        }
        for (index, moments) in restored {
            self.params[index].moments = Some(moments);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A quadratic with a minimum at 3: the optimizer must get there, and an optimizer
    /// restored from a saved state must continue exactly as the original does.
    #[test]
    fn minimises_and_continues_identically_from_its_state() {
        let make = || {
            let x = Tensor::from_slice(&[0.0f32, 10.0]).set_requires_grad(true);
            let optimizer = AdamW::new(vec![("x".into(), x.shallow_clone(), 0.01)], 0.9, 0.999, 1e-8);
            (x, optimizer)
        };
        let step = |x: &Tensor, optimizer: &mut AdamW| {
            optimizer.zero_grad();
            (x - 3.0).square().sum(tch::Kind::Float).backward();
            optimizer.step(0.1).unwrap();
        };
        let (x, mut optimizer) = make();
        for _ in 0..20 {
            step(&x, &mut optimizer);
        }
        let (tensors, steps) = optimizer.state();
        assert_eq!(steps["x"], 20);
        let tensors: HashMap<String, Tensor> = tensors.into_iter().map(|(n, t)| (n, t.copy())).collect();
        let (y, mut resumed) = make();
        tch::no_grad(|| y.shallow_clone().copy_(&x));
        resumed.restore(&tensors, &steps).unwrap();
        for _ in 0..300 {
            step(&x, &mut optimizer);
            step(&y, &mut resumed);
        }
        assert!(x.equal(&y), "{x} vs {y}");
        let values = Vec::<f32>::try_from(&x).unwrap();
        assert!(values.iter().all(|v| (v - 3.0).abs() < 0.1), "{values:?}");

        let (_, mut wrong) = make();
        let bad = HashMap::from([("exp_avg/x".to_string(), Tensor::zeros([3], tch::kind::FLOAT_CPU))]);
        assert!(wrong.restore(&bad, &steps).is_err());
        assert!(wrong.state().1.is_empty(), "a failed restore changes nothing");
    }
}
