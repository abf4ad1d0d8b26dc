//! The data-size sweep: every contender (a pipeline, an end-to-end network, an intermediate
//! design) is trained at each training-set size `N` over the same seeds, and the learning
//! curves and the crossover size of any two contenders are estimated with their uncertainty.
//!
//! **Contenders** implement [`Contender`] (or are closures wrapped by [`contender`]): given
//! `N` and a seed, train from scratch and return one test metric. Seed `s` must decide the
//! same training subset for every contender, so that the comparison is paired (their noise
//! partly cancels). To resume an interrupted sweep, let the closure go through
//! `core_tensor::runs::RunStore::run_or_load`.
//!
//! **Crossover** ([`crossover`]). For contenders `a` and `b` let the *advantage* of `a` at
//! size `N` and seed `s` be `d_s(N) = a − b` when higher is better (accuracy) and `b − a`
//! when lower is (MAE), so that `d > 0` means `a` is better. On the mean advantage over seeds,
//! `m(N)`, a crossover is a sign change between consecutive sizes, located by linear
//! interpolation in `log N` (learning curves are close to linear in `log N`). If `m` changes
//! sign more than once (noise around a tie), the estimate is the **last** change, after which
//! the same contender leads up to the largest size: the size beyond which the winner at large
//! `N` wins; every change is listed in [`Crossover::crossings`]. No change of sign is "no
//! crossover in range", with the contender that leads throughout.
//!
//! **Uncertainty**, two ways, both reported:
//! - a **seed bootstrap**: `bootstrap` resamples of the seeds with replacement (whole per-seed
//!   curves, so pairing and the correlation across sizes are kept), each giving its own last
//!   crossing; the 95% interval is the 2.5% and 97.5% quantiles of `log N*` among resamples
//!   whose last crossing goes the same way as the estimate, and
//!   [`Crossover::agreeing_share`] is the share of resamples that have one. With few seeds
//!   (3) a bootstrap only sees 10 distinct resamples: read its interval as rough, and trust
//!   the second way as much;
//! - the **undecided sizes**: the `N` at which the paired t interval of `d` contains zero
//!   ([`Crossover::undecided`]); a crossover lies in or next to that range.

use core_tensor::data::splitmix64;
use core_tensor::train::Goal;
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use transferlab_report::stats::{Summary, paired_difference, summarize, summarize_proportion};
use transferlab_report::{Cell, Point, Series, Table};

/// Something the sweep trains and scores.
pub trait Contender {
    /// Name in tables and legends.
    fn name(&self) -> &str;
    /// Trains from scratch on `n` examples chosen by `seed` and returns the test metric.
    fn run(&mut self, n: usize, seed: u64) -> Result<f64>;
}

/// A [`Contender`] from a closure; see [`contender`].
pub struct FnContender<F> {
    name: String,
    f: F,
}

impl<F> std::fmt::Debug for FnContender<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnContender")
            .field("name", &self.name)
            .finish()
    }
}

impl<F: FnMut(usize, u64) -> Result<f64>> Contender for FnContender<F> {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, n: usize, seed: u64) -> Result<f64> {
        (self.f)(n, seed)
    }
}

/// Wraps `f(n, seed) -> metric` as a boxed [`Contender`] named `name`.
pub fn contender<'a>(
    name: &str,
    f: impl FnMut(usize, u64) -> Result<f64> + 'a,
) -> Box<dyn Contender + 'a> {
    Box::new(FnContender {
        name: name.to_string(),
        f,
    })
}

/// Sizes, seeds and the metric's direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepPlan {
    /// Training-set sizes, increasing.
    pub sizes: Vec<usize>,
    /// Seeds, shared by every contender.
    pub seeds: Vec<u64>,
    /// Whether a larger metric is better (accuracy) or a smaller one (MAE).
    pub goal: Goal,
}

