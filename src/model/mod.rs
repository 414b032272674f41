//! Transformer encoders on libtorch (tch): DistilBERT and BERT for sequence
//! classification, loaded from and saved to Hugging Face model folders.
//!
//! Design:
//! - Parameters live in one `tch::nn::VarStore` under their exact Hugging Face names
//!   (`distilbert.transformer.layer.0.attention.q_lin.weight`,
//!   `bert.encoder.layer.0.attention.self.query.weight`), so checkpoints load and save
//!   1:1 with no rename table, and counts match `transformers`/PEFT.
//! - Every linear layer is a `Box<dyn LinearLayer>` slot reachable by its HF module
//!   name ([`LoadedModel::linear_names`], [`LoadedModel::replace_linear`]): adapters
//!   (LoRA, IA3) and SVD surgery wrap or replace layers without touching the encoders.
//! - `train` is passed explicitly to every forward (dropout on/off); run eval under
//!   `tch::no_grad`.
//! - Loading checks everything a user can get wrong (files, model_type, shapes, label
//!   count, tokenizer vocabulary) and reports missing/unexpected tensors by name
//!   ([`LoadReport`]), like `from_pretrained`'s warnings.
//!
//! Entry points: [`load`] (folder, hub id in the HF cache, or bare config.json),
//! [`LoadedModel::forward`], [`LoadedModel::save`], [`inspect::run`].

pub mod adapters;
pub mod bert;
pub mod bottleneck;
pub mod checkpoint;
pub mod config;
pub mod distilbert;
pub mod error;
pub mod heads;
pub mod hub;
pub mod inspect;
pub mod layers;
pub mod nf4;
pub mod params;
pub mod prefix;
pub mod prompt;
pub mod surgery;
pub mod targets;
pub mod tokenizer;
pub mod tree;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use tch::nn::VarStore;
use tch::{Device, Tensor};

pub use checkpoint::LoadReport;
pub use config::{ArchConfig, BertConfig, DistilBertConfig, ModelConfig};
pub use error::{ModelError, Result};
pub use hub::ModelSource;
pub use layers::{Linear, LinearLayer, LinearSlot};
pub use params::{Method, ParamCounts};
pub use targets::{linear_layers, LinearShape};
pub use tokenizer::ModelTokenizer;
pub use tree::ModuleNode;

use bert::BertModel;
use distilbert::DistilBertModel;
use heads::{BertHead, DistilBertHead, HEAD_PREFIXES_BERT, HEAD_PREFIXES_DISTILBERT};

/// Where tensors live: `"cpu"`, `"cuda"` (error if unavailable) or `"auto"` (CUDA when
/// libtorch sees a GPU, else CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
    #[default]
    Auto,
}

impl FromStr for DeviceChoice {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            _ => Err(ModelError::InvalidDevice(s.to_string())),
        }
    }
}

impl DeviceChoice {
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(ModelError::CudaUnavailable),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
        }
    }
}

/// Sets libtorch's intra-op threads: `threads`, else the available cores.
pub fn set_threads(threads: Option<usize>) {
    let n = threads
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tch::set_num_threads(n as i32);
}

/// The float type an inference task runs its model in (transformers' `dtype`): `float32`
/// (the default; what training uses) or `bfloat16`, which halves the memory traffic and
/// uses the CPU's bfloat16 matrix instructions (AVX-512 BF16, AMX) or the GPU's tensor
/// cores: faster encoding (docs/performance.md), at bfloat16's ~3 significant digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    #[default]
    Float32,
    Bfloat16,
}

impl Dtype {
    /// Keeps the cache keys of tasks that do not set `dtype` what they were before it existed.
    pub fn is_default(&self) -> bool {
        *self == Dtype::default()
    }

    pub fn kind(self) -> tch::Kind {
        match self {
            Dtype::Float32 => tch::Kind::Float,
            Dtype::Bfloat16 => tch::Kind::BFloat16,
        }
    }
}

/// What the classification head reads of a sequence: the first token's final hidden state
/// (`cls`, transformers' heads) or the mean over the non-padding tokens (`mean`, how
/// sentence-transformers models such as all-MiniLM-L6-v2 were trained to be used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    #[default]
    Cls,
    Mean,
}

