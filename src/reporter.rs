//! Reporters: turn scheduler events into terminal progress (indicatif, on stderr) or JSON
//! lines (stdout).

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal as _, Write as _};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Envelope, Event};
use crate::graph::TaskGraph;
use crate::plan::short;
use crate::scheduler::{Outcome, Summary};
use crate::spec::Experiment;
use crate::util::human_duration;

/// How much the terminal reporter says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Human,
    Quiet,
    Json,
}

pub struct Reporter {
    mode: Mode,
    bars: MultiProgress,
    /// Plain progress lines instead of bars (stderr is not a terminal): how often.
    plain_interval: Option<Duration>,
    state: Mutex<State>,
}

/// How often plain progress lines are printed unless `--progress-interval` says otherwise.
pub const DEFAULT_PROGRESS_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    running: HashMap<String, Running>,
    run: Option<RunProgress>,
}

struct Running {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

/// The whole run, for the overall line.
struct RunProgress {
    started: Instant,
    to_run: usize,
    finished: usize,
    /// Estimated seconds of the tasks still to finish.
    estimates: BTreeMap<String, f64>,
    without_estimate: usize,
    bar: Option<ProgressBar>,
}

impl RunProgress {
    /// Estimated seconds left: each unfinished task's estimate less what it has run so far.
    fn remaining_s(&self, running: &HashMap<String, Running>) -> f64 {
        self.estimates
            .iter()
            .map(|(task, estimate)| {
                let spent = running.get(task).map_or(0.0, |r| r.started.elapsed().as_secs_f64());
                (estimate - spent).max(0.0)
            })
            .sum()
    }

    fn summary(&self, running: &HashMap<String, Running>) -> String {
        let mut text = format!(
            "{}/{} tasks done, {} elapsed",
            self.finished,
            self.to_run,
            human_duration(self.started.elapsed().as_secs_f64())
        );
        if !self.estimates.is_empty() {
            text += &format!(", ~{} left", human_duration(self.remaining_s(running)));
        }
        if self.without_estimate > 0 {
            text += &format!(" ({} without an estimate)", self.without_estimate);
        }
        text
    }
}

impl Reporter {
    pub fn new(mode: Mode) -> Self {
        Self::with_interval(mode, DEFAULT_PROGRESS_INTERVAL)
    }

