//! `cargo bench --bench noop`: the no-op re-run of `experiments/lab.toml` (everything
//! cached) and `orchestrate report` on the same cache, through the release binary, as a user
//! runs them. Target: ≤ 1 s each.
//!
//! The cache is the lab's own, built once (not timed) from a copy of `experiments/lab.toml`
//! and its include, unchanged but for a 16/8-review sample of the data and one epoch, so
//! that it builds in a minute instead of 45. What a no-op run costs does not depend on the
//! sample: it hashes the model folder (all-MiniLM-L6-v2, 90 MB) into the keys and re-verifies
//! every artifact, and the three checkpoints (90 MB each) are as large as the real lab's.
//! Needs `bash scripts/setup.sh` (the model); plain `main`, no nightly.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("models/all-MiniLM-L6-v2");
    if !model.join("model.safetensors").exists() {
        eprintln!(
            "noop bench: {} is missing; run `bash scripts/setup.sh` first",
            model.display()
        );
        std::process::exit(1);
    }
    let dir = tempfile::tempdir()?;
    let lab = copy_lab(root, dir.path())?;
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_orchestrate"));
    let orchestrate = |args: &[&str]| -> anyhow::Result<f64> {
        let started = Instant::now();
        let status = Command::new(&binary)
            .args(["--quiet", "--cache-dir"])
            .arg(dir.path().join("cache"))
            .arg("--reports-dir")
            .arg(dir.path().join("reports"))
            .args(args)
            .arg(&lab)
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "orchestrate {args:?} failed: {status}");
        Ok(started.elapsed().as_secs_f64())
    };
    let build = orchestrate(&["run"])?;
    println!("noop: built the lab's cache (16/8 reviews, 1 epoch) in {build:.1} s (not timed below)");
    for (name, args) in [("no-op run", &["run"][..]), ("report", &["report"][..])] {
        let mut times = (0..5)
            .map(|_| orchestrate(args))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{name} of experiments/lab.toml: median {:.0} ms, min {:.0} ms, max {:.0} ms over {} runs (target ≤ 1 s)",
            median * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3,
            times.len()
        );
        if median > 1.0 {
            eprintln!("noop bench: {name} took {median:.3} s, over the 1 s target");
        }
    }
    Ok(())
}

/// Copies `experiments/lab.toml` with its include and data into `dir` (the model folder is
/// linked), adding a small sample and one epoch; returns the copy of lab.toml.
fn copy_lab(root: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("experiments/common"))?;
    std::fs::create_dir_all(dir.join("data/imdb"))?;
    std::fs::create_dir_all(dir.join("models"))?;
    std::os::unix::fs::symlink(
        root.join("models/all-MiniLM-L6-v2"),
        dir.join("models/all-MiniLM-L6-v2"),
    )?;
    for file in [
        "data/imdb/train.csv",
        "data/imdb/eval.csv",
        "experiments/common/imdb.toml",
    ] {
        std::fs::copy(root.join(file), dir.join(file))?;
    }
    let lab = dir.join("experiments/lab.toml");
    let text = std::fs::read_to_string(root.join("experiments/lab.toml"))?;
    let small = "\n[defaults.dataset]\ntrain_size = 16\neval_size = 8\n\
                 [defaults.finetune]\nepochs = 1\n[defaults.headtune]\nepochs = 1\n";
    std::fs::write(&lab, text + small)?;
    Ok(lab)
}
