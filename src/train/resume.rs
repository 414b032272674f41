//! Resuming an interrupted training: the state [`super::train`] saves after every epoch
//! (into the store, `crate::store::resume`, under the task's cache key) and restores before
//! the first epoch it still has to run.
//!
//! A resumed run ends exactly where an uninterrupted one does (bit for bit on CPU) because
//! the state holds everything the rest of the run depends on:
//! - the trainable parameters (the frozen ones are the pretrained weights, reloaded
//!   identically by the task);
//! - AdamW's moments and step counts ([`super::adamw`]); the learning-rate schedule is a
//!   function of the global step, which is saved;
//! - the random state: the epoch order comes from a ChaCha generator whose position is
//!   saved, and dropout from libtorch's global generator, which `train` reseeds from that
//!   ChaCha stream at the start of every epoch (libtorch's generator state cannot be read
//!   out through tch);
//! - the history so far ([`super::Progress`]: per-epoch records, the loss log and its open
//!   window). Its times carry over too, though no rerun reproduces a time.
//!
//! A state that fails its manifest check or does not fit the model is reported and
//! ignored: the task trains from scratch.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::adamw::AdamW;
use super::Progress;
use crate::model::LoadedModel;
use crate::store::resume::ResumeLookup;
use crate::store::{Provenance, Store};

/// Test hook: abort the process (as `kill -9` would end it) right after the state of this
/// epoch is saved.
pub const ABORT_AFTER_EPOCH_ENV: &str = "ORCHESTRATE_TEST_ABORT_AFTER_EPOCH";

const STATE_FILE: &str = "state.json";
const TENSORS_FILE: &str = "state.safetensors";
/// Bump when the state's files change meaning: older states are then ignored.
const STATE_FORMAT: u32 = 1;
const PARAM: &str = "param/";

/// What a resuming task tells the scheduler.
#[derive(Debug, Clone)]
pub enum ResumeNotice {
    /// Training goes on after `epoch` of `epochs`.
    Resumed { epoch: usize, epochs: usize },
    /// A saved state could not be used; training starts from scratch.
    Ignored { reason: String },
}

/// Where a running task keeps its resume states, and whom it tells about resuming.
pub struct ResumeSlot<'a> {
    pub store: &'a Store,
    pub key: &'a str,
    /// The task's key parts, recorded in each state's manifest.
    pub parts: &'a serde_json::Value,
    pub task: &'a str,
    pub experiment: &'a str,
    pub notify: &'a (dyn Fn(ResumeNotice) + Sync),
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    progress: Progress,
    /// Updates per parameter, for AdamW's bias correction.
    optimizer_steps: BTreeMap<String, u64>,
}

impl ResumeSlot<'_> {
    /// Saves the state after `progress.epochs_done()` epochs.
    pub fn save(&self, model: &LoadedModel, optimizer: &AdamW, progress: &Progress) -> Result<()> {
        let staging = self.store.stage(self.key)?;
        let (moments, optimizer_steps) = optimizer.state();
        let tensors = model
            .trainable_parameters()
            .into_iter()
            .map(|(name, tensor)| (format!("{PARAM}{name}"), tensor))
            .chain(moments)
            .map(|(name, tensor)| Ok((name, tensor.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?)))
            .collect::<Result<Vec<_>>>()?;
        Tensor::write_safetensors(&tensors, staging.path().join(TENSORS_FILE))?;
        let state = StateFile {
            format: STATE_FORMAT,
            progress: progress.clone(),
            optimizer_steps,
        };
        std::fs::write(staging.path().join(STATE_FILE), serde_json::to_vec(&state)?)?;
        let provenance = Provenance {
            task: self.task,
            experiment: self.experiment,
            duration_s: progress.train_seconds,
        };
        self.store
            .save_resume_state(staging, self.key, progress.epochs_done(), self.parts, &provenance)
            .context("cannot save the resume state")?;
        let abort_after = std::env::var(ABORT_AFTER_EPOCH_ENV).ok();
        if abort_after.and_then(|e| e.parse().ok()) == Some(progress.epochs_done()) {
            std::process::abort();
        }
        Ok(())
    }

    /// Loads the newest saved state into `model` and `optimizer` and returns its progress;
    /// `None` when there is none or it cannot be used (then nothing was changed).
    pub fn restore(&self, model: &LoadedModel, optimizer: &mut AdamW, epochs: usize) -> Option<Progress> {
        let dir = match self.store.latest_resume_state(self.key) {
            ResumeLookup::None => return None,
            ResumeLookup::Found { dir, .. } => dir,
            ResumeLookup::Corrupt { epoch, problem } => {
                (self.notify)(ResumeNotice::Ignored {
                    reason: format!("the state after epoch {epoch} is corrupt: {problem}"),
                });
                return None;
            }
        };
        match load(&dir, model, optimizer, epochs) {
            Ok(progress) => {
                (self.notify)(ResumeNotice::Resumed {
                    epoch: progress.epochs_done(),
                    epochs,
                });
                Some(progress)
            }
            Err(problem) => {
                (self.notify)(ResumeNotice::Ignored {
                    reason: format!("{} cannot be loaded: {problem:#}", dir.display()),
                });
                None
            }
        }
    }
}

/// Reads a state and, once all of it has checked out, copies it into the model and the
/// optimizer.
fn load(dir: &std::path::Path, model: &LoadedModel, optimizer: &mut AdamW, epochs: usize) -> Result<Progress> {
    let state: StateFile = serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE))?)?;
    if state.format != STATE_FORMAT {
        bail!("state format {}, this orchestrate writes {STATE_FORMAT}", state.format);
    }
    if state.progress.epochs_done() > epochs {
        bail!("saved after epoch {} of {epochs}", state.progress.epochs_done());
    }
    let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(dir.join(TENSORS_FILE))?.into_iter().collect();
    let mut copies = Vec::new();
    for (name, param) in model.trainable_parameters() {
        let saved = tensors
            .get(&format!("{PARAM}{name}"))
            .with_context(|| format!("no saved value for {name}"))?;
        if saved.size() != param.size() || saved.kind() != param.kind() {
            bail!(
                "{name} was saved as {:?} {:?}, the model has {:?} {:?}",
                saved.kind(),
                saved.size(),
                param.kind(),
                param.size()
            );
        }
        copies.push((param, saved));
    }
    optimizer.restore(&tensors, &state.optimizer_steps)?;
    tch::no_grad(|| -> Result<()> {
        for (mut param, saved) in copies {
            param.f_copy_(saved)?;
        }
        Ok(())
    })?;
    Ok(state.progress)
}
