//! `headtune`: only the classification head trains (DistilBERT: pre_classifier +
//! classifier; BERT: pooler + classifier). Its `data` input decides how:
//! a `features` task — the frozen encoder's outputs, computed once and cached — trains the
//! head alone, in milliseconds per epoch; a `tokenize` task runs the encoder at every step
//! (the notebooks' loop, encoder dropout included). Output: `checkpoint/` (HF layout).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::tokenize::{self, model_path};
use super::training::{self, TrainParams};
use super::{features, Context, Metrics, ParamError, ReportRole, Slot, Task, ValidateContext};
use crate::model::Method;
use crate::train;

pub struct Headtune;

impl Task for Headtune {
    const KIND: &'static str = "headtune";
    // 2: own AdamW and per-epoch dropout seeds, so that training can resume.
    // 3: dropout masks from 16-bit lanes by default (`dropout_masks`).
    const VERSION: u32 = 3;
    type Params = TrainParams;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", &["features", "tokenize"])];
        SLOTS
    }

    fn files(params: &TrainParams, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        training::training_files(base_dir, &params.model, params.batch_order.as_deref())
    }

    fn reports() -> bool {
        true
    }

    fn validate(params: &TrainParams, _cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_training()
    }

    fn report_role() -> ReportRole {
        ReportRole::Reference {
            label: "head-tuning",
            bar: true,
        }
    }

    fn run(params: &TrainParams, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let data = ctx.input("data")?;
        let args = params.training();
        if data.kind == "features" {
            let (train_set, eval_set, info) = features::load(&data.dir)?;
            if info.model_digest != crate::util::path_digest(&model_path(&ctx.base_dir, &params.model)?)? {
                bail!(
                    "input `data` ({}) holds features of another model than `{}`",
                    data.task,
                    params.model
                );
            }
            if info.pooling != params.pooling {
                bail!(
                    "input `data` ({}) was pooled with {:?} but this task sets pooling = {:?}",
                    data.task,
                    info.pooling,
                    params.pooling
                );
            }
            let model = training::pretrained_for(ctx, &args, info.n_classes, &Method::Head)?;
            let outcome = training::train_resumably(ctx, &model, &args, &train_set, &eval_set, info.n_classes)?;
            training::finish(ctx, &model, &args, "head-tuning (cached features)", &outcome)
        } else {
            let tokens = tokenize::load(&data.dir)?;
            let model = training::pretrained_for(ctx, &args, tokens.shape.n_classes, &Method::Head)?;
            let (train_set, eval_set) = training::token_sets(&tokens);
            let outcome = training::train_resumably(ctx, &model, &args, &train_set, &eval_set, tokens.shape.n_classes)?;
            training::finish(ctx, &model, &args, "head-tuning", &outcome)
        }
    }
}
