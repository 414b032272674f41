//! `finetune`: full fine-tuning, every parameter trained (Trainer defaults, see
//! `crate::train`). Output: `checkpoint/` in the Hugging Face layout.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::tokenize::{self, model_files};
use super::{Context, Metrics, Slot, Task};
use crate::model::Method;
use crate::train::{self, TrainParams};

pub struct Finetune;

impl Task for Finetune {
    const KIND: &'static str = "finetune";
    const VERSION: u32 = 1;
    type Params = TrainParams;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("tokens", &["tokenize"])];
        SLOTS
    }

    fn files(params: &TrainParams, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        model_files(base_dir, &params.model)
    }

    fn reports() -> bool {
        true
    }

    fn run(params: &TrainParams, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let tokens = tokenize::load(&ctx.input("tokens")?.dir)?;
        let model = train::pretrained_for(ctx, params, tokens.shape.n_classes, Method::Full)?;
        let (train_set, eval_set) = train::token_sets(&tokens);
        let outcome = train::train(ctx, &model, params, &train_set, &eval_set, tokens.shape.n_classes)?;
        train::finish(ctx, &model, params, "full fine-tuning", &outcome)
    }
}
