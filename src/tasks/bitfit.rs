//! `bitfit`: BitFit (Ben Zaken et al., 2022) — every bias and the classification head train,
//! nothing else (Trainer defaults, see `crate::train`). Output: `checkpoint/` (HF layout).

checkpoint_training_task!(BitFit, "bitfit", 1, crate::model::Method::BitFit, "BitFit");
