//! The lab's analysis of report entries, apart from drawing it: rank curves, the reference
//! levels they are read against, the lowest rank that beats the bar, and the Pareto frontier
//! of accuracy over trainable parameters. Each kind's part comes from its
//! [`ReportRole`], never from its name; the plots and tables render what this module finds.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Entry, Stat};
use crate::tasks::ReportRole;

/// One point of a curve: x, accuracy (mean ± std over seeds) and the entry it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: Stat,
    pub name: String,
}

/// The entries of one rank-swept configuration, points sorted by rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub label: String,
    pub points: Vec<Point>,
}

/// A level the rank curves are read against, e.g. head-tuning's accuracy.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// `head-tuning (headtune)`: the kind's name for itself and the entry.
    pub label: String,
    /// The level each curve's lowest rank must beat.
    pub bar: bool,
    pub accuracy: f64,
}

fn role(entry: &Entry) -> ReportRole {
    crate::tasks::lookup(&entry.kind).map_or(ReportRole::Row, |kind| kind.report_role())
}

/// The entries of rank-swept kinds as curves, one per group (and per other sweep
/// coordinate, e.g. the SVD variant or a learning rate).
pub fn rank_curves(entries: &[Entry]) -> Vec<Curve> {
    let mut curves: Vec<Curve> = Vec::new();
    for entry in entries {
        let ReportRole::RankCurve { rank: rank_label } = role(entry) else {
            continue;
        };
        let (Some(rank), Some(accuracy)) = (entry.label(&[rank_label]), entry.accuracy) else {
            continue;
        };
        let Ok(rank) = rank.parse::<f64>() else { continue };
        if rank <= 0.0 {
            continue;
        }
        let others: Vec<String> = entry
            .labels
            .iter()
            .filter(|(k, _)| k != rank_label)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut label = entry.method.clone().unwrap_or_else(|| entry.group.clone());
        if !others.is_empty() {
            label = format!("{label} [{}]", others.join(","));
        }
        let label = format!("{} · {label}", entry.experiment)
            .trim_start_matches(" · ")
            .to_string();
        let point = Point {
            x: rank,
            y: accuracy,
            name: entry.task.clone(),
        };
        match curves.iter_mut().find(|c| c.label == label) {
            Some(curve) => curve.points.push(point),
            None => curves.push(Curve {
                label,
                points: vec![point],
            }),
        }
    }
    for curve in &mut curves {
        curve.points.sort_by(|a, b| a.x.total_cmp(&b.x));
    }
    curves
}

/// The accuracies of the reference kinds (head-tuning, full fine-tuning).
pub fn reference_levels(entries: &[Entry]) -> Vec<Level> {
    entries
        .iter()
        .filter_map(|e| {
            let ReportRole::Reference { label, bar } = role(e) else {
                return None;
            };
            Some(Level {
                label: format!("{label} ({})", e.task),
                bar,
                accuracy: e.accuracy?.mean,
            })
        })
        .collect()
}

/// The lab's question for one rank curve: the lowest rank from which every swept rank upwards
/// beats a reference level (mean accuracy strictly above it); `None` when even the highest
/// rank does not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowestRank {
    pub curve: String,
    pub reference: String,
    pub level: f64,
    pub rank: Option<f64>,
    /// The curve's accuracy at that rank.
    pub accuracy: Option<f64>,
}

/// [`LowestRank`] for every rank curve against every bar level: head-tuning, the lab's bar.
pub fn lowest_ranks_beating_head_tuning(entries: &[Entry]) -> Vec<LowestRank> {
    let curves = rank_curves(entries);
    let mut answers = Vec::new();
    for level in reference_levels(entries).into_iter().filter(|l| l.bar) {
        for curve in &curves {
            let mut lowest = None;
            for point in curve.points.iter().rev() {
                if point.y.mean <= level.accuracy {
                    break;
                }
                lowest = Some((point.x, point.y.mean));
            }
            answers.push(LowestRank {
                curve: curve.label.clone(),
                reference: level.label.clone(),
                level: level.accuracy,
                rank: lowest.map(|l| l.0),
                accuracy: lowest.map(|l| l.1),
            });
        }
    }
    answers
}

/// Accuracy over trainable parameters: the measured points by kind, and the Pareto frontier
/// through them.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeAccuracy {
    pub by_kind: BTreeMap<String, Vec<Point>>,
    pub frontier: Vec<Point>,
}

