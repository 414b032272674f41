//! The CLI's commands as library functions: each wires the phases (spec → plan →
//! scheduler → report) and returns what to print, so `main.rs` stays a thin clap layer and
//! tests can call them directly.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context as _, Result};
use comfy_table::{presets, ContentArrangement, Table};
use serde_json::json;

use crate::plan::{self, short, Plan, Reason, Status};
use crate::report;
use crate::reporter::{self, Mode, Reporter};
use crate::scheduler::{self, Options};
use crate::spec::executor::ExecutorKind;
use crate::spec::{self, Experiment};
use crate::store::{Lookup, Store};
use crate::util::human_duration;

/// Settings shared by every command.
#[derive(Debug, Clone)]
pub struct Settings {
    pub cache_dir: PathBuf,
    pub reports_dir: PathBuf,
    pub mode: Mode,
}

pub fn load(path: &Path) -> Result<Experiment> {
    spec::load(path).map_err(anyhow::Error::new)
}

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

/// `run`: returns true when every selected task is cached or succeeded.
pub fn run(settings: &Settings, files: &[PathBuf], args: &RunArgs) -> Result<bool> {
    let mut all_ok = true;
    for file in files {
        let experiment = load(file)?;
        let selection = select(&experiment, &args.only)?;
        if args.dry_run {
            let store = Store::open_existing(&settings.cache_dir);
            let plan = plan::plan(&experiment, &store)?;
            print!("{}", render_plan(&plan, selection.as_ref(), settings.mode)?);
            continue;
        }
        let store = Store::open(&settings.cache_dir)?;
        let mut plan = plan::plan(&experiment, &store)?;
        let reporter = Reporter::new(settings.mode);
        let options = Options {
            jobs: args.jobs,
            only: selection,
            fail_fast: args.fail_fast,
            cancel: args.cancel,
            executor: args.executor,
            detach: args.detach,
        };
        let summary = scheduler::run(&plan, &store, &options, &|event| reporter.handle(event))?;
        if settings.mode != Mode::Json {
            if let Some(failures) = reporter::failure_summary(&experiment, &summary) {
                eprint!("{failures}");
            }
        }
        all_ok &= summary.failures().is_empty() && summary.count(|o| matches!(o, scheduler::Outcome::Skipped(_))) == 0;
        if args.detach && summary.count(|o| matches!(o, scheduler::Outcome::Submitted { .. })) > 0 {
            if settings.mode != Mode::Json {
                eprintln!("detached; follow with `orchestrate status {} --follow`", file.display());
            }
            continue;
        }
        // The table is regenerated from the cache, exactly as `report` would; only the tasks
        // that were not cached are looked up again (planning anew would re-hash every model
        // folder and re-verify every cached artifact a second time).
        refresh_statuses(&mut plan, &store);
        let mut report = report::collect(&plan, &store)?;
        report.individual_runs = args.individual_runs;
        emit_report(settings, &report)?;
    }
    Ok(all_ok)
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

fn emit_report(settings: &Settings, report: &report::Report) -> Result<()> {
    let paths = report::write_files(report, &settings.reports_dir)?;
    match settings.mode {
        Mode::Json => println!(
            "{}",
            serde_json::to_string(
                &json!({"event": "report", "report": report::table::json_value(report), "files": paths})
            )?
        ),
        Mode::Human | Mode::Quiet => {
            if !report.rows.is_empty() {
                println!("{}", report::table(report));
            }
            for (heading, lines) in report::table::rank_question(report) {
                println!("{heading}:");
                for line in lines {
                    println!("  {line}");
                }
            }
            let shared = report::table::layout(report).shared;
            if !shared.is_empty() {
                println!("shared by every row: {}", report::table::shared_text(&shared));
            }
            if !report.missing.is_empty() {
                eprintln!("not in the cache: {}", report.missing.join(", "));
            }
            if settings.mode == Mode::Human {
                let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                eprintln!("report written to {}", shown.join(", "));
            }
        }
    }
    Ok(())
}

/// `worker`: runs exactly one task whose inputs are cached; what a Slurm job executes.
/// Refuses when the experiment no longer gives the task the submitted key.
pub fn worker(settings: &Settings, file: &Path, task_name: &str, key: &str, cancel: &AtomicBool) -> Result<bool> {
    let experiment = load(file)?;
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
    let reporter = Reporter::new(settings.mode);
    let handle = |event| reporter.handle(event);
    let emitter = scheduler::Emitter::new(&handle);
    match scheduler::execute(&plan, &store, index, cancel, &emitter) {
        Ok(_) => Ok(true),
        Err(error) => bail!("task `{task_name}` failed: {error}"),
    }
}

/// `status`: the plan, plus the jobs of the experiment's latest Slurm run; `follow` waits
/// for that run's jobs like the driver would.
pub fn status(settings: &Settings, files: &[PathBuf], follow: bool, cancel: &AtomicBool) -> Result<bool> {
    let store = Store::open_existing(&settings.cache_dir);
    let mut all_ok = true;
    for file in files {
        let experiment = load(file)?;
        let plan = plan::plan(&experiment, &store)?;
        let Some(mut record) = scheduler::slurm::latest_run(&store, &experiment.name)? else {
            print!("{}", render_plan(&plan, None, settings.mode)?);
            continue;
        };
        if follow && record.is_active() {
            let reporter = Reporter::new(settings.mode);
            let handle = |event| reporter.handle(event);
            let emitter = scheduler::Emitter::new(&handle);
            let options = Options {
                jobs: 1,
                only: None,
                fail_fast: false,
                cancel,
                executor: None,
                detach: false,
            };
            let mut summary = scheduler::Summary::default();
            let graph = crate::graph::TaskGraph::new(&experiment.tasks);
            scheduler::slurm::follow(&plan, &store, &graph, &mut record, &options, &emitter, &mut summary)?;
            all_ok &= summary.failures().is_empty();
            let plan = plan::plan(&experiment, &store)?;
            emit_report(settings, &report::collect(&plan, &store)?)?;
            continue;
        }
        print!("{}", render_plan(&plan, None, settings.mode)?);
        if settings.mode == Mode::Json {
            println!("{}", serde_json::to_string_pretty(&record)?);
        } else {
            let mut table = Table::new();
            table
                .load_preset(presets::UTF8_FULL_CONDENSED)
                .set_header(["task", "Slurm job", "state", "outcome"]);
            for job in &record.jobs {
                let outcome = job.outcome.clone().unwrap_or_else(|| "in progress".into());
                table.add_row([job.task.clone(), job.job_id.clone(), job.state.clone(), outcome]);
            }
            println!("Slurm run {} ({}):\n{table}", record.run_id, record.created);
        }
        all_ok &= !record.jobs.iter().any(|j| j.outcome.as_deref() == Some("failed"));
    }
    Ok(all_ok)
}

/// `plan`.
pub fn plan_command(settings: &Settings, files: &[PathBuf]) -> Result<String> {
    let store = Store::open_existing(&settings.cache_dir);
    let mut out = String::new();
    for file in files {
        let experiment = load(file)?;
        let plan = plan::plan(&experiment, &store)?;
        out += &render_plan(&plan, None, settings.mode)?;
    }
    Ok(out)
}

fn render_plan(plan: &Plan, selection: Option<&BTreeSet<usize>>, mode: Mode) -> Result<String> {
    let experiment = plan.experiment;
    let selected = selection.map(|roots| {
        crate::graph::TaskGraph::new(&experiment.tasks).with_dependencies(&roots.iter().copied().collect::<Vec<_>>())
    });
    let rows: Vec<usize> = (0..experiment.tasks.len())
        .filter(|i| selected.as_ref().is_none_or(|s| s.contains(i)))
        .collect();
    if mode == Mode::Json {
        let tasks: Vec<_> = rows
            .iter()
            .map(|&i| {
                let (task, entry) = (&experiment.tasks[i], &plan.entries[i]);
                let reasons: Vec<_> = match &entry.status {
                    Status::Cached(_) => Vec::new(),
                    Status::Run(reasons) => reasons.iter().map(|r| json!({"detail": r, "message": r.to_string()})).collect(),
                };
                json!({"task": task.name, "kind": task.kind.kind(), "key": entry.key, "cached": entry.status.is_cached(), "reasons": reasons})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&json!({"experiment": experiment.name, "tasks": tasks}))? + "\n");
    }
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(["task", "kind", "key", "status", "why"]);
    let mut to_run = 0;
    for &i in &rows {
        let (task, entry) = (&experiment.tasks[i], &plan.entries[i]);
        let (status, why) = match &entry.status {
            Status::Cached(manifest) => (
                "cached".to_string(),
                format!("built {} in {}", manifest.created, human_duration(manifest.duration_s)),
            ),
            Status::Run(reasons) => {
                to_run += 1;
                (
                    "run".to_string(),
                    reasons.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
                )
            }
        };
        table.add_row([
            task.name.clone(),
            task.kind.kind().to_string(),
            short(&entry.key).to_string(),
            status,
            why,
        ]);
    }
    Ok(format!(
        "{} ({}): {} tasks, {to_run} to run\n{table}\n",
        experiment.name,
        experiment.path.display(),
        rows.len()
    ))
}

/// `why TASK`: the key, its parts, and why the task would run, following changed inputs
/// upstream.
pub fn why(settings: &Settings, file: &Path, task_name: &str) -> Result<String> {
    let experiment = load(file)?;
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
    if settings.mode == Mode::Json {
        let items: Vec<_> = indices
            .iter()
            .map(|&i| {
                let entry = &plan.entries[i];
                let reasons: Vec<Reason> = match &entry.status {
                    Status::Cached(_) => Vec::new(),
                    Status::Run(r) => r.clone(),
                };
                json!({"task": experiment.tasks[i].name, "key": entry.key, "parts": entry.parts, "cached": entry.status.is_cached(), "reasons": reasons})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&items)? + "\n");
    }
    let mut out = String::new();
    for index in indices {
        let (task, entry) = (&experiment.tasks[index], &plan.entries[index]);
        let _ = writeln!(
            out,
            "task {} (kind {}) in {}",
            task.name,
            task.kind.kind(),
            experiment.name
        );
        let _ = writeln!(out, "key  {}", entry.key);
        explain(&plan, index, 0, &mut out);
        let _ = writeln!(out, "key parts:\n{}", serde_json::to_string_pretty(&entry.parts)?);
    }
    Ok(out)
}

fn explain(plan: &Plan, index: usize, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth + 1);
    let experiment = plan.experiment;
    match &plan.entries[index].status {
        Status::Cached(manifest) => {
            let _ = writeln!(
                out,
                "{indent}cached: built {} by `{}` ({}) in {}",
                manifest.created,
                manifest.task,
                manifest.experiment,
                human_duration(manifest.duration_s)
            );
        }
        Status::Run(reasons) => {
            let _ = writeln!(out, "{indent}will run:");
            for reason in reasons {
                let _ = writeln!(out, "{indent}- {reason}");
                if let Reason::InputChanged { slot, .. } = reason {
                    if let Some(&upstream) = experiment.tasks[index].inputs.get(slot) {
                        let _ = writeln!(out, "{indent}  because `{}`:", experiment.tasks[upstream].name);
                        explain(plan, upstream, depth + 2, out);
                    }
                }
            }
        }
    }
}

