//! `orchestrate bench-matmul`: float32 (or bfloat16) matmul throughput through tch on this
//! machine, the "peak" that model FLOPs utilisation (bench/run.sh) divides by.

use anyhow::Result;
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
