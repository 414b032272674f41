//! The loops: training with the Trainer's step, and evaluation.

use std::time::Instant;

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};
use tch::Tensor;

use super::data::{Examples, Inputs};
use super::optimizer::Optimizer;
use super::records::{BestEpoch, EpochRecord, Evaluation, LogRecord, Progress, Snapshot, TrainOutcome};
use super::sampler::group_by_length;
use super::{Flow, Hooks, TrainConfig};
use crate::model::{LoadedModel, Pooling};
use crate::scoring::scores;

/// Logits of a batch in train or eval mode.
pub fn logits(model: &LoadedModel, inputs: &Inputs, train: bool, pooling: Pooling) -> Result<Tensor> {
    Ok(match inputs {
        Inputs::Tokens { ids, mask } => model.logits(ids, mask, train, pooling)?,
        Inputs::Features(features) => model.network.head_forward(features, train)?,
    })
}

/// Evaluates in eval mode without gradients, length-sorted batches (so each is padded only to
/// its own longest, nearly nothing). In eval mode the encoder takes libtorch's fused attention
/// (`model::layers::attention`), where most of evaluation's time at 256–512 tokens went.
/// tch exposes no `InferenceMode`; a no-grad guard over the whole loop is the closest.
pub fn evaluate(
    hooks: &Hooks,
    model: &LoadedModel,
    data: &dyn Examples,
    batch_size: usize,
    pooling: Pooling,
    n_classes: usize,
) -> Result<Evaluation> {
    let started = Instant::now();
    let _no_grad = tch::no_grad_guard();
    let mut order: Vec<usize> = (0..data.len()).collect();
    order.sort_by_key(|&i| data.length(i));
    let (mut loss_sum, mut predicted, mut truth) = (0.0, Vec::new(), Vec::new());
    for (done, chunk) in order.chunks(batch_size.max(1)).enumerate() {
        hooks.check_cancelled()?;
        let (inputs, labels) = data.batch(chunk, model.device())?;
        // float32 for the loss and argmax whatever dtype the model runs in.
        let batch_logits = logits(model, &inputs, false, pooling)?.f_to_kind(tch::Kind::Float)?;
        check_labels(&labels, batch_logits.size()[1])?;
        loss_sum += f64::try_from(batch_logits.f_cross_entropy_loss::<Tensor>(
            &labels,
            None,
            tch::Reduction::Mean,
            -100,
            0.0,
        )?)? * chunk.len() as f64;
        predicted.extend(
            Vec::<i64>::try_from(batch_logits.f_argmax(-1, false)?)?
                .into_iter()
                .map(|p| p as usize),
        );
        truth.extend(Vec::<i64>::try_from(&labels)?.into_iter().map(|l| l as usize));
        (hooks.progress)(
            (done * batch_size + chunk.len()) as u64,
            data.len() as u64,
            "evaluating",
        );
    }
    let (accuracy, f1) = scores(&predicted, &truth, n_classes);
    Ok(Evaluation {
        loss: loss_sum / data.len().max(1) as f64,
        accuracy,
        f1,
        seconds: started.elapsed().as_secs_f64(),
        examples: data.len(),
    })
}

fn check_labels(labels: &Tensor, n_logits: i64) -> Result<()> {
    let max = labels.max().int64_value(&[]);
    if max >= n_logits {
        bail!("label {max} is outside the model head's {n_logits} classes");
    }
    Ok(())
}