/// How `report` presents what it reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions {
    /// Every run on its own line instead of mean ± std over seeds.
    pub individual_runs: bool,
    /// All files in one side-by-side report instead of one report each.
    pub compare: bool,
}

/// `report`: pure read of the cache. Returns false when some reporting task is missing.
pub fn report(settings: &Settings, files: &[PathBuf], options: ReportOptions) -> Result<bool> {
    let store = Store::open_existing(&settings.cache_dir);
    let mut complete = true;
    let mut reports = Vec::new();
    for file in files {
        let experiment = load(file)?;
        let plan = plan::plan(&experiment, &store)?;
        let mut report = report::collect(&plan, &store)?;
        report.individual_runs = options.individual_runs;
        complete &= report.missing.is_empty();
        if !report.missing.is_empty() && settings.mode != Mode::Json {
            eprintln!(
                "{}: {} of {} reported tasks are not in the cache; run `orchestrate run {}` to compute them",
                experiment.name,
                report.missing.len(),
                report.missing.len() + report.rows.len(),
                file.display()
            );
        }
        reports.push(report);
    }
    if options.compare {
        emit_report(settings, &report::compare::merge(reports))?;
    } else {
        for report in &reports {
            emit_report(settings, report)?;
        }
    }
    Ok(complete)
}

