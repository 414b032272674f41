//! The `[executor]` table: where tasks run and, on a cluster, with which resources.
//! Nothing here enters a cache key: the same task gives the same artifact wherever it runs.
//!
//! ```toml
//! [executor]
//! kind = "slurm"            # or "local" (the default); `--executor` overrides it
//! partition = "gpu"
//! cpus = 4
//! mem = "16G"
//! time = "02:00:00"
//! sbatch_args = ["--qos=normal"]
//!
//! [executor.kinds.finetune] # per task kind, field by field over the defaults above
//! gpus = 1
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    #[default]
    Local,
    Slurm,
}

/// Slurm resources of a job; every field optional so per-kind tables can override some.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub partition: Option<String>,
    pub cpus: Option<u32>,
    /// As sbatch's `--mem`, e.g. `"16G"`.
    pub mem: Option<String>,
    pub gpus: Option<u32>,
    /// As sbatch's `--time`, e.g. `"02:00:00"`.
    pub time: Option<String>,
    /// Extra sbatch arguments, appended as given.
    pub sbatch_args: Option<Vec<String>>,
}

impl Resources {
    /// `self` with the fields `other` sets replaced.
    pub fn overridden_by(&self, other: &Resources) -> Resources {
        Resources {
            partition: other.partition.clone().or_else(|| self.partition.clone()),
            cpus: other.cpus.or(self.cpus),
            mem: other.mem.clone().or_else(|| self.mem.clone()),
            gpus: other.gpus.or(self.gpus),
            time: other.time.clone().or_else(|| self.time.clone()),
            sbatch_args: other.sbatch_args.clone().or_else(|| self.sbatch_args.clone()),
        }
    }

    /// The sbatch options these resources stand for.
    pub fn sbatch_options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if let Some(partition) = &self.partition {
            options.push(format!("--partition={partition}"));
        }
        if let Some(cpus) = self.cpus {
            options.push(format!("--cpus-per-task={cpus}"));
        }
        if let Some(mem) = &self.mem {
            options.push(format!("--mem={mem}"));
        }
        if let Some(gpus) = self.gpus.filter(|g| *g > 0) {
            options.push(format!("--gpus={gpus}"));
        }
        if let Some(time) = &self.time {
            options.push(format!("--time={time}"));
        }
        options.extend(self.sbatch_args.iter().flatten().cloned());
        options
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSpec {
    #[serde(default)]
    pub kind: ExecutorKind,
    pub partition: Option<String>,
    pub cpus: Option<u32>,
    pub mem: Option<String>,
    pub gpus: Option<u32>,
    pub time: Option<String>,
    pub sbatch_args: Option<Vec<String>>,
    /// Seconds between two polls of Slurm (default 1).
    pub poll_interval: Option<f64>,
    /// Resources per task kind.
    #[serde(default)]
    pub kinds: BTreeMap<String, Resources>,
}

impl ExecutorSpec {
    /// The resources of a task of `kind`.
    pub fn resources(&self, kind: &str) -> Resources {
        let defaults = Resources {
            partition: self.partition.clone(),
            cpus: self.cpus,
            mem: self.mem.clone(),
            gpus: self.gpus,
            time: self.time.clone(),
            sbatch_args: self.sbatch_args.clone(),
        };
        match self.kinds.get(kind) {
            Some(specific) => defaults.overridden_by(specific),
            None => defaults,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_kind_resources_override_field_by_field() {
        let spec: ExecutorSpec = toml::from_str(
            "kind = \"slurm\"\npartition = \"cpu\"\ncpus = 2\n[kinds.finetune]\npartition = \"gpu\"\ngpus = 1\n",
        )
        .unwrap();
        assert_eq!(
            spec.resources("tfidf").sbatch_options(),
            ["--partition=cpu", "--cpus-per-task=2"]
        );
        assert_eq!(
            spec.resources("finetune").sbatch_options(),
            ["--partition=gpu", "--cpus-per-task=2", "--gpus=1"]
        );
    }
}
