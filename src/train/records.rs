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
    /// The epoch-end hook stopped the training before its last epoch.
    #[serde(default)]
    pub stopped_early: bool,
}

impl Progress {
    /// Epochs trained so far (one record each).
    pub fn epochs_done(&self) -> usize {
        self.epochs.len()
    }
}

pub struct TrainOutcome {
    pub epochs: Vec<EpochRecord>,
    pub log: Vec<LogRecord>,
    pub final_eval: Evaluation,
    pub train_seconds: f64,
    pub samples_per_second: f64,
}
