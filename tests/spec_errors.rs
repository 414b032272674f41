//! Every class of experiment-file error names the file, line, column and key.

use std::path::PathBuf;

use orchestrate::spec;

const HEAD: &str = r#"[experiment]
name = "t"

[datasets.imdb]
train = "train.csv"
eval = "eval.csv"
"#;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// (case, file body after HEAD, expected line, column, key, message fragment)
type Case = (
    &'static str,
    &'static str,
    usize,
    usize,
    Option<&'static str>,
    &'static str,
);
const CASES: &[Case] = &[
    ("syntax", "[tasks.tfidf\nkind = 1\n", 7, 13, None, "invalid TOML"),
    ("unknown top-level key", "[task.tfidf]\nkind = \"tfidf\"\n", 7, 2, Some("task"), "unknown top-level key `task`"),
    ("unknown kind", "[tasks.x]\nkind = \"svm\"\n", 8, 8, Some("tasks.x.kind"), "unknown task kind `svm`"),
    ("missing kind", "[tasks.x]\ninputs = { data = \"imdb\" }\n", 7, 8, Some("tasks.x"), "has no `kind`"),
    ("kind of wrong type", "[tasks.x]\nkind = 3\n", 8, 8, Some("tasks.x.kind"), "must be a string, found integer"),
    ("unknown parameter", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\nmax_featurs = 10\n", 10, 1, Some("tasks.tfidf.max_featurs"), "unknown parameter `max_featurs`"),
    ("wrong parameter type", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\nmax_features = \"many\"\n", 10, 1, Some("tasks.tfidf.max_features"), "invalid type: string \"many\""),
    ("unknown input slot", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { dataset = \"imdb\" }\n", 9, 12, Some("tasks.tfidf.inputs.dataset"), "has no input `dataset`"),
    ("missing input", "[tasks.tfidf]\nkind = \"tfidf\"\n", 7, 8, Some("tasks.tfidf.inputs"), "needs input `data`"),
    ("missing reference", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imbd\" }\n", 9, 19, Some("tasks.tfidf.inputs.data"), "unknown task `imbd`"),
    ("reference of the wrong kind", "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\n[tasks.lr]\nkind = \"logreg\"\ninputs = { features = \"imdb\" }\n", 12, 23, Some("tasks.lr.inputs.features"), "must be a task of kind tfidf, but `imdb` is a `dataset`"),
    ("sweep that is not a list", "[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nsweep = { alpha = 1.0 }\n", 10, 19, Some("tasks.nb.sweep.alpha"), "must be a list of values to sweep over"),
    ("sweep of an unknown parameter", "[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nsweep = { beta = [1.0] }\n", 10, 11, Some("tasks.nb.sweep.beta"), "unknown parameter `beta`"),
    ("set and swept", "[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nalpha = 1.0\nsweep = { alpha = [1.0] }\n", 11, 11, Some("tasks.nb.sweep.alpha"), "both set and swept"),
    ("swept value of the wrong type", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nsweep = { lowercase = [true, \"no\"] }\n", 10, 11, Some("tasks.f.lowercase"), "invalid type: string \"no\""),
    ("duplicate task", "[tasks.imdb]\nkind = \"tfidf\"\ninputs = \"imdb\"\n", 7, 8, Some("tasks.imdb"), "declared twice"),
    ("bad default", "[defaults]\nmax_itr = 10\n", 8, 1, Some("defaults.max_itr"), "neither a parameter of any task kind"),
    ("bad per-kind default", "[defaults.logreg]\nalpha = 10\n", 8, 1, Some("defaults.logreg.alpha"), "unknown parameter `alpha` for kind `logreg`"),
    ("default of the wrong type", "[defaults]\nmax_iter = \"x\"\n[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\n", 8, 1, Some("tasks.lr.max_iter"), "invalid type: string \"x\""),
    ("group_by_length neither a bool nor \"shuffled\"", "[tasks.t]\nkind = \"tokenize\"\ninputs = \"imdb\"\nmodel = \"m\"\n[tasks.ft]\nkind = \"finetune\"\ninputs = \"t\"\nmodel = \"m\"\ngroup_by_length = \"sorted\"\n", 15, 1, Some("tasks.ft.group_by_length"), "expected true, false or \"shuffled\""),
    ("invalid task name", "[tasks.\"a[b]\"]\nkind = \"tfidf\"\n", 7, 8, Some("tasks.a[b]"), "invalid task name"),
    // Values serde accepts but the kind cannot use (`Task::validate`).
    ("n-gram range upside down", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nngram_range = [2, 1]\n", 10, 1, Some("tasks.f.ngram_range"), "1 <= min <= max"),
    ("n-grams from 0", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nngram_range = [0, 1]\n", 10, 1, Some("tasks.f.ngram_range"), "1 <= min <= max"),
    ("max_df of 0", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nmax_df = 0.0\n", 10, 1, Some("tasks.f.max_df"), "max_df must be a fraction in (0, 1]"),
    ("max_df above 1", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nmax_df = 1.5\n", 10, 1, Some("tasks.f.max_df"), "max_df must be a fraction in (0, 1]"),
    ("negative min_df", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\nmin_df = -1.0\n", 10, 1, Some("tasks.f.min_df"), "min_df must be zero or more"),
    ("c of 0", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\nc = 0.0\n", 13, 1, Some("tasks.lr.c"), "c must be a positive number, got 0"),
    ("negative tol", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\ntol = -1e-4\n", 13, 1, Some("tasks.lr.tol"), "tol must be a positive number"),
    ("max_iter of 0", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.lr]\nkind = \"logreg\"\ninputs = \"f\"\nmax_iter = 0\n", 13, 1, Some("tasks.lr.max_iter"), "nonzero"),
    ("negative alpha", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nalpha = -1.0\n", 13, 1, Some("tasks.nb.alpha"), "alpha must be zero or more, got -1"),
    ("negative swept alpha", "[tasks.f]\nkind = \"tfidf\"\ninputs = \"imdb\"\n[tasks.nb]\nkind = \"naive_bayes\"\ninputs = \"f\"\nsweep.alpha = [1.0, -1.0]\n", 13, 7, Some("tasks.nb.alpha"), "alpha must be zero or more, got -1"),
];

/// The head of the cases that need a model: tiny-bert (hidden 32, 64 positions, BERT's layer
/// names) and a `tokens` task on it; bodies start on line 14.
const MODEL_HEAD: &str = concat!(
    "[experiment]\nname = \"t\"\n\n[defaults]\nmodel = \"",
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/models/tiny-bert\"\n\n[datasets.imdb]\ntrain = \"train.csv\"\neval = \"eval.csv\"\n\
     [tasks.tokens]\nkind = \"tokenize\"\ninputs = \"imdb\"\nmax_len = 32\n"
);

/// A `finetune` on the tokens, then one more key: `finetune(key)` puts `key` on line 17.
macro_rules! finetune {
    ($key:literal) => {
        concat!("[tasks.ft]\nkind = \"finetune\"\ninputs = \"tokens\"\n", $key, "\n")
    };
}

/// A LoRA training on the tokens with one more key, on line 17.
macro_rules! lora {
    ($key:literal) => {
        concat!("[tasks.lora]\nkind = \"lora\"\ninputs = \"tokens\"\n", $key, "\n")
    };
}

/// A QLoRA training on the tokens with one more key, on line 17.
macro_rules! qlora {
    ($key:literal) => {
        concat!("[tasks.q]\nkind = \"qlora\"\ninputs = \"tokens\"\n", $key, "\n")
    };
}

/// A prompt tuning on the tokens with one more key, on line 17.
macro_rules! prompt {
    ($key:literal) => {
        concat!(
            "[tasks.prompt]\nkind = \"prompt_tuning\"\ninputs = \"tokens\"\n",
            $key,
            "\n"
        )
    };
}

/// A prefix tuning on the tokens with one more key, on line 17.
macro_rules! prefix {
    ($key:literal) => {
        concat!(
            "[tasks.prefix]\nkind = \"prefix_tuning\"\ninputs = \"tokens\"\n",
            $key,
            "\n"
        )
    };
}

/// A bottleneck adapter training on the tokens with one more key, on line 17.
macro_rules! adapter {
    ($key:literal) => {
        concat!("[tasks.ad]\nkind = \"adapter\"\ninputs = \"tokens\"\n", $key, "\n")
    };
}

/// An SVD approximation of a fine-tuned model in a head-tuned one; `rank` on line 24.
macro_rules! svd {
    ($rank:literal) => {
        concat!(
            "[tasks.ft]\nkind = \"finetune\"\ninputs = \"tokens\"\n[tasks.ht]\nkind = \"headtune\"\ninputs = \"tokens\"\n\
             [tasks.svd]\nkind = \"svd_approx\"\ninputs = { tokens = \"tokens\", finetuned = \"ft\", headtuned = \"ht\" }\n\
             variant = \"weights\"\nrank = ",
            $rank,
            "\n"
        )
    };
}

const MODEL_CASES: &[Case] = &[
    (
        "batch_size 0",
        finetune!("batch_size = 0"),
        17,
        1,
        Some("tasks.ft.batch_size"),
        "nonzero",
    ),
    (
        "epochs 0",
        finetune!("epochs = 0"),
        17,
        1,
        Some("tasks.ft.epochs"),
        "nonzero",
    ),
    (
        "negative epochs",
        finetune!("epochs = -3"),
        17,
        1,
        Some("tasks.ft.epochs"),
        "invalid value: integer `-3`",
    ),
    (
        "eval_batch_size 0",
        finetune!("eval_batch_size = 0"),
        17,
        1,
        Some("tasks.ft.eval_batch_size"),
        "nonzero",
    ),
    (
        "logging_steps 0",
        finetune!("logging_steps = 0"),
        17,
        1,
        Some("tasks.ft.logging_steps"),
        "nonzero",
    ),
    (
        "lr 0",
        finetune!("lr = 0.0"),
        17,
        1,
        Some("tasks.ft.lr"),
        "lr must be a positive number, got 0",
    ),
    (
        "negative lr",
        finetune!("lr = -5e-5"),
        17,
        1,
        Some("tasks.ft.lr"),
        "lr must be a positive number",
    ),
    (
        "infinite lr",
        finetune!("lr = inf"),
        17,
        1,
        Some("tasks.ft.lr"),
        "lr must be a finite number, got inf",
    ),
    (
        "NaN weight decay",
        finetune!("weight_decay = nan"),
        17,
        1,
        Some("tasks.ft.weight_decay"),
        "weight_decay must be a finite number, got nan",
    ),
    (
        "negative weight decay",
        finetune!("weight_decay = -0.01"),
        17,
        1,
        Some("tasks.ft.weight_decay"),
        "weight_decay must be zero or more",
    ),
    (
        "warmup ratio 1",
        finetune!("warmup_ratio = 1.0"),
        17,
        1,
        Some("tasks.ft.warmup_ratio"),
        "warmup_ratio must be in [0, 1)",
    ),
    (
        "negative clipping",
        finetune!("max_grad_norm = -1.0"),
        17,
        1,
        Some("tasks.ft.max_grad_norm"),
        "max_grad_norm must be zero or more",
    ),
    (
        "beta1 of 1",
        finetune!("adam_beta1 = 1.0"),
        17,
        1,
        Some("tasks.ft.adam_beta1"),
        "adam_beta1 must be in [0, 1)",
    ),
    (
        "negative beta2",
        finetune!("adam_beta2 = -0.9"),
        17,
        1,
        Some("tasks.ft.adam_beta2"),
        "adam_beta2 must be in [0, 1)",
    ),
    (
        "epsilon 0",
        finetune!("adam_epsilon = 0.0"),
        17,
        1,
        Some("tasks.ft.adam_epsilon"),
        "adam_epsilon must be a positive number",
    ),
    (
        "threads 0",
        finetune!("threads = 0"),
        17,
        1,
        Some("tasks.ft.threads"),
        "threads must be at least 1",
    ),
    (
        "LoRA rank 0",
        lora!("r = 0"),
        17,
        1,
        Some("tasks.lora.r"),
        "r must be at least 1",
    ),
    (
        "LoRA rank beyond the layer",
        lora!("r = 33"),
        17,
        1,
        Some("tasks.lora.r"),
        "r = 33 is beyond the rank of bert.encoder.layer.0.attention.self.query (32 x 32): at most 32",
    ),
    (
        "QLoRA with FP4",
        qlora!("bnb_4bit_quant_type = \"fp4\""),
        17,
        1,
        Some("tasks.q.bnb_4bit_quant_type"),
        "\"fp4\" is not supported; QLoRA's 4-bit type is \"nf4\"",
    ),
    (
        "QLoRA with PiSSA",
        qlora!("init = \"pissa\""),
        17,
        1,
        Some("tasks.q.init"),
        "\"pissa\" needs the float weights",
    ),
    (
        "QLoRA rank beyond the layer",
        qlora!("r = 40"),
        17,
        1,
        Some("tasks.q.r"),
        "r = 40 is beyond the rank",
    ),
    (
        "LoRA dropout 1",
        lora!("lora_dropout = 1.0"),
        17,
        1,
        Some("tasks.lora.lora_dropout"),
        "lora_dropout must be in [0, 1)",
    ),
    (
        "negative LoRA dropout",
        lora!("lora_dropout = -0.1"),
        17,
        1,
        Some("tasks.lora.lora_dropout"),
        "lora_dropout must be in [0, 1)",
    ),
    (
        "virtual tokens beyond the positions",
        prompt!("num_virtual_tokens = 40"),
        17,
        1,
        Some("tasks.prompt.num_virtual_tokens"),
        "num_virtual_tokens = 40 plus the `tokens` input's max_len = 32 is beyond the model's 64 positions",
    ),
    (
        "prefix beyond the positions",
        prefix!("num_virtual_tokens = 33"),
        17,
        1,
        Some("tasks.prefix.num_virtual_tokens"),
        "num_virtual_tokens = 33 plus the `tokens` input's max_len = 32 is beyond the model's 64 positions",
    ),
    (
        "encoder_hidden_size without the projection",
        prefix!("encoder_hidden_size = 64"),
        17,
        1,
        Some("tasks.prefix.encoder_hidden_size"),
        "encoder_hidden_size is the width of the prefix MLP, which only prefix_projection = true has",
    ),
    (
        "prefix num_layers not the model's",
        prefix!("num_layers = 12"),
        17,
        1,
        Some("tasks.prefix.num_layers"),
        "num_layers = 12, but the model's number of layers is 2",
    ),
    (
        "TEXT init without a text",
        prompt!("prompt_tuning_init = \"TEXT\""),
        17,
        1,
        Some("tasks.prompt.prompt_tuning_init"),
        "prompt_tuning_init = \"TEXT\" needs prompt_tuning_init_text",
    ),
    (
        "token_dim not the model's",
        prompt!("token_dim = 768"),
        17,
        1,
        Some("tasks.prompt.token_dim"),
        "token_dim = 768, but the model's hidden size is 32",
    ),
    (
        "unknown adapter config",
        adapter!("config = \"compacter\""),
        17,
        1,
        Some("tasks.ad.config"),
        "unknown adapter config \"compacter\": expected one of double_seq_bn (houlsby), seq_bn (pfeiffer)",
    ),
    (
        "adapter reduction factor 0",
        adapter!("reduction_factor = 0.0"),
        17,
        1,
        Some("tasks.ad.reduction_factor"),
        "reduction_factor must be a positive number",
    ),
    (
        "adapter reduction factor and bottleneck size",
        adapter!("reduction_factor = 8.0\nbottleneck_size = 4"),
        18,
        1,
        Some("tasks.ad.bottleneck_size"),
        "give reduction_factor or bottleneck_size, not both",
    ),
    (
        "adapter non-linearity unknown",
        adapter!("non_linearity = \"softplus\""),
        17,
        1,
        Some("tasks.ad.non_linearity"),
        "non_linearity \"softplus\" is not one of relu, swish",
    ),
    (
        "adapter nowhere",
        adapter!("config = \"pfeiffer\"\noutput_adapter = false"),
        18,
        1,
        Some("tasks.ad.output_adapter"),
        "mh_adapter and output_adapter are both false",
    ),
    (
        "adapter post_add without the original LayerNorm before",
        adapter!("residual_before_ln = \"post_add\""),
        17,
        1,
        Some("tasks.ad.residual_before_ln"),
        "it needs original_ln_before = true",
    ),
    (
        "adapter left out of a layer the model lacks",
        adapter!("leave_out = [0, 2]"),
        17,
        1,
        Some("tasks.ad.leave_out"),
        "leave_out lists layer 2, but the model has 2 layers (0 to 1)",
    ),
    (
        "adapter bottleneck size the library cannot reach",
        adapter!("bottleneck_size = 5"),
        17,
        1,
        Some("tasks.ad.bottleneck_size"),
        "bottleneck_size = 5 is not reachable as the library computes widths (hidden 32 // reduction_factor 6.4)",
    ),
    (
        "adapter dropout 1",
        adapter!("dropout = 1.0"),
        17,
        1,
        Some("tasks.ad.dropout"),
        "dropout must be in [0, 1)",
    ),
    (
        "adapter name with a dot",
        adapter!("adapter_name = \"a.b\""),
        17,
        1,
        Some("tasks.ad.adapter_name"),
        "adapter_name \"a.b\" must be letters, digits",
    ),
    (
        "LoRA alpha 0",
        lora!("lora_alpha = 0"),
        17,
        1,
        Some("tasks.lora.lora_alpha"),
        "lora_alpha must be positive",
    ),
    (
        "LoRA target of another architecture",
        lora!("target_modules = [\"q_lin\"]"),
        17,
        1,
        Some("tasks.lora.target_modules"),
        "`q_lin` matches no linear layer of this bert model",
    ),
    (
        "IA3 feed-forward module outside the targets",
        "[tasks.ia3]\nkind = \"ia3\"\ninputs = \"tokens\"\nfeedforward_modules = [\"intermediate.dense\"]\n",
        17,
        1,
        Some("tasks.ia3.feedforward_modules"),
        "\"intermediate.dense\" is not among the IA3 target modules",
    ),
    (
        "IA3 unknown target",
        "[tasks.ia3]\nkind = \"ia3\"\ninputs = \"tokens\"\ntarget_modules = [\"k_lin\"]\n",
        17,
        1,
        Some("tasks.ia3.target_modules"),
        "`k_lin` matches no linear layer",
    ),
    (
        "max_len beyond the positions",
        "[tasks.long]\nkind = \"tokenize\"\ninputs = \"imdb\"\nmax_len = 100\n",
        17,
        1,
        Some("tasks.long.max_len"),
        "max_len = 100 is beyond the model's 64 positions",
    ),
    (
        "max_len without room for [CLS] and [SEP]",
        "[tasks.short]\nkind = \"tokenize\"\ninputs = \"imdb\"\nmax_len = 1\n",
        17,
        1,
        Some("tasks.short.max_len"),
        "room for [CLS] and [SEP]",
    ),
    (
        "unknown split",
        "[tasks.e]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\" }\nsplit = \"test\"\n",
        17,
        1,
        Some("tasks.e.split"),
        "unknown variant `test`, expected `eval` or `train`",
    ),
    (
        "evaluation batch 0",
        "[tasks.e]\nkind = \"evaluate\"\ninputs = { tokens = \"tokens\" }\nbatch_size = 0\n",
        17,
        1,
        Some("tasks.e.batch_size"),
        "nonzero",
    ),
    (
        "SVD rank 0",
        svd!("0"),
        24,
        1,
        Some("tasks.svd.rank"),
        "rank must be at least 1",
    ),
    (
        "SVD rank beyond the layer",
        svd!("33"),
        24,
        1,
        Some("tasks.svd.rank"),
        "rank = 33 is beyond the rank of",
    ),
    (
        "early stopping without load_best_model_at_end",
        finetune!("early_stopping_patience = 2"),
        17,
        1,
        Some("tasks.ft.early_stopping_patience"),
        "early stopping needs load_best_model_at_end = true",
    ),
    (
        "an unknown metric for the best model",
        finetune!("metric_for_best_model = \"precision\""),
        17,
        1,
        Some("tasks.ft.metric_for_best_model"),
        "unknown variant `precision`",
    ),
    (
        "a negative early-stopping threshold",
        finetune!("early_stopping_threshold = -0.1"),
        17,
        1,
        Some("tasks.ft.early_stopping_threshold"),
        "early_stopping_threshold must be zero or more",
    ),
];

/// Loads each case's experiment (`head` + body) and checks the error's place, key and text.
fn check_cases(head: &str, cases: &[Case]) {
    let dir = tempfile::tempdir().unwrap();
    for (case, body, line, col, key, fragment) in cases {
        let path = write(&dir, "exp.toml", &format!("{head}{body}"));
        let err = spec::load(&path).expect_err(case);
        assert_eq!(err.line_col(), Some((*line, *col)), "{case}: {err}");
        assert_eq!(err.key.as_deref(), *key, "{case}: {err}");
        assert!(
            err.message.contains(fragment),
            "{case}: {:?} should contain {fragment:?}",
            err.message
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:{line}:{col}: ", path.display())),
            "{case}: {shown}"
        );
        assert!(shown.contains('^'), "{case}: the rendering points at the span\n{shown}");
    }
}

#[test]
fn values_a_kind_cannot_use_name_file_line_column_and_key() {
    check_cases(MODEL_HEAD, MODEL_CASES);
    // The head alone is valid: each case fails for its own line only.
    let dir = tempfile::tempdir().unwrap();
    spec::load(&write(&dir, "exp.toml", MODEL_HEAD)).unwrap();
}

#[test]
fn each_error_class_names_file_line_column_and_key() {
    check_cases(HEAD, CASES);
}

#[test]
fn a_cycle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.a]\nkind = \"tfidf\"\ninputs = { data = \"imdb\" }\n[tasks.lr]\nkind = \"logreg\"\ninputs = { features = \"b\" }\n[tasks.b]\nkind = \"tfidf\"\ninputs = { data = \"lr\" }\n";
    let path = write(&dir, "exp.toml", &format!("{HEAD}{body}"));
    let err = spec::load(&path).unwrap_err();
    assert!(
        err.message.contains("dependency cycle: lr -> b -> lr"),
        "{}",
        err.message
    );
    assert_eq!(err.line_col(), Some((10, 8)));
}

#[test]
fn did_you_mean_for_typos() {
    let dir = tempfile::tempdir().unwrap();
    let body = "[tasks.tfidf]\nkind = \"tfidf\"\ninputs = \"imdb\"\nmax_featurs = 10\n";
    let path = write(&dir, "exp.toml", &format!("{HEAD}{body}"));
    let err = spec::load(&path).unwrap_err();
    assert!(err.to_string().contains("did you mean `max_features`?"), "{err}");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let common = write(&dir, "common.toml", "[defaults.tfidf]\nmin_dff = 2\n");
    let path = write(&dir, "exp.toml", &format!("include = [\"common.toml\"]\n{HEAD}"));
    let err = spec::load(&path).unwrap_err();
    assert_eq!(err.location.as_ref().unwrap().source.path, common);
    assert_eq!(err.line_col(), Some((2, 1)));

    let path = write(&dir, "loop.toml", "include = \"loop.toml\"\n");
    let err = spec::load(&path).unwrap_err();
    assert!(err.message.contains("include cycle"), "{err}");

    let path = write(&dir, "missing.toml", "include = \"nope.toml\"\n");
    let err = spec::load(&path).unwrap_err();
    assert!(err.message.contains("cannot read included file"), "{err}");
    assert_eq!(err.line_col(), Some((1, 11)));

    // A device would be read forever (a hazard spotted while writing the loader fuzz target).
    let path = write(&dir, "device.toml", "include = \"/dev/zero\"\n");
    let err = spec::load(&path).unwrap_err();
    assert!(err.message.contains("/dev/zero: not a regular file"), "{err}");
    assert_eq!(err.line_col(), Some((1, 11)));
}

#[test]
fn unreadable_file_is_an_error_not_a_panic() {
    let err = spec::load(std::path::Path::new("/nonexistent/exp.toml")).unwrap_err();
    assert!(err
        .to_string()
        .contains("cannot read experiment file /nonexistent/exp.toml"));
}
