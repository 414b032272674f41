//! Training and evaluation of the transformer tasks, with Hugging Face Trainer's defaults:
//! AdamW (lr 5e-5, betas 0.9/0.999, eps 1e-8, weight decay 0 — never on biases and
//! LayerNorm weights), linear decay to 0 after an optional warmup, batch 8, 3 epochs,
//! gradient-norm clipping at 1.0, seed 42, an evaluation after every epoch.
//!
//! Batches are padded to their own longest example (dynamic padding); evaluation batches
//! are additionally sorted by length, which changes nothing but the padding. Training is
//! deterministic on CPU for a given seed: the model's random initialisation draws from
//! `tch::manual_seed(seed)`, the epoch order from a ChaCha generator seeded with `seed`,
//! and each epoch's dropout from libtorch's generator reseeded from that ChaCha stream. After
//! every epoch the whole state is saved in the cache, so a killed run resumes from its last
//! epoch to the same result ([`resume`]).

pub mod adamw;
pub mod resume;

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use crate::model::{self, DeviceChoice, LoadOptions, LoadedModel, Pooling};
use crate::tasks::classify::scores;
use crate::tasks::tokenize::Example;
use crate::tasks::{Context, Metrics};

/// libtorch draws initialisation and dropout from one process-wide generator, so two
/// seeded tasks running side by side (`-j 2`, or parallel tests) would interleave their
/// draws and lose determinism. Neural tasks hold this lock while they run; they gain
/// nothing from sharing the cores anyway, as torch already uses all of them.
static TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn exclusive_torch() -> std::sync::MutexGuard<'static, ()> {
    TORCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Declares a training task's parameter struct: Trainer's arguments (the fields of
/// [`TrainParams`], with its defaults) followed by the method's own fields, flat in one TOML
/// table (`lr = 1e-3`, `r = 6` side by side) and rejecting unknown keys. `training()` gives
/// the [`TrainParams`] part to the training loop.
macro_rules! training_params {
    ($(#[$attr:meta])* pub struct $name:ident { $($(#[$fattr:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// A model folder (relative to the experiment file) or a hub id in the HF cache.
            pub model: String,
            #[serde(default = "crate::train::defaults::lr")]
            pub lr: f64,
            #[serde(default = "crate::train::defaults::epochs")]
            pub epochs: usize,
            #[serde(default = "crate::train::defaults::batch_size")]
            pub batch_size: usize,
            #[serde(default = "crate::train::defaults::eval_batch_size")]
            pub eval_batch_size: usize,
            #[serde(default)]
            pub weight_decay: f64,
            #[serde(default)]
            pub warmup_steps: usize,
            /// Fraction of all steps used for warmup (when `warmup_steps` is 0).
            #[serde(default)]
            pub warmup_ratio: f64,
            #[serde(default = "crate::train::defaults::max_grad_norm")]
            pub max_grad_norm: f64,
            #[serde(default = "crate::train::defaults::beta1")]
            pub adam_beta1: f64,
            #[serde(default = "crate::train::defaults::beta2")]
            pub adam_beta2: f64,
            #[serde(default = "crate::train::defaults::epsilon")]
            pub adam_epsilon: f64,
            #[serde(default = "crate::train::defaults::seed")]
            pub seed: u64,
            /// Record the training loss every this many steps.
            #[serde(default = "crate::train::defaults::logging_steps")]
            pub logging_steps: usize,
            #[serde(default)]
            pub pooling: crate::model::Pooling,
            #[serde(default)]
            pub device: crate::model::DeviceChoice,
            /// Torch threads (default: the available cores).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub threads: Option<usize>,
            /// Trainer's `group_by_length`: batches of similar lengths, so less padding
            /// ([`crate::train::group_by_length`]).
            #[serde(default, skip_serializing_if = "std::ops::Not::not", with = "crate::train::length_grouping")]
            pub group_by_length: bool,
            $($(#[$fattr])* pub $field: $ty,)*
        }

        impl $name {
            /// The Trainer arguments, for the training loop.
            pub fn training(&self) -> crate::train::TrainParams {
                crate::train::TrainParams {
                    model: self.model.clone(),
                    lr: self.lr,
                    epochs: self.epochs,
                    batch_size: self.batch_size,
                    eval_batch_size: self.eval_batch_size,
                    weight_decay: self.weight_decay,
                    warmup_steps: self.warmup_steps,
                    warmup_ratio: self.warmup_ratio,
                    max_grad_norm: self.max_grad_norm,
                    adam_beta1: self.adam_beta1,
                    adam_beta2: self.adam_beta2,
                    adam_epsilon: self.adam_epsilon,
                    seed: self.seed,
                    logging_steps: self.logging_steps,
                    pooling: self.pooling,
                    device: self.device,
                    threads: self.threads,
                    group_by_length: self.group_by_length,
                }
            }
        }
    };
}
pub(crate) use training_params;

training_params! {
    /// Hyperparameters of `finetune`, `headtune` and `bitfit` (the names of Trainer's arguments).
    pub struct TrainParams {}
}

pub mod defaults {
    pub fn lr() -> f64 {
        5e-5
    }
    pub fn epochs() -> usize {
        3
    }
    pub fn batch_size() -> usize {
        8
    }
    /// Trainer's `per_device_eval_batch_size`. Larger is slower on CPU, not faster: with
    /// length-sorted batches MiniLM encodes 31 reviews/s at 8 and 21 at 32 (256 tokens, 2
    /// cores), as the activations outgrow the caches.
    pub fn eval_batch_size() -> usize {
        8
    }
    pub fn max_grad_norm() -> f64 {
        1.0
    }
    pub fn beta1() -> f64 {
        0.9
    }
    pub fn beta2() -> f64 {
        0.999
    }
    pub fn epsilon() -> f64 {
        1e-8
    }
    pub fn seed() -> u64 {
        42
    }
    pub fn logging_steps() -> usize {
        50
    }
}

/// What a batch feeds the network: token ids, or precomputed head inputs.
pub enum Inputs {
    Tokens { ids: Tensor, mask: Tensor },
    Features(Tensor),
}

/// Length-grouped training order, seeded. As transformers' `LengthGroupedSampler`, the
/// shuffled order is cut into mega-batches of `min(n / (4 · batch), 50)` batches (so at least
/// four on a small set, which keeps batches from being the same every epoch), each sorted by
/// length and cut into batches, and the batch holding the longest example goes first (an
/// out-of-memory error shows at once). Unlike it, the batches of each mega-batch then come
/// in shuffled order rather than longest to shortest, so that the length of the reviews does
/// not follow the step in a saw-tooth of 50 steps (over three seeds this moved full
/// fine-tuning's accuracy within the noise: README, *Accuracy*). A short last batch stays
/// last.
pub fn group_by_length(
    order: &mut [usize],
    length: impl Fn(usize) -> usize,
    batch_size: usize,
    rng: &mut impl rand::Rng,
) {
    let batch_size = batch_size.max(1);
    let batches_per_mega_batch = (order.len() / (4 * batch_size)).clamp(1, 50);
    for mega_batch in order.chunks_mut(batches_per_mega_batch * batch_size) {
        mega_batch.sort_by_key(|&i| std::cmp::Reverse(length(i)));
        let whole = mega_batch.len() / batch_size * batch_size;
        let mut batches: Vec<Vec<usize>> = mega_batch[..whole].chunks(batch_size).map(<[usize]>::to_vec).collect();
        batches.shuffle(rng);
        for (slot, batch) in mega_batch[..whole].chunks_mut(batch_size).zip(batches) {
            slot.copy_from_slice(&batch);
        }
    }
    let whole = order.len() / batch_size * batch_size;
    let longest = (0..whole).max_by_key(|&p| (length(order[p]), std::cmp::Reverse(p)));
    if let Some(position) = longest.filter(|&p| p >= batch_size) {
        let (first, rest) = order.split_at_mut(batch_size);
        let start = position / batch_size * batch_size - batch_size;
        first.swap_with_slice(&mut rest[start..start + batch_size]);
    }
}

/// `group_by_length` in the resolved parameters: `"shuffled"` where it is on, so the keys of
/// grouped tasks differ from those of the sampler before the batches were shuffled (which
/// wrote `true`); TOML may say `true` or `"shuffled"`.
pub mod length_grouping {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    const ON: &str = "shuffled";

    pub fn serialize<S: Serializer>(on: &bool, serializer: S) -> Result<S::Ok, S::Error> {
        if *on {
            serializer.serialize_str(ON)
        } else {
            serializer.serialize_bool(false)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bool(bool),
            Word(String),
        }
        match Written::deserialize(deserializer) {
            Ok(Written::Bool(on)) => Ok(on),
            Ok(Written::Word(word)) if word == ON => Ok(true),
            _ => Err(D::Error::custom(format!("expected true, false or \"{ON}\""))),
        }
    }
}

/// A labelled set the loops can batch.
pub trait Examples {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sequence length of example `i` (for length-sorted evaluation batches).
    fn length(&self, i: usize) -> usize;
    fn batch(&self, indices: &[usize], device: Device) -> Result<(Inputs, Tensor)>;
}

/// Token examples, padded per batch.
pub struct TokenExamples<'a> {
    pub examples: &'a [Example],
    pub pad_id: i64,
}

impl Examples for TokenExamples<'_> {
    fn len(&self) -> usize {
        self.examples.len()
    }
    fn length(&self, i: usize) -> usize {
        self.examples[i].ids.len()
    }
    fn batch(&self, indices: &[usize], device: Device) -> Result<(Inputs, Tensor)> {
        let longest = indices.iter().map(|&i| self.examples[i].ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(indices.len() * longest);
        let mut mask = Vec::with_capacity(indices.len() * longest);
        for &i in indices {
            let example = &self.examples[i].ids;
            ids.extend_from_slice(example);
            ids.extend(std::iter::repeat_n(self.pad_id, longest - example.len()));
            mask.extend(std::iter::repeat_n(1i64, example.len()));
            mask.extend(std::iter::repeat_n(0i64, longest - example.len()));
        }
        let shape = [indices.len() as i64, longest as i64];
        let labels: Vec<i64> = indices.iter().map(|&i| self.examples[i].label).collect();
        Ok((
            Inputs::Tokens {
                ids: Tensor::from_slice(&ids).view(shape).to_device(device),
                mask: Tensor::from_slice(&mask).view(shape).to_device(device),
            },
            Tensor::from_slice(&labels).to_device(device),
        ))
    }
}

/// Precomputed head inputs `[n, hidden]` with their labels.
pub struct FeatureExamples {
    pub features: Tensor,
    pub labels: Tensor,
}

impl Examples for FeatureExamples {
    fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }
    fn length(&self, _i: usize) -> usize {
        1
    }
    fn batch(&self, indices: &[usize], device: Device) -> Result<(Inputs, Tensor)> {
        let index = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
        Ok((
            Inputs::Features(self.features.f_index_select(0, &index)?.to_device(device)),
            self.labels.f_index_select(0, &index)?.to_device(device),
        ))
    }
}

/// Logits of a batch in train or eval mode.
pub fn logits(model: &LoadedModel, inputs: &Inputs, train: bool, pooling: Pooling) -> Result<Tensor> {
    Ok(match inputs {
        Inputs::Tokens { ids, mask } => model.logits(ids, mask, train, pooling)?,
        Inputs::Features(features) => model.network.head_forward(features, train)?,
    })
}

/// Loss, accuracy and F1 of one pass over a set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub f1: f64,
    pub seconds: f64,
    pub examples: usize,
}

