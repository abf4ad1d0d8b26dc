//! The multi-task gain Δm (Maninis et al. 2019; LibMTL's definition), always against trained
//! single-task baselines:
//!
//! `Δm = 100% · (1/T) Σ_t (1/M_t) Σ_m s_{t,m} (N_{t,m} − B_{t,m}) / B_{t,m}`
//!
//! with `N` the multi-task result, `B` the single-task baseline of the same metric (same
//! architecture, same recipe), `s = +1` where higher is better and `−1` where lower is better.
//! A positive Δm means the multi-task model is better on average.

use core_tensor::train::Goal;
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};

/// One metric of one task: the multi-task result and its single-task baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The multi-task model's value.
    pub multi: f64,
    /// The single-task baseline's value (trained with the same recipe).
    pub single: f64,
    /// Whether larger or smaller is better.
    pub goal: Goal,
}

impl Comparison {
    /// The signed relative change `s (N − B) / B` (a fraction, not a percentage).
    pub fn relative_gain(&self) -> Result<f64> {
        if !(self.single.is_finite() && self.multi.is_finite()) || self.single == 0.0 {
            return Err(Error::InvalidArgument(format!(
                "Δm needs finite values and a non-zero baseline, got multi {} and single {}",
                self.multi, self.single
            )));
        }
        let sign = match self.goal {
            Goal::Maximize => 1.0,
            Goal::Minimize => -1.0,
        };
        Ok(sign * (self.multi - self.single) / self.single)
    }
}

/// Δm in percent over tasks, each with one or more metrics (`tasks[t]` holds task `t`'s).
pub fn delta_m(tasks: &[Vec<Comparison>]) -> Result<f64> {
    if tasks.is_empty() || tasks.iter().any(Vec::is_empty) {
        return Err(Error::InvalidArgument(
            "Δm needs at least one task, each with at least one metric".into(),
        ));
    }
    let mut sum = 0.0;
    for metrics in tasks {
        let mut task = 0.0;
        for m in metrics {
            task += m.relative_gain()?;
        }
        sum += task / metrics.len() as f64;
    }
    Ok(100.0 * sum / tasks.len() as f64)
}

/// Δm in percent when every task has one metric.
pub fn delta_m_single_metric(tasks: &[Comparison]) -> Result<f64> {
    let nested: Vec<Vec<Comparison>> = tasks.iter().map(|c| vec![*c]).collect();
    delta_m(&nested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(multi: f64, single: f64, goal: Goal) -> Comparison {
        Comparison {
            multi,
            single,
            goal,
        }
    }

    #[test]
    fn delta_m_on_hand_computed_numbers() {
        // Accuracy 0.90 vs 0.80: +12.5%; MAE 1.5 vs 2.0 (lower better): +25%. Mean +18.75%.
        let d = delta_m_single_metric(&[
            cmp(0.90, 0.80, Goal::Maximize),
            cmp(1.5, 2.0, Goal::Minimize),
        ])
        .unwrap();
        assert!((d - 18.75).abs() < 1e-9, "{d}");
        // Worse on both: accuracy 0.72 vs 0.80 (−10%), MAE 2.5 vs 2.0 (−25%): −17.5%.
        let d = delta_m_single_metric(&[
            cmp(0.72, 0.80, Goal::Maximize),
            cmp(2.5, 2.0, Goal::Minimize),
        ])
        .unwrap();
        assert!((d + 17.5).abs() < 1e-9, "{d}");
        // Two metrics in one task average first: task A (+10%, −30%) = −10%, task B +20%: +5%.
        let d = delta_m(&[
            vec![cmp(1.1, 1.0, Goal::Maximize), cmp(1.3, 1.0, Goal::Minimize)],
            vec![cmp(0.6, 0.5, Goal::Maximize)],
        ])
        .unwrap();
        assert!((d - 5.0).abs() < 1e-9, "{d}");
    }

    #[test]
    fn delta_m_refuses_what_it_cannot_compute() {
        assert!(delta_m(&[]).is_err());
        assert!(delta_m(&[vec![]]).is_err());
        assert!(delta_m_single_metric(&[cmp(0.5, 0.0, Goal::Maximize)]).is_err());
        assert!(delta_m_single_metric(&[cmp(f64::NAN, 0.5, Goal::Maximize)]).is_err());
    }
}
