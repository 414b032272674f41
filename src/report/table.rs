//! The comparison table as text: one [`Layout`] (columns and formatted cells) shared by the
//! terminal (comfy-table), Markdown and HTML; CSV and JSON carry the unformatted numbers.

use std::fmt::Write as _;

use anyhow::Result;
use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use serde_json::json;

use super::compare::{self, ParamSplit};
use super::{Entry, Report, Stat};
use crate::util::human_duration;

pub struct Column {
    pub title: String,
    /// Right-aligned.
    pub numeric: bool,
}

/// The table every human-readable renderer shows.
pub struct Layout {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<String>>,
    /// Comparisons: parameters equal in every row, shown once instead of as columns.
    pub shared: Vec<(String, String)>,
}

const DASH: &str = "–";

pub fn layout(report: &Report) -> Layout {
    layout_of(report, &report.entries())
}

pub fn layout_of(report: &Report, entries: &[Entry]) -> Layout {
    let comparing = !report.compared.is_empty();
    let split = if comparing {
        compare::split_params(entries)
    } else {
        ParamSplit::default()
    };
    let with_n = entries.iter().any(|e| e.n > 1);
    // Reports of caches built before memory was measured keep their columns.
    let with_memory = entries.iter().any(|e| e.peak_rss_bytes.is_some());
    let with_best_epoch = entries.iter().any(|e| e.best_epoch.is_some());
    let with_base_bytes = entries.iter().any(|e| e.base_bytes.is_some());
    let mut columns = Vec::new();
    let mut column = |title: &str, numeric: bool| {
        columns.push(Column {
            title: title.to_string(),
            numeric,
        })
    };
    if comparing {
        column("experiment", false);
    }
    column("task", false);
    column("method", false);
    for key in &split.varying {
        column(key, false);
    }
    for title in ["trainable params", "accuracy", "F1", "train time", "eval time"] {
        column(title, true);
    }
    if with_memory {
        column("peak RSS", true);
    }
    if with_best_epoch {
        column("best epoch", true);
    }
    if with_base_bytes {
        column("frozen base (stored / float32)", true);
    }
    if with_n {
        column("n", true);
    }
    let number = |s: &Option<Stat>| stat_text(s, |v| format!("{v:.3}"));
    let time = |s: &Option<Stat>| stat_text(s, human_duration);
    let rows = entries
        .iter()
        .map(|e| {
            let mut cells = Vec::new();
            if comparing {
                cells.push(e.experiment.clone());
            }
            cells.push(e.task.clone());
            cells.push(e.method.clone().unwrap_or_else(|| e.kind.clone()));
            for key in &split.varying {
                cells.push(e.params.get(key).map_or_else(|| DASH.to_string(), compare::value_text));
            }
            cells.push(e.trainable_params.map_or_else(|| DASH.to_string(), thousands));
            cells.extend([
                number(&e.accuracy),
                number(&e.f1),
                time(&e.train_time_s),
                time(&e.eval_time_s),
            ]);
            if with_memory {
                cells.push(stat_text(&e.peak_rss_bytes, |v| crate::util::human_bytes(v as u64)));
            }
            if with_best_epoch {
                cells.push(e.best_epoch.clone().unwrap_or_else(|| DASH.to_string()));
            }
            if with_base_bytes {
                cells.push(e.base_bytes.map_or_else(
                    || DASH.to_string(),
                    |b| {
                        format!(
                            "{} / {}",
                            crate::util::human_bytes(b.stored),
                            crate::util::human_bytes(b.float32)
                        )
                    },
                ));
            }
            if with_n {
                cells.push(e.n.to_string());
            }
            cells
        })
        .collect();
    Layout {
        columns,
        rows,
        shared: split.shared,
    }
}

/// `0.897 ± 0.013`; the mean alone for a single run.
fn stat_text(stat: &Option<Stat>, format: impl Fn(f64) -> String) -> String {
    match stat {
        None => DASH.to_string(),
        Some(Stat {
            mean, std: Some(std), ..
        }) => format!("{} ± {}", format(*mean), format(*std)),
        Some(Stat { mean, .. }) => format(*mean),
    }
}

