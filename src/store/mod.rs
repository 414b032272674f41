//! The artifact store: content-addressed task outputs under one cache directory.
//!
//! ```text
//! <cache>/artifacts/<key>/            a published artifact: the task's files + manifest.json
//! <cache>/tmp/<key>.<pid>.<nonce>/    a task's private staging directory while it runs
//! <cache>/refs/<experiment>/<task>.json   the key each task resolved to when last run,
//!                                          so `why` can say what changed since
//! <cache>/locks/<key>.lock            held while a process builds the key (see [`lock`])
//! <cache>/resume/<key>/epoch-NNNN/    a training task's state after epoch NNNN, while the
//!                                      task has no artifact yet (see [`resume`])
//! ```
//!
//! Publishing is atomic: a task writes into its staging directory, the store hashes every
//! file (blake3) into `manifest.json`, syncs, and renames the directory into place. A
//! reader therefore sees a whole artifact or none; a killed run leaves only a staging
//! directory, which `gc` removes. Every lookup re-hashes the files against the manifest and
//! reports a mismatch as [`Lookup::Corrupt`], which the planner treats as a miss.
//!
//! The store knows nothing about what the files mean or how keys are made: it receives
//! the key and its parts (opaque JSON) from the planner.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::util::{file_digest, write_atomic};

pub mod gc;
pub mod lock;
pub mod resume;

pub use gc::{gc, Collected};
pub use lock::{read_holder, ArtifactLock, LockHolder};

pub const MANIFEST: &str = "manifest.json";
const MANIFEST_FORMAT: u32 = 1;

/// Written last into every artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub key: String,
    /// What the key was computed from (see `plan::KeyParts`).
    pub parts: serde_json::Value,
    /// The task and experiment that built it (informational: another experiment with the
    /// same configuration shares the artifact).
    pub task: String,
    pub experiment: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub duration_s: f64,
    /// Peak resident memory of the task that built it (absent in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Relative path → digest, for every file of the artifact but the manifest.
    pub files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    pub blake3: String,
    pub size: u64,
}

impl Manifest {
    pub fn size(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }
}

/// The outcome of looking a key up.
#[derive(Debug)]
pub enum Lookup {
    Hit(Box<Manifest>),
    Miss,
    /// There is an artifact but it does not match its manifest.
    Corrupt(String),
}

/// Where a task recorded its last resolved key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRef {
    pub key: String,
    pub parts: serde_json::Value,
}

/// Who is publishing: recorded in the manifest.
pub struct Provenance<'a> {
    pub task: &'a str,
    pub experiment: &'a str,
    pub duration_s: f64,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (creating if needed) a cache directory; fails clearly if it is not writable.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["artifacts", "tmp", "refs", "locks"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).with_context(|| format!("cannot create cache directory {}", dir.display()))?;
        }
        Ok(Self { root })
    }

    /// Opens an existing cache for reading; never creates anything.
    pub fn open_existing(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn artifact_dir(&self, key: &str) -> PathBuf {
        self.root.join("artifacts").join(key)
    }

    /// Looks up an artifact and verifies every file against its manifest.
    pub fn lookup(&self, key: &str) -> Lookup {
        let dir = self.artifact_dir(key);
        if !dir.exists() {
            return Lookup::Miss;
        }
        match verify(&dir, key) {
            Ok(manifest) => Lookup::Hit(Box::new(manifest)),
            Err(problem) => Lookup::Corrupt(format!("{problem:#}")),
        }
    }

    /// A fresh private directory for a task to write its outputs into.
    pub fn stage(&self, key: &str) -> Result<Staging> {
        let nonce: u64 = rand::random();
        let dir = self
            .root
            .join("tmp")
            .join(format!("{key}.{}.{nonce:016x}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create staging directory {}", dir.display()))?;
        Ok(Staging { dir, published: false })
    }

    /// Hashes the staged files, writes the manifest and renames the directory into place.
    pub fn publish(
        &self,
        mut staging: Staging,
        key: &str,
        parts: &serde_json::Value,
        provenance: &Provenance,
    ) -> Result<Manifest> {
        let manifest = seal(&staging, key, parts, provenance)?;
        let target = self.artifact_dir(key);
        if target.exists() {
            match verify(&target, key) {
                // Someone else published the same key meanwhile: theirs is as good as ours.
                Ok(existing) => return Ok(existing),
                Err(_) => self.discard(&target)?,
            }
        }
        move_into_place(&mut staging, &target)?;
        Ok(manifest)
    }

    /// Moves a (corrupt) artifact out of the way, then deletes it.
    fn discard(&self, dir: &Path) -> Result<()> {
        let trash = self
            .root
            .join("tmp")
            .join(format!("trash.{}.{:016x}", std::process::id(), rand::random::<u64>()));
        fs::rename(dir, &trash).with_context(|| format!("cannot move aside {}", dir.display()))?;
        fs::remove_dir_all(&trash).with_context(|| format!("cannot remove {}", trash.display()))
    }

    pub fn remove(&self, key: &str) -> Result<()> {
        let dir = self.artifact_dir(key);
        if dir.exists() {
            self.discard(&dir)?;
        }
        Ok(())
    }

    /// Every artifact directory with its manifest (or why it could not be read). No
    /// re-hashing: use [`Store::lookup`] to verify.
    pub fn list(&self) -> Result<Vec<(String, Result<Manifest>)>> {
        let dir = self.root.join("artifacts");
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
            let entry = entry?;
            let key = entry.file_name().to_string_lossy().into_owned();
            entries.push((key, read_manifest(&entry.path())));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }

    /// Staging directories left by runs that are no longer alive.
    pub fn abandoned_staging(&self) -> Result<Vec<PathBuf>> {
        let dir = self.root.join("tmp");
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut abandoned = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let pid = name.split('.').nth(1).and_then(|p| p.parse::<u32>().ok());
            if pid.is_none_or(|pid| !process_alive(pid)) {
                abandoned.push(path);
            }
        }
        Ok(abandoned)
    }

    fn ref_path(&self, experiment: &str, task: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(escape(experiment))
            .join(format!("{}.json", escape(task)))
    }

    pub fn read_ref(&self, experiment: &str, task: &str) -> Option<TaskRef> {
        let bytes = fs::read(self.ref_path(experiment, task)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    pub fn write_ref(&self, experiment: &str, task: &str, task_ref: &TaskRef) -> Result<()> {
        if self
            .read_ref(experiment, task)
            .is_some_and(|old| old.key == task_ref.key)
        {
            return Ok(());
        }
        write_atomic(&self.ref_path(experiment, task), &serde_json::to_vec_pretty(task_ref)?)
    }
}

/// A task's staging directory; removed on drop unless it was published.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    published: bool,
}

