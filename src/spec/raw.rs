//! Reading experiment files (and their includes) into declarations, keeping the span of
//! every key so later phases can point at it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::error::{Location, Source, SpecError};
use super::executor::ExecutorSpec;
use crate::tasks::{self, DynTask};

/// A value from the file with where it was written.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub value: T,
    pub location: Location,
}

/// The values of one swept parameter.
#[derive(Debug, Clone)]
pub enum SweepValues {
    List(Vec<toml::Value>),
    /// `"halving"`: the model's hidden size, then halved down to 1 (768, 384, …, 3, 1),
    /// resolved once the task's model is known.
    Halving,
}

/// A task as declared: before defaults, sweeps and input expansion.
#[derive(Debug, Clone)]
pub struct Declaration {
    pub name: Located<String>,
    pub kind: &'static dyn DynTask,
    /// slot → referenced task name (or sweep member name).
    pub inputs: Vec<(Located<String>, Located<String>)>,
    pub params: Vec<(Located<String>, toml::Value)>,
    /// Swept parameters in file order, each with its values.
    pub sweep: Vec<(Located<String>, SweepValues)>,
    pub base_dir: PathBuf,
}

impl std::fmt::Debug for dyn DynTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind())
    }
}

/// A default parameter value, from a `[defaults]` table.
#[derive(Debug, Clone)]
pub struct Default {
    pub key: Located<String>,
    pub value: toml::Value,
}

#[derive(Debug, Default)]
pub struct RawExperiment {
    pub name: Option<String>,
    pub description: Option<String>,
    pub declarations: Vec<Declaration>,
    /// Defaults for every kind that has the parameter.
    pub defaults: Vec<Default>,
    /// Defaults per kind, from `[defaults.<kind>]`.
    pub kind_defaults: BTreeMap<&'static str, Vec<Default>>,
    /// `[executor]`; the main file's replaces an included one.
    pub executor: Option<ExecutorSpec>,
}

type Table<'i> = DeTable<'i>;
type Value<'i> = Spanned<DeValue<'i>>;

/// Reads an experiment file's text (`path` names it in errors and anchors relative paths)
/// and everything it includes, from disk.
pub fn read_str(path: &Path, text: String) -> Result<RawExperiment, SpecError> {
    let mut experiment = RawExperiment::default();
    let mut stack = Vec::new();
    read_source(path, text, true, &mut experiment, &mut stack)?;
    Ok(experiment)
}

/// An experiment file's text. Only regular files: reading a device (`/dev/zero`) or a
/// FIFO named by an include would never end.
pub fn read_text(path: &Path) -> Result<String, SpecError> {
    let cannot = |err: &dyn std::fmt::Display| {
        SpecError::without_location(format!("cannot read experiment file {}: {err}", path.display()))
    };
    let metadata = std::fs::metadata(path).map_err(|err| cannot(&err))?;
    if !metadata.is_file() {
        return Err(cannot(&"not a regular file"));
    }
    std::fs::read_to_string(path).map_err(|err| cannot(&err))
}

