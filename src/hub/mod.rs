//! Models and datasets by Hugging Face Hub id, downloaded into the cache Python's
//! huggingface_hub uses (see [`cache`]), so either tool finds what the other fetched.
//!
//! Resolution, per repository and revision (`main` unless given):
//! 1. `HF_HUB_OFFLINE=1`: the cache alone (`refs/<revision>` → `snapshots/<commit>`).
//! 2. Otherwise the hub is asked which commit the revision is now and which files it has
//!    (`GET {HF_ENDPOINT}/api/{models,datasets}/<repo>/revision/<revision>`), so a moved
//!    `main` is seen and re-keys the tasks that read it. An unreachable hub falls back to
//!    the cache with a warning, as huggingface_hub does; 404 and 401 are errors.
//! 3. Files missing from `snapshots/<commit>/` are downloaded by Hugging Face's `hf-hub`
//!    client (`resolve/<commit>/<file>`, `.part` file renamed into `blobs/` when complete,
//!    resumed with a Range request after a cut), then checked against the ETag the hub
//!    sent: sha256 for LFS files, git's blob sha1 for the rest. A file that fails the check
//!    is removed, blob and link, so nothing incomplete looks complete.
//!
//! The commit a revision resolved to is remembered for the rest of the process, so the
//! planner and the tasks it runs read the same files.

pub mod cache;
mod download;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

pub use cache::{hub_cache, Pin, RepoKind};

/// A hub failure, naming the repository (and file) concerned.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{} `{repo}` not found on the hub ({endpoint}): check the name (404)", kind.noun())]
    NotFound {
        kind: RepoKind,
        repo: String,
        endpoint: String,
    },
    #[error("{} `{repo}` has no revision `{revision}` ({endpoint}, 404)", kind.noun())]
    RevisionNotFound {
        kind: RepoKind,
        repo: String,
        revision: String,
        endpoint: String,
    },
    #[error(
        "{} `{repo}` is gated or private ({status}): {hint}",
        kind.noun(),
        hint = if *with_token { "the token in HF_TOKEN has no access to it; request access on its hub page" } else { "set HF_TOKEN to a token with access (huggingface.co/settings/tokens)" }
    )]
    Unauthorized {
        kind: RepoKind,
        repo: String,
        status: u16,
        with_token: bool,
    },
    #[error(
        "{} `{repo}` (revision `{revision}`) is not in the Hugging Face cache ({}) and {why}",
        kind.noun(),
        dir.display()
    )]
    NotCached {
        kind: RepoKind,
        repo: String,
        revision: String,
        dir: PathBuf,
        /// "HF_HUB_OFFLINE is set" or why the hub could not be reached.
        why: String,
    },
    #[error("{} `{repo}`@{}: {message}", kind.noun(), short(commit))]
    Files {
        kind: RepoKind,
        repo: String,
        commit: String,
        message: String,
    },
    #[error("{} `{repo}`: downloading {file} failed: {message}", kind.noun())]
    Download {
        kind: RepoKind,
        repo: String,
        file: String,
        message: String,
    },
    #[error("{} `{repo}`: the hub answered {status} for {url}", kind.noun())]
    Http {
        kind: RepoKind,
        repo: String,
        status: u16,
        url: String,
    },
}

/// The first seven hex digits of a commit, as git shows it.
pub fn short(commit: &str) -> &str {
    &commit[..7.min(commit.len())]
}

/// A repository at one commit, with the files a caller asked for present in the cache.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub kind: RepoKind,
    pub repo: String,
    pub commit: String,
    /// `snapshots/<commit>/`.
    pub dir: PathBuf,
    /// Every file the repository has at that commit (what was cached, when offline).
    pub files: Vec<String>,
}

impl Snapshot {
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

/// Where the hub is: `$HF_ENDPOINT`, else huggingface.co.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "https://huggingface.co".into())
        .trim_end_matches('/')
        .to_string()
}

