//! What the training kinds share on the task side: Trainer's arguments as a parameter
//! schema ([`training_params!`], Trainer's defaults: lr 5e-5, batch 8, 3 epochs, seed 42,
//! AdamW without weight decay, clipping at 1.0), loading the pretrained model with a seeded
//! head, running the engine ([`crate::train`]) with its resume states kept in the store,
//! and the trained model's `checkpoint/` and metrics.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{Context, Metrics, ResumeNotice, ResumeStates};
use crate::model::{self, DeviceChoice, LoadOptions, LoadedModel, Pooling};
use crate::store::resume::ResumeLookup;
use crate::store::Provenance;
use crate::train::adamw::AdamW;
use crate::train::{self, Checkpoints, Examples, Hooks, Progress, Snapshot, TokenExamples, TrainConfig, TrainOutcome};

/// Declares a training task's parameter struct: Trainer's arguments (the fields of
/// [`TrainParams`], with its defaults) followed by the method's own fields, flat in one TOML
/// table (`lr = 1e-3`, `r = 6` side by side) and rejecting unknown keys. `training()` gives
/// the part [`fit`] and the engine take; `validate_training()` checks it.
macro_rules! training_params {
    ($(#[$attr:meta])* pub struct $name:ident { $($(#[$fattr:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$attr])*
        #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// A model folder (relative to the experiment file) or a hub id in the HF cache.
            pub model: String,
            #[serde(default = "crate::tasks::training::defaults::lr")]
            pub lr: f64,
            #[serde(default = "crate::tasks::training::defaults::epochs")]
            pub epochs: std::num::NonZeroUsize,
            #[serde(default = "crate::tasks::training::defaults::batch_size")]
            pub batch_size: std::num::NonZeroUsize,
            #[serde(default = "crate::tasks::training::defaults::eval_batch_size")]
            pub eval_batch_size: std::num::NonZeroUsize,
            #[serde(default)]
            pub weight_decay: f64,
            #[serde(default)]
            pub warmup_steps: usize,
            /// Fraction of all steps used for warmup (when `warmup_steps` is 0).
            #[serde(default)]
            pub warmup_ratio: f64,
            #[serde(default = "crate::tasks::training::defaults::max_grad_norm")]
            pub max_grad_norm: f64,
            #[serde(default = "crate::tasks::training::defaults::beta1")]
            pub adam_beta1: f64,
            #[serde(default = "crate::tasks::training::defaults::beta2")]
            pub adam_beta2: f64,
            #[serde(default = "crate::tasks::training::defaults::epsilon")]
            pub adam_epsilon: f64,
            #[serde(default = "crate::tasks::training::defaults::seed")]
            pub seed: u64,
            /// Record the training loss every this many steps.
            #[serde(default = "crate::tasks::training::defaults::logging_steps")]
            pub logging_steps: std::num::NonZeroUsize,
            #[serde(default)]
            pub pooling: crate::model::Pooling,
            #[serde(default)]
            pub device: crate::model::DeviceChoice,
            /// Torch threads (default: the available cores).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub threads: Option<usize>,
            /// Trainer's `group_by_length`: batches of similar lengths, so less padding
            /// ([`crate::train::sampler::group_by_length`]).
            #[serde(default, skip_serializing_if = "std::ops::Not::not", with = "crate::tasks::training::length_grouping")]
            pub group_by_length: bool,
            /// `"bf16"`: mixed precision (Trainer's `bf16=True`); float32 by default.
            #[serde(default, skip_serializing_if = "crate::train::Precision::is_default")]
            pub precision: crate::train::Precision,
            /// How dropout draws its masks: `"bits16"` (16 random bits per element, `p`
            /// quantised to 1/65536) or `"torch"` (torch's float Bernoulli draws, as
            /// transformers does).
            #[serde(default, skip_serializing_if = "crate::model::layers::DropoutMasks::is_default")]
            pub dropout_masks: crate::model::layers::DropoutMasks,
            /// Trainer's `metric_for_best_model`: `"loss"`, `"accuracy"` or `"f1"` (also with
            /// an `eval_` prefix); tracks the best epoch.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub metric_for_best_model: Option<crate::train::BestMetric>,
            /// Publish the best epoch's weights instead of the last one's.
            #[serde(default, skip_serializing_if = "std::ops::Not::not")]
            pub load_best_model_at_end: bool,
            /// `EarlyStoppingCallback`: stop after this many evaluations in a row without an
            /// improvement (needs `load_best_model_at_end`, as in transformers).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub early_stopping_patience: Option<std::num::NonZeroUsize>,
            /// How much better than the best an evaluation must be to count as an improvement.
            #[serde(default, skip_serializing_if = "crate::tasks::training::is_zero")]
            pub early_stopping_threshold: f64,
            /// A JSON file (relative to the experiment file) with the training order to use,
            /// one permutation of the training examples per epoch, as in the
            /// `batch_order.json` every training writes; its content keys the task.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub batch_order: Option<String>,
            $($(#[$fattr])* pub $field: $ty,)*
        }

        impl $name {
            /// What [`fit`] and the engine need of these parameters.
            pub fn training(&self) -> crate::tasks::training::TrainingArgs<'_> {
                crate::tasks::training::TrainingArgs {
                    model: &self.model,
                    batch_order: self.batch_order.as_deref(),
                    device: self.device,
                    threads: self.threads,
                    config: crate::train::TrainConfig {
                        lr: self.lr,
                        epochs: self.epochs.get(),
                        batch_size: self.batch_size.get(),
                        eval_batch_size: self.eval_batch_size.get(),
                        weight_decay: self.weight_decay,
                        warmup_steps: self.warmup_steps,
                        warmup_ratio: self.warmup_ratio,
                        max_grad_norm: self.max_grad_norm,
                        adam_beta1: self.adam_beta1,
                        adam_beta2: self.adam_beta2,
                        adam_epsilon: self.adam_epsilon,
                        seed: self.seed,
                        logging_steps: self.logging_steps.get(),
                        pooling: self.pooling,
                        group_by_length: self.group_by_length,
                        precision: self.precision,
                        dropout_masks: self.dropout_masks,
                        batch_order: None,
                        best: crate::train::BestModel {
                            metric: self.metric_for_best_model,
                            load_best_model_at_end: self.load_best_model_at_end,
                            early_stopping_patience: self.early_stopping_patience.map(|p| p.get()),
                            early_stopping_threshold: self.early_stopping_threshold,
                        },
                    },
                }
            }

            /// Values serde accepts but training cannot use, with the key they are under.
            pub fn validate_training(&self) -> Result<(), crate::tasks::ParamError> {
                use crate::tasks::check;
                check::positive("lr", self.lr)?;
                check::non_negative("weight_decay", self.weight_decay)?;
                check::fraction("warmup_ratio", self.warmup_ratio)?;
                check::non_negative("max_grad_norm", self.max_grad_norm)?;
                check::fraction("adam_beta1", self.adam_beta1)?;
                check::fraction("adam_beta2", self.adam_beta2)?;
                check::positive("adam_epsilon", self.adam_epsilon)?;
                check::non_negative("early_stopping_threshold", self.early_stopping_threshold)?;
                if self.early_stopping_patience.is_some() && !self.load_best_model_at_end {
                    return Err(crate::tasks::ParamError::at(
                        "early_stopping_patience",
                        "early stopping needs load_best_model_at_end = true (as transformers' EarlyStoppingCallback does)",
                    ));
                }
                check::threads(self.threads)
            }
        }
    };
}
pub(crate) use training_params;

pub fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

training_params! {
    /// Hyperparameters of `finetune`, `headtune` and `bitfit` (the names of Trainer's arguments).
    pub struct TrainParams {}
}

pub mod defaults {
    use std::num::NonZeroUsize;

    pub fn lr() -> f64 {
        5e-5
    }
    pub fn epochs() -> NonZeroUsize {
        NonZeroUsize::new(3).unwrap()
    }
    pub fn batch_size() -> NonZeroUsize {
        NonZeroUsize::new(8).unwrap()
    }
    /// Trainer's `per_device_eval_batch_size`; larger batches are slower on CPU, not faster
    /// (docs/performance.md).
    pub fn eval_batch_size() -> NonZeroUsize {
        NonZeroUsize::new(8).unwrap()
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
    pub fn logging_steps() -> NonZeroUsize {
        NonZeroUsize::new(50).unwrap()
    }
}

/// The training arguments of a task's parameters, as [`fit`] and the engine take them.
pub struct TrainingArgs<'a> {
    pub model: &'a str,
    /// The `batch_order` file, read when training starts into `config.batch_order`.
    pub batch_order: Option<&'a str>,
    pub device: DeviceChoice,
    pub threads: Option<usize>,
    pub config: TrainConfig,
}

/// Test hook: abort the process (as `kill -9` would end it) right after the state of this
/// epoch is saved.
pub const ABORT_AFTER_EPOCH_ENV: &str = "ORCHESTRATE_TEST_ABORT_AFTER_EPOCH";

/// The engine's [`Checkpoints`] in the store, under the task's cache key
/// (`crate::store::resume`). A state that fails its manifest check or does not fit the model
/// is reported and ignored: the task trains from scratch.
impl Checkpoints for ResumeStates<'_> {
    fn save(&self, model: &LoadedModel, optimizer: &AdamW, progress: &Progress, best: Option<&Snapshot>) -> Result<()> {
        let staging = self.store.stage(self.key)?;
        train::state::write(staging.path(), model, optimizer, progress, best)?;
        let provenance = Provenance {
            task: self.task,
            experiment: self.experiment,
            duration_s: progress.train_seconds,
            peak_rss_bytes: None,
        };
        self.store
            .save_resume_state(staging, self.key, progress.epochs_done(), self.parts, &provenance)
            .context("cannot save the resume state")?;
        let abort_after = std::env::var(ABORT_AFTER_EPOCH_ENV).ok();
        if abort_after.and_then(|e| e.parse().ok()) == Some(progress.epochs_done()) {
            std::process::abort();
        }
        Ok(())
    }

    fn restore(
        &self,
        model: &LoadedModel,
        optimizer: &mut AdamW,
        epochs: usize,
    ) -> Option<(Progress, Option<Snapshot>)> {
        let dir = match self.store.latest_resume_state(self.key) {
            ResumeLookup::None => return None,
            ResumeLookup::Found { dir, .. } => dir,
            ResumeLookup::Corrupt { epoch, problem } => {
                (self.notify)(ResumeNotice::Ignored {
                    reason: format!("the state after epoch {epoch} is corrupt: {problem}"),
                });
                return None;
            }
        };
        match train::state::read(&dir, model, optimizer, epochs) {
            Ok((progress, best)) => {
                (self.notify)(ResumeNotice::Resumed {
                    epoch: progress.epochs_done(),
                    epochs,
                });
                Some((progress, best))
            }
            Err(problem) => {
                (self.notify)(ResumeNotice::Ignored {
                    reason: format!("{} cannot be loaded: {problem:#}", dir.display()),
                });
                None
            }
        }
    }
}

