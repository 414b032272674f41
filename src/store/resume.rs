//! Resume states: what a training task saves at the end of each epoch, so that a killed run
//! continues from there instead of from scratch (`crate::resume` decides what goes in).
//!
//! A state is a staging directory the task fills (its files mean nothing to the store),
//! sealed like an artifact — a `manifest.json` with every file's blake3 — and renamed into
//! `<cache>/resume/<key>/epoch-NNNN/`. The rename makes a state whole or absent; only after
//! it are the key's other states removed, so at every moment the newest complete state is on
//! disk. States live under the task's cache key, so a changed task (another key) never sees
//! a stale one. Once the task's artifact is published its states are removed; `gc` removes
//! those a crash left in between.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use super::{move_into_place, seal, verify, Provenance, Staging, Store};

const EPOCH_PREFIX: &str = "epoch-";

/// The outcome of looking for a key's resume state.
#[derive(Debug)]
pub enum ResumeLookup {
    None,
    /// The newest state, verified against its manifest.
    Found {
        epoch: usize,
        dir: PathBuf,
    },
    /// The newest state does not match its manifest (or has none).
    Corrupt {
        epoch: usize,
        problem: String,
    },
}

impl Store {
    fn resume_dir(&self, key: &str) -> PathBuf {
        self.root.join("resume").join(key)
    }

    /// Seals `staging` as the state of `key` after `epoch`, then removes the key's other
    /// states (older ones, and any newer one that was found corrupt and ignored).
    pub fn save_resume_state(
        &self,
        mut staging: Staging,
        key: &str,
        epoch: usize,
        parts: &serde_json::Value,
        provenance: &Provenance,
    ) -> Result<()> {
        seal(&staging, key, parts, provenance)?;
        let dir = self.resume_dir(key);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let target = dir.join(format!("{EPOCH_PREFIX}{epoch:04}"));
        if target.exists() {
            self.discard(&target)?;
        }
        move_into_place(&mut staging, &target)?;
        for (other, path) in self.resume_epochs(key)? {
            if other != epoch {
                self.discard(&path)?;
            }
        }
        Ok(())
    }

    /// The newest state saved for `key`.
    pub fn latest_resume_state(&self, key: &str) -> ResumeLookup {
        let Some((epoch, dir)) = self.resume_epochs(key).ok().and_then(|mut all| all.pop()) else {
            return ResumeLookup::None;
        };
        match verify(&dir, key) {
            Ok(_) => ResumeLookup::Found { epoch, dir },
            Err(problem) => ResumeLookup::Corrupt {
                epoch,
                problem: format!("{problem:#}"),
            },
        }
    }

    /// Removes every state of `key` (its artifact is published, or they are garbage).
    pub fn remove_resume_states(&self, key: &str) -> Result<()> {
        let dir = self.resume_dir(key);
        if dir.exists() {
            self.discard(&dir)?;
        }
        Ok(())
    }

    /// The keys that have resume states.
    pub fn resume_keys(&self) -> Result<Vec<String>> {
        let dir = self.root.join("resume");
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            keys.push(entry?.file_name().to_string_lossy().into_owned());
        }
        keys.sort();
        Ok(keys)
    }

    /// The epoch directories of `key`, oldest first.
    fn resume_epochs(&self, key: &str) -> Result<Vec<(usize, PathBuf)>> {
        let dir = self.resume_dir(key);
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut epochs = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let path = entry?.path();
            let epoch = path
                .file_name()
                .and_then(|name| name.to_str()?.strip_prefix(EPOCH_PREFIX)?.parse().ok());
            if let Some(epoch) = epoch {
                epochs.push((epoch, path));
            }
        }
        epochs.sort();
        Ok(epochs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provenance() -> Provenance<'static> {
        Provenance {
            task: "train",
            experiment: "test",
            duration_s: 0.0,
            peak_rss_bytes: None,
        }
    }

    fn save(store: &Store, key: &str, epoch: usize, content: &str) {
        let staging = store.stage(key).unwrap();
        fs::write(staging.path().join("state.json"), content).unwrap();
        store
            .save_resume_state(staging, key, epoch, &serde_json::Value::Null, &provenance())
            .unwrap();
    }

    #[test]
    fn the_newest_state_replaces_the_others_and_corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(matches!(store.latest_resume_state("k"), ResumeLookup::None));
        save(&store, "k", 1, "one");
        save(&store, "k", 2, "two");
        let ResumeLookup::Found { epoch: 2, dir: state } = store.latest_resume_state("k") else {
            panic!("epoch 2 expected: {:?}", store.latest_resume_state("k"));
        };
        assert_eq!(fs::read_to_string(state.join("state.json")).unwrap(), "two");
        assert_eq!(store.resume_epochs("k").unwrap().len(), 1, "epoch 1 is gone");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        fs::write(state.join("state.json"), "tw0").unwrap();
        let ResumeLookup::Corrupt { epoch: 2, problem } = store.latest_resume_state("k") else {
            panic!("corruption undetected");
        };
        assert!(problem.contains("state.json has blake3"), "{problem}");
        // Training from scratch again: epoch 1 replaces the corrupt epoch 2.
        save(&store, "k", 1, "one");
        assert!(matches!(
            store.latest_resume_state("k"),
            ResumeLookup::Found { epoch: 1, .. }
        ));

        assert_eq!(store.resume_keys().unwrap(), ["k"]);
        store.remove_resume_states("k").unwrap();
        assert!(matches!(store.latest_resume_state("k"), ResumeLookup::None));
    }
}