/// Evaluates in eval mode without gradients, length-sorted batches (so each is padded only to
/// its own longest, nearly nothing). In eval mode the encoder takes libtorch's fused attention
/// (`model::layers::attention`), where most of evaluation's time at 256–512 tokens went.
/// tch exposes no `InferenceMode`; a no-grad guard over the whole loop is the closest.
pub fn evaluate(
    ctx: &Context,
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
        ctx.check_cancelled()?;
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
        (ctx.progress)(
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
/// (saved with them by [`resume`]).
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

/// AdamW with Trainer's decay/no-decay groups, linear schedule and gradient clipping.
struct Optimizer {
    adamw: adamw::AdamW,
    lr: f64,
    warmup: usize,
    total: usize,
    max_grad_norm: f64,
}

impl Optimizer {
    fn new(trainable: Vec<(String, Tensor)>, params: &TrainParams, total: usize) -> Self {
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
            adamw: adamw::AdamW::new(trainable, params.adam_beta1, params.adam_beta2, params.adam_epsilon),
            lr: params.lr,
            warmup,
            total,
            max_grad_norm: params.max_grad_norm,
        }
    }

    /// transformers' `get_linear_schedule_with_warmup`, for the optimizer step `step` (0-based).
    fn lr_at(&self, step: usize) -> f64 {
        let factor = if step < self.warmup {
            step as f64 / self.warmup.max(1) as f64
        } else {
            ((self.total.saturating_sub(step)) as f64 / (self.total - self.warmup).max(1) as f64).max(0.0)
        };
        self.lr * factor
    }

    fn step(&mut self, loss: &Tensor, step: usize) -> Result<()> {
        self.adamw.zero_grad();
        loss.f_backward()?;
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

/// Trains the model's trainable parameters on `train`, evaluating on `eval` after each epoch.
/// With a resume slot in `ctx`, it saves its state after each epoch and starts from the last
/// state saved, if any.
pub fn train(
    ctx: &Context,
    model: &LoadedModel,
    params: &TrainParams,
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
        bail!("batch_size and epochs must be positive");
    }
    let steps_per_epoch = train.len().div_ceil(params.batch_size);
    let total = steps_per_epoch * params.epochs;
    let mut optimizer = Optimizer::new(model.trainable_parameters(), params, total);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.seed);
    let resumed = ctx
        .resume
        .as_ref()
        .and_then(|slot| slot.restore(model, &mut optimizer.adamw, params.epochs));
    let mut progress = resumed.unwrap_or_default();
    rng.set_word_pos(progress.rng_word_pos);
    let mut last_evaluation = None;
    for epoch in progress.epochs_done() + 1..=params.epochs {
        let epoch_started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        if params.group_by_length {
            group_by_length(&mut order, |i| train.length(i), params.batch_size, &mut rng);
        }
        // Dropout draws from libtorch's global generator, whose state tch cannot save: seeding
        // it per epoch from the saved stream makes a resumed epoch draw the same masks.
        tch::manual_seed(rng.random::<i64>());
        let mut epoch_loss = 0.0;
        for chunk in order.chunks(params.batch_size) {
            ctx.check_cancelled()?;
            let (inputs, labels) = train.batch(chunk, model.device())?;
            let batch_logits = logits(model, &inputs, true, params.pooling)?;
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
            (ctx.progress)(
                progress.step as u64,
                total as u64,
                &format!("epoch {epoch}/{} loss {:.4} {rate:.1} samples/s", params.epochs, value),
            );
        }
        progress.train_seconds += epoch_started.elapsed().as_secs_f64();
        let evaluation = evaluate(ctx, model, eval, params.eval_batch_size, params.pooling, n_classes)?;
        progress.epochs.push(EpochRecord {
            epoch,
            train_loss: epoch_loss / steps_per_epoch as f64,
            eval_loss: evaluation.loss,
            eval_accuracy: evaluation.accuracy,
            eval_f1: evaluation.f1,
            seconds: epoch_started.elapsed().as_secs_f64(),
        });
        progress.rng_word_pos = rng.get_word_pos();
        if let Some(slot) = &ctx.resume {
            slot.save(model, &optimizer.adamw, &progress)?;
        }
        last_evaluation = Some(evaluation);
    }
    // The last epoch's evaluation is the final model's; only a run resumed after its last
    // epoch has none in memory.
    let final_eval = match last_evaluation {
        Some(evaluation) => evaluation,
        None => evaluate(ctx, model, eval, params.eval_batch_size, params.pooling, n_classes)?,
    };
    Ok(TrainOutcome {
        epochs: progress.epochs,
        log: progress.log,
        final_eval,
        samples_per_second: (train.len() * params.epochs) as f64 / progress.train_seconds.max(1e-9),
        train_seconds: progress.train_seconds,
    })
}

/// What a saved checkpoint needs besides HF's files: how its head reads the encoder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub pooling: Pooling,
    pub method: String,
    pub base_model: String,
}