/// The engine's hooks for a task: its progress and cancellation, and its resume states.
pub fn hooks<'a>(ctx: &'a Context) -> Hooks<'a> {
    Hooks {
        checkpoints: ctx.resume.as_ref().map(|states| states as &dyn Checkpoints),
        ..ctx.hooks()
    }
}

/// Trains `model` on `train` with the task's hooks (resuming from a saved state).
pub fn train_resumably(
    ctx: &Context,
    model: &LoadedModel,
    params: &TrainingArgs,
    train: &dyn Examples,
    eval: &dyn Examples,
    n_classes: usize,
) -> Result<TrainOutcome> {
    let mut config = params.config.clone();
    if let Some(file) = params.batch_order {
        config.batch_order = Some(read_batch_order(
            &ctx.resolve(Path::new(file)),
            train.len(),
            config.epochs,
        )?);
    }
    let outcome = train::train(&hooks(ctx), model, &config, train, eval, n_classes)?;
    let state = train::trainer_state::trainer_state(&config, &outcome, train.len());
    crate::util::write_atomic(&ctx.output(TRAINER_STATE), &serde_json::to_vec_pretty(&state)?)?;
    let order = BatchOrder {
        examples: train.len(),
        batch_size: config.batch_size,
        epochs: train::batch_orders(&config, train, outcome.epochs.len()),
    };
    crate::util::write_atomic(&ctx.output(BATCH_ORDER), &serde_json::to_vec(&order)?)?;
    Ok(outcome)
}

