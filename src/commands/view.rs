//! What the commands return: typed views, each `Serialize`, and the one renderer,
//! [`render`], that makes the human text or the `--json` document from the same value.

use std::fmt::Write as _;
use std::path::PathBuf;

use comfy_table::{presets, ContentArrangement, Table};
use serde::{Serialize, Serializer};

use crate::bench::{MatmulBench, StepBench};
use crate::estimate::Estimates;
use crate::plan::{short, KeyParts, Plan, Reason, Status};
use crate::report::{self, Report};
use crate::reporter::Mode;
use crate::scheduler::slurm::RunRecord;
use crate::store::{Collected, Manifest};
use crate::util::human_duration;

/// Rendered output: what goes to stdout and what to stderr.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Text {
    pub stdout: String,
    pub stderr: String,
}

/// A command's result.
pub trait View: Serialize {
    /// The terminal text; `mode` is [`Mode::Human`] or [`Mode::Quiet`].
    fn human(&self, mode: Mode, text: &mut Text);

    /// The `--json` output: a pretty document unless the view says otherwise.
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        pretty(out, self)
    }

    /// Whether the command succeeded (exit status 0).
    fn ok(&self) -> bool {
        true
    }
}

/// The view as `mode` shows it.
pub fn render<V: View + ?Sized>(view: &V, mode: Mode) -> serde_json::Result<Text> {
    let mut text = Text::default();
    match mode {
        Mode::Json => view.json(&mut text.stdout)?,
        Mode::Human | Mode::Quiet => view.human(mode, &mut text),
    }
    Ok(text)
}

fn pretty<T: Serialize + ?Sized>(out: &mut String, value: &T) -> serde_json::Result<()> {
    *out += &serde_json::to_string_pretty(value)?;
    out.push('\n');
    Ok(())
}

/// One line: an event of `run`'s JSON-lines stream.
fn line<T: Serialize + ?Sized>(out: &mut String, value: &T) -> serde_json::Result<()> {
    *out += &serde_json::to_string(value)?;
    out.push('\n');
    Ok(())
}

fn condensed_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_header(header);
    table
}