pub const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_INFO: &str = "orchestrate.json";

/// Saves the model in the HF layout under `<out>/checkpoint/`, plus `orchestrate.json`.
pub fn save_checkpoint(model: &LoadedModel, out: &Path, info: &CheckpointInfo) -> Result<()> {
    let dir = out.join(CHECKPOINT_DIR);
    model.save(&dir)?;
    write_info(&dir, info)
}

/// Writes `orchestrate.json` (pooling, method) beside saved weights in `dir`.
pub fn write_info(dir: &Path, info: &CheckpointInfo) -> Result<()> {
    crate::util::write_atomic(&dir.join(CHECKPOINT_INFO), &serde_json::to_vec_pretty(info)?)
}

pub fn checkpoint_info(artifact: &Path) -> Result<CheckpointInfo> {
    if !artifact.join(CHECKPOINT_DIR).is_dir() {
        bail!(
            "{} holds no {CHECKPOINT_DIR}/ (a `lora` task writes its merged model only with merge = true)",
            artifact.display()
        );
    }
    let path = artifact.join(CHECKPOINT_DIR).join(CHECKPOINT_INFO);
    serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?)
        .with_context(|| format!("{} is invalid", path.display()))
}

/// The trained checkpoint of input `slot` (the `checkpoint/` of a training task's
/// artifact) and its info.
pub fn load_trained(
    ctx: &Context,
    slot: &str,
    n_classes: usize,
    device: DeviceChoice,
    threads: Option<usize>,
) -> Result<(LoadedModel, CheckpointInfo)> {
    let artifact = &ctx.input(slot)?.dir;
    let load = || -> Result<(LoadedModel, CheckpointInfo)> {
        let info = checkpoint_info(artifact)?;
        let checkpoint = artifact.join(CHECKPOINT_DIR);
        let model = load_model(
            &checkpoint,
            Origin::Trained,
            n_classes,
            defaults::seed(),
            device,
            threads,
        )?;
        Ok((model, info))
    };
    load().with_context(|| format!("cannot load the trained model of input `{slot}`"))
}

