//! `orchestrate inspect MODEL`: the module tree as `print(model)` shows it, and PEFT's
//! parameter line for a tuning method. MODEL is a model folder, a hub id in the HF
//! cache, or a bare config.json; no weights are read.

use super::error::Result;
use super::params::Method;
use super::{load, DeviceChoice, LoadOptions};

/// Renders the report for `target` under `method` (adapters injected, PEFT's counts).
pub fn run(target: &str, method: &Method) -> Result<String> {
    let opts = LoadOptions {
        device: DeviceChoice::Cpu,
        weights: false,
        require_tokenizer: false,
        ..LoadOptions::default()
    };
    let mut model = load(target, &opts)?;
    model.apply_method(method)?;
    let c = &model.config;
    let mut out = model.module_tree().render();
    out.push('\n');
    out.push_str(&format!(
        "model: {} ({}, {} layers, hidden {}, vocab {}, {} labels) from {}\n",
        model.model_class(),
        c.model_type(),
        c.num_layers(),
        c.hidden_size(),
        c.vocab_size(),
        c.num_labels,
        model.config.path.display()
    ));
    out.push_str(&format!("method: {method}\n"));
    out.push_str(&format!("{}\n", model.param_counts()));
    Ok(out)
}