/// `gc`: removes artifacts no given experiment references, resume states no unfinished task
/// of theirs needs, and abandoned staging dirs.
pub fn gc(settings: &Settings, files: &[PathBuf], dry_run: bool) -> Result<String> {
    if files.is_empty() {
        bail!("gc needs the experiment files whose artifacts to keep");
    }
    let store = Store::open_existing(&settings.cache_dir);
    let mut keep = BTreeSet::new();
    for file in files {
        let experiment = load(file)?;
        keep.extend(plan::plan(&experiment, &store)?.entries.into_iter().map(|e| e.key));
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    let (mut removed, mut bytes) = (0usize, 0u64);
    let mut out = String::new();
    for (key, manifest) in store.list()? {
        if keep.contains(&key) {
            continue;
        }
        let (label, size) = match &manifest {
            Ok(m) => (format!("{} ({})", m.task, m.experiment), m.size()),
            Err(_) => ("unreadable manifest".to_string(), 0),
        };
        let _ = writeln!(out, "{verb} {} {label}", short(&key));
        if !dry_run {
            store.remove(&key)?;
        }
        removed += 1;
        bytes += size;
    }
    for key in store.resume_keys()? {
        // A training's resume state matters only until the task's artifact exists.
        if keep.contains(&key) && !store.artifact_dir(&key).exists() {
            continue;
        }
        let _ = writeln!(out, "{verb} resume state {}", short(&key));
        if !dry_run {
            store.remove_resume_states(&key)?;
        }
    }
    for staging in store.abandoned_staging()? {
        let _ = writeln!(out, "{verb} abandoned {}", staging.display());
        if !dry_run {
            std::fs::remove_dir_all(&staging).with_context(|| format!("cannot remove {}", staging.display()))?;
        }
    }
    let _ = writeln!(
        out,
        "{verb} {removed} artifacts ({:.1} MB), kept {}",
        bytes as f64 / 1e6,
        keep.len()
    );
    Ok(out)
}

/// `ls`: what the cache holds.
pub fn ls(settings: &Settings) -> Result<String> {
    let store = Store::open_existing(&settings.cache_dir);
    let entries = store.list()?;
    if settings.mode == Mode::Json {
        let items: Vec<_> = entries
            .iter()
            .map(|(key, manifest)| match manifest {
                Ok(m) => json!({"key": key, "kind": m.parts.get("kind"), "task": m.task, "experiment": m.experiment, "bytes": m.size(), "created": m.created, "duration_s": m.duration_s}),
                Err(err) => json!({"key": key, "error": format!("{err:#}")}),
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&items)? + "\n");
    }
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
        "key",
        "kind",
        "task",
        "experiment",
        "size",
        "created",
        "took",
    ]);
    let mut total = 0;
    for (key, manifest) in &entries {
        match manifest {
            Ok(m) => {
                total += m.size();
                let kind = m.parts.get("kind").and_then(|k| k.as_str()).unwrap_or("?").to_string();
                table.add_row([
                    short(key).to_string(),
                    kind,
                    m.task.clone(),
                    m.experiment.clone(),
                    format!("{:.2} MB", m.size() as f64 / 1e6),
                    m.created.clone(),
                    human_duration(m.duration_s),
                ]);
            }
            Err(err) => {
                table.add_row([
                    short(key).to_string(),
                    "?".into(),
                    format!("unreadable: {err:#}"),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                ]);
            }
        }
    }
    Ok(format!(
        "{} artifacts, {:.1} MB in {}\n{table}\n",
        entries.len(),
        total as f64 / 1e6,
        store.root().display()
    ))
}