/// What a task loads: a pretrained model that gets a head for the task, or a checkpoint
/// trained for it, whose head must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Pretrained,
    Trained,
}

/// Loads a model for a task: seeded head initialisation, `n_classes` labels.
pub fn load_model(
    path: &Path,
    origin: Origin,
    n_classes: usize,
    seed: u64,
    device: DeviceChoice,
    threads: Option<usize>,
) -> Result<LoadedModel> {
    let options = LoadOptions {
        device,
        threads,
        num_labels: Some(n_classes as i64),
        seed: Some(seed as i64),
        // A pretrained model's head for another label count is replaced (and listed in the
        // load report), as HF's `ignore_mismatched_sizes` does; a trained one's must fit.
        reinit_mismatched_head: origin == Origin::Pretrained,
        ..LoadOptions::default()
    };
    Ok(model::load(&path.to_string_lossy(), &options)?)
}

/// The pretrained `params.model` with a fresh head for `n_classes`, `method`'s parameters
/// marked trainable.
pub fn pretrained_for(
    ctx: &Context,
    params: &TrainParams,
    n_classes: usize,
    method: &model::Method,
) -> Result<LoadedModel> {
    let path = crate::tasks::tokenize::model_path(&ctx.base_dir, &params.model)?;
    let mut model = load_model(
        &path,
        Origin::Pretrained,
        n_classes,
        params.seed,
        params.device,
        params.threads,
    )?;
    model.apply_method(method)?;
    Ok(model)
}

