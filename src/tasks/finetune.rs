//! `finetune`: full fine-tuning, every parameter trained (Trainer defaults, see
//! `crate::train`). Output: `checkpoint/` in the Hugging Face layout.

checkpoint_training_task!(Finetune, "finetune", 1, crate::model::Method::Full, "full fine-tuning");
