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
pub mod profile;
pub mod records;
pub mod sampler;
pub mod state;
pub mod trainer_state;

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

pub use self::data::{Example, Examples, FeatureExamples, Inputs, TokenExamples};
pub use self::engine::{batch_orders, evaluate, logits, train};
pub use self::records::{BestEpoch, EpochRecord, Evaluation, LogRecord, Progress, Snapshot, TrainOutcome};
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
    /// A given training order, one permutation of the examples per epoch, in place of the
    /// sampler's (a task's `batch_order` file). The sampler still draws its order first, so
    /// the dropout stream is the one the run would have had: fed its own order back, a run
    /// is bit-identical.
    pub batch_order: Option<Vec<Vec<usize>>>,
    /// Best-epoch tracking and early stopping (Trainer's `metric_for_best_model`, …).
    pub best: BestModel,
}

/// Trainer's best-model arguments, with its semantics: the best epoch is the first whose
/// evaluation beats every earlier one on `metric` (lower loss, higher accuracy or F1);
/// `EarlyStoppingCallback` counts the epochs that do not beat the best so far by more than
/// `early_stopping_threshold` and stops after `early_stopping_patience` of them in a row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BestModel {
    /// `None`: no tracking (Trainer's default); `load_best_model_at_end` alone means loss.
    pub metric: Option<BestMetric>,
    /// The published model is the best epoch's instead of the last one's.
    pub load_best_model_at_end: bool,
    pub early_stopping_patience: Option<usize>,
    pub early_stopping_threshold: f64,
}

impl BestModel {
    /// The metric tracked, if any.
    pub fn tracked(&self) -> Option<BestMetric> {
        self.metric
            .or((self.load_best_model_at_end || self.early_stopping_patience.is_some()).then_some(BestMetric::Loss))
    }
}

/// `metric_for_best_model`: the evaluation's loss, accuracy or F1 (`eval_` prefix optional).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BestMetric {
    #[serde(alias = "eval_loss")]
    Loss,
    #[serde(alias = "eval_accuracy")]
    Accuracy,
    #[serde(alias = "eval_f1")]
    F1,
}

impl BestMetric {
    pub fn of(self, record: &EpochRecord) -> f64 {
        match self {
            BestMetric::Loss => record.eval_loss,
            BestMetric::Accuracy => record.eval_accuracy,
            BestMetric::F1 => record.eval_f1,
        }
    }

    /// Trainer's `greater_is_better`: false for a loss only.
    pub fn greater_is_better(self) -> bool {
        self != BestMetric::Loss
    }

    pub fn better(self, value: f64, than: f64) -> bool {
        if self.greater_is_better() {
            value > than
        } else {
            value < than
        }
    }

    /// The name in Trainer's logs and `trainer_state.json`.
    pub fn eval_name(self) -> &'static str {
        match self {
            BestMetric::Loss => "eval_loss",
            BestMetric::Accuracy => "eval_accuracy",
            BestMetric::F1 => "eval_f1",
        }
    }
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
    /// Saves the state after `progress.epochs_done()` epochs, with the best epoch's weights
    /// when the best model is tracked.
    fn save(
        &self,
        model: &LoadedModel,
        optimizer: &adamw::AdamW,
        progress: &Progress,
        best_weights: Option<&Snapshot>,
    ) -> Result<()>;
    /// Loads the newest usable state into `model` and `optimizer` and returns its progress
    /// and best weights; `None` when there is none (then nothing was changed).
    fn restore(
        &self,
        model: &LoadedModel,
        optimizer: &mut adamw::AdamW,
        epochs: usize,
    ) -> Option<(Progress, Option<Snapshot>)>;
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
