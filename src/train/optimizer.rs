//! The optimizer step as the Trainer takes it: AdamW over decay/no-decay groups, the linear
//! schedule with warmup, gradient-norm clipping.

use anyhow::Result;
use tch::Tensor;

use super::adamw::AdamW;
use super::TrainConfig;

/// AdamW with Trainer's decay/no-decay groups, linear schedule and gradient clipping.
pub(super) struct Optimizer {
    pub(super) adamw: AdamW,
    lr: f64,
    warmup: usize,
    total: usize,
    max_grad_norm: f64,
}

impl Optimizer {
    pub(super) fn new(trainable: Vec<(String, Tensor)>, params: &TrainConfig, total: usize) -> Self {
        let trainable = trainable
            .into_iter()
            .map(|(name, tensor)| {
                // Trainer's rule: no decay on biases and LayerNorm weights.
                let no_decay = name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm");
                let decay = if no_decay { 0.0 } else { params.weight_decay };
                (name, tensor, decay)
            })
            .collect();
        let warmup = if params.warmup_steps > 0 {
            params.warmup_steps
        } else {
            (params.warmup_ratio * total as f64).ceil() as usize
        };
        Self {
            adamw: AdamW::new(trainable, params.adam_beta1, params.adam_beta2, params.adam_epsilon),
            lr: params.lr,
            warmup,
            total,
            max_grad_norm: params.max_grad_norm,
        }
    }

    /// transformers' `get_linear_schedule_with_warmup`, for the optimizer step `step` (0-based).
    pub(super) fn lr_at(&self, step: usize) -> f64 {
        let factor = if step < self.warmup {
            step as f64 / self.warmup.max(1) as f64
        } else {
            ((self.total.saturating_sub(step)) as f64 / (self.total - self.warmup).max(1) as f64).max(0.0)
        };
        self.lr * factor
    }

    pub(super) fn step(&mut self, loss: &Tensor, step: usize) -> Result<()> {
        self.backward(loss)?;
        self.update(step)
    }

    /// The gradients of `loss`, from zero.
    pub(super) fn backward(&mut self, loss: &Tensor) -> Result<()> {
        self.adamw.zero_grad();
        Ok(loss.f_backward()?)
    }

    /// Clipping and the AdamW update with the gradients [`Optimizer::backward`] left.
    pub(super) fn update(&mut self, step: usize) -> Result<()> {
        if self.max_grad_norm > 0.0 {
            tch::no_grad(|| -> Result<()> {
                let grads: Vec<Tensor> = self.adamw.tensors().map(Tensor::grad).filter(Tensor::defined).collect();
                if grads.is_empty() {
                    return Ok(());
                }
                let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
                let total = f64::try_from(Tensor::stack(&norms, 0).norm())?;
                let coefficient = self.max_grad_norm / (total + 1e-6);
                if coefficient < 1.0 {
                    for mut grad in grads {
                        let _ = grad.f_mul_scalar_(coefficient)?;
                    }
                }
                Ok(())
            })?;
        }
        self.adamw.step(self.lr_at(step))
    }
}
