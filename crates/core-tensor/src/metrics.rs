//! Classification and regression metrics over tensors, whole or batch by batch.
//!
//! Classification predictions are either logits (or probabilities) `[N, C]`, reduced by
//! argmax (the first maximum wins a tie), or integer class ids `[N]`; targets are integer
//! class ids `[N]`. Free functions score one set of tensors; the [`Metric`] accumulators
//! ([`Accuracy`], [`ConfusionMatrix`], [`RegressionMetrics`]) take one batch per
//! [`Metric::update`] so that evaluation never holds every prediction at once.
//!
//! Every function checks shapes and returns [`Error::InvalidArgument`] naming both shapes;
//! an `update` that fails leaves the accumulator unchanged. Work runs without autograd on the
//! tensors' device; only counts and sums come back to the CPU.
//!
//! ```
//! use core_tensor::metrics::{Accuracy, ConfusionMatrix, Metric};
//! use tch::Tensor;
//! let logits = Tensor::from_slice2(&[[2.0f32, 0.1], [0.3, 0.9], [1.0, 0.0]]);
//! let targets = Tensor::from_slice(&[0i64, 1, 1]);
//! let mut acc = Accuracy::new();
//! let mut cm = ConfusionMatrix::new(2)?;
//! acc.update(&logits, &targets)?;
//! cm.update(&logits, &targets)?;
//! assert_eq!(acc.compute(), Some(2.0 / 3.0));
//! assert_eq!(cm.compute(), vec![vec![1, 0], vec![1, 1]]);
//! # Ok::<(), core_tensor::Error>(())
//! ```

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::{Error, Result};

/// A quantity accumulated over batches of predictions and targets.
pub trait Metric {
    /// What [`Metric::compute`] reports.
    type Output;

    /// Adds one batch. On error the accumulated state is unchanged.
    fn update(&mut self, preds: &Tensor, targets: &Tensor) -> Result<()>;

    /// The metric over every batch since construction or the last [`Metric::reset`].
    fn compute(&self) -> Self::Output;

    /// Forgets every batch.
    fn reset(&mut self);
}

/// Streaming top-1 accuracy; see the module documentation for the accepted shapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accuracy {
    correct: u64,
    total: u64,
}

impl Accuracy {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Correct predictions so far.
    pub fn correct(&self) -> u64 {
        self.correct
    }

    /// Examples so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl Metric for Accuracy {
    /// The fraction correct, or `None` before any example.
    type Output = Option<f64>;

    /// Adds a batch: logits `[N, C]` (targets must then lie in `0..C`) or class ids `[N]`
    /// (compared with the targets as given), and integer targets `[N]`.
    fn update(&mut self, preds: &Tensor, targets: &Tensor) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        let classes = predicted_classes(preds, targets, None)?;
        let correct = count(&classes.f_eq_tensor(targets)?)?;
        self.correct += correct;
        self.total += targets.size()[0] as u64;
        Ok(())
    }

    fn compute(&self) -> Option<f64> {
        (self.total > 0).then(|| self.correct as f64 / self.total as f64)
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Streaming confusion matrix over `C` classes: `counts()[t][p]` is the number of examples of
/// true class `t` predicted as `p` (rows true, columns predicted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    counts: Vec<Vec<u64>>,
}

impl ConfusionMatrix {
    /// An empty `num_classes × num_classes` matrix; errors when `num_classes` is 0 or so large
    /// that `num_classes²` does not fit an `i64`.
    pub fn new(num_classes: usize) -> Result<Self> {
        class_count(num_classes)?;
        Ok(ConfusionMatrix {
            counts: vec![vec![0; num_classes]; num_classes],
        })
    }

    /// Number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// The counts, `[C][C]`, rows true class, columns predicted class.
    pub fn counts(&self) -> &[Vec<u64>] {
        &self.counts
    }

    /// Examples so far.
    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    /// Top-1 accuracy (the diagonal over the total), or `None` before any example.
    pub fn accuracy(&self) -> Option<f64> {
        let total = self.total();
        let correct: u64 = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        (total > 0).then(|| correct as f64 / total as f64)
    }

