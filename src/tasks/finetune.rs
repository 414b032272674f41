//! `finetune`: full fine-tuning, every parameter trained (Trainer defaults, see
//! `crate::train`). Output: `checkpoint/` in the Hugging Face layout.

// Version 2: own AdamW and per-epoch dropout seeds, so that training can resume.
// Version 3: dropout masks from 16-bit lanes by default (`dropout_masks`).
checkpoint_training_task!(
    Finetune,
    "finetune",
    3,
    crate::model::Method::Full,
    "full fine-tuning",
    crate::tasks::ReportRole::Reference {
        label: "full fine-tuning",
        bar: false
    }
);
