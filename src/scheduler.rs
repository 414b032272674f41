//! Runs a plan: every selected task that is not cached, each after its inputs, up to
//! `jobs` at a time.
//!
//! A task runs in a private staging directory and is published to the store only when it
//! succeeds, so an interrupted or failed task leaves no artifact. A failure fails the task's
//! dependents (reported as skipped) while independent branches go on, unless `fail_fast`.
//! Ctrl-C sets the cancel flag: running tasks stop at their next check, nothing new starts.
//! Everything observable is an [`Event`] passed to the caller's callback.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::events::{Envelope, Event};
use crate::graph::TaskGraph;
use crate::plan::{Plan, Status};
use crate::store::{LockHolder, Lookup, Provenance, Store, TaskRef};
use crate::tasks::{Context, InputArtifact, Metrics};

pub struct Options<'a> {
    pub jobs: usize,
    /// Restrict the run to these tasks (and what they read); `None` runs everything.
    pub only: Option<BTreeSet<usize>>,
    pub fail_fast: bool,
    pub cancel: &'a AtomicBool,
}

/// How each task ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Cached,
    Ran { duration_s: f64, metrics: Metrics },
    Failed(String),
    Skipped(String),
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

pub fn run(plan: &Plan, store: &Store, options: &Options, emit: &(dyn Fn(Envelope) + Sync)) -> Result<Summary> {
    let started = Instant::now();
    let send = |event: Event| {
        emit(Envelope {
            elapsed_s: started.elapsed().as_secs_f64(),
            event,
        })
    };
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
    send(Event::RunStarted {
        experiment: experiment.name.clone(),
        tasks: order.len(),
        to_run: to_run.len(),
        cached: order.len() - to_run.len(),
        jobs: options.jobs,
    });

    let mut summary = Summary::default();
    for &index in &order {
        if let Status::Cached(_) = plan.entries[index].status {
            write_task_ref(store, plan, index)?;
            send(Event::TaskCached {
                task: experiment.tasks[index].name.clone(),
                key: plan.entries[index].key.clone(),
            });
            summary.outcomes.insert(index, Outcome::Cached);
        }
    }

    // Tasks wait for their uncached inputs; `waiting[i]` counts those still to finish.
    let mut waiting: BTreeMap<usize, usize> = to_run
        .iter()
        .map(|&i| (i, graph.dependencies(i).filter(|d| to_run.contains(d)).count()))
        .collect();
    let mut ready: BTreeSet<usize> = waiting.iter().filter(|(_, n)| **n == 0).map(|(i, _)| *i).collect();
    let mut running = 0usize;
    let stop = AtomicBool::new(false);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<Outcome, String>)>();

    std::thread::scope(|scope| -> Result<()> {
        loop {
            while running < options.jobs.max(1)
                && !stop.load(Ordering::Relaxed)
                && !options.cancel.load(Ordering::Relaxed)
            {
                let Some(index) = ready.pop_first() else {
                    break;
                };
                running += 1;
                let done_tx = done_tx.clone();
                let send = &send;
                scope.spawn(move || {
                    let result = execute(plan, store, index, options.cancel, send);
                    let _ = done_tx.send((index, result));
                });
            }
            if running == 0 {
                break;
            }
            let (index, result) = done_rx.recv().context("internal: worker channel closed")?;
            running -= 1;
            waiting.remove(&index);
            let task = &experiment.tasks[index];
            match result {
                Ok(outcome) => {
                    let key = plan.entries[index].key.clone();
                    send(match &outcome {
                        Outcome::Ran { duration_s, metrics } => Event::TaskFinished {
                            task: task.name.clone(),
                            key,
                            duration_s: *duration_s,
                            metrics: metrics.clone(),
                        },
                        _ => Event::TaskCached {
                            task: task.name.clone(),
                            key,
                        },
                    });
                    summary.outcomes.insert(index, outcome);
                    for dependent in graph.dependents(index) {
                        if let Some(count) = waiting.get_mut(&dependent) {
                            *count -= 1;
                            if *count == 0 {
                                ready.insert(dependent);
                            }
                        }
                    }
                }
                Err(error) => {
                    send(Event::TaskFailed {
                        task: task.name.clone(),
                        error: error.clone(),
                    });
                    summary.outcomes.insert(index, Outcome::Failed(error));
                    if options.fail_fast {
                        stop.store(true, Ordering::Relaxed);
                    }
                    // Everything downstream of the failure cannot run.
                    let mut stack: Vec<usize> = graph.dependents(index).collect();
                    while let Some(dependent) = stack.pop() {
                        if waiting.remove(&dependent).is_some() {
                            ready.remove(&dependent);
                            let because = format!("`{}` failed", task.name);
                            send(Event::TaskSkipped {
                                task: experiment.tasks[dependent].name.clone(),
                                because: because.clone(),
                            });
                            summary.outcomes.insert(dependent, Outcome::Skipped(because));
                            stack.extend(graph.dependents(dependent));
                        }
                    }
                }
            }
        }
        Ok(())
    })?;

    // Whatever did not start: stopped by --fail-fast or Ctrl-C.
    let because = if options.cancel.load(Ordering::Relaxed) {
        "the run was interrupted"
    } else {
        "the run stopped at the first failure"
    };
    for (&index, _) in &waiting {
        send(Event::TaskSkipped {
            task: experiment.tasks[index].name.clone(),
            because: because.to_string(),
        });
        summary.outcomes.insert(index, Outcome::Skipped(because.to_string()));
    }
    send(Event::RunFinished {
        ran: summary.count(|o| matches!(o, Outcome::Ran { .. })),
        cached: summary.count(|o| matches!(o, Outcome::Cached)),
        failed: summary.count(|o| matches!(o, Outcome::Failed(_))),
        skipped: summary.count(|o| matches!(o, Outcome::Skipped(_))),
        duration_s: started.elapsed().as_secs_f64(),
    });
    Ok(summary)
}