impl Pooling {
    /// `hidden [batch, seq, dim]`, `mask [batch, seq]` → `[batch, dim]`.
    pub fn apply(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Pooling::Cls => hidden.f_select(1, 0)?,
            Pooling::Mean => {
                let weights = mask.f_unsqueeze(-1)?.f_to_kind(hidden.kind())?;
                let summed = hidden.f_mul(&weights)?.f_sum_dim_intlist(1, false, hidden.kind())?;
                let counts = weights.f_sum_dim_intlist(1, false, hidden.kind())?.f_clamp_min(1e-9)?;
                summed.f_div(&counts)?
            }
        })
    }
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: DeviceChoice,
    /// Torch threads; `None` = available cores.
    pub threads: Option<usize>,
    /// Number of labels of the task; `None` = the config's. A checkpoint whose classifier
    /// has another size is an error (unless `reinit_mismatched_head`).
    pub num_labels: Option<i64>,
    /// Seed for the random initialisation (head layers, or everything without weights).
    pub seed: Option<i64>,
    /// Read `model.safetensors` (a folder must then have it). `false` = random weights.
    pub weights: bool,
    /// A folder must have `tokenizer.json` or `vocab.txt` (when weights are read).
    pub require_tokenizer: bool,
    /// Accept encoder tensors missing from the checkpoint (they stay random).
    pub allow_missing: bool,
    /// Re-initialise head tensors whose shape differs (HF's `ignore_mismatched_sizes`).
    pub reinit_mismatched_head: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            device: DeviceChoice::Auto,
            threads: None,
            num_labels: None,
            seed: None,
            weights: true,
            require_tokenizer: true,
            allow_missing: false,
            reinit_mismatched_head: false,
        }
    }
}

/// The network: encoder + sequence-classification head.
#[derive(Debug)]
pub enum Network {
    DistilBert {
        distilbert: DistilBertModel,
        head: DistilBertHead,
    },
    Bert {
        bert: BertModel,
        head: BertHead,
    },
}

/// Output of a forward pass.
#[derive(Debug)]
pub struct ModelOutput {
    /// `[batch, num_labels]`.
    pub logits: Tensor,
    /// Embedding output, then each layer's output: `num_layers + 1` tensors
    /// `[batch, seq, hidden]` (transformers' `hidden_states`).
    pub hidden_states: Vec<Tensor>,
}

/// A model ready to run: config, parameters, network, tokenizer, and the load report.
#[derive(Debug)]
pub struct LoadedModel {
    pub config: ModelConfig,
    pub vs: VarStore,
    pub network: Network,
    pub tokenizer: Option<ModelTokenizer>,
    pub source: ModelSource,
    pub report: LoadReport,
    /// Prompt or prefix tuning's virtual tokens (their parameters are also in `vs`).
    pub virtual_tokens: Option<VirtualTokens>,
}

/// Learned tokens that are not in the input.
#[derive(Debug)]
pub enum VirtualTokens {
    /// Prompt tuning: embeddings `[virtual tokens, hidden]` put in front of every input's
    /// ([`prompt`]; the variable [`prompt::PROMPT_EMBEDDINGS`]).
    Prompt(Tensor),
    /// Prefix tuning: keys and values every layer attends to before the input's ([`prefix`]).
    Prefix(prefix::PrefixEncoder),
}

/// Loads `target` (model folder, bare config.json, or hub id in the HF cache).
pub fn load(target: &str, opts: &LoadOptions) -> Result<LoadedModel> {
    let source = hub::resolve(target)?;
    load_source(source, opts)
}

