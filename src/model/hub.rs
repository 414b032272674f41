//! Where a model comes from: a folder, a bare `config.json`, or a Hugging Face Hub id
//! (`distilbert-base-uncased`, `org/name`, `org/name@<branch, tag or commit>`) resolved
//! through [`crate::hub`]: the cache first, the files a model needs downloaded when
//! missing.

use std::path::{Path, PathBuf};

use super::error::{ModelError, Result};
use crate::hub::{self, RepoKind};

/// A resolved model location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder with `config.json` (+ weights and tokenizer).
    Folder(PathBuf),
    /// A lone config file: the model is built with random weights.
    Config(PathBuf),
}

impl ModelSource {
    pub fn config_path(&self) -> PathBuf {
        match self {
            ModelSource::Folder(d) => d.join("config.json"),
            ModelSource::Config(p) => p.clone(),
        }
    }
}

/// The Hugging Face hub cache directory.
pub fn hf_hub_cache() -> PathBuf {
    hub::hub_cache()
}

/// The files of a hub model orchestrate reads: the config, the weights, the tokenizer.
pub const MODEL_FILES: [&str; 6] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
];
const TOKENIZER_FILES: [&str; 2] = ["tokenizer.json", "vocab.txt"];

/// A hub id split from its revision: `org/name@v1` → (`org/name`, `v1`).
pub fn parse_id(target: &str) -> (&str, &str) {
    match target.rsplit_once('@') {
        Some((repo, revision)) if !repo.is_empty() && !revision.is_empty() => (repo, revision),
        _ => (target, "main"),
    }
}

/// Whether `target` can only be a hub id (not a path that merely does not exist yet).
fn looks_like_hub_id(target: &str) -> bool {
    let (repo, _) = parse_id(target);
    let parts: Vec<&str> = repo.split('/').collect();
    !repo.starts_with('.')
        && !repo.ends_with(".json")
        && parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// Resolves `target`: an existing folder or file, else a hub id (downloaded when missing).
pub fn resolve(target: &str) -> Result<ModelSource> {
    let path = Path::new(target);
    if path.is_dir() {
        return Ok(ModelSource::Folder(path.to_owned()));
    }
    if path.is_file() {
        return Ok(ModelSource::Config(path.to_owned()));
    }
    if !looks_like_hub_id(target) {
        return Err(ModelError::NotFound {
            target: target.to_string(),
            looked: hf_hub_cache(),
        });
    }
    let (repo, revision) = parse_id(target);
    let snapshot = hub::snapshot(RepoKind::Model, repo, revision, select_model_files)?;
    Ok(ModelSource::Folder(snapshot.dir))
}

/// The files of [`MODEL_FILES`] the repository has; errors when the weights or the config
/// are not there in a form orchestrate reads.
fn select_model_files(files: &[String]) -> std::result::Result<Vec<String>, String> {
    let has = |name: &str| files.iter().any(|f| f == name);
    if !has("config.json") {
        return Err(format!("no config.json in the repository (files: {})", list(files)));
    }
    if !has("model.safetensors") {
        return Err(if has("pytorch_model.bin") {
            "has only pytorch_model.bin; orchestrate reads model.safetensors (convert it with \
             `transformers`' save_pretrained(safe_serialization=True), or pick a revision with safetensors)"
                .into()
        } else if has("model.safetensors.index.json") {
            "has sharded weights (model.safetensors.index.json); orchestrate reads one model.safetensors".into()
        } else {
            format!("no model.safetensors in the repository (files: {})", list(files))
        });
    }
    if !TOKENIZER_FILES.iter().any(|f| has(f)) {
        return Err("no tokenizer.json or vocab.txt in the repository".into());
    }
    Ok(MODEL_FILES.iter().filter(|f| has(f)).map(|f| f.to_string()).collect())
}

fn list(files: &[String]) -> String {
    if files.is_empty() {
        "none".into()
    } else {
        files.join(", ")
    }
}

/// The digest of a model folder for cache keys. A hub snapshot counts only the files of
/// [`MODEL_FILES`], so a cache that Python filled with more (README, pytorch_model.bin)
/// keys the same; any other folder is [`crate::util::path_digest`].
pub fn digest(path: &Path) -> anyhow::Result<String> {
    if path.is_dir() && hub::Pin::of(path).is_some_and(|p| p.kind == RepoKind::Model) {
        let mut hasher = blake3::Hasher::new();
        for name in MODEL_FILES {
            let file = path.join(name);
            if file.is_file() {
                hasher.update(name.as_bytes());
                hasher.update(&[0]);
                hasher.update(crate::util::file_digest(&file)?.as_bytes());
                hasher.update(&[0]);
            }
        }
        return Ok(hasher.finalize().to_hex().to_string());
    }
    crate::util::path_digest(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_and_revisions() {
        assert_eq!(parse_id("distilbert-base-uncased"), ("distilbert-base-uncased", "main"));
        assert_eq!(parse_id("org/name@v1.0"), ("org/name", "v1.0"));
        assert!(looks_like_hub_id("org/name@v1.0"));
        assert!(!looks_like_hub_id("../models/x"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert!(!looks_like_hub_id("missing/config.json"));
    }

    #[test]
    fn weights_only_as_pytorch_bin_are_refused() {
        let files: Vec<String> = ["config.json", "pytorch_model.bin", "vocab.txt"]
            .map(String::from)
            .to_vec();
        let err = select_model_files(&files).unwrap_err();
        assert!(err.contains("only pytorch_model.bin"), "{err}");
        let files: Vec<String> = ["config.json", "model.safetensors", "vocab.txt", "README.md"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            select_model_files(&files).unwrap(),
            ["config.json", "model.safetensors", "vocab.txt"]
        );
    }
}
