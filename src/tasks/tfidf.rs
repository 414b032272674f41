//! `tfidf`: TF-IDF features of a dataset, fitted on the training split (linfa-preprocessing),
//! with scikit-learn's defaults: lowercase, tokens `\b\w\w+\b`, smooth idf, L2-normalised
//! rows, the top `max_features` terms.
//!
//! Output: `features.safetensors` (each split as CSR: `{split}.indptr`, `{split}.indices`,
//! `{split}.data`, `{split}.labels`; `n_features` and `n_classes` in the metadata entry
//! `orchestrate.tfidf`) and
//! `vocabulary.json`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use linfa_preprocessing::tf_idf_vectorization::TfIdfVectorizer;
use ndarray::{Array1, Array2};
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};
use sprs::CsMat;

use super::dataset::{self, Example};
use super::{check, Context, Metrics, ParamError, Slot, Task, ValidateContext};

pub struct Tfidf;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Keep the most frequent terms only (`0` keeps all).
    #[serde(default = "default_max_features")]
    pub max_features: usize,
    #[serde(default = "yes")]
    pub lowercase: bool,
    /// `[min_n, max_n]` word n-grams.
    #[serde(default = "default_ngram_range")]
    pub ngram_range: [usize; 2],
    /// Drop terms in fewer documents: a count (`2`) or a fraction of documents (`0.01`).
    #[serde(default = "default_min_df")]
    pub min_df: f64,
    /// Drop terms in more than this fraction of documents.
    #[serde(default = "default_max_df")]
    pub max_df: f64,
    /// `"l2"` (scikit-learn's default) or `"none"`.
    #[serde(default = "default_norm")]
    pub norm: Norm,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    L2,
    None,
}

fn default_max_features() -> usize {
    5000
}
fn yes() -> bool {
    true
}
fn default_ngram_range() -> [usize; 2] {
    [1, 1]
}
fn default_min_df() -> f64 {
    1.0
}
fn default_max_df() -> f64 {
    1.0
}
fn default_norm() -> Norm {
    Norm::L2
}

impl Task for Tfidf {
    const KIND: &'static str = "tfidf";
    const VERSION: u32 = 2;
    type Params = Params;

    fn slots() -> &'static [Slot] {
        const SLOTS: &[Slot] = &[Slot::required("data", &["dataset"])];
        SLOTS
    }

    fn validate(params: &Params, _cx: &ValidateContext) -> Result<(), ParamError> {
        let [min_n, max_n] = params.ngram_range;
        if min_n == 0 || min_n > max_n {
            return Err(ParamError::at(
                "ngram_range",
                format!("ngram_range must be [min, max] with 1 <= min <= max, got [{min_n}, {max_n}]"),
            ));
        }
        if !(params.max_df > 0.0 && params.max_df <= 1.0) {
            return Err(ParamError::at(
                "max_df",
                format!("max_df must be a fraction in (0, 1], got {}", params.max_df),
            ));
        }
        check::non_negative("min_df", params.min_df)
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let data = ctx.input("data")?;
        let train = dataset::load_split(&data.dir, "train")?;
        let eval = dataset::load_split(&data.dir, "eval")?;
        let n_classes = dataset::load_label_names(&data.dir)?.len();

        let started = Instant::now();
        // linfa takes document frequencies as fractions; an integer min_df is a count.
        if params.min_df >= 1.0 && params.min_df.floor() as usize > train.len() {
            bail!(
                "min_df = {} documents is more than the {} training documents: no term can pass it",
                params.min_df,
                train.len()
            );
        }
        let min_fraction = if params.min_df >= 1.0 {
            (params.min_df.floor() + 0.5) / train.len() as f64
        } else {
            params.min_df
        };
        let vectorizer = TfIdfVectorizer::default()
            .convert_to_lowercase(params.lowercase)
            .normalize(false)
            .n_gram_range(params.ngram_range[0], params.ngram_range[1])
            .document_frequency(min_fraction as f32, params.max_df as f32)
            .max_features((params.max_features > 0).then_some(params.max_features));
        let texts = |examples: &[Example]| Array1::from_iter(examples.iter().map(|e| e.text.clone()));
        let fitted = vectorizer
            .fit(&texts(&train))
            .context("fitting the TF-IDF vocabulary")?;
        ctx.check_cancelled()?;
        // linfa orders the vocabulary by a HashMap's iteration, which changes from run to
        // run: sort it (as scikit-learn does) so one cache key always means one artifact.
        let vocabulary = fitted.vocabulary();
        let mut by_term: Vec<usize> = (0..vocabulary.len()).collect();
        by_term.sort_by(|&a, &b| vocabulary[a].cmp(&vocabulary[b]));
        let mut column_of = vec![0; vocabulary.len()];
        for (column, &term) in by_term.iter().enumerate() {
            column_of[term] = column;
        }
        let mut splits = Vec::new();
        for (name, examples) in [("train", &train), ("eval", &eval)] {
            let matrix = fitted.transform(&texts(examples)).context("TF-IDF transform")?;
            let labels = examples.iter().map(|e| e.label as i64).collect::<Vec<_>>();
            splits.push((
                name,
                Csr::from_linfa(&matrix, &column_of, params.norm == Norm::L2),
                labels,
            ));
        }
        let vectorize_time = started.elapsed().as_secs_f64();
        let n_features = fitted.nentries();
        write_features(&ctx.output("features.safetensors"), &splits, n_features, n_classes)?;
        let sorted_vocabulary: Vec<&String> = by_term.iter().map(|&term| &vocabulary[term]).collect();
        crate::util::write_atomic(&ctx.output("vocabulary.json"), &serde_json::to_vec(&sorted_vocabulary)?)?;

        let mut metrics = Metrics::default();
        metrics.extra.insert("n_features".into(), n_features.into());
        metrics.extra.insert("vectorize_time_s".into(), vectorize_time.into());
        Ok(metrics)
    }
}

