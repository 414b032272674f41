//! Cache keys and "why does this task run".
//!
//! As in cargo's fingerprints, a task's key is built from explicit parts ([`KeyParts`]):
//! the key schema version, the task kind and its format version, the resolved parameters
//! (every default filled in, seed included), the keys of its inputs (so a change upstream
//! propagates down the DAG) and the blake3 of every external file it reads. Deliberately
//! left out: task and experiment names (two experiments with the same configuration share
//! an artifact), paths of input files (their content counts, not where they are), mtimes.
//! A file from a Hugging Face Hub snapshot also records the commit it came from under
//! `revisions` (absent when there is none, so keys of local files are unchanged): a moved
//! `main` re-keys even where the files did not change, and `why` names the two commits.
//! The parts are serialized canonically (sorted keys, no whitespace) and hashed with blake3.
//!
//! Staleness is data: [`compare`] turns old and new parts into [`Reason`]s, rendered
//! separately by `Display`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::Experiment;
use crate::store::{Lookup, Manifest, Store};

/// Bump when the meaning of [`KeyParts`] changes: every key changes with it.
pub const KEY_SCHEMA: u32 = 1;

/// Everything a task's key is made of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyParts {
    pub schema: u32,
    pub kind: String,
    pub kind_version: u32,
    /// Resolved parameters, without the ones that name files (see `files`).
    pub params: Value,
    /// Input slot → key of the upstream artifact.
    pub inputs: BTreeMap<String, String>,
    /// File parameter → blake3 of the file's content.
    pub files: BTreeMap<String, String>,
    /// File parameter (before any `#`) → the hub commit its files came from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub revisions: BTreeMap<String, String>,
}

impl KeyParts {
    pub fn key(&self) -> String {
        let value = serde_json::to_value(self).expect("key parts serialize");
        blake3::hash(canonical_json(&value).as_bytes()).to_hex().to_string()
    }
}

/// JSON with object keys sorted at every level and no whitespace, whatever map type
/// serde_json was built with.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical_json(v)))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// Why a task has to run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// No run of this task is recorded in the cache.
    NeverBuilt,
    /// The artifact for the current key failed verification.
    Corrupt {
        detail: String,
    },
    /// The key is unchanged but its artifact is gone (removed by `gc` or by hand).
    ArtifactMissing,
    SchemaChanged {
        old: u32,
        new: u32,
    },
    KindChanged {
        old: String,
        new: String,
    },
    KindVersionChanged {
        old: u32,
        new: u32,
    },
    ParamChanged {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    InputChanged {
        slot: String,
        task: String,
        old: Option<String>,
        new: String,
    },
    FileChanged {
        name: String,
        path: PathBuf,
        old: Option<String>,
        new: String,
    },
    /// A hub repository's revision resolved to another commit (`main` moved).
    RevisionChanged {
        name: String,
        old: Option<String>,
        new: String,
    },
    /// The parts are equal but the key is not: the canonical form itself changed.
    Unknown,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or_else(|| "(unset)".to_string(), canonical_json);
        match self {
            Reason::NeverBuilt => write!(f, "never built"),
            Reason::Corrupt { detail } => {
                write!(f, "cached artifact is corrupt ({detail}); rebuilding")
            }
            Reason::ArtifactMissing => write!(f, "artifact was removed from the cache"),
            Reason::SchemaChanged { old, new } => {
                write!(f, "cache key schema changed ({old} → {new})")
            }
            Reason::KindChanged { old, new } => write!(f, "kind changed ({old} → {new})"),
            Reason::KindVersionChanged { old, new } => {
                write!(f, "format version of the kind changed ({old} → {new})")
            }
            Reason::ParamChanged { name, old, new } => {
                write!(f, "parameter `{name}` changed ({} → {})", show(old), show(new))
            }
            Reason::InputChanged { slot, task, old, new } => match old {
                Some(old) => write!(f, "input `{slot}` ({task}) changed ({} → {})", short(old), short(new)),
                None => write!(f, "input `{slot}` ({task}) is new"),
            },
            Reason::FileChanged { name, path, old, new } => match old {
                Some(old) => write!(
                    f,
                    "file `{name}` ({}) changed (blake3 {} → {})",
                    path.display(),
                    short(old),
                    short(new)
                ),
                None => write!(f, "file `{name}` ({}) is new", path.display()),
            },
            Reason::RevisionChanged { name, old, new } => match old {
                Some(old) => write!(
                    f,
                    "{name} revision changed ({} → {})",
                    crate::hub::short(old),
                    crate::hub::short(new)
                ),
                None => write!(f, "{name} now comes from the hub (revision {})", crate::hub::short(new)),
            },
            Reason::Unknown => write!(f, "key changed for an unlisted reason"),
        }
    }
}

