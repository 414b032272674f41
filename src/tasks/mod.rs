//! Task kinds: one file per kind, all behind the [`Task`] trait.
//!
//! A kind declares its parameters (a serde struct that rejects unknown fields), the
//! input slots it reads (other tasks' artifacts), the external files it reads (hashed
//! into the cache key instead of their paths), a format version (bump it when its
//! outputs change meaning), and `run`. The scheduler never knows what a kind does; the
//! store never knows what a file means. Adding a method is one new file plus one line
//! in [`registry`].

/// Declares the parameters of a kind that runs a model without training it: the kind's own
/// fields, then the evaluation batch size, device and thread count they all take.
macro_rules! inference_params {
    ($(#[$attr:meta])* pub struct $name:ident { $($(#[$fattr:meta])* pub $field:ident : $ty:ty,)* }) => {
        $(#[$attr])*
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fattr])* pub $field: $ty,)*
            #[serde(default = "crate::tasks::training::defaults::eval_batch_size")]
            pub batch_size: std::num::NonZeroUsize,
            #[serde(default)]
            pub device: crate::model::DeviceChoice,
            /// The float type the model runs in (`float32` or `bfloat16`).
            #[serde(default, skip_serializing_if = "crate::model::Dtype::is_default")]
            pub dtype: crate::model::Dtype,
            /// Torch threads (default: the available cores).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub threads: Option<usize>,
        }

        impl $name {
            /// Checks the fields every inference kind has.
            pub fn validate_common(&self) -> Result<(), crate::tasks::ParamError> {
                crate::tasks::check::threads(self.threads)
            }
        }
    };
}

/// The [`Task`] items of a kind that trains its `model` parameter on a `tokenize` task's
/// splits: that input slot, the model's files in the key, a row in the report.
macro_rules! trains_on_tokens {
    ($params:ty) => {
        fn slots() -> &'static [crate::tasks::Slot] {
            crate::tasks::TOKENS_INPUT
        }

        fn files(
            params: &$params,
            base_dir: &std::path::Path,
        ) -> anyhow::Result<Vec<(&'static str, std::path::PathBuf)>> {
            crate::tasks::training::training_files(base_dir, &params.model, params.batch_order.as_deref())
        }

        fn reports() -> bool {
            true
        }
    };
}

/// A kind that trains one fixed method with the Trainer's arguments and writes the
/// resulting `checkpoint/` (finetune, bitfit).
macro_rules! checkpoint_training_task {
    ($name:ident, $kind:literal, $version:literal, $method:expr, $label:literal $(, $role:expr)?) => {
        pub struct $name;

        impl crate::tasks::Task for $name {
            const KIND: &'static str = $kind;
            const VERSION: u32 = $version;
            type Params = crate::tasks::training::TrainParams;

            trains_on_tokens!(crate::tasks::training::TrainParams);

            fn validate(
                params: &crate::tasks::training::TrainParams,
                _cx: &crate::tasks::ValidateContext,
            ) -> Result<(), crate::tasks::ParamError> {
                params.validate_training()
            }

            $(fn report_role() -> crate::tasks::ReportRole {
                $role
            })?

            fn run(
                params: &crate::tasks::training::TrainParams,
                ctx: &crate::tasks::Context,
            ) -> anyhow::Result<crate::tasks::Metrics> {
                let _torch = crate::train::exclusive_torch();
                let training = params.training();
                let (model, outcome) = crate::tasks::training::fit(ctx, &training, &$method)?;
                crate::tasks::training::finish(ctx, &model, &training, $label, &outcome)
            }
        }
    };
}

pub mod adapter;
pub mod bitfit;
pub mod check;
pub mod classify;
pub mod dataset;
pub mod evaluate;
pub mod features;
pub mod finetune;
pub mod headtune;
pub mod ia3;
pub mod logreg;
pub mod lora;
pub mod naive_bayes;
pub mod prefix_tuning;
pub mod prompt_tuning;
pub mod qlora;
pub mod surgery_check;
pub mod svd_approx;
pub mod tfidf;
pub mod tokenize;
pub mod training;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context as _, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// An input slot of a task kind: the name used under `inputs` in TOML and the kinds
/// whose artifacts it accepts.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub name: &'static str,
    pub accepts: &'static [&'static str],
    /// May be left out (the kind then works from its parameters alone).
    pub optional: bool,
}

