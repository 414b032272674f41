//! The report's plots as SVG (plotters' SVG backend), each drawn only when the entries
//! hold its data: accuracy vs rank, accuracy vs trainable parameters with the Pareto
//! frontier, per-epoch training loss and eval accuracy, and time per task. Error bars are
//! ± one sample standard deviation over seeds. What to draw (curves, levels, the frontier)
//! comes from [`super::analysis`]; this module only draws it.

use anyhow::Result;
use plotters::coord::ranged1d::{AsRangedCoord, SegmentValue, ValueFormatter};
use plotters::prelude::*;

use super::analysis::{self, Point};
use super::{Entry, Stat};

/// One plot: its file stem (`accuracy-vs-rank`), caption and SVG document.
#[derive(Debug, Clone)]
pub struct Plot {
    pub name: &'static str,
    pub title: String,
    pub svg: String,
}

const WIDTH: u32 = 760;
const HEIGHT: u32 = 440;
const FONT: &str = "sans-serif";

pub fn draw(entries: &[Entry]) -> Result<Vec<Plot>> {
    let candidates = [
        accuracy_vs_rank(entries)?,
        accuracy_vs_params(entries)?,
        per_epoch(entries, Epochs::TrainLoss)?,
        per_epoch(entries, Epochs::EvalAccuracy)?,
        time_per_task(entries)?,
    ];
    Ok(candidates.into_iter().flatten().collect())
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    /// Points joined by a line.
    Line,
    /// Points only.
    Scatter,
    /// A line through the points, emphasised, with each point named.
    Frontier,
}

struct Series {
    label: String,
    mark: Mark,
    points: Vec<Point>,
}

enum Axis {
    /// Logarithmic with this base for the ticks.
    Log(f64),
    Linear,
}

struct LineChart {
    title: String,
    x_desc: &'static str,
    y_desc: &'static str,
    x_axis: Axis,
    x_format: fn(&f64) -> String,
    series: Vec<Series>,
    /// Horizontal dashed lines: label, level.
    references: Vec<(String, f64)>,
    legend: SeriesLabelPosition,
}

/// Okabe and Ito's colour-blind-safe palette, its pale yellow last (plotters' `Palette99`
/// drew the third curve, LoRA in the lab's rank plot, in a yellow that hardly showed).
const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(240, 228, 66),
];

fn color(index: usize) -> RGBAColor {
    PALETTE[index % PALETTE.len()].to_rgba()
}

