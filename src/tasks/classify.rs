//! What the classical classifiers share: reading TF-IDF features, timing fit and predict,
//! and scoring predictions ([`crate::scoring`]).

use std::time::Instant;

use anyhow::{bail, Result};
use ndarray::{Array1, Array2};

use super::tfidf::{self, Features};
use super::{Context, Metrics};
use crate::scoring::scores;

/// A classifier fitted on TF-IDF features.
pub trait Fitted {
    fn predict(&self, features: &Array2<f64>) -> Result<Vec<usize>>;
    fn trainable_params(&self) -> u64;
}

/// Loads the `features` input, fits, predicts the eval split and fills the common metrics.
pub fn fit_and_score<M: Fitted>(
    ctx: &Context,
    method: &str,
    fit: impl FnOnce(&Array2<f64>, &Array1<usize>, usize) -> Result<M>,
) -> Result<Metrics> {
    let Features { train, eval, n_classes } = tfidf::load_features(&ctx.input("features")?.dir)?;
    if let Some(&bad) = train.labels.iter().chain(eval.labels.iter()).find(|&&l| l >= n_classes) {
        bail!("label {bad} is outside the dataset's {n_classes} classes");
    }
    ctx.check_cancelled()?;
    let started = Instant::now();
    let model = fit(&train.features, &train.labels, n_classes)?;
    let train_time = started.elapsed().as_secs_f64();
    ctx.check_cancelled()?;
    let started = Instant::now();
    let predicted = model.predict(&eval.features)?;
    let eval_time = started.elapsed().as_secs_f64();
    let (accuracy, f1) = scores(
        &predicted,
        eval.labels.as_slice().expect("contiguous labels"),
        n_classes,
    );
    let mut metrics = Metrics {
        method: Some(method.to_string()),
        trainable_params: Some(model.trainable_params()),
        accuracy: Some(accuracy),
        f1: Some(f1),
        train_time_s: Some(train_time),
        eval_time_s: Some(eval_time),
        ..Metrics::default()
    };
    metrics.extra.insert("eval_examples".into(), predicted.len().into());
    Ok(metrics)
}
