//! `tokenize`: token ids of a dataset with a model's tokenizer (tokenizers crate),
//! truncated to `max_len` and not padded: batches are padded when they are built.
//!
//! Output: `tokens.safetensors` with, per split, `{split}.ids` (all ids, I64),
//! `{split}.offsets` (where each example starts, I64, one more than examples) and
//! `{split}.labels` (I64); the metadata entry `orchestrate.tokens` holds the pad id,
//! `max_len` and the number of classes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use tokenizers::TruncationParams;

use super::dataset;
use super::{check, Context, Metrics, ParamError, Slot, Task, ValidateContext};
use crate::model::{self, ModelConfig};

pub struct Tokenize;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A model folder (relative to the experiment file) or a Hugging Face Hub id
    /// (`org/name`, `org/name@revision`), downloaded into the HF cache when missing.
    pub model: String,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Drop examples longer than `max_len` instead of truncating them (as the Yelp
    /// notebook did).
    #[serde(default)]
    pub drop_longer: bool,
    /// Keep the first this many training examples (after `drop_longer`), as the Yelp
    /// notebook's `select(range(5000))` does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_size: Option<usize>,
}

fn default_max_len() -> usize {
    512
}

pub use crate::train::Example;

/// A `tokenize` artifact, read back.
#[derive(Debug)]
pub struct Tokenized {
    pub train: Vec<Example>,
    pub eval: Vec<Example>,
    pub shape: TokensShape,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TokensShape {
    pub pad_id: i64,
    pub max_len: usize,
    pub n_classes: usize,
}

const SHAPE_METADATA: &str = "orchestrate.tokens";

/// Where a `model` parameter points: a folder or file next to the experiment, else a hub
/// id resolved through the Hugging Face cache (downloaded when missing).
pub fn model_path(base_dir: &Path, model: &str) -> Result<PathBuf> {
    let local = base_dir.join(model);
    if local.exists() {
        return Ok(local);
    }
    match model::hub::resolve(model)? {
        model::ModelSource::Folder(path) | model::ModelSource::Config(path) => Ok(path),
    }
}

/// The `files` of a kind whose `model` parameter names the model: its digest keys the task.
pub fn model_files(base_dir: &Path, model: &str) -> Result<Vec<(&'static str, PathBuf)>> {
    Ok(vec![("model", model_path(base_dir, model)?)])
}

impl Task for Tokenize {
    const KIND: &'static str = "tokenize";
    const VERSION: u32 = 1;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", &["dataset"])];
        SLOTS
    }

    fn files(params: &Params, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        model_files(base_dir, &params.model)
    }

