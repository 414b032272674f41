//! `dataset`: a labelled text classification dataset with configurable columns and label
//! mapping, from
//! - local files, one per split: CSV, TSV or any `delimiter`, with or without a header
//!   (`has_header = false` names columns `0`, `1`, …), JSON Lines, Parquet (by extension
//!   or `format`), or an aclImdb-style folder (`train/pos/*.txt`, `train/neg/*.txt`);
//! - a Hugging Face Hub dataset (`hub = "stanfordnlp/imdb"`, optional `config` and
//!   `revision`), its splits written as `load_dataset` takes them (`train[:10000]`,
//!   `test[:2000]`, `train[:80%]`), read from the repository's data files or the hub's
//!   Parquet export, cached like models;
//! - one split carved in two: `eval_fraction = 0.2` takes a seeded random fifth of `train`
//!   as the evaluation split (`stratify = true` keeps the label balance), as HW7 does.
//!
//! A slice (`[from:to]`) applies to local files too. Sampling (`train_size`, `eval_size`)
//! comes last, after slicing and carving.
//!
//! Output: `train.jsonl` and `eval.jsonl` (`{"text", "label"}` per line, labels as class
//! ids) and `labels.json` (class names in id order).

mod hub;
mod read;
pub mod split;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context as _, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use read::Format;
use split::SplitSpec;

use super::{Context, Metrics, Task};

pub struct Dataset;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The training split: a file or folder (relative to the experiment file), or with
    /// `hub` a split name (`train`, `train[:10000]`, `train[:80%]`).
    #[serde(deserialize_with = "split::checked")]
    pub train: String,
    /// The evaluation split, the same way; leave it out with `eval_fraction`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "split::checked_opt"
    )]
    pub eval: Option<String>,
    /// A Hugging Face Hub dataset id (`stanfordnlp/imdb`, `imdb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// The hub dataset's configuration (subset), e.g. `plain_text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Branch, tag or commit of the hub dataset (default `main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// File format when the extension does not tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Field delimiter of a CSV-like file (one character, e.g. `";"` or `"\t"`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "delimiter")]
    pub delimiter: Option<String>,
    /// Whether a CSV-like file starts with a header row; without one, columns are `0`, `1`, ….
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub has_header: bool,
    #[serde(default = "default_text_column")]
    pub text_column: String,
    #[serde(default = "default_label_column")]
    pub label_column: String,
    /// Raw label value → class id, e.g. `{ negative = 0, positive = 1 }`. Without it the
    /// label column must hold class ids 0, 1, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, usize>>,
    /// Carve this fraction of `train` out as the evaluation split (seeded by `sample_seed`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "split::fraction"
    )]
    pub eval_fraction: Option<f64>,
    /// With `eval_fraction`: keep each label's share the same in both splits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stratify: bool,
    /// Keep a seeded random sample of this many training rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_size: Option<usize>,
    /// Seed of the sampling (named apart from `seed` so a global seed change does not
    /// reshuffle the data).
    #[serde(default = "default_sample_seed")]
    pub sample_seed: u64,
}

fn default_text_column() -> String {
    "text".into()
}
fn default_label_column() -> String {
    "label".into()
}
fn default_sample_seed() -> u64 {
    42
}
fn yes() -> bool {
    true
}
fn is_true(value: &bool) -> bool {
    *value
}

fn delimiter<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    let byte = match text.as_str() {
        "\\t" | "tab" => "\t".to_string(),
        other => other.to_string(),
    };
    if byte.len() != 1 {
        return Err(serde::de::Error::custom(format!(
            "delimiter must be one ASCII character (e.g. \",\", \";\", \"\\t\"), got {text:?}"
        )));
    }
    Ok(Some(byte))
}

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub label: usize,
}

pub const SPLITS: [&str; 2] = ["train", "eval"];