/// Loads from an already resolved source.
pub fn load_source(source: ModelSource, opts: &LoadOptions) -> Result<LoadedModel> {
    set_threads(opts.threads);
    let device = opts.device.resolve()?;
    let config_path = source.config_path();
    if let ModelSource::Folder(folder) = &source {
        if !config_path.is_file() {
            return Err(ModelError::MissingFile {
                folder: folder.clone(),
                file: "config.json".into(),
                hint: String::new(),
            });
        }
    }
    let mut config = ModelConfig::from_file(&config_path)?;
    let labels_origin = match opts.num_labels {
        Some(n) => format!(
            "num_labels = {n} requested; {} says {}",
            config_path.display(),
            config.num_labels
        ),
        None => format!("id2label/num_labels in {}", config_path.display()),
    };
    if let Some(n) = opts.num_labels {
        config.num_labels = n;
    }
    if let Some(seed) = opts.seed {
        tch::manual_seed(seed);
    }
    let vs = VarStore::new(device);
    let network = Network::new(&vs, &config)?;
    let class = network.class_name();

    let weights = match &source {
        ModelSource::Folder(folder) if opts.weights => Some(weights_file(folder)?),
        _ => None,
    };
    let report = match &weights {
        Some(path) => {
            let rules = checkpoint::HeadRules {
                prefixes: network.head_prefixes(),
                base_prefix: network.base_prefix(),
                labels_origin,
                allow_missing: opts.allow_missing,
                reinit_mismatched_head: opts.reinit_mismatched_head,
            };
            checkpoint::load_into(&vs.variables(), path, &rules, class)?
        }
        None => LoadReport {
            weights: None,
            model_class: class.to_string(),
            ..Default::default()
        },
    };

    let tokenizer = match &source {
        ModelSource::Folder(folder) => {
            let tok = ModelTokenizer::from_folder(folder)?;
            if tok.is_none() && opts.require_tokenizer && opts.weights {
                return Err(ModelError::MissingFile {
                    folder: folder.clone(),
                    file: "tokenizer.json (or vocab.txt)".into(),
                    hint: String::new(),
                });
            }
            tok
        }
        ModelSource::Config(_) => None,
    };
    if let Some(tok) = &tokenizer {
        let rows = config.vocab_size();
        if tok.vocab_size() as i64 > rows {
            return Err(ModelError::VocabMismatch {
                tokenizer: tok.path.clone(),
                vocab_size: tok.vocab_size(),
                weights: weights.clone().unwrap_or_else(|| config_path.clone()),
                tensor: format!("{}embeddings.word_embeddings.weight", network.base_prefix()),
                rows,
            });
        }
    }
    Ok(LoadedModel {
        config,
        vs,
        network,
        tokenizer,
        source,
        report,
        virtual_tokens: None,
    })
}

/// `folder/model.safetensors`, or an error that says what is there instead.
fn weights_file(folder: &Path) -> Result<PathBuf> {
    let path = folder.join("model.safetensors");
    if path.is_file() {
        return Ok(path);
    }
    let hint = if folder.join("model.safetensors.index.json").is_file() {
        "; found model.safetensors.index.json, but sharded checkpoints are not supported".to_string()
    } else if folder.join("pytorch_model.bin").is_file() {
        "; found only pytorch_model.bin: convert it with transformers' \
         save_pretrained(dir, safe_serialization=True)"
            .to_string()
    } else {
        String::new()
    };
    Err(ModelError::MissingFile {
        folder: folder.to_owned(),
        file: "model.safetensors".into(),
        hint,
    })
}

impl Network {
    /// Builds the network with transformers' random initialisation under `vs`'s root.
    pub fn new(vs: &VarStore, config: &ModelConfig) -> Result<Network> {
        let root = vs.root();
        Ok(match &config.arch {
            ArchConfig::DistilBert(c) => Network::DistilBert {
                distilbert: DistilBertModel::new(&(&root / "distilbert"), c)?,
                head: DistilBertHead::new(&root, c, config.num_labels)?,
            },
            ArchConfig::Bert(c) => Network::Bert {
                bert: BertModel::new(&(&root / "bert"), c)?,
                head: BertHead::new(&root, c, config.num_labels)?,
            },
        })
    }