/// `None` when no entry has both a positive parameter count and an accuracy.
pub fn size_accuracy(entries: &[Entry]) -> Option<SizeAccuracy> {
    let measured: Vec<(&str, Point)> = entries
        .iter()
        .filter_map(|e| {
            let point = Point {
                x: e.trainable_params? as f64,
                y: e.accuracy?,
                name: e.task.clone(),
            };
            Some((e.kind.as_str(), point))
        })
        .filter(|(_, point)| point.x > 0.0)
        .collect();
    if measured.is_empty() {
        return None;
    }
    let means: Vec<(f64, f64)> = measured.iter().map(|(_, p)| (p.x, p.y.mean)).collect();
    let frontier = pareto_frontier(&means)
        .into_iter()
        .map(|i| measured[i].1.clone())
        .collect();
    let mut by_kind: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for (kind, point) in measured {
        by_kind.entry(kind.to_string()).or_default().push(point);
    }
    Some(SizeAccuracy { by_kind, frontier })
}

/// Indices of the points no other point beats with at most as many parameters.
pub fn pareto_frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut best = f64::NEG_INFINITY;
    let mut frontier = Vec::new();
    for index in order {
        if points[index].1 > best {
            best = points[index].1;
            frontier.push(index);
        }
    }
    frontier
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{aggregate, Row};
    use crate::tasks::Metrics;

    /// (kind, sweep values, accuracy) of one row.
    type RowSpec<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

    fn entries(rows: &[RowSpec]) -> Vec<Entry> {
        let rows: Vec<Row> = rows
            .iter()
            .map(|(kind, sweep, accuracy)| {
                let sweep: Vec<(String, String)> = sweep.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                Row {
                    experiment: String::new(),
                    task: crate::spec::member_name(kind, &sweep),
                    group: kind.to_string(),
                    kind: kind.to_string(),
                    sweep,
                    key: String::new(),
                    params: BTreeMap::new(),
                    metrics: Metrics {
                        accuracy: Some(*accuracy),
                        ..Metrics::default()
                    },
                }
            })
            .collect();
        aggregate(&rows, false)
    }

    #[test]
    fn the_kinds_role_not_the_sweep_label_makes_a_curve_or_a_level() {
        let entries = entries(&[
            ("lora", &[("r", "4")], 0.85),
            ("lora", &[("r", "1")], 0.80),
            // `rank` is the SVD's rank label, not LoRA's; `r` on a logistic regression no rank.
            ("lora", &[("rank", "2")], 0.99),
            ("logreg", &[("r", "2")], 0.70),
            ("svd_approx", &[("rank", "8")], 0.75),
            ("headtune", &[], 0.82),
            ("finetune", &[], 0.90),
            ("naive_bayes", &[], 0.83),
        ]);
        let curves = rank_curves(&entries);
        let shape: Vec<(&str, Vec<f64>)> = curves
            .iter()
            .map(|c| (c.label.as_str(), c.points.iter().map(|p| p.x).collect()))
            .collect();
        assert_eq!(shape, [("lora", vec![1.0, 4.0]), ("svd_approx", vec![8.0])]);
        let levels = reference_levels(&entries);
        let levels: Vec<(&str, bool)> = levels.iter().map(|l| (l.label.as_str(), l.bar)).collect();
        assert_eq!(
            levels,
            [("head-tuning (headtune)", true), ("full fine-tuning (finetune)", false)]
        );
        // Only the bar is asked about: LoRA beats head-tuning from r = 4, the SVD never.
        let answers: Vec<(String, Option<f64>)> = lowest_ranks_beating_head_tuning(&entries)
            .into_iter()
            .map(|a| (a.curve, a.rank))
            .collect();
        assert_eq!(
            answers,
            [("lora".to_string(), Some(4.0)), ("svd_approx".to_string(), None)]
        );
    }

    /// PiSSA is the `lora` kind with another initialisation: its rank sweep is a curve of its
    /// own beside LoRA's and the SVD's, named by the method the task reports.
    #[test]
    fn a_pissa_sweep_is_its_own_curve_beside_lora() {
        let mut entries = entries(&[
            ("lora", &[("r", "4")], 0.85),
            ("lora", &[("r", "1")], 0.80),
            ("svd_approx", &[("rank", "8")], 0.75),
        ]);
        let mut pissa = entries[..2].to_vec();
        for (entry, method) in entries
            .iter_mut()
            .zip(["LoRA", "LoRA"])
            .chain(pissa.iter_mut().zip(["PiSSA", "PiSSA"]))
        {
            entry.method = Some(method.to_string());
        }
        for entry in &mut pissa {
            entry.task = format!("pissa_{}", entry.task);
        }
        entries.extend(pissa);
        let labels: Vec<String> = rank_curves(&entries).into_iter().map(|c| c.label).collect();
        assert_eq!(labels, ["LoRA", "svd_approx", "PiSSA"]);
    }

    #[test]
    fn the_frontier_keeps_points_no_smaller_model_beats() {
        // (params, accuracy): the 2,000-parameter model is beaten by the 1,000 one.
        let points = [
            (1000.0, 0.80),
            (2000.0, 0.78),
            (5000.0, 0.85),
            (5000.0, 0.84),
            (1e6, 0.85),
        ];
        assert_eq!(pareto_frontier(&points), [0, 2]);
    }
}
