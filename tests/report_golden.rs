//! Report rendering pinned by golden files. Regenerate deliberately with
//! `UPDATE_GOLDEN=1 cargo test --test report_golden` and review the diff.

use std::collections::BTreeMap;

mod support;

use orchestrate::report::{self, Report, Row};
use orchestrate::tasks::Metrics;
use support::golden::check;

fn row(task: &str, group: &str, kind: &str, sweep: &[(&str, &str)], metrics: Metrics) -> Row {
    Row {
        experiment: "golden".into(),
        task: task.into(),
        group: group.into(),
        kind: kind.into(),
        sweep: sweep.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        key: format!("{:0>64}", task.len()),
        params: BTreeMap::new(),
        metrics,
    }
}

fn fixture() -> Report {
    let classifier = |method: &str, params: u64, accuracy: f64, f1: f64, train: f64, eval: f64| Metrics {
        method: Some(method.into()),
        trainable_params: Some(params),
        accuracy: Some(accuracy),
        f1: Some(f1),
        train_time_s: Some(train),
        eval_time_s: Some(eval),
        peak_rss_bytes: Some((params + 300_000) * 1024),
        extra: BTreeMap::new(),
    };
    Report {
        experiment: "golden".into(),
        description: Some("Fixture | with a pipe".into()),
        rows: vec![
            row(
                "logreg",
                "logreg",
                "logreg",
                &[],
                classifier("TF-IDF + logistic regression", 5001, 0.838, 0.8421, 2.004, 0.0042),
            ),
            row(
                "nb[alpha=0.5]",
                "nb",
                "naive_bayes",
                &[("alpha", "0.5")],
                classifier("TF-IDF + multinomial naive Bayes", 10002, 0.83, 0.8301, 0.07, 0.0031),
            ),
            row(
                "nb[alpha=1.0]",
                "nb",
                "naive_bayes",
                &[("alpha", "1.0")],
                classifier("TF-IDF + multinomial naive Bayes", 10002, 0.836, 0.835, 75.5, 0.0030),
            ),
            row("bare", "bare", "logreg", &[], Metrics::default()),
        ],
        missing: vec!["finetune".into()],
        individual_runs: false,
        compared: Vec::new(),
        overrides: Vec::new(),
    }
}

#[test]
fn markdown() {
    check("report.md", &report::markdown(&fixture()));
}

#[test]
fn csv() {
    check("report.csv", &report::csv(&fixture()).unwrap());
}

#[test]
fn json() {
    check("report.json", &report::json(&fixture()).unwrap());
}

#[test]
fn terminal_table() {
    let mut table = report::table(&fixture());
    table.force_no_tty().set_width(140);
    check("report.txt", &format!("{table}\n"));
}

#[test]
fn write_files_writes_tables_html_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let paths = report::write_files(&fixture(), dir.path()).unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "golden.md",
            "golden.csv",
            "golden.json",
            "golden.html",
            "accuracy-vs-params.svg",
            "time-per-task.svg"
        ]
    );
    assert!(paths[4].ends_with("golden/accuracy-vs-params.svg"));
    assert_eq!(
        std::fs::read_to_string(&paths[0]).unwrap(),
        report::markdown(&fixture())
    );
}