    /// Accuracy within each true class (its recall): entry `c` is the fraction of examples of
    /// class `c` predicted as `c`, or `None` when no example of class `c` has been seen.
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let n: u64 = row.iter().sum();
                (n > 0).then(|| row[c] as f64 / n as f64)
            })
            .collect()
    }
}

impl Metric for ConfusionMatrix {
    /// A copy of the counts, `[C][C]`.
    type Output = Vec<Vec<u64>>;

    /// Adds a batch: logits `[N, C]` or class ids `[N]`, and targets `[N]`; predictions and
    /// targets must all lie in `0..C`.
    fn update(&mut self, preds: &Tensor, targets: &Tensor) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        let c = self.counts.len() as i64;
        let classes = predicted_classes(preds, targets, Some(c))?;
        // One bincount over `true * C + predicted` fills the whole matrix.
        let flat = targets
            .f_to_kind(Kind::Int64)?
            .f_mul_scalar(c)?
            .f_add(&classes.f_to_kind(Kind::Int64)?)?
            .f_bincount(None::<Tensor>, c * c)?;
        let flat = Vec::<i64>::try_from(&flat)?;
        for (i, n) in flat.into_iter().enumerate() {
            self.counts[i / c as usize][i % c as usize] += n as u64;
        }
        Ok(())
    }

    fn compute(&self) -> Vec<Vec<u64>> {
        self.counts.clone()
    }

    fn reset(&mut self) {
        self.counts.iter_mut().flatten().for_each(|n| *n = 0);
    }
}

/// Mean absolute error and root mean squared error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionErrors {
    /// Mean absolute error.
    pub mae: f64,
    /// Root mean squared error.
    pub rmse: f64,
}

/// Streaming MAE and RMSE over predictions and targets of the same shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegressionMetrics {
    n: u64,
    sum_abs: f64,
    sum_sq: f64,
}

impl RegressionMetrics {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Elements so far.
    pub fn total(&self) -> u64 {
        self.n
    }
}

impl Metric for RegressionMetrics {
    /// The errors, or `None` before any element.
    type Output = Option<RegressionErrors>;