    pub fn class_name(&self) -> &'static str {
        match self {
            Network::DistilBert { .. } => "DistilBertForSequenceClassification",
            Network::Bert { .. } => "BertForSequenceClassification",
        }
    }

    /// Name prefix of the encoder's parameters (`"distilbert."`, `"bert."`).
    pub fn base_prefix(&self) -> &'static str {
        match self {
            Network::DistilBert { .. } => "distilbert.",
            Network::Bert { .. } => "bert.",
        }
    }

    /// Name prefixes of the classification head's parameters.
    pub fn head_prefixes(&self) -> &'static [&'static str] {
        match self {
            Network::DistilBert { .. } => HEAD_PREFIXES_DISTILBERT,
            Network::Bert { .. } => HEAD_PREFIXES_BERT,
        }
    }

    /// The encoder's word embeddings `[vocab, hidden]`.
    pub fn word_embeddings(&self) -> &Tensor {
        match self {
            Network::DistilBert { distilbert, .. } => &distilbert.embeddings.word_embeddings.weight,
            Network::Bert { bert, .. } => &bert.embeddings.word_embeddings.weight,
        }
    }

    fn max_positions(&self) -> i64 {
        match self {
            Network::DistilBert { distilbert, .. } => distilbert.embeddings.position_embeddings.weight.size()[0],
            Network::Bert { bert, .. } => bert.embeddings.position_embeddings.weight.size()[0],
        }
    }

    /// The encoder's hidden states, and the attention mask of those states: that of
    /// `input_ids`, or, with a prompt (see [`prompt`]), the virtual tokens' ones in front of
    /// it. A prefix ([`prefix`]) adds keys and values, not hidden states.
    pub fn encode(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        virtual_tokens: Option<&VirtualTokens>,
        train: bool,
    ) -> Result<(Vec<Tensor>, Tensor)> {
        let Some(virtual_tokens) = virtual_tokens else {
            let hidden = match self {
                Network::DistilBert { distilbert, .. } => distilbert.forward_t(input_ids, attention_mask, train)?,
                Network::Bert { bert, .. } => bert.forward_t(input_ids, attention_mask, train)?,
            };
            return Ok((hidden, attention_mask.shallow_clone()));
        };
        let (batch, seq) = (input_ids.size()[0], input_ids.size()[1]);
        let count = match virtual_tokens {
            VirtualTokens::Prompt(prompt) => prompt.size()[0],
            VirtualTokens::Prefix(encoder) => encoder.num_virtual_tokens,
        };
        let positions = self.max_positions();
        if count + seq > positions {
            return Err(ModelError::TooLong {
                virtual_tokens: count,
                tokens: seq,
                positions,
            });
        }
        let words = Tensor::f_embedding(self.word_embeddings(), input_ids, -1, false, false)?;
        let ones = Tensor::f_ones([batch, count], (attention_mask.kind(), attention_mask.device()))?;
        let mask = Tensor::f_cat(&[ones, attention_mask.shallow_clone()], 1)?;
        let (embeds, prefixes) = match virtual_tokens {
            VirtualTokens::Prompt(prompt) => {
                let prompts = prompt
                    .f_to_kind(words.kind())?
                    .f_unsqueeze(0)?
                    .f_expand([batch, count, prompt.size()[1]], false)?;
                (Tensor::f_cat(&[prompts, words], 1)?, Vec::new())
            }
            VirtualTokens::Prefix(encoder) => (words, encoder.layer_prefixes(batch)?),
        };
        let hidden = match self {
            Network::DistilBert { distilbert, .. } => distilbert.forward_embeds_t(&embeds, &mask, &prefixes, train)?,
            Network::Bert { bert, .. } => bert.forward_embeds_t(&embeds, &mask, &prefixes, train)?,
        };
        match virtual_tokens {
            VirtualTokens::Prompt(_) => Ok((hidden, mask)),
            VirtualTokens::Prefix(_) => Ok((hidden, attention_mask.shallow_clone())),
        }
    }

    /// Logits and hidden states; `virtual_tokens` as in [`Network::encode`].
    pub fn forward_t(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        virtual_tokens: Option<&VirtualTokens>,
        train: bool,
    ) -> Result<ModelOutput> {
        let (hidden_states, _) = self.encode(input_ids, attention_mask, virtual_tokens, train)?;
        match self {
            Network::DistilBert { head, .. } => {
                let last = hidden_states.last().expect("embedding output is always there");
                let logits = head.forward_t(last, train)?;
                Ok(ModelOutput { logits, hidden_states })
            }
            Network::Bert { bert, head } => {
                let last = hidden_states.last().expect("embedding output is always there");
                let pooled = bert.pooler.forward_t(last, train)?;
                let logits = head.forward_t(&pooled, train)?;
                Ok(ModelOutput { logits, hidden_states })
            }
        }
    }

    /// The head's input `[batch, hidden]`: the encoder's last hidden state, pooled (over a
    /// prompt's virtual tokens too: see [`Network::encode`]).
    pub fn features(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        virtual_tokens: Option<&VirtualTokens>,
        train: bool,
        pooling: Pooling,
    ) -> Result<Tensor> {
        let (hidden_states, mask) = self.encode(input_ids, attention_mask, virtual_tokens, train)?;
        let last = hidden_states.last().expect("embedding output is always there");
        pooling.apply(last, &mask)
    }

    /// Logits from [`Network::features`]: everything head-tuning trains.
    pub fn head_forward(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Network::DistilBert { head, .. } => head.forward_pooled(features, train),
            Network::Bert { bert, head } => head.forward_t(&bert.pooler.forward_pooled(features, train)?, train),
        }
    }

    /// Every linear layer by HF module name, in module order.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut LinearSlot)> {
        match self {
            Network::DistilBert { distilbert, head } => {
                let mut v = distilbert.linears_mut("distilbert.");
                v.push(("pre_classifier".into(), &mut head.pre_classifier));
                v.push(("classifier".into(), &mut head.classifier));
                v
            }
            Network::Bert { bert, head } => {
                let mut v = bert.linears_mut("bert.");
                v.push(("classifier".into(), &mut head.classifier));
                v
            }
        }
    }

    /// The linear layer called `name`.
    pub fn linear_slot(&mut self, name: &str) -> Result<&mut LinearSlot> {
        self.linears_mut()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, slot)| slot)
            .ok_or_else(|| ModelError::UnknownLinear { name: name.to_string() })
    }

    /// Module names of the classification head, as PEFT's `modules_to_save` lists them.
    pub fn head_modules(&self) -> &'static [&'static str] {
        match self {
            Network::DistilBert { .. } => &["pre_classifier", "classifier"],
            Network::Bert { .. } => &["pooler", "classifier"],
        }
    }

    /// The tree `print(model)` shows.
    pub fn module_tree(&self) -> ModuleNode {
        match self {
            Network::DistilBert { distilbert, head } => {
                let mut children = vec![("distilbert", distilbert.module_node())];
                children.extend(head.children());
                ModuleNode::new(self.class_name(), children)
            }
            Network::Bert { bert, head } => {
                let mut children = vec![("bert", bert.module_node())];
                children.extend(head.children());
                ModuleNode::new(self.class_name(), children)
            }
        }
    }
}

