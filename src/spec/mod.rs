//! Experiment files: TOML → validated, expanded task instances.
//!
//! Phases, one entry function each: [`raw::read_str`] parses the file and its includes into
//! declarations (every key keeps its span); [`order_declarations`] orders
//! them and rejects cycles; [`expand`] applies defaults, expands sweeps (a grid over the
//! task's `sweep` table, and one instance per member of a swept input) and resolves each
//! instance's parameters through its kind, so type errors point at the key that caused them.

pub mod error;
pub mod executor;
pub mod overrides;
pub mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use self::error::{Location, SpecError};
use self::overrides::Override;
use self::raw::{Declaration, Located, RawExperiment, SweepValues};
use crate::model::ModelConfig;
use crate::tasks::{DynTask, ParamError, ValidateContext};

/// A loaded experiment: task instances in a deterministic topological order.
#[derive(Debug)]
pub struct Experiment {
    pub name: String,
    pub description: Option<String>,
    pub path: PathBuf,
    pub tasks: Vec<TaskInstance>,
    /// Where tasks run (`[executor]`); the local machine unless set.
    pub executor: executor::ExecutorSpec,
    /// The `--set` overrides applied on top of the file, as given.
    pub overrides: Vec<String>,
}

/// One runnable task: a declaration with defaults applied and sweep values fixed.
#[derive(Debug, Clone)]
pub struct TaskInstance {
    /// `tfidf`, or for sweep members `logreg[c=0.1]`.
    pub name: String,
    /// The declared name; sweep members share it.
    pub group: String,
    pub kind: &'static dyn DynTask,
    /// Resolved parameters: every default filled in, canonical JSON.
    pub params: serde_json::Value,
    /// Input slot → index of the upstream instance in [`Experiment::tasks`].
    pub inputs: BTreeMap<String, usize>,
    /// Sweep coordinates, inherited ones first.
    pub labels: Vec<(String, String)>,
    /// Directory of the file that declared the task; relative paths resolve here.
    pub base_dir: PathBuf,
    pub location: Location,
}

impl crate::graph::Node for TaskInstance {
    fn upstream(&self) -> impl Iterator<Item = usize> + '_ {
        self.inputs.values().copied()
    }
}

impl Experiment {
    pub fn find(&self, name: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.name == name)
    }
}

/// Loads, validates and expands an experiment file.
pub fn load(path: &Path) -> Result<Experiment, SpecError> {
    load_with_overrides(path, &[])
}

/// [`load`] with `--set` overrides applied after the file is read, before it is expanded.
pub fn load_with_overrides(path: &Path, overrides: &[Override]) -> Result<Experiment, SpecError> {
    load_text(path, &raw::read_text(path)?, overrides)
}

/// [`load`] for an experiment already in memory: `path` names it in errors and anchors
/// relative paths (includes and data files are still read from disk).
pub fn load_str(path: &Path, text: &str) -> Result<Experiment, SpecError> {
    load_text(path, text, &[])
}

fn load_text(path: &Path, text: &str, overrides: &[Override]) -> Result<Experiment, SpecError> {
    let mut raw = raw::read_str(path, text.to_string())?;
    for edit in overrides {
        edit.apply(&mut raw)?;
    }
    let order = order_declarations(&raw.declarations)?;
    let tasks = expand(&raw, &order)?;
    let name = raw.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "experiment".into())
    });
    Ok(Experiment {
        name,
        description: raw.description.clone(),
        path: path.to_path_buf(),
        tasks,
        executor: raw.executor.clone().unwrap_or_default(),
        overrides: overrides.iter().map(|o| o.text.clone()).collect(),
    })
}

