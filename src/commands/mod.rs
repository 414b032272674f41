//! The CLI's commands as library functions: each wires the phases (spec → plan →
//! scheduler → report) and returns a typed view ([`view`]) that `main.rs` renders as text
//! or JSON, so `main.rs` stays a thin clap layer and tests can call them directly.

pub mod view;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context as _, Result};

use crate::plan::{self, short, Plan, Status};
use crate::report;
use crate::reporter::{self, Mode, Reporter};
use crate::scheduler::{self, Options};
use crate::spec::executor::ExecutorKind;
use crate::spec::overrides::{cli_value, Override};
use crate::spec::{self, Experiment};
use crate::store::{self, Lookup, Store};
use view::{
    CorruptArtifact, Each, Incomplete, InspectView, Listed, LsView, PlanView, ReportView, ReportsView, RunView,
    StatusView, VerifyView, WhyTask, WhyView,
};

/// Settings shared by every command.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cache_dir: PathBuf,
    pub reports_dir: PathBuf,
    pub mode: Mode,
    /// `--set KEY=VALUE` edits applied to every experiment file the command reads.
    pub overrides: Vec<Override>,
    /// How often a plain progress line is printed when stderr is not a terminal.
    pub progress_interval: std::time::Duration,
}

impl Settings {
    pub fn new(cache_dir: impl Into<PathBuf>, reports_dir: impl Into<PathBuf>, mode: Mode) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            reports_dir: reports_dir.into(),
            mode,
            overrides: Vec::new(),
            progress_interval: reporter::DEFAULT_PROGRESS_INTERVAL,
        }
    }

    fn reporter(&self) -> Reporter {
        Reporter::with_interval(self.mode, self.progress_interval)
    }

    /// Loads an experiment file with this command's overrides.
    pub fn load(&self, path: &Path) -> Result<Experiment> {
        spec::load_with_overrides(path, &self.overrides).map_err(anyhow::Error::new)
    }
}

/// Parses `--set` arguments; an error names the one that is malformed.
pub fn parse_overrides(texts: &[String]) -> Result<Vec<Override>> {
    texts
        .iter()
        .map(|text| Override::parse(text).map_err(anyhow::Error::new))
        .collect()
}

/// Where a streaming command (`run`, `status`) hands each experiment file's view, as soon
/// as it is ready: between the events of one file and those of the next.
pub type Sink<'a, V> = &'a mut dyn FnMut(V) -> Result<()>;

pub struct RunArgs<'a> {
    pub only: Vec<String>,
    pub jobs: usize,
    pub dry_run: bool,
    pub fail_fast: bool,
    pub cancel: &'a AtomicBool,
    /// Overrides the experiment's `[executor] kind`.
    pub executor: Option<ExecutorKind>,
    /// Slurm: submit the jobs and return.
    pub detach: bool,
    /// Report every run instead of mean ± std over seeds.
    pub individual_runs: bool,
}

/// `run`: each file's view goes to `sink`; it is ok when every selected task is cached or
/// succeeded.
pub fn run(settings: &Settings, files: &[PathBuf], args: &RunArgs, sink: Sink<RunView>) -> Result<()> {
    for file in files {
        let experiment = settings.load(file)?;
        let selection = select(&experiment, &args.only)?;
        if args.dry_run {
            let store = Store::open_existing(&settings.cache_dir);
            let plan = plan::plan(&experiment, &store)?;
            sink(RunView::DryRun(plan_view(&plan, &store, selection.as_ref())))?;
            continue;
        }
        let store = Store::open(&settings.cache_dir)?;
        let mut plan = plan::plan(&experiment, &store)?;
        let reporter = settings.reporter();
        let options = Options {
            jobs: args.jobs,
            only: selection,
            fail_fast: args.fail_fast,
            cancel: args.cancel,
            executor: args.executor,
            detach: args.detach,
        };
        let summary = scheduler::run(&plan, &store, &options, &|event| reporter.handle(event))?;
        let failures = reporter::failure_summary(&experiment, &summary);
        let ok = summary.failures().is_empty() && summary.count(|o| matches!(o, scheduler::Outcome::Skipped(_))) == 0;
        if args.detach && summary.count(|o| matches!(o, scheduler::Outcome::Submitted { .. })) > 0 {
            sink(RunView::Ran {
                failures,
                detached: Some(file.clone()),
                report: None,
                ok,
            })?;
            continue;
        }
        // The table is regenerated from the cache, exactly as `report` would; only the tasks
        // that were not cached are looked up again (planning anew would re-hash every model
        // folder and re-verify every cached artifact a second time).
        refresh_statuses(&mut plan, &store);
        let mut report = report::collect(&plan, &store)?;
        report.individual_runs = args.individual_runs;
        sink(RunView::Ran {
            failures,
            detached: None,
            report: Some(ReportView::write(report, &settings.reports_dir)?),
            ok,
        })?;
    }
    Ok(())
}