/// Trains the model's trainable parameters on `train`, evaluating on `eval` after each epoch.
/// With `hooks.checkpoints` it saves its state after each epoch and starts from the last
/// state saved, if any; `hooks.epoch_end` may stop it after any epoch.
pub fn train(
    hooks: &Hooks,
    model: &LoadedModel,
    params: &TrainConfig,
    train: &dyn Examples,
    eval: &dyn Examples,
    n_classes: usize,
) -> Result<TrainOutcome> {
    if train.is_empty() || eval.is_empty() {
        bail!(
            "empty split: {} training and {} evaluation examples",
            train.len(),
            eval.len()
        );
    }
    if params.batch_size == 0 || params.epochs == 0 {
        bail!("internal: batch_size and epochs must be positive (the task validates them)");
    }
    let steps_per_epoch = train.len().div_ceil(params.batch_size);
    let total = steps_per_epoch * params.epochs;
    let mut optimizer = Optimizer::new(model.trainable_parameters(), params, total);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
    let resumed = hooks
        .checkpoints
        .and_then(|checkpoints| checkpoints.restore(model, &mut optimizer.adamw, params.epochs));
    let (mut progress, mut best_weights): (Progress, Option<Snapshot>) = resumed.unwrap_or_default();
    rng.set_word_pos(progress.rng_word_pos);
    let mut last_evaluation = None;
    let first_epoch = if progress.stopped_early {
        params.epochs + 1
    } else {
        progress.epochs_done() + 1
    };
    for epoch in first_epoch..=params.epochs {
        let epoch_started = Instant::now();
        let order = epoch_order(&mut rng, train, params, epoch);
        // Dropout draws from libtorch's global generator, whose state tch cannot save: seeding
        // it per epoch from the saved stream makes a resumed epoch draw the same masks.
        tch::manual_seed(rng.random::<i64>());
        let mut epoch_loss = 0.0;
        for chunk in order.chunks(params.batch_size) {
            hooks.check_cancelled()?;
            let (inputs, labels) = train.batch(chunk, model.device())?;
            let batch_logits = {
                let _autocast = params.precision.autocast();
                let _masks = crate::model::layers::dropout_masks(params.dropout_masks);
                logits(model, &inputs, true, params.pooling)?
            }
            .f_to_kind(tch::Kind::Float)?;
            check_labels(&labels, batch_logits.size()[1])?;
            let loss = batch_logits.f_cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0)?;
            let value = f64::try_from(&loss)?;
            if !value.is_finite() {
                bail!(
                    "loss is {value} at step {} (epoch {epoch}): training diverged",
                    progress.step + 1
                );
            }
            optimizer.step(&loss, progress.step)?;
            progress.step += 1;
            epoch_loss += value;
            progress.window_loss += value;
            progress.window_steps += 1;
            if progress.step.is_multiple_of(params.logging_steps.max(1)) {
                progress.log.push(LogRecord {
                    step: progress.step,
                    loss: progress.window_loss / progress.window_steps as f64,
                    lr: optimizer.lr_at(progress.step),
                });
                (progress.window_loss, progress.window_steps) = (0.0, 0);
            }
            let seen = (progress.step * params.batch_size).min(train.len() * params.epochs);
            let rate = seen as f64 / (progress.train_seconds + epoch_started.elapsed().as_secs_f64()).max(1e-9);
            (hooks.progress)(
                progress.step as u64,
                total as u64,
                &format!("epoch {epoch}/{} loss {:.4} {rate:.1} samples/s", params.epochs, value),
            );
        }
        progress.train_seconds += epoch_started.elapsed().as_secs_f64();
        let evaluation = {
            let _autocast = params.precision.autocast();
            evaluate(hooks, model, eval, params.eval_batch_size, params.pooling, n_classes)?
        };
        let record = EpochRecord {
            epoch,
            train_loss: epoch_loss / steps_per_epoch as f64,
            eval_loss: evaluation.loss,
            eval_accuracy: evaluation.accuracy,
            eval_f1: evaluation.f1,
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        let flow = match hooks.epoch_end {
            Some(epoch_end) => epoch_end(&record, model)?,
            None => Flow::Continue,
        };
        let patience_ran_out = track_best(params, &record, progress.step, &mut progress, model, &mut best_weights)?;
        progress.epochs.push(record);
        progress.rng_word_pos = rng.get_word_pos();
        progress.stopped_early = (flow == Flow::Stop || patience_ran_out) && epoch < params.epochs;
        if let Some(checkpoints) = hooks.checkpoints {
            checkpoints.save(model, &optimizer.adamw, &progress, best_weights.as_ref())?;
        }
        last_evaluation = Some(evaluation);
        if progress.stopped_early {
            break;
        }
    }
    // The best epoch's weights replace the last ones (Trainer's load_best_model_at_end).
    let last_epoch = progress.epochs_done();
    if let (true, Some(best), Some(weights)) = (params.best.load_best_model_at_end, progress.best, &best_weights) {
        if best.epoch != last_epoch {
            load_snapshot(model, weights)?;
            last_evaluation = None;
        }
    }
    // The last epoch's evaluation is the final model's; only a run resumed after its last
    // epoch, or one that went back to its best epoch, has none in memory.
    let final_eval = match last_evaluation {
        Some(evaluation) => evaluation,
        None => {
            let _autocast = params.precision.autocast();
            evaluate(hooks, model, eval, params.eval_batch_size, params.pooling, n_classes)?
        }
    };
    let samples_per_second = (train.len() * progress.epochs_done()) as f64 / progress.train_seconds.max(1e-9);
    Ok(TrainOutcome {
        best: progress.best,
        stopped_early: progress.stopped_early,
        epochs_without_improvement: progress.epochs_without_improvement,
        steps: progress.step,
        steps_per_epoch,
        epochs: progress.epochs,
        log: progress.log,
        final_eval,
        samples_per_second,
        train_seconds: progress.train_seconds,
    })
}