impl LoadedModel {
    /// A randomly initialised model from a config (no files besides the config).
    pub fn from_config(config: ModelConfig, opts: &LoadOptions) -> Result<LoadedModel> {
        set_threads(opts.threads);
        let device = opts.device.resolve()?;
        if let Some(seed) = opts.seed {
            tch::manual_seed(seed);
        }
        let vs = VarStore::new(device);
        let network = Network::new(&vs, &config)?;
        let report = LoadReport {
            weights: None,
            model_class: network.class_name().into(),
            ..Default::default()
        };
        let source = ModelSource::Config(config.path.clone());
        Ok(LoadedModel {
            config,
            vs,
            network,
            tokenizer: None,
            source,
            report,
            virtual_tokens: None,
        })
    }

    /// Logits `[batch, num_labels]` for `input_ids`/`attention_mask` (`[batch, seq]`,
    /// int64, 1 = token, 0 = padding). `train` enables dropout.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self
            .forward_with_hidden_states(input_ids, attention_mask, train)?
            .logits)
    }

    /// Logits and all hidden states.
    pub fn forward_with_hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<ModelOutput> {
        let device = self.device();
        let ids = input_ids.f_to_device(device)?;
        let mask = attention_mask.f_to_device(device)?;
        self.network.forward_t(&ids, &mask, self.virtual_tokens.as_ref(), train)
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Casts every floating-point parameter (adapters included) to `dtype`; for inference
    /// only, since training keeps float32 weights for AdamW's small updates.
    pub fn set_dtype(&mut self, dtype: Dtype) {
        self.vs.set_kind(dtype.kind());
    }

    /// Logits with the given pooling (`Pooling::Cls` equals [`LoadedModel::forward`]).
    pub fn logits(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool, pooling: Pooling) -> Result<Tensor> {
        let device = self.device();
        let (ids, mask) = (input_ids.f_to_device(device)?, attention_mask.f_to_device(device)?);
        self.network.head_forward(
            &self
                .network
                .features(&ids, &mask, self.virtual_tokens.as_ref(), train, pooling)?,
            train,
        )
    }

    pub fn model_class(&self) -> &'static str {
        self.network.class_name()
    }

    pub fn module_tree(&self) -> ModuleNode {
        self.network.module_tree()
    }

    /// Tokenizes `texts` (padded to the longest, truncated to `max_length`).
    pub fn encode(&self, texts: &[&str], max_length: usize) -> Result<(Tensor, Tensor)> {
        let tok = self.tokenizer.as_ref().ok_or_else(|| ModelError::Encode {
            message: format!("model from {} has no tokenizer", self.config.path.display()),
        })?;
        tok.encode_batch(texts, max_length, self.device())
    }

    /// All parameters by HF name, sorted.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Parameters with `requires_grad`, by name (what an optimizer should get; note that
    /// `VarStore::trainable_variables` ignores freezing done here).
    pub fn trainable_parameters(&self) -> Vec<(String, Tensor)> {
        self.named_parameters()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect()
    }

    /// Marks each parameter trainable iff `trainable(name)`.
    pub fn set_trainable(&self, trainable: impl Fn(&str) -> bool) {
        for (name, t) in self.vs.variables() {
            // Packed 4-bit weights are bytes: frozen by nature.
            if t.is_floating_point() {
                let _ = t.set_requires_grad(trainable(&name));
            }
        }
    }

    /// Applies `method`: injects its adapters (LoRA, IA3) and marks exactly its parameters
    /// trainable. Errors name a target module the model lacks, or an invalid rank or alpha.
    pub fn apply_method(&mut self, method: &Method) -> Result<()> {
        let head = self.network.head_prefixes();
        let in_head = |n: &str| head.iter().any(|p| n.starts_with(p));
        match method {
            Method::Full => self.set_trainable(|_| true),
            Method::Head => self.set_trainable(in_head),
            Method::BitFit => self.set_trainable(|n| n.ends_with(".bias") || in_head(n)),
            Method::Lora(spec) => self.apply_lora(spec)?,
            Method::Qlora(spec) => {
                nf4::quantize_encoder(self, spec.double_quant)?;
                self.apply_lora(&spec.lora)?;
            }
            Method::Ia3(spec) => {
                adapters::inject_ia3(self, spec)?;
                let saved = spec.modules_to_save.as_deref();
                self.set_trainable(|n| {
                    n.ends_with(".ia3_l") || saved.map_or(in_head(n), |s| adapters::in_modules(s, n))
                });
            }
            Method::Adapter(spec) => {
                bottleneck::inject_bottleneck(self, spec)?;
                let saved = spec.modules_to_save.as_deref();
                self.set_trainable(|n| spec.owns(n) || saved.map_or(in_head(n), |s| adapters::in_modules(s, n)));
            }
            Method::PromptTuning(spec) => {
                prompt::inject_prompt(self, spec)?;
                let saved = spec.modules_to_save.as_deref();
                self.set_trainable(|n| {
                    n == prompt::PROMPT_EMBEDDINGS || saved.map_or(in_head(n), |s| adapters::in_modules(s, n))
                });
            }
            Method::PrefixTuning(spec) => {
                prefix::inject_prefix(self, spec)?;
                let saved = spec.modules_to_save.as_deref();
                self.set_trainable(|n| {
                    prefix::is_prefix_parameter(n) || saved.map_or(in_head(n), |s| adapters::in_modules(s, n))
                });
            }
        }
        Ok(())
    }

    /// LoRA on the targets; the adapters, the chosen biases and `modules_to_save` train.
    fn apply_lora(&mut self, spec: &adapters::LoraSpec) -> Result<()> {
        let head = self.network.head_prefixes();
        let in_head = |n: &str| head.iter().any(|p| n.starts_with(p));
        let targets = adapters::inject_lora(self, spec)?;
        let saved = spec.modules_to_save.as_deref();
        self.set_trainable(|n| {
            let bias = match spec.bias {
                adapters::BiasMode::None => false,
                adapters::BiasMode::All => n.ends_with(".bias"),
                adapters::BiasMode::LoraOnly => n.strip_suffix(".bias").is_some_and(|m| targets.iter().any(|t| t == m)),
            };
            n.contains(".lora_A.")
                || n.contains(".lora_B.")
                || n.ends_with(".lora_magnitude_vector")
                || bias
                || saved.map_or(in_head(n), |s| adapters::in_modules(s, n))
        });
        Ok(())
    }

    /// Trainable and total parameter counts.
    pub fn param_counts(&self) -> ParamCounts {
        self.count_params(|_| true)
    }

    /// Counts among the parameters whose name satisfies `select`.
    pub fn count_params(&self, select: impl Fn(&str) -> bool) -> ParamCounts {
        let mut counts = ParamCounts { trainable: 0, all: 0 };
        for (name, t) in self.vs.variables() {
            if !select(&name) {
                continue;
            }
            // A 4-bit weight packs two parameters a byte (PEFT counts `Params4bit` so too).
            let n = t.numel() as i64 * if t.kind() == tch::Kind::Uint8 { 2 } else { 1 };
            counts.all += n;
            if t.requires_grad() {
                counts.trainable += n;
            }
        }
        counts
    }

    /// HF module names of every linear layer (`distilbert.transformer.layer.0.attention.q_lin`).
    pub fn linear_names(&mut self) -> Vec<String> {
        self.network.linears_mut().into_iter().map(|(n, _)| n).collect()
    }

    /// The linear layer called `name`.
    pub fn linear_mut(&mut self, name: &str) -> Result<&mut LinearSlot> {
        self.network.linear_slot(name)
    }

    /// Replaces the linear layer `name` by `f(old)`; `f` may wrap `old` (an adapter) or
    /// build a new layer from its weights (SVD). New parameters should be registered in
    /// `self.vs` under `name.…` so they are counted and saved. If `f` fails, the slot is
    /// left empty (a forward pass through it errors): treat the model as unusable.
    pub fn replace_linear(&mut self, name: &str, f: impl FnOnce(LinearSlot) -> Result<LinearSlot>) -> Result<()> {
        let slot = self.linear_mut(name)?;
        let placeholder: LinearSlot = Box::new(Linear {
            weight: Tensor::new(),
            bias: None,
        });
        let old = std::mem::replace(slot, placeholder);
        *slot = f(old)?;
        Ok(())
    }

    /// Writes `dir/config.json`, `dir/model.safetensors` and the tokenizer files of the
    /// source folder: a folder transformers' `from_pretrained` loads.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_tensors(dir, &self.vs.variables())
    }

    /// [`LoadedModel::save`] with `tensors` as the weights (a merged or edited copy).
    pub fn save_tensors(&self, dir: &Path, tensors: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let config_path = dir.join("config.json");
        let json = serde_json::to_string_pretty(&self.config.to_json()).expect("JSON values serialize");
        std::fs::write(&config_path, json + "\n").map_err(|e| ModelError::io(&config_path, e))?;
        checkpoint::save(tensors, &dir.join("model.safetensors"))?;
        if let ModelSource::Folder(src) = &self.source {
            let same = src.canonicalize().ok() == dir.canonicalize().ok();
            for file in tokenizer::TOKENIZER_FILES {
                let from = src.join(file);
                if !same && from.is_file() {
                    std::fs::copy(&from, dir.join(file)).map_err(|e| ModelError::io(&from, e))?;
                }
            }
        }
        Ok(())
    }
}
