//! Seeds as a sweep dimension: rows that differ only by a seed label become one entry
//! with mean ± sample standard deviation and n. Every renderer reads entries, never raw
//! rows, so the table, the CSV, the JSON and the plots agree.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Row;
use crate::spec::member_name;

/// A sweep label that only changes the randomness: `seed`, or anything ending in `_seed`
/// (the dataset's `sample_seed`).
pub fn is_seed_label(name: &str) -> bool {
    name == "seed" || name.ends_with("_seed")
}

/// Mean, sample standard deviation (n − 1; none for a single value) and count.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    pub n: usize,
}

impl Stat {
    /// None when there are no values.
    pub fn of(values: &[f64]) -> Option<Stat> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (squares / (n - 1) as f64).sqrt()
        });
        Some(Stat { mean, std, n })
    }

    /// `(mean − std, mean, mean + std)`; a zero-width bar without a std.
    pub fn band(&self) -> (f64, f64, f64) {
        let std = self.std.unwrap_or(0.0);
        (self.mean - std, self.mean, self.mean + std)
    }
}

/// One epoch as training tasks record it in `metrics.extra["epochs"]`.
#[derive(Debug, Clone, Default, Deserialize)]
struct EpochRecord {
    epoch: u32,
    train_loss: Option<f64>,
    eval_loss: Option<f64>,
    eval_accuracy: Option<f64>,
    eval_f1: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EpochStat {
    pub epoch: u32,
    pub train_loss: Option<Stat>,
    pub eval_loss: Option<Stat>,
    pub eval_accuracy: Option<Stat>,
    pub eval_f1: Option<Stat>,
}

/// What the report shows per line: one run, or the runs of one configuration over seeds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub experiment: String,
    /// The member name without seed coordinates (`lora[r=8]`), or the run's own name.
    pub task: String,
    pub group: String,
    pub kind: String,
    pub method: Option<String>,
    /// Sweep coordinates that are the same for every run of the entry.
    pub labels: Vec<(String, String)>,
    /// Number of runs.
    pub n: usize,
    /// Seed coordinates of the runs, e.g. `["seed=42", "seed=43"]`.
    pub seeds: Vec<String>,
    pub keys: Vec<String>,
    /// Parameters equal across the runs (the seeds drop out).
    pub params: BTreeMap<String, serde_json::Value>,
    pub trainable_params: Option<u64>,
    pub accuracy: Option<Stat>,
    pub f1: Option<Stat>,
    pub train_time_s: Option<Stat>,
    pub eval_time_s: Option<Stat>,
    pub peak_rss_bytes: Option<Stat>,
    /// The epoch whose weights were published (`load_best_model_at_end`), per run:
    /// `2` or, over seeds, `2/3/2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<String>,
    /// The frozen base's bytes as stored, beside float32's, for a quantized base (`qlora`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_bytes: Option<BaseBytes>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub epochs: Vec<EpochStat>,
}

/// `base_bytes` and `base_bytes_fp32` of a task's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BaseBytes {
    pub stored: u64,
    pub float32: u64,
}

impl Entry {
    /// The value of a sweep label, e.g. the rank `r`.
    pub fn label(&self, names: &[&str]) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    }
}

/// What makes rows one entry: experiment, task group and sweep labels (seeds aside).
type EntryKey = (String, String, Vec<(String, String)>);

/// Rows → entries, in the order their configurations first appear. With `individual_runs`
/// every row is its own entry (`--runs`).
pub fn aggregate(rows: &[Row], individual_runs: bool) -> Vec<Entry> {
    let mut order: Vec<EntryKey> = Vec::new();
    let mut members: Vec<Vec<&Row>> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let labels: Vec<(String, String)> = if individual_runs {
            // A key no other row has: the row's position.
            vec![("#".into(), index.to_string())]
        } else {
            row.sweep.iter().filter(|(k, _)| !is_seed_label(k)).cloned().collect()
        };
        let identity = (row.experiment.clone(), row.group.clone(), labels);
        match order.iter().position(|o| *o == identity) {
            Some(i) => members[i].push(row),
            None => {
                order.push(identity);
                members.push(vec![row]);
            }
        }
    }
    members.iter().map(|runs| entry(runs, individual_runs)).collect()
}

