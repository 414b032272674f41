//! The model fixtures (tiny random checkpoints in tests/fixtures/models/, made by
//! scripts/make_model_fixtures.py) and the experiment that trains on them.

use std::path::PathBuf;

use orchestrate::model::{DeviceChoice, LoadOptions};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The folder of a model fixture, e.g. `tiny-bert`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(ROOT).join("tests/fixtures/models").join(name)
}

/// Load options on the CPU, the rest default.
pub fn cpu() -> LoadOptions {
    LoadOptions {
        device: DeviceChoice::Cpu,
        ..LoadOptions::default()
    }
}

/// The tiny BERT fixture on the small sentiment dataset whose words are in its vocabulary,
/// tokenized by task `tokens` (max_len 32), one thread: `defaults` are more `[defaults]`
/// lines, `tasks` come after the tokenizer.
pub fn tiny_bert_experiment(defaults: &str, tasks: &str) -> String {
    format!(
        "[defaults]\nmodel = \"{ROOT}/tests/fixtures/models/tiny-bert\"\nthreads = 1\n{defaults}\
         [datasets.data]\ntrain = \"{ROOT}/tests/fixtures/tiny-lm/train.csv\"\neval = \"{ROOT}/tests/fixtures/tiny-lm/eval.csv\"\n\
         [tasks.tokens]\nkind = \"tokenize\"\ninputs = \"data\"\nmax_len = 32\n{tasks}"
    )
}
