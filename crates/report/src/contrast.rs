//! Contrasts declared before the runs, and the one place their decisions are made.
//!
//! An experiment does not write verdict logic. It declares, for each claim it tests, the
//! [`Contrast`]s that decide it: which arms are compared (result keys, paired by seed), of
//! which [`Kind`], with which margin δ ([`Margin`]: the minimal effect of interest, with its
//! justification written beside it). [`Contrast::evaluate`] reads the per-seed results and
//! returns a [`ContrastResult`] whose [`Outcome`] follows from the kind's rule below, tested
//! once here for every experiment.
//!
//! Every rule reads a two-sided 95% Student t interval `[lo, hi]` of a paired difference,
//! i.e. two one-sided tests at 2.5% (one interval level across the report):
//!
//! | kind | the claim | supported | contradicted (the opposite shown) | no effect worth having |
//! |---|---|---|---|---|
//! | superiority | the effect is positive | `lo > 0` (or `lo > δ` with [`Kind::SuperiorityByMargin`]) | `hi < 0` | `−δ < lo` and `hi < δ` |
//! | no meaningful gain | no gain worth having; harm allowed | `hi < δ` | `lo > δ` | — |
//! | equivalence | no effect either way | `−δ < lo` and `hi < δ` | `lo > δ` or `hi < −δ` | — |
//! | non-inferiority | as good or better | `lo > −δ` | `hi < −δ` | — |
//! | trend | the gain shrinks as N grows | `lo > 0` on gain(small) − gain(large) per seed | `hi < 0` | `−δ < lo` and `hi < δ` |
//!
//! Composite contrasts: *all of k* ([`Test::AllOf`], and a *crossover*, built by
//! [`Contrast::crossover`]) is supported when every component is, each at its own 95% level
//! (an intersection–union test needs no correction), contradicted when any component is;
//! *any of k* ([`Test::AnyOf`]) is supported when Holm's procedure over the components'
//! one-sided p-values rejects at least one at family-wise 2.5% — its components' intervals are
//! shown at `1 − 0.05/k` — and contradicted when every component is.
//!
//! A correlation contrast ([`Quantity::Spearman`]) is decided by its exact permutation
//! p-value over the units (sources) and shown with a Fisher-z interval
//! ([`stats::CORRELATION_INTERVAL`]); its unit of replication is the unit, not the seed.
//!
//! ```
//! use transferlab_report::contrast::{Contrast, Kind, Margin, Outcome, Unit};
//! use transferlab_report::stats::Results;
//! let mut r = Results::default();
//! for (ft, sc) in [(0.91, 0.88), (0.93, 0.90), (0.92, 0.90)] {
//!     r.push("fine_tune", ft);
//!     r.push("scratch", sc);
//! }
//! let c = Contrast::paired(
//!     "gain", &["T-1"], "fine_tune − scratch", Unit::accuracy_points(),
//!     Kind::Superiority, "fine_tune", "scratch",
//!     Margin::new(0.02, "two accuracy points: the smallest gain worth a pre-training run"),
//! );
//! let res = c.evaluate(&r)?;
//! assert_eq!(res.outcome, Outcome::Supported);
//! # Ok::<(), transferlab_report::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::stats::{
    self, Results, SeedsNeeded, Summary, seeds_for_power, summarize_at, t_cdf, t_test_power,
};
use crate::{Error, Result};

/// The family-wise one-sided error rate of every decision (two-sided 95% intervals).
pub const ALPHA: f64 = 0.025;

/// How a contrast came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The claim's hypothesis is shown at one-sided 2.5%.
    Supported,
    /// Its opposite is shown at one-sided 2.5%.
    Contradicted,
    /// The interval lies inside ±δ: whatever the effect, it is smaller than the minimal effect
    /// of interest (for a claim of an effect).
    NoEffectWorthHaving,
    /// The interval decides nothing.
    Inconclusive,
}

impl Outcome {
    /// In words.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Supported => "supported",
            Outcome::Contradicted => "contradicted",
            Outcome::NoEffectWorthHaving => "no effect worth having",
            Outcome::Inconclusive => "inconclusive",
        }
    }

    /// As a CSS class name.
    pub fn css_class(self) -> &'static str {
        match self {
            Outcome::Supported => "supported",
            Outcome::Contradicted => "not-supported",
            Outcome::NoEffectWorthHaving => "no-effect",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

/// The kind of a single contrast: which hypothesis it tests about one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The quantity is positive.
    Superiority,
    /// The quantity exceeds the margin δ.
    SuperiorityByMargin,
    /// The quantity is below +δ (no gain worth having; any harm allowed).
    NoMeaningfulGain,
    /// The quantity lies inside ±δ.
    Equivalence,
    /// The quantity is above −δ (as good or better).
    NonInferiority,
    /// A difference of gains (small N minus large N) is positive: the gain shrinks.
    Trend,
}