/// Looks up again the tasks a plan had to run, so that those built since count as cached.
fn refresh_statuses(plan: &mut Plan, store: &Store) {
    for entry in &mut plan.entries {
        if !entry.status.is_cached() {
            if let Lookup::Hit(manifest) = store.lookup(&entry.key) {
                entry.status = Status::Cached(manifest);
            }
        }
    }
}

/// `--only` names: a task, a sweep member, or a declared name (all its members).
fn select(experiment: &Experiment, only: &[String]) -> Result<Option<BTreeSet<usize>>> {
    if only.is_empty() {
        return Ok(None);
    }
    let mut selected = BTreeSet::new();
    for name in only {
        let matches: Vec<usize> = experiment
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.name == *name || t.group == *name)
            .map(|(i, _)| i)
            .collect();
        if matches.is_empty() {
            bail!(
                "--only {name}: no such task in {} (tasks: {})",
                experiment.path.display(),
                task_names(experiment)
            );
        }
        selected.extend(matches);
    }
    Ok(Some(selected))
}

fn task_names(experiment: &Experiment) -> String {
    experiment
        .tasks
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `worker`: runs exactly one task whose inputs are cached; what a Slurm job executes.
/// Refuses when the experiment no longer gives the task the submitted key.
pub fn worker(settings: &Settings, file: &Path, task_name: &str, key: &str, cancel: &AtomicBool) -> Result<bool> {
    let experiment = settings.load(file)?;
    let store = Store::open(&settings.cache_dir)?;
    let plan = plan::plan(&experiment, &store)?;
    let index = experiment
        .find(task_name)
        .with_context(|| format!("no task `{task_name}` in {}", file.display()))?;
    if plan.entries[index].key != key {
        bail!(
            "task `{task_name}` now has key {} but was submitted with {}: {} changed since",
            short(&plan.entries[index].key),
            short(key),
            file.display()
        );
    }
    if plan.entries[index].status.is_cached() {
        return Ok(true);
    }
    for (slot, &upstream) in &experiment.tasks[index].inputs {
        if !plan.entries[upstream].status.is_cached() {
            bail!(
                "input `{slot}` ({}) of `{task_name}` is not in the cache",
                experiment.tasks[upstream].name
            );
        }
    }
    let reporter = settings.reporter();
    let handle = |event| reporter.handle(event);
    let emitter = scheduler::Emitter::new(&handle);
    match scheduler::execute(&plan, &store, index, cancel, &emitter) {
        Ok(_) => Ok(true),
        Err(error) => bail!("task `{task_name}` failed: {error}"),
    }
}

/// `status`: the plan, plus the jobs of the experiment's latest Slurm run; `follow` waits
/// for that run's jobs like the driver would, then reports.
pub fn status(
    settings: &Settings,
    files: &[PathBuf],
    follow: bool,
    cancel: &AtomicBool,
    sink: Sink<StatusView>,
) -> Result<()> {
    let store = Store::open_existing(&settings.cache_dir);
    for file in files {
        let experiment = settings.load(file)?;
        let plan = plan::plan(&experiment, &store)?;
        let Some(mut record) = scheduler::slurm::latest_run(&store, &experiment.name)? else {
            sink(StatusView::Plan(plan_view(&plan, &store, None)))?;
            continue;
        };
        if follow && record.is_active() {
            let reporter = settings.reporter();
            let summary = scheduler::follow(&plan, &store, &mut record, cancel, &|event| reporter.handle(event))?;
            let plan = plan::plan(&experiment, &store)?;
            let report = ReportView::write(report::collect(&plan, &store)?, &settings.reports_dir)?;
            sink(StatusView::Followed {
                report,
                ok: summary.failures().is_empty(),
            })?;
            continue;
        }
        sink(StatusView::Slurm {
            plan: plan_view(&plan, &store, None),
            run: record,
        })?;
    }
    Ok(())
}

/// `plan`.
pub fn plan_command(settings: &Settings, files: &[PathBuf]) -> Result<Each<PlanView>> {
    let store = Store::open_existing(&settings.cache_dir);
    let mut views = Vec::new();
    for file in files {
        let experiment = settings.load(file)?;
        views.push(plan_view(&plan::plan(&experiment, &store)?, &store, None));
    }
    Ok(Each(views))
}

/// The selected tasks (and what they read), or all of them.
fn plan_view(plan: &Plan, store: &Store, selection: Option<&BTreeSet<usize>>) -> PlanView {
    let tasks = &plan.experiment.tasks;
    let selected = selection
        .map(|roots| crate::graph::TaskGraph::new(tasks).with_dependencies(&roots.iter().copied().collect::<Vec<_>>()));
    PlanView::new(
        plan,
        &crate::estimate::estimate(plan, store),
        (0..tasks.len()).filter(|i| selected.as_ref().is_none_or(|s| s.contains(i))),
    )
}

/// `why TASK`: the key, its parts, and why the task would run, following changed inputs
/// upstream. TASK may also be a declared name: all its members.
pub fn why(settings: &Settings, file: &Path, task_name: &str) -> Result<WhyView> {
    let experiment = settings.load(file)?;
    let store = Store::open_existing(&settings.cache_dir);
    let plan = plan::plan(&experiment, &store)?;
    let indices: Vec<usize> = match experiment.find(task_name) {
        Some(i) => vec![i],
        None => experiment
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.group == task_name)
            .map(|(i, _)| i)
            .collect(),
    };
    if indices.is_empty() {
        bail!(
            "no task `{task_name}` in {} (tasks: {})",
            file.display(),
            task_names(&experiment)
        );
    }
    Ok(WhyView {
        tasks: indices.into_iter().map(|i| WhyTask::new(&plan, i)).collect(),
    })
}