/// Trains `method` on the `tokens` input from the pretrained `params.model` (the common
/// body of finetune, bitfit, lora and ia3); returns the trained model.
pub fn fit(ctx: &Context, params: &TrainParams, method: &model::Method) -> Result<(LoadedModel, TrainOutcome)> {
    let tokens = crate::tasks::tokenize::load(&ctx.input("tokens")?.dir)?;
    let n_classes = tokens.shape.n_classes;
    let model = pretrained_for(ctx, params, n_classes, method)?;
    let (train_set, eval_set) = token_sets(&tokens);
    let outcome = train(ctx, &model, params, &train_set, &eval_set, n_classes)?;
    Ok((model, outcome))
}

/// The train and eval splits of a `tokenize` artifact as batchable sets.
pub fn token_sets(tokens: &crate::tasks::tokenize::Tokenized) -> (TokenExamples<'_>, TokenExamples<'_>) {
    let pad_id = tokens.shape.pad_id;
    (
        TokenExamples {
            examples: &tokens.train,
            pad_id,
        },
        TokenExamples {
            examples: &tokens.eval,
            pad_id,
        },
    )
}

/// Saves the trained model as the task's checkpoint and returns its metrics.
pub fn finish(
    ctx: &Context,
    model: &LoadedModel,
    params: &TrainParams,
    method: &str,
    outcome: &TrainOutcome,
) -> Result<Metrics> {
    let info = CheckpointInfo {
        pooling: params.pooling,
        method: method.into(),
        base_model: params.model.clone(),
    };
    save_checkpoint(model, &ctx.out_dir, &info)?;
    training_metrics(method, model, outcome)
}