pub fn short(key: &str) -> &str {
    &key[..12.min(key.len())]
}

/// Compares the parts a task was last built from with its current parts.
pub fn compare(
    old: &KeyParts,
    new: &KeyParts,
    input_tasks: &BTreeMap<String, String>,
    file_paths: &BTreeMap<String, PathBuf>,
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if old.schema != new.schema {
        reasons.push(Reason::SchemaChanged {
            old: old.schema,
            new: new.schema,
        });
    }
    if old.kind != new.kind {
        reasons.push(Reason::KindChanged {
            old: old.kind.clone(),
            new: new.kind.clone(),
        });
    }
    if old.kind_version != new.kind_version {
        reasons.push(Reason::KindVersionChanged {
            old: old.kind_version,
            new: new.kind_version,
        });
    }
    let empty = serde_json::Map::new();
    let old_params = old.params.as_object().unwrap_or(&empty);
    let new_params = new.params.as_object().unwrap_or(&empty);
    let mut names: Vec<&String> = old_params.keys().chain(new_params.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (before, after) = (old_params.get(name), new_params.get(name));
        if before != after {
            reasons.push(Reason::ParamChanged {
                name: name.clone(),
                old: before.cloned(),
                new: after.cloned(),
            });
        }
    }
    for (slot, key) in &new.inputs {
        if old.inputs.get(slot) != Some(key) {
            let task = input_tasks.get(slot).cloned().unwrap_or_default();
            reasons.push(Reason::InputChanged {
                slot: slot.clone(),
                task,
                old: old.inputs.get(slot).cloned(),
                new: key.clone(),
            });
        }
    }
    for (name, digest) in &new.files {
        if old.files.get(name) != Some(digest) {
            let path = file_paths.get(name).cloned().unwrap_or_default();
            reasons.push(Reason::FileChanged {
                name: name.clone(),
                path,
                old: old.files.get(name).cloned(),
                new: digest.clone(),
            });
        }
    }
    for (name, commit) in &new.revisions {
        if old.revisions.get(name) != Some(commit) {
            reasons.push(Reason::RevisionChanged {
                name: name.clone(),
                old: old.revisions.get(name).cloned(),
                new: commit.clone(),
            });
        }
    }
    if reasons.is_empty() {
        reasons.push(Reason::Unknown);
    }
    reasons
}

/// Cached, or to run and why.
#[derive(Debug, Clone)]
pub enum Status {
    Cached(Box<Manifest>),
    Run(Vec<Reason>),
}

impl Status {
    pub fn is_cached(&self) -> bool {
        matches!(self, Status::Cached(_))
    }
}

/// One task of a plan.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub parts: KeyParts,
    pub status: Status,
    /// File parameter → the path it resolves to (for messages).
    pub files: BTreeMap<String, PathBuf>,
}

/// Keys and statuses for every task of an experiment, parallel to `experiment.tasks`.
pub struct Plan<'e> {
    pub experiment: &'e Experiment,
    pub entries: Vec<Entry>,
}