/// A file-part name made at run time (`train#pos`, `dataset#train#0`), kept for the process.
fn intern(name: String) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(&known) = names.get(name.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

/// Where one split's rows come from.
struct Source {
    /// The files (one per hub shard; one file or folder locally).
    paths: Vec<PathBuf>,
    spec: SplitSpec,
}

impl Params {
    /// The declared splits: (output split, its spec text).
    fn declared(&self) -> Vec<(&'static str, &str)> {
        let mut splits = vec![("train", self.train.as_str())];
        if let Some(eval) = &self.eval {
            splits.push(("eval", eval.as_str()));
        }
        splits
    }

    fn source(&self, spec_text: &str, base_dir: &Path) -> Result<Source> {
        let spec = SplitSpec::parse(spec_text).map_err(anyhow::Error::msg)?;
        let paths = match &self.hub {
            Some(repo) => hub::split_files(
                repo,
                self.config.as_deref(),
                self.revision.as_deref().unwrap_or("main"),
                &spec.name,
            )
            .with_context(|| format!("dataset `{repo}`, split `{spec}`"))?,
            None => vec![base_dir.join(&spec.name)],
        };
        Ok(Source { paths, spec })
    }

    fn check(&self) -> Result<()> {
        match (&self.eval, self.eval_fraction) {
            (None, None) => bail!("give `eval` (a file or split) or `eval_fraction` to carve it out of `train`"),
            (Some(_), Some(_)) => bail!("`eval` and `eval_fraction` both set: keep one"),
            _ => {}
        }
        if self.stratify && self.eval_fraction.is_none() {
            bail!("`stratify` applies to `eval_fraction`, which is not set");
        }
        if self.hub.is_none() && (self.config.is_some() || self.revision.is_some()) {
            bail!("`config` and `revision` apply to a `hub` dataset");
        }
        Ok(())
    }

    /// Reads one split, slice applied.
    fn read(&self, split: &str, source: &Source) -> Result<(Vec<Example>, Option<Vec<String>>)> {
        let columns = read::Columns {
            text: &self.text_column,
            label: &self.label_column,
            labels: self.labels.as_ref(),
            delimiter: self.delimiter.as_ref().map(|d| d.as_bytes()[0]),
            has_header: self.has_header,
        };
        let mut examples = Vec::new();
        let mut names = None;
        for path in &source.paths {
            let format = match self.format {
                Some(format) => format,
                None => Format::detect(path)?,
            };
            let (mut part, part_names) = read::read(path, format, &columns)?;
            examples.append(&mut part);
            names = names.or(part_names);
        }
        let from = match &self.hub {
            Some(repo) => format!("dataset `{repo}`"),
            None => source
                .paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        if examples.is_empty() {
            bail!("{from}: the {split} split has no rows");
        }
        let range = source
            .spec
            .range(examples.len())
            .map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
        Ok((examples[range].to_vec(), names))
    }
}

impl Task for Dataset {
    const KIND: &'static str = "dataset";
    const VERSION: u32 = 1;
    type Params = Params;

    fn files(params: &Params, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        params.check()?;
        let mut files = Vec::new();
        for (split, text) in params.declared() {
            let source = params.source(text, base_dir)?;
            if params.hub.is_some() {
                for (i, path) in source.paths.into_iter().enumerate() {
                    files.push((intern(format!("dataset#{split}#{i}")), path));
                }
                continue;
            }
            let path = source.paths.into_iter().next().expect("one local path");
            if path.is_dir() {
                // The review folders' contents key the task (a digest reads one level).
                let mut folders: Vec<String> = match &params.labels {
                    Some(map) => map.keys().cloned().collect(),
                    None => std::fs::read_dir(&path)
                        .with_context(|| format!("cannot read the folder {}", path.display()))?
                        .flatten()
                        .filter(|e| e.path().is_dir())
                        .filter_map(|e| e.file_name().to_str().map(String::from))
                        .filter(|name| name != "unsup")
                        .collect(),
                };
                folders.sort();
                for folder in folders {
                    files.push((intern(format!("{split}#{folder}")), path.join(folder)));
                }
            } else {
                files.push((split, path));
            }
        }
        Ok(files)
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        params.check()?;
        let mut metrics = Metrics::default();
        let mut folder_names = None;
        let mut splits: Vec<(&str, Vec<Example>)> = Vec::new();
        for (split, text) in params.declared() {
            let source = params.source(text, &ctx.base_dir)?;
            let (examples, names) = params.read(split, &source)?;
            folder_names = folder_names.or(names);
            splits.push((split, examples));
        }
        if let Some(fraction) = params.eval_fraction {
            let (_, pool) = splits.pop().expect("the train split");
            let (train, eval) = carve(pool, fraction, params.stratify, params.sample_seed)?;
            splits = vec![("train", train), ("eval", eval)];
        }
        let mut classes = 0;
        for (split, mut examples) in splits {
            let size = if split == "train" {
                params.train_size
            } else {
                params.eval_size
            };
            if let Some(size) = size {
                if size > examples.len() {
                    bail!(
                        "{split}_size = {size} but the {split} split has only {} rows",
                        examples.len()
                    );
                }
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(params.sample_seed);
                examples.shuffle(&mut rng);
                examples.truncate(size);
            }
            classes = classes.max(examples.iter().map(|e| e.label + 1).max().unwrap_or(0));
            metrics.extra.insert(format!("{split}_rows"), examples.len().into());
            write_split(&ctx.output(&format!("{split}.jsonl")), &examples)?;
        }
        let names: Vec<String> = match (&params.labels, folder_names) {
            (Some(map), _) => {
                let mut names = vec![String::new(); map.values().max().map_or(0, |m| m + 1)];
                for (name, &id) in map {
                    names[id] = name.clone();
                }
                names
            }
            (None, Some(names)) => names,
            (None, None) => (0..classes).map(|id| id.to_string()).collect(),
        };
        metrics.extra.insert("classes".into(), names.len().into());
        crate::util::write_atomic(&ctx.output("labels.json"), &serde_json::to_vec_pretty(&names)?)?;
        Ok(metrics)
    }
}

/// Splits `pool` into (train, eval) with `fraction` of it (rounded up, as scikit-learn and
/// `datasets` do) in eval, both shuffled with `seed`; `stratify` takes the fraction of
/// each label separately.
fn carve(pool: Vec<Example>, fraction: f64, stratify: bool, seed: u64) -> Result<(Vec<Example>, Vec<Example>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let groups: Vec<Vec<Example>> = if stratify {
        let mut by_label: BTreeMap<usize, Vec<Example>> = BTreeMap::new();
        for example in pool {
            by_label.entry(example.label).or_default().push(example);
        }
        by_label.into_values().collect()
    } else {
        vec![pool]
    };
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for mut group in groups {
        group.shuffle(&mut rng);
        let n_eval = ((group.len() as f64) * fraction).ceil() as usize;
        let rest = group.split_off(n_eval.min(group.len()));
        eval.extend(group);
        train.extend(rest);
    }
    if train.is_empty() || eval.is_empty() {
        bail!(
            "eval_fraction = {fraction} leaves {} train and {} eval rows: the split needs more rows",
            train.len(),
            eval.len()
        );
    }
    train.shuffle(&mut rng);
    eval.shuffle(&mut rng);
    Ok((train, eval))
}

/// Reads a headed CSV split. Errors name the file and the line of the offending row.
pub fn read_csv(
    path: &Path,
    text_column: &str,
    label_column: &str,
    labels: Option<&BTreeMap<String, usize>>,
) -> Result<Vec<Example>> {
    let columns = read::Columns {
        text: text_column,
        label: label_column,
        labels,
        delimiter: None,
        has_header: true,
    };
    Ok(read::read(path, Format::Csv, &columns)?.0)
}

fn write_split(path: &Path, examples: &[Example]) -> Result<()> {
    let mut out = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    // A full disk surfaces here: say where.
    (|| -> Result<()> {
        for example in examples {
            serde_json::to_writer(&mut out, example)?;
            out.write_all(b"\n")?;
        }
        Ok(out.flush()?)
    })()
    .with_context(|| format!("writing {}", path.display()))
}

/// Reads one split of a `dataset` artifact.
pub fn load_split(artifact: &Path, split: &str) -> Result<Vec<Example>> {
    let path = artifact.join(format!("{split}.jsonl"));
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    BufReader::new(file)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let line = line?;
            serde_json::from_str(&line).with_context(|| format!("{}:{}: bad record", path.display(), i + 1))
        })
        .collect()
}

