//! Where a model comes from: a folder, a bare `config.json`, or a hub id resolved in the
//! Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`; layout `models--ORG--NAME/snapshots/<rev>/`). Nothing is
//! downloaded.

use std::path::{Path, PathBuf};

use super::error::{ModelError, Result};

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
    if let Some(p) = std::env::var_os("HF_HUB_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("hub");
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface").join("hub")
}

/// Resolves `target`: an existing folder or file, else a hub id in the HF cache.
pub fn resolve(target: &str) -> Result<ModelSource> {
    let path = Path::new(target);
    if path.is_dir() {
        return Ok(ModelSource::Folder(path.to_owned()));
    }
    if path.is_file() {
        return Ok(ModelSource::Config(path.to_owned()));
    }
    let cache = hf_hub_cache();
    let repo = cache.join(format!("models--{}", target.replace('/', "--")));
    match snapshot(&repo)? {
        Some(dir) => Ok(ModelSource::Folder(dir)),
        None => Err(ModelError::NotFound {
            target: target.to_string(),
            looked: repo,
        }),
    }
}

/// The snapshot `refs/main` points at, else the newest snapshot with a config.json.
fn snapshot(repo: &Path) -> Result<Option<PathBuf>> {
    let snapshots = repo.join("snapshots");
    if !snapshots.is_dir() {
        return Ok(None);
    }
    if let Ok(rev) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.join("config.json").is_file() {
            return Ok(Some(dir));
        }
    }
    let entries = std::fs::read_dir(&snapshots).map_err(|e| ModelError::io(&snapshots, e))?;
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join("config.json").is_file() {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        if best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, dir));
        }
    }
    Ok(best.map(|(_, d)| d))
}