/// Orders declarations so each comes after the tasks it reads; ties keep file order, so the
/// order is deterministic. A reference to an unknown name is left for expansion to report.
fn order_declarations(declarations: &[Declaration]) -> Result<Vec<usize>, SpecError> {
    let upstream: Vec<Vec<usize>> = declarations
        .iter()
        .map(|declaration| {
            declaration
                .inputs
                .iter()
                .filter_map(|(_, target)| {
                    let base = target.value.split('[').next().unwrap_or_default();
                    declarations.iter().position(|d| d.name.value == base)
                })
                .collect()
        })
        .collect();
    crate::graph::order(&upstream).map_err(|cycle| {
        let names: Vec<&str> = cycle.iter().map(|&i| declarations[i].name.value.as_str()).collect();
        let first = &declarations[cycle[0]];
        let mut path = names.clone();
        path.push(names[0]);
        SpecError::at(
            &first.name.location,
            Some(format!("tasks.{}.inputs", first.name.value)),
            format!("dependency cycle: {}", path.join(" -> ")),
        )
        .note("a task cannot (even indirectly) read its own output")
    })
}

/// Expands declarations (given in topological order) into instances.
fn expand(raw: &RawExperiment, order: &[usize]) -> Result<Vec<TaskInstance>, SpecError> {
    let mut instances: Vec<TaskInstance> = Vec::new();
    // Declared name → indices of its instances.
    let mut members: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut models = ModelConfigs::default();
    for &index in order {
        let declaration = &raw.declarations[index];
        let upstream_choices = input_choices(declaration, &instances, &members)?;
        let mut created = Vec::new();
        for (inputs, inherited) in join_inputs(&upstream_choices, &instances) {
            let sweep = resolve_sweep(raw, declaration, &inputs, &instances)?;
            'point: for point in grid(&sweep) {
                let mut table = base_table(raw, declaration);
                let mut labels = inherited.clone();
                for (param, value) in &point {
                    let text = label_text(value);
                    match labels.iter().find(|(k, _)| k == &param.value) {
                        // Swept here and upstream: only the matching members pair up.
                        Some((_, upstream)) if *upstream != text => continue 'point,
                        Some(_) => {}
                        None => labels.push((param.value.clone(), text)),
                    }
                    table.insert(param.value.clone(), ((*value).clone(), param.location.clone()));
                }
                let locations: BTreeMap<String, Location> =
                    table.iter().map(|(k, (_, l))| (k.clone(), l.clone())).collect();
                let instance = resolve_instance(declaration, table, inputs.clone(), labels)?;
                let model = models.for_task(&instance.params, &instance.base_dir, &inputs, &instances);
                let upstream: BTreeMap<String, &serde_json::Value> = inputs
                    .iter()
                    .map(|(slot, &i)| (slot.clone(), &instances[i].params))
                    .collect();
                let cx = ValidateContext {
                    base_dir: &instance.base_dir,
                    model: model.as_deref(),
                    inputs: &upstream,
                };
                instance
                    .kind
                    .validate(&instance.params, &cx)
                    .map_err(|err| param_error(declaration, &locations, err))?;
                created.push(instances.len());
                instances.push(instance);
            }
        }
        members.insert(&declaration.name.value, created);
    }
    Ok(instances)
}

/// For each input slot, the upstream instances it may bind to.
fn input_choices(
    declaration: &Declaration,
    instances: &[TaskInstance],
    members: &BTreeMap<&str, Vec<usize>>,
) -> Result<Vec<(String, Vec<usize>)>, SpecError> {
    let kind = declaration.kind;
    let task = &declaration.name.value;
    let mut choices = Vec::new();
    for slot in kind.slots() {
        let Some((_, target)) = declaration.inputs.iter().find(|(s, _)| s.value == slot.name) else {
            if slot.optional {
                continue;
            }
            return Err(SpecError::at(
                &declaration.name.location,
                Some(format!("tasks.{task}.inputs")),
                format!(
                    "task `{task}` needs input `{}` (a task of kind {})",
                    slot.name,
                    slot.accepts.join(" or ")
                ),
            ));
        };
        let candidates = match members.get(target.value.as_str()) {
            Some(all) => all.clone(),
            None => match instances.iter().position(|i| i.name == target.value) {
                Some(one) => vec![one],
                None => return Err(missing_reference(declaration, slot.name, target, instances)),
            },
        };
        for &candidate in &candidates {
            let upstream = instances[candidate].kind.kind();
            if !slot.accepts.contains(&upstream) {
                return Err(SpecError::at(
                    &target.location,
                    Some(format!("tasks.{task}.inputs.{}", slot.name)),
                    format!(
                        "input `{}` of `{task}` must be a task of kind {}, but `{}` is a `{upstream}`",
                        slot.name,
                        slot.accepts.join(" or "),
                        target.value
                    ),
                ));
            }
        }
        choices.push((slot.name.to_string(), candidates));
    }
    Ok(choices)
}