/// A CSR matrix as the artifact stores it.
struct Csr {
    indptr: Vec<i64>,
    indices: Vec<i64>,
    data: Vec<f64>,
}

impl Csr {
    /// Takes linfa's rows with each column `c` moved to `column_of[c]`, optionally
    /// L2-normalising every row (scikit-learn's default `norm="l2"`).
    fn from_linfa(matrix: &CsMat<f64>, column_of: &[usize], l2: bool) -> Self {
        let matrix = if matrix.is_csr() {
            matrix.clone()
        } else {
            matrix.to_csr()
        };
        let mut csr = Csr {
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        };
        for row in matrix.outer_iterator() {
            let mut entries: Vec<(usize, f64)> = row.iter().map(|(c, &v)| (column_of[c], v)).collect();
            entries.sort_by_key(|&(c, _)| c);
            let norm = if l2 {
                entries.iter().map(|(_, v)| v * v).sum::<f64>().sqrt()
            } else {
                1.0
            };
            for (column, value) in entries {
                csr.indices.push(column as i64);
                csr.data.push(if norm > 0.0 { value / norm } else { value });
            }
            csr.indptr.push(csr.indices.len() as i64);
        }
        csr
    }
}

fn i64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_features(path: &Path, splits: &[(&str, Csr, Vec<i64>)], n_features: usize, n_classes: usize) -> Result<()> {
    let mut buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, matrix, labels) in splits {
        let Csr { indptr, indices, data } = matrix;
        buffers.push((
            format!("{name}.indptr"),
            Dtype::I64,
            vec![indptr.len()],
            i64_bytes(indptr),
        ));
        buffers.push((
            format!("{name}.indices"),
            Dtype::I64,
            vec![indices.len()],
            i64_bytes(indices),
        ));
        buffers.push((format!("{name}.data"), Dtype::F64, vec![data.len()], f64_bytes(data)));
        buffers.push((
            format!("{name}.labels"),
            Dtype::I64,
            vec![labels.len()],
            i64_bytes(labels),
        ));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((name.clone(), TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<Result<Vec<_>>>()?;
    // One metadata entry: safetensors writes its metadata HashMap in iteration order, so
    // two entries would make the header's bytes vary from run to run.
    let shape = serde_json::to_string(&FeatureShape { n_features, n_classes })?;
    let metadata = HashMap::from([(SHAPE_METADATA.to_string(), shape)]);
    safetensors::serialize_to_file(views, Some(metadata), path).with_context(|| format!("writing {}", path.display()))
}

const SHAPE_METADATA: &str = "orchestrate.tfidf";

#[derive(Serialize, Deserialize)]
struct FeatureShape {
    n_features: usize,
    n_classes: usize,
}

/// One split of a `tfidf` artifact, densified for the linfa estimators.
pub struct Split {
    pub features: Array2<f64>,
    pub labels: Array1<usize>,
}

pub struct Features {
    pub train: Split,
    pub eval: Split,
    pub n_classes: usize,
}

/// Reads a `tfidf` artifact.
pub fn load_features(artifact: &Path) -> Result<Features> {
    let path = artifact.join("features.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{}: not a safetensors file", path.display()))?;
    let FeatureShape { n_features, n_classes } = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(SHAPE_METADATA))
        .and_then(|v| serde_json::from_str(v).ok())
        .with_context(|| format!("{}: metadata `{SHAPE_METADATA}` missing", path.display()))?;
    let i64s = |name: &str| -> Result<Vec<i64>> {
        let view = tensors
            .tensor(name)
            .with_context(|| format!("{}: tensor `{name}` missing", path.display()))?;
        Ok(view
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    };
    let split = |name: &str| -> Result<Split> {
        let indptr = i64s(&format!("{name}.indptr"))?;
        let indices = i64s(&format!("{name}.indices"))?;
        let labels = i64s(&format!("{name}.labels"))?;
        let data_view = tensors
            .tensor(&format!("{name}.data"))
            .with_context(|| format!("{}: `{name}.data` missing", path.display()))?;
        let data: Vec<f64> = data_view
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let rows = indptr.len().saturating_sub(1);
        if rows != labels.len() || indices.len() != data.len() {
            bail!("{}: split `{name}` is inconsistent", path.display());
        }
        let mut features = Array2::<f64>::zeros((rows, n_features));
        for row in 0..rows {
            for at in indptr[row] as usize..indptr[row + 1] as usize {
                features[[row, indices[at] as usize]] = data[at];
            }
        }
        Ok(Split {
            features,
            labels: labels.iter().map(|&l| l as usize).collect(),
        })
    };
    Ok(Features {
        train: split("train")?,
        eval: split("eval")?,
        n_classes,
    })
}