fn accuracy_vs_rank(entries: &[Entry]) -> Result<Option<Plot>> {
    let series: Vec<Series> = analysis::rank_curves(entries)
        .into_iter()
        .map(|curve| Series {
            label: curve.label,
            mark: Mark::Line,
            points: curve.points,
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let references = analysis::reference_levels(entries)
        .into_iter()
        .map(|level| (level.label, level.accuracy))
        .collect();
    let chart = LineChart {
        title: "Accuracy vs rank".into(),
        x_desc: "rank",
        y_desc: "accuracy",
        x_axis: Axis::Log(2.0),
        x_format: |v| format!("{v:.0}"),
        series,
        references,
        legend: SeriesLabelPosition::LowerRight,
    };
    Ok(Some(Plot {
        name: "accuracy-vs-rank",
        title: chart.title.clone(),
        svg: line_chart(&chart)?,
    }))
}

fn accuracy_vs_params(entries: &[Entry]) -> Result<Option<Plot>> {
    let Some(measured) = analysis::size_accuracy(entries) else {
        return Ok(None);
    };
    // One colour per task kind, so that the methods can be told apart.
    let mut series: Vec<Series> = measured
        .by_kind
        .into_iter()
        .map(|(kind, points)| Series {
            label: kind,
            mark: Mark::Scatter,
            points,
        })
        .collect();
    series.push(Series {
        label: "Pareto frontier".into(),
        mark: Mark::Frontier,
        points: measured.frontier,
    });
    let chart = LineChart {
        title: "Accuracy vs trainable parameters".into(),
        x_desc: "trainable parameters (log scale)",
        y_desc: "accuracy",
        x_axis: Axis::Log(10.0),
        x_format: |v| compact(*v),
        series,
        references: Vec::new(),
        legend: SeriesLabelPosition::LowerRight,
    };
    Ok(Some(Plot {
        name: "accuracy-vs-params",
        title: chart.title.clone(),
        svg: line_chart(&chart)?,
    }))
}

#[derive(Clone, Copy)]
enum Epochs {
    TrainLoss,
    EvalAccuracy,
}

fn per_epoch(entries: &[Entry], which: Epochs) -> Result<Option<Plot>> {
    let series: Vec<Series> = entries
        .iter()
        .filter_map(|e| {
            let points: Vec<Point> = e
                .epochs
                .iter()
                .filter_map(|epoch| {
                    let value = match which {
                        Epochs::TrainLoss => epoch.train_loss,
                        Epochs::EvalAccuracy => epoch.eval_accuracy,
                    }?;
                    Some(Point {
                        x: f64::from(epoch.epoch),
                        y: value,
                        name: String::new(),
                    })
                })
                .collect();
            (!points.is_empty()).then(|| Series {
                label: e.task.clone(),
                mark: Mark::Line,
                points,
            })
        })
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let (name, title, y_desc, legend) = match which {
        Epochs::TrainLoss => (
            "training-loss",
            "Training loss per epoch",
            "training loss",
            SeriesLabelPosition::UpperRight,
        ),
        Epochs::EvalAccuracy => (
            "eval-accuracy-per-epoch",
            "Eval accuracy per epoch",
            "eval accuracy",
            SeriesLabelPosition::LowerRight,
        ),
    };
    let chart = LineChart {
        title: title.into(),
        x_desc: "epoch",
        y_desc,
        x_axis: Axis::Linear,
        // Epochs are whole: no label on the axis' fractional ticks.
        x_format: |v| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        },
        series,
        references: Vec::new(),
        legend,
    };
    Ok(Some(Plot {
        name,
        title: chart.title.clone(),
        svg: line_chart(&chart)?,
    }))
}

/// `5001` → `5k`, `66955010` → `67M`.
fn compact(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let text = format!("{scaled:.1}");
    format!("{}{suffix}", text.trim_end_matches(".0"))
}

fn line_chart(chart: &LineChart) -> Result<String> {
    let xs = chart.series.iter().flat_map(|s| s.points.iter().map(|p| p.x));
    let (x_lo, x_hi) = bounds(xs).unwrap_or((1.0, 10.0));
    let ys = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.y.band().0, p.y.band().2]))
        .chain(chart.references.iter().map(|r| r.1));
    let (y_lo, y_hi) = bounds(ys).unwrap_or((0.0, 1.0));
    let y_pad = ((y_hi - y_lo) * 0.08).max(0.01);
    let y = (y_lo - y_pad)..(y_hi + y_pad);
    match chart.x_axis {
        Axis::Log(base) => draw_lines(chart, ((x_lo / 1.5)..(x_hi * 1.5)).log_scale().base(base), y),
        Axis::Linear => {
            let pad = ((x_hi - x_lo) * 0.05).max(0.5);
            draw_lines(chart, (x_lo - pad)..(x_hi + pad), y)
        }
    }
}

fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| {
        Some(acc.map_or((v, v), |(lo, hi): (f64, f64)| (lo.min(v), hi.max(v))))
    })
}

