//! How long the tasks of a plan will take, from a cost model fitted to the cache's own
//! finished tasks: nothing is assumed about a machine that was not measured on it.
//!
//! Each task (built or planned) is described from its key parts alone, followed through its
//! inputs: its kind, the device and precision it runs with, its inputs' kinds (a head on
//! cached features is not a head on the encoder), the files it reads (the model,
//! the dataset), and its *work*: the product of its kind's cost factors
//! (`Task::cost_factors`: epochs × max_len × train_size for a training, max_len × eval_size
//! for an evaluation), each present only where a parameter of the task or of an upstream
//! task sets it. A planned task is
//! estimated from the finished tasks of the same kind, device, precision and inputs, preferring
//! those that read the same files: `duration = a · work^b`, fitted by least squares in log
//! space over them (with `b = 1`, a rate, while they all did the same work). Where no
//! finished task of its kind exists there is no estimate, and the total says how many are
//! missing.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::plan::Plan;
use crate::store::Store;

/// The estimates of a plan's tasks that are not cached.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Estimates {
    /// Parallel to the plan's entries: seconds, for the tasks that will run and have one.
    pub seconds: Vec<Option<f64>>,
    /// What each estimate is based on.
    #[serde(skip)]
    pub basis: Vec<Option<Basis>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Finished tasks of the same kind that read the same model and data.
    SameFiles,
    /// Finished tasks of the same kind on other files, scaled by work.
    SameKind,
}

impl Estimates {
    /// Seconds of the given tasks that have an estimate, and how many have none.
    pub fn total(&self, tasks: impl IntoIterator<Item = usize>) -> (f64, usize) {
        let mut total = 0.0;
        let mut unknown = 0;
        for index in tasks {
            match self.seconds.get(index).copied().flatten() {
                Some(seconds) => total += seconds,
                None => unknown += 1,
            }
        }
        (total, unknown)
    }
}

/// What the model knows of a task.
#[derive(Debug, Clone, PartialEq)]
struct Profile {
    /// Kind, device, precision and the inputs' kinds: tasks only ever compare within one.
    class: String,
    /// The blake3 of every file read, upstream included.
    files: String,
    work: f64,
}

/// One finished task.
struct Observation {
    profile: Profile,
    seconds: f64,
}

/// Estimates every task of `plan` that is not cached from the artifacts in `store`.
pub fn estimate(plan: &Plan, store: &Store) -> Estimates {
    let mut parts_by_key: HashMap<String, Value> = HashMap::new();
    let mut durations: Vec<(String, f64)> = Vec::new();
    for (key, manifest) in store.list().unwrap_or_default() {
        if let Ok(manifest) = manifest {
            durations.push((key.clone(), manifest.duration_s));
            parts_by_key.insert(key, manifest.parts);
        }
    }
    for entry in &plan.entries {
        if let Ok(parts) = serde_json::to_value(&entry.parts) {
            parts_by_key.entry(entry.key.clone()).or_insert(parts);
        }
    }
    let observations: Vec<Observation> = durations
        .into_iter()
        .filter_map(|(key, seconds)| {
            let profile = profile(&key, &parts_by_key)?;
            Some(Observation { profile, seconds })
        })
        .collect();
    let mut estimates = Estimates::default();
    for entry in &plan.entries {
        let found = (!entry.status.is_cached())
            .then(|| profile(&entry.key, &parts_by_key))
            .flatten()
            .and_then(|p| predict(&p, &observations));
        estimates.seconds.push(found.map(|(s, _)| s));
        estimates.basis.push(found.map(|(_, b)| b));
    }
    estimates
}

fn predict(target: &Profile, observations: &[Observation]) -> Option<(f64, Basis)> {
    let same_class: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.profile.class == target.class)
        .collect();
    let same_files: Vec<&Observation> = same_class
        .iter()
        .copied()
        .filter(|o| o.profile.files == target.files)
        .collect();
    let (basis, points) = if same_files.is_empty() {
        (Basis::SameKind, same_class)
    } else {
        (Basis::SameFiles, same_files)
    };
    let points: Vec<(f64, f64)> = points
        .iter()
        .map(|o| (o.profile.work.ln(), o.seconds.max(1e-6).ln()))
        .collect();
    Some((fit(&points)?.at(target.work.ln()).exp(), basis))
}

/// `y = a + b·x`.
struct Line {
    a: f64,
    b: f64,
}

impl Line {
    fn at(&self, x: f64) -> f64 {
        self.a + self.b * x
    }
}

