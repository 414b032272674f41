//! Splits written as `load_dataset` writes them: `train`, `train[:10000]`, `test[100:200]`,
//! `train[:80%]`, `train[80%:]`, `train[-10%:]`. Percent bounds round to the nearest row
//! (the `datasets` library's default); row bounds past the split's end are an error.

use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Row(i64),
    Percent(i64),
}

/// A split name with an optional `[from:to]` slice.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitSpec {
    pub name: String,
    pub slice: Option<(Option<Bound>, Option<Bound>)>,
}

impl SplitSpec {
    /// Parses `name` or `name[from:to]`; anything without a trailing `]` is a bare name.
    pub fn parse(text: &str) -> Result<SplitSpec, String> {
        let Some(body) = text.strip_suffix(']') else {
            return Ok(SplitSpec {
                name: text.to_string(),
                slice: None,
            });
        };
        let hint = "(write e.g. `train[:1000]`, `train[100:200]`, `train[:80%]`, `train[80%:]`)";
        let (name, range) = body
            .rsplit_once('[')
            .ok_or_else(|| format!("invalid split `{text}`: `]` without `[` {hint}"))?;
        let (from, to) = range
            .split_once(':')
            .ok_or_else(|| format!("invalid split `{text}`: the slice needs a `:` {hint}"))?;
        let bound = |part: &str| -> Result<Option<Bound>, String> {
            let part = part.trim();
            if part.is_empty() {
                return Ok(None);
            }
            let (number, percent) = match part.strip_suffix('%') {
                Some(n) => (n.trim(), true),
                None => (part, false),
            };
            let value: i64 = number
                .parse()
                .map_err(|_| format!("invalid split `{text}`: `{part}` is not a row number or a percentage {hint}"))?;
            if percent && !(-100..=100).contains(&value) {
                return Err(format!("invalid split `{text}`: `{part}` is beyond 100%"));
            }
            Ok(Some(if percent {
                Bound::Percent(value)
            } else {
                Bound::Row(value)
            }))
        };
        if name.is_empty() {
            return Err(format!("invalid split `{text}`: no split name before `[`"));
        }
        Ok(SplitSpec {
            name: name.to_string(),
            slice: Some((bound(from)?, bound(to)?)),
        })
    }

    /// The rows of a split of `len` rows this spec selects.
    pub fn range(&self, len: usize) -> Result<Range<usize>, String> {
        let Some((from, to)) = self.slice else {
            return Ok(0..len);
        };
        let n = len as i64;
        let at = |bound: Option<Bound>, default: i64| -> Result<usize, String> {
            let index = match bound {
                None => default,
                Some(Bound::Row(row)) => {
                    if row > n || row < -n {
                        return Err(format!(
                            "split `{self}`: row {row} is out of range, the `{}` split has {len} rows",
                            self.name
                        ));
                    }
                    if row < 0 {
                        n + row
                    } else {
                        row
                    }
                }
                Some(Bound::Percent(p)) => {
                    let p = if p < 0 { 100 + p } else { p };
                    (n as f64 * p as f64 / 100.0).round() as i64
                }
            };
            Ok(index.clamp(0, n) as usize)
        };
        let (start, end) = (at(from, 0)?, at(to, n)?);
        if start >= end {
            return Err(format!(
                "split `{self}` selects no rows (the `{}` split has {len})",
                self.name
            ));
        }
        Ok(start..end)
    }
}

impl fmt::Display for SplitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |b: &Option<Bound>| match b {
            None => String::new(),
            Some(Bound::Row(r)) => r.to_string(),
            Some(Bound::Percent(p)) => format!("{p}%"),
        };
        match &self.slice {
            None => write!(f, "{}", self.name),
            Some((from, to)) => write!(f, "{}[{}:{}]", self.name, show(from), show(to)),
        }
    }
}

/// `deserialize_with` for a split or file field: a malformed slice fails at spec load.
pub fn checked<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    SplitSpec::parse(&text).map_err(serde::de::Error::custom)?;
    Ok(text)
}

pub fn checked_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    checked(deserializer).map(Some)
}

/// `deserialize_with` for `eval_fraction`: strictly between 0 and 1.
pub fn fraction<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if !(value > 0.0 && value < 1.0) {
        return Err(serde::de::Error::custom(format!(
            "eval_fraction must be between 0 and 1 (exclusive), got {value}"
        )));
    }
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(spec: &str, len: usize) -> Result<Range<usize>, String> {
        SplitSpec::parse(spec)?.range(len)
    }

    #[test]
    fn slices_as_load_dataset_reads_them() {
        assert_eq!(range("train", 50).unwrap(), 0..50);
        assert_eq!(range("train[:10]", 50).unwrap(), 0..10);
        assert_eq!(range("train[10:20]", 50).unwrap(), 10..20);
        assert_eq!(range("train[:80%]", 50).unwrap(), 0..40);
        assert_eq!(range("train[80%:]", 50).unwrap(), 40..50);
        assert_eq!(range("train[-10%:]", 50).unwrap(), 45..50);
        assert_eq!(range("train[-5:]", 50).unwrap(), 45..50);
        assert_eq!(SplitSpec::parse("test[:2000]").unwrap().to_string(), "test[:2000]");
    }

    #[test]
    fn bad_slices_say_why() {
        let err = SplitSpec::parse("train[:abc]").unwrap_err();
        assert!(err.contains("`abc` is not a row number or a percentage"), "{err}");
        assert!(SplitSpec::parse("train[10]").unwrap_err().contains("needs a `:`"));
        assert!(SplitSpec::parse("train[:150%]").unwrap_err().contains("beyond 100%"));
        let err = range("train[:10000]", 2000).unwrap_err();
        assert!(
            err.contains("row 10000 is out of range, the `train` split has 2000 rows"),
            "{err}"
        );
        assert!(range("train[5:5]", 10).unwrap_err().contains("selects no rows"));
    }
}