    /// Adds a batch. Shapes must be equal: no broadcasting, so predictions `[N, 1]` against
    /// targets `[N]` are an error rather than an `[N, N]` grid of differences. Every element
    /// counts, in double precision.
    fn update(&mut self, preds: &Tensor, targets: &Tensor) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        let (ps, ts) = (preds.size(), targets.size());
        if ps != ts {
            return Err(Error::InvalidArgument(format!(
                "predictions {ps:?} and targets {ts:?} must have the same shape"
            )));
        }
        let diff = preds
            .f_to_kind(Kind::Double)?
            .f_sub(&targets.f_to_kind(Kind::Double)?)?;
        let sum_abs = diff.f_abs()?.f_sum(Kind::Double)?.f_double_value(&[])?;
        let sum_sq = diff.f_square()?.f_sum(Kind::Double)?.f_double_value(&[])?;
        self.n += diff.numel() as u64;
        self.sum_abs += sum_abs;
        self.sum_sq += sum_sq;
        Ok(())
    }

    fn compute(&self) -> Option<RegressionErrors> {
        (self.n > 0).then(|| RegressionErrors {
            mae: self.sum_abs / self.n as f64,
            rmse: (self.sum_sq / self.n as f64).sqrt(),
        })
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

/// Top-1 accuracy of logits `[N, C]` or class ids `[N]` against targets `[N]`.
///
/// With logits, targets must lie in `0..C`. Errors on bad shapes or kinds, and when `N == 0`.
pub fn accuracy(preds: &Tensor, targets: &Tensor) -> Result<f64> {
    let mut acc = Accuracy::new();
    acc.update(preds, targets)?;
    acc.compute().ok_or_else(|| no_examples(preds, targets))
}

/// The `num_classes × num_classes` confusion matrix (rows true, columns predicted) of logits
/// `[N, C]` (with `C == num_classes`) or class ids `[N]` against targets `[N]`.
pub fn confusion_matrix(
    preds: &Tensor,
    targets: &Tensor,
    num_classes: usize,
) -> Result<Vec<Vec<u64>>> {
    let mut cm = ConfusionMatrix::new(num_classes)?;
    cm.update(preds, targets)?;
    Ok(cm.compute())
}

/// Accuracy within each true class (recall per class), `num_classes` entries; `None` for a
/// class with no example among the targets. Shapes as for [`confusion_matrix`].
pub fn per_class_accuracy(
    preds: &Tensor,
    targets: &Tensor,
    num_classes: usize,
) -> Result<Vec<Option<f64>>> {
    let mut cm = ConfusionMatrix::new(num_classes)?;
    cm.update(preds, targets)?;
    Ok(cm.per_class_accuracy())
}

/// Mean absolute error of `preds` against `targets` (equal shapes, at least one element).
pub fn mae(preds: &Tensor, targets: &Tensor) -> Result<f64> {
    Ok(regression_errors(preds, targets)?.mae)
}

/// Root mean squared error of `preds` against `targets` (equal shapes, at least one element).
pub fn rmse(preds: &Tensor, targets: &Tensor) -> Result<f64> {
    Ok(regression_errors(preds, targets)?.rmse)
}

fn regression_errors(preds: &Tensor, targets: &Tensor) -> Result<RegressionErrors> {
    let mut m = RegressionMetrics::new();
    m.update(preds, targets)?;
    m.compute().ok_or_else(|| no_examples(preds, targets))
}

/// Area under the ROC curve of `scores` `[N]` (higher means more likely positive) for
/// `labels` `[N]` holding only 0 and 1 (any numeric or bool kind).
///
/// Computed exactly as the Mann–Whitney statistic: the fraction of (positive, negative) pairs
/// in which the positive scores higher, a tie counting one half (equal scores share their
/// average rank). Errors when shapes differ, a score is NaN, a label is not 0 or 1, or either
/// class is absent (the area is then undefined).
pub fn roc_auc(scores: &Tensor, labels: &Tensor) -> Result<f64> {
    let _no_grad = tch::no_grad_guard();
    let (ss, ls) = (scores.size(), labels.size());
    if ss.len() != 1 || ss != ls {
        return Err(Error::InvalidArgument(format!(
            "scores {ss:?} and labels {ls:?} must both have shape [N]"
        )));
    }
    let scores = Vec::<f64>::try_from(&scores.f_to_kind(Kind::Double)?)?;
    let labels = Vec::<f64>::try_from(&labels.f_to_kind(Kind::Double)?)?;
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::InvalidArgument(format!("score {i} is NaN")));
    }
    if let Some(i) = labels.iter().position(|&l| l != 0.0 && l != 1.0) {
        return Err(Error::InvalidArgument(format!(
            "label {i} is {}: binary labels must be 0 or 1",
            labels[i]
        )));
    }
    let positive: Vec<bool> = labels.iter().map(|&l| l == 1.0).collect();
    let n_pos = positive.iter().filter(|&&p| p).count() as u128;
    let n_neg = positive.len() as u128 - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(Error::InvalidArgument(format!(
            "ROC AUC needs both classes, got {n_pos} positive and {n_neg} negative labels"
        )));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    // Twice the positives' rank sum, in integers: a tie group at 0-based positions i..=j has
    // average 1-based rank (i + j + 2) / 2.
    let mut twice_rank_sum: u128 = 0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let pos_in_group = order[i..=j].iter().filter(|&&k| positive[k]).count() as u128;
        twice_rank_sum += (i + j + 2) as u128 * pos_in_group;
        i = j + 1;
    }
    // U = R₊ − n₊(n₊ + 1)/2, so 2U = 2R₊ − n₊(n₊ + 1); AUC = U / (n₊ n₋).
    let twice_u = twice_rank_sum - n_pos * (n_pos + 1);
    Ok(twice_u as f64 / (2 * n_pos * n_neg) as f64)
}

fn no_examples(preds: &Tensor, targets: &Tensor) -> Error {
    Error::InvalidArgument(format!(
        "predictions {:?} and targets {:?} hold no examples",
        preds.size(),
        targets.size()
    ))
}

