//! What a training records as it goes, and what it returns.

use serde::{Deserialize, Serialize};

/// Loss, accuracy and F1 of one pass over a set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub f1: f64,
    pub seconds: f64,
    pub examples: usize,
}

/// One epoch's numbers, as the report plots them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub eval_loss: f64,
    pub eval_accuracy: f64,
    pub eval_f1: f64,
    pub seconds: f64,
}

/// A training-loss log line every `logging_steps`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogRecord {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
}

/// Where a training stands after an epoch: everything but tensors that it needs to go on
/// (saved with them by [`super::state`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Progress {
    /// Optimizer steps so far (the schedule's position).
    pub step: usize,
    /// Position of the epoch-order generator (its ChaCha word position).
    pub rng_word_pos: u128,
    pub epochs: Vec<EpochRecord>,
    pub log: Vec<LogRecord>,
    /// The loss log's open window, which spans epochs.
    pub window_loss: f64,
    pub window_steps: usize,
    pub train_seconds: f64,
    /// The epoch-end hook or early stopping ended the training before its last epoch.
    #[serde(default)]
    pub stopped_early: bool,
    /// The best epoch so far and its metric, when the best model is tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestEpoch>,
    /// Epochs in a row that did not beat the best by more than the threshold.
    #[serde(default)]
    pub epochs_without_improvement: usize,
}

/// Trainable parameters by name, on the CPU: the best epoch's weights.
pub type Snapshot = Vec<(String, tch::Tensor)>;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct BestEpoch {
    pub epoch: usize,
    pub metric: f64,
    /// The global step after that epoch (Trainer's `best_global_step`).
    pub step: usize,
}

impl Progress {
    /// Epochs trained so far (one record each).
    pub fn epochs_done(&self) -> usize {
        self.epochs.len()
    }
}

pub struct TrainOutcome {
    pub epochs: Vec<EpochRecord>,
    /// The best epoch when the best model was tracked; the model holds its weights when
    /// `load_best_model_at_end` is set.
    pub best: Option<BestEpoch>,
    pub stopped_early: bool,
    /// The early-stopping counter at the end.
    pub epochs_without_improvement: usize,
    /// Optimizer steps done.
    pub steps: usize,
    pub steps_per_epoch: usize,
    pub log: Vec<LogRecord>,
    pub final_eval: Evaluation,
    pub train_seconds: f64,
    pub samples_per_second: f64,
}