fn missing_reference(
    declaration: &Declaration,
    slot: &str,
    target: &Located<String>,
    instances: &[TaskInstance],
) -> SpecError {
    let mut error = SpecError::at(
        &target.location,
        Some(format!("tasks.{}.inputs.{slot}", declaration.name.value)),
        format!("input `{slot}` refers to unknown task `{}`", target.value),
    );
    let mut known: Vec<&str> = instances.iter().map(|i| i.group.as_str()).collect();
    known.dedup();
    if !known.is_empty() {
        error = error.note(format!("tasks declared so far: {}", known.join(", ")));
    }
    error
}

/// One choice of upstream instance per input slot, with the sweep labels it carries.
type InputCombo = (BTreeMap<String, usize>, Vec<(String, String)>);

/// Every combination of upstream instances whose sweep labels agree on shared keys, with
/// the merged labels (a natural join, so a diamond never mixes sweep members).
fn join_inputs(choices: &[(String, Vec<usize>)], instances: &[TaskInstance]) -> Vec<InputCombo> {
    let mut combos: Vec<InputCombo> = vec![(BTreeMap::new(), Vec::new())];
    for (slot, candidates) in choices {
        let mut next = Vec::new();
        for (inputs, labels) in &combos {
            'candidate: for &candidate in candidates {
                let mut merged = labels.clone();
                for (key, value) in &instances[candidate].labels {
                    match merged.iter().find(|(k, _)| k == key) {
                        Some((_, existing)) if existing != value => continue 'candidate,
                        Some(_) => {}
                        None => merged.push((key.clone(), value.clone())),
                    }
                }
                let mut inputs = inputs.clone();
                inputs.insert(slot.clone(), candidate);
                next.push((inputs, merged));
            }
        }
        combos = next;
    }
    combos
}

/// A sweep's parameters, each with the values it takes.
type SweepAxes = Vec<(Located<String>, Vec<toml::Value>)>;

/// The sweep's value lists, with `"halving"` resolved against the model the task uses.
fn resolve_sweep(
    raw: &RawExperiment,
    declaration: &Declaration,
    inputs: &BTreeMap<String, usize>,
    instances: &[TaskInstance],
) -> Result<SweepAxes, SpecError> {
    let mut resolved = Vec::new();
    for (param, values) in &declaration.sweep {
        let list = match values {
            SweepValues::List(list) => list.clone(),
            SweepValues::Halving => {
                let hidden = model_hidden_size(raw, declaration, inputs, instances).map_err(|message| {
                    SpecError::at(
                        &param.location,
                        Some(format!("tasks.{}.sweep.{}", declaration.name.value, param.value)),
                        format!("`\"halving\"` needs the model's hidden size: {message}"),
                    )
                })?;
                std::iter::successors(Some(hidden), |&r| (r > 1).then_some(r / 2))
                    .map(toml::Value::Integer)
                    .collect()
            }
        };
        resolved.push((param.clone(), list));
    }
    Ok(resolved)
}

/// The hidden size of the model a task uses: its own `model` parameter, else the nearest
/// upstream task's.
fn model_hidden_size(
    raw: &RawExperiment,
    declaration: &Declaration,
    inputs: &BTreeMap<String, usize>,
    instances: &[TaskInstance],
) -> Result<i64, String> {
    let own = base_table(raw, declaration)
        .get("model")
        .and_then(|(value, _)| value.as_str().map(|m| (m.to_string(), declaration.base_dir.clone())));
    let (model, base_dir) =
        nearest_model(own, inputs, instances).ok_or("neither the task nor its inputs set `model`")?;
    let folder = crate::tasks::tokenize::model_path(&base_dir, &model).map_err(|e| format!("{e:#}"))?;
    let config = if folder.is_file() {
        folder
    } else {
        folder.join("config.json")
    };
    crate::model::ModelConfig::from_file(&config)
        .map(|c| c.hidden_size())
        .map_err(|e| e.to_string())
}

