//! `logreg`: logistic regression on TF-IDF features (linfa-logistic, L-BFGS), with
//! scikit-learn's parametrisation: `c` is the inverse L2 strength (linfa's alpha = 1/c).

use anyhow::{bail, Context as _, Result};
use linfa::prelude::*;
use linfa_logistic::{
    FittedLogisticRegression, LogisticRegression, MultiFittedLogisticRegression, MultiLogisticRegression,
};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::classify::{self, Fitted};
use super::{Context, Metrics, Slot, Task};

pub struct LogReg;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Inverse regularisation strength, as scikit-learn's `C`.
    #[serde(default = "default_c")]
    pub c: f64,
    #[serde(default = "default_max_iter")]
    pub max_iter: u64,
    /// Gradient tolerance of L-BFGS.
    #[serde(default = "default_tol")]
    pub tol: f64,
    #[serde(default = "yes")]
    pub fit_intercept: bool,
}

fn default_c() -> f64 {
    1.0
}
fn default_max_iter() -> u64 {
    1000
}
fn default_tol() -> f64 {
    1e-4
}
fn yes() -> bool {
    true
}

enum Model {
    Binary(FittedLogisticRegression<f64, usize>),
    Multi(MultiFittedLogisticRegression<f64, usize>),
}

struct Trained {
    model: Model,
    params: u64,
}

impl Fitted for Trained {
    fn predict(&self, features: &Array2<f64>) -> Result<Vec<usize>> {
        Ok(match &self.model {
            Model::Binary(model) => model.predict(features).to_vec(),
            Model::Multi(model) => model.predict(features).to_vec(),
        })
    }
    fn trainable_params(&self) -> u64 {
        self.params
    }
}

impl Task for LogReg {
    const KIND: &'static str = "logreg";
    const VERSION: u32 = 1;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("features", &["tfidf"])];
        SLOTS
    }

    fn reports() -> bool {
        true
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        if params.c <= 0.0 || !params.c.is_finite() {
            bail!("c must be a positive number, got {}", params.c);
        }
        classify::fit_and_score(
            ctx,
            "TF-IDF + logistic regression",
            |x: &Array2<f64>, y: &Array1<usize>, n_classes| {
                let dataset = DatasetView::new(x.view(), y.view());
                let n_features = x.ncols() as u64;
                let intercept = u64::from(params.fit_intercept);
                if n_classes <= 2 {
                    let model = LogisticRegression::default()
                        .alpha(1.0 / params.c)
                        .max_iterations(params.max_iter)
                        .gradient_tolerance(params.tol)
                        .with_intercept(params.fit_intercept)
                        .fit(&dataset)
                        .context("fitting logistic regression")?;
                    Ok(Trained {
                        model: Model::Binary(model),
                        params: n_features + intercept,
                    })
                } else {
                    let model = MultiLogisticRegression::default()
                        .alpha(1.0 / params.c)
                        .max_iterations(params.max_iter)
                        .gradient_tolerance(params.tol)
                        .with_intercept(params.fit_intercept)
                        .fit(&dataset)
                        .context("fitting logistic regression")?;
                    Ok(Trained {
                        model: Model::Multi(model),
                        params: (n_features + intercept) * n_classes as u64,
                    })
                }
            },
        )
    }
}