/// Computes every key and looks each up (verifying hashes). Reads only.
pub fn plan<'e>(experiment: &'e Experiment, store: &Store) -> Result<Plan<'e>> {
    let mut digests: HashMap<PathBuf, String> = HashMap::new();
    let mut entries: Vec<Entry> = Vec::with_capacity(experiment.tasks.len());
    for task in &experiment.tasks {
        let kind = task.kind;
        let mut params = task.params.clone();
        let mut files = BTreeMap::new();
        let mut file_digests = BTreeMap::new();
        let mut revisions = BTreeMap::new();
        let external = kind
            .files(&task.params, &task.base_dir)
            .with_context(|| format!("task `{}` ({})", task.name, experiment.path.display()))?;
        for (name, path) in external {
            let digest = match digests.get(&path) {
                Some(digest) => digest.clone(),
                None => {
                    let digest = crate::model::hub::digest(&path).with_context(|| {
                        format!("task `{}`: cannot read its `{name}` file {}", task.name, path.display())
                    })?;
                    digests.insert(path.clone(), digest.clone());
                    digest
                }
            };
            if let Some(map) = params.as_object_mut() {
                // `train#pos`: one of the files the `train` parameter names.
                map.remove(name.split('#').next().unwrap_or(name));
            }
            if let Some(pin) = crate::hub::Pin::of(&path) {
                let part = name.split('#').next().unwrap_or(name);
                revisions.insert(part.to_string(), pin.commit);
            }
            file_digests.insert(name.to_string(), digest);
            files.insert(name.to_string(), path);
        }
        let parts = KeyParts {
            schema: KEY_SCHEMA,
            kind: kind.kind().to_string(),
            kind_version: kind.version(),
            params,
            inputs: task
                .inputs
                .iter()
                .map(|(slot, &upstream)| (slot.clone(), entries[upstream].key.clone()))
                .collect(),
            files: file_digests,
            revisions,
        };
        let key = parts.key();
        let status = match store.lookup(&key) {
            Lookup::Hit(manifest) => Status::Cached(manifest),
            Lookup::Corrupt(detail) => Status::Run(vec![Reason::Corrupt { detail }]),
            Lookup::Miss => {
                let input_tasks = task
                    .inputs
                    .iter()
                    .map(|(slot, &i)| (slot.clone(), experiment.tasks[i].name.clone()))
                    .collect();
                Status::Run(match store.read_ref(&experiment.name, &task.name) {
                    None => vec![Reason::NeverBuilt],
                    Some(previous) if previous.key == key => vec![Reason::ArtifactMissing],
                    Some(previous) => match serde_json::from_value::<KeyParts>(previous.parts) {
                        Ok(old) => compare(&old, &parts, &input_tasks, &files),
                        Err(_) => vec![Reason::Unknown],
                    },
                })
            }
        };
        entries.push(Entry {
            key,
            parts,
            status,
            files,
        });
    }
    Ok(Plan { experiment, entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts() -> KeyParts {
        KeyParts {
            schema: KEY_SCHEMA,
            kind: "logreg".into(),
            kind_version: 1,
            params: json!({"max_iter": 1000, "c": 1.0}),
            inputs: BTreeMap::from([("features".to_string(), "ab".repeat(32))]),
            files: BTreeMap::new(),
            revisions: BTreeMap::new(),
        }
    }

    /// Pins the key format: if this fails, every user's cache is invalidated, so bump
    /// KEY_SCHEMA deliberately and update the value. (Cross-checked: Python's `blake3`
    /// package gives the same digest for the canonical string.)
    #[test]
    fn golden_key() {
        assert_eq!(
            canonical_json(&serde_json::to_value(parts()).unwrap()),
            format!(
                r#"{{"files":{{}},"inputs":{{"features":"{}"}},"kind":"logreg","kind_version":1,"params":{{"c":1.0,"max_iter":1000}},"schema":1}}"#,
                "ab".repeat(32)
            )
        );
        assert_eq!(
            parts().key(),
            "4b2b01dfc7de7b88044342da0f1471c78e7ce1dad80973d02dc044d8f7e9d952"
        );
    }

    #[test]
    fn every_part_changes_the_key() {
        let base = parts().key();
        let mut changed = parts();
        changed.kind_version = 2;
        assert_ne!(changed.key(), base);
        let mut changed = parts();
        changed.params = json!({"max_iter": 1000, "c": 0.5});
        assert_ne!(changed.key(), base);
        let mut changed = parts();
        changed.inputs.insert("features".into(), "cd".repeat(32));
        assert_ne!(changed.key(), base);
        let mut changed = parts();
        changed.files.insert("train".into(), "00".repeat(32));
        assert_ne!(changed.key(), base);
    }

    #[test]
    fn compare_names_the_changed_parameter() {
        let mut new = parts();
        new.params = json!({"max_iter": 1000, "c": 0.5});
        let reasons = compare(&parts(), &new, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(
            reasons,
            vec![Reason::ParamChanged {
                name: "c".into(),
                old: Some(json!(1.0)),
                new: Some(json!(0.5))
            }]
        );
        assert_eq!(reasons[0].to_string(), "parameter `c` changed (1.0 → 0.5)");
    }

    #[test]
    fn a_moved_revision_rekeys_and_is_named() {
        let mut old = parts();
        old.revisions
            .insert("model".into(), "1c4513b2eedbda136f57676a34eea67aba266e5c".into());
        let mut new = parts();
        new.revisions
            .insert("model".into(), "043235d6088ecd3dd5fb5ca3592b6913fd516027".into());
        assert_ne!(old.key(), new.key());
        assert_ne!(old.key(), parts().key(), "a revision changes the key");
        let reasons = compare(&old, &new, &BTreeMap::new(), &BTreeMap::new());
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].to_string(), "model revision changed (1c4513b → 043235d)");
    }
}