/// transformers' `TrainerState` file, beside the task's metrics.
pub const TRAINER_STATE: &str = "trainer_state.json";

/// The order the training examples came in ([`BatchOrder`]), beside the task's metrics.
pub const BATCH_ORDER: &str = "batch_order.json";

/// A training order: per epoch, the indices of the training split's examples (the rows of
/// the `tokenize` task's train split, in the dataset's order) as the batches took them,
/// `batch_size` at a time. The file every training writes and a `batch_order` file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchOrder {
    pub examples: usize,
    pub batch_size: usize,
    pub epochs: Vec<Vec<usize>>,
}

/// Reads a `batch_order` file and checks it against the training split: for each of the
/// `epochs` epochs, one permutation of the split's `examples` indices.
pub fn read_batch_order(path: &Path, examples: usize, epochs: usize) -> Result<Vec<Vec<usize>>> {
    let read = || -> Result<Vec<Vec<usize>>> {
        let order: BatchOrder = serde_json::from_slice(&std::fs::read(path)?)?;
        if order.examples != examples {
            bail!(
                "it orders {} examples; the training split has {examples}",
                order.examples
            );
        }
        if order.epochs.len() != epochs {
            bail!("it holds {} epochs; the task trains {epochs}", order.epochs.len());
        }
        for (epoch, indices) in order.epochs.iter().enumerate() {
            let mut seen = vec![false; examples];
            for (position, &index) in indices.iter().enumerate() {
                match seen.get_mut(index) {
                    None => bail!(
                        "epoch {}, position {position}: index {index} is not below {examples}",
                        epoch + 1
                    ),
                    Some(true) => bail!("epoch {}, position {position}: index {index} comes twice", epoch + 1),
                    Some(slot) => *slot = true,
                }
            }
            if indices.len() != examples {
                bail!("epoch {} has {} indices, not {examples}", epoch + 1, indices.len());
            }
        }
        Ok(order.epochs)
    };
    read().with_context(|| format!("batch_order file {}", path.display()))
}

