//! Summaries of a result across seeds: mean, sample standard deviation and a 95% Student t
//! confidence interval, for one configuration or for the paired difference of two.
//!
//! An interval needs at least two seeds; with one, the spread is unknown and the summary says
//! so (`None`) instead of reporting a zero-width interval that would pass any verdict rule.
//!
//! ```
//! use transferlab_report::stats::{paired_difference, summarize};
//! let fine_tuned = [0.91, 0.93, 0.92, 0.94, 0.92];
//! let from_scratch = [0.88, 0.90, 0.90, 0.91, 0.89];
//! let s = summarize(&fine_tuned)?;
//! assert_eq!(s.n, 5);
//! // Same seeds for both arms, so compare per seed.
//! let d = paired_difference(&fine_tuned, &from_scratch)?;
//! assert!(d.above(0.0));
//! # Ok::<(), transferlab_report::Error>(())
//! ```

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::{Error, Result};

/// Mean, spread and 95% confidence interval of one quantity measured over `n` seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values (seeds).
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (divisor `n - 1`); `None` when `n == 1`.
    pub std: Option<f64>,
    /// 95% confidence interval for the mean, `mean ± t(0.975, n - 1) · std / √n`, as
    /// `(lo, hi)`; `None` when `n == 1` (undefined, not zero-width).
    pub ci95: Option<(f64, f64)>,
}

impl Summary {
    /// Half the width of the 95% interval; `None` when the interval is undefined.
    pub fn half_width(&self) -> Option<f64> {
        self.ci95.map(|(lo, hi)| (hi - lo) / 2.0)
    }

    /// True when the whole 95% interval lies strictly above `x`; false when it is undefined.
    pub fn above(&self, x: f64) -> bool {
        self.ci95.is_some_and(|(lo, _)| lo > x)
    }

    /// True when the whole 95% interval lies strictly below `x`; false when it is undefined.
    pub fn below(&self, x: f64) -> bool {
        self.ci95.is_some_and(|(_, hi)| hi < x)
    }

    /// True when the 95% interval lies entirely on one side of zero (a significant difference
    /// at the 5% level, two-sided); false when it is undefined.
    pub fn excludes_zero(&self) -> bool {
        self.above(0.0) || self.below(0.0)
    }
}

/// Results per configuration label, one value per seed in seed order: what an experiment
/// collects before summarising each configuration and comparing two of them by seed.
#[derive(Debug, Default, Clone)]
pub struct Results(std::collections::BTreeMap<String, Vec<f64>>);

impl Results {
    /// Records `value` for `key` (call in seed order).
    pub fn push(&mut self, key: impl Into<String>, value: f64) {
        self.0.entry(key.into()).or_default().push(value);
    }

    /// Values of `key`.
    pub fn get(&self, key: &str) -> Result<&[f64]> {
        self.0
            .get(key)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::InvalidArgument(format!("no results for {key}")))
    }

    /// Summary of `key`.
    pub fn summary(&self, key: &str) -> Result<Summary> {
        summarize(self.get(key)?)
    }

    /// `a − b` paired by seed.
    pub fn gain(&self, a: &str, b: &str) -> Result<Summary> {
        paired_difference(self.get(a)?, self.get(b)?)
    }
}

/// Summarises `values` (one per seed).
///
/// Errors ([`Error::InvalidArgument`]) when `values` is empty or holds a NaN or infinity.
pub fn summarize(values: &[f64]) -> Result<Summary> {
    if values.is_empty() {
        return Err(Error::InvalidArgument(
            "cannot summarise zero values: need at least one seed".into(),
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "value {i} is {}: every value must be finite",
            values[i]
        )));
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Ok(Summary {
            n,
            mean,
            std: None,
            ci95: None,
        });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let half = t_quantile(0.975, (n - 1) as f64)? * std / (n as f64).sqrt();
    Ok(Summary {
        n,
        mean,
        std: Some(std),
        ci95: Some((mean - half, mean + half)),
    })
}