/// The order of `epoch`'s training examples, drawn from `rng` as [`train`] draws it: a
/// shuffle, then length grouping where it is on; a given `batch_order` replaces the result.
fn epoch_order(
    rng: &mut rand_chacha::ChaCha8Rng,
    train: &dyn Examples,
    params: &TrainConfig,
    epoch: usize,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(rng);
    if params.group_by_length {
        group_by_length(&mut order, |i| train.length(i), params.batch_size, rng);
    }
    if let Some(given) = &params.batch_order {
        order.clone_from(&given[epoch - 1]);
    }
    order
}

/// The training order of the first `epochs` epochs of a run with `params`, replayed from
/// its seed as [`train`] draws it (a shuffle and the grouping per epoch, then the epoch's
/// dropout seed), so a resumed run reports the orders of the epochs it did not run itself.
pub fn batch_orders(params: &TrainConfig, train: &dyn Examples, epochs: usize) -> Vec<Vec<usize>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
    (1..=epochs)
        .map(|epoch| {
            let order = epoch_order(&mut rng, train, params, epoch);
            let _dropout_seed: i64 = rng.random();
            order
        })
        .collect()
}

/// Trainer's order after an evaluation: the early-stopping callback compares with the best
/// so far, then the checkpoint save updates the best. Returns whether patience ran out.
fn track_best(
    params: &TrainConfig,
    record: &EpochRecord,
    step: usize,
    progress: &mut Progress,
    model: &LoadedModel,
    best_weights: &mut Option<Snapshot>,
) -> Result<bool> {
    let Some(metric) = params.best.tracked() else {
        return Ok(false);
    };
    let value = metric.of(record);
    let mut patience_ran_out = false;
    if let Some(patience) = params.best.early_stopping_patience {
        let improved = progress.best.is_none_or(|best| {
            metric.better(value, best.metric) && (value - best.metric).abs() > params.best.early_stopping_threshold
        });
        progress.epochs_without_improvement = if improved {
            0
        } else {
            progress.epochs_without_improvement + 1
        };
        patience_ran_out = progress.epochs_without_improvement >= patience;
    }
    if progress.best.is_none_or(|best| metric.better(value, best.metric)) {
        progress.best = Some(BestEpoch {
            epoch: record.epoch,
            metric: value,
            step,
        });
        *best_weights = Some(snapshot(model)?);
    }
    Ok(patience_ran_out)
}

/// CPU copies of the trainable parameters (the frozen ones never change).
fn snapshot(model: &LoadedModel) -> Result<Snapshot> {
    let _no_grad = tch::no_grad_guard();
    model
        .trainable_parameters()
        .into_iter()
        .map(|(name, tensor)| Ok((name, tensor.f_detach()?.f_to_device(tch::Device::Cpu)?.copy())))
        .collect()
}

fn load_snapshot(model: &LoadedModel, weights: &Snapshot) -> Result<()> {
    let saved: std::collections::HashMap<&str, &Tensor> = weights.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut param) in model.trainable_parameters() {
            let Some(value) = saved.get(name.as_str()) else {
                bail!("internal: the best epoch's weights have no {name}");
            };
            param.f_copy_(value)?;
        }
        Ok(())
    })
}
