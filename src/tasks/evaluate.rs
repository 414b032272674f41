//! `evaluate`: a model on a tokenized split — loss, accuracy, F1 and time. With a `model`
//! input (a `finetune` or `headtune` task) it evaluates that checkpoint; with only the
//! `model` parameter it evaluates the pretrained encoder under a freshly initialised
//! (seeded) head: the zero-shot row.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::tokenize::{self, model_files, model_path};
use super::training;
use super::{Context, Metrics, ParamError, Slot, Task, ValidateContext};
use crate::model::Pooling;
use crate::train::{self, TokenExamples};

pub struct Evaluate;

inference_params! {
    pub struct Params {
        /// The pretrained model, used when no `model` input is wired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub model: Option<String>,
        #[serde(default)]
        pub split: Split,
        /// Pooling of a pretrained model (a checkpoint keeps the one it was trained with).
        #[serde(default)]
        pub pooling: Pooling,
        /// Seed of the fresh head's initialisation.
        #[serde(default = "crate::tasks::training::defaults::seed")]
        pub seed: u64,
    }
}

/// The split of the `tokens` input to evaluate on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    #[default]
    Eval,
    Train,
}

impl Task for Evaluate {
    const KIND: &'static str = "evaluate";
    const VERSION: u32 = 1;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("tokens", &["tokenize"]),
            Slot::optional("model", &["finetune", "headtune", "bitfit", "lora"]),
        ];
        SLOTS
    }

    fn files(params: &Params, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        match &params.model {
            Some(model) => model_files(base_dir, model),
            None => Ok(Vec::new()),
        }
    }

    fn reports() -> bool {
        true
    }

    fn validate(params: &Params, _cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_common()
    }

    /// One pass over the evaluation examples.
    fn cost_factors() -> &'static [&'static str] {
        &["max_len", "eval_size"]
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let tokens = tokenize::load(&ctx.input("tokens")?.dir)?;
        let examples = match params.split {
            Split::Eval => &tokens.eval,
            Split::Train => &tokens.train,
        };
        let (path, pooling, method, origin) = match (ctx.inputs.get("model"), &params.model) {
            // A wired checkpoint wins over a `model` parameter (which `[defaults]` may set).
            (Some(trained), _) => {
                let info = training::checkpoint_info(&trained.dir)?;
                (
                    trained.dir.join(training::CHECKPOINT_DIR),
                    info.pooling,
                    format!("{} (evaluated)", info.method),
                    training::Origin::Trained,
                )
            }
            (None, Some(model)) => (
                model_path(&ctx.base_dir, model)?,
                params.pooling,
                "zero-shot".to_string(),
                training::Origin::Pretrained,
            ),
            (None, None) => bail!("set the `model` parameter or wire a `model` input"),
        };
        let mut model = training::load_model(
            &path,
            origin,
            tokens.shape.n_classes,
            params.seed,
            params.device,
            params.threads,
        )?;
        model.set_dtype(params.dtype);
        let data = TokenExamples {
            examples,
            pad_id: tokens.shape.pad_id,
        };
        let evaluation = train::evaluate(
            &ctx.hooks(),
            &model,
            &data,
            params.batch_size.get(),
            pooling,
            tokens.shape.n_classes,
        )?;
        let mut metrics = Metrics {
            method: Some(method),
            accuracy: Some(evaluation.accuracy),
            f1: Some(evaluation.f1),
            eval_time_s: Some(evaluation.seconds),
            ..Metrics::default()
        };
        metrics.extra.insert("eval_loss".into(), evaluation.loss.into());
        metrics.extra.insert("eval_examples".into(), evaluation.examples.into());
        Ok(metrics)
    }
}
