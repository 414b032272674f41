//! The Slurm executor: each task that is not cached becomes a batch job running
//! `orchestrate worker` for exactly that task against the same cache directory (a shared
//! filesystem), chained with `--dependency=afterok:…` and `--kill-on-invalid-dep=yes`.
//!
//! What Slurm 22.05 taught us (see shared/tools/slurm): an `afterok` on an unknown or
//! purged job id counts as satisfied, so jobs only ever depend on jobs submitted by the same
//! run, and the driver keeps its own record of job states (`<cache>/slurm/<run>/run.json`);
//! `squeue` hides finished jobs without `-t all`; `sacct` needs accounting, so it is not used.
//! A job's own state is not trusted for success: when a job completes, the driver verifies
//! its artifact in the store (manifest and hashes). A failed job fails its task with the
//! tail of the job's stderr; its dependents are cancelled and reported as skipped.
//!
//! What a poll means is decided by a pure transition, [`Follow::step`] (see [`follow`]):
//! this module only submits, polls (`squeue`, `scontrol`), and carries out its steps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

mod follow;
mod job;

pub use follow::{Artifact, Failure, Follow, Observation, Skip, Step};
pub use job::{JobOutcome, JobState};

use super::{reasons, Emitter, Options, Outcome, Prepared, Summary};
use crate::events::Event;
use crate::graph::TaskGraph;
use crate::plan::Plan;
use crate::store::{Lookup, Store};
use crate::tasks::Metrics;
use crate::util::write_atomic;

/// One submitted task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobRecord {
    pub task: String,
    pub key: String,
    pub job_id: String,
    /// Last Slurm state seen.
    pub state: JobState,
    /// Where the job's stdout and stderr go.
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The driver's verdict once the job is over.
    pub outcome: Option<JobOutcome>,
}

/// Everything the driver submitted in one run; `status` reads it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub experiment: String,
    pub experiment_path: PathBuf,
    pub created: String,
    pub jobs: Vec<JobRecord>,
}

impl RunRecord {
    pub fn is_active(&self) -> bool {
        self.jobs.iter().any(|j| j.outcome.is_none())
    }
}

fn runs_dir(store: &Store) -> PathBuf {
    store.root().join("slurm")
}

fn record_path(store: &Store, run_id: &str) -> PathBuf {
    runs_dir(store).join(run_id).join("run.json")
}

fn save(store: &Store, record: &RunRecord) -> Result<()> {
    write_atomic(&record_path(store, &record.run_id), &serde_json::to_vec_pretty(record)?)
}

/// The most recent Slurm run recorded for an experiment.
pub fn latest_run(store: &Store, experiment: &str) -> Result<Option<RunRecord>> {
    let dir = runs_dir(store);
    if !dir.exists() {
        return Ok(None);
    }
    let mut ids: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    ids.sort();
    for id in ids.iter().rev() {
        let Ok(bytes) = std::fs::read(record_path(store, id)) else {
            continue;
        };
        let record: RunRecord = serde_json::from_slice(&bytes).with_context(|| format!("bad run record {id}"))?;
        if record.experiment == experiment {
            return Ok(Some(record));
        }
    }
    Ok(None)
}