/// `66955010` → `66,955,010`.
pub fn thousands(value: u64) -> String {
    crate::model::params::thousands(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The lab's question, answered per rank curve: a heading per head-tuning level and one line
/// per curve. Empty when the report has no rank sweep or no head-tuning.
pub fn rank_question(report: &Report) -> Vec<(String, Vec<String>)> {
    let answers = super::analysis::lowest_ranks_beating_head_tuning(&report.entries());
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for answer in answers {
        let heading = format!(
            "Lowest rank from which every swept rank beats {}, accuracy {:.3}",
            answer.reference, answer.level
        );
        let line = match (answer.rank, answer.accuracy) {
            (Some(rank), Some(accuracy)) => format!("{}: rank {rank} ({accuracy:.3} there)", answer.curve),
            _ => format!("{}: none (not even its highest rank)", answer.curve),
        };
        match out.iter_mut().find(|(h, _)| *h == heading) {
            Some((_, lines)) => lines.push(line),
            None => out.push((heading, vec![line])),
        }
    }
    out
}

/// `key=value, …` for the parameters a comparison shares.
pub fn shared_text(shared: &[(String, String)]) -> String {
    shared
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The terminal table.
pub fn table(report: &Report) -> Table {
    let layout = layout(report);
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(layout.columns.iter().map(|c| c.title.as_str()));
    for row in layout.rows {
        table.add_row(row);
    }
    for (index, column) in layout.columns.iter().enumerate() {
        if let (true, Some(target)) = (column.numeric, table.column_mut(index)) {
            target.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

pub fn markdown(report: &Report) -> String {
    let layout = layout(report);
    let mut out = format!("# {}\n\n", report.experiment);
    if let Some(description) = &report.description {
        let _ = write!(out, "{description}\n\n");
    }
    if let Some(line) = report.overrides_line() {
        let _ = write!(out, "{line}\n\n");
    }
    let escape = |cell: &str| cell.replace('|', "\\|");
    let titles: Vec<String> = layout.columns.iter().map(|c| escape(&c.title)).collect();
    let _ = writeln!(out, "| {} |", titles.join(" | "));
    let rule: String = layout
        .columns
        .iter()
        .map(|c| if c.numeric { "---:|" } else { "---|" })
        .collect();
    let _ = writeln!(out, "|{rule}");
    for row in &layout.rows {
        let escaped: Vec<String> = row.iter().map(|c| escape(c)).collect();
        let _ = writeln!(out, "| {} |", escaped.join(" | "));
    }
    for (heading, lines) in rank_question(report) {
        let _ = write!(out, "\n{}:\n\n", escape(&heading));
        for line in lines {
            let _ = writeln!(out, "- {}", escape(&line));
        }
    }
    if !layout.shared.is_empty() {
        let _ = write!(
            out,
            "\nShared by every row: {}.\n",
            escape(&shared_text(&layout.shared))
        );
    }
    if !report.missing.is_empty() {
        let _ = write!(out, "\nNot in the cache yet: {}.\n", report.missing.join(", "));
    }
    out
}

/// One line per entry with unformatted numbers; `_std` columns are empty for single runs.
pub fn csv(report: &Report) -> Result<String> {
    let entries = report.entries();
    let comparing = !report.compared.is_empty();
    let varying = if comparing {
        compare::split_params(&entries).varying
    } else {
        Vec::new()
    };
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = Vec::new();
    if comparing {
        header.push("experiment".into());
    }
    header.extend(["task", "group", "kind", "method"].map(String::from));
    header.extend(varying.iter().cloned());
    header.extend(
        [
            "trainable_params",
            "accuracy",
            "accuracy_std",
            "f1",
            "f1_std",
            "train_time_s",
            "train_time_s_std",
            "eval_time_s",
            "eval_time_s_std",
            "peak_rss_bytes",
            "peak_rss_bytes_std",
            "best_epoch",
            "n",
            "keys",
        ]
        .map(String::from),
    );
    writer.write_record(&header)?;
    for e in &entries {
        let mut record: Vec<String> = Vec::new();
        if comparing {
            record.push(e.experiment.clone());
        }
        record.extend([
            e.task.clone(),
            e.group.clone(),
            e.kind.clone(),
            e.method.clone().unwrap_or_default(),
        ]);
        record.extend(
            varying
                .iter()
                .map(|k| e.params.get(k).map(compare::value_text).unwrap_or_default()),
        );
        record.push(e.trainable_params.map(|p| p.to_string()).unwrap_or_default());
        for stat in [&e.accuracy, &e.f1, &e.train_time_s, &e.eval_time_s, &e.peak_rss_bytes] {
            record.push(stat.map(|s| s.mean.to_string()).unwrap_or_default());
            record.push(stat.and_then(|s| s.std).map(|s| s.to_string()).unwrap_or_default());
        }
        record.push(e.best_epoch.clone().unwrap_or_default());
        record.push(e.n.to_string());
        record.push(e.keys.join(" "));
        writer.write_record(&record)?;
    }
    Ok(String::from_utf8(writer.into_inner()?)?)
}

/// The report as JSON: the entries the table shows, and every run with all its metrics.
pub fn json(report: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(&json_value(report))? + "\n")
}

pub fn json_value(report: &Report) -> serde_json::Value {
    let entries = report.entries();
    let mut value = json!({
        "experiment": report.experiment,
        "description": report.description,
        "overrides": report.overrides,
        "individual_runs": report.individual_runs,
        "entries": entries,
        "rows": report.rows,
        "missing": report.missing,
        "lowest_ranks_beating_head_tuning": super::analysis::lowest_ranks_beating_head_tuning(&entries),
    });
    if !report.compared.is_empty() {
        let shared = compare::split_params(&entries).shared;
        value["compared"] = json!(report.compared);
        value["shared_params"] = json!(shared.into_iter().collect::<std::collections::BTreeMap<_, _>>());
    }
    value
}
