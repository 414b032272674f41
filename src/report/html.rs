//! `reports/<experiment>.html`: one self-contained page (inline CSS and SVG, no script,
//! nothing fetched) with the comparison table and the plots.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::plots::Plot;
use super::table::{layout, rank_question, shared_text};
use super::Report;

const STYLE: &str = "
body { font-family: sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; }
.description, .meta { color: #555; margin-top: 0.2rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.92rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #f4f4f4; }
td.numeric, th.numeric { text-align: right; font-variant-numeric: tabular-nums; }
.plots { display: flex; flex-wrap: wrap; gap: 1.5rem; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85rem; }
";

pub fn page(report: &Report, plots: &[Plot]) -> String {
    let layout = layout(report);
    let runs = report.rows.len();
    let folded = !report.individual_runs && layout.rows.len() < runs;
    let markup: Markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (report.experiment) " · orchestrate report" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (report.experiment) }
                @if let Some(description) = &report.description {
                    p.description { (description) }
                }
                @if let Some(line) = report.overrides_line() {
                    p.meta { (line) }
                }
                p.meta {
                    (runs) " runs"
                    @if folded { ", folded over seeds: mean ± sample standard deviation, n runs" }
                    @if report.individual_runs { ", one line per run" }
                }
                table {
                    thead { tr { @for column in &layout.columns {
                        th.numeric[column.numeric] { (column.title) }
                    } } }
                    tbody { @for row in &layout.rows { tr { @for (cell, column) in row.iter().zip(&layout.columns) {
                        td.numeric[column.numeric] { (cell) }
                    } } } }
                }
                @for (heading, lines) in rank_question(report) {
                    p.rank-question { (heading) ":" }
                    ul { @for line in lines { li { (line) } } }
                }
                @if !layout.shared.is_empty() {
                    p.shared { "Shared by every row: " (shared_text(&layout.shared)) "." }
                }
                @if !report.missing.is_empty() {
                    p.missing { "Not in the cache yet: " (report.missing.join(", ")) "." }
                }
                section.plots {
                    @for plot in plots {
                        figure id={ "plot-" (plot.name) } {
                            (PreEscaped(inline_svg(&plot.svg)))
                            figcaption {
                                (plot.title) " · "
                                a href={ (report.stem()) "/" (plot.name) ".svg" } { "SVG" }
                            }
                        }
                    }
                }
            }
        }
    };
    markup.into_string() + "\n"
}

/// The `<svg>` element alone: no XML declaration inside HTML.
fn inline_svg(document: &str) -> &str {
    document.find("<svg").map_or(document, |start| &document[start..])
}