impl SweepPlan {
    /// Checks the plan, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.sizes.is_empty()
            || self.sizes.windows(2).any(|w| w[0] >= w[1])
            || self.sizes[0] == 0
        {
            return Err(Error::InvalidArgument(
                "sweep.sizes must be positive and strictly increasing".into(),
            ));
        }
        if self.seeds.is_empty() {
            return Err(Error::InvalidArgument(
                "sweep.seeds must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// One contender's results: `scores[i][j]` at `sizes[i]` and `seeds[j]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The contender's name.
    pub name: String,
    /// Metric per size (outer) and seed (inner).
    pub scores: Vec<Vec<f64>>,
}

/// What [`run_sweep`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// The plan.
    pub plan: SweepPlan,
    /// One curve per contender, in the order given.
    pub curves: Vec<Curve>,
    /// The number of test items each score is a proportion of, when the scores are proportions
    /// (accuracies, exact-match rates): the learning curves then have intervals inside [0, 1]
    /// ([`transferlab_report::stats::summarize_proportion`]); `None` for any other metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proportion_of: Option<usize>,
}

/// Runs every contender at every size and seed (size, then seed, then contender).
pub fn run_sweep(
    contenders: &mut [Box<dyn Contender + '_>],
    plan: &SweepPlan,
) -> Result<SweepResult> {
    plan.validate()?;
    let mut curves: Vec<Curve> = contenders
        .iter()
        .map(|c| Curve {
            name: c.name().to_string(),
            scores: vec![Vec::with_capacity(plan.seeds.len()); plan.sizes.len()],
        })
        .collect();
    for (i, &n) in plan.sizes.iter().enumerate() {
        for &seed in &plan.seeds {
            for (c, curve) in contenders.iter_mut().zip(&mut curves) {
                let score = c.run(n, seed)?;
                if !score.is_finite() {
                    return Err(Error::InvalidArgument(format!(
                        "contender {} returned {score} at N = {n}, seed {seed}",
                        curve.name
                    )));
                }
                tracing::info!(contender = %curve.name, n, seed, score, "sweep run");
                curve.scores[i].push(score);
            }
        }
    }
    Ok(SweepResult {
        plan: plan.clone(),
        curves,
        proportion_of: None,
    })
}

impl SweepResult {
    /// The curve named `name`.
    pub fn curve(&self, name: &str) -> Result<&Curve> {
        self.curves.iter().find(|c| c.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.curves.iter().map(|c| c.name.as_str()).collect();
            Error::InvalidArgument(format!("no contender {name:?}; contenders: {names:?}"))
        })
    }

    /// The same result with its scores read as proportions of `test_size` items (see
    /// [`SweepResult::proportion_of`]).
    pub fn proportions_of(mut self, test_size: usize) -> Self {
        self.proportion_of = Some(test_size);
        self
    }

    /// Mean and 95% interval over seeds at each size (a proportion's interval, inside [0, 1],
    /// when [`SweepResult::proportion_of`] is set).
    pub fn learning_curve(&self, name: &str) -> Result<Vec<Summary>> {
        self.curve(name)?
            .scores
            .iter()
            .map(|s| match self.proportion_of {
                Some(n) => Ok(summarize_proportion(s, n)?),
                None => Ok(summarize(s)?),
            })
            .collect()
    }

    /// The learning curves as plot series (x = N).
    pub fn series(&self) -> Result<Vec<Series>> {
        self.curves
            .iter()
            .map(|c| {
                Ok(Series {
                    name: c.name.clone(),
                    points: self
                        .plan
                        .sizes
                        .iter()
                        .zip(self.learning_curve(&c.name)?)
                        .map(|(&n, y)| Point { x: n as f64, y })
                        .collect(),
                })
            })
            .collect()
    }

    /// A table: one row per N, one column per contender (`percent`: ×100, for accuracies).
    pub fn table(&self, name: &str, percent: bool) -> Result<Table> {
        let mut columns = vec!["N".to_string()];
        columns.extend(self.curves.iter().map(|c| c.name.clone()));
        let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
        let mut t = Table::new(name, &cols);
        let curves: Vec<Vec<Summary>> = self
            .curves
            .iter()
            .map(|c| self.learning_curve(&c.name))
            .collect::<Result<_>>()?;
        for (i, &n) in self.plan.sizes.iter().enumerate() {
            let mut row = vec![Cell::int(n as i64)];
            row.extend(curves.iter().map(|c| {
                if percent {
                    Cell::pct(c[i])
                } else {
                    Cell::stat(c[i])
                }
            }));
            t.push(row);
        }
        Ok(t)
    }

    /// The crossover of contenders `a` and `b` (see the module documentation).
    pub fn crossover(&self, a: &str, b: &str, cfg: &CrossoverConfig) -> Result<Crossover> {
        crossover(
            &self.plan.sizes,
            &self.curve(a)?.scores,
            &self.curve(b)?.scores,
            self.plan.goal,
            cfg,
        )
    }
}

/// Settings of the crossover estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossoverConfig {
    /// Bootstrap resamples of the seeds (e.g. 2000; 0 for none).
    pub bootstrap: usize,
    /// Seed of the resampling.
    pub seed: u64,
}

/// One sign change of the mean advantage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Crossing {
    /// Interpolated size (in log N) where the mean advantage is zero.
    pub n: f64,
    /// True when `a` leads after it (the advantage goes from − to +).
    pub a_overtakes: bool,
}