fn read_source(
    path: &Path,
    text: String,
    is_main: bool,
    experiment: &mut RawExperiment,
    stack: &mut Vec<PathBuf>,
) -> Result<(), SpecError> {
    let source = Arc::new(Source {
        path: path.to_path_buf(),
        text,
    });
    let root = DeTable::parse(&source.text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        SpecError::at(
            &Location::new(&source, span),
            None,
            format!("invalid TOML: {}", err.message().trim_end()),
        )
    })?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    stack.push(canonical);
    let at = |span: std::ops::Range<usize>| Location::new(&source, span);

    // Includes come first so that this file's entries override theirs.
    if let Some((key, value)) = root.get_ref().get_key_value("include") {
        let items: Vec<Value> = match value.get_ref() {
            DeValue::String(s) => vec![Spanned::new(value.span(), DeValue::String(s.clone()))],
            DeValue::Array(array) => array.iter().cloned().collect(),
            _ => {
                return Err(type_error(
                    &at(value.span()),
                    "include",
                    "a path or a list of paths",
                    value,
                ))
            }
        };
        for item in items {
            let DeValue::String(relative) = item.get_ref() else {
                return Err(type_error(&at(item.span()), "include", "a path", &item));
            };
            let included = base_dir.join(relative.as_ref());
            let canonical = included.canonicalize().map_err(|err| {
                SpecError::at(
                    &at(item.span()),
                    Some(key.get_ref().to_string()),
                    format!("cannot read included file {}: {err}", included.display()),
                )
            })?;
            if let Some(position) = stack.iter().position(|p| *p == canonical) {
                let chain: Vec<String> = stack[position..]
                    .iter()
                    .chain([&canonical])
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(SpecError::at(&at(item.span()), Some("include".into()), "include cycle")
                    .note(chain.join(" includes ")));
            }
            let text = read_text(&included)
                .map_err(|err| SpecError::at(&at(item.span()), Some(key.get_ref().to_string()), err.message))?;
            read_source(&included, text, false, experiment, stack)?;
        }
    }

    for (key, value) in root.get_ref() {
        let key_location = at(key.span());
        match key.get_ref().as_ref() {
            "include" => {}
            "experiment" => {
                if !is_main {
                    return Err(SpecError::at(
                        &key_location,
                        Some("experiment".into()),
                        "only the main experiment file may have an [experiment] table",
                    ));
                }
                read_experiment_table(&source, value, experiment)?;
            }
            "defaults" => read_defaults(&source, value, experiment)?,
            "executor" => experiment.executor = Some(read_executor(&source, value)?),
            section @ ("datasets" | "tasks") => {
                let table = as_table(&at(value.span()), section, value)?;
                for (name, body) in table {
                    let declaration = read_declaration(&source, section, name, body, &base_dir)?;
                    if let Some(previous) = experiment
                        .declarations
                        .iter()
                        .find(|d| d.name.value == declaration.name.value)
                    {
                        let (line, col) = previous.name.location.line_col();
                        return Err(SpecError::at(
                            &declaration.name.location,
                            Some(format!("{section}.{}", declaration.name.value)),
                            format!("task `{}` is declared twice", declaration.name.value),
                        )
                        .note(format!(
                            "first declared at {}:{line}:{col}",
                            previous.name.location.source.path.display()
                        )));
                    }
                    experiment.declarations.push(declaration);
                }
            }
            other => {
                return Err(SpecError::at(
                    &key_location,
                    Some(other.to_string()),
                    format!("unknown top-level key `{other}`"),
                )
                .note("expected one of `experiment`, `include`, `defaults`, `executor`, `datasets`, `tasks`"));
            }
        }
    }
    stack.pop();
    Ok(())
}

fn read_experiment_table(source: &Arc<Source>, value: &Value, experiment: &mut RawExperiment) -> Result<(), SpecError> {
    let table = as_table(&Location::new(source, value.span()), "experiment", value)?;
    for (key, value) in table {
        let dotted = format!("experiment.{}", key.get_ref());
        let location = Location::new(source, value.span());
        match key.get_ref().as_ref() {
            "name" => experiment.name = Some(as_str(&location, &dotted, value)?.to_string()),
            "description" => experiment.description = Some(as_str(&location, &dotted, value)?.to_string()),
            other => {
                return Err(SpecError::at(
                    &Location::new(source, key.span()),
                    Some(dotted.clone()),
                    format!("unknown key `{other}` in [experiment]"),
                )
                .note("expected `name` or `description`"));
            }
        }
    }
    Ok(())
}

