//! Reading and writing `model.safetensors` by Hugging Face parameter name.
//!
//! Loading is strict about what matters and reports the rest, as transformers'
//! `from_pretrained` does: a tensor with the wrong shape is an error naming the file and
//! the tensor; encoder tensors absent from the file are an error (listed); head tensors
//! absent from the file are freshly initialised and listed (HF's "newly initialized"
//! warning); tensors the model does not have are listed as unexpected. A checkpoint saved
//! from the bare encoder (`BertModel`, names without `bert.`) is mapped by adding the base
//! prefix, as HF does.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

use super::error::{ModelError, Result};

/// What loading a checkpoint did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The weights file, `None` when the model was built from a bare config.
    pub weights: Option<PathBuf>,
    /// The model class (`DistilBertForSequenceClassification`, …).
    pub model_class: String,
    /// Tensors in the file that the model does not have.
    pub unexpected: Vec<String>,
    /// Model tensors not in the file, freshly initialised (only head tensors are allowed,
    /// unless `LoadOptions::allow_missing`).
    pub newly_initialized: Vec<String>,
    /// Head tensors whose shape differed and were re-initialised
    /// (`LoadOptions::reinit_mismatched_head`): name, file shape, model shape.
    pub mismatched: Vec<(String, Vec<i64>, Vec<i64>)>,
    /// Whether the base-model prefix (`bert.`, `distilbert.`) was added to the file's names.
    pub added_prefix: Option<String>,
}

impl LoadReport {
    /// True when nothing needs the user's attention.
    pub fn is_clean(&self) -> bool {
        self.unexpected.is_empty() && self.newly_initialized.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for LoadReport {
    /// transformers' warnings, with the same wording where it has one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = match &self.weights {
            Some(p) => p.display().to_string(),
            None => {
                return writeln!(
                    f,
                    "{} built from config only: all weights are randomly initialized.",
                    self.model_class
                )
            }
        };
        if !self.unexpected.is_empty() {
            writeln!(
                f,
                "Some weights of the model checkpoint at {at} were not used when initializing {}: [{}]",
                self.model_class,
                self.unexpected.join(", ")
            )?;
        }
        if !self.newly_initialized.is_empty() {
            writeln!(
                f,
                "Some weights of {} were not initialized from the model checkpoint at {at} and are \
                 newly initialized: [{}]\nYou should probably TRAIN this model on a down-stream task \
                 to be able to use it for predictions and inference.",
                self.model_class,
                self.newly_initialized.join(", ")
            )?;
        }
        for (name, file, model) in &self.mismatched {
            writeln!(
                f,
                "Some weights of {} were not initialized from the model checkpoint at {at} and are \
                 newly initialized because the shapes did not match: {name}: found shape {file:?} \
                 in the checkpoint and {model:?} in the model instantiated",
                self.model_class
            )?;
        }
        Ok(())
    }
}

/// How to treat the classification head while loading.
pub(crate) struct HeadRules<'a> {
    /// Name prefixes of head parameters (may be newly initialised).
    pub prefixes: &'a [&'a str],
    /// Base-model prefix (`"distilbert."`, `"bert."`).
    pub base_prefix: &'a str,
    /// Where the expected label count came from, for the label-mismatch message.
    pub labels_origin: String,
    pub allow_missing: bool,
    pub reinit_mismatched_head: bool,
}

fn is_head(name: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| name.starts_with(p))
}

/// Buffers transformers never saves in new checkpoints but old ones contain.
fn is_ignorable(name: &str) -> bool {
    name.ends_with("embeddings.position_ids") || name.ends_with("embeddings.token_type_ids")
}

