//! Following a Slurm run as a pure transition: given the run's job records and what one
//! poll observed (job states from `squeue`/`scontrol`, the store's verdict on the artifacts
//! of jobs that are over, whether the run was interrupted), [`Follow::step`] updates the
//! records and says what happened, as [`Step`]s. The driver (`super::follow`) does the I/O:
//! it polls, applies the steps (events, `scancel`) and saves the record.

use std::collections::BTreeMap;
use std::fmt;

use super::job::{JobOutcome, JobState};
use super::JobRecord;
use crate::tasks::Metrics;

/// The store's verdict on a job's artifact.
#[derive(Debug, Clone, PartialEq)]
pub enum Artifact {
    Published { duration_s: f64, metrics: Metrics },
    Missing,
    Corrupt(String),
}

/// What one poll saw.
pub struct Observation<'a> {
    /// Job id → state; jobs Slurm no longer knows are absent.
    pub states: &'a BTreeMap<String, JobState>,
    /// Asked only of the jobs that are over, since a lookup re-hashes the artifact.
    pub artifact: &'a dyn Fn(&JobRecord) -> Artifact,
    /// Ctrl-C, or `fail_fast` after a failure: every job not over is cancelled.
    pub interrupted: bool,
}

/// Why a job failed its task.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Slurm ended it in this state.
    Slurm(JobState),
    /// Slurm says it completed, but the store has no artifact for its key.
    NoArtifact,
    /// Slurm forgot the job (purged) and the store has no artifact for its key.
    Vanished,
    Corrupt(String),
}

impl Failure {
    /// The message users see; `stderr_tail` is the end of the job's stderr (or empty).
    pub fn message(&self, job_id: &str, stderr_tail: &str) -> String {
        match self {
            Failure::Slurm(state) => format!("Slurm job {job_id} {state}{stderr_tail}"),
            Failure::NoArtifact => format!("job {job_id} completed but published no artifact{stderr_tail}"),
            Failure::Vanished => format!("job {job_id} vanished from Slurm without an artifact{stderr_tail}"),
            Failure::Corrupt(detail) => format!("job {job_id} completed but its artifact is corrupt ({detail})"),
        }
    }

    /// Whether the job's stderr explains it (a corrupt artifact is the store's business).
    pub fn shows_stderr(&self) -> bool {
        !matches!(self, Failure::Corrupt(_))
    }
}

/// Why a job was skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Skip {
    Interrupted,
    /// The named task, which this one reads (directly or not), failed.
    InputFailed(String),
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Interrupted => f.write_str("the run was interrupted; its Slurm job was cancelled"),
            Skip::InputFailed(task) => write!(f, "`{task}` failed"),
        }
    }
}

/// What happened to the run's jobs (by position in the record) in one poll, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Started {
        job: usize,
    },
    Finished {
        job: usize,
        duration_s: f64,
        metrics: Metrics,
    },
    Failed {
        job: usize,
        failure: Failure,
    },
    Skipped {
        job: usize,
        because: Skip,
    },
    /// `scancel` these jobs.
    Cancel {
        jobs: Vec<usize>,
    },
    /// `fail_fast`: interrupt the run.
    Interrupt,
}

/// The driver's memory between polls, besides the records themselves.
pub struct Follow {
    /// For each job, the jobs that read its task's artifact directly.
    dependents: Vec<Vec<usize>>,
    started: Vec<bool>,
    fail_fast: bool,
}

impl Follow {
    pub fn new(dependents: Vec<Vec<usize>>, fail_fast: bool) -> Self {
        let started = vec![false; dependents.len()];
        Self {
            dependents,
            started,
            fail_fast,
        }
    }