impl Slot {
    pub const fn required(name: &'static str, accepts: &'static [&'static str]) -> Self {
        Self {
            name,
            accepts,
            optional: false,
        }
    }

    pub const fn optional(name: &'static str, accepts: &'static [&'static str]) -> Self {
        Self {
            name,
            accepts,
            optional: true,
        }
    }
}

/// The input of the training kinds: a `tokenize` task's splits.
pub const TOKENS_INPUT: &[Slot] = &[Slot::required("tokens", &["tokenize"])];

/// What a task reports about itself; stored as `metrics.json` in its artifact and read by
/// `report`. The common columns are typed; anything kind-specific goes to `extra`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainable_params: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_time_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_time_s: Option<f64>,
    /// Peak resident memory while the task ran (set by the scheduler, see
    /// `scheduler::memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The part a reporting kind's entries play in the report's analysis (`report::analysis`),
/// so that the report matches no kind by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportRole {
    /// A row of the table and a point of accuracy vs trainable parameters, nothing more.
    Row,
    /// A level the rank curves are read against, shown as `label`; `bar` marks the level
    /// each curve's lowest rank must beat.
    Reference { label: &'static str, bar: bool },
    /// Swept over the rank held by the parameter `rank`: a curve of accuracy vs rank.
    RankCurve { rank: &'static str },
}

/// An upstream artifact, already verified by the store.
#[derive(Debug, Clone)]
pub struct InputArtifact {
    pub task: String,
    pub kind: String,
    pub dir: PathBuf,
}

pub use crate::train::ProgressFn;

/// What a resuming task tells the scheduler.
#[derive(Debug, Clone)]
pub enum ResumeNotice {
    /// Work goes on after `epoch` of `epochs`.
    Resumed { epoch: usize, epochs: usize },
    /// A saved state could not be used; the task starts from scratch.
    Ignored { reason: String },
}

/// Where a running task may keep states to resume from after a kill (a training's state
/// after each epoch): the store, under the task's cache key (`crate::store::resume`). The
/// scheduler hands it over without knowing what goes in; `training` fills it.
pub struct ResumeStates<'a> {
    pub store: &'a crate::store::Store,
    pub key: &'a str,
    /// The task's key parts, recorded in each state's manifest.
    pub parts: &'a serde_json::Value,
    pub task: &'a str,
    pub experiment: &'a str,
    pub notify: &'a (dyn Fn(ResumeNotice) + Sync),
}

/// Everything a running task may touch.
pub struct Context<'a> {
    /// Private staging directory; becomes the artifact when the task succeeds.
    pub out_dir: PathBuf,
    /// Directory of the experiment file that declared the task (relative paths resolve here).
    pub base_dir: PathBuf,
    pub inputs: BTreeMap<String, InputArtifact>,
    pub progress: &'a ProgressFn<'a>,
    pub cancel: &'a AtomicBool,
    /// Where a training task saves its state after each epoch and resumes from.
    pub resume: Option<ResumeStates<'a>>,
}

impl Context<'_> {
    pub fn input(&self, slot: &str) -> Result<&InputArtifact> {
        self.inputs
            .get(slot)
            .with_context(|| format!("internal: input slot `{slot}` was not wired"))
    }

    pub fn output(&self, file: &str) -> PathBuf {
        self.out_dir.join(file)
    }

    /// Long loops call this so Ctrl-C stops a task between steps, leaving no artifact.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        Ok(())
    }

    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    /// The engine's hooks for a loop that keeps no state: progress and cancellation.
    pub fn hooks(&self) -> crate::train::Hooks<'_> {
        crate::train::Hooks::new(self.progress, self.cancel)
    }
}

/// One task kind, statically typed.
pub trait Task: Send + Sync + 'static {
    const KIND: &'static str;
    /// Bump when the kind's outputs change meaning: every cached artifact of the kind
    /// becomes stale.
    const VERSION: u32;
    type Params: Serialize + DeserializeOwned + Send + Sync;

    fn slots() -> &'static [Slot] {
        &[]
    }

    /// External files (or model folders) read by the task, by parameter name, resolved
    /// against the experiment file's directory. Their content digest enters the cache key in
    /// place of the path, so moving a CSV does not rerun anything and editing it does.
    fn files(_params: &Self::Params, _base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        Ok(Vec::new())
    }

    /// Whether the task's metrics form a row of the comparison table.
    fn reports() -> bool {
        false
    }

    /// Checks values serde accepts but the kind cannot use (a zero rate, a rank beyond the
    /// layer, `max_len` beyond the model's positions) before any task runs; the error names
    /// the parameter, so the spec can point at it.
    fn validate(_params: &Self::Params, _cx: &ValidateContext) -> Result<(), ParamError> {
        Ok(())
    }

    /// What the kind's rows are to the report's analysis beyond a row.
    fn report_role() -> ReportRole {
        ReportRole::Row
    }

    /// The parameters (its own or an upstream task's) whose product its time grows with,
    /// for the time estimates (`crate::estimate`): a training's passes over its training
    /// examples by default.
    fn cost_factors() -> &'static [&'static str] {
        &["epochs", "max_len", "train_size"]
    }

    fn run(params: &Self::Params, ctx: &Context) -> Result<Metrics>;
}

