//! Errors of the model layer: one enum, named fields, one message each.
//!
//! Every user-input error names the file it comes from and, where there is one, the
//! tensor (by its Hugging Face name), so a broken checkpoint can be fixed without a
//! debugger.

use std::path::PathBuf;

/// Result of the model layer.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{folder}: missing {file}{hint}")]
    MissingFile {
        folder: PathBuf,
        file: String,
        /// Extra guidance, starting with "; " or empty.
        hint: String,
    },

    #[error(
        "model {target:?} is neither a model folder nor a config.json nor a Hugging Face Hub id \
         (`name`, `org/name`, `org/name@revision`; cache: {looked})"
    )]
    NotFound { target: String, looked: PathBuf },

    #[error(transparent)]
    Hub(#[from] crate::hub::HubError),

    #[error("{path}: invalid config: {message}")]
    Config { path: PathBuf, message: String },

    #[error("{path}: unsupported model_type {model_type:?} (supported: \"distilbert\", \"bert\")")]
    UnsupportedModelType { path: PathBuf, model_type: String },

    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },

    #[error("{path}: tensor {tensor}: unsupported dtype {dtype} (expected F32, F16, BF16 or F64)")]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },

    #[error("{path}: tensor {tensor} has shape {found:?}, but the model expects {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        tensor: String,
        expected: Vec<i64>,
        found: Vec<i64>,
    },

    #[error(
        "{path}: missing {} tensor(s) the model needs: {}",
        names.len(),
        names.join(", ")
    )]
    MissingTensors { path: PathBuf, names: Vec<String> },

    #[error(
        "label count mismatch: {path}: tensor {tensor} has {found} labels, but {expected} \
         were requested ({origin})"
    )]
    LabelMismatch {
        path: PathBuf,
        tensor: String,
        expected: i64,
        found: i64,
        origin: String,
    },

    #[error(
        "vocabulary size mismatch: {tokenizer} has {vocab_size} tokens, but {tensor} in \
         {weights} has only {rows} rows"
    )]
    VocabMismatch {
        tokenizer: PathBuf,
        vocab_size: usize,
        weights: PathBuf,
        tensor: String,
        rows: i64,
    },

    #[error("{path}: cannot load tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("tokenizer: {message}")]
    Encode { message: String },

    #[error("invalid device {0:?}: expected \"cpu\", \"cuda\" or \"auto\"")]
    InvalidDevice(String),

    #[error("device \"cuda\" requested, but libtorch reports no CUDA device")]
    CudaUnavailable,

    #[error("unknown method {method:?}: expected one of {expected}")]
    UnknownMethod { method: String, expected: String },

    #[error("no linear layer named {name:?} in this model")]
    UnknownLinear { name: String },

    #[error("target module {pattern:?} matches no linear layer of this {model_class}; its layers are: {available}")]
    UnknownTarget {
        pattern: String,
        model_class: &'static str,
        available: String,
    },

    #[error("rank {rank} is out of range for a {shape:?} matrix (1 to {max})")]
    RankOutOfRange { rank: i64, shape: Vec<i64>, max: i64 },

    #[error("{message}")]
    Surgery { message: String },

    #[error(
        "{virtual_tokens} virtual tokens + {tokens} tokens are beyond the model's {positions} positions \
         (max_position_embeddings): lower num_virtual_tokens or the tokenizer's max_len"
    )]
    TooLong {
        virtual_tokens: i64,
        tokens: i64,
        positions: i64,
    },

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io {
            path: path.into(),
            source,
        }
    }
}