/// `plan`, `run --dry-run`, `status`: each task's key and whether it is cached or why not.
#[derive(Debug, Clone, Serialize)]
pub struct PlanView {
    pub experiment: String,
    #[serde(skip)]
    pub path: PathBuf,
    pub tasks: Vec<PlanRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanRow {
    pub task: String,
    pub kind: String,
    pub key: String,
    pub cached: bool,
    pub reasons: Vec<ReasonView>,
    /// When cached: when it was built and how long that took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built: Option<Built>,
    /// When it will run: the estimated seconds (`crate::estimate`), null when there is no
    /// finished task of its kind in the cache yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_s: Option<Option<f64>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReasonView {
    pub detail: Reason,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Built {
    pub created: String,
    pub duration_s: f64,
}

impl PlanView {
    /// The tasks `rows` of the plan, in declaration order.
    pub fn new(plan: &Plan, estimates: &Estimates, rows: impl IntoIterator<Item = usize>) -> Self {
        let experiment = plan.experiment;
        let tasks = rows
            .into_iter()
            .map(|i| {
                let (task, entry) = (&experiment.tasks[i], &plan.entries[i]);
                let (reasons, built) = match &entry.status {
                    Status::Cached(manifest) => (
                        Vec::new(),
                        Some(Built {
                            created: manifest.created.clone(),
                            duration_s: manifest.duration_s,
                        }),
                    ),
                    Status::Run(reasons) => (
                        reasons
                            .iter()
                            .map(|r| ReasonView {
                                detail: r.clone(),
                                message: r.to_string(),
                            })
                            .collect(),
                        None,
                    ),
                };
                PlanRow {
                    task: task.name.clone(),
                    kind: task.kind.kind().to_string(),
                    key: entry.key.clone(),
                    cached: entry.status.is_cached(),
                    estimated_s: (!entry.status.is_cached()).then(|| estimates.seconds[i]),
                    reasons,
                    built,
                }
            })
            .collect();
        Self {
            experiment: experiment.name.clone(),
            path: experiment.path.clone(),
            tasks,
        }
    }
}

impl View for PlanView {
    fn human(&self, _: Mode, text: &mut Text) {
        let mut table = Table::new();
        table
            .load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(["task", "kind", "key", "status", "estimate", "why"]);
        for row in &self.tasks {
            let (status, why) = match &row.built {
                Some(built) => (
                    "cached",
                    format!("built {} in {}", built.created, human_duration(built.duration_s)),
                ),
                None => (
                    "run",
                    row.reasons
                        .iter()
                        .map(|r| r.message.as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
            };
            let estimate = match row.estimated_s {
                None => String::new(),
                Some(None) => "no estimate yet".to_string(),
                Some(Some(seconds)) => format!("~{}", human_duration(seconds)),
            };
            table.add_row([row.task.as_str(), &row.kind, short(&row.key), status, &estimate, &why]);
        }
        let to_run = self.tasks.iter().filter(|r| !r.cached).count();
        let known: Vec<f64> = self.tasks.iter().filter_map(|r| r.estimated_s.flatten()).collect();
        let estimate = if to_run > 0 {
            crate::reporter::estimate_text(known.iter().sum(), known.len(), to_run - known.len())
        } else {
            String::new()
        };
        let _ = writeln!(
            text.stdout,
            "{} ({}): {} tasks, {to_run} to run{estimate}\n{table}",
            self.experiment,
            self.path.display(),
            self.tasks.len()
        );
    }
}

/// Several views shown one after the other (one per experiment file).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Each<V>(pub Vec<V>);

impl<V: View> View for Each<V> {
    fn human(&self, mode: Mode, text: &mut Text) {
        for view in &self.0 {
            view.human(mode, text);
        }
    }
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        self.0.iter().try_for_each(|view| view.json(out))
    }
    fn ok(&self) -> bool {
        self.0.iter().all(View::ok)
    }
}

/// A report written to the reports directory, as `run`, `report` and `status --follow`
/// end. Its JSON is the `report` event of `run`'s stream.
#[derive(Debug, Clone)]
pub struct ReportView {
    pub report: Report,
    pub files: Vec<PathBuf>,
}

impl ReportView {
    /// Writes the report's files into `dir`.
    pub fn write(report: Report, dir: &std::path::Path) -> anyhow::Result<Self> {
        let files = report::write_files(&report, dir)?;
        Ok(Self { report, files })
    }
}

impl Serialize for ReportView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Event<'a> {
            event: &'static str,
            report: serde_json::Value,
            files: &'a [PathBuf],
        }
        Event {
            event: "report",
            report: report::table::json_value(&self.report),
            files: &self.files,
        }
        .serialize(serializer)
    }
}

impl View for ReportView {
    fn human(&self, mode: Mode, text: &mut Text) {
        let report = &self.report;
        if let Some(line) = report.overrides_line() {
            let _ = writeln!(text.stdout, "{line}");
        }
        if !report.rows.is_empty() {
            let _ = writeln!(text.stdout, "{}", report::table(report));
        }
        for (heading, lines) in report::table::rank_question(report) {
            let _ = writeln!(text.stdout, "{heading}:");
            for line in lines {
                let _ = writeln!(text.stdout, "  {line}");
            }
        }
        let shared = report::table::layout(report).shared;
        if !shared.is_empty() {
            let _ = writeln!(
                text.stdout,
                "shared by every row: {}",
                report::table::shared_text(&shared)
            );
        }
        if !report.missing.is_empty() {
            let _ = writeln!(text.stderr, "not in the cache: {}", report.missing.join(", "));
        }
        if mode == Mode::Human {
            let shown: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
            let _ = writeln!(text.stderr, "report written to {}", shown.join(", "));
        }
    }
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        line(out, self)
    }
}

/// `run`, for one experiment file.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RunView {
    DryRun(PlanView),
    Ran {
        /// The end-of-run list of failures, for the terminal.
        failures: Option<String>,
        /// Detached from Slurm jobs still to follow: the experiment file.
        detached: Option<PathBuf>,
        report: Option<ReportView>,
        /// Every selected task is cached or succeeded.
        ok: bool,
    },
}

