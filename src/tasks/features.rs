//! `features`: the frozen encoder's output for every example (eval mode, pooled as the
//! head reads it), computed once so that head-tuning trains only the head.
//!
//! Output: `features.safetensors` with `{split}.features` (F32 `[n, hidden]`) and
//! `{split}.labels` (I64); the metadata entry `orchestrate.features` records the pooling,
//! the model's digest and the number of classes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::tokenize::{self, model_files, model_path};
use super::training;
use super::{Context, Metrics, ParamError, Slot, Task, ValidateContext};
use crate::model::Pooling;
use crate::train::{self, Examples, FeatureExamples, Inputs, TokenExamples};

pub struct Features;

inference_params! {
    pub struct Params {
        /// A model folder (relative to the experiment file) or a hub id in the HF cache.
        pub model: String,
        #[serde(default)]
        pub pooling: Pooling,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeaturesInfo {
    pub pooling: Pooling,
    /// Digest of the model folder the encoder came from.
    pub model_digest: String,
    pub n_classes: usize,
}

const INFO_METADATA: &str = "orchestrate.features";

impl Task for Features {
    const KIND: &'static str = "features";
    const VERSION: u32 = 1;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("tokens", &["tokenize"])];
        SLOTS
    }

    fn files(params: &Params, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        model_files(base_dir, &params.model)
    }

    fn validate(params: &Params, _cx: &ValidateContext) -> Result<(), ParamError> {
        params.validate_common()
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let _torch = train::exclusive_torch();
        let tokens = tokenize::load(&ctx.input("tokens")?.dir)?;
        let path = model_path(&ctx.base_dir, &params.model)?;
        let mut model = training::load_model(
            &path,
            training::Origin::Pretrained,
            tokens.shape.n_classes,
            0,
            params.device,
            params.threads,
        )?;
        model.set_dtype(params.dtype);
        let started = std::time::Instant::now();
        let mut tensors = Vec::new();
        let mut metrics = Metrics::default();
        for (split, examples) in [("train", &tokens.train), ("eval", &tokens.eval)] {
            let split_started = std::time::Instant::now();
            let data = TokenExamples {
                examples,
                pad_id: tokens.shape.pad_id,
            };
            let mut order: Vec<usize> = (0..data.len()).collect();
            order.sort_by_key(|&i| data.length(i));
            let mut rows: Vec<Option<Tensor>> = (0..data.len()).map(|_| None).collect();
            for chunk in order.chunks(params.batch_size.get()) {
                ctx.check_cancelled()?;
                let (Inputs::Tokens { ids, mask }, _) = data.batch(chunk, model.device())? else {
                    unreachable!()
                };
                let pooled = tch::no_grad(|| model.network.features(&ids, &mask, None, false, params.pooling))?
                    .to_device(tch::Device::Cpu)
                    .to_kind(Kind::Float);
                for (row, &i) in chunk.iter().enumerate() {
                    rows[i] = Some(pooled.get(row as i64));
                }
                (ctx.progress)(
                    rows.iter().filter(|r| r.is_some()).count() as u64,
                    data.len() as u64,
                    split,
                );
            }
            let rows: Vec<Tensor> = rows.into_iter().map(|r| r.expect("every example encoded")).collect();
            let labels: Vec<i64> = examples.iter().map(|e| e.label).collect();
            tensors.push((split, Tensor::stack(&rows, 0), labels));
            metrics.extra.insert(
                format!("{split}_encode_time_s"),
                split_started.elapsed().as_secs_f64().into(),
            );
        }
        let info = FeaturesInfo {
            pooling: params.pooling,
            model_digest: crate::util::path_digest(&path)?,
            n_classes: tokens.shape.n_classes,
        };
        write(&ctx.output("features.safetensors"), &tensors, &info)?;
        metrics
            .extra
            .insert("encode_time_s".into(), started.elapsed().as_secs_f64().into());
        metrics
            .extra
            .insert("hidden_size".into(), tensors[0].1.size()[1].into());
        Ok(metrics)
    }
}

fn write(path: &Path, splits: &[(&str, Tensor, Vec<i64>)], info: &FeaturesInfo) -> Result<()> {
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (split, features, labels) in splits {
        let shape: Vec<usize> = features.size().iter().map(|&d| d as usize).collect();
        let values = Vec::<f32>::try_from(features.flatten(0, -1))?;
        buffers.push((
            format!("{split}.features"),
            Dtype::F32,
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        buffers.push((
            format!("{split}.labels"),
            Dtype::I64,
            vec![labels.len()],
            labels.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([(INFO_METADATA.to_string(), serde_json::to_string(info)?)]);
    safetensors::serialize_to_file(views, Some(metadata), path).with_context(|| format!("writing {}", path.display()))
}

/// Reads a `features` artifact: the train and eval sets and what they were made with.
pub fn load(artifact: &Path) -> Result<(FeatureExamples, FeatureExamples, FeaturesInfo)> {
    let path = artifact.join("features.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let info: FeaturesInfo = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(INFO_METADATA))
        .and_then(|v| serde_json::from_str(v).ok())
        .with_context(|| format!("{}: metadata `{INFO_METADATA}` missing", path.display()))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
    let split = |split: &str| -> Result<FeatureExamples> {
        let features = tensors.tensor(&format!("{split}.features"))?;
        let labels = tensors.tensor(&format!("{split}.labels"))?;
        let shape: Vec<i64> = features.shape().iter().map(|&d| d as i64).collect();
        let values: Vec<f32> = features
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        let labels: Vec<i64> = labels
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        Ok(FeatureExamples {
            features: Tensor::from_slice(&values).view(shape.as_slice()),
            labels: Tensor::from_slice(&labels),
        })
    };
    Ok((split("train")?, split("eval")?, info))
}