/// `own` (a task's `model` and its base directory), else the `model` of the nearest
/// upstream task, breadth first.
fn nearest_model(
    own: Option<(String, PathBuf)>,
    inputs: &BTreeMap<String, usize>,
    instances: &[TaskInstance],
) -> Option<(String, PathBuf)> {
    let mut queue: std::collections::VecDeque<usize> = inputs.values().copied().collect();
    let mut found = own;
    while found.is_none() {
        let upstream = &instances[queue.pop_front()?];
        found = upstream
            .params
            .get("model")
            .and_then(|m| m.as_str())
            .map(|m| (m.to_string(), upstream.base_dir.clone()));
        queue.extend(upstream.inputs.values().copied());
    }
    found
}

/// The cartesian product of a sweep table, in file order.
fn grid(sweep: &[(Located<String>, Vec<toml::Value>)]) -> Vec<Vec<(&Located<String>, &toml::Value)>> {
    let mut points: Vec<Vec<(&Located<String>, &toml::Value)>> = vec![Vec::new()];
    for (param, values) in sweep {
        points = points
            .iter()
            .flat_map(|point| {
                values.iter().map(move |value| {
                    let mut point = point.clone();
                    point.push((param, value));
                    point
                })
            })
            .collect();
    }
    points
}

type ParamTable = BTreeMap<String, (toml::Value, Location)>;

/// Defaults (shared, then per kind), then the task's own parameters.
fn base_table(raw: &RawExperiment, declaration: &Declaration) -> ParamTable {
    let kind = declaration.kind;
    let mut table = ParamTable::new();
    let shared = raw.defaults.iter().filter(|d| takes(kind.param_names(), &d.key.value));
    let per_kind = raw.kind_defaults.get(kind.kind()).into_iter().flatten();
    for default in shared.chain(per_kind) {
        table.insert(
            default.key.value.clone(),
            (
                default_value(default, &declaration.base_dir),
                default.key.location.clone(),
            ),
        );
    }
    for (key, value) in &declaration.params {
        table.insert(key.value.clone(), (value.clone(), key.location.clone()));
    }
    table
}

/// Parameters that name a file or folder, relative to the file that sets them.
const PATH_PARAMS: &[&str] = &["model", "batch_order"];

/// A default's value for a task declared in `task_dir`. A relative path set in another file's
/// `[defaults]` is relative to that file, as its datasets' paths and includes are: it becomes
/// absolute (a path that does not exist there, such as a hub id, stays as written). Paths
/// are not part of keys, their content is, so this changes no key.
fn default_value(default: &raw::Default, task_dir: &Path) -> toml::Value {
    let declared_in = &default.key.location.source.path;
    if let (true, toml::Value::String(value), Some(dir)) = (
        PATH_PARAMS.contains(&default.key.value.as_str()),
        &default.value,
        declared_in.parent(),
    ) {
        let there = dir.join(value);
        if declared_in.is_file() && dir != task_dir && Path::new(value).is_relative() && there.exists() {
            if let Ok(absolute) = std::path::absolute(&there) {
                return toml::Value::String(absolute.to_string_lossy().into_owned());
            }
        }
    }
    default.value.clone()
}

fn resolve_instance(
    declaration: &Declaration,
    table: ParamTable,
    inputs: BTreeMap<String, usize>,
    labels: Vec<(String, String)>,
) -> Result<TaskInstance, SpecError> {
    let task = &declaration.name.value;
    let locations: BTreeMap<String, Location> = table.iter().map(|(k, (_, l))| (k.clone(), l.clone())).collect();
    let mut values: toml::Table = table.into_iter().map(|(k, (v, _))| (k, v)).collect();
    if !declaration.kind.param_names().contains(&"revision") {
        fold_revision(&mut values).map_err(|err| param_error(declaration, &locations, err))?;
    }
    let params = declaration
        .kind
        .resolve(values)
        .map_err(|err| param_error(declaration, &locations, err))?;
    Ok(TaskInstance {
        name: member_name(task, &labels),
        group: task.clone(),
        kind: declaration.kind,
        params,
        inputs,
        labels,
        base_dir: declaration.base_dir.clone(),
        location: declaration.name.location.clone(),
    })
}