impl Kind {
    /// In words.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Superiority => "superiority",
            Kind::SuperiorityByMargin => "superiority by a margin",
            Kind::NoMeaningfulGain => "no meaningful gain",
            Kind::Equivalence => "equivalence",
            Kind::NonInferiority => "non-inferiority",
            Kind::Trend => "trend",
        }
    }

    /// The decision rule in words.
    pub fn rule(self) -> &'static str {
        match self {
            Kind::Superiority => {
                "supported if the 95% CI lies above 0; contradicted if below 0; no effect worth \
                 having if inside ±δ"
            }
            Kind::SuperiorityByMargin => {
                "supported if the 95% CI lies above δ; contradicted if below 0; no effect worth \
                 having if inside ±δ"
            }
            Kind::NoMeaningfulGain => {
                "supported if the 95% CI's upper end is below +δ; contradicted if its lower end \
                 is above +δ"
            }
            Kind::Equivalence => {
                "supported if the 95% CI lies inside ±δ (two one-sided tests at 2.5%); \
                 contradicted if it lies wholly beyond +δ or −δ"
            }
            Kind::NonInferiority => {
                "supported if the 95% CI's lower end is above −δ; contradicted if its upper end \
                 is below −δ"
            }
            Kind::Trend => {
                "on gain(small N) − gain(large N) paired by seed: supported if the 95% CI lies \
                 above 0; contradicted if below 0; no effect worth having if inside ±δ"
            }
        }
    }

    /// One-sided p-value of the claim's hypothesis from a t statistic's parts.
    fn p_value(self, mean: f64, se: f64, df: f64, delta: f64) -> Result<f64> {
        // P(T ≥ t) for "quantity > bound", P(T ≤ t) for "quantity < bound".
        let above = |bound: f64| -> Result<f64> {
            if se == 0.0 {
                return Ok(if mean > bound { 0.0 } else { 1.0 });
            }
            Ok(1.0 - t_cdf((mean - bound) / se, df)?)
        };
        let below = |bound: f64| -> Result<f64> {
            if se == 0.0 {
                return Ok(if mean < bound { 0.0 } else { 1.0 });
            }
            t_cdf((mean - bound) / se, df)
        };
        match self {
            Kind::Superiority | Kind::Trend => above(0.0),
            Kind::SuperiorityByMargin => above(delta),
            Kind::NoMeaningfulGain => below(delta),
            Kind::NonInferiority => above(-delta),
            Kind::Equivalence => Ok(above(-delta)?.max(below(delta)?)),
        }
    }

    /// The outcome from an interval `[lo, hi]` at the decision level and the margin δ.
    fn decide(self, lo: f64, hi: f64, delta: f64) -> Outcome {
        let inside = -delta < lo && hi < delta;
        match self {
            Kind::Superiority | Kind::Trend | Kind::SuperiorityByMargin => {
                let bound = if self == Kind::SuperiorityByMargin {
                    delta
                } else {
                    0.0
                };
                if lo > bound {
                    Outcome::Supported
                } else if hi < 0.0 {
                    Outcome::Contradicted
                } else if inside {
                    Outcome::NoEffectWorthHaving
                } else {
                    Outcome::Inconclusive
                }
            }
            Kind::NoMeaningfulGain => {
                if hi < delta {
                    Outcome::Supported
                } else if lo > delta {
                    Outcome::Contradicted
                } else {
                    Outcome::Inconclusive
                }
            }
            Kind::Equivalence => {
                if inside {
                    Outcome::Supported
                } else if lo > delta || hi < -delta {
                    Outcome::Contradicted
                } else {
                    Outcome::Inconclusive
                }
            }
            Kind::NonInferiority => {
                if lo > -delta {
                    Outcome::Supported
                } else if hi < -delta {
                    Outcome::Contradicted
                } else {
                    Outcome::Inconclusive
                }
            }
        }
    }
}

/// The margin δ of a contrast — its minimal effect of interest — in the quantity's raw units
/// (a fraction for accuracy), with why it is that size: practical significance or the
/// literature, never the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Margin {
    /// δ, in the quantity's raw units (> 0).
    pub delta: f64,
    /// Why δ is this size.
    pub why: String,
}

impl Margin {
    /// A margin with its justification.
    pub fn new(delta: f64, why: impl Into<String>) -> Margin {
        Margin {
            delta,
            why: why.into(),
        }
    }
}

/// How a quantity is shown: its name and the factor from raw values (100 for a fraction
/// shown in points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// Name, e.g. `accuracy points`.
    pub name: String,
    /// Display factor.
    pub scale: f64,
}

impl Unit {
    /// A unit.
    pub fn new(name: impl Into<String>, scale: f64) -> Unit {
        Unit {
            name: name.into(),
            scale,
        }
    }

    /// Accuracy (a fraction) shown in points.
    pub fn accuracy_points() -> Unit {
        Unit::new("accuracy points", 100.0)
    }
}

/// What a contrast compares, by result key (see [`Results`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// `a − b`, paired by seed.
    Diff {
        /// The arm claimed better.
        a: String,
        /// The arm compared with.
        b: String,
    },
    /// `(a_small − b_small) − (a_large − b_large)`, paired by seed: how much larger the gain
    /// is at the small size than at the large one.
    DiffOfGains {
        /// The arm at the small size.
        a_small: String,
        /// Its baseline at the small size.
        b_small: String,
        /// The arm at the large size.
        a_large: String,
        /// Its baseline at the large size.
        b_large: String,
    },
    /// Spearman's ρ over units between the seed means of `x[i]` and of `y[i]`.
    Spearman {
        /// Keys of the predictor, one per unit.
        x: Vec<String>,
        /// Keys of the outcome, one per unit.
        y: Vec<String>,
    },
}