    /// One poll: records the states seen, decides the jobs that are over, and skips (and
    /// cancels) what a failure leaves unrunnable. Jobs already decided are left alone.
    pub fn step(&mut self, jobs: &mut [JobRecord], seen: &Observation) -> Vec<Step> {
        let mut steps = Vec::new();
        if seen.interrupted {
            let undecided: Vec<usize> = (0..jobs.len()).filter(|&j| jobs[j].outcome.is_none()).collect();
            if !undecided.is_empty() {
                steps.push(Step::Cancel {
                    jobs: undecided.clone(),
                });
            }
            for job in undecided {
                jobs[job].outcome = Some(JobOutcome::Skipped);
                steps.push(Step::Skipped {
                    job,
                    because: Skip::Interrupted,
                });
            }
            return steps;
        }
        for job in 0..jobs.len() {
            if jobs[job].outcome.is_some() {
                continue;
            }
            let state = seen.states.get(&jobs[job].job_id);
            if let Some(state) = state {
                jobs[job].state = state.clone();
            }
            let verdict = match state {
                Some(state) if state.is_running() => {
                    self.start(job, &mut steps);
                    continue;
                }
                Some(state) if state.is_failure() => Err(Failure::Slurm(state.clone())),
                // A vanished job (purged from Slurm's memory) is judged by its artifact too.
                Some(JobState::Completed) | None => match (seen.artifact)(&jobs[job]) {
                    Artifact::Published { duration_s, metrics } => Ok((duration_s, metrics)),
                    Artifact::Missing if state.is_none() => Err(Failure::Vanished),
                    Artifact::Missing => Err(Failure::NoArtifact),
                    Artifact::Corrupt(detail) => Err(Failure::Corrupt(detail)),
                },
                Some(_) => continue,
            };
            self.start(job, &mut steps);
            match verdict {
                Ok((duration_s, metrics)) => {
                    jobs[job].outcome = Some(JobOutcome::Finished);
                    steps.push(Step::Finished {
                        job,
                        duration_s,
                        metrics,
                    });
                }
                Err(failure) => {
                    jobs[job].outcome = Some(JobOutcome::Failed);
                    steps.push(Step::Failed { job, failure });
                    self.skip_dependents(job, jobs, &mut steps);
                    if self.fail_fast {
                        steps.push(Step::Interrupt);
                    }
                }
            }
        }
        steps
    }

    fn start(&mut self, job: usize, steps: &mut Vec<Step>) {
        if !std::mem::replace(&mut self.started[job], true) {
            steps.push(Step::Started { job });
        }
    }

    /// Skips everything undecided downstream of a failed job; Slurm would cancel those
    /// jobs too (kill-on-invalid-dep), but the driver does not wait for it.
    fn skip_dependents(&self, failed: usize, jobs: &mut [JobRecord], steps: &mut Vec<Step>) {
        let because = Skip::InputFailed(jobs[failed].task.clone());
        let mut skipped = Vec::new();
        let mut stack = self.dependents[failed].clone();
        while let Some(dependent) = stack.pop() {
            if jobs[dependent].outcome.is_none() {
                jobs[dependent].outcome = Some(JobOutcome::Skipped);
                steps.push(Step::Skipped {
                    job: dependent,
                    because: because.clone(),
                });
                skipped.push(dependent);
                stack.extend(&self.dependents[dependent]);
            }
        }
        if !skipped.is_empty() {
            skipped.sort_unstable();
            steps.push(Step::Cancel { jobs: skipped });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::path::PathBuf;

    /// A chain `a` → `b` → `c` plus an independent `d`, all pending.
    fn run() -> (Follow, Vec<JobRecord>) {
        let jobs = ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, task)| JobRecord {
                task: task.to_string(),
                key: format!("key-{task}"),
                job_id: (100 + i).to_string(),
                state: JobState::Pending,
                stdout: PathBuf::from(format!("{task}.out")),
                stderr: PathBuf::from(format!("{task}.err")),
                outcome: None,
            })
            .collect();
        (Follow::new(vec![vec![1], vec![2], vec![], vec![]], false), jobs)
    }

    fn metrics() -> Metrics {
        Metrics {
            accuracy: Some(0.75),
            ..Metrics::default()
        }
    }