/// How `report` presents what it reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions {
    /// Every run on its own line instead of mean ± std over seeds.
    pub individual_runs: bool,
    /// All files in one side-by-side report instead of one report each.
    pub compare: bool,
}

/// `report`: pure read of the cache (it writes only the report files). Not ok when some
/// reporting task is missing.
pub fn report(settings: &Settings, files: &[PathBuf], options: ReportOptions) -> Result<ReportsView> {
    let store = Store::open_existing(&settings.cache_dir);
    let mut incomplete = Vec::new();
    let mut reports = Vec::new();
    for file in files {
        let experiment = settings.load(file)?;
        let plan = plan::plan(&experiment, &store)?;
        let mut report = report::collect(&plan, &store)?;
        report.individual_runs = options.individual_runs;
        if !report.missing.is_empty() {
            incomplete.push(Incomplete {
                experiment: experiment.name.clone(),
                file: file.clone(),
                missing: report.missing.len(),
                reported: report.rows.len(),
            });
        }
        reports.push(report);
    }
    if options.compare {
        reports = vec![report::compare::merge(reports)];
    }
    let reports = reports
        .into_iter()
        .map(|report| ReportView::write(report, &settings.reports_dir))
        .collect::<Result<_>>()?;
    Ok(ReportsView { incomplete, reports })
}

/// `gc`: removes artifacts no given experiment references, resume states no unfinished task
/// of theirs needs, and abandoned staging dirs.
pub fn gc(settings: &Settings, files: &[PathBuf], dry_run: bool) -> Result<store::Collected> {
    if files.is_empty() {
        bail!("gc needs the experiment files whose artifacts to keep");
    }
    let store = Store::open_existing(&settings.cache_dir);
    let mut keep = BTreeSet::new();
    for file in files {
        let experiment = settings.load(file)?;
        keep.extend(plan::plan(&experiment, &store)?.entries.into_iter().map(|e| e.key));
    }
    store::gc(&store, &keep, dry_run)
}

/// `ls`: what the cache holds.
pub fn ls(settings: &Settings) -> Result<LsView> {
    let store = Store::open_existing(&settings.cache_dir);
    let artifacts = store
        .list()?
        .iter()
        .map(|(key, manifest)| Listed::new(key, manifest))
        .collect();
    Ok(LsView {
        cache: store.root().to_path_buf(),
        artifacts,
    })
}

/// `verify`: re-hashes every artifact in the cache against its manifest (the same check
/// every lookup makes); ok when the cache is intact. A corrupt artifact is rebuilt by the
/// next `run` of an experiment that uses it.
pub fn verify(settings: &Settings) -> Result<VerifyView> {
    let store = Store::open_existing(&settings.cache_dir);
    let entries = store.list()?;
    let mut corrupt = Vec::new();
    for (key, manifest) in &entries {
        if let Lookup::Corrupt(reason) = store.lookup(key) {
            let manifest = manifest.as_ref().ok();
            corrupt.push(CorruptArtifact {
                key: key.clone(),
                task: manifest.map(|m| m.task.clone()),
                experiment: manifest.map(|m| m.experiment.clone()),
                reason,
            });
        }
    }
    Ok(VerifyView {
        cache: store.root().to_path_buf(),
        checked: entries.len(),
        corrupt,
    })
}

/// `inspect MODEL --method M --set k=v`: the module tree and PEFT's parameter line, with the
/// method's parameters validated exactly as in an experiment file.
/// `--set KEY=VALUE` pairs as a task table.
fn set_table(sets: &[String]) -> Result<toml::Table> {
    let mut table = toml::Table::new();
    for set in sets {
        let (key, text) = set
            .split_once('=')
            .with_context(|| format!("--set {set:?}: expected KEY=VALUE"))?;
        table.insert(key.trim().to_string(), cli_value(text.trim()));
    }
    Ok(table)
}

/// `orchestrate bench-step`: one method's training step on `model`, timed by phase.
pub fn bench_step(
    model: &str,
    method: &str,
    sets: &[String],
    setup: crate::bench::StepSetup,
) -> Result<crate::bench::StepBench> {
    let parsed = crate::tasks::method(method, model, set_table(sets)?)?;
    crate::bench::step(model, &parsed, setup)
}

pub fn inspect(model: &str, method: &str, sets: &[String]) -> Result<InspectView> {
    let parsed = crate::tasks::method(method, model, set_table(sets)?)?;
    Ok(InspectView {
        model: model.to_string(),
        method: method.to_string(),
        text: crate::model::inspect::run(model, &parsed)?,
    })
}
