//! A Slurm job as the driver sees it: the state Slurm reports and the driver's own verdict.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A job state as `squeue -o %T` and `scontrol show job` print it. Serialized as Slurm's
/// own spelling, so run records stay readable by hand and by older versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum JobState {
    Pending,
    Running,
    /// Its processes are ending; the job is not over yet.
    Completing,
    Completed,
    Failed,
    Cancelled,
    Timeout,
    OutOfMemory,
    NodeFail,
    BootFail,
    Deadline,
    Preempted,
    /// Any state the driver has no rule for (`SUSPENDED`, `REQUEUED`, …): it keeps waiting.
    Other(String),
}

impl JobState {
    const NAMED: [(JobState, &'static str); 12] = [
        (JobState::Pending, "PENDING"),
        (JobState::Running, "RUNNING"),
        (JobState::Completing, "COMPLETING"),
        (JobState::Completed, "COMPLETED"),
        (JobState::Failed, "FAILED"),
        (JobState::Cancelled, "CANCELLED"),
        (JobState::Timeout, "TIMEOUT"),
        (JobState::OutOfMemory, "OUT_OF_MEMORY"),
        (JobState::NodeFail, "NODE_FAIL"),
        (JobState::BootFail, "BOOT_FAIL"),
        (JobState::Deadline, "DEADLINE"),
        (JobState::Preempted, "PREEMPTED"),
    ];

    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        Self::NAMED
            .iter()
            .find(|(_, name)| *name == text)
            .map_or_else(|| JobState::Other(text.to_string()), |(state, _)| state.clone())
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobState::Other(text) => text,
            named => Self::NAMED
                .iter()
                .find(|(state, _)| state == named)
                .map(|(_, name)| *name)
                .unwrap_or_default(),
        }
    }

    /// The job's processes run (or are ending).
    pub fn is_running(&self) -> bool {
        matches!(self, JobState::Running | JobState::Completing)
    }

    /// Slurm ended the job without success.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            JobState::Failed
                | JobState::Cancelled
                | JobState::Timeout
                | JobState::OutOfMemory
                | JobState::NodeFail
                | JobState::BootFail
                | JobState::Deadline
                | JobState::Preempted
        )
    }
}

impl From<String> for JobState {
    fn from(text: String) -> Self {
        JobState::parse(&text)
    }
}

impl From<JobState> for String {
    fn from(state: JobState) -> Self {
        state.as_str().to_string()
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The driver's verdict once a job is over (Slurm's state alone is not trusted for success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Its artifact is in the store and verified.
    Finished,
    Failed,
    /// Not run: an input failed, or the run was interrupted.
    Skipped,
}

impl fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JobOutcome::Finished => "finished",
            JobOutcome::Failed => "failed",
            JobOutcome::Skipped => "skipped",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_slurms_spelling() {
        for (state, name) in JobState::NAMED {
            assert_eq!(JobState::parse(name), state);
            assert_eq!(state.as_str(), name);
            assert_eq!(serde_json::to_value(&state).unwrap(), name);
        }
        let other = JobState::parse(" SUSPENDED\n");
        assert_eq!(other, JobState::Other("SUSPENDED".into()));
        assert_eq!(other.to_string(), "SUSPENDED");
        assert!(!other.is_running() && !other.is_failure());
    }

    #[test]
    fn outcomes_read_the_records_written_before_they_were_enums() {
        let outcomes: Vec<Option<JobOutcome>> =
            serde_json::from_str(r#"["finished", "failed", "skipped", null]"#).unwrap();
        assert_eq!(
            outcomes,
            [
                Some(JobOutcome::Finished),
                Some(JobOutcome::Failed),
                Some(JobOutcome::Skipped),
                None
            ]
        );
        assert_eq!(JobOutcome::Skipped.to_string(), "skipped");
        assert!(serde_json::from_str::<JobOutcome>(r#""done""#).is_err());
    }
}