    fn published() -> Artifact {
        Artifact::Published {
            duration_s: 1.5,
            metrics: metrics(),
        }
    }

    fn states(pairs: &[(&str, JobState)]) -> BTreeMap<String, JobState> {
        pairs.iter().map(|(id, s)| (id.to_string(), s.clone())).collect()
    }

    /// One poll with the given states, every artifact answering `artifact`; also returns
    /// the jobs whose artifact was looked up.
    fn poll(
        follow: &mut Follow,
        jobs: &mut [JobRecord],
        seen: &BTreeMap<String, JobState>,
        artifact: Artifact,
    ) -> (Vec<Step>, Vec<String>) {
        let asked = RefCell::new(Vec::new());
        let lookup = |job: &JobRecord| {
            asked.borrow_mut().push(job.task.clone());
            artifact.clone()
        };
        let steps = follow.step(
            jobs,
            &Observation {
                states: seen,
                artifact: &lookup,
                interrupted: false,
            },
        );
        (steps, asked.into_inner())
    }

    #[test]
    fn pending_jobs_wait_and_running_ones_start_once() {
        let (mut follow, mut jobs) = run();
        let all_pending = states(&[
            ("100", JobState::Pending),
            ("101", JobState::Pending),
            ("102", JobState::Pending),
            ("103", JobState::Other("SUSPENDED".into())),
        ]);
        let (steps, asked) = poll(&mut follow, &mut jobs, &all_pending, Artifact::Missing);
        assert!(steps.is_empty() && asked.is_empty(), "{steps:?} {asked:?}");
        assert_eq!(jobs[3].state, JobState::Other("SUSPENDED".into()));

        let running = states(&[("100", JobState::Running), ("101", JobState::Pending)]);
        let seen = states(&[("100", JobState::Completing), ("101", JobState::Pending)]);
        let (first, _) = poll(&mut follow, &mut jobs[..2], &running, Artifact::Missing);
        let (second, _) = poll(&mut follow, &mut jobs[..2], &seen, Artifact::Missing);
        assert_eq!(first, [Step::Started { job: 0 }]);
        assert!(second.is_empty(), "started is announced once: {second:?}");
        assert_eq!(jobs[0].state, JobState::Completing);
        assert!(jobs.iter().all(|j| j.outcome.is_none()));
    }

    #[test]
    fn a_completed_job_finishes_only_with_its_artifact() {
        let (mut follow, mut jobs) = run();
        let seen = states(&[("100", JobState::Completed), ("101", JobState::Pending)]);
        let (steps, asked) = poll(&mut follow, &mut jobs[..2], &seen, published());
        assert_eq!(asked, ["a"], "only the job that is over is looked up");
        assert_eq!(
            steps,
            [
                Step::Started { job: 0 },
                Step::Finished {
                    job: 0,
                    duration_s: 1.5,
                    metrics: metrics()
                }
            ]
        );
        assert_eq!(jobs[0].outcome, Some(JobOutcome::Finished));
        assert_eq!(jobs[0].state, JobState::Completed);
        let (again, asked) = poll(&mut follow, &mut jobs[..2], &seen, published());
        assert!(again.is_empty() && asked.is_empty(), "a decided job stays decided");
    }

