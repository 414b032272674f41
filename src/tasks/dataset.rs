//! `dataset`: a labelled text classification dataset from CSV files (one per split), with
//! configurable columns and label mapping and optional seeded sampling.
//!
//! Output: `train.jsonl` and `eval.jsonl` (`{"text", "label"}` per line, labels as class
//! ids) and `labels.json` (class names in id order).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::{Context, Metrics, Task};

pub struct Dataset;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// CSV file of the training split.
    pub train: PathBuf,
    /// CSV file of the evaluation split.
    pub eval: PathBuf,
    #[serde(default = "default_text_column")]
    pub text_column: String,
    #[serde(default = "default_label_column")]
    pub label_column: String,
    /// Raw label value → class id, e.g. `{ negative = 0, positive = 1 }`. Without it the
    /// label column must hold class ids 0, 1, ….
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, usize>>,
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

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub text: String,
    pub label: usize,
}

pub const SPLITS: [&str; 2] = ["train", "eval"];

impl Task for Dataset {
    const KIND: &'static str = "dataset";
    const VERSION: u32 = 1;
    type Params = Params;

    fn files(params: &Params, base_dir: &Path) -> Result<Vec<(&'static str, PathBuf)>> {
        Ok(vec![
            ("train", base_dir.join(&params.train)),
            ("eval", base_dir.join(&params.eval)),
        ])
    }

    fn run(params: &Params, ctx: &Context) -> Result<Metrics> {
        let mut metrics = Metrics::default();
        let mut classes = 0;
        for (split, path, size) in [
            ("train", &params.train, params.train_size),
            ("eval", &params.eval, params.eval_size),
        ] {
            let path = ctx.resolve(path);
            let mut examples = read_csv(&path, &params.text_column, &params.label_column, params.labels.as_ref())?;
            if examples.is_empty() {
                bail!("{}: the {split} split has no rows", path.display());
            }
            if let Some(size) = size {
                if size > examples.len() {
                    bail!(
                        "{split}_size = {size} but {} has only {} rows",
                        path.display(),
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
        let names: Vec<String> = match &params.labels {
            Some(map) => {
                let mut names = vec![String::new(); map.values().max().map_or(0, |m| m + 1)];
                for (name, &id) in map {
                    names[id] = name.clone();
                }
                names
            }
            None => (0..classes).map(|id| id.to_string()).collect(),
        };
        metrics.extra.insert("classes".into(), names.len().into());
        crate::util::write_atomic(&ctx.output("labels.json"), &serde_json::to_vec_pretty(&names)?)?;
        Ok(metrics)
    }
}

/// Reads a CSV split. Errors name the file and the line of the offending row.
pub fn read_csv(
    path: &Path,
    text_column: &str,
    label_column: &str,
    labels: Option<&BTreeMap<String, usize>>,
) -> Result<Vec<Example>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
    read_csv_bytes(path, &bytes, text_column, label_column, labels)
}

/// [`read_csv`] on content already in memory; `path` only names it in errors.
pub fn read_csv_bytes(
    path: &Path,
    bytes: &[u8],
    text_column: &str,
    label_column: &str,
    labels: Option<&BTreeMap<String, usize>>,
) -> Result<Vec<Example>> {
    // csv's line counter and record offsets drift on CRLF files (a record may "start" at the
    // `\n` of the previous terminator): skip line ends, then count the newlines before.
    let line_at = |byte: u64| {
        let mut start = (byte as usize).min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let headers = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .clone();
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            let found: Vec<&str> = headers.iter().collect();
            format!("{}: no column `{name}` (columns: {})", path.display(), found.join(", "))
        })
    };
    let (text_index, label_index) = (column(text_column)?, column(label_column)?);
    let mut examples = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let row = row + 1;
        let record = record.map_err(|err| {
            let line = err
                .position()
                .map_or(String::new(), |p| format!(":{}", line_at(p.byte())));
            anyhow::anyhow!("{}{line}: malformed CSV row {row}: {err}", path.display())
        })?;
        // Counting lines is linear in the offset: only for an error, or reading is quadratic.
        let at = || {
            let line = record.position().map_or(0, |p| line_at(p.byte()));
            format!("{}:{line} (row {row})", path.display())
        };
        let text = record.get(text_index).unwrap_or_default();
        if text.trim().is_empty() {
            bail!("{}: empty text in column `{text_column}`", at());
        }
        let raw_label = record.get(label_index).unwrap_or_default().trim();
        let label = match labels {
            Some(map) => *map.get(raw_label).with_context(|| {
                let known: Vec<&str> = map.keys().map(String::as_str).collect();
                format!("{}: unknown label `{raw_label}` (expected one of: {})", at(), known.join(", "))
            })?,
            None => raw_label.parse::<usize>().with_context(|| {
                format!("{}: label `{raw_label}` is not a class id (0, 1, …); map raw labels with `labels = {{ name = id }}`", at())
            })?,
        };
        examples.push(Example {
            text: text.to_string(),
            label,
        });
    }
    Ok(examples)
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
            ("text,label\nok,1\nfine\n", ":3: malformed CSV row 2"),
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