fn entry(runs: &[&Row], individual_runs: bool) -> Entry {
    let first = runs[0];
    let (labels, seeds): (Vec<_>, Vec<_>) = first.sweep.iter().cloned().partition(|(k, _)| !is_seed_label(k));
    let (labels, task) = if individual_runs {
        (first.sweep.clone(), first.task.clone())
    } else {
        let task = member_name(&first.group, &labels);
        (labels, task)
    };
    let seeds = if individual_runs || seeds.is_empty() {
        Vec::new()
    } else {
        runs.iter()
            .map(|r| {
                let seed: Vec<String> = r
                    .sweep
                    .iter()
                    .filter(|(k, _)| is_seed_label(k))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                seed.join(",")
            })
            .collect()
    };
    let stat = |metric: fn(&Row) -> Option<f64>| Stat::of(&runs.iter().filter_map(|r| metric(r)).collect::<Vec<_>>());
    let mut params = first.params.clone();
    params.retain(|key, value| runs.iter().all(|r| r.params.get(key) == Some(value)));
    Entry {
        experiment: first.experiment.clone(),
        task,
        group: first.group.clone(),
        kind: first.kind.clone(),
        method: runs.iter().find_map(|r| r.metrics.method.clone()),
        labels,
        n: runs.len(),
        seeds,
        keys: runs.iter().map(|r| r.key.clone()).collect(),
        params,
        trainable_params: runs.iter().find_map(|r| r.metrics.trainable_params),
        accuracy: stat(|r| r.metrics.accuracy),
        f1: stat(|r| r.metrics.f1),
        train_time_s: stat(|r| r.metrics.train_time_s),
        eval_time_s: stat(|r| r.metrics.eval_time_s),
        peak_rss_bytes: stat(|r| r.metrics.peak_rss_bytes.map(|b| b as f64)),
        best_epoch: best_epochs(runs),
        base_bytes: runs.iter().find_map(|r| {
            let bytes = |name: &str| r.metrics.extra.get(name).and_then(|v| v.as_u64());
            Some(BaseBytes {
                stored: bytes("base_bytes")?,
                float32: bytes("base_bytes_fp32")?,
            })
        }),
        epochs: epochs(runs),
    }
}

fn best_epochs(runs: &[&Row]) -> Option<String> {
    let epochs: Vec<String> = runs
        .iter()
        .filter_map(|r| r.metrics.extra.get("best_epoch").map(|e| e.to_string()))
        .collect();
    (!epochs.is_empty()).then(|| epochs.join("/"))
}

