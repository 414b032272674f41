//! `orchestrate bench-matmul`: float32 (or bfloat16) matmul throughput through tch on this
//! machine, the "peak" that model FLOPs utilisation (bench/run.sh) divides by; and
//! `orchestrate bench-step`: a tuning method's training step, timed by phase.

use anyhow::{Context as _, Result};
use serde::Serialize;

/// One shape: `[m, k] × [k, n]` in the bench's dtype.
#[derive(Debug, Clone, Serialize)]
pub struct MatmulRate {
    pub m: i64,
    pub k: i64,
    pub n: i64,
    pub gflops: f64,
}

/// Every shape's rate and the best of them.
#[derive(Debug, Clone, Serialize)]
pub struct MatmulBench {
    pub dtype: crate::model::Dtype,
    pub threads: i32,
    pub peak_gflops: f64,
    pub shapes: Vec<MatmulRate>,
}

/// Times square products and the shapes of MiniLM's linear layers on a batch of 8 × 256
/// tokens, each for about `seconds`, on `threads` torch threads (default: the cores).
pub fn matmul(threads: Option<usize>, seconds: f64, dtype: crate::model::Dtype) -> Result<MatmulBench> {
    crate::model::set_threads(threads);
    let _guard = tch::no_grad_guard();
    let shapes = [
        (1024, 1024, 1024),
        (2048, 2048, 2048),
        (2048, 384, 1536),
        (2048, 1536, 384),
        (2048, 384, 384),
    ];
    let mut rates = Vec::new();
    for (m, k, n) in shapes {
        let a = tch::Tensor::f_randn([m, k], (dtype.kind(), tch::Device::Cpu))?;
        let b = tch::Tensor::f_randn([k, n], (dtype.kind(), tch::Device::Cpu))?;
        let mut out = a.f_matmul(&b)?; // warm-up (allocations, thread pool)
        let (started, mut calls) = (std::time::Instant::now(), 0u64);
        while calls < 3 || started.elapsed().as_secs_f64() < seconds {
            out = a.f_matmul(&b)?;
            calls += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        drop(out);
        let flops = 2.0 * (m * k * n) as f64 * calls as f64;
        rates.push(MatmulRate {
            m,
            k,
            n,
            gflops: flops / elapsed / 1e9,
        });
    }
    Ok(MatmulBench {
        dtype,
        threads: tch::get_num_threads(),
        peak_gflops: rates.iter().map(|r| r.gflops).fold(0.0, f64::max),
        shapes: rates,
    })
}

/// What `bench-step` times: the batch's shape, the precision and how many steps.
#[derive(Debug, Clone, Copy)]
pub struct StepSetup {
    pub batch: i64,
    pub seq: i64,
    pub precision: crate::train::Precision,
    pub threads: Option<usize>,
    pub warmup: usize,
    pub steps: usize,
}

/// A method's step on a full batch (every row `seq` real tokens), by phase.
#[derive(Debug, Clone, Serialize)]
pub struct StepBench {
    pub model: String,
    pub method: String,
    pub precision: crate::train::Precision,
    pub batch: i64,
    pub seq: i64,
    pub threads: i32,
    pub trainable: i64,
    pub profile: crate::train::profile::StepProfile,
}

/// Times `method`'s step on `model` with the Trainer's defaults (finetune's) and `setup`'s
/// precision, on random token ids: the cost of a step depends on the shapes, not the text.
pub fn step(model: &str, method: &crate::model::Method, setup: StepSetup) -> Result<StepBench> {
    use crate::model::{DeviceChoice, LoadOptions};
    use tch::{Kind, Tensor};
    let _torch = crate::train::exclusive_torch();
    let options = LoadOptions {
        device: DeviceChoice::Cpu,
        threads: setup.threads,
        num_labels: Some(2),
        seed: Some(42),
        reinit_mismatched_head: true,
        allow_missing: matches!(crate::model::hub::resolve(model)?, crate::model::ModelSource::Config(_)),
        ..LoadOptions::default()
    };
    let mut loaded = crate::model::load(model, &options)?;
    loaded.apply_method(method)?;
    let defaults: crate::tasks::training::TrainParams =
        serde_json::from_value(serde_json::json!({ "model": model })).context("finetune's defaults")?;
    let mut config = defaults.training().config;
    config.precision = setup.precision;
    let vocab = loaded.config.vocab_size();
    // Ids above the special tokens, so no row is padding.
    let ids = Tensor::f_randint_low(
        1000.min(vocab - 1),
        vocab,
        [setup.batch, setup.seq],
        (Kind::Int64, tch::Device::Cpu),
    )?;
    let mask = Tensor::f_ones([setup.batch, setup.seq], (Kind::Int64, tch::Device::Cpu))?;
    let labels = Tensor::f_randint(2, [setup.batch], (Kind::Int64, tch::Device::Cpu))?;
    let profile =
        crate::train::profile::step_profile(&loaded, &config, (&ids, &mask, &labels), setup.warmup, setup.steps)?;
    Ok(StepBench {
        model: model.to_string(),
        method: method.name().to_string(),
        precision: setup.precision,
        batch: setup.batch,
        seq: setup.seq,
        threads: tch::get_num_threads(),
        trainable: loaded.param_counts().trainable,
        profile,
    })
}