/// Whether a kind with these parameters takes `key` from `[defaults]`: its own parameters,
/// except that a shared `revision` pins the `model` (datasets name their own `revision`).
fn takes(names: &[&str], key: &str) -> bool {
    if key == "revision" {
        names.contains(&"model")
    } else {
        names.contains(&key)
    }
}

/// `revision = "…"` beside a hub `model` (a branch, tag or commit, as `from_pretrained`'s
/// `revision=`) is the same as `model = "org/name@…"`: folded into it, so both spellings
/// share one key.
fn fold_revision(values: &mut toml::Table) -> Result<(), ParamError> {
    let Some(revision) = values.remove("revision") else {
        return Ok(());
    };
    let toml::Value::String(revision) = revision else {
        return Err(ParamError::at(
            "revision",
            "revision must be a string (a branch, tag or commit)",
        ));
    };
    let Some(toml::Value::String(model)) = values.get("model") else {
        return Err(ParamError::at("revision", "revision needs a hub `model` to pin"));
    };
    if model.contains('@') {
        return Err(ParamError::at(
            "revision",
            format!("`model = \"{model}\"` already pins a revision; give `@…` or `revision`, not both"),
        ));
    }
    let pinned = format!("{model}@{revision}");
    values.insert("model".into(), toml::Value::String(pinned));
    Ok(())
}

/// A parameter error of `declaration`, pointing at the key (or the task) it is about.
fn param_error(declaration: &Declaration, locations: &BTreeMap<String, Location>, err: ParamError) -> SpecError {
    let task = &declaration.name.value;
    let location = err
        .key
        .as_ref()
        .and_then(|k| locations.get(k))
        .unwrap_or(&declaration.name.location);
    let key = err
        .key
        .as_ref()
        .map_or_else(|| format!("tasks.{task}"), |k| format!("tasks.{task}.{k}"));
    SpecError::at(
        location,
        Some(key),
        format!(
            "invalid parameters for `{task}` ({}): {}",
            declaration.kind.kind(),
            err.message
        ),
    )
}

/// Model configs read for validation, by the folder they came from (each read once).
#[derive(Default)]
struct ModelConfigs {
    read: BTreeMap<PathBuf, Option<std::rc::Rc<ModelConfig>>>,
}

impl ModelConfigs {
    /// The config of the model a task works with: its own `model` parameter, else the
    /// nearest upstream task's; `None` when there is none, when it is not on disk next to the
    /// experiment (a hub id: loading a spec downloads nothing, planning does) or when its
    /// config does not parse (the task reports that when it runs).
    fn for_task(
        &mut self,
        params: &serde_json::Value,
        base_dir: &Path,
        inputs: &BTreeMap<String, usize>,
        instances: &[TaskInstance],
    ) -> Option<std::rc::Rc<ModelConfig>> {
        let own = params
            .get("model")
            .and_then(|m| m.as_str())
            .map(|m| (m.to_string(), base_dir.to_path_buf()));
        let (model, base_dir) = nearest_model(own, inputs, instances)?;
        let folder = base_dir.join(model);
        if !folder.exists() {
            return None;
        }
        self.read
            .entry(folder.clone())
            .or_insert_with(|| {
                let config = if folder.is_file() {
                    folder
                } else {
                    folder.join("config.json")
                };
                ModelConfig::from_file(&config).ok().map(std::rc::Rc::new)
            })
            .clone()
    }
}

/// A sweep member's name: `logreg[c=0.5,max_iter=100]`, or the declared name alone.
pub fn member_name(group: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return group.to_string();
    }
    let coordinates: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{group}[{}]", coordinates.join(","))
}

/// How a sweep value appears in a member name: strings bare, numbers as written.
fn label_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