impl View for RunView {
    fn human(&self, mode: Mode, text: &mut Text) {
        match self {
            RunView::DryRun(plan) => plan.human(mode, text),
            RunView::Ran {
                failures,
                detached,
                report,
                ..
            } => {
                if let Some(failures) = failures {
                    text.stderr += failures;
                }
                if let Some(file) = detached {
                    let _ = writeln!(
                        text.stderr,
                        "detached; follow with `orchestrate status {} --follow`",
                        file.display()
                    );
                }
                if let Some(report) = report {
                    report.human(mode, text);
                }
            }
        }
    }
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        // The events have told the rest.
        match self {
            RunView::DryRun(plan) => plan.json(out),
            RunView::Ran {
                report: Some(report), ..
            } => report.json(out),
            RunView::Ran { report: None, .. } => Ok(()),
        }
    }
    fn ok(&self) -> bool {
        match self {
            RunView::DryRun(_) => true,
            RunView::Ran { ok, .. } => *ok,
        }
    }
}

/// `status`, for one experiment file.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum StatusView {
    /// No Slurm run is recorded for the experiment.
    Plan(PlanView),
    /// The plan and the jobs of the latest Slurm run.
    Slurm { plan: PlanView, run: RunRecord },
    /// `--follow`: the jobs were followed to their end.
    Followed { report: ReportView, ok: bool },
}

impl View for StatusView {
    fn human(&self, mode: Mode, text: &mut Text) {
        match self {
            StatusView::Plan(plan) => plan.human(mode, text),
            StatusView::Slurm { plan, run } => {
                plan.human(mode, text);
                let mut table = condensed_table(&["task", "Slurm job", "state", "outcome"]);
                for job in &run.jobs {
                    let outcome = job.outcome.map_or("in progress".to_string(), |o| o.to_string());
                    table.add_row([job.task.as_str(), &job.job_id, job.state.as_str(), &outcome]);
                }
                let _ = writeln!(text.stdout, "Slurm run {} ({}):\n{table}", run.run_id, run.created);
            }
            StatusView::Followed { report, .. } => report.human(mode, text),
        }
    }
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        match self {
            StatusView::Plan(plan) => plan.json(out),
            StatusView::Slurm { plan, run } => {
                plan.json(out)?;
                pretty(out, run)
            }
            StatusView::Followed { report, .. } => report.json(out),
        }
    }
    fn ok(&self) -> bool {
        match self {
            StatusView::Plan(_) => true,
            StatusView::Slurm { run, .. } => !run
                .jobs
                .iter()
                .any(|j| j.outcome == Some(crate::scheduler::slurm::JobOutcome::Failed)),
            StatusView::Followed { ok, .. } => *ok,
        }
    }
}