/// Which contender leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leader {
    /// The first contender, `a`.
    A,
    /// The second, `b`.
    B,
    /// Neither: the mean advantage is exactly zero everywhere.
    Tie,
}

/// The crossover estimate of two contenders; see the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    /// The last crossing of the mean advantage, or `None`: no crossover in range.
    pub estimate: Option<Crossing>,
    /// Every crossing of the mean advantage, by increasing N.
    pub crossings: Vec<Crossing>,
    /// Who leads at the largest size (throughout, when there is no crossover).
    pub leader_at_largest: Leader,
    /// 95% bootstrap interval of the crossover size, from the resamples whose last crossing
    /// goes the same way as the estimate; `None` without an estimate or resamples.
    pub interval: Option<(f64, f64)>,
    /// Share of bootstrap resamples with a last crossing in the same direction as the estimate
    /// (with no estimate: the share with any crossing).
    pub agreeing_share: Option<f64>,
    /// The paired advantage of `a` over `b` at each size (positive: `a` better).
    pub advantage: Vec<Summary>,
    /// The sizes at which the 95% interval of the advantage contains zero.
    pub undecided: Vec<usize>,
}

/// The advantage of `a` over `b` for one seed set: mean over `seeds` at each size.
fn mean_advantage(d: &[Vec<f64>], seeds: &[usize]) -> Vec<f64> {
    d.iter()
        .map(|row| seeds.iter().map(|&j| row[j]).sum::<f64>() / seeds.len() as f64)
        .collect()
}

/// Every sign change of `m` over `sizes`, interpolated in log N.
fn crossings(sizes: &[usize], m: &[f64]) -> Vec<Crossing> {
    let mut out = Vec::new();
    let mut last: Option<(usize, f64)> = None; // last nonzero point
    for (i, &v) in m.iter().enumerate() {
        if v == 0.0 {
            continue;
        }
        if let Some((k, u)) = last
            && (u > 0.0) != (v > 0.0)
        {
            let ln = |j: usize| (sizes[j] as f64).ln();
            let at = if i == k + 1 {
                let t = u / (u - v);
                ln(k) + t * (ln(i) - ln(k))
            } else {
                // Exact zeros in between: the crossing is at them (their mean log N).
                (k + 1..i).map(ln).sum::<f64>() / (i - k - 1) as f64
            };
            out.push(Crossing {
                n: at.exp(),
                a_overtakes: v > 0.0,
            });
        }
        last = Some((i, v));
    }
    out
}