/// Copies the tensors of the safetensors file `path` into `vars` (name → parameter).
pub(crate) fn load_into(
    vars: &HashMap<String, Tensor>,
    path: &Path,
    rules: &HeadRules<'_>,
    model_class: &str,
) -> Result<LoadReport> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let file_names: Vec<String> = st.names().into_iter().map(String::from).collect();

    // A bare-encoder checkpoint: no name carries the base prefix, but prefixed names exist.
    let has_prefix = file_names.iter().any(|n| n.starts_with(rules.base_prefix));
    let add_prefix = !has_prefix
        && file_names
            .iter()
            .any(|n| vars.contains_key(&format!("{}{n}", rules.base_prefix)));
    let model_name = |n: &str| {
        if add_prefix {
            format!("{}{n}", rules.base_prefix)
        } else {
            n.to_string()
        }
    };

    let mut report = LoadReport {
        weights: Some(path.to_owned()),
        model_class: model_class.to_string(),
        added_prefix: add_prefix.then(|| rules.base_prefix.to_string()),
        ..Default::default()
    };
    // The label count first, so that its error names classifier.weight.
    if let Some(file_name) = names_with_model(&file_names, &model_name).get("classifier.weight") {
        if let (Some(var), Ok(view)) = (vars.get("classifier.weight"), st.tensor(file_name)) {
            let (expected, found) = (var.size()[0], view.shape().first().map_or(0, |&d| d as i64));
            if expected != found && !rules.reinit_mismatched_head {
                return Err(ModelError::LabelMismatch {
                    path: path.to_owned(),
                    tensor: file_name.clone(),
                    expected,
                    found,
                    origin: rules.labels_origin.clone(),
                });
            }
        }
    }
    let mut loaded: BTreeMap<String, ()> = BTreeMap::new();
    let mut names_sorted = file_names.clone();
    names_sorted.sort();
    for file_name in &names_sorted {
        let name = model_name(file_name);
        let Some(var) = vars.get(&name) else {
            if !is_ignorable(file_name) {
                report.unexpected.push(file_name.clone());
            }
            continue;
        };
        let view = st.tensor(file_name).map_err(|e| ModelError::Safetensors {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let expected = var.size();
        if found != expected {
            if is_head(&name, rules.prefixes) && rules.reinit_mismatched_head {
                report.mismatched.push((name.clone(), found, expected));
                continue;
            }
            if name.starts_with("classifier.") && found.first() != expected.first() {
                return Err(ModelError::LabelMismatch {
                    path: path.to_owned(),
                    tensor: file_name.clone(),
                    expected: expected[0],
                    found: found[0],
                    origin: rules.labels_origin.clone(),
                });
            }
            return Err(ModelError::ShapeMismatch {
                path: path.to_owned(),
                tensor: file_name.clone(),
                expected,
                found,
            });
        }
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F64 => Kind::Double,
            other => {
                return Err(ModelError::UnsupportedDtype {
                    path: path.to_owned(),
                    tensor: file_name.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let src = Tensor::f_from_data_size(view.data(), &found, kind)?
            .f_to_kind(var.kind())?
            .f_to_device(var.device())?;
        let mut dst = var.shallow_clone();
        tch::no_grad(|| dst.f_copy_(&src))?;
        loaded.insert(name, ());
    }

    let mut missing: Vec<String> = vars.keys().filter(|n| !loaded.contains_key(*n)).cloned().collect();
    missing.sort();
    let (head, body): (Vec<String>, Vec<String>) = missing
        .into_iter()
        .partition(|n| is_head(n, rules.prefixes) || rules.allow_missing);
    if !body.is_empty() {
        return Err(ModelError::MissingTensors {
            path: path.to_owned(),
            names: body,
        });
    }
    report.newly_initialized = head
        .into_iter()
        .filter(|n| !report.mismatched.iter().any(|(m, _, _)| m == n))
        .collect();
    Ok(report)
}

fn names_with_model(file_names: &[String], model_name: &dyn Fn(&str) -> String) -> HashMap<String, String> {
    file_names.iter().map(|f| (model_name(f), f.clone())).collect()
}

/// Writes `vars` to `path` as safetensors (float32, sorted names, `{"format": "pt"}`
/// metadata so transformers accepts it).
pub(crate) fn save(vars: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(names.len());
    for name in names {
        let t = vars[name]
            .f_detach()?
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?;
        let numel = t.numel();
        let mut data = vec![0u8; numel * 4];
        t.f_copy_data_u8(&mut data, numel)?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), shape, data));
    }
    let views = buffers
        .iter()
        .map(|(n, shape, data)| {
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data).map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ModelError::Safetensors {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path).map_err(|e| ModelError::Safetensors {
        path: path.to_owned(),
        message: e.to_string(),
    })
}
