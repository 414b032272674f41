//! The local executor: tasks run in threads of this process, up to `jobs` at a time, each
//! as soon as its inputs are done.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use anyhow::{Context as _, Result};

use super::{execute, skip_dependents, Emitter, Options, Outcome, Prepared, Summary};
use crate::events::Event;
use crate::plan::Plan;
use crate::store::Store;

pub fn run(
    plan: &Plan,
    store: &Store,
    prepared: &Prepared,
    options: &Options,
    emitter: &Emitter,
    summary: &mut Summary,
) -> Result<()> {
    let experiment = plan.experiment;
    let graph = &prepared.graph;
    let to_run = &prepared.to_run;
    // Tasks wait for their uncached inputs; `waiting[i]` counts those still to finish.
    let mut waiting: BTreeMap<usize, usize> = to_run
        .iter()
        .map(|&i| (i, graph.dependencies(i).filter(|d| to_run.contains(d)).count()))
        .collect();
    let mut pending: BTreeSet<usize> = to_run.clone();
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
                let Some(index) = ready.pop_first() else { break };
                running += 1;
                let done_tx = done_tx.clone();
                scope.spawn(move || {
                    // A panicking task fails alone: the run must still hear from it.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        execute(plan, store, index, options.cancel, emitter)
                    }))
                    .unwrap_or_else(|panic| Err(format!("internal error: the task panicked: {}", panic_text(&panic))));
                    let _ = done_tx.send((index, result));
                });
            }
            if running == 0 {
                break;
            }
            let (index, result) = done_rx.recv().context("internal: worker channel closed")?;
            running -= 1;
            pending.remove(&index);
            let task = &experiment.tasks[index];
            match result {
                Ok(outcome) => {
                    let key = plan.entries[index].key.clone();
                    emitter.send(match &outcome {
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
                    emitter.send(Event::TaskFailed {
                        task: task.name.clone(),
                        error: error.clone(),
                    });
                    summary.outcomes.insert(index, Outcome::Failed(error));
                    if options.fail_fast {
                        stop.store(true, Ordering::Relaxed);
                    }
                    for skipped in skip_dependents(plan, graph, index, &mut pending, emitter, summary) {
                        ready.remove(&skipped);
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
    for index in pending {
        emitter.send(Event::TaskSkipped {
            task: experiment.tasks[index].name.clone(),
            because: because.to_string(),
        });
        summary.outcomes.insert(index, Outcome::Skipped(because.to_string()));
    }
    Ok(())
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}
