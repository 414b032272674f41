//! The seeds' experiments as checked in (distilbert-lab, yelp-lab, hw7) planned against the
//! mock hub, with the tiny fixtures standing in under the real names: the files parse, every
//! hub model and dataset resolves and downloads into the cache, and every key is computed.
//! Running them for real needs the real hub and hours; planning takes seconds.

mod mock_hub;
mod support;

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn seed_experiments_plan_against_the_mock_hub() {
    let fixtures = Path::new(ROOT).join("tests/fixtures");
    let hub = mock_hub::MockHub::start();
    // The stand-in has distilbert-base-uncased's real config (planning reads no weights), so
    // that validation at plan time sees the seeds' max_len and ranks against the real shapes.
    let folder = fixtures.join("models/tiny-distilbert");
    let mut files = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&folder).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        files.insert(name, std::fs::read(entry.path()).unwrap());
    }
    let config = fixtures.join("models/distilbert-base-uncased-config/config.json");
    files.insert("config.json".into(), std::fs::read(config).unwrap());
    for model in ["distilbert-base-uncased", "distilbert-base-cased"] {
        hub.push("models", model, files.clone());
    }
    hub.push_folder("datasets", "imdb", &fixtures.join("hub/imdb"));
    hub.push_folder("datasets", "yelp_polarity", &fixtures.join("hub/yelp_polarity"));
    for (file, tasks) in [("distilbert-lab.toml", 40), ("yelp-lab.toml", 5), ("hw7.toml", 6)] {
        let dir = tempfile::tempdir().unwrap();
        let out = support::orchestrate(dir.path())
            .env("ORCHESTRATE_CACHE_DIR", dir.path().join("cache"))
            .env("HF_HOME", dir.path().join("hf"))
            .env("HF_ENDPOINT", hub.endpoint())
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HUB_OFFLINE")
            .args(["plan", &format!("{ROOT}/experiments/{file}")])
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(stdout.matches("never built").count() >= tasks, "{file}: {stdout}");
        let models = dir.path().join("hf/hub").read_dir().unwrap().count();
        assert!(models >= 1, "{file}: nothing downloaded");
    }
    let downloaded: Vec<String> = hub.downloads();
    for file in ["yelp_polarity/resolve", "imdb/resolve", "distilbert-base-cased/resolve"] {
        assert!(downloaded.iter().any(|l| l.contains(file)), "{file} in {downloaded:?}");
    }
}
