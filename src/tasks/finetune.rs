//! `finetune`: full fine-tuning, every parameter trained (Trainer defaults, see
//! `crate::train`). Output: `checkpoint/` in the Hugging Face layout.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::tokenize::{self, model_path};
use super::{Context, Metrics, Slot, Task};
use crate::model::Method;
use crate::train::{self, CheckpointInfo, TokenExamples, TrainParams};

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
        Ok(vec![("model", model_path(base_dir, &params.model)?)])
    }

    fn reports() -> bool {
        true
    }

    fn run(params: &TrainParams, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let tokens = tokenize::load(&ctx.input("tokens")?.dir)?;
        let path = model_path(&ctx.base_dir, &params.model)?;
        let model = train::load_model(
            &path,
            train::Origin::Pretrained,
            tokens.shape.n_classes,
            params.seed,
            params.device,
            params.threads,
        )?;
        model.apply_method(Method::Full);
        let (train_set, eval_set) = (
            TokenExamples {
                examples: &tokens.train,
                pad_id: tokens.shape.pad_id,
            },
            TokenExamples {
                examples: &tokens.eval,
                pad_id: tokens.shape.pad_id,
            },
        );
        let outcome = train::train(ctx, &model, params, &train_set, &eval_set, tokens.shape.n_classes)?;
        let info = CheckpointInfo {
            pooling: params.pooling,
            method: "full fine-tuning".into(),
            base_model: params.model.clone(),
        };
        train::save_checkpoint(&model, &ctx.out_dir, &info)?;
        train::training_metrics("full fine-tuning", &model, &outcome)
    }
}