/// Least squares in log space; the slope is held to [0.25, 2] so that two noisy points far
/// apart cannot make time fall with work or explode with it, and is 1 (time ∝ work) while
/// every point has the same work.
fn fit(points: &[(f64, f64)]) -> Option<Line> {
    if points.is_empty() {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let b = if sxx > 1e-9 { (sxy / sxx).clamp(0.25, 2.0) } else { 1.0 };
    Some(Line {
        a: mean_y - b * mean_x,
        b,
    })
}

/// The profile of the task with `key`, reading its inputs' parts from `parts_by_key`.
fn profile(key: &str, parts_by_key: &HashMap<String, Value>) -> Option<Profile> {
    let parts = parts_by_key.get(key)?;
    let kind = parts.get("kind")?.as_str()?.to_string();
    let mut context = BTreeMap::new();
    let mut files = BTreeMap::new();
    gather(parts, "", parts_by_key, &mut context, &mut files, 0);
    let text = |name: &str| {
        context
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_default()
    };
    // The kinds of its inputs too: a head trained on cached features and one that runs the
    // encoder every step are the same kind at very different costs.
    let inputs: Vec<String> = parts
        .get("inputs")
        .and_then(Value::as_object)
        .map(|inputs| {
            inputs
                .iter()
                .map(|(slot, key)| {
                    let upstream = key.as_str().and_then(|k| parts_by_key.get(k));
                    let kind = upstream
                        .and_then(|p| p.get("kind"))
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    format!("{slot}={kind}")
                })
                .collect()
        })
        .unwrap_or_default();
    let class = format!("{kind}|{}|{}|{}", text("device"), text("precision"), inputs.join(","));
    // The cost factors: the task's own, else the nearest upstream task's.
    let factor = |name: &str| -> f64 {
        let nearest = context
            .iter()
            .filter(|(path, _)| path.rsplit('.').next() == Some(name))
            .min_by_key(|(path, _)| path.matches('.').count());
        nearest
            .and_then(|(_, v)| v.as_f64())
            .filter(|v| *v > 0.0)
            .unwrap_or(1.0)
    };
    let work: f64 = crate::tasks::lookup(&kind)
        .map_or(&["epochs", "max_len", "train_size"][..], |k| k.cost_factors())
        .iter()
        .map(|name| factor(name))
        .product();
    let files = files
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    Some(Profile { class, files, work })
}

/// Flattens the parameters (`max_len`, `tokens.max_len`, `tokens.data.train_size`) and the
/// file digests of a task and its inputs.
fn gather(
    parts: &Value,
    prefix: &str,
    parts_by_key: &HashMap<String, Value>,
    context: &mut BTreeMap<String, Value>,
    files: &mut BTreeMap<String, String>,
    depth: usize,
) {
    if depth > 16 {
        return;
    }
    if let Some(params) = parts.get("params").and_then(Value::as_object) {
        for (name, value) in params {
            context.insert(format!("{prefix}{name}"), value.clone());
        }
    }
    if let Some(digests) = parts.get("files").and_then(Value::as_object) {
        for (name, digest) in digests {
            files.insert(
                format!("{prefix}{name}"),
                digest.as_str().unwrap_or_default().to_string(),
            );
        }
    }
    if let Some(inputs) = parts.get("inputs").and_then(Value::as_object) {
        for (slot, key) in inputs {
            if let Some(upstream) = key.as_str().and_then(|k| parts_by_key.get(k)) {
                gather(
                    upstream,
                    &format!("{prefix}{slot}."),
                    parts_by_key,
                    context,
                    files,
                    depth + 1,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_work_gives_the_mean_rate_and_more_work_scales_it() {
        let points = [(2f64.ln(), 10f64.ln()), (2f64.ln(), 40f64.ln())];
        let line = fit(&points).unwrap();
        assert!(
            (line.at(2f64.ln()).exp() - 20.0).abs() < 1e-9,
            "geometric mean of 10 and 40"
        );
        assert!(
            (line.at(4f64.ln()).exp() - 40.0).abs() < 1e-9,
            "twice the work, twice the time"
        );
    }

    #[test]
    fn the_slope_follows_the_points_within_bounds() {
        let quadratic: Vec<(f64, f64)> = [1.0f64, 2.0, 4.0].iter().map(|w| (w.ln(), (w * w).ln())).collect();
        assert!((fit(&quadratic).unwrap().b - 2.0).abs() < 1e-9);
        let falling = [(1f64.ln(), 10f64.ln()), (8f64.ln(), 1f64.ln())];
        assert_eq!(fit(&falling).unwrap().b, 0.25, "time never falls with work");
        assert!(fit(&[]).is_none());
    }

    #[test]
    fn a_profile_reads_its_cost_factors_upstream() {
        let mut parts = HashMap::new();
        parts.insert(
            "d".to_string(),
            serde_json::json!({"kind": "dataset", "params": {"train_size": 100}, "files": {"train": "h1"}, "inputs": {}}),
        );
        parts.insert(
            "t".to_string(),
            serde_json::json!({"kind": "tokenize", "params": {"max_len": 64}, "files": {}, "inputs": {"data": "d"}}),
        );
        parts.insert(
            "f".to_string(),
            serde_json::json!({"kind": "finetune", "params": {"epochs": 3, "device": "cpu"}, "files": {"model": "m"}, "inputs": {"tokens": "t"}}),
        );
        let profile = profile("f", &parts).unwrap();
        assert_eq!(profile.work, 3.0 * 64.0 * 100.0);
        assert_eq!(
            profile.class, "finetune|cpu||tokens=tokenize",
            "the kind, device, precision and the inputs' kinds"
        );
        assert_eq!(profile.files, "model=m,tokens.data.train=h1");
    }
}