    /// `interval`: how often a plain progress line is printed per task when stderr is not
    /// a terminal (pipes, CI, Slurm job logs); bars are drawn on a terminal.
    pub fn with_interval(mode: Mode, interval: Duration) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let target = if mode == Mode::Human && terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            mode,
            bars: MultiProgress::with_draw_target(target),
            plain_interval: (mode == Mode::Human && !terminal).then_some(interval),
            state: Mutex::new(State::default()),
        }
    }

    fn line(&self, text: String) {
        if self.mode == Mode::Human {
            if self.bars.is_hidden() {
                to_stderr(format_args!("{text}"));
            } else {
                let _ = self.bars.println(text);
            }
        }
    }

    pub fn handle(&self, envelope: Envelope) {
        if self.mode == Mode::Json {
            if let Ok(line) = serde_json::to_string(&envelope) {
                to_stdout(&line);
            }
            return;
        }
        let mut state = self.state.lock().expect("reporter lock");
        let State { running, run } = &mut *state;
        match envelope.event {
            Event::RunStarted {
                experiment,
                tasks,
                to_run,
                cached,
                jobs,
                estimates,
                without_estimate,
            } => {
                let mut text = format!("{experiment}: {tasks} tasks, {to_run} to run, {cached} cached (-j {jobs})");
                if to_run > 0 {
                    text += &estimate_text(estimates.values().sum(), estimates.len(), without_estimate);
                }
                self.line(text);
                let bar = (!self.bars.is_hidden() && to_run > 0).then(|| {
                    let bar = self.bars.add(ProgressBar::new(to_run as u64));
                    bar.set_style(ProgressStyle::with_template("{wide_msg}").expect("valid template"));
                    bar
                });
                let progress = RunProgress {
                    started: Instant::now(),
                    to_run,
                    finished: 0,
                    estimates,
                    without_estimate,
                    bar,
                };
                if let Some(bar) = &progress.bar {
                    bar.set_message(progress.summary(running));
                }
                *run = Some(progress);
            }
            Event::TaskCached { task, key } => self.line(format!("   cached  {task} ({})", short(&key))),
            Event::TaskSubmitted { task, job } => self.line(format!("submitted  {task} as Slurm job {job}")),
            Event::TaskWaiting {
                task,
                holder_pid,
                holder_task,
                ..
            } => {
                let by = match (holder_pid, holder_task) {
                    (Some(pid), Some(other)) if pid == std::process::id() => format!("`{other}` of this run"),
                    (Some(pid), _) => format!("another orchestrate (pid {pid})"),
                    (None, _) => "another orchestrate".to_string(),
                };
                self.line(format!("  waiting  for {task}, being built by {by}"));
            }
            Event::TaskStarted {
                task, kind, reasons, ..
            } => {
                for reason in reasons.iter().filter(|r| r.starts_with("cached artifact is corrupt")) {
                    to_stderr(format_args!("warning: {task}: {reason}"));
                }
                let estimate = run
                    .as_ref()
                    .and_then(|r| r.estimates.get(&task))
                    .map(|s| format!(" (estimated {})", human_duration(*s)))
                    .unwrap_or_default();
                self.line(format!("  running  {task} [{kind}]: {}{estimate}", reasons.join("; ")));
                let bar = (!self.bars.is_hidden()).then(|| {
                    let bar = self.bars.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} {wide_msg} {elapsed}")
                            .expect("valid template"),
                    );
                    bar.set_prefix(task.clone());
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                let now = Instant::now();
                running.insert(
                    task,
                    Running {
                        bar,
                        started: now,
                        last_line: now,
                    },
                );
            }
            Event::TaskResumed {
                task, epoch, epochs, ..
            } => self.line(format!("  resumed  {task} after epoch {epoch}/{epochs}")),
            Event::ResumeStateIgnored { task, reason, .. } => {
                to_stderr(format_args!(
                    "warning: {task}: ignoring its resume state, training from scratch: {reason}"
                ));
            }
            Event::TaskProgress {
                task,
                done,
                total,
                message,
            } => {
                let overall = run.as_ref().map(|r| r.summary(running));
                let Some(current) = running.get_mut(&task) else {
                    return;
                };
                if let Some(bar) = &current.bar {
                    if total > 0 && bar.length() != Some(total) {
                        bar.set_length(total);
                        bar.set_style(
                            ProgressStyle::with_template("  {prefix} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                                .expect("valid template")
                                .progress_chars("=> "),
                        );
                    }
                    bar.set_position(done);
                    bar.set_message(message);
                    if let (Some(run), Some(overall)) = (run.as_ref(), overall) {
                        if let Some(bar) = &run.bar {
                            bar.set_message(overall);
                        }
                    }
                } else if let Some(interval) = self.plain_interval {
                    if current.last_line.elapsed() >= interval {
                        current.last_line = Instant::now();
                        let line = plain_progress(&task, done, total, &message, current.started.elapsed());
                        let overall = overall.map(|o| format!(" | {o}")).unwrap_or_default();
                        to_stderr(format_args!("{line}{overall}"));
                    }
                }
            }
            Event::TaskFinished {
                task,
                duration_s,
                metrics,
                ..
            } => {
                self.task_ended(running, run, &task);
                let accuracy = metrics
                    .accuracy
                    .map(|a| format!(", accuracy {a:.3}"))
                    .unwrap_or_default();
                self.line(format!("     done  {task} in {}{accuracy}", human_duration(duration_s)));
            }
            Event::TaskFailed { task, error } => {
                self.task_ended(running, run, &task);
                if self.mode == Mode::Quiet {
                    to_stderr(format_args!("FAILED {task}: {error}"));
                } else {
                    self.line(format!("   FAILED  {task}: {error}"));
                }
            }
            Event::TaskSkipped { task, because } => self.line(format!("  skipped  {task}: {because}")),
            Event::RunFinished {
                ran,
                cached,
                failed,
                skipped,
                duration_s,
            } => {
                if let Some(bar) = run.take().and_then(|r| r.bar) {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                let mut text = format!("{ran} ran, {cached} cached");
                if failed > 0 {
                    text += &format!(", {failed} failed");
                }
                if skipped > 0 {
                    text += &format!(", {skipped} skipped");
                }
                self.line(format!("{text} in {}", human_duration(duration_s)));
            }
        }
    }

    fn task_ended(&self, running: &mut HashMap<String, Running>, run: &mut Option<RunProgress>, task: &str) {
        if let Some(bar) = running.remove(task).and_then(|r| r.bar) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        if let Some(run) = run {
            run.finished += 1;
            if run.estimates.remove(task).is_none() {
                run.without_estimate = run.without_estimate.saturating_sub(1);
            }
            if let Some(bar) = &run.bar {
                bar.set_position(run.finished as u64);
                bar.set_message(run.summary(running));
            }
        }
    }
}

/// A closed pipe (`orchestrate run … 2>&1 | head`) must not panic the task that reports.
fn to_stderr(text: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

fn to_stdout(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// `; estimated 1 h 20 m (3 without an estimate yet)` for the run's first line.
pub fn estimate_text(total_s: f64, with: usize, without: usize) -> String {
    match (with, without) {
        (0, _) => ", no estimate yet (no finished task of these kinds in this cache)".to_string(),
        (_, 0) => format!(", estimated {}", human_duration(total_s)),
        (_, n) => format!(
            ", estimated {} (+ {n} without an estimate yet)",
            human_duration(total_s)
        ),
    }
}

/// One progress line for logs: `progress  finetune 120/750 (16%) epoch 1/3 loss 0.41 …`.
fn plain_progress(task: &str, done: u64, total: u64, message: &str, elapsed: Duration) -> String {
    let elapsed_s = elapsed.as_secs_f64();
    let mut text = format!(" progress  {task} {done}");
    if total > 0 {
        text += &format!("/{total} ({:.0}%)", 100.0 * done as f64 / total as f64);
    }
    if !message.is_empty() {
        text += &format!(" {message}");
    }
    text += &format!(", {} elapsed", human_duration(elapsed_s));
    if total > 0 && done > 0 && done < total {
        let eta = elapsed_s * (total - done) as f64 / done as f64;
        text += &format!(", eta {}", human_duration(eta));
    }
    text
}

/// The end-of-run list of failures, for the terminal: each failed task with its error and
/// how many of its dependents were skipped because of it. `None` when nothing failed.
pub fn failure_summary(experiment: &Experiment, summary: &Summary) -> Option<String> {
    let failures = summary.failures();
    if failures.is_empty() {
        return None;
    }
    let graph = TaskGraph::new(&experiment.tasks);
    let mut text = format!("{} failed:\n", plural(failures.len(), "task"));
    for index in failures {
        let Some(Outcome::Failed(error)) = summary.outcomes.get(&index) else {
            continue;
        };
        let skipped = graph
            .with_dependents(&[index])
            .into_iter()
            .filter(|d| matches!(summary.outcomes.get(d), Some(Outcome::Skipped(_))))
            .count();
        let skipped = match skipped {
            0 => String::new(),
            n => format!(" ({} skipped)", plural(n, "dependent")),
        };
        text += &format!("  {}: {error}{skipped}\n", experiment.tasks[index].name);
    }
    Some(text)
}

fn plural(count: usize, noun: &str) -> String {
    format!("{count} {noun}{}", if count == 1 { "" } else { "s" })
}
