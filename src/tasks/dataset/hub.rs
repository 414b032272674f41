//! A split of a hub dataset as files: the repository's own data files (Parquet, CSV, JSON
//! Lines) whose name or folder is the split (`plain_text/train-00000-of-00001.parquet`,
//! `data/test.csv`), else the hub's Parquet export (revision `refs/convert/parquet`,
//! `<config>/<split>/0000.parquet`).

use std::path::PathBuf;

use anyhow::Result;

use crate::hub::{self, RepoKind};

const DATA_EXTENSIONS: [&str; 6] = [".parquet", ".csv", ".tsv", ".jsonl", ".json", ".ndjson"];
const EXPORT_REVISION: &str = "refs/convert/parquet";

/// The local paths of `split`'s files, in name order (downloaded when missing).
pub fn split_files(repo: &str, config: Option<&str>, revision: &str, split: &str) -> Result<Vec<PathBuf>> {
    let select = |files: &[String]| match_split(files, config, split);
    match hub::snapshot(RepoKind::Dataset, repo, revision, select) {
        Ok(snapshot) => {
            let files = match_split(&snapshot.files, config, split).unwrap_or_default();
            Ok(files.iter().map(|f| snapshot.path(f)).collect())
        }
        Err(hub::HubError::Files { message, .. }) if revision == "main" => {
            // No data files of that split in the repository itself: the hub's export.
            let export = hub::snapshot(RepoKind::Dataset, repo, EXPORT_REVISION, |files| {
                match_split(files, config, split)
            })
            .map_err(|err| anyhow::anyhow!("{err} (and in the repository itself: {message})"))?;
            let files = match_split(&export.files, config, split).unwrap_or_default();
            Ok(files.iter().map(|f| export.path(f)).collect())
        }
        Err(err) => Err(err.into()),
    }
}

fn is_data_file(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    DATA_EXTENSIONS.iter().any(|ext| lower.ends_with(ext)) && !lower.starts_with('.')
}

/// Whether a repo path belongs to `split`: a folder named so, or a file name that is the
/// split or starts with it followed by `-`, `_` or `.` (the `datasets` library's convention).
fn in_split(file: &str, split: &str) -> bool {
    let mut parts: Vec<&str> = file.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    parts.contains(&split)
        || name
            .strip_prefix(split)
            .is_some_and(|rest| rest.starts_with(['-', '_', '.']))
}

/// The data files of `split` (within `config`'s folder when given). Errors list what the
/// repository has instead.
fn match_split(files: &[String], config: Option<&str>, split: &str) -> Result<Vec<String>, String> {
    let data: Vec<&String> = files.iter().filter(|f| is_data_file(f)).collect();
    let scoped: Vec<&String> = match config {
        Some(config) => data
            .iter()
            .copied()
            .filter(|f| f.split('/').next() == Some(config) && f.contains('/'))
            .collect(),
        None => data.clone(),
    };
    let mut matched: Vec<String> = scoped
        .iter()
        .filter(|f| in_split(f, split))
        .map(|f| f.to_string())
        .collect();
    matched.sort();
    if matched.is_empty() {
        let listing = if data.is_empty() {
            "no data files".to_string()
        } else {
            format!(
                "data files: {}",
                data.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        };
        let scope = config.map(|c| format!(" in config `{c}`")).unwrap_or_default();
        return Err(format!("no split `{split}`{scope} ({listing})"));
    }
    if config.is_none() {
        let mut configs: Vec<&str> = matched
            .iter()
            .filter_map(|f| f.split_once('/').map(|(dir, _)| dir))
            .filter(|dir| *dir != "data" && *dir != split)
            .collect();
        configs.sort();
        configs.dedup();
        if configs.len() > 1 {
            return Err(format!(
                "split `{split}` exists in several configs ({}); set `config`",
                configs.join(", ")
            ));
        }
    }
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn splits_are_found_by_the_datasets_conventions() {
        let imdb = names(&[
            ".gitattributes",
            "README.md",
            "plain_text/test-00000-of-00001.parquet",
            "plain_text/train-00000-of-00001.parquet",
            "plain_text/unsupervised-00000-of-00001.parquet",
        ]);
        assert_eq!(
            match_split(&imdb, None, "train").unwrap(),
            ["plain_text/train-00000-of-00001.parquet"]
        );
        assert_eq!(match_split(&imdb, Some("plain_text"), "test").unwrap().len(), 1);
        let err = match_split(&imdb, None, "validation").unwrap_err();
        assert!(
            err.starts_with("no split `validation` (data files: plain_text/test-"),
            "{err}"
        );
        let export = names(&[
            "default/train/0000.parquet",
            "default/train/0001.parquet",
            "default/test/0000.parquet",
        ]);
        assert_eq!(match_split(&export, Some("default"), "train").unwrap().len(), 2);
        let two = names(&["a/train.csv", "b/train.csv"]);
        assert!(match_split(&two, None, "train")
            .unwrap_err()
            .contains("several configs (a, b)"));
        assert!(match_split(&names(&["trainer.csv"]), None, "train").is_err());
    }
}