/// `why`: for each task asked about, its key, the key's parts and why it would run.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct WhyView {
    pub tasks: Vec<WhyTask>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WhyTask {
    pub task: String,
    pub kind: String,
    pub experiment: String,
    pub key: String,
    pub parts: KeyParts,
    pub cached: bool,
    /// Why the task itself would run (empty when cached).
    pub reasons: Vec<Reason>,
    /// The same, following changed inputs upstream.
    pub explanation: Explanation,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Explanation {
    Cached {
        created: String,
        /// Who built the artifact (another experiment may have).
        task: String,
        experiment: String,
        duration_s: f64,
    },
    Run {
        reasons: Vec<Because>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Because {
    pub reason: Reason,
    /// For a changed input: the upstream task and why it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<Upstream>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub task: String,
    pub explanation: Box<Explanation>,
}

impl WhyTask {
    pub fn new(plan: &Plan, index: usize) -> Self {
        let (task, entry) = (&plan.experiment.tasks[index], &plan.entries[index]);
        Self {
            task: task.name.clone(),
            kind: task.kind.kind().to_string(),
            experiment: plan.experiment.name.clone(),
            key: entry.key.clone(),
            parts: entry.parts.clone(),
            cached: entry.status.is_cached(),
            reasons: match &entry.status {
                Status::Cached(_) => Vec::new(),
                Status::Run(reasons) => reasons.clone(),
            },
            explanation: Explanation::new(plan, index),
        }
    }
}

impl Explanation {
    fn new(plan: &Plan, index: usize) -> Self {
        let experiment = plan.experiment;
        match &plan.entries[index].status {
            Status::Cached(manifest) => Explanation::Cached {
                created: manifest.created.clone(),
                task: manifest.task.clone(),
                experiment: manifest.experiment.clone(),
                duration_s: manifest.duration_s,
            },
            Status::Run(reasons) => Explanation::Run {
                reasons: reasons
                    .iter()
                    .map(|reason| {
                        let upstream = match reason {
                            Reason::InputChanged { slot, .. } => experiment.tasks[index].inputs.get(slot),
                            _ => None,
                        };
                        Because {
                            reason: reason.clone(),
                            upstream: upstream.map(|&upstream| Upstream {
                                task: experiment.tasks[upstream].name.clone(),
                                explanation: Box::new(Explanation::new(plan, upstream)),
                            }),
                        }
                    })
                    .collect(),
            },
        }
    }

    fn human(&self, depth: usize, out: &mut String) {
        let indent = "  ".repeat(depth + 1);
        match self {
            Explanation::Cached {
                created,
                task,
                experiment,
                duration_s,
            } => {
                let _ = writeln!(
                    out,
                    "{indent}cached: built {created} by `{task}` ({experiment}) in {}",
                    human_duration(*duration_s)
                );
            }
            Explanation::Run { reasons } => {
                let _ = writeln!(out, "{indent}will run:");
                for because in reasons {
                    let _ = writeln!(out, "{indent}- {}", because.reason);
                    if let Some(upstream) = &because.upstream {
                        let _ = writeln!(out, "{indent}  because `{}`:", upstream.task);
                        upstream.explanation.human(depth + 2, out);
                    }
                }
            }
        }
    }
}

impl View for WhyView {
    fn human(&self, _: Mode, text: &mut Text) {
        let out = &mut text.stdout;
        for task in &self.tasks {
            let _ = writeln!(out, "task {} (kind {}) in {}", task.task, task.kind, task.experiment);
            let _ = writeln!(out, "key  {}", task.key);
            task.explanation.human(0, out);
            let parts = serde_json::to_string_pretty(&task.parts).unwrap_or_else(|err| err.to_string());
            let _ = writeln!(out, "key parts:\n{parts}");
        }
    }
}

/// `report`: the reports, and which experiments have reporting tasks not yet computed.
#[derive(Debug, Clone, Serialize)]
pub struct ReportsView {
    pub incomplete: Vec<Incomplete>,
    pub reports: Vec<ReportView>,
}

/// An experiment whose report lacks some tasks.
#[derive(Debug, Clone, Serialize)]
pub struct Incomplete {
    pub experiment: String,
    pub file: PathBuf,
    pub missing: usize,
    pub reported: usize,
}

impl View for ReportsView {
    fn human(&self, mode: Mode, text: &mut Text) {
        for gap in &self.incomplete {
            let _ = writeln!(
                text.stderr,
                "{}: {} of {} reported tasks are not in the cache; run `orchestrate run {}` to compute them",
                gap.experiment,
                gap.missing,
                gap.missing + gap.reported,
                gap.file.display()
            );
        }
        for report in &self.reports {
            report.human(mode, text);
        }
    }
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        self.reports.iter().try_for_each(|report| report.json(out))
    }
    fn ok(&self) -> bool {
        self.incomplete.is_empty()
    }
}

impl View for Collected {
    fn human(&self, _: Mode, text: &mut Text) {
        let out = &mut text.stdout;
        let verb = if self.dry_run { "would remove" } else { "removed" };
        for artifact in &self.artifacts {
            let label = match (&artifact.task, &artifact.experiment) {
                (Some(task), Some(experiment)) => format!("{task} ({experiment})"),
                _ => "unreadable manifest".to_string(),
            };
            let _ = writeln!(out, "{verb} {} {label}", short(&artifact.key));
        }
        for key in &self.resume_states {
            let _ = writeln!(out, "{verb} resume state {}", short(key));
        }
        for staging in &self.abandoned {
            let _ = writeln!(out, "{verb} abandoned {}", staging.display());
        }
        let _ = writeln!(
            out,
            "{verb} {} artifacts ({:.1} MB), kept {}",
            self.artifacts.len(),
            self.bytes() as f64 / 1e6,
            self.kept
        );
    }
}

/// `ls`: what the cache holds.
#[derive(Debug, Clone, Serialize)]
pub struct LsView {
    pub cache: PathBuf,
    pub artifacts: Vec<Listed>,
}

/// One artifact directory of the cache.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Listed {
    Artifact {
        key: String,
        kind: Option<serde_json::Value>,
        task: String,
        experiment: String,
        bytes: u64,
        created: String,
        duration_s: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        peak_rss_bytes: Option<u64>,
    },
    Unreadable {
        key: String,
        error: String,
    },
}

impl Listed {
    pub fn new(key: &str, manifest: &anyhow::Result<Manifest>) -> Self {
        match manifest {
            Ok(m) => Listed::Artifact {
                key: key.to_string(),
                kind: m.parts.get("kind").cloned(),
                task: m.task.clone(),
                experiment: m.experiment.clone(),
                bytes: m.size(),
                created: m.created.clone(),
                duration_s: m.duration_s,
                peak_rss_bytes: m.peak_rss_bytes,
            },
            Err(err) => Listed::Unreadable {
                key: key.to_string(),
                error: format!("{err:#}"),
            },
        }
    }
}

impl View for LsView {
    fn human(&self, _: Mode, text: &mut Text) {
        let mut table = condensed_table(&[
            "key",
            "kind",
            "task",
            "experiment",
            "size",
            "created",
            "took",
            "peak RSS",
        ]);
        let mut total = 0;
        for listed in &self.artifacts {
            match listed {
                Listed::Artifact {
                    key,
                    kind,
                    task,
                    experiment,
                    bytes,
                    created,
                    duration_s,
                    peak_rss_bytes,
                } => {
                    total += bytes;
                    table.add_row([
                        short(key),
                        kind.as_ref().and_then(|k| k.as_str()).unwrap_or("?"),
                        task,
                        experiment,
                        &format!("{:.2} MB", *bytes as f64 / 1e6),
                        created,
                        &human_duration(*duration_s),
                        &peak_rss_bytes.map_or_else(|| "–".to_string(), crate::util::human_bytes),
                    ]);
                }
                Listed::Unreadable { key, error } => {
                    table.add_row([short(key), "?", &format!("unreadable: {error}"), "", "", "", "", ""]);
                }
            }
        }
        let _ = writeln!(
            text.stdout,
            "{} artifacts, {:.1} MB in {}\n{table}",
            self.artifacts.len(),
            total as f64 / 1e6,
            self.cache.display()
        );
    }
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        pretty(out, &self.artifacts)
    }
}

