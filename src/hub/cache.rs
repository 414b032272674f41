//! The Hugging Face cache on disk, laid out as Python's huggingface_hub lays it out, so
//! that one cache serves both:
//!
//! ```text
//! $HF_HUB_CACHE/models--ORG--NAME/
//!     blobs/<etag>                      file contents, named by the hub's ETag
//!     snapshots/<commit>/<file>         symlinks into blobs/
//!     refs/<branch or tag>              the commit it pointed at when last seen
//! ```
//!
//! Reads and ref writes only; downloads go through `hf-hub` (see [`super`]).

use std::path::{Component, Path, PathBuf};

/// Model or dataset repository (the hub's two namespaces orchestrate reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    pub fn noun(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }

    fn folder_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    pub(crate) fn hf(self) -> hf_hub::RepoType {
        match self {
            RepoKind::Model => hf_hub::RepoType::Model,
            RepoKind::Dataset => hf_hub::RepoType::Dataset,
        }
    }
}

/// The hub cache directory: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub` (huggingface_hub's order).
pub fn hub_cache() -> PathBuf {
    if let Some(p) = env_path("HF_HUB_CACHE") {
        return p;
    }
    hf_home().join("hub")
}

/// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home() -> PathBuf {
    if let Some(p) = env_path("HF_HOME") {
        return p;
    }
    let base = env_path("XDG_CACHE_HOME")
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("huggingface")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// `models--org--name`, `datasets--name`.
pub fn repo_folder(kind: RepoKind, repo: &str) -> String {
    format!("{}--{}", kind.folder_prefix(), repo.replace('/', "--"))
}

pub fn repo_dir(kind: RepoKind, repo: &str) -> PathBuf {
    hub_cache().join(repo_folder(kind, repo))
}

/// A full commit id (what `snapshots/` is named by).
pub fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit `revision` resolves to in the cache: itself when it is a commit with a
/// snapshot, else what `refs/<revision>` records.
pub fn cached_commit(repo_dir: &Path, revision: &str) -> Option<String> {
    if is_commit(revision) {
        return repo_dir
            .join("snapshots")
            .join(revision)
            .is_dir()
            .then(|| revision.to_string());
    }
    let commit = std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok()?;
    let commit = commit.trim();
    (!commit.is_empty() && repo_dir.join("snapshots").join(commit).is_dir()).then(|| commit.to_string())
}

/// Records that `revision` (a branch or tag) points at `commit`, atomically.
pub fn write_ref(repo_dir: &Path, revision: &str, commit: &str) -> std::io::Result<()> {
    if is_commit(revision) {
        return Ok(());
    }
    let path = repo_dir.join("refs").join(revision);
    crate::util::write_atomic(&path, commit.as_bytes()).map_err(std::io::Error::other)
}

/// Every file of a snapshot, as repo paths (`plain_text/train-00000-of-00001.parquet`).
pub fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                if let Ok(relative) = path.strip_prefix(dir) {
                    files.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    files.sort();
    files
}

/// Where a path inside a cache snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub kind: RepoKind,
    /// `org/name` (the folder name's `--` read back as `/`).
    pub repo: String,
    pub commit: String,
}

impl Pin {
    /// The repo and commit of `path` when it lies in `…/models--X/snapshots/<commit>/…`.
    pub fn of(path: &Path) -> Option<Pin> {
        let parts: Vec<&str> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => part.to_str(),
                _ => None,
            })
            .collect();
        let at = parts.iter().rposition(|&p| p == "snapshots")?;
        let (folder, commit) = (parts.get(at.checked_sub(1)?)?, parts.get(at + 1)?);
        if !is_commit(commit) {
            return None;
        }
        let (kind, name) = if let Some(name) = folder.strip_prefix("models--") {
            (RepoKind::Model, name)
        } else {
            (RepoKind::Dataset, folder.strip_prefix("datasets--")?)
        };
        Some(Pin {
            kind,
            repo: name.replace("--", "/"),
            commit: commit.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_read_from_snapshot_paths() {
        let commit = "1c4513b2eedbda136f57676a34eea67aba266e5c";
        let pin = Pin::of(&PathBuf::from(format!("/c/hub/models--org--name/snapshots/{commit}"))).unwrap();
        assert_eq!(
            pin,
            Pin {
                kind: RepoKind::Model,
                repo: "org/name".into(),
                commit: commit.into()
            }
        );
        let shard = format!("/c/datasets--imdb/snapshots/{commit}/plain_text/train-00000-of-00001.parquet");
        assert_eq!(Pin::of(Path::new(&shard)).unwrap().repo, "imdb");
        assert_eq!(Pin::of(Path::new("models/tiny-distilbert")), None);
        assert_eq!(Pin::of(Path::new("/x/models--a/snapshots/main")), None);
    }
}