fn draw_lines<X>(chart: &LineChart, x: X, y: std::ops::Range<f64>) -> Result<String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut context = ChartBuilder::on(&root)
            .caption(&chart.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d(x, y)?;
        let std::ops::Range { start: x_lo, end: x_hi } = context.x_range();
        context
            .configure_mesh()
            .x_desc(chart.x_desc)
            .y_desc(chart.y_desc)
            .x_label_formatter(&chart.x_format)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (index, (label, level)) in chart.references.iter().enumerate() {
            let style = color(index + chart.series.len()).stroke_width(2);
            context
                .draw_series(DashedLineSeries::new([(x_lo, *level), (x_hi, *level)], 8, 5, style))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], style));
        }
        for (index, series) in chart.series.iter().enumerate() {
            let (color, width, radius) = match series.mark {
                Mark::Frontier => (BLACK.to_rgba(), 2, 6),
                _ => (color(index), 2, 3),
            };
            let points: Vec<(f64, f64)> = series.points.iter().map(|p| (p.x, p.y.mean)).collect();
            let line = color.stroke_width(width);
            let marker = match series.mark {
                Mark::Frontier => color.stroke_width(2),
                _ => color.filled(),
            };
            let circles = points.iter().map(|&p| Circle::new(p, radius, marker));
            if series.mark == Mark::Scatter {
                context
                    .draw_series(circles)?
                    .label(&series.label)
                    .legend(move |(x, y)| Circle::new((x + 10, y), radius, marker));
            } else {
                context
                    .draw_series(LineSeries::new(points.clone(), line))?
                    .label(&series.label)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], line));
                context.draw_series(circles)?;
            }
            context.draw_series(series.points.iter().filter(|p| p.y.std.is_some()).map(|p| {
                let (lo, mean, hi) = p.y.band();
                ErrorBar::new_vertical(p.x, lo, mean, hi, color.filled(), 8)
            }))?;
            if series.mark == Mark::Frontier {
                context.draw_series(
                    series
                        .points
                        .iter()
                        .map(|p| Text::new(p.name.clone(), (p.x, p.y.mean), (FONT, 12).into_font())),
                )?;
            }
        }
        context
            .configure_series_labels()
            .position(chart.legend.clone())
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

fn time_per_task(entries: &[Entry]) -> Result<Option<Plot>> {
    let bars: Vec<(&str, Option<Stat>, Option<Stat>)> = entries
        .iter()
        .filter(|e| e.train_time_s.is_some() || e.eval_time_s.is_some())
        .map(|e| (e.task.as_str(), e.train_time_s, e.eval_time_s))
        .collect();
    if bars.is_empty() {
        return Ok(None);
    }
    let count = bars.len() as i32;
    let end = |(_, train, eval): &(&str, Option<Stat>, Option<Stat>)| {
        train.map_or(0.0, |s| s.band().2) + eval.map_or(0.0, |s| s.mean)
    };
    let max = bars.iter().map(end).fold(0.0, f64::max).max(1e-3) * 1.1;
    let label_width = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(4) as u32 * 7 + 16;
    let height = 110 + 26 * bars.len() as u32;
    // The first entry at the top.
    let row = |index: usize| count - 1 - index as i32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut context = ChartBuilder::on(&root)
            .caption("Time per task", (FONT, 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(label_width.clamp(60, 360))
            .build_cartesian_2d(0.0..max, (0..count).into_segmented())?;
        let name_of = |value: &SegmentValue<i32>| match value {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if (0..count).contains(i) => {
                bars[(count - 1 - i) as usize].0.to_string()
            }
            _ => String::new(),
        };
        context
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(bars.len())
            .y_label_formatter(&name_of)
            .x_desc("seconds")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let (train_color, eval_color) = (color(0), color(1));
        let segment = |index: usize, from: f64, to: f64, fill: RGBAColor| {
            let y = row(index);
            let mut bar = Rectangle::new(
                [(from, SegmentValue::Exact(y)), (to, SegmentValue::Exact(y + 1))],
                fill.filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            bar
        };
        context
            .draw_series(
                bars.iter()
                    .enumerate()
                    .filter_map(|(i, (_, train, _))| Some(segment(i, 0.0, (*train)?.mean, train_color))),
            )?
            .label("train")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], train_color.filled()));
        context
            .draw_series(bars.iter().enumerate().filter_map(|(i, (_, train, eval))| {
                let start = train.map_or(0.0, |s| s.mean);
                Some(segment(i, start, start + (*eval)?.mean, eval_color))
            }))?
            .label("eval")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], eval_color.filled()));
        context.draw_series(bars.iter().enumerate().filter_map(|(i, (_, train, _))| {
            let train = (*train)?;
            train.std?;
            let (lo, mean, hi) = train.band();
            Some(ErrorBar::new_horizontal(
                SegmentValue::CenterOf(row(i)),
                lo.max(0.0),
                mean,
                hi,
                BLACK.filled(),
                8,
            ))
        }))?;
        context
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font((FONT, 13))
            .draw()?;
        root.present()?;
    }
    Ok(Some(Plot {
        name: "time-per-task",
        title: "Time per task".into(),
        svg,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(5001.0), "5k");
        assert_eq!(compact(66_955_010.0), "67M");
        assert_eq!(compact(148_610.0), "148.6k");
        assert_eq!(compact(12.0), "12");
    }
}