fn read_executor(source: &Arc<Source>, value: &Value) -> Result<ExecutorSpec, SpecError> {
    let spec: ExecutorSpec = deserialize_located(source, "executor", value)?;
    if let DeValue::Table(table) = value.get_ref() {
        if let Some(kinds) = table.get("kinds").and_then(|k| k.get_ref().as_table()) {
            for kind in kinds.keys() {
                if tasks::lookup(kind.get_ref()).is_none() {
                    return Err(SpecError::at(
                        &Location::new(source, kind.span()),
                        Some(format!("executor.kinds.{}", kind.get_ref())),
                        format!("unknown task kind `{}`", kind.get_ref()),
                    )
                    .note(format!("known kinds: {}", tasks::kind_names().join(", "))));
                }
            }
        }
    }
    Ok(spec)
}

/// Deserializes a table into `T`, pointing errors at the offending nested key.
fn deserialize_located<T: serde::de::DeserializeOwned>(
    source: &Arc<Source>,
    dotted: &str,
    value: &Value,
) -> Result<T, SpecError> {
    let plain = to_value(source, value)?;
    serde_path_to_error::deserialize(plain).map_err(|err| {
        let message = err.inner().message().trim_end().to_string();
        let mut keys: Vec<String> = err
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                _ => None,
            })
            .collect();
        keys.extend(crate::util::unknown_field(&message));
        // Walk down the spanned table as far as the keys go.
        let mut span = value.span();
        let mut current = value;
        for key in &keys {
            match current.get_ref().as_table().and_then(|t| t.get_key_value(key.as_str())) {
                Some((spanned_key, next)) => {
                    span = spanned_key.span();
                    current = next;
                }
                None => break,
            }
        }
        let key = std::iter::once(dotted.to_string())
            .chain(keys)
            .collect::<Vec<_>>()
            .join(".");
        SpecError::at(&Location::new(source, span), Some(key), message)
    })
}

fn read_defaults(source: &Arc<Source>, value: &Value, experiment: &mut RawExperiment) -> Result<(), SpecError> {
    let table = as_table(&Location::new(source, value.span()), "defaults", value)?;
    for (key, value) in table {
        let name = key.get_ref().to_string();
        let key_location = Location::new(source, key.span());
        if let (Some(kind), DeValue::Table(per_kind)) = (tasks::lookup(&name), value.get_ref()) {
            let entries = experiment.kind_defaults.entry(kind.kind()).or_default();
            for (param, param_value) in per_kind {
                let dotted = format!("defaults.{name}.{}", param.get_ref());
                let param_location = Location::new(source, param.span());
                if !kind.param_names().contains(&param.get_ref().as_ref()) {
                    return Err(unknown_param(&param_location, &dotted, kind, param.get_ref()));
                }
                upsert(
                    entries,
                    Default {
                        key: Located {
                            value: param.get_ref().to_string(),
                            location: param_location,
                        },
                        value: to_value(source, param_value)?,
                    },
                );
            }
        } else {
            let in_any_kind = tasks::registry()
                .iter()
                .any(|k| k.param_names().contains(&name.as_str()));
            if !in_any_kind {
                return Err(SpecError::at(
                    &key_location,
                    Some(format!("defaults.{name}")),
                    format!("`{name}` is neither a parameter of any task kind nor a kind name"),
                )
                .note(format!("kinds: {}", tasks::kind_names().join(", "))));
            }
            upsert(
                &mut experiment.defaults,
                Default {
                    key: Located {
                        value: name,
                        location: key_location,
                    },
                    value: to_value(source, value)?,
                },
            );
        }
    }
    Ok(())
}

/// Later files (the main file comes last) override earlier ones.
fn upsert(entries: &mut Vec<Default>, entry: Default) {
    entries.retain(|e| e.key.value != entry.key.value);
    entries.push(entry);
}

