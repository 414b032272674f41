//! `trainer_state.json` in transformers' layout (`TrainerState.save_to_json`), so tools
//! that read a Trainer's output read ours: the loss log every `logging_steps`, an
//! evaluation per epoch, the closing train summary, and the best metric.

use serde_json::{json, Value};

use super::{TrainConfig, TrainOutcome};

/// The state after `outcome`, for a training over `train_examples` examples.
pub fn trainer_state(config: &TrainConfig, outcome: &TrainOutcome, train_examples: usize) -> Value {
    let per_epoch = outcome.steps_per_epoch.max(1) as f64;
    let epoch_at = |step: usize| step as f64 / per_epoch;
    // (step, order within the step, entry): training logs come before the evaluation HF runs
    // at the same step.
    let mut history: Vec<(usize, u8, Value)> = Vec::new();
    for record in &outcome.log {
        history.push((
            record.step,
            0,
            json!({
                "loss": record.loss,
                "learning_rate": record.lr,
                "epoch": epoch_at(record.step),
                "step": record.step,
            }),
        ));
    }
    for record in &outcome.epochs {
        let step = record.epoch * outcome.steps_per_epoch;
        history.push((
            step,
            1,
            json!({
                "eval_loss": record.eval_loss,
                "eval_accuracy": record.eval_accuracy,
                "eval_f1": record.eval_f1,
                "epoch": record.epoch as f64,
                "step": step,
            }),
        ));
    }
    history.sort_by_key(|(step, order, _)| (*step, *order));
    let mut log_history: Vec<Value> = history.into_iter().map(|(_, _, entry)| entry).collect();
    let epochs_done = outcome.epochs.len();
    let train_loss = if outcome.epochs.is_empty() {
        0.0
    } else {
        outcome.epochs.iter().map(|e| e.train_loss).sum::<f64>() / epochs_done as f64
    };
    let seconds = outcome.train_seconds.max(1e-9);
    log_history.push(json!({
        "train_runtime": outcome.train_seconds,
        "train_samples_per_second": (train_examples * epochs_done) as f64 / seconds,
        "train_steps_per_second": outcome.steps as f64 / seconds,
        "total_flos": 0.0,
        "train_loss": train_loss,
        "epoch": epochs_done as f64,
        "step": outcome.steps,
    }));
    let best = outcome.best;
    let mut callbacks = json!({
        "TrainerControl": {
            "args": {
                "should_training_stop": true,
                "should_epoch_stop": false,
                "should_save": true,
                "should_evaluate": false,
                "should_log": false,
            },
            "attributes": {},
        }
    });
    if let Some(patience) = config.best.early_stopping_patience {
        callbacks["EarlyStoppingCallback"] = json!({
            "args": {
                "early_stopping_patience": patience,
                "early_stopping_threshold": config.best.early_stopping_threshold,
            },
            "attributes": {
                "early_stopping_patience_counter": outcome.epochs_without_improvement,
            },
        });
    }
    json!({
        "best_global_step": best.map(|b| b.step),
        "best_metric": best.map(|b| b.metric),
        // HF names the folder of the best epoch's weights; here they are the published ones
        // when `load_best_model_at_end` is set.
        "best_model_checkpoint": best
            .filter(|_| config.best.load_best_model_at_end)
            .map(|b| format!("checkpoint-{}", b.step)),
        "epoch": epochs_done as f64,
        "eval_steps": outcome.steps_per_epoch,
        "global_step": outcome.steps,
        "is_hyper_param_search": false,
        "is_local_process_zero": true,
        "is_world_process_zero": true,
        "log_history": log_history,
        "logging_steps": config.logging_steps,
        "max_steps": outcome.steps_per_epoch * config.epochs,
        "num_input_tokens_seen": 0,
        "num_train_epochs": config.epochs,
        "save_steps": outcome.steps_per_epoch,
        "stateful_callbacks": callbacks,
        "total_flos": 0.0,
        "train_batch_size": config.batch_size,
        "trial_name": null,
        "trial_params": null,
    })
}