    #[test]
    fn completed_without_an_artifact_fails_and_skips_and_cancels_what_reads_it() {
        let (mut follow, mut jobs) = run();
        let seen = states(&[
            ("100", JobState::Completed),
            ("101", JobState::Pending),
            ("102", JobState::Pending),
            ("103", JobState::Running),
        ]);
        let (steps, _) = poll(&mut follow, &mut jobs, &seen, Artifact::Missing);
        let skipped = |job| Step::Skipped {
            job,
            because: Skip::InputFailed("a".into()),
        };
        assert_eq!(
            steps,
            [
                Step::Started { job: 0 },
                Step::Failed {
                    job: 0,
                    failure: Failure::NoArtifact
                },
                skipped(1),
                skipped(2),
                Step::Cancel { jobs: vec![1, 2] },
                Step::Started { job: 3 },
            ]
        );
        let outcomes: Vec<_> = jobs.iter().map(|j| j.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Some(JobOutcome::Failed),
                Some(JobOutcome::Skipped),
                Some(JobOutcome::Skipped),
                None
            ]
        );
        assert_eq!(Skip::InputFailed("a".into()).to_string(), "`a` failed");
    }

    #[test]
    fn each_failure_is_told_apart() {
        let cases = [
            (
                Some(JobState::Failed),
                Artifact::Missing,
                Failure::Slurm(JobState::Failed),
            ),
            (Some(JobState::Timeout), published(), Failure::Slurm(JobState::Timeout)),
            (None, Artifact::Missing, Failure::Vanished),
            (
                Some(JobState::Completed),
                Artifact::Corrupt("x.bin changed".into()),
                Failure::Corrupt("x.bin changed".into()),
            ),
        ];
        for (state, artifact, failure) in cases {
            let (_, mut jobs) = run();
            let mut follow = Follow::new(vec![Vec::new()], false);
            let seen = match &state {
                Some(state) => states(&[("103", state.clone())]),
                None => BTreeMap::new(),
            };
            let (steps, _) = poll(&mut follow, &mut jobs[3..], &seen, artifact);
            assert_eq!(
                steps,
                [
                    Step::Started { job: 0 },
                    Step::Failed {
                        job: 0,
                        failure: failure.clone()
                    }
                ],
                "{state:?}"
            );
        }
        assert_eq!(
            Failure::Slurm(JobState::OutOfMemory).message("7", ": killed"),
            "Slurm job 7 OUT_OF_MEMORY: killed"
        );
        assert_eq!(
            Failure::Vanished.message("7", ""),
            "job 7 vanished from Slurm without an artifact"
        );
        assert!(!Failure::Corrupt(String::new()).shows_stderr() && Failure::NoArtifact.shows_stderr());
    }

    #[test]
    fn a_purged_job_with_its_artifact_finished() {
        let (_, mut jobs) = run();
        let mut follow = Follow::new(vec![Vec::new()], false);
        let (steps, asked) = poll(&mut follow, &mut jobs[3..], &BTreeMap::new(), published());
        assert_eq!(asked, ["d"]);
        assert!(matches!(steps.last(), Some(Step::Finished { job: 0, .. })), "{steps:?}");
        assert_eq!(jobs[3].state, JobState::Pending, "no state seen, none recorded");
    }

    #[test]
    fn fail_fast_interrupts_and_the_next_poll_cancels_the_rest() {
        let (_, mut jobs) = run();
        let mut follow = Follow::new(vec![vec![1], vec![2], vec![], vec![]], true);
        let seen = states(&[("100", JobState::Cancelled), ("103", JobState::Running)]);
        let (steps, _) = poll(&mut follow, &mut jobs, &seen, Artifact::Missing);
        assert_eq!(
            steps[1..],
            [
                Step::Failed {
                    job: 0,
                    failure: Failure::Slurm(JobState::Cancelled)
                },
                Step::Skipped {
                    job: 1,
                    because: Skip::InputFailed("a".into())
                },
                Step::Skipped {
                    job: 2,
                    because: Skip::InputFailed("a".into())
                },
                Step::Cancel { jobs: vec![1, 2] },
                Step::Interrupt,
                Step::Started { job: 3 },
            ]
        );

        let interrupted = follow.step(
            &mut jobs,
            &Observation {
                states: &BTreeMap::new(),
                artifact: &|_: &JobRecord| panic!("an interrupted poll looks nothing up"),
                interrupted: true,
            },
        );
        assert_eq!(
            interrupted,
            [
                Step::Cancel { jobs: vec![3] },
                Step::Skipped {
                    job: 3,
                    because: Skip::Interrupted
                }
            ]
        );
        assert!(jobs.iter().all(|j| j.outcome.is_some()));
    }
}
