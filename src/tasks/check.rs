//! Checks for [`super::Task::validate`]: each names the parameter it is about, so the spec
//! points at the key in the experiment file.

use super::ParamError;

/// A finite number above zero.
pub fn positive(key: &str, value: f64) -> Result<(), ParamError> {
    if value.is_finite() && value > 0.0 {
        return Ok(());
    }
    Err(ParamError::at(
        key,
        format!("{key} must be a positive number, got {value}"),
    ))
}

/// A finite number, zero or more.
pub fn non_negative(key: &str, value: f64) -> Result<(), ParamError> {
    if value.is_finite() && value >= 0.0 {
        return Ok(());
    }
    Err(ParamError::at(key, format!("{key} must be zero or more, got {value}")))
}

/// A probability-like value in [0, 1): dropout rates, warmup ratios, Adam's betas.
pub fn fraction(key: &str, value: f64) -> Result<(), ParamError> {
    if (0.0..1.0).contains(&value) {
        return Ok(());
    }
    Err(ParamError::at(key, format!("{key} must be in [0, 1), got {value}")))
}

/// Torch threads: at least one when set.
pub fn threads(threads: Option<usize>) -> Result<(), ParamError> {
    match threads {
        Some(0) => Err(ParamError::at(
            "threads",
            "threads must be at least 1 (or left out for all cores)",
        )),
        _ => Ok(()),
    }
}

/// `max_len` within the model's position embeddings, with room for `[CLS]` and `[SEP]`.
pub fn max_len(key: &str, max_len: usize, model: Option<&crate::model::ModelConfig>) -> Result<(), ParamError> {
    if max_len < 2 {
        return Err(ParamError::at(
            key,
            format!("{key} must leave room for [CLS] and [SEP], got {max_len}"),
        ));
    }
    if let Some(config) = model {
        let positions = config.max_position_embeddings() as usize;
        if max_len > positions {
            return Err(ParamError::at(
                key,
                format!(
                    "{key} = {max_len} is beyond the model's {positions} positions (max_position_embeddings in {})",
                    config.path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// A rank for the layers `targets` selects in the model: at least 1, at most the smaller side
/// of every targeted weight; and every target matches a layer.
pub fn rank_and_targets(
    rank_key: &str,
    rank: usize,
    targets_key: &str,
    targets: &[String],
    model: Option<&crate::model::ModelConfig>,
) -> Result<(), ParamError> {
    if rank == 0 {
        return Err(ParamError::at(rank_key, format!("{rank_key} must be at least 1")));
    }
    let Some(config) = model else { return Ok(()) };
    let layers = crate::model::linear_layers(config);
    for target in targets {
        let patterns = std::slice::from_ref(target);
        if !layers
            .iter()
            .any(|layer| crate::model::targets::matches_any(patterns, &layer.name))
        {
            let mut short: Vec<&str> = layers.iter().filter_map(|l| l.name.rsplit('.').next()).collect();
            short.sort_unstable();
            short.dedup();
            return Err(ParamError::at(
                targets_key,
                format!(
                    "{targets_key}: `{target}` matches no linear layer of this {} model (its layers: {})",
                    config.model_type(),
                    short.join(", ")
                ),
            ));
        }
    }
    let narrowest = layers
        .iter()
        .filter(|layer| crate::model::targets::matches_any(targets, &layer.name))
        .min_by_key(|layer| layer.inputs.min(layer.outputs));
    if let Some(layer) = narrowest {
        let limit = layer.inputs.min(layer.outputs) as usize;
        if rank > limit {
            return Err(ParamError::at(
                rank_key,
                format!(
                    "{rank_key} = {rank} is beyond the rank of {} ({} x {}): at most {limit}",
                    layer.name, layer.outputs, layer.inputs
                ),
            ));
        }
    }
    Ok(())
}
