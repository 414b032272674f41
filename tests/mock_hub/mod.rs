//! A Hugging Face Hub stand-in on 127.0.0.1 for the tests: the routes orchestrate's client
//! (hf-hub) and Python's huggingface_hub use, no internet.
//!
//! - `GET /api/{models,datasets}/<repo>[/revision/<rev>]`: `{id, sha, siblings}`; 404 with
//!   `X-Error-Code: RepoNotFound` / `RevisionNotFound`; 401 for a gated repo without the token.
//! - `GET|HEAD [/datasets]/<repo>/resolve/<rev>/<file>`: the bytes, with `ETag` (sha256 for
//!   `.safetensors`/`.parquet`, as LFS files have, git's blob sha1 else), `X-Repo-Commit`,
//!   `Content-Length`, and `Range` answered with 206 + `Content-Range`.
//!
//! A file can be set to be cut off halfway once (a connection dropped mid-download).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha1::Digest as _;

pub const TOKEN: &str = "hf_mock_token";

#[derive(Default)]
struct Repo {
    branches: HashMap<String, String>,
    commits: HashMap<String, BTreeMap<String, Vec<u8>>>,
    gated: bool,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, Repo>,
    log: Vec<String>,
    cut: Option<String>,
    counter: u64,
}

pub struct MockHub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// `models/org/name` or `datasets/name`: the state's repo key.
fn key(kind: &str, id: &str) -> String {
    format!("{kind}/{id}")
}