/// `verify`: every artifact re-hashed against its manifest.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyView {
    pub cache: PathBuf,
    pub checked: usize,
    pub corrupt: Vec<CorruptArtifact>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorruptArtifact {
    pub key: String,
    /// Who built it, when the manifest can still be read (it may be what is broken).
    pub task: Option<String>,
    pub experiment: Option<String>,
    pub reason: String,
}

impl View for VerifyView {
    fn human(&self, _: Mode, text: &mut Text) {
        let out = &mut text.stdout;
        for item in &self.corrupt {
            let owner = match (&item.task, &item.experiment) {
                (Some(task), Some(experiment)) => format!("{task} ({experiment})"),
                _ => "unknown task".to_string(),
            };
            let _ = writeln!(out, "corrupt  {}  {owner}: {}", short(&item.key), item.reason);
        }
        let verdict = if self.corrupt.is_empty() {
            "all intact".to_string()
        } else {
            format!(
                "{} corrupt; the next `orchestrate run` that uses them rebuilds them",
                self.corrupt.len()
            )
        };
        let _ = writeln!(
            out,
            "{} artifacts checked in {}: {verdict}",
            self.checked,
            self.cache.display()
        );
    }
    fn ok(&self) -> bool {
        self.corrupt.is_empty()
    }
}

/// `inspect`: a model's module tree and parameter counts under a tuning method.
#[derive(Debug, Clone, Serialize)]
pub struct InspectView {
    pub model: String,
    pub method: String,
    /// As `print(model)` and PEFT's `print_trainable_parameters` show it.
    pub text: String,
}

impl View for InspectView {
    fn human(&self, _: Mode, text: &mut Text) {
        text.stdout += &self.text;
    }
}