impl Quantity {
    /// Every result key it reads.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Quantity::Diff { a, b } => vec![a, b],
            Quantity::DiffOfGains {
                a_small,
                b_small,
                a_large,
                b_large,
            } => vec![a_small, b_small, a_large, b_large],
            Quantity::Spearman { x, y } => x.iter().chain(y).map(String::as_str).collect(),
        }
    }

    /// The per-seed values of a paired quantity; `None` for a correlation.
    fn per_seed(&self, r: &Results) -> Result<Option<Vec<f64>>> {
        let diff = |a: &str, b: &str| -> Result<Vec<f64>> {
            let (x, y) = (r.get(a)?, r.get(b)?);
            if x.len() != y.len() {
                return Err(Error::InvalidArgument(format!(
                    "{a} has {} seeds and {b} {}: a paired contrast needs the same seeds",
                    x.len(),
                    y.len()
                )));
            }
            Ok(x.iter().zip(y).map(|(p, q)| p - q).collect())
        };
        Ok(match self {
            Quantity::Diff { a, b } => Some(diff(a, b)?),
            Quantity::DiffOfGains {
                a_small,
                b_small,
                a_large,
                b_large,
            } => {
                let (s, l) = (diff(a_small, b_small)?, diff(a_large, b_large)?);
                if s.len() != l.len() {
                    return Err(Error::InvalidArgument(format!(
                        "the small size has {} seeds and the large {}: a trend needs the same \
                         seeds",
                        s.len(),
                        l.len()
                    )));
                }
                Some(s.iter().zip(&l).map(|(p, q)| p - q).collect())
            }
            Quantity::Spearman { .. } => None,
        })
    }
}

/// The test a contrast makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    /// One quantity, one kind.
    Single {
        /// The kind.
        kind: Kind,
        /// What is compared.
        quantity: Quantity,
    },
    /// Every component holds (intersection–union; each at its own level).
    AllOf(Vec<Contrast>),
    /// At least one component holds (Holm over the components).
    AnyOf(Vec<Contrast>),
}

/// A contrast declared before the runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contrast {
    /// Identifier, unique within its experiment (`mnist/unrelated`).
    pub id: String,
    /// The claims it decides (`T-3`); empty for a component of a composite.
    pub claims: Vec<String>,
    /// What it compares, in words.
    pub label: String,
    /// How the quantity is shown.
    pub unit: Unit,
    /// The test.
    pub test: Test,
    /// δ and its justification.
    pub margin: Margin,
    /// Set when the seeds do not replicate the thing compared (one source network shared by
    /// every seed): said beside the verdict, and no power is computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<String>,
}

impl Contrast {
    /// A single contrast of `a − b` paired by seed.
    #[allow(clippy::too_many_arguments)]
    pub fn paired(
        id: &str,
        claims: &[&str],
        label: impl Into<String>,
        unit: Unit,
        kind: Kind,
        a: &str,
        b: &str,
        margin: Margin,
    ) -> Contrast {
        Contrast {
            id: id.into(),
            claims: claims.iter().map(|c| c.to_string()).collect(),
            label: label.into(),
            unit,
            test: Test::Single {
                kind,
                quantity: Quantity::Diff {
                    a: a.into(),
                    b: b.into(),
                },
            },
            margin,
            replication: None,
        }
    }

    /// A trend: `(a_small − b_small) − (a_large − b_large)` paired by seed is positive.
    #[allow(clippy::too_many_arguments)]
    pub fn trend(
        id: &str,
        claims: &[&str],
        label: impl Into<String>,
        unit: Unit,
        small: (&str, &str),
        large: (&str, &str),
        margin: Margin,
    ) -> Contrast {
        Contrast {
            id: id.into(),
            claims: claims.iter().map(|c| c.to_string()).collect(),
            label: label.into(),
            unit,
            test: Test::Single {
                kind: Kind::Trend,
                quantity: Quantity::DiffOfGains {
                    a_small: small.0.into(),
                    b_small: small.1.into(),
                    a_large: large.0.into(),
                    b_large: large.1.into(),
                },
            },
            margin,
            replication: None,
        }
    }

    /// A crossover: at the small size `early` (`kind` — superiority, or non-inferiority for
    /// "as well or better") and at the large size `late` superiority, both needed.
    pub fn crossover(
        id: &str,
        claims: &[&str],
        label: impl Into<String>,
        early: Contrast,
        late: Contrast,
    ) -> Contrast {
        Contrast {
            id: id.into(),
            claims: claims.iter().map(|c| c.to_string()).collect(),
            label: label.into(),
            unit: early.unit.clone(),
            margin: early.margin.clone(),
            test: Test::AllOf(vec![early, late]),
            replication: None,
        }
    }