/// Runs one task in a staging directory and publishes its artifact; `Outcome::Cached` when
/// another process published it while this one waited for the artifact lock.
fn execute(
    plan: &Plan,
    store: &Store,
    index: usize,
    cancel: &AtomicBool,
    send: &(dyn Fn(Event) + Sync),
) -> Result<Outcome, String> {
    let experiment = plan.experiment;
    let task = &experiment.tasks[index];
    let entry = &plan.entries[index];
    // Held until the artifact is published (or the task failed): another orchestrate on this
    // cache building the same key makes us wait, and then its verified artifact is ours.
    let on_wait = |holder: Option<LockHolder>| {
        send(Event::TaskWaiting {
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
    let reasons = match &entry.status {
        Status::Run(reasons) => reasons.iter().map(ToString::to_string).collect(),
        Status::Cached(_) => Vec::new(),
    };
    send(Event::TaskStarted {
        task: task.name.clone(),
        kind: task.kind.kind().to_string(),
        key: entry.key.clone(),
        reasons,
    });
    let started = Instant::now();
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
            send(Event::TaskProgress {
                task: task.name.clone(),
                done,
                total,
                message: message.to_string(),
            })
        };
        let ctx = Context {
            out_dir: staging.path().to_path_buf(),
            base_dir: task.base_dir.clone(),
            inputs,
            progress: &progress,
            cancel,
        };
        let metrics = task.kind.run(&task.params, &ctx)?;
        crate::util::write_atomic(&ctx.output("metrics.json"), &serde_json::to_vec_pretty(&metrics)?)?;
        let duration_s = started.elapsed().as_secs_f64();
        let parts = serde_json::to_value(&entry.parts)?;
        // Before publishing: a task whose ref cannot be written (full disk) fails whole.
        write_task_ref(store, plan, index)?;
        store.publish(
            staging,
            &entry.key,
            &parts,
            &Provenance {
                task: &task.name,
                experiment: &experiment.name,
                duration_s,
            },
        )?;
        Ok(Outcome::Ran { duration_s, metrics })
    })();
    result.map_err(|err| format!("{err:#}"))
}

/// Records the key a task resolved to, for `why` (see `Store::write_ref`).
fn write_task_ref(store: &Store, plan: &Plan, index: usize) -> Result<()> {
    let entry = &plan.entries[index];
    store.write_ref(
        &plan.experiment.name,
        &plan.experiment.tasks[index].name,
        &TaskRef {
            key: entry.key.clone(),
            parts: serde_json::to_value(&entry.parts)?,
        },
    )
}