impl View for MatmulBench {
    fn human(&self, _: Mode, text: &mut Text) {
        let out = &mut text.stdout;
        let dtype = match self.dtype {
            crate::model::Dtype::Float32 => "float32",
            crate::model::Dtype::Bfloat16 => "bfloat16",
        };
        let _ = writeln!(out, "{dtype} matmul through libtorch, {} threads:", self.threads);
        for r in &self.shapes {
            let _ = writeln!(out, "  [{}×{}]·[{}×{}]  {:.1} GFLOP/s", r.m, r.k, r.k, r.n, r.gflops);
        }
        let _ = writeln!(out, "peak {:.1} GFLOP/s", self.peak_gflops);
    }
    fn json(&self, out: &mut String) -> serde_json::Result<()> {
        line(out, self)
    }
}

impl View for StepBench {
    fn human(&self, _: Mode, text: &mut Text) {
        let out = &mut text.stdout;
        let p = &self.profile;
        let ms = |s: f64| s * 1e3;
        let _ = writeln!(
            out,
            "{} on {}, {:?}, batch {} × {} tokens, {} threads, {} trainable, mean of {} steps:",
            self.method, self.model, self.precision, self.batch, self.seq, self.threads, self.trainable, p.steps
        );
        let _ = writeln!(
            out,
            "  step {:.1} ms = forward {:.1} + backward {:.1} + update {:.1}",
            ms(p.step_s()),
            ms(p.forward_s),
            ms(p.backward_s),
            ms(p.update_s)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::gc::RemovedArtifact;

    fn collected(dry_run: bool) -> Collected {
        Collected {
            dry_run,
            artifacts: vec![
                RemovedArtifact {
                    key: "a".repeat(64),
                    task: Some("logreg".into()),
                    experiment: Some("lab".into()),
                    bytes: 2_500_000,
                },
                RemovedArtifact {
                    key: "b".repeat(64),
                    task: None,
                    experiment: None,
                    bytes: 0,
                },
            ],
            resume_states: vec!["c".repeat(64)],
            abandoned: vec![PathBuf::from("cache/tmp/x.1.0")],
            kept: 3,
        }
    }

    #[test]
    fn text_and_json_come_from_the_same_view() {
        let view = collected(true);
        let human = render(&view, Mode::Human).unwrap();
        assert_eq!(
            human.stdout,
            "would remove aaaaaaaaaaaa logreg (lab)\n\
             would remove bbbbbbbbbbbb unreadable manifest\n\
             would remove resume state cccccccccccc\n\
             would remove abandoned cache/tmp/x.1.0\n\
             would remove 2 artifacts (2.5 MB), kept 3\n"
        );
        assert!(human.stderr.is_empty());
        let json: serde_json::Value = serde_json::from_str(&render(&view, Mode::Json).unwrap().stdout).unwrap();
        assert_eq!(json["artifacts"][0]["task"], "logreg");
        assert_eq!(json["artifacts"][1]["task"], serde_json::Value::Null);
        assert_eq!(json["kept"], 3);
        assert!(render(&collected(false), Mode::Quiet)
            .unwrap()
            .stdout
            .starts_with("removed "));
    }

    #[test]
    fn verify_fails_on_corruption_and_a_detached_run_prints_no_json() {
        let mut verify = VerifyView {
            cache: PathBuf::from("cache"),
            checked: 4,
            corrupt: Vec::new(),
        };
        assert!(verify.ok());
        verify.corrupt.push(CorruptArtifact {
            key: "d".repeat(64),
            task: None,
            experiment: None,
            reason: "manifest.json is missing".into(),
        });
        assert!(!verify.ok());
        let text = render(&verify, Mode::Human).unwrap().stdout;
        assert!(
            text.starts_with("corrupt  dddddddddddd  unknown task: manifest.json is missing\n"),
            "{text}"
        );
        assert!(text.ends_with(
            "4 artifacts checked in cache: 1 corrupt; the next `orchestrate run` that uses them rebuilds them\n"
        ));

        let detached = RunView::Ran {
            failures: Some("1 task failed:\n".into()),
            detached: Some(PathBuf::from("exp.toml")),
            report: None,
            ok: false,
        };
        assert_eq!(render(&detached, Mode::Json).unwrap(), Text::default());
        let human = render(&detached, Mode::Human).unwrap();
        assert!(human.stdout.is_empty());
        assert_eq!(
            human.stderr,
            "1 task failed:\ndetached; follow with `orchestrate status exp.toml --follow`\n"
        );
        assert!(!detached.ok());
    }
}
