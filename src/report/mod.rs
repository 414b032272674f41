//! Comparison reports, read from the cache only (never runs a task): a terminal table
//! and `reports/<experiment>.{md,csv,json,html}` plus one SVG per plot in
//! `reports/<experiment>/`.
//!
//! [`collect`] reads rows (one per run) from the cache; [`aggregate`] folds runs that
//! differ only by a seed into entries (mean ± std); [`analysis`] finds what the lab asks of
//! them (rank curves, the lowest rank beating head-tuning, the Pareto frontier); [`table`],
//! [`plots`] and [`html`] render entries and that analysis; [`compare`] merges several
//! experiments into one report.

pub mod aggregate;
pub mod analysis;
pub mod compare;
pub mod html;
pub mod plots;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::Serialize;

pub use self::aggregate::{aggregate, Entry, Stat};
pub use self::table::{csv, json, markdown, table, thousands};
use crate::plan::{Plan, Status};
use crate::store::Store;
use crate::tasks::Metrics;
use crate::util::write_atomic;

/// One row of the comparison: a task whose kind reports metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub experiment: String,
    pub task: String,
    /// The declared task name: sweep members share it and are listed together.
    pub group: String,
    pub kind: String,
    /// Sweep coordinates of the member, e.g. `{"alpha": "0.5"}`.
    pub sweep: Vec<(String, String)>,
    pub key: String,
    /// Resolved parameters of the task, and of its inputs prefixed by slot
    /// (`features.max_features`, `features.data.train`).
    pub params: BTreeMap<String, serde_json::Value>,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub experiment: String,
    pub description: Option<String>,
    pub rows: Vec<Row>,
    /// Reporting tasks with no artifact for their current key.
    pub missing: Vec<String>,
    /// Show every run on its own line instead of mean ± std over seeds (`--runs`).
    pub individual_runs: bool,
    /// A comparison (`report --compare`): the experiments side by side.
    pub compared: Vec<String>,
    /// The `--set` overrides the experiment was loaded with.
    pub overrides: Vec<String>,
}

impl Report {
    /// What every renderer shows: runs folded over seeds unless `individual_runs`.
    pub fn entries(&self) -> Vec<Entry> {
        aggregate(&self.rows, self.individual_runs)
    }

    /// File stem of the outputs. With overrides it names them too (`lab+set-1a2b3c4d`), so
    /// a variant never overwrites the experiment's own report.
    pub fn stem(&self) -> String {
        let stem = self.experiment.replace(['/', '\\'], "_");
        if self.overrides.is_empty() {
            return stem;
        }
        let hash = blake3::hash(self.overrides.join("\n").as_bytes()).to_hex();
        format!("{stem}+set-{}", &hash[..8])
    }

    /// The header line that lists the overrides, when there are any.
    pub fn overrides_line(&self) -> Option<String> {
        (!self.overrides.is_empty()).then(|| {
            let each: Vec<String> = self.overrides.iter().map(|o| format!("--set {o}")).collect();
            format!("Overrides: {}", each.join(" "))
        })
    }
}

/// Gathers the metrics of every reporting task of a plan from the cache. Runs nothing.
pub fn collect(plan: &Plan, store: &Store) -> Result<Report> {
    let experiment = plan.experiment;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (index, (task, entry)) in experiment.tasks.iter().zip(&plan.entries).enumerate() {
        if !task.kind.reports() {
            continue;
        }
        match &entry.status {
            Status::Cached(_) => {
                let path = store.artifact_dir(&entry.key).join("metrics.json");
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
                let metrics: Metrics = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not valid metrics", path.display()))?;
                rows.push(Row {
                    experiment: experiment.name.clone(),
                    task: task.name.clone(),
                    group: task.group.clone(),
                    kind: task.kind.kind().to_string(),
                    sweep: task.labels.clone(),
                    key: entry.key.clone(),
                    params: flat_params(plan, index),
                    metrics,
                });
            }
            Status::Run(_) => missing.push(task.name.clone()),
        }
    }
    // Sweep members together, groups in the order they first appear.
    let first_seen = |group: &str| rows.iter().position(|r: &Row| r.group == group).unwrap_or(usize::MAX);
    let mut order: Vec<(usize, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (first_seen(&r.group), i))
        .collect();
    order.sort();
    let rows = order.into_iter().map(|(_, i)| rows[i].clone()).collect();
    Ok(Report {
        experiment: experiment.name.clone(),
        description: experiment.description.clone(),
        rows,
        missing,
        individual_runs: false,
        compared: Vec::new(),
        overrides: experiment.overrides.clone(),
    })
}

/// A task's parameters, the hub commits its files came from (`model_revision`), and, under
/// `<slot>.`, the same of everything upstream of it.
fn flat_params(plan: &Plan, index: usize) -> BTreeMap<String, serde_json::Value> {
    let mut flat = BTreeMap::new();
    let task = &plan.experiment.tasks[index];
    if let Some(object) = task.params.as_object() {
        flat.extend(object.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (part, commit) in &plan.entries[index].parts.revisions {
        flat.insert(format!("{part}_revision"), serde_json::Value::String(commit.clone()));
    }
    for (slot, &upstream) in &task.inputs {
        for (key, value) in flat_params(plan, upstream) {
            flat.insert(format!("{slot}.{key}"), value);
        }
    }
    flat
}

/// Writes `<dir>/<stem>.{md,csv,json,html}` and `<dir>/<stem>/<plot>.svg` atomically,
/// removing SVGs of plots that no longer apply; returns the paths.
pub fn write_files(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let stem = report.stem();
    let plots = plots::draw(&report.entries())?;
    let outputs = [
        ("md", markdown(report)),
        ("csv", csv(report)?),
        ("json", json(report)?),
        ("html", html::page(report, &plots)),
    ];
    let mut paths = Vec::new();
    for (extension, content) in outputs {
        let path = dir.join(format!("{stem}.{extension}"));
        write_atomic(&path, content.as_bytes())?;
        paths.push(path);
    }
    let plot_dir = dir.join(&stem);
    if plot_dir.is_dir() {
        for stale in std::fs::read_dir(&plot_dir)? {
            let path = stale?.path();
            let current = plots.iter().any(|p| path.file_stem().is_some_and(|s| s == p.name));
            if path.extension().is_some_and(|e| e == "svg") && !current {
                std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    }
    for plot in &plots {
        let path = plot_dir.join(format!("{}.svg", plot.name));
        write_atomic(&path, plot.svg.as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}
