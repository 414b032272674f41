//! A training's state after an epoch, written to and read from a directory: what
//! [`super::train`] saves through its [`super::Checkpoints`] after every epoch and restores
//! before the first epoch it still has to run.
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
//! [`read`] checks the whole state before it changes the model, so a state that does not
//! fit leaves the model as it was.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::adamw::AdamW;
use super::{Progress, Snapshot};
use crate::model::LoadedModel;

const STATE_FILE: &str = "state.json";
const TENSORS_FILE: &str = "state.safetensors";
/// Bump when the state's files change meaning: older states are then ignored.
const STATE_FORMAT: u32 = 1;
const PARAM: &str = "param/";
/// The best epoch's trainable parameters, when the best model is tracked.
const BEST: &str = "best/";

#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    progress: Progress,
    /// Updates per parameter, for AdamW's bias correction.
    optimizer_steps: BTreeMap<String, u64>,
}

/// Writes the state after `progress.epochs_done()` epochs into `dir`: the trainable
/// parameters (the frozen ones are reloaded identically by the task), AdamW's moments and
/// step counts, and the progress.
pub fn write(
    dir: &Path,
    model: &LoadedModel,
    optimizer: &AdamW,
    progress: &Progress,
    best_weights: Option<&Snapshot>,
) -> Result<()> {
    let (moments, optimizer_steps) = optimizer.state();
    let best = best_weights
        .into_iter()
        .flatten()
        .map(|(name, tensor)| (format!("{BEST}{name}"), tensor.shallow_clone()));
    let tensors = model
        .trainable_parameters()
        .into_iter()
        .map(|(name, tensor)| (format!("{PARAM}{name}"), tensor))
        .chain(moments)
        .chain(best)
        .map(|(name, tensor)| Ok((name, tensor.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?)))
        .collect::<Result<Vec<_>>>()?;
    Tensor::write_safetensors(&tensors, dir.join(TENSORS_FILE))?;
    let state = StateFile {
        format: STATE_FORMAT,
        progress: progress.clone(),
        optimizer_steps,
    };
    std::fs::write(dir.join(STATE_FILE), serde_json::to_vec(&state)?)
        .with_context(|| format!("cannot write {}", dir.join(STATE_FILE).display()))
}

/// Reads a state and, once all of it has checked out, copies it into the model and the
/// optimizer.
pub fn read(
    dir: &Path,
    model: &LoadedModel,
    optimizer: &mut AdamW,
    epochs: usize,
) -> Result<(Progress, Option<Snapshot>)> {
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
    let best_weights = match state.progress.best {
        None => None,
        Some(_) => Some(
            model
                .trainable_parameters()
                .into_iter()
                .map(|(name, _)| {
                    let saved = tensors
                        .get(&format!("{BEST}{name}"))
                        .with_context(|| format!("no saved best-epoch value for {name}"))?;
                    Ok((name, saved.shallow_clone()))
                })
                .collect::<Result<Snapshot>>()?,
        ),
    };
    optimizer.restore(&tensors, &state.optimizer_steps)?;
    tch::no_grad(|| -> Result<()> {
        for (mut param, saved) in copies {
            param.f_copy_(saved)?;
        }
        Ok(())
    })?;
    Ok((state.progress, best_weights))
}
