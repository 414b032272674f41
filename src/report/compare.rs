//! Several experiments side by side (`report A.toml B.toml --compare`): one report whose
//! rows keep their experiment; parameters that differ become columns, the rest are
//! summarised once.

use std::collections::{BTreeMap, BTreeSet};

use super::{Entry, Report};

/// Parameters of the compared entries: those that take different values, and those that
/// take one value wherever they are set.
#[derive(Debug, Default, PartialEq)]
pub struct ParamSplit {
    pub varying: Vec<String>,
    pub shared: Vec<(String, String)>,
}

/// A key is varying when two entries that have it disagree; a key only some kinds have
/// (`c` for logistic regression) is shared when it has one value, the method column saying
/// which rows it belongs to.
pub fn split_params(entries: &[Entry]) -> ParamSplit {
    let mut values: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for entry in entries {
        for (key, value) in &entry.params {
            values.entry(key).or_default().insert(value_text(value));
        }
    }
    let mut split = ParamSplit::default();
    for (key, distinct) in values {
        match distinct.len() {
            1 => split
                .shared
                .push((key.to_string(), distinct.into_iter().next().unwrap_or_default())),
            _ => split.varying.push(key.to_string()),
        }
    }
    split
}

/// Strings bare, everything else as JSON (`1000`, `[1,2]`, `null`).
pub fn value_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// One report holding every row of `reports`, named `compare-<a>-<b>…`.
pub fn merge(reports: Vec<Report>) -> Report {
    let names: Vec<String> = reports.iter().map(|r| r.experiment.clone()).collect();
    let mut merged = Report {
        experiment: format!("compare-{}", names.join("-")),
        description: Some(format!("{} side by side", names.join(" vs "))),
        rows: Vec::new(),
        missing: Vec::new(),
        individual_runs: reports.iter().any(|r| r.individual_runs),
        compared: names,
        overrides: reports.first().map(|r| r.overrides.clone()).unwrap_or_default(),
    };
    for report in reports {
        merged
            .missing
            .extend(report.missing.iter().map(|m| format!("{}: {m}", report.experiment)));
        merged.rows.extend(report.rows);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(params: serde_json::Value) -> Entry {
        let params = params
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Entry {
            experiment: "e".into(),
            task: "t".into(),
            group: "t".into(),
            kind: "k".into(),
            method: None,
            labels: Vec::new(),
            n: 1,
            seeds: Vec::new(),
            keys: Vec::new(),
            params,
            trainable_params: None,
            accuracy: None,
            f1: None,
            train_time_s: None,
            eval_time_s: None,
            peak_rss_bytes: None,
            base_bytes: None,
            best_epoch: None,
            epochs: Vec::new(),
        }
    }

    #[test]
    fn differing_parameters_become_columns_and_the_rest_is_shared() {
        let entries = [
            entry(json!({"c": 1.0, "features.max_features": 1000, "features.data.train": "train.csv"})),
            entry(json!({"alpha": 0.5, "features.max_features": 5000, "features.data.train": "train.csv"})),
            entry(json!({"alpha": 1.0, "features.max_features": 5000, "features.data.train": "train.csv"})),
        ];
        let split = split_params(&entries);
        assert_eq!(split.varying, ["alpha", "features.max_features"]);
        assert_eq!(
            split.shared,
            [
                ("c".to_string(), "1.0".to_string()),
                ("features.data.train".into(), "train.csv".into())
            ]
        );
    }
}
