//! Learning-rate schedules: a factor applied to every group's base learning rate, per step.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How the learning rate changes with the optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The shape after warm-up.
    #[serde(default)]
    pub decay: Decay,
    /// Steps of linear warm-up from `1 / (warmup_steps + 1)` of the rate to the full rate.
    #[serde(default)]
    pub warmup_steps: u64,
}

/// The decay after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Decay {
    /// Constant rate.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` steps.
    Step {
        /// Steps between decays.
        every: u64,
        /// Factor per decay.
        gamma: f64,
    },
    /// Cosine from the full rate to `min_factor` of it over `total` steps (then flat).
    Cosine {
        /// Steps of the cosine (after warm-up).
        total: u64,
        /// Final factor.
        #[serde(default)]
        min_factor: f64,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            decay: Decay::Constant,
            warmup_steps: 0,
        }
    }
}

impl Schedule {
    /// Checks the parameters, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        match self.decay {
            Decay::Step { every: 0, .. } => Err(Error::InvalidArgument(
                "schedule.decay.every must be > 0".into(),
            )),
            Decay::Step { gamma, .. } if !(gamma > 0.0) => Err(Error::InvalidArgument(
                "schedule.decay.gamma must be > 0".into(),
            )),
            Decay::Cosine { total: 0, .. } => Err(Error::InvalidArgument(
                "schedule.decay.total must be > 0".into(),
            )),
            Decay::Cosine { min_factor, .. } if !(0.0..=1.0).contains(&min_factor) => Err(
                Error::InvalidArgument("schedule.decay.min_factor must be in [0, 1]".into()),
            ),
            _ => Ok(()),
        }
    }

    /// The factor for optimizer step `step` (0-based: the factor used by the first update).
    pub fn factor(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        let t = step - self.warmup_steps;
        match self.decay {
            Decay::Constant => 1.0,
            Decay::Step { every, gamma } => gamma.powi((t / every.max(1)) as i32),
            Decay::Cosine { total, min_factor } => {
                let progress = (t as f64 / total.max(1) as f64).min(1.0);
                min_factor
                    + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_step_decay() {
        let s = Schedule {
            decay: Decay::Step {
                every: 10,
                gamma: 0.1,
            },
            warmup_steps: 4,
        };
        let f: Vec<f64> = [0, 3, 4, 13, 14, 24].iter().map(|t| s.factor(*t)).collect();
        assert_eq!(f[0], 0.2);
        assert_eq!(f[1], 0.8);
        assert_eq!(f[2], 1.0);
        assert_eq!(f[3], 1.0);
        assert!((f[4] - 0.1).abs() < 1e-12);
        assert!((f[5] - 0.01).abs() < 1e-12);
    }

    #[test]
    fn cosine_runs_from_one_to_the_floor() {
        let s = Schedule {
            decay: Decay::Cosine {
                total: 100,
                min_factor: 0.1,
            },
            warmup_steps: 0,
        };
        assert_eq!(s.factor(0), 1.0);
        assert!((s.factor(50) - 0.55).abs() < 1e-12);
        assert!((s.factor(100) - 0.1).abs() < 1e-12);
        assert!((s.factor(500) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let s = Schedule {
            decay: Decay::Step {
                every: 0,
                gamma: 0.5,
            },
            warmup_steps: 0,
        };
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("schedule.decay.every")
        );
        let s: Schedule = toml::from_str("decay = { kind = \"cosine\", total = 10 }").unwrap();
        assert!(s.validate().is_ok());
    }
}