/// Per epoch number, the statistics over the runs that recorded it.
fn epochs(runs: &[&Row]) -> Vec<EpochStat> {
    let mut by_epoch: BTreeMap<u32, Vec<EpochRecord>> = BTreeMap::new();
    for run in runs {
        let Some(value) = run.metrics.extra.get("epochs") else {
            continue;
        };
        // A malformed history is left out of the plots rather than failing the report.
        let records: Vec<EpochRecord> = serde_json::from_value(value.clone()).unwrap_or_default();
        for record in records {
            by_epoch.entry(record.epoch).or_default().push(record);
        }
    }
    by_epoch
        .into_iter()
        .map(|(epoch, records)| {
            let stat = |field: fn(&EpochRecord) -> Option<f64>| {
                Stat::of(&records.iter().filter_map(field).collect::<Vec<_>>())
            };
            EpochStat {
                epoch,
                train_loss: stat(|r| r.train_loss),
                eval_loss: stat(|r| r.eval_loss),
                eval_accuracy: stat(|r| r.eval_accuracy),
                eval_f1: stat(|r| r.eval_f1),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Metrics;

    fn run(group: &str, sweep: &[(&str, &str)], accuracy: f64) -> Row {
        let sweep: Vec<(String, String)> = sweep.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut params = BTreeMap::new();
        for (k, v) in &sweep {
            params.insert(k.clone(), serde_json::json!(v));
        }
        params.insert("epochs".into(), serde_json::json!(3));
        Row {
            experiment: "e".into(),
            task: member_name(group, &sweep),
            group: group.into(),
            kind: "lora".into(),
            sweep,
            key: format!("key-{accuracy}"),
            params,
            metrics: Metrics {
                accuracy: Some(accuracy),
                trainable_params: Some(1000),
                ..Metrics::default()
            },
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn sample_standard_deviation() {
        let stat = Stat::of(&[0.886, 0.9, 0.912]).unwrap();
        assert!(close(stat.mean, 0.8993333333333333));
        // Sample (n − 1) std: sqrt(((−0.013333)² + 0.000667² + 0.012667²) / 2).
        assert!(close(stat.std.unwrap(), 0.013012814197295393), "{stat:?}");
        assert_eq!(stat.n, 3);
        assert_eq!(Stat::of(&[2.0, 4.0]).unwrap().std, Some(2f64.sqrt()));
    }

    #[test]
    fn a_single_value_has_no_std_and_no_values_no_stat() {
        assert_eq!(
            Stat::of(&[0.5]),
            Some(Stat {
                mean: 0.5,
                std: None,
                n: 1
            })
        );
        assert_eq!(Stat::of(&[]), None);
    }

    #[test]
    fn runs_differing_only_by_seed_become_one_entry() {
        let rows = [
            run("lora", &[("r", "8"), ("seed", "42")], 0.88),
            run("lora", &[("r", "8"), ("seed", "43")], 0.90),
            run("lora", &[("r", "16"), ("seed", "42")], 0.91),
            run("lora", &[("r", "16"), ("seed", "43")], 0.93),
            run("head", &[], 0.80),
        ];
        let entries = aggregate(&rows, false);
        let names: Vec<&str> = entries.iter().map(|e| e.task.as_str()).collect();
        assert_eq!(names, ["lora[r=8]", "lora[r=16]", "head"]);
        assert_eq!(entries[0].n, 2);
        assert_eq!(entries[0].seeds, ["seed=42", "seed=43"]);
        assert!(close(entries[0].accuracy.unwrap().mean, 0.89));
        assert!(entries[0].accuracy.unwrap().std.is_some());
        assert_eq!(entries[0].label(&["r", "rank"]), Some("8"));
        // The seed parameter differs between runs and drops out; the rest stays.
        assert!(!entries[0].params.contains_key("seed"));
        assert_eq!(entries[0].params["epochs"], 3);
        assert_eq!(entries[2].n, 1);
        assert_eq!(entries[2].accuracy.unwrap().std, None);
        assert!(entries[2].seeds.is_empty());
    }

    #[test]
    fn individual_runs_keep_every_row() {
        let rows = [
            run("lora", &[("seed", "42")], 0.88),
            run("lora", &[("seed", "43")], 0.90),
        ];
        let entries = aggregate(&rows, true);
        let names: Vec<&str> = entries.iter().map(|e| e.task.as_str()).collect();
        assert_eq!(names, ["lora[seed=42]", "lora[seed=43]"]);
        assert!(entries.iter().all(|e| e.n == 1 && e.accuracy.unwrap().std.is_none()));
    }

    #[test]
    fn sample_seed_counts_as_a_seed_and_other_labels_do_not() {
        assert!(is_seed_label("seed") && is_seed_label("sample_seed"));
        assert!(!is_seed_label("seeds") && !is_seed_label("alpha"));
        let rows = [run("nb", &[("alpha", "0.5")], 0.8), run("nb", &[("alpha", "1.0")], 0.9)];
        assert_eq!(aggregate(&rows, false).len(), 2);
    }

    #[test]
    fn epochs_are_averaged_per_epoch_number() {
        let mut rows = [run("ft", &[("seed", "1")], 0.9), run("ft", &[("seed", "2")], 0.92)];
        for (row, loss) in rows.iter_mut().zip([0.5, 0.7]) {
            row.metrics.extra.insert(
                "epochs".into(),
                serde_json::json!([
                    {"epoch": 1, "train_loss": loss, "eval_loss": 0.4, "eval_accuracy": 0.85, "eval_f1": 0.84},
                    {"epoch": 2, "train_loss": loss / 2.0, "eval_loss": 0.3, "eval_accuracy": 0.9, "eval_f1": 0.89}
                ]),
            );
        }
        let entry = &aggregate(&rows, false)[0];
        assert_eq!(entry.epochs.len(), 2);
        let first = entry.epochs[0].train_loss.unwrap();
        assert!(close(first.mean, 0.6) && first.n == 2);
        assert!(close(entry.epochs[1].eval_accuracy.unwrap().mean, 0.9));
    }
}
