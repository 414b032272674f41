//! What the loops train and evaluate on: labelled sets that cut themselves into batches.
//! Batches are padded to their own longest example (dynamic padding).

use anyhow::Result;
use tch::{Device, Tensor};

/// One tokenized, labelled example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub ids: Vec<i64>,
    pub label: i64,
}

/// What a batch feeds the network: token ids, or precomputed head inputs.
pub enum Inputs {
    Tokens { ids: Tensor, mask: Tensor },
    Features(Tensor),
}

/// A labelled set the loops can batch.
pub trait Examples {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Sequence length of example `i` (for length-sorted evaluation batches).
    fn length(&self, i: usize) -> usize;
    fn batch(&self, indices: &[usize], device: Device) -> Result<(Inputs, Tensor)>;
}

/// Token examples, padded per batch.
pub struct TokenExamples<'a> {
    pub examples: &'a [Example],
    pub pad_id: i64,
}

impl Examples for TokenExamples<'_> {
    fn len(&self) -> usize {
        self.examples.len()
    }
    fn length(&self, i: usize) -> usize {
        self.examples[i].ids.len()
    }
    fn batch(&self, indices: &[usize], device: Device) -> Result<(Inputs, Tensor)> {
        let longest = indices.iter().map(|&i| self.examples[i].ids.len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(indices.len() * longest);
        let mut mask = Vec::with_capacity(indices.len() * longest);
        for &i in indices {
            let example = &self.examples[i].ids;
            ids.extend_from_slice(example);
            ids.extend(std::iter::repeat_n(self.pad_id, longest - example.len()));
            mask.extend(std::iter::repeat_n(1i64, example.len()));
            mask.extend(std::iter::repeat_n(0i64, longest - example.len()));
        }
        let shape = [indices.len() as i64, longest as i64];
        let labels: Vec<i64> = indices.iter().map(|&i| self.examples[i].label).collect();
        Ok((
            Inputs::Tokens {
                ids: Tensor::from_slice(&ids).view(shape).to_device(device),
                mask: Tensor::from_slice(&mask).view(shape).to_device(device),
            },
            Tensor::from_slice(&labels).to_device(device),
        ))
    }
}

/// Precomputed head inputs `[n, hidden]` with their labels.
pub struct FeatureExamples {
    pub features: Tensor,
    pub labels: Tensor,
}

impl Examples for FeatureExamples {
    fn len(&self) -> usize {
        self.labels.size()[0] as usize
    }
    fn length(&self, _i: usize) -> usize {
        1
    }
    fn batch(&self, indices: &[usize], device: Device) -> Result<(Inputs, Tensor)> {
        let index = Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>());
        Ok((
            Inputs::Features(self.features.f_index_select(0, &index)?.to_device(device)),
            self.labels.f_index_select(0, &index)?.to_device(device),
        ))
    }
}