/// Class names in id order.
pub fn load_label_names(artifact: &Path) -> Result<Vec<String>> {
    let path = artifact.join("labels.json");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: bad label list", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        file
    }

    #[test]
    fn reads_rows_and_maps_labels() {
        let file = csv("id,body,sentiment\n1,\"good, really\",pos\n2,bad,neg\n");
        let map = BTreeMap::from([("neg".to_string(), 0), ("pos".to_string(), 1)]);
        let rows = read_csv(file.path(), "body", "sentiment", Some(&map)).unwrap();
        assert_eq!(
            rows,
            vec![
                Example {
                    text: "good, really".into(),
                    label: 1
                },
                Example {
                    text: "bad".into(),
                    label: 0
                }
            ]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("text,label\nok,1\n,0\n", ":3 (row 2): empty text"),
            // CRLF line ends and a quoted multi-line review before the bad row.
            (
                "text,label\r\nok,1\r\n\"two\r\nlines\",1\r\nfine,7x\r\n",
                ":5 (row 3): label `7x` is not a class id",
            ),
            ("text,label\nok,1\nfine\n", ":3: malformed row 2"),
            ("body,label\nok,1\n", "no column `text`"),
        ];
        for (content, expected) in cases {
            let file = csv(content);
            let err = read_csv(file.path(), "text", "label", None).unwrap_err().to_string();
            assert!(err.contains(expected), "{err:?} should contain {expected:?}");
            assert!(
                err.contains(&file.path().display().to_string()),
                "{err:?} names the file"
            );
        }
        let map = BTreeMap::from([("pos".to_string(), 1)]);
        let file = csv("text,label\nok,pos\nhm,neutral\n");
        let err = read_csv(file.path(), "text", "label", Some(&map))
            .unwrap_err()
            .to_string();
        assert!(err.contains(":3 (row 2): unknown label `neutral`"), "{err}");
    }
}