/// `num_classes` as an `i64` whose square fits too.
fn class_count(num_classes: usize) -> Result<i64> {
    let c = i64::try_from(num_classes).ok().filter(|&c| c > 0);
    match c.and_then(|c| c.checked_mul(c).map(|_| c)) {
        Some(c) => Ok(c),
        None => Err(Error::InvalidArgument(format!(
            "num_classes = {num_classes} must be positive and its square must fit an i64"
        ))),
    }
}

fn is_integer(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64
    )
}

/// Number of true elements of a bool tensor.
fn count(mask: &Tensor) -> Result<u64> {
    Ok(mask.f_sum(Kind::Int64)?.f_int64_value(&[])? as u64)
}

/// Errors unless every element of `t` lies in `0..c`.
fn check_range(t: &Tensor, what: &str, c: i64) -> Result<()> {
    if t.numel() == 0 {
        return Ok(());
    }
    let lo = t.f_min()?.f_int64_value(&[])?;
    let hi = t.f_max()?.f_int64_value(&[])?;
    if lo < 0 || hi >= c {
        return Err(Error::InvalidArgument(format!(
            "{what} must be class ids in 0..{c}, found values in {lo}..={hi}"
        )));
    }
    Ok(())
}

/// The predicted class of each example, on the targets' device, after checking shapes, kinds and (for logits, or
/// when `num_classes` is given) that every class id lies in `0..C`.
fn predicted_classes(preds: &Tensor, targets: &Tensor, num_classes: Option<i64>) -> Result<Tensor> {
    let (ps, ts) = (preds.size(), targets.size());
    let (n, pn) = match (ts.as_slice(), ps.as_slice()) {
        (&[n], &[pn, _] | &[pn]) => (n, pn),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "predictions {ps:?} and targets {ts:?}: expected logits [N, C] or class ids \
                 [N], and targets [N]"
            )));
        }
    };
    if n != pn {
        return Err(Error::InvalidArgument(format!(
            "predictions {ps:?} and targets {ts:?} must have the same number of examples"
        )));
    }
    if !is_integer(targets.kind()) {
        return Err(Error::InvalidArgument(format!(
            "targets {ts:?} must hold integer class ids, got kind {:?}",
            targets.kind()
        )));
    }
    if let &[_, c] = ps.as_slice() {
        if c == 0 || num_classes.is_some_and(|k| k != c) {
            return Err(Error::InvalidArgument(format!(
                "logits {ps:?} must have {} classes",
                num_classes.map_or_else(|| "one or more".to_string(), |k| k.to_string())
            )));
        }
        check_range(targets, "targets", c)?;
        // On the targets' device, so GPU logits may be scored against CPU labels.
        return Ok(preds.f_argmax(1, false)?.f_to_device(targets.device())?);
    }
    if !is_integer(preds.kind()) {
        return Err(Error::InvalidArgument(format!(
            "predictions {ps:?} of kind {:?}: one-dimensional predictions must be integer class \
             ids (take the argmax of logits, or threshold scores, first)",
            preds.kind()
        )));
    }
    if let Some(c) = num_classes {
        check_range(targets, "targets", c)?;
        check_range(preds, "predictions", c)?;
    }
    Ok(preds.f_to_device(targets.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn t64(v: &[i64]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn accuracy_from_logits() {
        // argmax per row: [0, 1, 2, 2]; targets [0, 1, 1, 2] → 3 of 4 correct.
        let logits = Tensor::from_slice2(&[
            [3.0f32, 1.0, 0.0],
            [0.0, 2.0, 1.0],
            [0.0, 0.5, 0.6],
            [-1.0, -2.0, 5.0],
        ]);
        assert_eq!(accuracy(&logits, &t64(&[0, 1, 1, 2])).unwrap(), 0.75);
        // A tie in a row goes to its first maximum (torch.argmax): [1, 1] predicts class 0.
        let tie = Tensor::from_slice2(&[[1.0f32, 1.0]]);
        assert_eq!(accuracy(&tie, &t64(&[0])).unwrap(), 1.0);
    }

    #[test]
    fn accuracy_from_class_ids_of_any_integer_kind() {
        let preds = Tensor::from_slice(&[1i32, 0, 1, 1, 0]);
        let targets = Tensor::from_slice(&[1u8, 0, 0, 1, 1]);
        assert_eq!(accuracy(&preds, &targets).unwrap(), 0.6);
    }

    #[test]
    fn streaming_accuracy_matches_whole_and_resets() {
        let mut acc = Accuracy::new();
        assert_eq!(acc.compute(), None);
        acc.update(&t64(&[0, 1]), &t64(&[0, 0])).unwrap();
        acc.update(&t64(&[2, 2, 1]), &t64(&[2, 2, 1])).unwrap();
        // An empty batch changes nothing.
        acc.update(&t64(&[]), &t64(&[])).unwrap();
        assert_eq!((acc.correct(), acc.total()), (4, 5));
        assert_eq!(acc.compute(), Some(0.8));
        acc.reset();
        assert_eq!((acc.total(), acc.compute()), (0, None));
    }

    #[test]
    fn failed_update_leaves_state_unchanged() {
        let mut acc = Accuracy::new();
        acc.update(&t64(&[0]), &t64(&[0])).unwrap();
        assert!(acc.update(&t64(&[0, 1]), &t64(&[0])).is_err());
        assert_eq!(acc.compute(), Some(1.0));
        let mut cm = ConfusionMatrix::new(2).unwrap();
        cm.update(&t64(&[1]), &t64(&[0])).unwrap();
        assert!(cm.update(&t64(&[0, 5]), &t64(&[0, 1])).is_err());
        assert_eq!(cm.compute(), vec![vec![0, 1], vec![0, 0]]);
    }

    #[test]
    fn confusion_matrix_small_case() {
        // (true, predicted): (0,0) (0,1) (1,1) (2,1) (2,2) (2,2) (0,0)
        // row 0: [2, 1, 0]; row 1: [0, 1, 0]; row 2: [0, 1, 2].
        let targets = t64(&[0, 0, 1, 2, 2, 2, 0]);
        let preds = t64(&[0, 1, 1, 1, 2, 2, 0]);
        let want = vec![vec![2, 1, 0], vec![0, 1, 0], vec![0, 1, 2]];
        assert_eq!(confusion_matrix(&preds, &targets, 3).unwrap(), want);
        // The same from logits whose argmax is `preds`.
        let logits = preds.one_hot(3).to_kind(Kind::Float) * 2.0 - 0.5;
        assert_eq!(confusion_matrix(&logits, &targets, 3).unwrap(), want);
        // Batch by batch gives the same matrix.
        let mut cm = ConfusionMatrix::new(3).unwrap();
        cm.update(&preds.narrow(0, 0, 4), &targets.narrow(0, 0, 4))
            .unwrap();
        cm.update(&preds.narrow(0, 4, 3), &targets.narrow(0, 4, 3))
            .unwrap();
        assert_eq!(cm.counts(), want.as_slice());
        assert_eq!((cm.num_classes(), cm.total()), (3, 7));
        // Diagonal 2 + 1 + 2 = 5 of 7.
        assert!(close(cm.accuracy().unwrap(), 5.0 / 7.0));
        cm.reset();
        assert_eq!((cm.total(), cm.accuracy()), (0, None));
    }

    #[test]
    fn per_class_accuracy_is_recall_and_none_without_examples() {
        // Class 0: 2 of 3 right; class 1: 1 of 1; class 2: 2 of 3; class 3: never a target
        // (though predicted once).
        let targets = t64(&[0, 0, 1, 2, 2, 2, 0]);
        let preds = t64(&[0, 1, 1, 3, 2, 2, 0]);
        let got = per_class_accuracy(&preds, &targets, 4).unwrap();
        assert_eq!(got, vec![Some(2.0 / 3.0), Some(1.0), Some(2.0 / 3.0), None]);
    }

    #[test]
    fn roc_auc_with_ties_by_hand() {
        // Positives score 0.35, 0.8, 0.4; negatives 0.1, 0.4. Of the 6 (pos, neg) pairs,
        // 4 are won by the positive and one (0.4 vs 0.4) ties: (4 + 0.5) / 6 = 0.75.
        // By ranks: 0.1→1, 0.35→2, 0.4 and 0.4→3.5, 0.8→5; R₊ = 2 + 3.5 + 5 = 10.5,
        // U = 10.5 − 3·4/2 = 4.5. sklearn.metrics.roc_auc_score agrees.
        let scores = Tensor::from_slice(&[0.1f32, 0.4, 0.35, 0.8, 0.4]);
        let labels = t64(&[0, 0, 1, 1, 1]);
        assert!(close(roc_auc(&scores, &labels).unwrap(), 0.75));
        // Labels as floats or bools are accepted.
        let float_labels = Tensor::from_slice(&[0.0f64, 0.0, 1.0, 1.0, 1.0]);
        assert!(close(roc_auc(&scores, &float_labels).unwrap(), 0.75));
        let bool_labels = Tensor::from_slice(&[false, false, true, true, true]);
        assert!(close(roc_auc(&scores, &bool_labels).unwrap(), 0.75));
    }

    #[test]
    fn roc_auc_extremes() {
        let labels = t64(&[0, 0, 1, 1]);
        let perfect = Tensor::from_slice(&[0.1f64, 0.2, 0.8, 0.9]);
        assert_eq!(roc_auc(&perfect, &labels).unwrap(), 1.0);
        let inverse = Tensor::from_slice(&[0.9f64, 0.8, 0.2, 0.1]);
        assert_eq!(roc_auc(&inverse, &labels).unwrap(), 0.0);
        // Every score equal: every pair ties.
        let flat = Tensor::from_slice(&[0.5f64; 4]);
        assert_eq!(roc_auc(&flat, &labels).unwrap(), 0.5);
        // Integer scores and infinities are ranked like any others.
        let ints = t64(&[-3, 7, 7, 100]);
        // Pairs: (7 vs -3) win, (7 vs 7) tie, (100 vs -3) win, (100 vs 7) win → 3.5 / 4.
        assert_eq!(roc_auc(&ints, &labels).unwrap(), 0.875);
        let inf = Tensor::from_slice(&[f64::NEG_INFINITY, 0.0, 0.0, f64::INFINITY]);
        assert_eq!(roc_auc(&inf, &labels).unwrap(), 0.875);
    }

    #[test]
    fn roc_auc_errors() {
        let scores = Tensor::from_slice(&[0.1f32, 0.4, 0.35]);
        // One class absent.
        let m = invalid(roc_auc(&scores, &t64(&[1, 1, 1])));
        assert!(m.contains("3 positive and 0 negative"), "{m}");
        invalid(roc_auc(&scores, &t64(&[0, 0, 0])));
        invalid(roc_auc(&t64(&[]), &t64(&[])));
        // Labels other than 0 and 1.
        let m = invalid(roc_auc(&scores, &t64(&[0, 2, 1])));
        assert!(m.contains("label 1 is 2"), "{m}");
        // NaN score.
        let nan = Tensor::from_slice(&[0.1f32, f32::NAN, 0.3]);
        assert!(invalid(roc_auc(&nan, &t64(&[0, 1, 1]))).contains("score 1"));
        // Shapes.
        let m = invalid(roc_auc(&scores, &t64(&[0, 1])));
        assert!(m.contains("[3]") && m.contains("[2]"), "{m}");
        let two_d = Tensor::from_slice2(&[[0.1f32, 0.9], [0.8, 0.2]]);
        invalid(roc_auc(&two_d, &t64(&[0, 1])));
    }

    #[test]
    fn mae_and_rmse_by_hand() {
        // Differences [0.5, -1, 2, 0]: MAE = 3.5 / 4 = 0.875;
        // RMSE = √((0.25 + 1 + 4 + 0) / 4) = √1.3125.
        let preds = Tensor::from_slice(&[1.5f32, 1.0, 5.0, 4.0]);
        let targets = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]);
        assert!(close(mae(&preds, &targets).unwrap(), 0.875));
        assert!(close(rmse(&preds, &targets).unwrap(), 1.3125f64.sqrt()));
        // Streaming over two batches gives the same numbers.
        let mut m = RegressionMetrics::new();
        assert_eq!(m.compute(), None);
        m.update(&preds.narrow(0, 0, 1), &targets.narrow(0, 0, 1))
            .unwrap();
        m.update(&preds.narrow(0, 1, 3), &targets.narrow(0, 1, 3))
            .unwrap();
        let e = m.compute().unwrap();
        assert!(close(e.mae, 0.875) && close(e.rmse, 1.3125f64.sqrt()));
        assert_eq!(m.total(), 4);
        m.reset();
        assert_eq!(m.compute(), None);
    }

    #[test]
    fn regression_shape_errors_name_both_shapes() {
        let preds = Tensor::zeros([4, 1], (Kind::Float, tch::Device::Cpu));
        let targets = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu));
        let m = invalid(mae(&preds, &targets));
        assert!(m.contains("[4, 1]") && m.contains("[4]"), "{m}");
        invalid(rmse(&preds, &targets));
        let empty = Tensor::zeros([0], (Kind::Float, tch::Device::Cpu));
        assert!(invalid(mae(&empty, &empty)).contains("no examples"));
        invalid(rmse(&empty, &empty));
    }

    #[test]
    fn classification_shape_errors_name_both_shapes() {
        let logits = Tensor::zeros([4, 3], (Kind::Float, tch::Device::Cpu));
        let m = invalid(accuracy(&logits, &t64(&[0, 1, 2, 0, 1])));
        assert!(m.contains("[4, 3]") && m.contains("[5]"), "{m}");
        // Targets must be one-dimensional.
        let m = invalid(accuracy(
            &t64(&[0, 1]),
            &Tensor::zeros([2, 1], (Kind::Int64, tch::Device::Cpu)),
        ));
        assert!(m.contains("[2]") && m.contains("[2, 1]"), "{m}");
        // Three-dimensional predictions.
        let cube = Tensor::zeros([2, 2, 2], (Kind::Float, tch::Device::Cpu));
        invalid(accuracy(&cube, &t64(&[0, 1])));
        invalid(confusion_matrix(&cube, &t64(&[0, 1]), 2));
        invalid(per_class_accuracy(&logits, &t64(&[0, 1, 2]), 3));
    }

    #[test]
    fn classification_kind_and_range_errors() {
        // Float targets.
        let float_targets = Tensor::from_slice(&[0.0f32, 1.0]);
        assert!(invalid(accuracy(&t64(&[0, 1]), &float_targets)).contains("integer"));
        // Float one-dimensional predictions (scores, not class ids).
        let scores = Tensor::from_slice(&[0.2f32, 0.9]);
        assert!(invalid(accuracy(&scores, &t64(&[0, 1]))).contains("argmax"));
        // Targets outside the logits' classes.
        let logits = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
        assert!(invalid(accuracy(&logits, &t64(&[0, 3]))).contains("0..3"));
        invalid(accuracy(&logits, &t64(&[-1, 0])));
        // Logits with no classes.
        let none = Tensor::zeros([2, 0], (Kind::Float, tch::Device::Cpu));
        invalid(accuracy(&none, &t64(&[0, 0])));
        // No examples at all.
        assert!(invalid(accuracy(&t64(&[]), &t64(&[]))).contains("no examples"));
        // Confusion matrix: class count, logits width, and ids out of range.
        invalid(ConfusionMatrix::new(0));
        invalid(ConfusionMatrix::new(usize::MAX));
        invalid(confusion_matrix(&t64(&[0]), &t64(&[0]), 0));
        assert!(invalid(confusion_matrix(&logits, &t64(&[0, 1]), 4)).contains("4 classes"));
        assert!(invalid(confusion_matrix(&t64(&[0, 2]), &t64(&[0, 1]), 2)).contains("predictions"));
        assert!(invalid(confusion_matrix(&t64(&[0, 1]), &t64(&[0, 2]), 2)).contains("targets"));
        invalid(per_class_accuracy(&t64(&[-1]), &t64(&[0]), 2));
    }

    #[test]
    fn metrics_do_not_need_gradients_to_be_off() {
        let logits = Tensor::from_slice2(&[[1.0f32, 0.0], [0.0, 1.0]]).set_requires_grad(true);
        assert_eq!(accuracy(&logits, &t64(&[0, 0])).unwrap(), 0.5);
        let preds = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let targets = Tensor::from_slice(&[0.0f32, 0.0]);
        assert!(close(mae(&preds, &targets).unwrap(), 1.5));
    }
}
