//! The HTML report and its SVG plots on a synthetic lab: a LoRA rank sweep over three
//! seeds, head-tuning and full fine-tuning with per-epoch histories. The structure (table
//! cells, plots, the elements and texts of each SVG) is pinned by a golden outline; the
//! full page is written to `target/tmp/report-fixtures/` for tests/browser/check.sh.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test --test report_html` and review the diff.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

mod support;

use orchestrate::report::{self, analysis, plots, Report, Row};
use orchestrate::tasks::Metrics;
use regex::Regex;
use serde_json::json;
use support::golden::check;

fn run(group: &str, kind: &str, sweep: &[(&str, &str)], metrics: Metrics) -> Row {
    let sweep: Vec<(String, String)> = sweep.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut params: BTreeMap<String, serde_json::Value> = sweep.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    params.insert("epochs".into(), json!(3));
    Row {
        experiment: "synthetic".into(),
        task: orchestrate::spec::member_name(group, &sweep),
        group: group.into(),
        kind: kind.into(),
        key: format!("{:0>64}", sweep.len()),
        sweep,
        params,
        metrics,
    }
}

/// A training history whose losses fall and accuracies rise, shifted by `offset`.
fn history(offset: f64) -> serde_json::Value {
    let epochs: Vec<_> = (1..=3)
        .map(|epoch| {
            let e = f64::from(epoch);
            json!({"epoch": epoch, "train_loss": 0.7 / e + offset, "eval_loss": 0.5 / e + offset,
                   "eval_accuracy": 0.8 + 0.03 * e - offset, "eval_f1": 0.79 + 0.03 * e - offset})
        })
        .collect();
    json!(epochs)
}

fn metrics(method: &str, params: u64, accuracy: f64, train: f64, epochs: Option<f64>) -> Metrics {
    let mut extra = BTreeMap::new();
    if let Some(offset) = epochs {
        extra.insert("epochs".to_string(), history(offset));
    }
    Metrics {
        method: Some(method.into()),
        trainable_params: Some(params),
        accuracy: Some(accuracy),
        f1: Some(accuracy - 0.01),
        train_time_s: Some(train),
        eval_time_s: Some(train / 20.0),
        peak_rss_bytes: Some(params * 16 + (200 << 20)),
        extra,
    }
}

pub fn synthetic() -> Report {
    let mut rows = Vec::new();
    for (seed, jitter) in [("42", -0.01), ("43", 0.0), ("44", 0.012)] {
        rows.push(run(
            "finetune",
            "finetune",
            &[("seed", seed)],
            metrics(
                "full fine-tuning",
                66_955_010,
                0.9 + jitter,
                600.0 + 100.0 * jitter,
                Some(jitter),
            ),
        ));
    }
    rows.push(run(
        "headtune",
        "headtune",
        &[],
        metrics("head-tuning", 592_130, 0.81, 120.0, Some(0.1)),
    ));
    for rank in [1u64, 4, 16, 64] {
        for (seed, jitter) in [("42", -0.006), ("43", 0.004), ("44", 0.002)] {
            let accuracy = 0.82 + 0.017 * (rank as f64).log2() + jitter;
            rows.push(run(
                "lora",
                "lora",
                &[("r", &rank.to_string()), ("seed", seed)],
                metrics("LoRA", 592_130 + rank * 18_432, accuracy, 300.0 + rank as f64, None),
            ));
        }
    }
    rows.push(run(
        "logreg",
        "logreg",
        &[],
        metrics("TF-IDF + logistic regression", 5001, 0.838, 2.0, None),
    ));
    Report {
        experiment: "synthetic".into(),
        description: Some("Synthetic lab: LoRA ranks × 3 seeds, head-tuning, full fine-tuning".into()),
        rows,
        missing: Vec::new(),
        individual_runs: false,
        compared: Vec::new(),
        overrides: Vec::new(),
    }
}

