//! Reading one split's labelled texts from a file or folder: CSV/TSV (any delimiter, with
//! or without a header), JSON Lines, Parquet, and the aclImdb layout (`<split>/<label>/*.txt`).
//! Every error names the file and, where there is one, the line or row and the column.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::Example;

/// A file format, by name or from the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Tsv,
    #[serde(alias = "json")]
    Jsonl,
    Parquet,
    /// One folder per label holding one `.txt` file per example (aclImdb).
    Folder,
}

impl Format {
    pub fn detect(path: &Path) -> Result<Format> {
        if path.is_dir() {
            return Ok(Format::Folder);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        Ok(match ext.as_str() {
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "jsonl" | "json" | "ndjson" => Format::Jsonl,
            "parquet" => Format::Parquet,
            "txt" => Format::Tsv,
            _ => bail!(
                "{}: cannot tell the format from the extension; set `format` (csv, tsv, jsonl, parquet, folder)",
                path.display()
            ),
        })
    }
}

/// How to read the columns of a split.
pub struct Columns<'a> {
    pub text: &'a str,
    pub label: &'a str,
    /// Raw label → class id; `None`: labels are class ids already.
    pub labels: Option<&'a BTreeMap<String, usize>>,
    pub delimiter: Option<u8>,
    pub has_header: bool,
}

impl Columns<'_> {
    fn class(&self, raw: &str, at: &dyn Fn() -> String) -> Result<usize> {
        let raw = raw.trim();
        match self.labels {
            Some(map) => map.get(raw).copied().with_context(|| {
                let known: Vec<&str> = map.keys().map(String::as_str).collect();
                format!(
                    "{}: unknown label `{raw}` (expected one of: {})",
                    at(),
                    known.join(", ")
                )
            }),
            None => raw.parse::<usize>().with_context(|| {
                format!(
                    "{}: label `{raw}` is not a class id (0, 1, …); map raw labels with `labels = {{ name = id }}`",
                    at()
                )
            }),
        }
    }

    fn example(&self, text: &str, raw_label: &str, at: &dyn Fn() -> String) -> Result<Example> {
        if text.trim().is_empty() {
            bail!("{}: empty text in column `{}`", at(), self.text);
        }
        Ok(Example {
            text: text.to_string(),
            label: self.class(raw_label, at)?,
        })
    }
}

/// Reads `path` in `format`. A folder without a `labels` map reads its label folders in
/// name order as classes 0, 1, … (aclImdb: `neg` = 0, `pos` = 1; `unsup` is skipped), and
/// returns their names.
pub fn read(path: &Path, format: Format, columns: &Columns) -> Result<(Vec<Example>, Option<Vec<String>>)> {
    Ok(match format {
        Format::Csv | Format::Tsv => {
            let delimiter = columns
                .delimiter
                .unwrap_or(if format == Format::Tsv { b'\t' } else { b',' });
            let bytes = std::fs::read(path).with_context(|| format!("cannot open {}", path.display()))?;
            (read_delimited(path, &bytes, delimiter, columns)?, None)
        }
        Format::Jsonl => (read_jsonl(path, columns)?, None),
        Format::Parquet => (read_parquet(path, columns)?, None),
        Format::Folder => {
            let (examples, names) = read_folder(path, columns)?;
            (examples, names)
        }
    })
}

/// CSV and its relatives. Without a header, columns are named by index: `0`, `1`, ….
pub fn read_delimited(path: &Path, bytes: &[u8], delimiter: u8, columns: &Columns) -> Result<Vec<Example>> {
    // csv's line counter and record offsets drift on CRLF files (a record may "start" at the
    // `\n` of the previous terminator): skip line ends, then count the newlines before.
    let line_at = |byte: u64| {
        let mut start = (byte as usize).min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(columns.has_header)
        .delimiter(delimiter)
        // A sentence with a stray quote must not swallow the lines after it.
        .quoting(delimiter != b'\t')
        .from_reader(bytes);
    let headers: Vec<String> = if columns.has_header {
        reader
            .headers()
            .with_context(|| format!("{}: cannot read the header row", path.display()))?
            .iter()
            .map(String::from)
            .collect()
    } else {
        let width = reader
            .records()
            .next()
            .transpose()
            .with_context(|| format!("{}: cannot read the first row", path.display()))?
            .map_or(0, |r| r.len());
        reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(delimiter)
            .quoting(delimiter != b'\t')
            .from_reader(bytes);
        (0..width).map(|i| i.to_string()).collect()
    };
    let column = |name: &str| {
        headers.iter().position(|h| h == name).with_context(|| {
            let hint = if columns.has_header {
                String::new()
            } else {
                "; the file is read without a header (has_header = false), so columns are named by index".into()
            };
            format!(
                "{}: no column `{name}` (columns: {}){hint}",
                path.display(),
                headers.join(", ")
            )
        })
    };
    let (text_index, label_index) = (column(columns.text)?, column(columns.label)?);
    let mut examples = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let row = row + 1;
        let record = record.map_err(|err| {
            let line = err
                .position()
                .map_or(String::new(), |p| format!(":{}", line_at(p.byte())));
            anyhow::anyhow!("{}{line}: malformed row {row}: {err}", path.display())
        })?;
        // Counting lines is linear in the offset: only for an error, or reading is quadratic.
        let at = || {
            let line = record.position().map_or(0, |p| line_at(p.byte()));
            format!("{}:{line} (row {row})", path.display())
        };
        let text = record.get(text_index).unwrap_or_default();
        let label = record.get(label_index).unwrap_or_default();
        examples.push(columns.example(text, label, &at)?);
    }
    Ok(examples)
}