/// `verify`: re-hashes every artifact in the cache against its manifest (the same check
/// every lookup makes). Returns what to print and whether the cache is intact; a corrupt
/// artifact is rebuilt by the next `run` of an experiment that uses it.
pub fn verify(settings: &Settings) -> Result<(String, bool)> {
    let store = Store::open_existing(&settings.cache_dir);
    let entries = store.list()?;
    let mut corrupt = Vec::new();
    for (key, manifest) in &entries {
        if let Lookup::Corrupt(reason) = store.lookup(key) {
            // The manifest may be what is broken; name the task when it can still be read.
            let (task, experiment) = match manifest {
                Ok(m) => (Some(m.task.as_str()), Some(m.experiment.as_str())),
                Err(_) => (None, None),
            };
            corrupt.push(json!({"key": key, "task": task, "experiment": experiment, "reason": reason}));
        }
    }
    let clean = corrupt.is_empty();
    if settings.mode == Mode::Json {
        let document = json!({"cache": store.root(), "checked": entries.len(), "corrupt": corrupt});
        return Ok((serde_json::to_string_pretty(&document)? + "\n", clean));
    }
    let mut out = String::new();
    for item in &corrupt {
        let owner = match (item["task"].as_str(), item["experiment"].as_str()) {
            (Some(task), Some(experiment)) => format!("{task} ({experiment})"),
            _ => "unknown task".to_string(),
        };
        let key = item["key"].as_str().unwrap_or_default();
        let _ = writeln!(
            out,
            "corrupt  {}  {owner}: {}",
            short(key),
            item["reason"].as_str().unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "{} artifacts checked in {}: {}",
        entries.len(),
        store.root().display(),
        if clean {
            "all intact".to_string()
        } else {
            format!(
                "{} corrupt; the next `orchestrate run` that uses them rebuilds them",
                corrupt.len()
            )
        }
    );
    Ok((out, clean))
}

/// `inspect MODEL --method M --set k=v`: the module tree and PEFT's parameter line, with the
/// method's parameters validated exactly as in an experiment file.
pub fn inspect(model: &str, method: &str, sets: &[String]) -> Result<String> {
    let mut table = toml::Table::new();
    for set in sets {
        let (key, text) = set
            .split_once('=')
            .with_context(|| format!("--set {set:?}: expected KEY=VALUE"))?;
        table.insert(key.trim().to_string(), cli_value(text.trim()));
    }
    let method = crate::tasks::method(method, model, table)?;
    Ok(crate::model::inspect::run(model, &method)?)
}

/// A `--set` value: TOML when it parses (`6`, `0.1`, `true`, `["a", "b"]`), a comma list
/// of strings (`q_lin,v_lin`), else a string.
fn cli_value(text: &str) -> toml::Value {
    if let Ok(mut table) = toml::from_str::<toml::Table>(&format!("v = {text}")) {
        if let Some(value) = table.remove("v") {
            return value;
        }
    }
    if text.contains(',') {
        return toml::Value::Array(text.split(',').map(|s| toml::Value::String(s.trim().into())).collect());
    }
    toml::Value::String(text.into())
}

/// One shape of [`bench_matmul`]: `[m, k] × [k, n]` in float32.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MatmulRate {
    pub m: i64,
    pub k: i64,
    pub n: i64,
    pub gflops: f64,
}