    /// A composite of components (their own `claims` are ignored).
    pub fn composite(
        id: &str,
        claims: &[&str],
        label: impl Into<String>,
        test: Test,
    ) -> Result<Contrast> {
        let parts = match &test {
            Test::AllOf(p) | Test::AnyOf(p) => p,
            Test::Single { .. } => {
                return Err(Error::InvalidArgument(
                    "a composite contrast needs AllOf or AnyOf".into(),
                ));
            }
        };
        let Some(first) = parts.first() else {
            return Err(Error::InvalidArgument(format!(
                "composite contrast {id} has no components"
            )));
        };
        Ok(Contrast {
            id: id.into(),
            claims: claims.iter().map(|c| c.to_string()).collect(),
            label: label.into(),
            unit: first.unit.clone(),
            margin: first.margin.clone(),
            test,
            replication: None,
        })
    }

    /// Marks the seeds as not replicating the compared thing (`why` in words).
    pub fn shared(mut self, why: impl Into<String>) -> Contrast {
        self.replication = Some(why.into());
        self
    }

    /// Every result key it reads.
    pub fn keys(&self) -> Vec<&str> {
        match &self.test {
            Test::Single { quantity, .. } => quantity.keys(),
            Test::AllOf(p) | Test::AnyOf(p) => p.iter().flat_map(|c| c.keys()).collect(),
        }
    }

    /// The rule in words.
    pub fn rule(&self) -> String {
        match &self.test {
            Test::Single { kind, .. } => kind.rule().to_string(),
            Test::AllOf(p) => format!(
                "all of {}: supported if every component is supported (each at its own 95% \
                 level); contradicted if any is contradicted; no effect worth having if any \
                 component is and none is contradicted",
                p.len()
            ),
            Test::AnyOf(p) => format!(
                "any of {k}: supported if Holm's procedure over the {k} one-sided p-values \
                 rejects at least one at family-wise 2.5% (intervals shown at {:.2}%); \
                 contradicted if every component is; no effect worth having if every component is",
                100.0 * (1.0 - 0.05 / p.len() as f64),
                k = p.len()
            ),
        }
    }

    /// Evaluates the contrast on per-seed results, with the seeds 80% power would need when
    /// it is inconclusive.
    pub fn evaluate(&self, r: &Results) -> Result<ContrastResult> {
        self.evaluate_at(r, ALPHA, true)
    }

    /// The outcome alone, by the same rule as [`Contrast::evaluate`] without the power
    /// calculation (what the noise audit simulates thousands of times).
    pub fn outcome(&self, r: &Results) -> Result<Outcome> {
        Ok(self.evaluate_at(r, ALPHA, false)?.outcome)
    }