/// The `files` of a training kind: the model's, and the `batch_order` file when one is given.
pub fn training_files(base_dir: &Path, model: &str, batch_order: Option<&str>) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut files = super::tokenize::model_files(base_dir, model)?;
    if let Some(order) = batch_order {
        files.push(("batch_order", base_dir.join(order)));
    }
    Ok(files)
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
    params: &TrainingArgs,
    n_classes: usize,
    method: &model::Method,
) -> Result<LoadedModel> {
    let path = super::tokenize::model_path(&ctx.base_dir, params.model)?;
    let mut model = load_model(
        &path,
        Origin::Pretrained,
        n_classes,
        params.config.seed,
        params.device,
        params.threads,
    )?;
    model.apply_method(method)?;
    Ok(model)
}

/// Trains `method` on the `tokens` input from the pretrained `params.model` (the common
/// body of finetune, bitfit, lora and ia3); returns the trained model.
pub fn fit(ctx: &Context, params: &TrainingArgs, method: &model::Method) -> Result<(LoadedModel, TrainOutcome)> {
    let tokens = super::tokenize::load(&ctx.input("tokens")?.dir)?;
    let n_classes = tokens.shape.n_classes;
    let model = pretrained_for(ctx, params, n_classes, method)?;
    let (train_set, eval_set) = token_sets(&tokens);
    let outcome = train_resumably(ctx, &model, params, &train_set, &eval_set, n_classes)?;
    Ok((model, outcome))
}

/// The train and eval splits of a `tokenize` artifact as batchable sets.
pub fn token_sets(tokens: &super::tokenize::Tokenized) -> (TokenExamples<'_>, TokenExamples<'_>) {
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
    params: &TrainingArgs,
    method: &str,
    outcome: &TrainOutcome,
) -> Result<Metrics> {
    let info = CheckpointInfo {
        pooling: params.config.pooling,
        method: method.into(),
        base_model: params.model.to_string(),
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
    if let Some(best) = outcome.best {
        metrics.extra.insert("best_epoch".into(), best.epoch.into());
        metrics.extra.insert("best_metric".into(), best.metric.into());
    }
    if outcome.stopped_early {
        metrics
            .extra
            .insert("stopped_after_epoch".into(), outcome.epochs.len().into());
    }
    Ok(metrics)
}