impl Staging {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Hashes every staged file into `manifest.json` and syncs it all to disk: what
/// [`verify`] later checks. The directory still has to be renamed into place.
fn seal(staging: &Staging, key: &str, parts: &serde_json::Value, provenance: &Provenance) -> Result<Manifest> {
    let mut files = BTreeMap::new();
    for path in walk(&staging.dir)? {
        let relative = path
            .strip_prefix(&staging.dir)
            .expect("walk stays inside")
            .to_string_lossy()
            .replace('\\', "/");
        if relative == MANIFEST {
            bail!("a task may not write its own {MANIFEST}");
        }
        let size = fs::metadata(&path)?.len();
        // Data must be on disk before the manifest that vouches for it.
        fs::File::open(&path)?.sync_all()?;
        files.insert(
            relative,
            FileEntry {
                blake3: file_digest(&path)?,
                size,
            },
        );
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        key: key.to_string(),
        parts: parts.clone(),
        task: provenance.task.to_string(),
        experiment: provenance.experiment.to_string(),
        created: crate::util::now_rfc3339(),
        duration_s: provenance.duration_s,
        peak_rss_bytes: provenance.peak_rss_bytes,
        files,
    };
    write_atomic(&staging.dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    fs::File::open(&staging.dir)?.sync_all()?;
    Ok(manifest)
}

/// Renames a sealed staging directory to `target` (which must not exist) and syncs the
/// parent, so the rename itself survives a crash.
fn move_into_place(staging: &mut Staging, target: &Path) -> Result<()> {
    fs::rename(&staging.dir, target)
        .with_context(|| format!("cannot move {} into {}", staging.dir.display(), target.display()))?;
    staging.published = true;
    if let Some(parent) = target.parent() {
        if let Ok(dir) = fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let bytes = fs::read(&path).with_context(|| format!("{} is missing", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a valid manifest", path.display()))
}

fn verify(dir: &Path, key: &str) -> Result<Manifest> {
    let manifest = read_manifest(dir)?;
    if manifest.key != key {
        bail!("manifest names key {} but lives under {key}", manifest.key);
    }
    for (relative, entry) in &manifest.files {
        let path = dir.join(relative);
        let size = fs::metadata(&path)
            .with_context(|| format!("{relative} is missing"))?
            .len();
        if size != entry.size {
            bail!("{relative} has {size} bytes, the manifest says {}", entry.size);
        }
        let digest = file_digest(&path)?;
        if digest != entry.blake3 {
            bail!(
                "{relative} has blake3 {}…, the manifest says {}…",
                &digest[..12],
                &entry.blake3[..12.min(entry.blake3.len())]
            );
        }
    }
    for path in walk(dir)? {
        let relative = path
            .strip_prefix(dir)
            .expect("walk stays inside")
            .to_string_lossy()
            .replace('\\', "/");
        if relative != MANIFEST && !manifest.files.contains_key(&relative) {
            bail!("{relative} is not in the manifest");
        }
    }
    Ok(manifest)
}

/// Files (not directories) below `dir`, sorted.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current).with_context(|| format!("cannot list {}", current.display()))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Task and experiment names as file names: keep the readable ones, encode the rest.
fn escape(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '[' | ']' | '=' | ',') {
                c.to_string()
            } else {
                format!("%{:02X}", c as u32)
            }
        })
        .collect()
}

fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}
