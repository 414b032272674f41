//! Runs a plan: every selected task that is not cached, each after its inputs.
//!
//! Two executors share this module's bookkeeping: [`local`] runs tasks on this machine, up
//! to `jobs` at a time; [`slurm`] submits each task as a Slurm job that runs
//! `orchestrate worker` against the same cache directory, chained with job dependencies.
//! Either way a task runs in a private staging directory and is published to the store
//! only when it succeeds, so an interrupted or failed task leaves no artifact. A failure
//! fails the task's dependents (reported as skipped) while independent branches go on,
//! unless `fail_fast`. Ctrl-C sets the cancel flag: running tasks stop at their next check
//! (Slurm jobs are cancelled), nothing new starts. Everything observable is an [`Event`]
//! passed to the caller's callback; the executors know nothing about terminals or JSON.

pub mod local;
pub mod memory;
pub mod slurm;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;

use crate::events::{Envelope, Event};
use crate::graph::TaskGraph;
use crate::plan::{Plan, Status};
use crate::spec::executor::ExecutorKind;
use crate::store::{LockHolder, Lookup, Provenance, Store, TaskRef};
use crate::tasks::{Context, InputArtifact, Metrics, ResumeNotice, ResumeStates};

pub struct Options<'a> {
    pub jobs: usize,
    /// Restrict the run to these tasks (and what they read); `None` runs everything.
    pub only: Option<BTreeSet<usize>>,
    pub fail_fast: bool,
    pub cancel: &'a AtomicBool,
    /// Overrides the experiment's `[executor] kind`.
    pub executor: Option<ExecutorKind>,
    /// Slurm: submit and return without waiting for the jobs.
    pub detach: bool,
}

/// How each task ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Cached,
    Ran {
        duration_s: f64,
        metrics: Metrics,
    },
    Failed(String),
    Skipped(String),
    /// Submitted to Slurm by a detached run; follow it with `orchestrate status --follow`.
    Submitted {
        job: String,
    },
}

#[derive(Debug, Default)]
pub struct Summary {
    pub outcomes: BTreeMap<usize, Outcome>,
}

impl Summary {
    pub fn failures(&self) -> Vec<usize> {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .map(|(i, _)| *i)
            .collect()
    }
    pub fn count(&self, pick: fn(&Outcome) -> bool) -> usize {
        self.outcomes.values().filter(|o| pick(o)).count()
    }
}

/// What every executor starts from: the selected tasks in order and those to run.
pub struct Prepared {
    pub graph: TaskGraph,
    pub order: Vec<usize>,
    pub to_run: BTreeSet<usize>,
}

/// Emits events stamped with the time since the run started.
pub struct Emitter<'a> {
    started: Instant,
    emit: &'a (dyn Fn(Envelope) + Sync),
}

impl<'a> Emitter<'a> {
    pub fn new(emit: &'a (dyn Fn(Envelope) + Sync)) -> Self {
        Self {
            started: Instant::now(),
            emit,
        }
    }

