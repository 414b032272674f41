//! `svd_approx`: how low can the rank of fine-tuning go? The head-tuned model (pretrained
//! encoder, trained head) receives rank-`rank` versions of the fine-tuned model's target
//! layers (q and v by default) and is evaluated:
//!
//! - `variant = "weights"` (the lab's version 1): W = SVD_r(W_ft), the truncated SVD of the
//!   fine-tuned weight itself;
//! - `variant = "delta"` (version 2): W = W0 + SVD_r(W_ft − W0), a rank-r update of the
//!   pretrained weight W0 — what LoRA learns directly.
//!
//! Biases stay the head-tuned model's (pretrained). Both inputs are cached checkpoints, so a
//! rank sweep (`sweep.rank = [...]`, or `"halving"`: hidden size, half of it, … 1) costs one
//! SVD and one evaluation per rank. At full rank both variants give the fine-tuned weights.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{check, tokenize, training, Context, Metrics, ParamError, Slot, Task, ValidateContext};
use crate::model::surgery;
use crate::train;

pub struct SvdApprox;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Weights,
    Delta,
}

inference_params! {
    pub struct Params {
        pub variant: Variant,
        pub rank: usize,
        /// Layer names or globs; default the query and value projections.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub target_modules: Option<Vec<String>>,
    }
}

impl Task for SvdApprox {
    const KIND: &'static str = "svd_approx";
    const VERSION: u32 = 1;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[
            Slot::required("tokens", &["tokenize"]),
            Slot::required("finetuned", &["finetune"]),
            Slot::required("headtuned", &["headtune"]),
        ];
        SLOTS
    }

    fn reports() -> bool {
        true
    }

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_common()?;
        let targets = crate::model::targets::lora_targets(
            params.target_modules.as_deref(),
            cx.model.map_or("bert", |c| c.model_type()),
        );
        check::rank_and_targets("rank", params.rank, "target_modules", &targets, cx.model)
    }

    fn report_role() -> crate::tasks::ReportRole {
        crate::tasks::ReportRole::RankCurve { rank: "rank" }
    }

    /// One pass over the evaluation examples.
    fn cost_factors() -> &'static [&'static str] {
        &["max_len", "eval_size"]
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let tokens = tokenize::load(&ctx.input("tokens")?.dir)?;
        let n_classes = tokens.shape.n_classes;
        let _torch = train::exclusive_torch();
        let load = |slot| training::load_trained(ctx, slot, n_classes, params.device, params.threads);
        let (mut finetuned, _) = load("finetuned")?;
        let (mut host, info) = load("headtuned")?;
        let names = surgery::select_targets(&mut host, params.target_modules.as_deref())?;
        let rank = params.rank as i64;
        let (mut stored, mut error_sum) = (0i64, 0.0);
        for name in &names {
            let (w_ft, _) = surgery::extract(&mut finetuned, name)
                .with_context(|| format!("the fine-tuned model has no layer {name}"))?;
            let (w0, _) = surgery::extract(&mut host, name)?;
            if w_ft.size() != w0.size() {
                anyhow::bail!(
                    "{name}: fine-tuned weight {:?} and head-tuned weight {:?} differ in shape",
                    w_ft.size(),
                    w0.size()
                );
            }
            let (approx, target) = match params.variant {
                Variant::Weights => (surgery::low_rank(&w_ft, rank)?, w_ft.shallow_clone()),
                Variant::Delta => {
                    let delta = w_ft.f_sub(&w0)?;
                    (w0.f_add(&surgery::low_rank(&delta, rank)?)?, w_ft.shallow_clone())
                }
            };
            error_sum += relative_error(&approx, &target, &w0, params.variant)?;
            surgery::replace(&mut host, name, &approx, None)?;
            stored += surgery::low_rank_params(&w_ft.size(), rank);
        }
        let head = host.count_params(|n| host.network.head_prefixes().iter().any(|p| n.starts_with(p)));
        // Cast after the surgery: the SVD is of the float32 weights.
        host.set_dtype(params.dtype);
        let (_, data) = training::token_sets(&tokens);
        let evaluation = train::evaluate(
            &ctx.hooks(),
            &host,
            &data,
            params.batch_size.get(),
            info.pooling,
            n_classes,
        )?;
        let mut metrics = Metrics {
            // Rank-free, so each variant's sweep is one curve (rank and variant are labels).
            method: Some("truncated SVD".into()),
            trainable_params: Some((stored + head.all) as u64),
            accuracy: Some(evaluation.accuracy),
            f1: Some(evaluation.f1),
            eval_time_s: Some(evaluation.seconds),
            ..Metrics::default()
        };
        metrics.extra.insert("eval_loss".into(), evaluation.loss.into());
        metrics.extra.insert("rank".into(), rank.into());
        metrics.extra.insert("layers".into(), names.len().into());
        metrics
            .extra
            .insert("relative_error".into(), (error_sum / names.len() as f64).into());
        Ok(metrics)
    }
}

/// How far the approximation is from its target, relative to what it approximates: the
/// weight (`weights`) or the update W_ft − W0 (`delta`).
fn relative_error(approx: &tch::Tensor, w_ft: &tch::Tensor, w0: &tch::Tensor, variant: Variant) -> Result<f64> {
    let reference = match variant {
        Variant::Weights => w_ft.shallow_clone(),
        Variant::Delta => w_ft.f_sub(w0)?,
    };
    let norm = f64::try_from(reference.f_norm()?)?;
    let distance = f64::try_from(approx.f_sub(w_ft)?.f_norm()?)?;
    Ok(if norm > 0.0 { distance / norm } else { distance })
}