fn read_declaration(
    source: &Arc<Source>,
    section: &str,
    name: &Spanned<toml::de::DeString>,
    body: &Value,
    base_dir: &Path,
) -> Result<Declaration, SpecError> {
    let at = |span: std::ops::Range<usize>| Location::new(source, span);
    let task_name = name.get_ref().to_string();
    let name_location = at(name.span());
    if let Err(problem) = check_task_name(&task_name) {
        return Err(SpecError::at(
            &name_location,
            Some(format!("{section}.{task_name}")),
            problem,
        ));
    }
    let table = as_table(&at(body.span()), &format!("{section}.{task_name}"), body)?;

    let kind = match table.get_key_value("kind") {
        Some((key, value)) => {
            let dotted = format!("{section}.{task_name}.kind");
            let kind_name = as_str(&at(value.span()), &dotted, value)?;
            if section == "datasets" && kind_name != "dataset" {
                return Err(SpecError::at(
                    &at(key.span()),
                    Some(dotted),
                    "entries under [datasets] are of kind `dataset`; declare other kinds under [tasks]",
                ));
            }
            tasks::lookup(kind_name).ok_or_else(|| {
                SpecError::at(
                    &at(value.span()),
                    Some(dotted),
                    format!("unknown task kind `{kind_name}`"),
                )
                .note(format!("known kinds: {}", tasks::kind_names().join(", ")))
            })?
        }
        None if section == "datasets" => tasks::lookup("dataset").expect("dataset kind is registered"),
        None => {
            return Err(SpecError::at(
                &name_location,
                Some(format!("tasks.{task_name}")),
                format!("task `{task_name}` has no `kind`"),
            )
            .note(format!("known kinds: {}", tasks::kind_names().join(", "))));
        }
    };

    let mut declaration = Declaration {
        name: Located {
            value: task_name.clone(),
            location: name_location,
        },
        kind,
        inputs: Vec::new(),
        params: Vec::new(),
        sweep: Vec::new(),
        base_dir: base_dir.to_path_buf(),
    };
    for (key, value) in table {
        let key_name = key.get_ref().to_string();
        let dotted = format!("{section}.{task_name}.{key_name}");
        let key_location = at(key.span());
        match key_name.as_str() {
            "kind" => {}
            "inputs" => declaration.inputs = read_inputs(source, kind, &dotted, value)?,
            "sweep" => {
                let sweep = as_table(&at(value.span()), &dotted, value)?;
                for (param, values) in sweep {
                    let param_dotted = format!("{dotted}.{}", param.get_ref());
                    let param_location = at(param.span());
                    if !kind.param_names().contains(&param.get_ref().as_ref()) {
                        return Err(unknown_param(&param_location, &param_dotted, kind, param.get_ref()));
                    }
                    let items = match values.get_ref() {
                        DeValue::String(rule) if rule.as_ref() == "halving" => SweepValues::Halving,
                        DeValue::Array(items) if !items.is_empty() => SweepValues::List(
                            items
                                .iter()
                                .map(|item| to_value(source, item))
                                .collect::<Result<Vec<_>, _>>()?,
                        ),
                        DeValue::Array(_) => {
                            return Err(SpecError::at(
                                &at(values.span()),
                                Some(param_dotted),
                                "a sweep needs at least one value",
                            ))
                        }
                        _ => {
                            return Err(type_error(
                                &at(values.span()),
                                &param_dotted,
                                "a list of values to sweep over (or \"halving\")",
                                values,
                            ))
                        }
                    };
                    declaration.sweep.push((
                        Located {
                            value: param.get_ref().to_string(),
                            location: param_location,
                        },
                        items,
                    ));
                }
            }
            _ => {
                if !kind.param_names().contains(&key_name.as_str()) {
                    return Err(unknown_param(&key_location, &dotted, kind, &key_name));
                }
                declaration.params.push((
                    Located {
                        value: key_name,
                        location: key_location,
                    },
                    to_value(source, value)?,
                ));
            }
        }
    }
    for (param, _) in &declaration.sweep {
        if let Some((given, _)) = declaration.params.iter().find(|(p, _)| p.value == param.value) {
            let (line, col) = given.location.line_col();
            return Err(SpecError::at(
                &param.location,
                Some(format!("{section}.{task_name}.sweep.{}", param.value)),
                format!("`{}` is both set and swept", param.value),
            )
            .note(format!("also set at line {line}, column {col}")));
        }
    }
    Ok(declaration)
}

