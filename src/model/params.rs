//! Parameter counting and which parameters a tuning method trains.
//!
//! Counts are over the model's parameters by HF name; "trainable" means
//! `requires_grad`. The printed line is PEFT's `print_trainable_parameters()`:
//! `trainable params: 592,130 || all params: 66,955,010 || trainable%: 0.8844`.

use std::fmt;
use std::str::FromStr;

use super::adapters::{Ia3Spec, LoraSpec, QloraSpec};
use super::bottleneck::BottleneckSpec;
use super::error::ModelError;
use super::prefix::PrefixTuningSpec;
use super::prompt::PromptTuningSpec;

/// Trainable and total parameter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    pub trainable: i64,
    pub all: i64,
}

impl ParamCounts {
    /// Percentage of parameters that are trainable.
    pub fn trainable_percent(&self) -> f64 {
        if self.all == 0 {
            0.0
        } else {
            100.0 * self.trainable as f64 / self.all as f64
        }
    }
}

impl fmt::Display for ParamCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trainable params: {} || all params: {} || trainable%: {:.4}",
            thousands(self.trainable),
            thousands(self.all),
            self.trainable_percent()
        )
    }
}

/// `1234567` → `"1,234,567"` (Python's `{:,d}`).
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A tuning method: which parameters train, and which adapters are injected.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Every parameter is trained.
    Full,
    /// Only the classification head (see `heads`) is trained.
    Head,
    /// Every bias plus the classification head (Ben Zaken et al., 2022).
    BitFit,
    /// LoRA adapters on the target layers plus `modules_to_save`.
    Lora(LoraSpec),
    /// IA3 scaling vectors plus `modules_to_save`.
    Ia3(Ia3Spec),
    /// LoRA on a base whose encoder linear layers are stored in 4-bit NormalFloat.
    Qlora(QloraSpec),
    /// Virtual tokens' embeddings in front of the input plus `modules_to_save`.
    PromptTuning(PromptTuningSpec),
    /// Key/value prefixes in every layer's attention plus `modules_to_save`.
    PrefixTuning(PrefixTuningSpec),
    /// Bottleneck adapters after the attention and/or feed-forward sublayers plus
    /// `modules_to_save` (AdapterHub's `BnConfig`).
    Adapter(BottleneckSpec),
}

impl Method {
    /// Every method's name; `lora`, `ia3`, `qlora`, `prompt_tuning`, `prefix_tuning` and
    /// `adapter` take parameters.
    pub const NAMES: &'static [&'static str] = &[
        "full",
        "head",
        "bitfit",
        "lora",
        "ia3",
        "qlora",
        "prompt_tuning",
        "prefix_tuning",
        "adapter",
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Method::Full => "full",
            Method::Head => "head",
            Method::BitFit => "bitfit",
            Method::Lora(_) => "lora",
            Method::Ia3(_) => "ia3",
            Method::Qlora(_) => "qlora",
            Method::PromptTuning(_) => "prompt_tuning",
            Method::PrefixTuning(_) => "prefix_tuning",
            Method::Adapter(_) => "adapter",
        }
    }
}

/// The methods without parameters, by name (the others are built from their task's
/// parameters, see `tasks::methods`).
impl FromStr for Method {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Method::Full),
            "head" => Ok(Method::Head),
            "bitfit" => Ok(Method::BitFit),
            _ => Err(ModelError::UnknownMethod {
                method: s.to_string(),
                expected: Method::NAMES.join(", "),
            }),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_line_and_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(66_955_010), "66,955,010");
        let c = ParamCounts {
            trainable: 7_087_104,
            all: 66_955_010,
        };
        assert_eq!(
            c.to_string(),
            "trainable params: 7,087,104 || all params: 66,955,010 || trainable%: 10.5849"
        );
        assert_eq!("head".parse::<Method>().unwrap(), Method::Head);
        assert!("lora".parse::<Method>().is_err());
    }
}