fn json_scalar(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_jsonl(path: &Path, columns: &Columns) -> Result<Vec<Example>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let record: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).with_context(|| format!("{}: not a JSON object", at()))?;
        let field = |name: &str| -> Result<String> {
            let value = record.get(name).with_context(|| {
                let found: Vec<&str> = record.keys().map(String::as_str).collect();
                format!("{}: no field `{name}` (fields: {})", at(), found.join(", "))
            })?;
            json_scalar(value).with_context(|| format!("{}: field `{name}` is not a string or number", at()))
        };
        examples.push(columns.example(&field(columns.text)?, &field(columns.label)?, &at)?);
    }
    Ok(examples)
}

fn read_parquet(path: &Path, columns: &Columns) -> Result<Vec<Example>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = SerializedFileReader::new(file).with_context(|| format!("{}: not a Parquet file", path.display()))?;
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let column = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .with_context(|| format!("{}: no column `{name}` (columns: {})", path.display(), names.join(", ")))
    };
    let (text_index, label_index) = (column(columns.text)?, column(columns.label)?);
    let scalar = |field: &Field| -> Option<String> {
        Some(match field {
            Field::Str(s) => s.clone(),
            Field::Bool(b) => b.to_string(),
            Field::Byte(v) => v.to_string(),
            Field::Short(v) => v.to_string(),
            Field::Int(v) => v.to_string(),
            Field::Long(v) => v.to_string(),
            Field::UByte(v) => v.to_string(),
            Field::UShort(v) => v.to_string(),
            Field::UInt(v) => v.to_string(),
            Field::ULong(v) => v.to_string(),
            Field::Null => String::new(),
            _ => return None,
        })
    };
    let rows = reader
        .get_row_iter(None)
        .with_context(|| format!("{}: cannot read rows", path.display()))?;
    let mut examples = Vec::new();
    for (i, row) in rows.enumerate() {
        let at = || format!("{} (row {})", path.display(), i + 1);
        let row = row.with_context(|| format!("{}: unreadable", at()))?;
        let fields: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let get = |index: usize, name: &str| -> Result<String> {
            fields
                .get(index)
                .and_then(|f| scalar(f))
                .with_context(|| format!("{}: column `{name}` is not a string or number", at()))
        };
        examples.push(columns.example(&get(text_index, columns.text)?, &get(label_index, columns.label)?, &at)?);
    }
    Ok(examples)
}

fn read_folder(path: &Path, columns: &Columns) -> Result<(Vec<Example>, Option<Vec<String>>)> {
    let entries = std::fs::read_dir(path).with_context(|| format!("cannot read the folder {}", path.display()))?;
    let mut folders: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    folders.sort();
    let (wanted, names): (Vec<(String, usize)>, Option<Vec<String>>) = match columns.labels {
        Some(map) => {
            for label in map.keys() {
                if !folders.contains(label) {
                    bail!(
                        "{}: no folder `{label}` for that label (folders: {})",
                        path.display(),
                        folders.join(", ")
                    );
                }
            }
            (map.iter().map(|(k, &v)| (k.clone(), v)).collect(), None)
        }
        None => {
            let classes: Vec<String> = folders.into_iter().filter(|f| f != "unsup").collect();
            (
                classes.iter().cloned().enumerate().map(|(i, name)| (name, i)).collect(),
                Some(classes),
            )
        }
    };
    if wanted.is_empty() {
        bail!(
            "{}: no label folders (expected the aclImdb layout, e.g. pos/ and neg/ with one .txt per review)",
            path.display()
        );
    }
    let mut examples = Vec::new();
    for (folder, label) in wanted {
        for file in label_files(&path.join(&folder))? {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            if text.trim().is_empty() {
                bail!("{}: empty text", file.display());
            }
            examples.push(Example { text, label });
        }
    }
    Ok((examples, names))
}

/// The `.txt` files of one label folder, in name order.
pub fn label_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    Ok(files)
}
