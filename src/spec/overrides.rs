//! Command-line overrides (`--set KEY=VALUE`, as Hydra's and `dvc exp run -S`): each is an
//! edit of the experiment after it is read and before it is expanded, so it is validated
//! like the file and changes keys exactly as the same edit in the file would.
//!
//! Keys: `defaults.PARAM`, `defaults.KIND.PARAM`, `tasks.NAME.PARAM`,
//! `tasks.NAME.sweep.PARAM` (and `datasets.NAME.PARAM`). Setting a swept parameter replaces
//! its sweep, and sweeping a set one replaces its value: the edit a user would make.

use std::path::PathBuf;
use std::sync::Arc;

use super::error::{Location, Source, SpecError};
use super::raw::{unknown_param, Declaration, Default, Located, RawExperiment, SweepValues};
use crate::tasks;

/// One `--set KEY=VALUE`, parsed.
#[derive(Debug, Clone)]
pub struct Override {
    /// As given, for the report header and for errors.
    pub text: String,
    path: Vec<String>,
    value: toml::Value,
    /// The override as a one-line source, so errors quote it with a caret under the key.
    source: Arc<Source>,
    /// Byte span of the key's last segment in `text`.
    key_span: std::ops::Range<usize>,
}

impl Override {
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let source = Arc::new(Source {
            path: PathBuf::from("--set"),
            text: text.to_string(),
        });
        let whole = Location::new(&source, 0..text.len());
        let Some((key, value)) = text.split_once('=') else {
            return Err(SpecError::at(&whole, None, "expected KEY=VALUE, e.g. tasks.lora.r=8"));
        };
        let path: Vec<String> = key.trim().split('.').map(|s| s.trim().to_string()).collect();
        if path.iter().any(String::is_empty) {
            return Err(SpecError::at(
                &Location::new(&source, 0..key.len()),
                None,
                format!("`{}` is not a dotted key such as tasks.lora.r", key.trim()),
            ));
        }
        let last_start = key.rfind('.').map_or(0, |i| i + 1);
        Ok(Self {
            text: text.to_string(),
            value: cli_value(value.trim()),
            path,
            key_span: last_start..key.trim_end().len(),
            source,
        })
    }

    fn location(&self) -> Location {
        Location::new(&self.source, self.key_span.clone())
    }

    fn dotted(&self) -> String {
        self.path.join(".")
    }

    fn error(&self, message: impl Into<String>) -> SpecError {
        SpecError::at(&self.location(), Some(self.dotted()), message)
    }

    /// Applies the edit to an experiment as read.
    pub fn apply(&self, experiment: &mut RawExperiment) -> Result<(), SpecError> {
        let parts: Vec<&str> = self.path.iter().map(String::as_str).collect();
        match parts.as_slice() {
            ["defaults", param] => self.set_default(experiment, param),
            ["defaults", kind, param] => self.set_kind_default(experiment, kind, param),
            [section @ ("tasks" | "datasets"), name, "sweep", param] => {
                let declaration = self.declaration(experiment, section, name)?;
                self.sweep(declaration, param)
            }
            [section @ ("tasks" | "datasets"), name, param] => {
                let declaration = self.declaration(experiment, section, name)?;
                self.set_param(declaration, param)
            }
            _ => Err(self.error(format!(
                "cannot override `{}`: expected defaults.PARAM, defaults.KIND.PARAM, tasks.NAME.PARAM or tasks.NAME.sweep.PARAM",
                self.dotted()
            ))),
        }
    }

    fn located(&self, name: &str) -> Located<String> {
        Located {
            value: name.to_string(),
            location: self.location(),
        }
    }

    fn set_default(&self, experiment: &mut RawExperiment, param: &str) -> Result<(), SpecError> {
        if !tasks::registry().iter().any(|k| k.param_names().contains(&param)) {
            return Err(self
                .error(format!("`{param}` is not a parameter of any task kind"))
                .note(format!("kinds: {}", tasks::kind_names().join(", "))));
        }
        replace_default(&mut experiment.defaults, self.default_entry(param));
        Ok(())
    }

    fn set_kind_default(&self, experiment: &mut RawExperiment, kind: &str, param: &str) -> Result<(), SpecError> {
        let Some(task_kind) = tasks::lookup(kind) else {
            return Err(self
                .error(format!("unknown task kind `{kind}`"))
                .note(format!("known kinds: {}", tasks::kind_names().join(", "))));
        };
        if !task_kind.param_names().contains(&param) {
            return Err(unknown_param(&self.location(), &self.dotted(), task_kind, param));
        }
        let entries = experiment.kind_defaults.entry(task_kind.kind()).or_default();
        replace_default(entries, self.default_entry(param));
        Ok(())
    }

    fn default_entry(&self, param: &str) -> Default {
        Default {
            key: self.located(param),
            value: self.value.clone(),
        }
    }

    fn declaration<'e>(
        &self,
        experiment: &'e mut RawExperiment,
        section: &str,
        name: &str,
    ) -> Result<&'e mut Declaration, SpecError> {
        let names: Vec<String> = experiment.declarations.iter().map(|d| d.name.value.clone()).collect();
        experiment
            .declarations
            .iter_mut()
            .find(|d| d.name.value == name)
            .ok_or_else(|| {
                self.error(format!(
                    "no {} `{name}` in the experiment",
                    &section[..section.len() - 1]
                ))
                .note(format!("declared: {}", names.join(", ")))
            })
    }

    fn set_param(&self, declaration: &mut Declaration, param: &str) -> Result<(), SpecError> {
        if matches!(param, "kind" | "inputs") {
            return Err(self.error(format!("`{param}` cannot be overridden; edit the file")));
        }
        if !declaration.kind.param_names().contains(&param) {
            return Err(unknown_param(&self.location(), &self.dotted(), declaration.kind, param));
        }
        declaration.sweep.retain(|(p, _)| p.value != param);
        declaration.params.retain(|(p, _)| p.value != param);
        declaration.params.push((self.located(param), self.value.clone()));
        Ok(())
    }

    fn sweep(&self, declaration: &mut Declaration, param: &str) -> Result<(), SpecError> {
        if !declaration.kind.param_names().contains(&param) {
            return Err(unknown_param(&self.location(), &self.dotted(), declaration.kind, param));
        }
        let values = match &self.value {
            toml::Value::String(rule) if rule == "halving" => SweepValues::Halving,
            toml::Value::Array(items) if !items.is_empty() => SweepValues::List(items.clone()),
            toml::Value::Array(_) => return Err(self.error("a sweep needs at least one value")),
            other => {
                return Err(self.error(format!(
                    "`{}` must be a list of values to sweep over (or \"halving\"), found {}",
                    self.dotted(),
                    other.type_str()
                )))
            }
        };
        declaration.params.retain(|(p, _)| p.value != param);
        match declaration.sweep.iter_mut().find(|(p, _)| p.value == param) {
            Some((_, existing)) => *existing = values,
            None => declaration.sweep.push((self.located(param), values)),
        }
        Ok(())
    }
}