/// The common rows of a training task's metrics.
pub fn training_metrics(method: &str, model: &LoadedModel, outcome: &TrainOutcome) -> Result<Metrics> {
    let mut metrics = Metrics {
        method: Some(method.to_string()),
        trainable_params: Some(model.param_counts().trainable as u64),
        accuracy: Some(outcome.final_eval.accuracy),
        f1: Some(outcome.final_eval.f1),
        train_time_s: Some(outcome.train_seconds),
        eval_time_s: Some(outcome.final_eval.seconds),
        ..Metrics::default()
    };
    metrics.extra.insert("eval_loss".into(), outcome.final_eval.loss.into());
    metrics
        .extra
        .insert("epochs".into(), serde_json::to_value(&outcome.epochs)?);
    metrics.extra.insert("log".into(), serde_json::to_value(&outcome.log)?);
    metrics
        .extra
        .insert("train_samples_per_second".into(), outcome.samples_per_second.into());
    Ok(metrics)
}

#[cfg(test)]
mod tests {
    use super::group_by_length;
    use rand::SeedableRng;

    fn grouped(lengths: &[usize], batch_size: usize, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..lengths.len()).rev().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        group_by_length(&mut order, |i| lengths[i], batch_size, &mut rng);
        order
    }

    fn padded_tokens(order: &[usize], lengths: &[usize], batch_size: usize) -> usize {
        order
            .chunks(batch_size)
            .map(|batch| batch.len() * batch.iter().map(|&i| lengths[i]).max().unwrap())
            .sum()
    }

    #[test]
    fn length_grouping_pads_little_keeps_every_example_and_shuffles_the_batches() {
        // 2,003 examples, batch 8: mega-batches of 50 batches, a short last batch of 3.
        let lengths: Vec<usize> = (0..2003).map(|i| 1 + (i * 7919) % 509).collect();
        let order = grouped(&lengths, 8, 42);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..2003).collect::<Vec<_>>(), "every example exactly once");
        let input: Vec<usize> = (0..2003).rev().collect();
        let (before, after) = (padded_tokens(&input, &lengths, 8), padded_tokens(&order, &lengths, 8));
        assert!(after * 100 < before * 55, "padded tokens {before} -> {after}");
        let longest = *lengths.iter().max().unwrap();
        assert!(
            order[..8].iter().any(|&i| lengths[i] == longest),
            "the longest batch first"
        );
        let mut last = order[2000..].to_vec();
        last.sort();
        assert_eq!(last, [0, 1, 2], "the short last batch stays last");
        // Within a mega-batch the batches are not in length order: no long-to-short sweep.
        let maxima: Vec<usize> = order[400..800]
            .chunks(8)
            .map(|b| b.iter().map(|&i| lengths[i]).max().unwrap())
            .collect();
        assert!(!maxima.windows(2).all(|w| w[0] >= w[1]), "{maxima:?}");
        assert_eq!(order, grouped(&lengths, 8, 42), "seeded");
        assert_ne!(order, grouped(&lengths, 8, 7));
    }

    #[test]
    fn length_grouping_keeps_four_mega_batches_on_small_sets() {
        // 32 examples in batches of 8: mega-batches of one batch, as the Trainer's sampler has,
        // so each batch holds the examples it held before, in the same place unless it is
        // swapped with the first batch for holding the longest example.
        let lengths: Vec<usize> = (0..32).map(|i| 1 + (i * 13) % 29).collect();
        let input: Vec<usize> = (0..32).rev().collect();
        let order = grouped(&lengths, 8, 42);
        let set = |batch: &[usize]| {
            let mut b = batch.to_vec();
            b.sort();
            b
        };
        let moved = (0..4)
            .filter(|&b| set(&order[b * 8..b * 8 + 8]) != set(&input[b * 8..b * 8 + 8]))
            .count();
        assert!(moved == 0 || moved == 2, "{moved} batches changed");
        for batch in order.chunks(8) {
            assert!(batch.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
        }
    }
}
