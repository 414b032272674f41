//! A cache directory that is read-only or full: the run fails with an error naming the
//! cache path (as given: `--cache-dir` defaults to `cache`), publishes nothing partial, and a later run with room succeeds.
//!
//! Both tests mount a tmpfs (read-only, or a few hundred KiB), which needs root or
//! CAP_SYS_ADMIN; without it they print why and pass without checking anything, unless
//! `ORCHESTRATE_REQUIRE_TMPFS=1` (set by scripts/test.sh for CI, which runs as root) makes
//! that a failure. (As root, `chmod` would not stop writes: a mount is the honest way to
//! refuse them.)

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use predicates::prelude::*;
use support::{assert_cache_intact, count_events, json_lines, orchestrate, sandbox};

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// `None`, with the reason printed, where mounting is not permitted.
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        let missing = match output {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "cannot mount a tmpfs at {}: {}",
                at.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(err) => Some(format!("cannot run mount: {err}")),
        };
        support::resources::available("TMPFS", missing).then(|| Self { at: at.to_path_buf() })
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.at)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn artifact_keys(cache: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(cache.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_read_only_cache_fails_clearly_and_keeps_what_it_has() {
    let dir = sandbox();
    let cache = dir.path().join("cache");
    let Some(tmpfs) = Tmpfs::mount(&cache, "16m") else {
        return;
    };
    let run = || orchestrate(dir.path()).args(["run", "exp.toml"]).assert();

    // Empty and read-only: the cache cannot even be laid out.
    tmpfs.remount("ro");
    run().code(1).stderr(predicate::str::contains(
        "error: cannot create cache directory cache/artifacts: Read-only file system",
    ));

    // With one artifact in it: the first task to build fails, the artifact stays.
    tmpfs.remount("rw");
    orchestrate(dir.path())
        .args(["run", "exp.toml", "--only", "data", "-q"])
        .assert()
        .success();
    let before = artifact_keys(&cache);
    tmpfs.remount("ro");
    run()
        .code(1)
        .stderr(predicate::str::contains(
            "FAILED  tfidf: cannot open lock file cache/locks/",
        ))
        .stderr(predicate::str::contains("Read-only file system"))
        .stderr(predicate::str::contains("1 task failed:"))
        .stderr(predicate::str::contains("(3 dependents skipped)"));
    assert_eq!(artifact_keys(&cache), before, "nothing was published or removed");
    assert_cache_intact(dir.path(), 1);

    tmpfs.remount("rw");
    run().success().stderr(predicate::str::contains("4 ran, 1 cached"));
    assert_cache_intact(dir.path(), 5);
}

/// Fills `mount` until the file system refuses, then frees `room` bytes.
fn fill_leaving(mount: &Path, room: u64) {
    let path = mount.join("filler");
    let mut filler = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 4096];
    while filler.write_all(&block).is_ok() {}
    let _ = filler.flush();
    let len = std::fs::metadata(&path).unwrap().len();
    filler.set_len(len.saturating_sub(room)).unwrap();
}

#[test]
fn a_full_cache_disk_fails_clearly_and_publishes_nothing_partial() {
    let dir = sandbox();
    let cache = dir.path().join("cache");
    let Some(_tmpfs) = Tmpfs::mount(&cache, "512k") else {
        return;
    };
    // The disk fills at a different point of the run each time: lock files, staging
    // writes, manifests, refs.
    let mut failures = 0;
    for room in [0, 4 << 10, 8 << 10, 16 << 10, 24 << 10, 32 << 10, 48 << 10, 64 << 10] {
        std::fs::create_dir_all(&cache).unwrap();
        fill_leaving(&cache, room);
        let output = orchestrate(dir.path())
            .args(["--json", "run", "exp.toml"])
            .output()
            .unwrap();
        let events = json_lines(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        for failed in events.iter().filter(|e| e["event"] == "task_failed") {
            failures += 1;
            let error = failed["error"].as_str().unwrap();
            eprintln!("room {room}: {}: {error}", failed["task"]);
            assert!(
                error.contains(" cache/") && error.contains("No space left on device"),
                "room {room}: the error names the cache path and the cause: {error}"
            );
            // The failed task published nothing.
            let key = events
                .iter()
                .find(|e| e["event"] == "task_started" && e["task"] == failed["task"])
                .map(|e| e["key"].as_str().unwrap().to_string());
            if let Some(key) = key {
                assert!(
                    !cache.join("artifacts").join(&key).exists(),
                    "room {room}: {key} published"
                );
            }
        }
        if !output.status.success() && count_events(&events, "task_failed") == 0 {
            // Failed outside a task (refs of cached tasks): still named.
            assert!(stderr.contains(" cache/"), "room {room}: {stderr}");
        }
        assert_cache_intact(dir.path(), artifact_keys(&cache).len());
        let staging = std::fs::read_dir(cache.join("tmp")).unwrap().count();
        assert_eq!(staging, 0, "room {room}: no staging directory left");
        std::fs::remove_file(cache.join("filler")).unwrap();
        // Start the next round from an empty cache, so the disk fills early again.
        for sub in ["artifacts", "refs", "tmp", "locks"] {
            let _ = std::fs::remove_dir_all(cache.join(sub));
        }
    }
    assert!(failures > 0, "the disk never filled up");

    // With room, the same run succeeds.
    orchestrate(dir.path())
        .args(["run", "exp.toml"])
        .assert()
        .success()
        .stderr(predicate::str::contains("5 ran, 0 cached"));
    assert_cache_intact(dir.path(), 5);
}