/// Keeps the entry's place when it replaces one, so the order of defaults is the file's.
fn replace_default(entries: &mut Vec<Default>, entry: Default) {
    match entries.iter_mut().find(|e| e.key.value == entry.key.value) {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
}

/// A value given on the command line: TOML when it parses (`6`, `0.1`, `true`,
/// `["a", "b"]`, `[4, 8]`), a comma list of strings (`q_lin,v_lin`), else a string.
pub fn cli_value(text: &str) -> toml::Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_toml_then_as_lists_then_as_strings() {
        assert_eq!(cli_value("8"), toml::Value::Integer(8));
        assert_eq!(cli_value("0.5"), toml::Value::Float(0.5));
        assert_eq!(
            cli_value("[4,8]"),
            toml::Value::Array(vec![toml::Value::Integer(4), toml::Value::Integer(8)])
        );
        assert_eq!(
            cli_value("q_lin, v_lin"),
            toml::Value::Array(vec!["q_lin".into(), "v_lin".into()])
        );
        assert_eq!(cli_value("bf16"), toml::Value::String("bf16".into()));
    }

    #[test]
    fn an_override_without_equals_is_an_error_naming_it() {
        let error = Override::parse("tasks.lora.r").unwrap_err().to_string();
        assert!(error.starts_with("--set:1:1: expected KEY=VALUE"), "{error}");
        assert!(error.contains("tasks.lora.r"), "{error}");
    }

    #[test]
    fn the_key_span_is_the_last_segment() {
        let parsed = Override::parse("tasks.lora.r=8").unwrap();
        assert_eq!(&parsed.text[parsed.key_span.clone()], "r");
        assert_eq!(parsed.path, ["tasks", "lora", "r"]);
    }
}
