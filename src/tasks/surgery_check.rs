//! `surgery_check`: the lab's test that layer surgery works. The target layers (q and v by
//! default) of a trained model are replaced by randomly re-initialised clones — accuracy
//! should drop towards chance — and then the originals are put back, which must give
//! exactly the original accuracy (the task fails otherwise).

use anyhow::{bail, Context as _, Result};

use super::{check, tokenize, training, Context, Metrics, ParamError, Slot, Task, ValidateContext};
use crate::model::{surgery, LoadedModel};
use crate::train::{self, Evaluation};

pub struct SurgeryCheck;

inference_params! {
    pub struct Params {
        /// Layer names or globs; default the query and value projections.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub target_modules: Option<Vec<String>>,
        /// Seed of the re-initialisation.
        #[serde(default = "crate::tasks::training::defaults::seed")]
        pub seed: u64,
    }
}

impl Task for SurgeryCheck {
    const KIND: &'static str = "surgery_check";
    const VERSION: u32 = 1;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("tokens", &["tokenize"]),
            Slot::required("model", &["finetune", "headtune", "bitfit"]),
        ];
        SLOTS
    }

    fn reports() -> bool {
        true
    }

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_common()?;
        let Some(config) = cx.model else { return Ok(()) };
        let targets = crate::model::targets::lora_targets(params.target_modules.as_deref(), config.model_type());
        check::rank_and_targets("rank", 1, "target_modules", &targets, cx.model)
    }

    /// One pass over the evaluation examples.
    fn cost_factors() -> &'static [&'static str] {
        &["max_len", "eval_size"]
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let tokens = tokenize::load(&ctx.input("tokens")?.dir)?;
        let n_classes = tokens.shape.n_classes;
        let (mut model, info) = training::load_trained(ctx, "model", n_classes, params.device, params.threads)?;
        model.set_dtype(params.dtype);
        let names = surgery::select_targets(&mut model, params.target_modules.as_deref())?;
        let target_label =
            crate::model::targets::lora_targets(params.target_modules.as_deref(), model.config.model_type()).join(",");
        let (_, data) = training::token_sets(&tokens);
        let eval = |model: &LoadedModel| -> Result<Evaluation> {
            train::evaluate(
                &ctx.hooks(),
                model,
                &data,
                params.batch_size.get(),
                info.pooling,
                n_classes,
            )
        };
        let original = eval(&model)?;
        let saved = names
            .iter()
            .map(|name| surgery::extract(&mut model, name))
            .collect::<Result<Vec<_>, _>>()?;
        tch::manual_seed(params.seed as i64);
        let std = model.config.initializer_range();
        for name in &names {
            surgery::reinitialise(&mut model, name, std)?;
        }
        let random = eval(&model)?;
        for (name, (weight, bias)) in names.iter().zip(&saved) {
            surgery::replace(&mut model, name, weight, bias.as_ref())
                .with_context(|| format!("cannot put {name} back"))?;
        }
        let restored = eval(&model)?;
        if restored.accuracy != original.accuracy || restored.loss != original.loss {
            bail!(
                "restoring the original layers did not restore the model: accuracy {} → {}, loss {} → {}",
                original.accuracy,
                restored.accuracy,
                original.loss,
                restored.loss
            );
        }
        let mut metrics = Metrics {
            method: Some(format!("{} re-initialised ({} layers)", target_label, names.len())),
            accuracy: Some(random.accuracy),
            f1: Some(random.f1),
            eval_time_s: Some(original.seconds + random.seconds + restored.seconds),
            ..Metrics::default()
        };
        metrics
            .extra
            .insert("original_accuracy".into(), original.accuracy.into());
        metrics
            .extra
            .insert("restored_accuracy".into(), restored.accuracy.into());
        metrics.extra.insert("original_loss".into(), original.loss.into());
        metrics.extra.insert("restored_loss".into(), restored.loss.into());
        metrics.extra.insert("random_loss".into(), random.loss.into());
        Ok(metrics)
    }
}
