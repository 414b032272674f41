//! The network half of [`super`]: repository info and file downloads through `hf-hub`,
//! and the check of every downloaded file against the ETag the hub sent.

use std::io::Read;
use std::path::Path;

use hf_hub::api::sync::{Api, ApiBuilder, ApiError};
use hf_hub::Repo;
use sha1::Digest as _;

use super::cache::{self, RepoKind};
use super::HubError;

pub(super) enum InfoError {
    Hub(HubError),
    /// No answer at all (connection refused, DNS, TLS): the cache may do.
    Unreachable(String),
}

fn api() -> Result<Api, String> {
    ApiBuilder::new()
        .with_endpoint(super::endpoint())
        .with_cache_dir(cache::hub_cache())
        .with_token(super::token())
        .with_progress(false)
        .build()
        .map_err(|e| e.to_string())
}

/// The commit `revision` is at and the repository's files.
pub(super) fn info(kind: RepoKind, repo: &str, revision: &str) -> Result<(String, Vec<String>), InfoError> {
    let api = api().map_err(InfoError::Unreachable)?;
    let handle = api.repo(Repo::with_revision(repo.to_string(), kind.hf(), revision.to_string()));
    match handle.info() {
        Ok(info) => Ok((info.sha, info.siblings.into_iter().map(|s| s.rfilename).collect())),
        Err(ApiError::RequestError(err)) => Err(match *err {
            ureq::Error::Status(status, response) => {
                let code = response.header("X-Error-Code").unwrap_or_default().to_string();
                InfoError::Hub(status_error(kind, repo, revision, status, &code, response.get_url()))
            }
            ureq::Error::Transport(transport) => InfoError::Unreachable(transport.to_string()),
        }),
        Err(other) => Err(InfoError::Hub(HubError::Download {
            kind,
            repo: repo.to_string(),
            file: "the repository info".into(),
            message: other.to_string(),
        })),
    }
}

fn status_error(kind: RepoKind, repo: &str, revision: &str, status: u16, code: &str, url: &str) -> HubError {
    let endpoint = super::endpoint();
    match status {
        404 if code == "RevisionNotFound" => HubError::RevisionNotFound {
            kind,
            repo: repo.into(),
            revision: revision.into(),
            endpoint,
        },
        404 => HubError::NotFound {
            kind,
            repo: repo.into(),
            endpoint,
        },
        401 | 403 => HubError::Unauthorized {
            kind,
            repo: repo.into(),
            status,
            with_token: super::token().is_some(),
        },
        _ => HubError::Http {
            kind,
            repo: repo.into(),
            status,
            url: url.into(),
        },
    }
}

/// Downloads files of one commit.
pub(super) struct Client {
    kind: RepoKind,
    repo: String,
    commit: String,
    api: Api,
}

impl Client {
    pub(super) fn new(kind: RepoKind, repo: &str, commit: &str) -> Result<Self, HubError> {
        let api = api().map_err(|message| HubError::Download {
            kind,
            repo: repo.into(),
            file: "(client)".into(),
            message,
        })?;
        Ok(Self {
            kind,
            repo: repo.into(),
            commit: commit.into(),
            api,
        })
    }

    /// Downloads `file` into `snapshots/<commit>/` and checks it.
    pub(super) fn fetch(&self, file: &str, snapshot: &Path) -> Result<(), HubError> {
        let failed = |message: String| HubError::Download {
            kind: self.kind,
            repo: self.repo.clone(),
            file: file.to_string(),
            message,
        };
        // By commit, not branch: every file of one resolution comes from the same commit.
        let handle = self.api.repo(Repo::with_revision(
            self.repo.clone(),
            self.kind.hf(),
            self.commit.clone(),
        ));
        let progress = Bar::new(&format!("{} {file}", self.repo));
        let result = handle.download_with_progress(file, progress);
        // hf-hub records the commit as a ref named by itself; huggingface_hub does not.
        let self_ref = cache::repo_dir(self.kind, &self.repo).join("refs").join(&self.commit);
        let _ = std::fs::remove_file(self_ref);
        let pointer = result.map_err(|err| match err {
            ApiError::RequestError(err) => match *err {
                ureq::Error::Status(status, response) => {
                    status_error(self.kind, &self.repo, &self.commit, status, "", response.get_url())
                }
                ureq::Error::Transport(transport) => failed(transport.to_string()),
            },
            other => failed(format!(
                "{other} (a partial download stays as a .part file and resumes)"
            )),
        })?;
        if pointer != snapshot.join(file) {
            return Err(failed(format!(
                "the hub served it from another commit ({})",
                pointer.display()
            )));
        }
        verify(&pointer).map_err(|message| {
            // Neither the blob nor its link may stay: both would look complete.
            if let Ok(blob) = std::fs::canonicalize(&pointer) {
                let _ = std::fs::remove_file(blob);
            }
            let _ = std::fs::remove_file(&pointer);
            failed(message)
        })
    }
}

/// Checks a downloaded file against its blob name, the ETag: a sha256 (LFS files) or a
/// git blob sha1 (the rest). Other ETags cannot be checked and pass.
fn verify(pointer: &Path) -> Result<(), String> {
    let blob = std::fs::canonicalize(pointer).map_err(|e| format!("{}: {e}", pointer.display()))?;
    let etag = blob
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !etag.bytes().all(|b| b.is_ascii_hexdigit()) || !matches!(etag.len(), 40 | 64) {
        return Ok(());
    }
    let mut file = std::fs::File::open(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    sha1.update(format!("blob {size}\0").as_bytes());
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(|e| format!("{}: {e}", blob.display()))?;
        if n == 0 {
            break;
        }
        if etag.len() == 64 {
            sha256.update(&buffer[..n]);
        } else {
            sha1.update(&buffer[..n]);
        }
    }
    let actual = if etag.len() == 64 {
        hex(&sha256.finalize())
    } else {
        hex(&sha1.finalize())
    };
    if actual != etag {
        return Err(format!(
            "content does not match the hub's hash ({size} bytes, {} {actual} ≠ {etag}); removed, run again",
            if etag.len() == 64 { "sha256" } else { "git sha1" }
        ));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A byte progress bar on stderr (hidden when stderr is not a terminal).
struct Bar {
    bar: indicatif::ProgressBar,
    label: String,
}

impl Bar {
    fn new(label: &str) -> Self {
        Self {
            bar: indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr()),
            label: label.to_string(),
        }
    }
}

impl hf_hub::api::Progress for Bar {
    fn init(&mut self, size: usize, _filename: &str) {
        self.bar.set_length(size as u64);
        self.bar.set_position(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "downloading {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
        ) {
            self.bar.set_style(style.progress_chars("=> "));
        }
        self.bar.set_message(self.label.clone());
    }

    fn update(&mut self, size: usize) {
        self.bar.inc(size as u64);
    }

    fn finish(&mut self) {
        self.bar.finish_and_clear();
    }
}