/// What [`Task::validate`] may consult besides the parameters.
pub struct ValidateContext<'a> {
    /// Directory of the experiment file that declared the task.
    pub base_dir: &'a Path,
    /// The config of the model the task works with (its own `model` parameter, else the
    /// nearest upstream task's), when it can be read without running anything.
    pub model: Option<&'a crate::model::ModelConfig>,
    /// The resolved parameters of the upstream task bound to each input slot (a training's
    /// `tokens` input says its `max_len`).
    pub inputs: &'a BTreeMap<String, &'a serde_json::Value>,
}

impl ValidateContext<'_> {
    /// Parameter `key` of the task bound to input `slot`, when it is a whole number.
    pub fn input_usize(&self, slot: &str, key: &str) -> Option<usize> {
        self.inputs.get(slot)?.get(key)?.as_u64().map(|n| n as usize)
    }
}

/// Object-safe face of a [`Task`], used by the spec, the planner and the scheduler.
pub trait DynTask: Send + Sync {
    fn kind(&self) -> &'static str;
    fn version(&self) -> u32;
    fn slots(&self) -> &'static [Slot];
    fn reports(&self) -> bool;
    fn report_role(&self) -> ReportRole;
    /// [`Task::cost_factors`].
    fn cost_factors(&self) -> &'static [&'static str];
    /// Field names of the parameter struct (for applying `[defaults]`).
    fn param_names(&self) -> &'static [&'static str];
    /// Deserializes (and so validates) a parameter table, returning the canonical resolved
    /// parameters with every default filled in.
    fn resolve(&self, table: toml::Table) -> Result<serde_json::Value, ParamError>;
    /// [`Task::validate`] on resolved parameters.
    fn validate(&self, params: &serde_json::Value, cx: &ValidateContext) -> Result<(), ParamError>;
    fn files(&self, params: &serde_json::Value, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>>;
    fn run(&self, params: &serde_json::Value, ctx: &Context) -> Result<Metrics>;
}

/// A parameter that failed to deserialize or validate: the top-level key (when known) and
/// why.
#[derive(Debug, Clone)]
pub struct ParamError {
    pub key: Option<String>,
    pub message: String,
}

impl ParamError {
    pub fn at(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }
}

struct Kind<T>(PhantomData<fn() -> T>);

impl<T: Task> Kind<T> {
    fn typed(params: &serde_json::Value) -> Result<T::Params> {
        serde_json::from_value(params.clone())
            .with_context(|| format!("internal: resolved {} parameters do not parse", T::KIND))
    }
}

impl<T: Task> DynTask for Kind<T> {
    fn kind(&self) -> &'static str {
        T::KIND
    }
    fn version(&self) -> u32 {
        T::VERSION
    }
    fn slots(&self) -> &'static [Slot] {
        T::slots()
    }
    fn reports(&self) -> bool {
        T::reports()
    }
    fn report_role(&self) -> ReportRole {
        T::report_role()
    }
    fn cost_factors(&self) -> &'static [&'static str] {
        T::cost_factors()
    }
    fn param_names(&self) -> &'static [&'static str] {
        crate::util::struct_fields::<T::Params>()
    }
    fn resolve(&self, table: toml::Table) -> Result<serde_json::Value, ParamError> {
        // JSON has no inf or NaN: the canonical parameters could not hold them.
        if let Some((key, value)) = table.iter().find(|(_, value)| has_non_finite(value)) {
            return Err(ParamError::at(
                key,
                format!("{key} must be a finite number, got {value}"),
            ));
        }
        let value = toml::Value::Table(table);
        let typed: T::Params = serde_path_to_error::deserialize(value).map_err(|err| {
            let key = err.path().iter().next().and_then(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            });
            let message = err.inner().message().trim_end().to_string();
            // serde reports an unknown field without a path; recover the key from its message.
            let key = key.or_else(|| crate::util::unknown_field(&message));
            ParamError { key, message }
        })?;
        serde_json::to_value(&typed).map_err(|err| ParamError {
            key: None,
            message: err.to_string(),
        })
    }
    fn validate(&self, params: &serde_json::Value, cx: &ValidateContext) -> Result<(), ParamError> {
        let typed = Self::typed(params).map_err(|err| ParamError {
            key: None,
            message: format!("{err:#}"),
        })?;
        T::validate(&typed, cx)
    }
    fn files(&self, params: &serde_json::Value, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        T::files(&Self::typed(params)?, base_dir)
    }
    fn run(&self, params: &serde_json::Value, ctx: &Context) -> Result<Metrics> {
        T::run(&Self::typed(params)?, ctx)
    }
}