/// `HF_HUB_OFFLINE` set to a true value (huggingface_hub's reading: 1, true, yes, on).
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// The access token: `$HF_TOKEN`, else the file `huggingface-cli login` writes.
pub fn token() -> Option<String> {
    if let Ok(token) = std::env::var("HF_TOKEN") {
        let token = token.trim().to_string();
        return (!token.is_empty()).then_some(token);
    }
    let path = std::env::var_os("HF_TOKEN_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache::hf_home().join("token"));
    let token = std::fs::read_to_string(path).ok()?.trim().to_string();
    (!token.is_empty()).then_some(token)
}

type Resolved = (String, Vec<String>);
type Memo = Mutex<HashMap<(RepoKind, String, String), Resolved>>;

/// Revisions resolved in this process: (kind, repo, revision) → (commit, files).
fn resolved() -> &'static Memo {
    static RESOLVED: OnceLock<Memo> = OnceLock::new();
    RESOLVED.get_or_init(Default::default)
}

/// `repo` at `revision`, with the files `select` picks from the repository's file list
/// downloaded where missing. `select` names what it needs and errors on what is absent.
pub fn snapshot(
    kind: RepoKind,
    repo: &str,
    revision: &str,
    select: impl FnOnce(&[String]) -> Result<Vec<String>, String>,
) -> Result<Snapshot, HubError> {
    let repo_dir = cache::repo_dir(kind, repo);
    let memo_key = (kind, repo.to_string(), revision.to_string());
    let memo = resolved()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&memo_key)
        .cloned();
    let (commit, files, online) = match memo {
        Some((commit, files)) => (commit, files, !offline()),
        None => {
            let (commit, files, online) = resolve(kind, repo, revision, &repo_dir)?;
            resolved()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(memo_key, (commit.clone(), files.clone()));
            (commit, files, online)
        }
    };
    let dir = repo_dir.join("snapshots").join(&commit);
    let files_error = |message: String| HubError::Files {
        kind,
        repo: repo.to_string(),
        commit: commit.clone(),
        message,
    };
    let wanted = select(&files).map_err(files_error)?;
    let missing: Vec<&String> = wanted.iter().filter(|f| !dir.join(f).is_file()).collect();
    if !missing.is_empty() {
        if !online {
            return Err(HubError::NotCached {
                kind,
                repo: repo.to_string(),
                revision: revision.to_string(),
                dir: repo_dir,
                why: format!(
                    "{} cannot be downloaded ({})",
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    if offline() {
                        "HF_HUB_OFFLINE is set"
                    } else {
                        "the hub is unreachable"
                    }
                ),
            });
        }
        let client = download::Client::new(kind, repo, &commit)?;
        for file in missing {
            client.fetch(file, &dir)?;
        }
    }
    Ok(Snapshot {
        kind,
        repo: repo.to_string(),
        commit,
        dir,
        files,
    })
}

/// The commit and file list of `revision`: from the hub, else (offline, or the hub
/// unreachable) from the cache. The flag says whether the hub answered.
fn resolve(
    kind: RepoKind,
    repo: &str,
    revision: &str,
    repo_dir: &std::path::Path,
) -> Result<(String, Vec<String>, bool), HubError> {
    let from_cache = |why: String| -> Result<(String, Vec<String>, bool), HubError> {
        match cache::cached_commit(repo_dir, revision) {
            Some(commit) => {
                let files = cache::snapshot_files(&repo_dir.join("snapshots").join(&commit));
                Ok((commit, files, false))
            }
            None => Err(HubError::NotCached {
                kind,
                repo: repo.to_string(),
                revision: revision.to_string(),
                dir: repo_dir.to_path_buf(),
                why,
            }),
        }
    };
    if offline() {
        return from_cache("HF_HUB_OFFLINE is set".into());
    }
    match download::info(kind, repo, revision) {
        Ok((commit, files)) => {
            // What huggingface_hub records too: the next offline run finds the revision.
            if let Err(err) = cache::write_ref(repo_dir, revision, &commit) {
                eprintln!(
                    "warning: cannot record {repo}@{revision} in {}: {err}",
                    repo_dir.display()
                );
            }
            Ok((commit, files, true))
        }
        Err(download::InfoError::Hub(err)) => Err(err),
        Err(download::InfoError::Unreachable(detail)) => {
            let result = from_cache(format!("the hub is unreachable ({detail})"));
            if let Ok((commit, _, _)) = &result {
                eprintln!(
                    "warning: the hub ({}) is unreachable ({detail}); using the cached {} {repo}@{revision} = {}",
                    endpoint(),
                    kind.noun(),
                    short(commit)
                );
            }
            result
        }
    }
}
