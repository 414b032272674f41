//! Scores of predictions against labels, shared by the classical classifiers and the
//! training engine.

/// Accuracy and F1: of the positive class (id 1) for binary tasks, macro-averaged otherwise.
pub fn scores(predicted: &[usize], truth: &[usize], n_classes: usize) -> (f64, f64) {
    assert_eq!(predicted.len(), truth.len(), "one prediction per example");
    let correct = predicted.iter().zip(truth).filter(|(p, t)| p == t).count();
    let accuracy = correct as f64 / truth.len().max(1) as f64;
    let f1_of = |class: usize| {
        let tp = predicted
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p == class && **t == class)
            .count() as f64;
        let fp = predicted
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p == class && **t != class)
            .count() as f64;
        let fn_ = predicted
            .iter()
            .zip(truth)
            .filter(|(p, t)| **p != class && **t == class)
            .count() as f64;
        if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        }
    };
    let f1 = if n_classes <= 2 {
        f1_of(1)
    } else {
        (0..n_classes).map(f1_of).sum::<f64>() / n_classes as f64
    };
    (accuracy, f1)
}

#[cfg(test)]
mod tests {
    use super::scores;

    #[test]
    fn binary_scores() {
        // tp=2, fp=1, fn=1, tn=1
        let (accuracy, f1) = scores(&[1, 1, 1, 0, 0], &[1, 1, 0, 1, 0], 2);
        assert!((accuracy - 0.6).abs() < 1e-12);
        assert!((f1 - 4.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn macro_f1_for_three_classes() {
        let (accuracy, f1) = scores(&[0, 1, 2], &[0, 1, 1], 3);
        assert!((accuracy - 2.0 / 3.0).abs() < 1e-12);
        // class 0: 1; class 1: tp=1, fn=1 → 2/3; class 2: 0
        assert!((f1 - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }
}