/// Summarises the per-seed difference `a[i] - b[i]` (a paired comparison: seed `i` of both
/// arms shares its data order and initialisation, so their noise partly cancels).
///
/// Errors ([`Error::InvalidArgument`]) when the lengths differ, and as [`summarize`] does.
pub fn paired_difference(a: &[f64], b: &[f64]) -> Result<Summary> {
    if a.len() != b.len() {
        return Err(Error::InvalidArgument(format!(
            "paired difference needs one value per seed in both arms, got {} and {} values",
            a.len(),
            b.len()
        )));
    }
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    summarize(&diff)
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom
/// (`t_quantile(0.975, 4.0)` ≈ 2.776445).
///
/// Errors ([`Error::InvalidArgument`]) unless `0 < p < 1` and `df` is finite and positive.
pub fn t_quantile(p: f64, df: f64) -> Result<f64> {
    // statrs asserts on p outside [0, 1]; check here so caller input cannot panic.
    if !(p > 0.0 && p < 1.0) {
        return Err(Error::InvalidArgument(format!(
            "quantile level p = {p} must lie strictly between 0 and 1"
        )));
    }
    if !(df.is_finite() && df > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "degrees of freedom df = {df} must be finite and positive"
        )));
    }
    let t = StudentsT::new(0.0, 1.0, df)
        .map_err(|e| Error::InvalidArgument(format!("Student t with df = {df}: {e}")))?;
    Ok(t.inverse_cdf(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_quantiles_match_tables() {
        // Two-sided 95% critical values from any t table (scipy.stats.t.ppf(0.975, df)).
        for (df, want) in [
            (1.0, 12.706205),
            (2.0, 4.302653),
            (4.0, 2.776445),
            (9.0, 2.262157),
            (29.0, 2.045230),
        ] {
            let got = t_quantile(0.975, df).unwrap();
            assert!(close(got, want, 1e-6), "df {df}: {got} vs {want}");
        }
        // Symmetry and the median.
        assert!(close(t_quantile(0.025, 4.0).unwrap(), -2.776445, 1e-6));
        assert!(close(t_quantile(0.5, 4.0).unwrap(), 0.0, 1e-12));
    }

    #[test]
    fn t_quantile_rejects_bad_arguments() {
        for (p, df) in [
            (0.0, 4.0),
            (1.0, 4.0),
            (-0.1, 4.0),
            (f64::NAN, 4.0),
            (0.975, 0.0),
            (0.975, -1.0),
            (0.975, f64::NAN),
            (0.975, f64::INFINITY),
        ] {
            assert!(
                matches!(t_quantile(p, df), Err(Error::InvalidArgument(_))),
                "p {p} df {df}"
            );
        }
    }

    #[test]
    fn summary_of_one_to_five() {
        // mean = 15 / 5 = 3; sample variance = (4 + 1 + 0 + 1 + 4) / 4 = 2.5,
        // std = √2.5 = 1.5811388; half width = 2.776445 · 1.5811388 / √5 = 1.9632432.
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(s.n, 5);
        assert!(close(s.mean, 3.0, 1e-12));
        assert!(close(s.std.unwrap(), 2.5f64.sqrt(), 1e-12));
        let half = 2.776445 * 2.5f64.sqrt() / 5f64.sqrt();
        let (lo, hi) = s.ci95.unwrap();
        assert!(close(lo, 3.0 - half, 1e-6), "{lo}");
        assert!(close(hi, 3.0 + half, 1e-6), "{hi}");
        assert!(close(s.half_width().unwrap(), 1.9632432, 1e-6));
    }

    #[test]
    fn summary_of_two_values() {
        // [1, 3]: mean 2, std = √((1 + 1) / 1) = √2, half = 12.706205 · √2 / √2 = 12.706205.
        let s = summarize(&[1.0, 3.0]).unwrap();
        let (lo, hi) = s.ci95.unwrap();
        assert!(close(lo, 2.0 - 12.706205, 1e-5));
        assert!(close(hi, 2.0 + 12.706205, 1e-5));
    }

    #[test]
    fn constant_values_give_a_zero_width_interval() {
        let s = summarize(&[0.5, 0.5, 0.5]).unwrap();
        assert_eq!(s.std, Some(0.0));
        assert_eq!(s.ci95, Some((0.5, 0.5)));
        assert!(s.above(0.4) && s.excludes_zero());
    }

    #[test]
    fn one_value_has_no_interval() {
        let s = summarize(&[0.7]).unwrap();
        assert_eq!((s.n, s.mean, s.std, s.ci95), (1, 0.7, None, None));
        assert_eq!(s.half_width(), None);
        assert!(!s.above(0.0) && !s.below(1.0) && !s.excludes_zero());
    }

    #[test]
    fn summarize_rejects_empty_and_non_finite() {
        assert!(matches!(summarize(&[]), Err(Error::InvalidArgument(_))));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            match summarize(&[1.0, bad]) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains("value 1"), "{m}"),
                other => panic!("expected InvalidArgument, got {other:?}"),
            }
        }
    }

    #[test]
    fn paired_difference_per_seed() {
        // a - b = [1, 2, 3, 4, 5]: the same summary as `summary_of_one_to_five`.
        let a = [11.0, 12.0, 13.0, 14.0, 15.0];
        let b = [10.0; 5];
        let d = paired_difference(&a, &b).unwrap();
        assert_eq!(d, summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap());
        assert!(d.excludes_zero() && d.above(1.0) && !d.above(1.1) && d.below(5.0));
        // Swapping the arms flips the sign.
        let r = paired_difference(&b, &a).unwrap();
        assert!(close(r.mean, -3.0, 1e-12) && r.below(0.0) && r.excludes_zero());
    }

    #[test]
    fn paired_difference_straddling_zero_is_no_verdict() {
        // Differences [-1, 1, -1, 1]: mean 0, so the interval contains 0.
        let d = paired_difference(&[0.0, 2.0, 0.0, 2.0], &[1.0; 4]).unwrap();
        assert!(!d.excludes_zero() && !d.above(0.0) && !d.below(0.0));
    }

    #[test]
    fn paired_difference_rejects_length_mismatch() {
        match paired_difference(&[1.0, 2.0, 3.0], &[1.0, 2.0]) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains('3') && m.contains('2'), "{m}"),
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
        assert!(matches!(
            paired_difference(&[], &[]),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn summary_round_trips_through_json() {
        for s in [
            summarize(&[1.0, 2.0, 4.0]).unwrap(),
            summarize(&[2.0]).unwrap(),
        ] {
            let json = serde_json::to_string(&s).unwrap();
            let back: Summary = serde_json::from_str(&json).unwrap();
            // serde_json's default float parser may be off by one ulp: compare loosely.
            assert_eq!(
                (back.n, back.std.is_some()),
                (s.n, s.std.is_some()),
                "{json}"
            );
            assert!(close(back.mean, s.mean, 1e-12), "{json}");
            if let (Some((a, b)), Some((c, d))) = (back.ci95, s.ci95) {
                assert!(close(a, c, 1e-12) && close(b, d, 1e-12), "{json}");
            } else {
                assert_eq!(back.ci95, s.ci95, "{json}");
            }
        }
    }
}