/// Whether a TOML value is or holds `inf` or `nan`.
fn has_non_finite(value: &toml::Value) -> bool {
    match value {
        toml::Value::Float(x) => !x.is_finite(),
        toml::Value::Array(items) => items.iter().any(has_non_finite),
        toml::Value::Table(table) => table.values().any(has_non_finite),
        _ => false,
    }
}

/// Every task kind orchestrate knows.
pub fn registry() -> &'static [&'static dyn DynTask] {
    static KINDS: &[&dyn DynTask] = &[
        &Kind::<dataset::Dataset>(PhantomData),
        &Kind::<tfidf::Tfidf>(PhantomData),
        &Kind::<logreg::LogReg>(PhantomData),
        &Kind::<naive_bayes::NaiveBayes>(PhantomData),
        &Kind::<tokenize::Tokenize>(PhantomData),
        &Kind::<features::Features>(PhantomData),
        &Kind::<evaluate::Evaluate>(PhantomData),
        &Kind::<finetune::Finetune>(PhantomData),
        &Kind::<headtune::Headtune>(PhantomData),
        &Kind::<bitfit::BitFit>(PhantomData),
        &Kind::<lora::Lora>(PhantomData),
        &Kind::<qlora::Qlora>(PhantomData),
        &Kind::<ia3::Ia3>(PhantomData),
        &Kind::<prompt_tuning::PromptTuning>(PhantomData),
        &Kind::<prefix_tuning::PrefixTuning>(PhantomData),
        &Kind::<adapter::Adapter>(PhantomData),
        &Kind::<svd_approx::SvdApprox>(PhantomData),
        &Kind::<surgery_check::SurgeryCheck>(PhantomData),
    ];
    KINDS
}

pub fn lookup(kind: &str) -> Option<&'static dyn DynTask> {
    registry().iter().copied().find(|k| k.kind() == kind)
}

pub fn kind_names() -> Vec<&'static str> {
    registry().iter().map(|k| k.kind()).collect()
}

/// A tuning method by name with its parameters (a task table without `kind`/`inputs`:
/// `r`, `lora_alpha`, …), validated by the method's task kind: what `inspect --method` shows.
pub fn method(name: &str, model: &str, mut params: toml::Table) -> Result<crate::model::Method> {
    use crate::model::Method;
    let typed = |kind: &str, params: toml::Table| -> Result<serde_json::Value> {
        let task = lookup(kind).with_context(|| format!("internal: no kind {kind}"))?;
        task.resolve(params).map_err(|e| {
            let key = e.key.map(|k| format!("{k}: ")).unwrap_or_default();
            anyhow::anyhow!("--method {name}: {key}{}", e.message)
        })
    };
    params.insert("model".into(), toml::Value::String(model.into()));
    Ok(match name {
        "lora" => Method::Lora(serde_json::from_value::<lora::Params>(typed("lora", params)?)?.spec()),
        "ia3" => Method::Ia3(serde_json::from_value::<ia3::Params>(typed("ia3", params)?)?.spec()),
        "qlora" => Method::Qlora(serde_json::from_value::<qlora::Params>(typed("qlora", params)?)?.spec()),
        "prompt_tuning" => Method::PromptTuning(
            serde_json::from_value::<prompt_tuning::Params>(typed("prompt_tuning", params)?)?.spec(Path::new("."))?,
        ),
        "prefix_tuning" => Method::PrefixTuning(
            serde_json::from_value::<prefix_tuning::Params>(typed("prefix_tuning", params)?)?.spec(),
        ),
        "adapter" => Method::Adapter(serde_json::from_value::<adapter::Params>(typed("adapter", params)?)?.spec()?),
        other => {
            let method: Method = other.parse()?;
            params.remove("model");
            if let Some(key) = params.keys().next() {
                bail!("--method {other} takes no parameters, got `{key}`");
            }
            method
        }
    })
}