/// Table cells, then per plot: its id, element counts and texts; no coordinates.
fn outline(page: &str) -> String {
    let cell = Regex::new(r"<t([hd])[^>]*>([^<]*)</t[hd]>").unwrap();
    let row = Regex::new(r"(?s)<tr>(.*?)</tr>").unwrap();
    let figure = Regex::new(r#"(?s)<figure id="([^"]+)">(.*?)</figure>"#).unwrap();
    let text = Regex::new(r"<text[^>]*>([^<]*)</text>").unwrap();
    let mut out = String::new();
    for tr in row.captures_iter(page) {
        let cells: Vec<String> = cell.captures_iter(&tr[1]).map(|c| c[2].to_string()).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    for fig in figure.captures_iter(page) {
        let body = &fig[2];
        let _ = writeln!(out, "\n{}", &fig[1]);
        for element in ["<svg", "<path", "<polyline", "<circle", "<rect", "<line", "<text"] {
            let _ = writeln!(out, "  {element}>: {}", body.matches(element).count());
        }
        let texts: Vec<&str> = text
            .captures_iter(body)
            .map(|c| c.get(1).unwrap().as_str().trim())
            .collect();
        let _ = writeln!(out, "  texts: {}", texts.join(" · "));
    }
    out
}

#[test]
fn html_outline() {
    let report = synthetic();
    let plots = plots::draw(&report.entries()).unwrap();
    check("report.html.outline", &outline(&report::html::page(&report, &plots)));
}

#[test]
fn every_plot_is_drawn_with_error_bars_and_written_standalone() {
    let report = synthetic();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-fixtures");
    let paths = report::write_files(&report, &dir).unwrap();
    let svgs: Vec<String> = paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "svg"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        svgs,
        [
            "accuracy-vs-rank",
            "accuracy-vs-params",
            "training-loss",
            "eval-accuracy-per-epoch",
            "time-per-task"
        ]
    );
    let page = std::fs::read_to_string(dir.join("synthetic.html")).unwrap();
    assert!(!page.contains("<script"), "no script in the page");
    assert!(
        !page.contains("http://") || !page.contains("src=\"http"),
        "nothing fetched"
    );
    assert_eq!(page.matches("<svg").count(), 5);
    assert!(page.contains("0.901 ± 0.011"), "full fine-tuning over three seeds");
}

#[test]
fn individual_runs_show_every_seed_and_no_std() {
    let mut report = synthetic();
    report.individual_runs = true;
    let markdown = report::markdown(&report);
    assert!(markdown.contains("finetune[seed=43]"));
    assert!(!markdown.contains('±'));
    report.individual_runs = false;
    let markdown = report::markdown(&report);
    assert!(markdown.contains("| lora[r=16] | LoRA |"));
    assert!(markdown.contains("| n |"));
}

#[test]
fn a_comparison_shows_only_differing_parameters_as_columns() {
    let a = synthetic();
    let mut b = synthetic();
    b.experiment = "other".into();
    for row in &mut b.rows {
        row.experiment = "other".into();
        row.params.insert("epochs".into(), json!(5));
    }
    let merged = report::compare::merge(vec![a, b]);
    assert_eq!(merged.experiment, "compare-synthetic-other");
    let layout = report::table::layout(&merged);
    let titles: Vec<&str> = layout.columns.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(&titles[..4], ["experiment", "task", "method", "epochs"]);
    // `r` takes several values, but only within lora: still a column; the seed is folded.
    assert!(titles.contains(&"r") && !titles.contains(&"seed"), "{titles:?}");
    assert!(report::csv(&merged)
        .unwrap()
        .starts_with("experiment,task,group,kind,method,epochs,r,"));
}

/// The one answer for `synthetic`'s single LoRA curve, and the markdown that states it.
fn rank_answer(report: &Report) -> (Option<f64>, String) {
    let answers = analysis::lowest_ranks_beating_head_tuning(&report.entries());
    assert_eq!(answers.len(), 1, "one curve, one head-tuning level: {answers:?}");
    (answers[0].rank, report::markdown(report))
}

/// `synthetic` with head-tuning at `level` and LoRA r=1 at `r1` (when given).
fn rank_question_case(level: f64, r1: Option<f64>) -> Report {
    let mut report = synthetic();
    for row in &mut report.rows {
        if row.kind == "headtune" {
            row.metrics.accuracy = Some(level);
        }
        if let (Some(accuracy), true) = (r1, row.group == "lora" && row.sweep[0].1 == "1") {
            row.metrics.accuracy = Some(accuracy);
        }
    }
    report
}

#[test]
fn the_rank_question_is_answered_per_curve() {
    // LoRA's mean accuracy in `synthetic`: 0.820, 0.854, 0.888, 0.922 at r = 1, 4, 16, 64.
    let (rank, markdown) = rank_answer(&rank_question_case(0.81, None));
    assert_eq!(rank, Some(1.0));
    assert!(
        markdown
            .contains("beats head-tuning (headtune), accuracy 0.810:\n\n- synthetic · LoRA: rank 1 (0.820 there)\n"),
        "{markdown}"
    );
    assert_eq!(rank_answer(&rank_question_case(0.86, None)).0, Some(16.0));
    // A lucky low rank does not count: every rank from the answer upwards must beat the level.
    assert_eq!(rank_answer(&rank_question_case(0.86, Some(0.95))).0, Some(16.0));
    let (rank, markdown) = rank_answer(&rank_question_case(0.95, None));
    assert_eq!(rank, None);
    assert!(
        markdown.contains("LoRA: none (not even its highest rank)"),
        "{markdown}"
    );
}