/// Float32 matmul throughput through tch on this machine: square products and the shapes
/// of MiniLM's linear layers on a batch of 8 × 256 tokens. The best rate is the "peak" that
/// model FLOPs utilisation (bench/run.sh) divides by.
pub fn matmul_rates(threads: Option<usize>, seconds: f64) -> Result<Vec<MatmulRate>> {
    crate::model::set_threads(threads);
    let _guard = tch::no_grad_guard();
    let shapes = [
        (1024, 1024, 1024),
        (2048, 2048, 2048),
        (2048, 384, 1536),
        (2048, 1536, 384),
        (2048, 384, 384),
    ];
    let mut rates = Vec::new();
    for (m, k, n) in shapes {
        let a = tch::Tensor::f_randn([m, k], (tch::Kind::Float, tch::Device::Cpu))?;
        let b = tch::Tensor::f_randn([k, n], (tch::Kind::Float, tch::Device::Cpu))?;
        let mut out = a.f_matmul(&b)?; // warm-up (allocations, thread pool)
        let (started, mut calls) = (std::time::Instant::now(), 0u64);
        while calls < 3 || started.elapsed().as_secs_f64() < seconds {
            out = a.f_matmul(&b)?;
            calls += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        drop(out);
        let flops = 2.0 * (m * k * n) as f64 * calls as f64;
        rates.push(MatmulRate {
            m,
            k,
            n,
            gflops: flops / elapsed / 1e9,
        });
    }
    Ok(rates)
}

/// `bench-matmul` (hidden): [`matmul_rates`] as a table or JSON.
pub fn bench_matmul(settings: &Settings, threads: Option<usize>, seconds: f64) -> Result<String> {
    let rates = matmul_rates(threads, seconds)?;
    let peak = rates.iter().map(|r| r.gflops).fold(0.0, f64::max);
    let threads = tch::get_num_threads();
    if settings.mode == Mode::Json {
        return Ok(serde_json::to_string(&json!({"threads": threads, "peak_gflops": peak, "shapes": rates}))? + "\n");
    }
    let mut out = format!("float32 matmul through libtorch, {threads} threads:\n");
    for r in &rates {
        let _ = writeln!(out, "  [{}×{}]·[{}×{}]  {:.1} GFLOP/s", r.m, r.k, r.k, r.n, r.gflops);
    }
    let _ = writeln!(out, "peak {peak:.1} GFLOP/s");
    Ok(out)
}
