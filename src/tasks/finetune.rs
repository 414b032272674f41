//! `finetune`: full fine-tuning, every parameter trained (Trainer defaults, see
//! `crate::train`). Output: `checkpoint/` in the Hugging Face layout.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::tokenize::model_files;
use super::{Context, Metrics, Slot, Task};
use crate::model::Method;
use crate::train::{self, TrainParams};

pub struct Finetune;

impl Task for Finetune {
    const KIND: &'static str = "finetune";
    // 2: own AdamW and per-epoch dropout seeds, so that training can resume.
    const VERSION: u32 = 2;
    type Params = TrainParams;

    fn slots() -> &'static [Slot] {
        super::TOKENS_INPUT
    }

    fn files(params: &TrainParams, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        model_files(base_dir, &params.model)
    }

    fn reports() -> bool {
        true
    }

    fn run(params: &TrainParams, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let (model, outcome) = train::fit(ctx, params, &Method::Full)?;
        train::finish(ctx, &model, params, "full fine-tuning", &outcome)
    }
}