    /// Evaluates at a one-sided level `alpha` (Holm's steps call components at `α/k`).
    fn evaluate_at(&self, r: &Results, alpha: f64, with_power: bool) -> Result<ContrastResult> {
        if !(self.margin.delta > 0.0 && self.margin.delta.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "contrast {}: margin δ = {} must be finite and positive",
                self.id, self.margin.delta
            )));
        }
        let level = 1.0 - 2.0 * alpha;
        let base = |estimate, p, outcome, components, power| ContrastResult {
            contrast: self.clone(),
            estimate,
            level,
            p_value: p,
            outcome,
            seeds_for_power: power,
            components,
        };
        match &self.test {
            Test::Single { kind, quantity } => {
                if let Quantity::Spearman { x, y } = quantity {
                    return self.evaluate_correlation(*kind, x, y, r, alpha, level);
                }
                let values = quantity.per_seed(r)?.expect("a paired quantity");
                let s = summarize_at(&values, level)?;
                let delta = self.margin.delta;
                let (outcome, p) = match (s.ci95, s.std) {
                    (Some((lo, hi)), Some(std)) => {
                        let se = std / (s.n as f64).sqrt();
                        let p = kind.p_value(s.mean, se, (s.n - 1) as f64, delta)?;
                        (kind.decide(lo, hi, delta), Some(p))
                    }
                    _ => (Outcome::Inconclusive, None),
                };
                let power = match (outcome, s.std) {
                    (Outcome::Inconclusive, Some(std))
                        if with_power && self.replication.is_none() =>
                    {
                        // Every kind's alternative at the minimal effect of interest lies δ
                        // from its null. Equivalence is two one-sided tests at a true 0
                        // (Bonferroni's bound on their joint power, conservative).
                        Some(if *kind == Kind::Equivalence {
                            equivalence_seeds(delta, std, s.n)?
                        } else {
                            seeds_for_power(delta, std, s.n)?
                        })
                    }
                    _ => None,
                };
                Ok(base(Some(s), p, outcome, Vec::new(), power))
            }
            Test::AllOf(parts) => {
                let comps = parts
                    .iter()
                    .map(|c| c.evaluate_at(r, alpha, with_power))
                    .collect::<Result<Vec<_>>>()?;
                let outcome = if comps.iter().any(|c| c.outcome == Outcome::Contradicted) {
                    Outcome::Contradicted
                } else if comps.iter().all(|c| c.outcome == Outcome::Supported) {
                    Outcome::Supported
                } else if comps
                    .iter()
                    .any(|c| c.outcome == Outcome::NoEffectWorthHaving)
                {
                    Outcome::NoEffectWorthHaving
                } else {
                    Outcome::Inconclusive
                };
                // The intersection–union test's p-value is the largest component p.
                let p = comps
                    .iter()
                    .map(|c| c.p_value)
                    .try_fold(0.0f64, |m, p| p.map(|p| m.max(p)));
                Ok(base(None, p, outcome, comps, None))
            }
            Test::AnyOf(parts) => {
                let k = parts.len();
                // Intervals and support at α/k; contradiction and "no effect" at α each.
                let adjusted = parts
                    .iter()
                    .map(|c| c.evaluate_at(r, alpha / k as f64, false))
                    .collect::<Result<Vec<_>>>()?;
                let plain = parts
                    .iter()
                    .map(|c| c.evaluate_at(r, alpha, with_power))
                    .collect::<Result<Vec<_>>>()?;
                let ps: Vec<Option<f64>> = plain.iter().map(|c| c.p_value).collect();
                let holm = holm(&ps);
                let supported = holm.iter().any(|&p| p.is_some_and(|p| p <= alpha));
                let outcome = if supported {
                    Outcome::Supported
                } else if plain.iter().all(|c| c.outcome == Outcome::Contradicted) {
                    Outcome::Contradicted
                } else if plain
                    .iter()
                    .all(|c| c.outcome == Outcome::NoEffectWorthHaving)
                {
                    Outcome::NoEffectWorthHaving
                } else {
                    Outcome::Inconclusive
                };
                let comps = adjusted
                    .into_iter()
                    .zip(holm)
                    .map(|(mut c, p)| {
                        c.p_value = p;
                        c
                    })
                    .collect();
                let p = ps
                    .iter()
                    .flatten()
                    .fold(None, |m: Option<f64>, &p| Some(m.map_or(p, |m| m.min(p))))
                    .map(|p| (p * k as f64).min(1.0));
                Ok(base(None, p, outcome, comps, None))
            }
        }
    }

    fn evaluate_correlation(
        &self,
        kind: Kind,
        x: &[String],
        y: &[String],
        r: &Results,
        alpha: f64,
        level: f64,
    ) -> Result<ContrastResult> {
        let means = |keys: &[String]| -> Result<Vec<f64>> {
            keys.iter()
                .map(|k| Ok(stats::summarize(r.get(k)?)?.mean))
                .collect()
        };
        let c = stats::spearman(&means(x)?, &means(y)?)?;
        let delta = self.margin.delta;
        let p = match kind {
            Kind::Superiority => c.p_greater,
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "contrast {}: a rank correlation is tested for superiority (ρ > 0) only",
                    self.id
                )));
            }
        };
        let outcome = if p <= alpha {
            Outcome::Supported
        } else {
            match c.ci95 {
                Some((_, hi)) if hi < 0.0 => Outcome::Contradicted,
                Some((lo, hi)) if -delta < lo && hi < delta => Outcome::NoEffectWorthHaving,
                _ => Outcome::Inconclusive,
            }
        };
        Ok(ContrastResult {
            contrast: self.clone(),
            estimate: Some(c.summary()),
            level,
            p_value: Some(p),
            outcome,
            seeds_for_power: None,
            components: Vec::new(),
        })
    }
}

/// Seeds for 80% power of two one-sided tests at a true effect of 0 and bounds ±δ.
fn equivalence_seeds(delta: f64, s: f64, n: usize) -> Result<SeedsNeeded> {
    let sigma = stats::sigma_upper80(s, n)?;
    for m in 2..=stats::MAX_POWER_SEEDS {
        let one = t_test_power(delta, sigma, m)?;
        if 2.0 * one - 1.0 >= 0.8 {
            return Ok(SeedsNeeded::Seeds(m));
        }
    }
    Ok(SeedsNeeded::MoreThan(stats::MAX_POWER_SEEDS))
}

/// Holm's step-down adjusted p-values (a missing p stays missing and counts in `k`).
pub fn holm(ps: &[Option<f64>]) -> Vec<Option<f64>> {
    let k = ps.len();
    let mut order: Vec<usize> = (0..k).filter(|&i| ps[i].is_some()).collect();
    order.sort_by(|&a, &b| ps[a].unwrap().total_cmp(&ps[b].unwrap()));
    let mut out = vec![None; k];
    let mut running = 0.0f64;
    for (step, &i) in order.iter().enumerate() {
        let adj = ((k - step) as f64 * ps[i].unwrap()).min(1.0);
        running = running.max(adj);
        out[i] = Some(running);
    }
    out
}

/// A contrast evaluated: its declaration, its estimate and how it came out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContrastResult {
    /// What was declared.
    pub contrast: Contrast,
    /// The quantity over seeds (or units) with its interval at `level`; `None` for a
    /// composite (see `components`).
    pub estimate: Option<Summary>,
    /// The two-sided level of `estimate`'s interval (0.95, or `1 − 0.05/k` inside "any of k").
    pub level: f64,
    /// The one-sided p-value of the claim's hypothesis (Holm-adjusted inside "any of k").
    pub p_value: Option<f64>,
    /// The outcome by the kind's rule.
    pub outcome: Outcome,
    /// When inconclusive: the seeds that would give 80% power at δ (σ at its upper 80% bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds_for_power: Option<SeedsNeeded>,
    /// A composite's components.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ContrastResult>,
}

