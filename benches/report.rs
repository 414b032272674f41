//! `cargo bench --bench report`: times `report` (a pure read of the cache: load the
//! experiment, plan keys, read every metrics.json, render the table, Markdown, CSV, JSON,
//! HTML and the SVG plots) on a real cache of 50 reported runs: naive Bayes over 10 alphas
//! × 5 dataset sampling seeds on the tiny fixture (tests/fixtures/tiny/seeds.toml). Target: ≤ 1 s. Plain `main`, no nightly.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use orchestrate::commands::view::View as _;
use orchestrate::commands::{self, RunArgs, Settings};
use orchestrate::reporter::Mode;
use orchestrate::store::Store;
use orchestrate::{plan, report};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
    for file in ["train.csv", "eval.csv"] {
        std::fs::copy(fixtures.join(file), dir.path().join(file))?;
    }
    let file = dir.path().join("seeds.toml");
    std::fs::copy(fixtures.join("seeds.toml"), &file)?;
    let settings = Settings::new(dir.path().join("cache"), dir.path().join("reports"), Mode::Quiet);
    let cancel = AtomicBool::new(false);
    let args = RunArgs {
        only: Vec::new(),
        jobs: 2,
        dry_run: false,
        fail_fast: true,
        cancel: &cancel,
        executor: None,
        detach: false,
        individual_runs: false,
    };
    // Build the cache once (not timed).
    let mut ok = true;
    commands::run(&settings, std::slice::from_ref(&file), &args, &mut |view| {
        ok &= view.ok();
        Ok(())
    })?;
    assert!(ok, "building the cache failed");

    let mut times = Vec::new();
    let (mut rows, mut entries) = (0, 0);
    for _ in 0..10 {
        let start = Instant::now();
        // What `orchestrate report` does, minus printing the table.
        let experiment = settings.load(&file)?;
        let store = Store::open_existing(&settings.cache_dir);
        let plan = plan::plan(&experiment, &store)?;
        let collected = report::collect(&plan, &store)?;
        let _ = report::table(&collected).to_string();
        report::write_files(&collected, &settings.reports_dir)?;
        times.push(start.elapsed().as_secs_f64());
        (rows, entries) = (collected.rows.len(), collected.entries().len());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "report: {rows} rows → {} entries, median {:.1} ms, min {:.1} ms, max {:.1} ms over {} runs (target ≤ 1 s)",
        entries,
        median * 1e3,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3,
        times.len()
    );
    assert!(median <= 1.0, "report took {median:.3} s, target ≤ 1 s");
    Ok(())
}
