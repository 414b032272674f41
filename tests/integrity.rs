//! `orchestrate verify`: every artifact re-hashed against its manifest; corrupt ones are
//! named, fail the command, and the next `run` rebuilds them.

mod support;

use predicates::prelude::*;
use support::{artifact_keys_by_task, assert_cache_intact, orchestrate, sandbox};

#[test]
fn verify_names_a_corrupt_artifact_and_run_rebuilds_it() {
    let dir = sandbox();
    orchestrate(dir.path())
        .args(["run", "exp.toml", "-q"])
        .assert()
        .success();
    assert_cache_intact(dir.path(), 5);

    // Flip a byte of the tfidf features, and drop the manifest of another artifact.
    let keys = artifact_keys_by_task(dir.path());
    let (tfidf, logreg) = (&keys["tfidf"], &keys["logreg"]);
    let features = dir
        .path()
        .join("cache/artifacts")
        .join(tfidf)
        .join("features.safetensors");
    let mut bytes = std::fs::read(&features).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&features, bytes).unwrap();
    std::fs::remove_file(dir.path().join("cache/artifacts").join(logreg).join("manifest.json")).unwrap();

    orchestrate(dir.path())
        .arg("verify")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(format!(
            "corrupt  {}  tfidf (tiny): features.safetensors has blake3",
            &tfidf[..12]
        )))
        .stdout(predicate::str::contains(format!(
            "corrupt  {}  unknown task",
            &logreg[..12]
        )))
        .stdout(predicate::str::contains("manifest.json is missing"))
        .stdout(predicate::str::contains("5 artifacts checked"))
        .stdout(predicate::str::contains("2 corrupt"));
    let json = orchestrate(dir.path())
        .args(["--json", "verify"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["checked"], 5);
    let corrupt = json["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 2, "{json}");
    assert!(corrupt
        .iter()
        .any(|c| c["key"] == tfidf.as_str() && c["task"] == "tfidf" && c["experiment"] == "tiny"));

    // Only the two corrupt artifacts are rebuilt (the logreg key does not change with tfidf's bytes).
    orchestrate(dir.path())
        .args(["run", "exp.toml"])
        .assert()
        .success()
        .stderr(predicate::str::contains("2 ran, 3 cached"));
    assert_cache_intact(dir.path(), 5);
}

#[test]
fn verify_on_an_empty_or_absent_cache_is_clean_and_creates_nothing() {
    let dir = sandbox();
    assert_cache_intact(dir.path(), 0);
    assert!(!dir.path().join("cache").exists());
}
