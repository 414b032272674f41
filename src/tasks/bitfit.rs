//! `bitfit`: BitFit (Ben Zaken et al., 2022) — every bias and the classification head train,
//! nothing else (Trainer defaults, see `crate::train`). Output: `checkpoint/` (HF layout).

// Version 2: own AdamW and per-epoch dropout seeds, so that training can resume.
// Version 3: dropout masks from 16-bit lanes by default (`dropout_masks`).
checkpoint_training_task!(BitFit, "bitfit", 3, crate::model::Method::BitFit, "BitFit");
