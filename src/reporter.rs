//! Reporters: turn scheduler events into terminal progress (indicatif, on stderr) or JSON
//! lines (stdout).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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
    running: Mutex<HashMap<String, ProgressBar>>,
}

impl Reporter {
    pub fn new(mode: Mode) -> Self {
        let target = if mode == Mode::Human {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            mode,
            bars: MultiProgress::with_draw_target(target),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        if self.mode == Mode::Human {
            if self.bars.is_hidden() {
                eprintln!("{text}");
            } else {
                let _ = self.bars.println(text);
            }
        }
    }

    pub fn handle(&self, envelope: Envelope) {
        if self.mode == Mode::Json {
            if let Ok(line) = serde_json::to_string(&envelope) {
                println!("{line}");
            }
            return;
        }
        let mut running = self.running.lock().expect("reporter lock");
        match envelope.event {
            Event::RunStarted {
                experiment,
                tasks,
                to_run,
                cached,
                jobs,
            } => {
                self.line(format!(
                    "{experiment}: {tasks} tasks, {to_run} to run, {cached} cached (-j {jobs})"
                ));
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
                    eprintln!("warning: {task}: {reason}");
                }
                self.line(format!("  running  {task} [{kind}]: {}", reasons.join("; ")));
                let bar = self.bars.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix} {wide_msg} {elapsed}").expect("valid template"),
                );
                bar.set_prefix(task.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                running.insert(task, bar);
            }
            Event::TaskResumed {
                task, epoch, epochs, ..
            } => self.line(format!("  resumed  {task} after epoch {epoch}/{epochs}")),
            Event::ResumeStateIgnored { task, reason, .. } => {
                eprintln!("warning: {task}: ignoring its resume state, training from scratch: {reason}");
            }
            Event::TaskProgress {
                task,
                done,
                total,
                message,
            } => {
                if let Some(bar) = running.get(&task) {
                    if total > 0 && bar.length() != Some(total) {
                        bar.set_length(total);
                        bar.set_style(
                            ProgressStyle::with_template(
                                "  {prefix} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
                            )
                            .expect("valid template")
                            .progress_chars("=> "),
                        );
                    }
                    bar.set_position(done);
                    bar.set_message(message);
                }
            }
            Event::TaskFinished {
                task,
                duration_s,
                metrics,
                ..
            } => {
                if let Some(bar) = running.remove(&task) {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                let accuracy = metrics
                    .accuracy
                    .map(|a| format!(", accuracy {a:.3}"))
                    .unwrap_or_default();
                self.line(format!("     done  {task} in {}{accuracy}", human_duration(duration_s)));
            }
            Event::TaskFailed { task, error } => {
                if let Some(bar) = running.remove(&task) {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                if self.mode == Mode::Quiet {
                    eprintln!("FAILED {task}: {error}");
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
