//! `naive_bayes`: multinomial naive Bayes on TF-IDF features (linfa-bayes).

use anyhow::{Context as _, Result};
use linfa::prelude::*;
use linfa_bayes::MultinomialNb;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::classify::{self, Fitted};
use super::{check, Context, Metrics, ParamError, Slot, Task, ValidateContext};

pub struct NaiveBayes;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Additive (Laplace/Lidstone) smoothing.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_alpha() -> f64 {
    1.0
}

struct Trained {
    model: MultinomialNb<f64, usize>,
    params: u64,
}

impl Fitted for Trained {
    fn predict(&self, features: &Array2<f64>) -> Result<Vec<usize>> {
        Ok(self.model.predict(features).to_vec())
    }
    fn trainable_params(&self) -> u64 {
        self.params
    }
}

impl Task for NaiveBayes {
    const KIND: &'static str = "naive_bayes";
    const VERSION: u32 = 1;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("features", &["tfidf"])];
        SLOTS
    }

    fn reports() -> bool {
        true
    }

    fn validate(params: &Params, _cx: &ValidateContext) -> Result<(), ParamError> {
        check::non_negative("alpha", params.alpha)
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        classify::fit_and_score(
            ctx,
            "TF-IDF + multinomial naive Bayes",
            |x: &Array2<f64>, y: &Array1<usize>, n_classes| {
                let dataset = DatasetView::new(x.view(), y.view());
                let model = MultinomialNb::params()
                    .alpha(params.alpha)
                    .fit(&dataset)
                    .context("fitting multinomial naive Bayes")?;
                // One log-probability per (class, feature) plus the class priors.
                let params = (n_classes * x.ncols() + n_classes) as u64;
                Ok(Trained { model, params })
            },
        )
    }
}