/// Submits every task to run, then follows the jobs (unless `detach`).
pub fn run(
    plan: &Plan,
    store: &Store,
    prepared: &Prepared,
    options: &Options,
    emitter: &Emitter,
    summary: &mut Summary,
) -> Result<()> {
    if prepared.to_run.is_empty() {
        return Ok(());
    }
    let experiment = plan.experiment;
    let binary = std::env::current_exe().context("cannot locate the orchestrate binary for the job scripts")?;
    let experiment_path = experiment
        .path
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", experiment.path.display()))?;
    let cache_dir = store
        .root()
        .canonicalize()
        .context("cannot resolve the cache directory")?;
    let workdir = std::env::current_dir()?;
    let run_id = format!("{}-{}", crate::util::timestamp_compact(), std::process::id());
    let run_dir = runs_dir(store).join(&run_id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create {}", run_dir.display()))?;

    let mut record = RunRecord {
        run_id: run_id.clone(),
        experiment: experiment.name.clone(),
        experiment_path: experiment_path.clone(),
        created: crate::util::now_rfc3339(),
        jobs: Vec::new(),
    };
    let mut job_of: BTreeMap<usize, String> = BTreeMap::new();
    for &index in prepared.order.iter().filter(|i| prepared.to_run.contains(i)) {
        let task = &experiment.tasks[index];
        let entry = &plan.entries[index];
        let file_stem = format!("{:03}-{}", record.jobs.len(), sanitize(&task.name));
        let script = run_dir.join(format!("{file_stem}.sh"));
        let (stdout, stderr) = (
            run_dir.join(format!("{file_stem}.out")),
            run_dir.join(format!("{file_stem}.err")),
        );
        let mut command = vec![
            binary.display().to_string(),
            "--cache-dir".into(),
            cache_dir.display().to_string(),
            "worker".into(),
            "--experiment".into(),
            experiment_path.display().to_string(),
            "--task".into(),
            task.name.clone(),
            "--key".into(),
            entry.key.clone(),
        ];
        // The job loads the experiment as this run did, or its key would not match.
        for edit in &experiment.overrides {
            command.extend(["--set".to_string(), edit.clone()]);
        }
        let body = format!(
            "#!/bin/bash\n# orchestrate: task `{}` of experiment `{}`, key {}\nexec {}\n",
            task.name,
            experiment.name,
            entry.key,
            command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
        );
        write_atomic(&script, body.as_bytes())?;
        let dependencies: Vec<&str> = prepared
            .graph
            .dependencies(index)
            .filter_map(|d| job_of.get(&d).map(String::as_str))
            .collect();
        let mut args = vec![
            "--parsable".to_string(),
            format!("--job-name=orchestrate:{}", task.name),
            format!("--output={}", stdout.display()),
            format!("--error={}", stderr.display()),
            format!("--chdir={}", workdir.display()),
        ];
        if !dependencies.is_empty() {
            args.push(format!("--dependency=afterok:{}", dependencies.join(":")));
            args.push("--kill-on-invalid-dep=yes".into());
        }
        args.extend(experiment.executor.resources(task.kind.kind()).sbatch_options());
        args.push(script.display().to_string());
        let job_id = match submit(&args) {
            Ok(id) => id,
            Err(err) => {
                // Leave nothing half-submitted behind.
                cancel(job_of.values().map(String::as_str));
                return Err(err.context(format!("submitting `{}`", task.name)));
            }
        };
        emitter.send(Event::TaskSubmitted {
            task: task.name.clone(),
            job: job_id.clone(),
        });
        job_of.insert(index, job_id.clone());
        record.jobs.push(JobRecord {
            task: task.name.clone(),
            key: entry.key.clone(),
            job_id,
            state: JobState::Pending,
            stdout,
            stderr,
            outcome: None,
        });
        save(store, &record)?;
    }
    if options.detach {
        for (&index, job) in &job_of {
            summary.outcomes.insert(index, Outcome::Submitted { job: job.clone() });
        }
        return Ok(());
    }
    follow(plan, store, &prepared.graph, &mut record, options, emitter, summary)
}

/// Polls the run's jobs until every one is over, turning what [`Follow::step`] decides into
/// events, outcomes and `scancel`s.
pub(super) fn follow(
    plan: &Plan,
    store: &Store,
    graph: &TaskGraph,
    record: &mut RunRecord,
    options: &Options,
    emitter: &Emitter,
    summary: &mut Summary,
) -> Result<()> {
    let experiment = plan.experiment;
    let tasks = job_tasks(plan, record)?;
    let position: BTreeMap<usize, usize> = tasks.iter().enumerate().map(|(job, &task)| (task, job)).collect();
    let dependents = tasks
        .iter()
        .map(|&task| {
            graph
                .dependents(task)
                .filter_map(|d| position.get(&d).copied())
                .collect()
        })
        .collect();
    let mut machine = Follow::new(dependents, options.fail_fast);
    let artifact = |job: &JobRecord| match store.lookup(&job.key) {
        Lookup::Hit(manifest) => Artifact::Published {
            duration_s: manifest.duration_s,
            metrics: read_metrics(store, &job.key),
        },
        Lookup::Miss => Artifact::Missing,
        Lookup::Corrupt(detail) => Artifact::Corrupt(detail),
    };
    let poll = Duration::from_secs_f64(experiment.executor.poll_interval.unwrap_or(1.0).max(0.05));
    while record.is_active() {
        let interrupted = options.cancel.load(Ordering::Relaxed);
        let states = if interrupted {
            BTreeMap::new()
        } else {
            let ids: Vec<String> = undecided(record).map(|j| j.job_id.clone()).collect();
            query(&ids)
        };
        let before = record.jobs.clone();
        let seen = Observation {
            states: &states,
            artifact: &artifact,
            interrupted,
        };
        for step in machine.step(&mut record.jobs, &seen) {
            apply(plan, record, &tasks, step, options, emitter, summary);
        }
        if record.jobs != before {
            save(store, record)?;
        }
        if record.is_active() {
            std::thread::sleep(poll);
        }
    }
    Ok(())
}

/// The task of each job in the record; refuses a record the experiment no longer matches.
fn job_tasks(plan: &Plan, record: &RunRecord) -> Result<Vec<usize>> {
    record
        .jobs
        .iter()
        .map(|job| {
            let Some(index) = plan.experiment.find(&job.task) else {
                bail!(
                    "run {} has task `{}`, which the experiment no longer declares",
                    record.run_id,
                    job.task
                )
            };
            if plan.entries[index].key != job.key {
                bail!(
                    "task `{}` changed since run {} submitted it; rerun instead of following",
                    job.task,
                    record.run_id
                );
            }
            Ok(index)
        })
        .collect()
}

fn undecided(record: &RunRecord) -> impl Iterator<Item = &JobRecord> {
    record.jobs.iter().filter(|j| j.outcome.is_none())
}

/// Carries out one step of the follow: the events users see, the summary, `scancel`.
fn apply(
    plan: &Plan,
    record: &RunRecord,
    tasks: &[usize],
    step: Step,
    options: &Options,
    emitter: &Emitter,
    summary: &mut Summary,
) {
    let task_of = |job: usize| &plan.experiment.tasks[tasks[job]];
    match step {
        Step::Started { job } => {
            let task = task_of(job);
            emitter.send(Event::TaskStarted {
                task: task.name.clone(),
                kind: task.kind.kind().to_string(),
                key: record.jobs[job].key.clone(),
                reasons: reasons(plan, tasks[job]),
            });
        }
        Step::Finished {
            job,
            duration_s,
            metrics,
        } => {
            emitter.send(Event::TaskFinished {
                task: task_of(job).name.clone(),
                key: record.jobs[job].key.clone(),
                duration_s,
                metrics: metrics.clone(),
            });
            summary
                .outcomes
                .insert(tasks[job], Outcome::Ran { duration_s, metrics });
        }
        Step::Failed { job, failure } => {
            let submitted = &record.jobs[job];
            let tail = if failure.shows_stderr() {
                stderr_tail(&submitted.stderr)
            } else {
                String::new()
            };
            let error = failure.message(&submitted.job_id, &tail);
            emitter.send(Event::TaskFailed {
                task: task_of(job).name.clone(),
                error: error.clone(),
            });
            summary.outcomes.insert(tasks[job], Outcome::Failed(error));
        }
        Step::Skipped { job, because } => {
            let because = because.to_string();
            emitter.send(Event::TaskSkipped {
                task: task_of(job).name.clone(),
                because: because.clone(),
            });
            summary.outcomes.insert(tasks[job], Outcome::Skipped(because));
        }
        Step::Cancel { jobs } => cancel(jobs.iter().map(|&job| record.jobs[job].job_id.as_str())),
        Step::Interrupt => options.cancel.store(true, Ordering::Relaxed),
    }
}

fn read_metrics(store: &Store, key: &str) -> Metrics {
    std::fs::read(store.artifact_dir(key).join("metrics.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn submit(args: &[String]) -> Result<String> {
    let output = Command::new("sbatch")
        .args(args)
        .output()
        .context("cannot run `sbatch`: is Slurm's client installed and SLURM_CONF set?")?;
    if !output.status.success() {
        bail!("sbatch failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    // `--parsable` prints `id` or `id;cluster`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id = stdout.trim().split(';').next().unwrap_or_default().to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
        bail!("sbatch printed no job id: {stdout:?}");
    }
    Ok(id)
}

/// Current states of the given jobs; jobs Slurm no longer knows are absent.
fn query(ids: &[String]) -> BTreeMap<String, JobState> {
    let mut states = BTreeMap::new();
    if ids.is_empty() {
        return states;
    }
    // `-t all` includes finished jobs; one unknown id can fail the whole query, so fall
    // back to asking job by job.
    let listed = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%i %T", "-j", &ids.join(",")])
        .output();
    if let Some(output) = listed.ok().filter(|o| o.status.success()) {
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some((id, state)) = line.trim().split_once(' ') {
                states.insert(id.to_string(), JobState::parse(state));
            }
        }
    }
    let unlisted: Vec<&String> = ids.iter().filter(|id| !states.contains_key(*id)).collect();
    for id in unlisted {
        if let Ok(output) = Command::new("scontrol").args(["-o", "show", "job", id]).output() {
            let text = String::from_utf8_lossy(&output.stdout);
            if let Some(state) = text
                .split_whitespace()
                .find_map(|field| field.strip_prefix("JobState="))
            {
                states.insert(id.clone(), JobState::parse(state));
            }
        }
    }
    states
}

fn cancel<'a>(ids: impl Iterator<Item = &'a str>) {
    let ids: Vec<&str> = ids.collect();
    if !ids.is_empty() {
        let _ = Command::new("scancel").args(&ids).output();
    }
}

/// The last lines of a job's stderr, for failure messages.
fn stderr_tail(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(": {}", lines[lines.len().saturating_sub(10)..].join("\n"))
}

fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}