    fn validate(params: &Params, cx: &ValidateContext) -> Result<(), ParamError> {
        check::max_len("max_len", params.max_len, cx.model)
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let folder = model_path(&ctx.base_dir, &params.model)?;
        // Checked at plan time when the model could be read then; here it always can.
        let config = ModelConfig::from_file(&folder.join("config.json"))?;
        check::max_len("max_len", params.max_len, Some(&config)).map_err(|e| anyhow::anyhow!(e.message))?;
        let loaded = model::tokenizer::ModelTokenizer::from_folder(&folder)?
            .with_context(|| format!("{} has no tokenizer.json or vocab.txt", folder.display()))?;
        let mut tokenizer = loaded.tokenizer.clone();
        // Truncate one past max_len so that `drop_longer` can tell which examples were longer.
        let limit = if params.drop_longer {
            params.max_len + 1
        } else {
            params.max_len
        };
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: limit,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("{}: {e}", loaded.path.display()))?;
        tokenizer.with_padding(None);
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0) as i64;
        let labels = dataset::load_label_names(&ctx.input("data")?.dir)?;
        let mut metrics = Metrics::default();
        if let Some(pin) = crate::hub::Pin::of(&folder) {
            // The report shows which commit of a hub model the tokens came from.
            metrics.extra.insert("model_revision".into(), pin.commit.into());
        }
        let mut splits = Vec::new();
        for split in dataset::SPLITS {
            let examples = dataset::load_split(&ctx.input("data")?.dir, split)?;
            let mut kept = Vec::with_capacity(examples.len());
            let (mut truncated, mut dropped) = (0usize, 0usize);
            for chunk in examples.chunks(256) {
                ctx.check_cancelled()?;
                let texts: Vec<&str> = chunk.iter().map(|e| e.text.as_str()).collect();
                let encodings = tokenizer
                    .encode_batch(texts, true)
                    .map_err(|e| anyhow::anyhow!("tokenizing: {e}"))?;
                for (encoding, example) in encodings.iter().zip(chunk) {
                    let mut ids: Vec<i64> = encoding.get_ids().iter().map(|&i| i64::from(i)).collect();
                    if !encoding.get_overflowing().is_empty() || ids.len() > params.max_len {
                        if params.drop_longer {
                            dropped += 1;
                            continue;
                        }
                        truncated += 1;
                    }
                    ids.truncate(params.max_len);
                    kept.push(Example {
                        ids,
                        label: example.label as i64,
                    });
                }
                (ctx.progress)(kept.len() as u64, examples.len() as u64, split);
            }
            if kept.is_empty() {
                bail!(
                    "the {split} split has no examples left (dropped {dropped} longer than {} tokens)",
                    params.max_len
                );
            }
            let size = if split == "train" {
                params.train_size
            } else {
                params.eval_size
            };
            if let Some(size) = size {
                if size > kept.len() {
                    bail!(
                        "{split}_size = {size} but the {split} split has {} examples{}",
                        kept.len(),
                        if dropped > 0 {
                            format!(" after dropping {dropped} longer than {} tokens", params.max_len)
                        } else {
                            String::new()
                        }
                    );
                }
                kept.truncate(size);
            }
            let mean = kept.iter().map(|e| e.ids.len()).sum::<usize>() as f64 / kept.len() as f64;
            metrics.extra.insert(format!("{split}_examples"), kept.len().into());
            metrics.extra.insert(format!("{split}_mean_tokens"), mean.into());
            metrics.extra.insert(format!("{split}_truncated"), truncated.into());
            metrics.extra.insert(format!("{split}_dropped"), dropped.into());
            splits.push((split, kept));
        }
        let shape = TokensShape {
            pad_id,
            max_len: params.max_len,
            n_classes: labels.len(),
        };
        write_tokens(&ctx.output("tokens.safetensors"), &splits, shape)?;
        Ok(metrics)
    }
}

fn write_tokens(path: &Path, splits: &[(&str, Vec<Example>)], shape: TokensShape) -> Result<()> {
    let bytes = |values: &[i64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let mut buffers: Vec<(String, Vec<u8>, usize)> = Vec::new();
    for (split, examples) in splits {
        let mut offsets = vec![0i64];
        let mut ids = Vec::new();
        for example in examples {
            ids.extend_from_slice(&example.ids);
            offsets.push(ids.len() as i64);
        }
        let labels: Vec<i64> = examples.iter().map(|e| e.label).collect();
        for (name, values) in [("ids", ids), ("offsets", offsets), ("labels", labels)] {
            buffers.push((format!("{split}.{name}"), bytes(&values), values.len()));
        }
    }
    let views = buffers
        .iter()
        .map(|(name, data, len)| Ok((name.clone(), TensorView::new(Dtype::I64, vec![*len], data)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([(SHAPE_METADATA.to_string(), serde_json::to_string(&shape)?)]);
    safetensors::serialize_to_file(views, Some(metadata), path).with_context(|| format!("writing {}", path.display()))
}

/// Reads a `tokenize` artifact.
pub fn load(artifact: &Path) -> Result<Tokenized> {
    let path = artifact.join("tokens.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not safetensors", path.display()))?;
    let shape: TokensShape = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SHAPE_METADATA))
        .and_then(|v| serde_json::from_str(v).ok())
        .with_context(|| format!("{}: metadata `{SHAPE_METADATA}` missing", path.display()))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
    let i64s = |name: &str| -> Result<Vec<i64>> {
        let view = tensors
            .tensor(name)
            .with_context(|| format!("{}: `{name}` missing", path.display()))?;
        Ok(view
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    };
    let split = |split: &str| -> Result<Vec<Example>> {
        let (ids, offsets, labels) = (
            i64s(&format!("{split}.ids"))?,
            i64s(&format!("{split}.offsets"))?,
            i64s(&format!("{split}.labels"))?,
        );
        if offsets.len() != labels.len() + 1 || offsets.last().copied() != Some(ids.len() as i64) {
            bail!("{}: split `{split}` is inconsistent", path.display());
        }
        Ok(labels
            .iter()
            .enumerate()
            .map(|(i, &label)| Example {
                ids: ids[offsets[i] as usize..offsets[i + 1] as usize].to_vec(),
                label,
            })
            .collect())
    };
    Ok(Tokenized {
        train: split("train")?,
        eval: split("eval")?,
        shape,
    })
}
