//! Comparison reports, read from the cache only: a terminal table (comfy-table) and
//! `reports/<experiment>.{md,csv,json}`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use serde::Serialize;

use crate::plan::{Plan, Status};
use crate::store::Store;
use crate::tasks::Metrics;
use crate::util::{human_duration, write_atomic};

/// One row of the comparison: a task whose kind reports metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub task: String,
    /// The declared task name: sweep members share it and are listed together.
    pub group: String,
    pub kind: String,
    /// Sweep coordinates of the member, e.g. `{"alpha": "0.5"}`.
    pub sweep: Vec<(String, String)>,
    pub key: String,
    pub metrics: Metrics,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub experiment: String,
    pub description: Option<String>,
    pub rows: Vec<Row>,
    /// Reporting tasks with no artifact for their current key.
    pub missing: Vec<String>,
}

/// Gathers the metrics of every reporting task of a plan from the cache. Runs nothing.
pub fn collect(plan: &Plan, store: &Store) -> Result<Report> {
    let experiment = plan.experiment;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (task, entry) in experiment.tasks.iter().zip(&plan.entries) {
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
                    task: task.name.clone(),
                    group: task.group.clone(),
                    kind: task.kind.kind().to_string(),
                    sweep: task.labels.clone(),
                    key: entry.key.clone(),
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
    })
}

pub const COLUMNS: [&str; 7] = [
    "task",
    "method",
    "trainable params",
    "accuracy",
    "F1",
    "train time",
    "eval time",
];

fn cells(row: &Row) -> [String; 7] {
    let m = &row.metrics;
    let number = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    let time = |v: Option<f64>| v.map_or_else(|| "–".to_string(), human_duration);
    [
        row.task.clone(),
        m.method.clone().unwrap_or_else(|| row.kind.clone()),
        m.trainable_params.map_or_else(|| "–".to_string(), thousands),
        number(m.accuracy),
        number(m.f1),
        time(m.train_time_s),
        time(m.eval_time_s),
    ]
}

/// `66955010` → `66,955,010`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The terminal table.
pub fn table(report: &Report) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(COLUMNS);
    for row in &report.rows {
        table.add_row(cells(row));
    }
    for column in 2..COLUMNS.len() {
        if let Some(column) = table.column_mut(column) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

pub fn markdown(report: &Report) -> String {
    let mut out = format!("# {}\n\n", report.experiment);
    if let Some(description) = &report.description {
        let _ = write!(out, "{description}\n\n");
    }
    let _ = writeln!(out, "| {} |", COLUMNS.join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        ["---|", "---|", "---:|", "---:|", "---:|", "---:|", "---:|"].concat()
    );
    for row in &report.rows {
        let escaped: Vec<String> = cells(row).iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", escaped.join(" | "));
    }
    if !report.missing.is_empty() {
        let _ = write!(out, "\nNot in the cache yet: {}.\n", report.missing.join(", "));
    }
    out
}

pub fn csv(report: &Report) -> Result<String> {
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    writer.write_record([
        "task",
        "group",
        "kind",
        "method",
        "trainable_params",
        "accuracy",
        "f1",
        "train_time_s",
        "eval_time_s",
        "key",
    ])?;
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for row in &report.rows {
        let m = &row.metrics;
        writer.write_record([
            row.task.clone(),
            row.group.clone(),
            row.kind.clone(),
            m.method.clone().unwrap_or_default(),
            m.trainable_params.map(|p| p.to_string()).unwrap_or_default(),
            opt(m.accuracy),
            opt(m.f1),
            opt(m.train_time_s),
            opt(m.eval_time_s),
            row.key.clone(),
        ])?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

pub fn json(report: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

/// Writes `<dir>/<experiment>.{md,csv,json}` atomically; returns the paths.
pub fn write_files(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    let stem = report.experiment.replace(['/', '\\'], "_");
    let outputs = [("md", markdown(report)), ("csv", csv(report)?), ("json", json(report)?)];
    let mut paths = Vec::new();
    for (extension, content) in outputs {
        let path = dir.join(format!("{stem}.{extension}"));
        write_atomic(&path, content.as_bytes())?;
        paths.push(path);
    }
    Ok(paths)
}