/// The crossover of `a` and `b` (scores `[size][seed]`, the same seeds in the same order);
/// see the module documentation.
pub fn crossover(
    sizes: &[usize],
    a: &[Vec<f64>],
    b: &[Vec<f64>],
    goal: Goal,
    cfg: &CrossoverConfig,
) -> Result<Crossover> {
    if a.len() != sizes.len() || b.len() != sizes.len() || sizes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "crossover needs one row of scores per size ({}), got {} and {}",
            sizes.len(),
            a.len(),
            b.len()
        )));
    }
    let seeds = a[0].len();
    if seeds == 0 || a.iter().chain(b).any(|r| r.len() != seeds) {
        return Err(Error::InvalidArgument(
            "crossover needs the same, non-zero number of seeds at every size for both".into(),
        ));
    }
    let sign = match goal {
        Goal::Maximize => 1.0,
        Goal::Minimize => -1.0,
    };
    let d: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(ra, rb)| ra.iter().zip(rb).map(|(x, y)| sign * (x - y)).collect())
        .collect();
    let all: Vec<usize> = (0..seeds).collect();
    let m = mean_advantage(&d, &all);
    let found = crossings(sizes, &m);
    let estimate = found.last().copied();
    let last = *m.last().unwrap();
    let leader_at_largest = if last > 0.0 {
        Leader::A
    } else if last < 0.0 {
        Leader::B
    } else {
        Leader::Tie
    };
    let zeros = vec![0.0; seeds];
    let advantage: Vec<Summary> = d
        .iter()
        .map(|row| Ok(paired_difference(row, &zeros)?))
        .collect::<Result<_>>()?;
    let undecided = sizes
        .iter()
        .zip(&advantage)
        .filter(|(_, s)| !s.excludes_zero())
        .map(|(&n, _)| n)
        .collect();

    let (mut interval, mut agreeing_share) = (None, None);
    if cfg.bootstrap > 0 && seeds > 1 {
        let mut logs = Vec::new();
        let mut agree = 0usize;
        for r in 0..cfg.bootstrap as u64 {
            let pick: Vec<usize> = (0..seeds as u64)
                .map(|j| {
                    (splitmix64(cfg.seed ^ splitmix64(r * 1_000_003 + j)) % seeds as u64) as usize
                })
                .collect();
            let last = crossings(sizes, &mean_advantage(&d, &pick)).last().copied();
            let agrees = match (last, estimate) {
                (Some(c), Some(e)) => c.a_overtakes == e.a_overtakes,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if agrees {
                agree += 1;
                if let Some(c) = last {
                    logs.push(c.n.ln());
                }
            }
        }
        agreeing_share = Some(agree as f64 / cfg.bootstrap as f64);
        if estimate.is_some() && !logs.is_empty() {
            logs.sort_by(f64::total_cmp);
            let q = |p: f64| {
                logs[((p * (logs.len() - 1) as f64).round() as usize).min(logs.len() - 1)].exp()
            };
            interval = Some((q(0.025), q(0.975)));
        }
    }
    Ok(Crossover {
        estimate,
        crossings: found,
        leader_at_largest,
        interval,
        agreeing_share,
        advantage,
        undecided,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [usize; 6] = [10, 20, 50, 100, 200, 500];

    /// Accuracy-like curves `base + slope · ln N` plus a small seeded jitter.
    fn curve(base: f64, slope: f64, seeds: usize, jitter: f64, salt: u64) -> Vec<Vec<f64>> {
        SIZES
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                (0..seeds)
                    .map(|j| {
                        let u = splitmix64(salt ^ ((i * 100 + j) as u64)) as f64 / u64::MAX as f64;
                        base + slope * (n as f64).ln() + jitter * (2.0 * u - 1.0)
                    })
                    .collect()
            })
            .collect()
    }

    fn cfg() -> CrossoverConfig {
        CrossoverConfig {
            bootstrap: 500,
            seed: 1,
        }
    }

    #[test]
    fn a_known_crossover_is_found_with_an_interval_around_it() {
        // Pipeline 0.6 + 0.05 ln N, end-to-end 0.3 + 0.12 ln N: equal at ln N = 0.3 / 0.07.
        let truth = (0.3f64 / 0.07).exp(); // ≈ 72.7
        let pipe = curve(0.6, 0.05, 5, 0.01, 1);
        let e2e = curve(0.3, 0.12, 5, 0.01, 2);
        let c = crossover(&SIZES, &e2e, &pipe, Goal::Maximize, &cfg()).unwrap();
        let est = c.estimate.unwrap();
        assert!(est.a_overtakes);
        assert!((est.n / truth - 1.0).abs() < 0.1, "{} vs {truth}", est.n);
        let (lo, hi) = c.interval.unwrap();
        assert!(
            lo <= truth && truth <= hi && lo > 20.0 && hi < 200.0,
            "[{lo}, {hi}]"
        );
        assert!(c.agreeing_share.unwrap() > 0.95);
        assert_eq!(c.leader_at_largest, Leader::A);
        // Only around the crossing is the difference undecided.
        assert!(
            c.undecided.iter().all(|&n| (50..=100).contains(&n)),
            "{:?}",
            c.undecided
        );
        // Swapping the contenders flips the direction, not the place.
        let s = crossover(&SIZES, &pipe, &e2e, Goal::Maximize, &cfg()).unwrap();
        assert!(!s.estimate.unwrap().a_overtakes);
        assert!((s.estimate.unwrap().n - est.n).abs() < 1e-9);
    }

    #[test]
    fn lower_is_better_flips_the_sign() {
        // MAE-like: the curves of the accuracy test, negated.
        let neg = |c: Vec<Vec<f64>>| {
            c.into_iter()
                .map(|r| r.into_iter().map(|x| -x).collect())
                .collect::<Vec<_>>()
        };
        let (pipe, e2e) = (
            neg(curve(0.6, 0.05, 3, 0.0, 1)),
            neg(curve(0.3, 0.12, 3, 0.0, 2)),
        );
        let c = crossover(&SIZES, &e2e, &pipe, Goal::Minimize, &cfg()).unwrap();
        let est = c.estimate.unwrap();
        assert!(est.a_overtakes);
        assert!(
            (est.n / (0.3f64 / 0.07).exp() - 1.0).abs() < 1e-9,
            "exact without jitter"
        );
    }

    #[test]
    fn no_crossover_in_range_names_the_leader() {
        let pipe = curve(0.6, 0.05, 4, 0.01, 1);
        let e2e = curve(0.1, 0.05, 4, 0.01, 2);
        let c = crossover(&SIZES, &e2e, &pipe, Goal::Maximize, &cfg()).unwrap();
        assert_eq!(c.estimate, None);
        assert!(c.crossings.is_empty() && c.interval.is_none());
        assert_eq!(c.leader_at_largest, Leader::B);
        assert_eq!(c.agreeing_share, Some(0.0));
        assert!(c.undecided.is_empty());
    }

    #[test]
    fn the_last_of_several_crossings_is_the_estimate() {
        let m = [0.1, -0.1, 0.1, 0.2, 0.2, 0.3];
        let found = crossings(&SIZES, &m);
        assert_eq!(found.len(), 2);
        assert!(found[1].a_overtakes && found[1].n > 20.0 && found[1].n < 50.0);
        // A zero at a size is the crossing itself.
        let found = crossings(&SIZES, &[-0.1, 0.0, 0.1, 0.1, 0.1, 0.1]);
        assert_eq!(found.len(), 1);
        assert!((found[0].n - 20.0).abs() < 1e-9);
    }

    #[test]
    fn the_sweep_runs_every_contender_at_every_size_and_seed() {
        let plan = SweepPlan {
            sizes: vec![10, 100, 1000],
            seeds: vec![0, 1, 2],
            goal: Goal::Maximize,
        };
        let mut calls = Vec::new();
        let result = {
            let mut cs = vec![
                contender("pipeline", |n, s| {
                    Ok(0.5 + 0.01 * (n as f64).ln() + 0.001 * s as f64)
                }),
                contender("e2e", |n, s| {
                    calls.push((n, s));
                    Ok(0.2 + 0.1 * (n as f64).ln())
                }),
            ];
            run_sweep(&mut cs, &plan).unwrap()
        };
        assert_eq!(calls.len(), 9);
        assert_eq!(result.curve("e2e").unwrap().scores.len(), 3);
        let c = result.crossover("e2e", "pipeline", &cfg()).unwrap();
        assert!(c.estimate.is_some());
        let t = result.table("accuracy", true).unwrap().markdown();
        assert!(t.contains("| N | pipeline | e2e |"), "{t}");
        assert_eq!(result.series().unwrap()[1].points.len(), 3);
        assert!(result.curve("cnn").is_err());
        let mut bad = vec![contender("nan", |_, _| Ok(f64::NAN))];
        assert!(run_sweep(&mut bad, &plan).is_err());
    }
}