impl MockHub {
    pub fn start() -> MockHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        MockHub {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new commit of `files` on `main` of `kind` (`models`, `datasets`) repo `id`.
    pub fn push(&self, kind: &str, id: &str, files: BTreeMap<String, Vec<u8>>) -> String {
        let mut state = self.state.lock().unwrap();
        state.counter += 1;
        let mut hasher = sha1::Sha1::new();
        hasher.update(format!("{kind}/{id}/{}", state.counter));
        for (name, bytes) in &files {
            hasher.update(name);
            hasher.update(bytes);
        }
        let commit = hex(&hasher.finalize());
        let repo = state.repos.entry(key(kind, id)).or_default();
        repo.commits.insert(commit.clone(), files);
        repo.branches.insert("main".into(), commit.clone());
        commit
    }

    pub fn set_branch(&self, kind: &str, id: &str, branch: &str, commit: &str) {
        let mut state = self.state.lock().unwrap();
        state
            .repos
            .get_mut(&key(kind, id))
            .unwrap()
            .branches
            .insert(branch.into(), commit.into());
    }

    /// Pushes every file of a folder (a model fixture).
    pub fn push_folder(&self, kind: &str, id: &str, folder: &Path) -> String {
        let mut files = BTreeMap::new();
        collect(folder, folder, &mut files);
        self.push(kind, id, files)
    }

    pub fn gate(&self, kind: &str, id: &str) {
        self.state.lock().unwrap().repos.get_mut(&key(kind, id)).unwrap().gated = true;
    }

    /// The next full download of a file with this name sends half of it, then hangs up.
    pub fn cut_next(&self, file: &str) {
        self.state.lock().unwrap().cut = Some(file.to_string());
    }

    /// Every request so far, as `METHOD path [range]`.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Requests that fetched file contents (not the `bytes=0-0` metadata probe, not HEAD).
    pub fn downloads(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.starts_with("GET ") && l.contains("/resolve/") && !l.ends_with("bytes=0-0"))
            .collect()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Stops listening: connections are refused from now on.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
            thread.join().unwrap();
        }
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        self.stop();
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let name = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn etag(name: &str, bytes: &[u8]) -> String {
    if name.ends_with(".safetensors") || name.ends_with(".parquet") || name.ends_with(".bin") {
        hex(&sha2::Sha256::digest(bytes))
    } else {
        let mut hasher = sha1::Sha1::new();
        hasher.update(format!("blob {}\0", bytes.len()));
        hasher.update(bytes);
        hex(&hasher.finalize())
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close (a cut connection).
    cut_at: Option<usize>,
}

fn json(status: u16, value: serde_json::Value, error_code: Option<&str>) -> Response {
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if let Some(code) = error_code {
        headers.push(("X-Error-Code".into(), code.into()));
    }
    Response {
        status,
        headers,
        body: value.to_string().into_bytes(),
        cut_at: None,
    }
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if let Some(len) = headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let path = target.split('?').next().unwrap_or("").to_string();
    let range = headers.get("range").cloned();
    let authorized = headers
        .get("authorization")
        .is_some_and(|a| a == &format!("Bearer {TOKEN}"));
    let response = {
        let mut state = state.lock().unwrap();
        state.log.push(format!(
            "{method} {path}{}",
            range.as_ref().map(|r| format!(" {r}")).unwrap_or_default()
        ));
        route(&mut state, &method, &path, range.as_deref(), authorized)
    };
    write(stream, &method, response)
}

fn route(state: &mut State, method: &str, path: &str, range: Option<&str>, authorized: bool) -> Response {
    let not_found = |code: &str| json(404, serde_json::json!({"error": format!("{code}")}), Some(code));
    // Repository info.
    for kind in ["models", "datasets"] {
        if let Some(rest) = path.strip_prefix(&format!("/api/{kind}/")) {
            // `tree/<rev>` is huggingface_hub's file listing, `revision/<rev>` the info.
            let (id, revision, tree) = match (rest.split_once("/revision/"), rest.split_once("/tree/")) {
                (Some((id, rev)), _) => (decode(id), decode(rev), false),
                (None, Some((id, rev))) => (decode(id), decode(rev.trim_end_matches('/')), true),
                (None, None) => (decode(rest), "main".to_string(), false),
            };
            let Some(repo) = state.repos.get(&key(kind, &id)) else {
                return not_found("RepoNotFound");
            };
            if repo.gated && !authorized {
                return json(
                    401,
                    serde_json::json!({"error": "Access to this repo is restricted"}),
                    Some("GatedRepo"),
                );
            }
            let commit = repo.branches.get(&revision).cloned().unwrap_or(revision);
            let Some(files) = repo.commits.get(&commit) else {
                return not_found("RevisionNotFound");
            };
            if tree {
                let entries: Vec<_> = files
                    .iter()
                    .map(|(f, bytes)| {
                        let oid = etag(f, bytes);
                        let mut entry = serde_json::json!({"type": "file", "path": f, "size": bytes.len(), "oid": oid});
                        if oid.len() == 64 {
                            entry["lfs"] = serde_json::json!({"oid": oid, "size": bytes.len(), "pointerSize": 130});
                        }
                        entry
                    })
                    .collect();
                return json(200, serde_json::Value::Array(entries), None);
            }
            let siblings: Vec<_> = files.keys().map(|f| serde_json::json!({"rfilename": f})).collect();
            return json(
                200,
                serde_json::json!({"id": id, "sha": commit, "siblings": siblings, "private": false}),
                None,
            );
        }
    }
    // File downloads.
    let (kind, rest) = match path.strip_prefix("/datasets/") {
        Some(rest) => ("datasets", rest),
        None => ("models", path.trim_start_matches('/')),
    };
    let Some((id, after)) = rest.split_once("/resolve/") else {
        return not_found("EntryNotFound");
    };
    let Some((revision, file)) = after.split_once('/') else {
        return not_found("EntryNotFound");
    };
    let (id, revision, file) = (decode(id), decode(revision), decode(file));
    let Some(repo) = state.repos.get(&key(kind, &id)) else {
        return not_found("RepoNotFound");
    };
    if repo.gated && !authorized {
        return json(401, serde_json::json!({"error": "restricted"}), Some("GatedRepo"));
    }
    let commit = repo.branches.get(&revision).cloned().unwrap_or(revision);
    let Some(files) = repo.commits.get(&commit) else {
        return not_found("RevisionNotFound");
    };
    let Some(bytes) = files.get(&file).cloned() else {
        return not_found("EntryNotFound");
    };
    let tag = etag(&file, &bytes);
    let total = bytes.len();
    let mut headers = vec![
        ("ETag".to_string(), format!("\"{tag}\"")),
        ("X-Repo-Commit".into(), commit.clone()),
        ("Accept-Ranges".into(), "bytes".into()),
        ("Content-Type".into(), "application/octet-stream".into()),
    ];
    if tag.len() == 64 {
        headers.push(("X-Linked-Etag".into(), format!("\"{tag}\"")));
        headers.push(("X-Linked-Size".into(), total.to_string()));
    }
    let (status, body) = match range.and_then(|r| r.strip_prefix("bytes=")) {
        Some(spec) => {
            let (from, to) = spec.split_once('-').unwrap_or((spec, ""));
            let from: usize = from.parse().unwrap_or(0).min(total);
            let to: usize = to.parse().map(|t: usize| t + 1).unwrap_or(total).min(total);
            headers.push((
                "Content-Range".into(),
                format!("bytes {from}-{}/{total}", to.max(from + 1) - 1),
            ));
            (206, bytes[from..to.max(from)].to_vec())
        }
        None => (200, bytes),
    };
    let full = range != Some("bytes=0-0") && method == "GET";
    let cut_at = if full && state.cut.as_deref() == Some(file.rsplit('/').next().unwrap_or("")) {
        state.cut = None;
        Some(body.len() / 2)
    } else {
        None
    };
    Response {
        status,
        headers,
        body,
        cut_at,
    }
}

fn write(mut stream: TcpStream, method: &str, response: Response) -> std::io::Result<()> {
    let reason = match response.status {
        200 => "OK",
        206 => "Partial Content",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Other",
    };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", response.status);
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        let end = response.cut_at.unwrap_or(response.body.len());
        stream.write_all(&response.body[..end])?;
    }
    stream.flush()?;
    if response.cut_at.is_some() {
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }
    Ok(())
}