/// A slot name and the task wired into it, each with its place in the file.
type InputWiring = (Located<String>, Located<String>);

/// `inputs = { slot = "task" }`, or `inputs = "task"` for kinds with a single slot.
fn read_inputs(
    source: &Arc<Source>,
    kind: &'static dyn DynTask,
    dotted: &str,
    value: &Value,
) -> Result<Vec<InputWiring>, SpecError> {
    let at = |span: std::ops::Range<usize>| Location::new(source, span);
    let slots = kind.slots();
    match value.get_ref() {
        DeValue::String(target) if slots.len() == 1 => Ok(vec![(
            Located {
                value: slots[0].name.to_string(),
                location: at(value.span()),
            },
            Located {
                value: target.to_string(),
                location: at(value.span()),
            },
        )]),
        DeValue::Table(table) => table
            .iter()
            .map(|(slot, target)| {
                let slot_dotted = format!("{dotted}.{}", slot.get_ref());
                if !slots.iter().any(|s| s.name == slot.get_ref().as_ref()) {
                    let names: Vec<&str> = slots.iter().map(|s| s.name).collect();
                    return Err(SpecError::at(
                        &at(slot.span()),
                        Some(slot_dotted),
                        format!("kind `{}` has no input `{}`", kind.kind(), slot.get_ref()),
                    )
                    .note(if names.is_empty() {
                        "this kind takes no inputs".to_string()
                    } else {
                        format!("its inputs: {}", names.join(", "))
                    }));
                }
                let target_name = as_str(&at(target.span()), &slot_dotted, target)?;
                Ok((
                    Located {
                        value: slot.get_ref().to_string(),
                        location: at(slot.span()),
                    },
                    Located {
                        value: target_name.to_string(),
                        location: at(target.span()),
                    },
                ))
            })
            .collect(),
        _ => Err(type_error(
            &at(value.span()),
            dotted,
            "a table `{ slot = \"task\" }`",
            value,
        )),
    }
}

/// Names appear in sweep member names (`name[k=v]`) and in cache refs.
fn check_task_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| matches!(c, '[' | ']' | '=' | ',' | '/' | '\\') || c.is_control())
    {
        return Err(format!(
            "invalid task name `{name}`: use letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok(())
}

fn to_value(source: &Arc<Source>, value: &Value) -> Result<toml::Value, SpecError> {
    toml::Value::deserialize(ValueDeserializer::from(value.clone()))
        .map_err(|err| SpecError::at(&Location::new(source, value.span()), None, err.message().to_string()))
}

fn as_table<'a, 'i>(location: &Location, dotted: &str, value: &'a Value<'i>) -> Result<&'a Table<'i>, SpecError> {
    value
        .get_ref()
        .as_table()
        .ok_or_else(|| type_error(location, dotted, "a table", value))
}

fn as_str<'a>(location: &Location, dotted: &str, value: &'a Value) -> Result<&'a str, SpecError> {
    value
        .get_ref()
        .as_str()
        .ok_or_else(|| type_error(location, dotted, "a string", value))
}

fn type_error(location: &Location, dotted: &str, expected: &str, found: &Value) -> SpecError {
    SpecError::at(
        location,
        Some(dotted.to_string()),
        format!("`{dotted}` must be {expected}, found {}", found.get_ref().type_str()),
    )
}

pub(super) fn unknown_param(location: &Location, dotted: &str, kind: &dyn DynTask, param: &str) -> SpecError {
    let names = kind.param_names();
    let mut error = SpecError::at(
        location,
        Some(dotted.to_string()),
        format!("unknown parameter `{param}` for kind `{}`", kind.kind()),
    );
    if let Some(close) = names.iter().find(|n| similar(n, param)) {
        error = error.note(format!("did you mean `{close}`?"));
    }
    error.note(format!("parameters of `{}`: {}", kind.kind(), names.join(", ")))
}

/// Cheap typo detector: same letters give or take one edit.
fn similar(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()] <= 2
}
