//! Where a training step's time goes: the forward pass (logits and loss), the backward pass,
//! and the optimizer's update (clipping + AdamW), each timed on its own over the same batch,
//! exactly as the engine takes the step. `orchestrate bench-step` prints it; issue-level
//! comparisons (a frozen-encoder method's step against full fine-tuning's) come from it.

use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tch::Tensor;

use super::optimizer::Optimizer;
use super::TrainConfig;
use crate::model::LoadedModel;

/// Mean seconds per step of each phase, over the timed steps.
#[derive(Debug, Clone, Serialize)]
pub struct StepProfile {
    pub steps: usize,
    pub forward_s: f64,
    pub backward_s: f64,
    pub update_s: f64,
}

impl StepProfile {
    pub fn step_s(&self) -> f64 {
        self.forward_s + self.backward_s + self.update_s
    }
}

/// Times `steps` training steps of `model` on one batch (`ids`, `mask`: `[batch, seq]`;
/// `labels`: `[batch]`) after `warmup` untimed ones, with `config`'s precision, dropout
/// masks and optimizer.
pub fn step_profile(
    model: &LoadedModel,
    config: &TrainConfig,
    (ids, mask, labels): (&Tensor, &Tensor, &Tensor),
    warmup: usize,
    steps: usize,
) -> Result<StepProfile> {
    let mut optimizer = Optimizer::new(model.trainable_parameters(), config, warmup + steps);
    let (mut forward, mut backward, mut update) = (0.0, 0.0, 0.0);
    for step in 0..warmup + steps {
        let started = Instant::now();
        let logits = {
            let _autocast = config.precision.autocast();
            let _masks = crate::model::layers::dropout_masks(config.dropout_masks);
            model.logits(ids, mask, true, config.pooling)?
        }
        .f_to_kind(tch::Kind::Float)?;
        let loss = logits.f_cross_entropy_loss::<Tensor>(labels, None, tch::Reduction::Mean, -100, 0.0)?;
        // Reading the loss waits for the forward pass, as the engine's loss check does.
        let _ = f64::try_from(&loss)?;
        let forwarded = Instant::now();
        optimizer.backward(&loss)?;
        let backwarded = Instant::now();
        optimizer.update(step)?;
        let updated = Instant::now();
        if step >= warmup {
            forward += (forwarded - started).as_secs_f64();
            backward += (backwarded - forwarded).as_secs_f64();
            update += (updated - backwarded).as_secs_f64();
        }
    }
    let n = steps.max(1) as f64;
    Ok(StepProfile {
        steps,
        forward_s: forward / n,
        backward_s: backward / n,
        update_s: update / n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::adapters::{BiasMode, LoraInit, LoraSpec};
    use crate::model::{self, DeviceChoice, LoadOptions, Method};

    /// A frozen parameter costs no weight gradient and no update: after a LoRA step only the
    /// adapters and the head hold gradients; every frozen weight (embeddings included) has none.
    #[test]
    fn a_lora_step_computes_gradients_for_the_trained_parameters_only() {
        let _torch = crate::train::exclusive_torch();
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/models/tiny-bert");
        let opts = LoadOptions {
            device: DeviceChoice::Cpu,
            num_labels: Some(2),
            reinit_mismatched_head: true,
            ..LoadOptions::default()
        };
        let mut m = model::load(folder, &opts).unwrap();
        m.apply_method(&Method::Lora(LoraSpec {
            r: 2,
            lora_alpha: 4.0,
            lora_dropout: 0.1,
            target_modules: None,
            bias: BiasMode::None,
            modules_to_save: None,
            init: LoraInit::Kaiming,
            use_rslora: false,
            use_dora: false,
        }))
        .unwrap();
        let defaults: crate::tasks::training::TrainParams =
            serde_json::from_value(serde_json::json!({ "model": folder })).unwrap();
        let config = defaults.training().config;
        let ids = Tensor::from_slice(&[2i64, 10, 11, 12, 3, 2, 13, 14, 3, 0]).view([2, 5]);
        let mask = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1, 1, 1, 1, 0]).view([2, 5]);
        let labels = Tensor::from_slice(&[0i64, 1]);
        let profile = step_profile(&m, &config, (&ids, &mask, &labels), 0, 1).unwrap();
        assert!(profile.forward_s > 0.0 && profile.backward_s > 0.0 && profile.update_s > 0.0);
        let mut trained = 0;
        for (name, tensor) in m.named_parameters() {
            let has_grad = tensor.grad().defined();
            assert_eq!(has_grad, tensor.requires_grad(), "{name}: gradient iff trained");
            trained += has_grad as usize;
        }
        // lora_A and lora_B on query and value of 2 layers, pooler and classifier weight + bias.
        assert_eq!(trained, 2 * 2 * 2 + 4);
    }
}