    pub fn send(&self, event: Event) {
        (self.emit)(Envelope {
            elapsed_s: self.started.elapsed().as_secs_f64(),
            event,
        });
    }

    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

pub fn run(plan: &Plan, store: &Store, options: &Options, emit: &(dyn Fn(Envelope) + Sync)) -> Result<Summary> {
    let emitter = Emitter::new(emit);
    let executor = options.executor.unwrap_or(plan.experiment.executor.kind);
    let (prepared, mut summary) = prepare(plan, store, options, executor, &emitter)?;
    match executor {
        ExecutorKind::Local => local::run(plan, store, &prepared, options, &emitter, &mut summary)?,
        ExecutorKind::Slurm => slurm::run(plan, store, &prepared, options, &emitter, &mut summary)?,
    }
    finish(&summary, &emitter);
    Ok(summary)
}

/// Follows the jobs of an earlier (detached) Slurm run of this plan's experiment until
/// every one is over, as that run's driver would have; the summary has the followed jobs.
pub fn follow(
    plan: &Plan,
    store: &Store,
    record: &mut slurm::RunRecord,
    cancel: &AtomicBool,
    emit: &(dyn Fn(Envelope) + Sync),
) -> Result<Summary> {
    let options = Options {
        jobs: 1,
        only: None,
        fail_fast: false,
        cancel,
        executor: Some(ExecutorKind::Slurm),
        detach: false,
    };
    let graph = TaskGraph::new(&plan.experiment.tasks);
    let mut summary = Summary::default();
    slurm::follow(plan, store, &graph, record, &options, &Emitter::new(emit), &mut summary)?;
    Ok(summary)
}

/// Selects the tasks, announces the run and reports (and records) the cached ones.
fn prepare(
    plan: &Plan,
    store: &Store,
    options: &Options,
    executor: ExecutorKind,
    emitter: &Emitter,
) -> Result<(Prepared, Summary)> {
    let experiment = plan.experiment;
    let graph = TaskGraph::new(&experiment.tasks);
    let selected: BTreeSet<usize> = match &options.only {
        Some(roots) => graph.with_dependencies(&roots.iter().copied().collect::<Vec<_>>()),
        None => (0..experiment.tasks.len()).collect(),
    };
    let order: Vec<usize> = graph
        .topological_order()
        .into_iter()
        .filter(|i| selected.contains(i))
        .collect();
    let to_run: BTreeSet<usize> = order
        .iter()
        .copied()
        .filter(|&i| !plan.entries[i].status.is_cached())
        .collect();
    let estimates = crate::estimate::estimate(plan, store);
    let estimated: BTreeMap<String, f64> = to_run
        .iter()
        .filter_map(|&i| Some((experiment.tasks[i].name.clone(), estimates.seconds[i]?)))
        .collect();
    emitter.send(Event::RunStarted {
        experiment: experiment.name.clone(),
        tasks: order.len(),
        to_run: to_run.len(),
        cached: order.len() - to_run.len(),
        without_estimate: to_run.len() - estimated.len(),
        estimates: estimated,
        jobs: if executor == ExecutorKind::Local {
            options.jobs
        } else {
            to_run.len()
        },
    });
    let mut summary = Summary::default();
    for &index in &order {
        if plan.entries[index].status.is_cached() {
            write_task_ref(store, plan, index)?;
            // Left by a run killed between publishing the artifact and removing these.
            let _ = store.remove_resume_states(&plan.entries[index].key);
            emitter.send(Event::TaskCached {
                task: experiment.tasks[index].name.clone(),
                key: plan.entries[index].key.clone(),
            });
            summary.outcomes.insert(index, Outcome::Cached);
        }
    }
    Ok((Prepared { graph, order, to_run }, summary))
}

fn finish(summary: &Summary, emitter: &Emitter) {
    emitter.send(Event::RunFinished {
        ran: summary.count(|o| matches!(o, Outcome::Ran { .. })),
        cached: summary.count(|o| matches!(o, Outcome::Cached)),
        failed: summary.count(|o| matches!(o, Outcome::Failed(_))),
        skipped: summary.count(|o| matches!(o, Outcome::Skipped(_))),
        duration_s: emitter.elapsed_s(),
    });
}

/// The reasons a task runs, as shown to users.
pub fn reasons(plan: &Plan, index: usize) -> Vec<String> {
    match &plan.entries[index].status {
        Status::Run(reasons) => reasons.iter().map(ToString::to_string).collect(),
        Status::Cached(_) => Vec::new(),
    }
}

/// Marks everything downstream of a failed task as skipped; returns the tasks marked.
fn skip_dependents(
    plan: &Plan,
    graph: &TaskGraph,
    failed: usize,
    pending: &mut BTreeSet<usize>,
    emitter: &Emitter,
    summary: &mut Summary,
) -> Vec<usize> {
    let experiment = plan.experiment;
    let because = format!("`{}` failed", experiment.tasks[failed].name);
    let mut skipped = Vec::new();
    let mut stack: Vec<usize> = graph.dependents(failed).collect();
    while let Some(dependent) = stack.pop() {
        if pending.remove(&dependent) {
            emitter.send(Event::TaskSkipped {
                task: experiment.tasks[dependent].name.clone(),
                because: because.clone(),
            });
            summary.outcomes.insert(dependent, Outcome::Skipped(because.clone()));
            skipped.push(dependent);
            stack.extend(graph.dependents(dependent));
        }
    }
    skipped
}

/// Runs one task in a staging directory and publishes its artifact; `Outcome::Cached` when
/// another process published it while this one waited for the artifact lock. Its inputs
/// must be in the store. Used by the local executor and by `orchestrate worker` in Slurm jobs.
pub fn execute(
    plan: &Plan,
    store: &Store,
    index: usize,
    cancel: &AtomicBool,
    emitter: &Emitter,
) -> Result<Outcome, String> {
    let experiment = plan.experiment;
    let task = &experiment.tasks[index];
    let entry = &plan.entries[index];
    // Held until the artifact is published (or the task failed): another orchestrate on this
    // cache building the same key makes us wait, and then its verified artifact is ours.
    let on_wait = |holder: Option<LockHolder>| {
        emitter.send(Event::TaskWaiting {
            task: task.name.clone(),
            key: entry.key.clone(),
            holder_pid: holder.as_ref().map(|h| h.pid),
            holder_task: holder.map(|h| h.task),
        })
    };
    let me = LockHolder::this_process(&task.name, &experiment.name);
    let _lock = store
        .lock(&entry.key, &me, &on_wait, cancel)
        .map_err(|err| format!("{err:#}"))?;
    if let Lookup::Hit(_) = store.lookup(&entry.key) {
        write_task_ref(store, plan, index).map_err(|err| format!("{err:#}"))?;
        return Ok(Outcome::Cached);
    }
    emitter.send(Event::TaskStarted {
        task: task.name.clone(),
        kind: task.kind.kind().to_string(),
        key: entry.key.clone(),
        reasons: reasons(plan, index),
    });
    let started = Instant::now();
    let memory = memory::PeakWindow::start();
    let result = (|| -> Result<Outcome> {
        let staging = store.stage(&entry.key)?;
        let inputs = task
            .inputs
            .iter()
            .map(|(slot, &upstream)| {
                let artifact = InputArtifact {
                    task: experiment.tasks[upstream].name.clone(),
                    kind: experiment.tasks[upstream].kind.kind().to_string(),
                    dir: store.artifact_dir(&plan.entries[upstream].key),
                };
                (slot.clone(), artifact)
            })
            .collect();
        let progress = |done: u64, total: u64, message: &str| {
            emitter.send(Event::TaskProgress {
                task: task.name.clone(),
                done,
                total,
                message: message.to_string(),
            })
        };
        let parts = serde_json::to_value(&entry.parts)?;
        let notify = |notice: ResumeNotice| {
            let (task, key) = (task.name.clone(), entry.key.clone());
            emitter.send(match notice {
                ResumeNotice::Resumed { epoch, epochs } => Event::TaskResumed {
                    task,
                    key,
                    epoch,
                    epochs,
                },
                ResumeNotice::Ignored { reason } => Event::ResumeStateIgnored { task, key, reason },
            })
        };
        let ctx = Context {
            out_dir: staging.path().to_path_buf(),
            base_dir: task.base_dir.clone(),
            inputs,
            progress: &progress,
            cancel,
            resume: Some(ResumeStates {
                store,
                key: &entry.key,
                parts: &parts,
                task: &task.name,
                experiment: &experiment.name,
                notify: &notify,
            }),
        };
        let mut metrics = task.kind.run(&task.params, &ctx)?;
        metrics.peak_rss_bytes = memory.finish();
        crate::util::write_atomic(&ctx.output("metrics.json"), &serde_json::to_vec_pretty(&metrics)?)?;
        let duration_s = started.elapsed().as_secs_f64();
        // Before publishing: a task whose ref cannot be written (full disk) fails whole.
        write_task_ref(store, plan, index)?;
        let provenance = Provenance {
            task: &task.name,
            experiment: &experiment.name,
            duration_s,
            peak_rss_bytes: metrics.peak_rss_bytes,
        };
        store.publish(staging, &entry.key, &parts, &provenance)?;
        // The artifact supersedes the training's resume states (a crash right here leaves
        // them to the next run, which finds the artifact cached and removes them).
        let _ = store.remove_resume_states(&entry.key);
        Ok(Outcome::Ran { duration_s, metrics })
    })();
    result.map_err(|err| format!("{err:#}"))
}

/// Records the key a task resolved to, for `why` (see `Store::write_ref`).
fn write_task_ref(store: &Store, plan: &Plan, index: usize) -> Result<()> {
    let entry = &plan.entries[index];
    let task_ref = TaskRef {
        key: entry.key.clone(),
        parts: serde_json::to_value(&entry.parts)?,
    };
    store.write_ref(&plan.experiment.name, &plan.experiment.tasks[index].name, &task_ref)
}
