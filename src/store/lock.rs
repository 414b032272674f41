//! Per-artifact locks, so that two `orchestrate` processes sharing a cache never build the
//! same key at once: the second waits, then finds the artifact published and reuses it.
//!
//! `<cache>/locks/<key>.lock` is held with an OS file lock (`flock` on Unix, through
//! `std::fs::File::try_lock`), and names its holder (pid, task, experiment) for the message
//! of whoever waits. The OS drops the lock when the holder's process ends for any reason,
//! `kill -9` included, so a lock left by a dead process is never stale: the next taker gets
//! it at once, with nothing to clean up. Lock files are never deleted: removing one while
//! another process waits on it would let a third lock a new file of the same name, and two
//! builders would hold "the" lock. They are a few dozen bytes each.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

use super::Store;

/// How often a waiting process retries: short next to any task, long next to a syscall.
const RETRY: Duration = Duration::from_millis(50);

/// Who holds (or wants) an artifact lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub task: String,
    pub experiment: String,
}

impl LockHolder {
    /// This process, building `task` of `experiment`.
    pub fn this_process(task: &str, experiment: &str) -> Self {
        Self {
            pid: std::process::id(),
            task: task.to_string(),
            experiment: experiment.to_string(),
        }
    }
}

/// A held artifact lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct ArtifactLock {
    // Closing the file releases the OS lock.
    _file: File,
    path: PathBuf,
}

impl ArtifactLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Store {
    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.root().join("locks").join(format!("{key}.lock"))
    }

    /// Takes the lock on `key`, waiting while another process (or another task of this
    /// run) holds it. `on_wait` is called once, with the holder when its lock file can be
    /// read, before waiting; `cancel` stops the wait with an error.
    pub fn lock(
        &self,
        key: &str,
        me: &LockHolder,
        on_wait: &dyn Fn(Option<LockHolder>),
        cancel: &AtomicBool,
    ) -> Result<ArtifactLock> {
        let path = self.lock_path(key);
        let dir = path.parent().expect("lock files live in locks/");
        fs::create_dir_all(dir).with_context(|| format!("cannot create lock directory {}", dir.display()))?;
        // Not truncated on open: the current holder's name must survive for the message.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        let mut waited = false;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if !waited {
                        on_wait(read_holder(&path));
                        waited = true;
                    }
                    if cancel.load(Ordering::Relaxed) {
                        bail!("interrupted while waiting for the lock {}", path.display());
                    }
                    std::thread::sleep(RETRY);
                }
                Err(TryLockError::Error(err)) => {
                    return Err(err).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
        file.set_len(0)
            .and_then(|()| (&file).write_all(&serde_json::to_vec(me).expect("plain struct")))
            .with_context(|| format!("cannot write lock file {}", path.display()))?;
        Ok(ArtifactLock { _file: file, path })
    }
}

/// The holder named in a lock file; `None` while it is being rewritten or unreadable.
pub fn read_holder(path: &Path) -> Option<LockHolder> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}
