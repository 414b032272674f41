//! The training engine: trains a model's trainable parameters over labelled examples with
//! Hugging Face Trainer's step — AdamW (never decaying biases and LayerNorm weights), linear
//! decay after an optional warmup, gradient-norm clipping, an evaluation after every epoch —
//! and reports through [`Hooks`]: progress, cancellation, the state saved after each epoch
//! to resume from, and an epoch-end hook that may stop the run.
//!
//! Batches are padded to their own longest example (dynamic padding); evaluation batches
//! are additionally sorted by length, which changes nothing but the padding. Training is
//! deterministic on CPU for a given seed: the model's random initialisation draws from
//! `tch::manual_seed(seed)`, the epoch order from a ChaCha generator seeded with `seed`,
//! and each epoch's dropout from libtorch's generator reseeded from that ChaCha stream, so a
//! run resumed from a saved state ([`state`]) ends where an uninterrupted one does.
//!
//! The engine knows nothing of tasks, the cache or the scheduler: where states are kept is
//! the caller's [`Checkpoints`] (the training task kinds keep them in the store).

pub mod adamw;
pub mod data;
mod engine;
mod optimizer;
pub mod records;
pub mod sampler;
pub mod state;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

pub use self::data::{Example, Examples, FeatureExamples, Inputs, TokenExamples};
pub use self::engine::{evaluate, logits, train};
pub use self::records::{EpochRecord, Evaluation, LogRecord, Progress, TrainOutcome};
use crate::model::{LoadedModel, Pooling};

/// libtorch draws initialisation and dropout from one process-wide generator, so two
/// seeded tasks running side by side (`-j 2`, or parallel tests) would interleave their
/// draws and lose determinism. Neural tasks hold this lock while they run; they gain
/// nothing from sharing the cores anyway, as torch already uses all of them.
static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn exclusive_torch() -> std::sync::MutexGuard<'static, ()> {
    TORCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The optimisation a training runs: Trainer's arguments that shape the loop.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub lr: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub weight_decay: f64,
    pub warmup_steps: usize,
    /// Fraction of all steps used for warmup (when `warmup_steps` is 0).
    pub warmup_ratio: f64,
    /// 0 turns clipping off.
    pub max_grad_norm: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    pub seed: u64,
    /// Record the training loss every this many steps.
    pub logging_steps: usize,
    pub pooling: Pooling,
    /// Length-grouped batches ([`sampler::group_by_length`]) instead of a plain shuffle.
    pub group_by_length: bool,
    pub precision: Precision,
    pub dropout_masks: crate::model::layers::DropoutMasks,
}

/// The float type training computes in; parameters, optimizer state, the loss and reductions
/// are float32 either way (Trainer's `bf16=True` on CPU).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Fp32,
    /// Matmuls and attention in bfloat16 under [`crate::model::layers::autocast`].
    Bf16,
}

impl Precision {
    pub fn is_default(&self) -> bool {
        *self == Precision::Fp32
    }

    /// Mixed precision for the forward passes while the guard lives.
    pub fn autocast(self) -> crate::model::layers::AutocastGuard {
        crate::model::layers::autocast(match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(tch::Kind::BFloat16),
        })
    }
}

/// Progress callback: (done, total, message).
pub type ProgressFn<'a> = dyn Fn(u64, u64, &str) + Send + Sync + 'a;

/// Whether training goes on after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Called after each epoch's evaluation with its record and the model as it stands.
pub type EpochEndFn<'a> = dyn Fn(&EpochRecord, &LoadedModel) -> Result<Flow> + 'a;

/// Where a training keeps the state it resumes from (see [`state`] for what a state holds).
pub trait Checkpoints {
    /// Saves the state after `progress.epochs_done()` epochs.
    fn save(&self, model: &LoadedModel, optimizer: &adamw::AdamW, progress: &Progress) -> Result<()>;
    /// Loads the newest usable state into `model` and `optimizer` and returns its progress;
    /// `None` when there is none (then nothing was changed).
    fn restore(&self, model: &LoadedModel, optimizer: &mut adamw::AdamW, epochs: usize) -> Option<Progress>;
}

/// What the loops report to and ask of their caller.
pub struct Hooks<'a> {
    pub progress: &'a ProgressFn<'a>,
    /// Set by Ctrl-C: the loops stop between batches with an error.
    pub cancel: &'a AtomicBool,
    pub checkpoints: Option<&'a dyn Checkpoints>,
    pub epoch_end: Option<&'a EpochEndFn<'a>>,
}

impl<'a> Hooks<'a> {
    /// Progress and cancellation only.
    pub fn new(progress: &'a ProgressFn<'a>, cancel: &'a AtomicBool) -> Self {
        Self {
            progress,
            cancel,
            checkpoints: None,
            epoch_end: None,
        }
    }

    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        Ok(())
    }
}