impl ContrastResult {
    /// The estimate shown in the contrast's unit (`2.1 [0.4, 3.8]`), or the components'.
    pub fn shown(&self) -> String {
        match &self.estimate {
            Some(s) => crate::format_summary(s, self.contrast.unit.scale),
            None => self
                .components
                .iter()
                .map(|c| format!("{}: {}", c.contrast.label, c.shown()))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }

    /// One line for a report: outcome, estimate, δ, rule, power.
    pub fn line(&self) -> String {
        let c = &self.contrast;
        let mut s = format!(
            "{} — {} ({}, {}): {} {}; δ = {} {} ({})",
            c.id,
            c.label,
            match &c.test {
                Test::Single { kind, .. } => kind.word().to_string(),
                Test::AllOf(p) => format!("all of {}", p.len()),
                Test::AnyOf(p) => format!("any of {}", p.len()),
            },
            self.outcome,
            self.shown(),
            c.unit.name,
            crate::fmt_scaled(c.margin.delta * c.unit.scale),
            c.unit.name,
            c.margin.why
        );
        if let Some(n) = self.seeds_for_power {
            s.push_str(&format!("; 80% power at δ needs {n}"));
        }
        if let Some(w) = &c.replication {
            s.push_str(&format!("; replication: {w}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(pairs: &[(&str, &[f64])]) -> Results {
        let mut r = Results::default();
        for (k, v) in pairs {
            for x in *v {
                r.push(*k, *x);
            }
        }
        r
    }

    fn single(kind: Kind, a: &[f64], b: &[f64], delta: f64) -> ContrastResult {
        let r = results(&[("a", a), ("b", b)]);
        Contrast::paired(
            "c",
            &["T-1"],
            "a − b",
            Unit::accuracy_points(),
            kind,
            "a",
            "b",
            Margin::new(delta, "test"),
        )
        .evaluate(&r)
        .unwrap()
    }

    // Differences d = a − b; b = 0 so a holds d. t(0.975, 4) = 2.776445.
    // [1, 2, 3, 4, 5]: mean 3, half-width 1.963 → CI [1.037, 4.963].
    const D: [f64; 5] = [1.0, 2.0, 3.0, 4.0, 5.0];
    const Z: [f64; 5] = [0.0; 5];

    fn shift(d: &[f64], by: f64) -> Vec<f64> {
        d.iter().map(|x| x + by).collect()
    }

    #[test]
    fn superiority() {
        assert_eq!(
            single(Kind::Superiority, &D, &Z, 1.0).outcome,
            Outcome::Supported
        );
        // CI [-4.963, -1.037]: below 0.
        let neg = shift(&D, -6.0);
        assert_eq!(
            single(Kind::Superiority, &neg, &Z, 1.0).outcome,
            Outcome::Contradicted
        );
        // CI [-1.963, 1.963] straddles 0: inside ±2 → no effect worth having; ±1.5 → inconclusive.
        let mid = shift(&D, -3.0);
        assert_eq!(
            single(Kind::Superiority, &mid, &Z, 2.0).outcome,
            Outcome::NoEffectWorthHaving
        );
        let r = single(Kind::Superiority, &mid, &Z, 1.5);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(r.seeds_for_power.is_some());
        // p-value: t = 3/(√2.5/√5) = 4.2426, df 4 → one-sided p = 0.0066178 (scipy t.sf).
        let p = single(Kind::Superiority, &D, &Z, 1.0).p_value.unwrap();
        assert!((p - 0.006_617_8).abs() < 1e-6, "{p}");
    }

    #[test]
    fn superiority_by_margin() {
        // CI [1.037, 4.963]: above δ = 1, not above δ = 1.1.
        assert_eq!(
            single(Kind::SuperiorityByMargin, &D, &Z, 1.0).outcome,
            Outcome::Supported
        );
        assert_eq!(
            single(Kind::SuperiorityByMargin, &D, &Z, 1.1).outcome,
            Outcome::Inconclusive
        );
    }

    #[test]
    fn no_meaningful_gain() {
        // CI [1.037, 4.963]: upper end below 5 → supported, not below 4.9.
        assert_eq!(
            single(Kind::NoMeaningfulGain, &D, &Z, 5.0).outcome,
            Outcome::Supported
        );
        assert_eq!(
            single(Kind::NoMeaningfulGain, &D, &Z, 4.9).outcome,
            Outcome::Inconclusive
        );
        // Lower end above δ = 1 → contradicted.
        assert_eq!(
            single(Kind::NoMeaningfulGain, &D, &Z, 1.0).outcome,
            Outcome::Contradicted
        );
        // Any harm is allowed: CI far below 0 is supported.
        let neg = shift(&D, -60.0);
        assert_eq!(
            single(Kind::NoMeaningfulGain, &neg, &Z, 1.0).outcome,
            Outcome::Supported
        );
    }

    #[test]
    fn equivalence() {
        let mid = shift(&D, -3.0); // CI [-1.963, 1.963]
        assert_eq!(
            single(Kind::Equivalence, &mid, &Z, 2.0).outcome,
            Outcome::Supported
        );
        assert_eq!(
            single(Kind::Equivalence, &mid, &Z, 1.9).outcome,
            Outcome::Inconclusive
        );
        assert_eq!(
            single(Kind::Equivalence, &D, &Z, 1.0).outcome,
            Outcome::Contradicted
        );
        let neg = shift(&D, -6.0); // [-4.963, -1.037]
        assert_eq!(
            single(Kind::Equivalence, &neg, &Z, 1.0).outcome,
            Outcome::Contradicted
        );
        // Harm beyond the margin is no equivalence.
        assert_eq!(
            single(Kind::Equivalence, &neg, &Z, 2.0).outcome,
            Outcome::Inconclusive
        );
    }

    #[test]
    fn non_inferiority() {
        let neg = shift(&D, -4.0); // [-2.963, 0.963]
        assert_eq!(
            single(Kind::NonInferiority, &neg, &Z, 3.0).outcome,
            Outcome::Supported
        );
        assert_eq!(
            single(Kind::NonInferiority, &neg, &Z, 2.9).outcome,
            Outcome::Inconclusive
        );
        let worse = shift(&D, -8.0); // [-6.963, -3.037]
        assert_eq!(
            single(Kind::NonInferiority, &worse, &Z, 3.0).outcome,
            Outcome::Contradicted
        );
    }

    #[test]
    fn one_seed_is_inconclusive_without_power() {
        let r = single(Kind::Superiority, &[5.0], &[0.0], 1.0);
        assert_eq!(r.outcome, Outcome::Inconclusive);
        assert!(r.p_value.is_none() && r.seeds_for_power.is_none());
    }

    #[test]
    fn trend_reads_the_paired_difference_of_gains() {
        // Gains at small N per seed: [5, 6, 7]; at large N: [1, 1.5, 2]: differences [4, 4.5, 5].
        let r = results(&[
            ("ft/5", &[0.55, 0.56, 0.57]),
            ("sc/5", &[0.50, 0.50, 0.50]),
            ("ft/100", &[0.91, 0.915, 0.92]),
            ("sc/100", &[0.90, 0.90, 0.90]),
        ]);
        let c = Contrast::trend(
            "shrinks",
            &["T-1"],
            "gain(5) − gain(100)",
            Unit::accuracy_points(),
            ("ft/5", "sc/5"),
            ("ft/100", "sc/100"),
            Margin::new(0.02, "test"),
        );
        let res = c.evaluate(&r).unwrap();
        assert_eq!(res.outcome, Outcome::Supported);
        let e = res.estimate.unwrap();
        assert!((e.mean - 0.045).abs() < 1e-12);
        // Equal gains at both sizes (a constant +3 gain): the same values give no trend.
        let flat = results(&[
            ("ft/5", &[0.53, 0.54, 0.52]),
            ("sc/5", &[0.50, 0.51, 0.49]),
            ("ft/100", &[0.93, 0.935, 0.92]),
            ("sc/100", &[0.90, 0.905, 0.89]),
        ]);
        assert_ne!(c.evaluate(&flat).unwrap().outcome, Outcome::Supported);
    }

    #[test]
    fn crossover_needs_both_ends() {
        let mk = |small: &[f64], large: &[f64]| {
            let z = [0.0; 4];
            let r = results(&[("e/s", small), ("p/s", &z), ("e/l", large), ("p/l", &z)]);
            let early = Contrast::paired(
                "early",
                &[],
                "pipeline − e2e at small N",
                Unit::accuracy_points(),
                Kind::NonInferiority,
                "p/s",
                "e/s",
                Margin::new(0.02, "test"),
            );
            let late = Contrast::paired(
                "late",
                &[],
                "e2e − pipeline at large N",
                Unit::accuracy_points(),
                Kind::Superiority,
                "e/l",
                "p/l",
                Margin::new(0.02, "test"),
            );
            Contrast::crossover("x", &["E-2"], "crossover", early, late)
                .evaluate(&r)
                .unwrap()
        };
        // e2e worse at small N, better at large N.
        let yes = mk(&[-0.1, -0.12, -0.11, -0.09], &[0.05, 0.06, 0.055, 0.045]);
        assert_eq!(yes.outcome, Outcome::Supported);
        assert_eq!(yes.components.len(), 2);
        // e2e better at large N but far better at small N too: pipeline inferior → contradicted.
        let no = mk(&[0.1, 0.12, 0.11, 0.09], &[0.05, 0.06, 0.055, 0.045]);
        assert_eq!(no.outcome, Outcome::Contradicted);
        // Large N undecided.
        let open = mk(&[-0.1, -0.12, -0.11, -0.09], &[0.05, -0.06, 0.055, -0.045]);
        assert_eq!(open.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn any_of_k_uses_holm() {
        // Four arms vs a baseline; one clearly better. Its unadjusted p is tiny, so Holm keeps it.
        let base = [0.0; 5];
        let strong = [3.0, 3.1, 2.9, 3.05, 2.95];
        let weak = [0.5, -0.4, 0.3, -0.2, 0.1];
        let r = results(&[("b", &base), ("s", &strong), ("w", &weak)]);
        let part = |id: &str, a: &str| {
            Contrast::paired(
                id,
                &[],
                id,
                Unit::new("points", 1.0),
                Kind::Superiority,
                a,
                "b",
                Margin::new(1.0, "test"),
            )
        };
        let c = Contrast::composite(
            "any",
            &["M-1"],
            "any",
            Test::AnyOf(vec![
                part("w1", "w"),
                part("s", "s"),
                part("w2", "w"),
                part("w3", "w"),
            ]),
        )
        .unwrap();
        let res = c.evaluate(&r).unwrap();
        assert_eq!(res.outcome, Outcome::Supported);
        // Components shown at 1 − 0.05/4.
        assert!((res.components[0].level - 0.9875).abs() < 1e-12);
        // One arm at p ≈ 0.02 alone: significant at 2.5% unadjusted, not after Holm over 4.
        let marginal = [1.0, 0.2, 1.4, 0.6, 0.9]; // mean 0.82, sd 0.449 → t = 4.08 → p ≈ 0.0075
        let r2 = results(&[("b", &base), ("m", &marginal), ("w", &weak)]);
        let one = part("m", "m").evaluate(&r2).unwrap();
        let p = one.p_value.unwrap();
        assert!(p < ALPHA, "{p}");
        let c2 = Contrast::composite(
            "any",
            &["M-1"],
            "any",
            Test::AnyOf(vec![
                part("m", "m"),
                part("w1", "w"),
                part("w2", "w"),
                part("w3", "w"),
            ]),
        )
        .unwrap();
        let res2 = c2.evaluate(&r2).unwrap();
        assert_eq!(res2.outcome == Outcome::Supported, 4.0 * p <= ALPHA);
    }

    #[test]
    fn holm_adjusts_step_down() {
        let h = holm(&[Some(0.01), Some(0.04), Some(0.03), None]);
        // k = 4: sorted 0.01·4 = 0.04, 0.03·3 = 0.09, 0.04·2 = 0.08 → max-accumulated 0.09.
        assert_eq!(h[0], Some(0.04));
        assert!((h[2].unwrap() - 0.09).abs() < 1e-12);
        assert!((h[1].unwrap() - 0.09).abs() < 1e-12);
        assert_eq!(h[3], None);
    }

    #[test]
    fn spearman_contrast_replicates_over_units() {
        let mut r = Results::default();
        // Seven sources: the score orders the accuracies perfectly.
        for i in 0..7 {
            for s in 0..3 {
                r.push(format!("score/{i}"), i as f64 + 0.01 * s as f64);
                r.push(format!("acc/{i}"), 0.5 + 0.05 * i as f64);
            }
        }
        let c = Contrast {
            id: "logme".into(),
            claims: vec!["X6".into()],
            label: "ρ(LogME, accuracy)".into(),
            unit: Unit::new("ρ", 1.0),
            test: Test::Single {
                kind: Kind::Superiority,
                quantity: Quantity::Spearman {
                    x: (0..7).map(|i| format!("score/{i}")).collect(),
                    y: (0..7).map(|i| format!("acc/{i}")).collect(),
                },
            },
            margin: Margin::new(0.3, "test"),
            replication: None,
        };
        let res = c.evaluate(&r).unwrap();
        assert_eq!(res.outcome, Outcome::Supported);
        // Exact p of a perfect order over 7 units: 1/7! = 1/5040.
        assert!((res.p_value.unwrap() - 1.0 / 5040.0).abs() < 1e-12);
        let (lo, hi) = res.estimate.unwrap().ci95.unwrap();
        assert!((-1.0..=1.0).contains(&lo) && (-1.0..=1.0).contains(&hi));
    }

    #[test]
    fn missing_keys_and_bad_margins_are_errors() {
        let r = results(&[("a", &[1.0, 2.0])]);
        let c = Contrast::paired(
            "c",
            &[],
            "a − b",
            Unit::accuracy_points(),
            Kind::Superiority,
            "a",
            "b",
            Margin::new(0.01, "x"),
        );
        assert!(c.evaluate(&r).is_err());
        let mut bad = c.clone();
        bad.margin.delta = 0.0;
        let r2 = results(&[("a", &[1.0, 2.0]), ("b", &[1.0, 2.0])]);
        assert!(bad.evaluate(&r2).is_err());
        let short = results(&[("a", &[1.0, 2.0]), ("b", &[1.0])]);
        assert!(c.evaluate(&short).is_err());
    }

    #[test]
    fn results_round_trip_through_json() {
        let res = single(Kind::Superiority, &D, &Z, 1.0);
        let json = serde_json::to_string(&res).unwrap();
        let back: ContrastResult = serde_json::from_str(&json).unwrap();
        assert_eq!(back.outcome, res.outcome);
        assert_eq!(back.contrast, res.contrast);
    }
}
