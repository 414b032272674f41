//! The contract between the scheduler and reporters: owned, serializable events with
//! lifecycle names. The scheduler emits them through a callback and knows nothing about
//! terminals or JSON; `crate::reporter` turns them into progress bars or JSON lines.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::tasks::Metrics;

/// An event with the seconds since the run started.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope {
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Planning is done; `to_run` tasks will execute, `cached` come from the cache.
    RunStarted {
        experiment: String,
        tasks: usize,
        to_run: usize,
        cached: usize,
        jobs: usize,
        /// Estimated seconds of the tasks to run that have an estimate (`crate::estimate`).
        estimates: BTreeMap<String, f64>,
        /// Tasks to run with no estimate yet (no finished task of their kind in the cache).
        without_estimate: usize,
    },
    /// A task's artifact was found (and verified) in the cache: when the run was planned, or
    /// after waiting for another process that was building it (see `TaskWaiting`).
    TaskCached {
        task: String,
        key: String,
    },
    /// A task was submitted to a cluster as a job (Slurm executor).
    TaskSubmitted {
        task: String,
        job: String,
    },
    /// Another process (or another task of this run with the same key) holds the task's
    /// artifact lock; the task waits, then reuses what it published or builds it itself.
    TaskWaiting {
        task: String,
        key: String,
        /// The holder as its lock file names it, when readable.
        holder_pid: Option<u32>,
        holder_task: Option<String>,
    },
    /// A task started; `reasons` say why it was not cached.
    TaskStarted {
        task: String,
        kind: String,
        key: String,
        reasons: Vec<String>,
    },
    /// A training task continues from the state it saved after `epoch` of `epochs` in an
    /// earlier, interrupted run.
    TaskResumed {
        task: String,
        key: String,
        epoch: usize,
        epochs: usize,
    },
    /// A training task's saved state was unusable (corrupt, or not for this model): it
    /// trains from scratch.
    ResumeStateIgnored {
        task: String,
        key: String,
        reason: String,
    },
    /// Progress inside a long task (`total` 0 when unknown).
    TaskProgress {
        task: String,
        done: u64,
        total: u64,
        message: String,
    },
    /// A task finished and its artifact is published.
    TaskFinished {
        task: String,
        key: String,
        duration_s: f64,
        metrics: Metrics,
    },
    TaskFailed {
        task: String,
        error: String,
    },
    /// Not run because a task it depends on failed (or the run stopped).
    TaskSkipped {
        task: String,
        because: String,
    },
    RunFinished {
        ran: usize,
        cached: usize,
        failed: usize,
        skipped: usize,
        duration_s: f64,
    },
}

impl Event {
    pub fn task(&self) -> Option<&str> {
        match self {
            Event::TaskCached { task, .. }
            | Event::TaskSubmitted { task, .. }
            | Event::TaskWaiting { task, .. }
            | Event::TaskStarted { task, .. }
            | Event::TaskResumed { task, .. }
            | Event::ResumeStateIgnored { task, .. }
            | Event::TaskProgress { task, .. }
            | Event::TaskFinished { task, .. }
            | Event::TaskFailed { task, .. }
            | Event::TaskSkipped { task, .. } => Some(task),
            Event::RunStarted { .. } | Event::RunFinished { .. } => None,
        }
    }
}
