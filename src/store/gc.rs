//! Garbage collection: what the store holds that no kept key needs.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::Store;

/// One artifact that `gc` removes.
#[derive(Debug, Clone, Serialize)]
pub struct RemovedArtifact {
    pub key: String,
    /// Who built it, when its manifest can still be read.
    pub task: Option<String>,
    pub experiment: Option<String>,
    pub bytes: u64,
}

/// What [`gc`] removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Serialize)]
pub struct Collected {
    pub dry_run: bool,
    pub artifacts: Vec<RemovedArtifact>,
    /// Keys whose resume states went.
    pub resume_states: Vec<String>,
    /// Staging directories of runs that are no longer alive.
    pub abandoned: Vec<PathBuf>,
    /// How many keys were kept.
    pub kept: usize,
}

impl Collected {
    pub fn bytes(&self) -> u64 {
        self.artifacts.iter().map(|a| a.bytes).sum()
    }
}

/// Removes the artifacts whose key is not in `keep`, the resume states no kept unfinished
/// task needs, and abandoned staging directories; `dry_run` only lists them.
pub fn gc(store: &Store, keep: &BTreeSet<String>, dry_run: bool) -> Result<Collected> {
    let mut collected = Collected {
        dry_run,
        artifacts: Vec::new(),
        resume_states: Vec::new(),
        abandoned: Vec::new(),
        kept: keep.len(),
    };
    for (key, manifest) in store.list()? {
        if keep.contains(&key) {
            continue;
        }
        if !dry_run {
            store.remove(&key)?;
        }
        let manifest = manifest.ok();
        collected.artifacts.push(RemovedArtifact {
            bytes: manifest.as_ref().map_or(0, |m| m.size()),
            task: manifest.as_ref().map(|m| m.task.clone()),
            experiment: manifest.map(|m| m.experiment),
            key,
        });
    }
    for key in store.resume_keys()? {
        // A training's resume state matters only until the task's artifact exists.
        if keep.contains(&key) && !store.artifact_dir(&key).exists() {
            continue;
        }
        if !dry_run {
            store.remove_resume_states(&key)?;
        }
        collected.resume_states.push(key);
    }
    for staging in store.abandoned_staging()? {
        if !dry_run {
            std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
        }
        collected.abandoned.push(staging);
    }
    Ok(collected)
}
