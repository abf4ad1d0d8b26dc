//! What the experiments P1–P4 share: config loading and profiles, the training recipe with a
//! step budget, the run context (store, device, progress) that makes every (contender, N,
//! seed) point of a sweep a stored run, and the report pieces of a sweep (learning-curve
//! plots, crossover tables and sentences), and the keys under which a sweep's per-seed values
//! feed the experiments' declared contrasts ([`key`], [`file_sweep`]).
//!
//! **Resumable.** [`Ctx::run`] goes through [`Session::run`] with the key
//! `(experiment, resolved config of the point, seed)`; [`stored`] wraps a sweep contender so
//! that each of its points is such a run. Killing an experiment loses at most the run in
//! progress; running it again loads what finished.
//!
//! **Planned.** A sweep's runs are its plan — every (N, seed, contender) point of a
//! [`SweepPlan`], each with its key — and [`sweep`] executes it: unsharded, every point is
//! loaded or trained and the learning curves come back; under `--shard`, only the points whose
//! key falls in the shard's slice run, the others are left, and there is no result (a shard
//! writes no report). Runs outside sweeps do the same through [`Ctx::in_shard`].
//!
//! **Deterministic on the CPU.** Data come from seeded generators or seeded index draws;
//! network initialisation follows `tch::manual_seed` (process-wide), so contenders run one
//! after another, never in threads of one process.

use crate::driver::{About, Session};
use crate::runs::RunId;
use core_tensor::train::TrainConfig;
use core_tensor::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tch::Device;
use transferlab_report::contrast::{Contrast, Margin, Test, Unit};
use transferlab_report::stats::{Results, Summary};
use transferlab_report::{Cell as TableCell, ExperimentReport, Plot, Table};

use e2e_vs_pipeline::sweep::{
    Contender, Crossover, CrossoverConfig, Leader, SweepPlan, SweepResult, run_sweep,
};

pub use crate::driver::{RunOptions, load_toml, profile};

/// A training recipe whose epochs follow the data size: at least `min_steps` optimiser steps
/// (within `[train.epochs, max_epochs]` epochs), so small sets are not under-trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Optimiser, learning rate, batch size, least epochs, early stopping.
    pub train: TrainConfig,
    /// Least optimiser steps.
    pub min_steps: usize,
    /// Most epochs.
    pub max_epochs: usize,
}

impl Recipe {
    /// Checks the recipe; the error names `field`.
    pub fn validate(&self, field: &str) -> Result<()> {
        self.train.validate().map_err(|e| e.within(field))?;
        if self.max_epochs < self.train.epochs {
            return Err(Error::InvalidArgument(format!(
                "{field}.max_epochs must be >= {field}.train.epochs"
            )));
        }
        Ok(())
    }

    /// The training settings for `examples` training examples: the epochs of the step budget
    /// and an early-stopping patience of at least a quarter of `min_steps` in steps.
    pub fn resolve(&self, examples: usize) -> TrainConfig {
        self.train
            .with_step_budget(examples, self.min_steps, self.max_epochs)
    }
}

/// The validation examples drawn from the training side next to `n` training examples (per
/// class where the experiment counts per class): a fifth, at least 1, at most 100.
pub fn validation_size(n: usize) -> usize {
    (n / 5).clamp(1, 100)
}

/// An end-to-end experiment's [`Session`] (store, device, ledger of runs) with the dataset
/// checksums its runs depend on.
pub struct Ctx<'a> {
    session: Session<'a>,
    /// Where networks train.
    pub device: Device,
    inputs: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<'a> Ctx<'a> {
    /// A context on a new session with `opts`; `on_run(label, stored)` after each run.
    pub fn new(opts: &RunOptions, on_run: impl FnMut(&str, bool) + 'a) -> Result<Self> {
        let session = Session::new(opts, on_run)?;
        Ok(Ctx {
            device: session.device(),
            session,
            inputs: Default::default(),
        })
    }

    /// The session the runs go through.
    pub fn session(&self) -> &Session<'a> {
        &self.session
    }

    /// Declares the fixture datasets the runs from here on read: each is checked against the
    /// project's manifest now (a damaged file is refused before anything trains or is reused)
    /// and their checksums become part of every later run's key.
    pub fn reads(&self, datasets: &[&str]) -> Result<()> {
        let cache = crate::paths::cache_dir();
        *self.inputs.borrow_mut() = crate::paths::verified_inputs(&cache, datasets)?;
        Ok(())
    }

    /// The stored result of the run `(experiment, config, seed)`, or `f()` run and stored
    /// ([`Session::run`]). In a sharded store, only a run of this shard's slice may be run
    /// (see [`Ctx::in_shard`]); another is refused.
    pub fn run<T: Serialize + DeserializeOwned>(
        &self,
        experiment: &str,
        config: &impl Serialize,
        seed: u64,
        label: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.session
            .run(&self.id(experiment, config, seed)?, label, f)
    }

    fn id(&self, experiment: &str, config: &impl Serialize, seed: u64) -> Result<RunId> {
        RunId::new(experiment, config, seed, self.inputs.borrow().clone())
    }

    /// Whether the store runs only a shard's slice of the runs (then the experiment has no
    /// report).
    pub fn sharded(&self) -> bool {
        self.session.sharded()
    }

    /// Whether the run `(experiment, config, seed)` is this store's to run (always, unless
    /// sharded); a run that is not is counted as left to another shard under `label`.
    pub fn in_shard(
        &self,
        experiment: &str,
        config: &impl Serialize,
        seed: u64,
        label: &str,
    ) -> Result<bool> {
        Ok(self
            .session
            .in_shard(&self.id(experiment, config, seed)?.key(), label))
    }

    /// The report of a shard: what it ran, no verdicts, tables or plots.
    pub fn shard_report(
        &self,
        id: &str,
        title: &str,
        claims: &[&str],
        seeds: u64,
    ) -> ExperimentReport {
        self.report(id, title, claims, String::new(), seeds, &())
    }

    /// The skeleton of the report ([`Session::report`]); the experiment adds contrasts,
    /// tables, plots and notes.
    pub fn report(
        &self,
        id: &str,
        title: &str,
        claims: &[&str],
        description: String,
        seeds: u64,
        config: &impl Serialize,
    ) -> ExperimentReport {
        self.session
            .report(About { id, title, claims }, description, seeds, config)
    }
}

/// A sweep contender whose every point `(N, seed)` is a stored run; see [`stored`].
pub struct Stored<'c> {
    experiment: &'c str,
    label: &'c str,
    scope: &'c serde_json::Value,
    name: String,
    f: Box<dyn FnMut(usize, u64) -> Result<f64> + 'c>,
}

impl std::fmt::Debug for Stored<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("experiment", &self.experiment)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Stored<'_> {
    /// The run config of the point at `n` (its key with the seed).
    fn point(&self, n: usize) -> serde_json::Value {
        point_of(self.scope, &self.name, n)
    }

    fn line(&self, n: usize, seed: u64) -> String {
        line_of(self.label, &self.name, n, seed)
    }
}

impl Contender for Stored<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn run(&mut self, n: usize, seed: u64) -> Result<f64> {
        (self.f)(n, seed)
    }
}

/// The progress line of a sweep point.
fn line_of(label: &str, contender: &str, n: usize, seed: u64) -> String {
    format!("{label} {contender} N={n} seed {seed}")
}

/// The run config of a sweep point: its scope, contender and `N`.
fn point_of(scope: &serde_json::Value, contender: &str, n: usize) -> serde_json::Value {
    serde_json::json!({ "scope": scope, "contender": contender, "n": n })
}

/// A sweep contender named `name` whose every point `(N, seed)` is a stored run of
/// `experiment` keyed by `scope` (the resolved settings the point depends on), the contender
/// and `N`; `label` prefixes its progress line.
pub fn stored<'c, 'a>(
    ctx: &'c Ctx<'a>,
    experiment: &'c str,
    label: &'c str,
    scope: &'c serde_json::Value,
    name: &str,
    f: impl FnMut(usize, u64) -> Result<f64> + 'c,
) -> Stored<'c> {
    stored_with(ctx, experiment, label, scope, name, f, |&v| v, |_, _| {})
}

/// [`stored`] for a run that measures more than the sweep's metric: each point stores
/// `f`'s whole result `T`, the sweep reads `metric(&T)`, and `seen(N, &T)` is called with
/// every result, trained or loaded (for the experiment's other tables).
#[allow(clippy::too_many_arguments)]
pub fn stored_with<'c, 'a, T: Serialize + DeserializeOwned>(
    ctx: &'c Ctx<'a>,
    experiment: &'c str,
    label: &'c str,
    scope: &'c serde_json::Value,
    name: &str,
    mut f: impl FnMut(usize, u64) -> Result<T> + 'c,
    metric: impl Fn(&T) -> f64 + 'c,
    mut seen: impl FnMut(usize, &T) + 'c,
) -> Stored<'c> {
    let owned = name.to_string();
    let run = move |n: usize, seed: u64| -> Result<f64> {
        let line = line_of(label, &owned, n, seed);
        let t = ctx.run(experiment, &point_of(scope, &owned, n), seed, &line, || {
            f(n, seed)
        })?;
        seen(n, &t);
        Ok(metric(&t))
    };
    Stored {
        experiment,
        label,
        scope,
        name: name.to_string(),
        f: Box::new(run),
    }
}

/// Executes the sweep `plan` of `contenders` (see the module's docs): the learning curves,
/// or `None` in a sharded store, which runs only the points of its slice.
pub fn sweep(
    ctx: &Ctx<'_>,
    contenders: Vec<Stored<'_>>,
    plan: &SweepPlan,
) -> Result<Option<SweepResult>> {
    if !ctx.sharded() {
        let mut boxed: Vec<Box<dyn Contender + '_>> = contenders
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn Contender + '_>)
            .collect();
        return run_sweep(&mut boxed, plan).map(Some);
    }
    plan.validate()?;
    let mut contenders = contenders;
    for &n in &plan.sizes {
        for &seed in &plan.seeds {
            for c in &mut contenders {
                if ctx.in_shard(c.experiment, &c.point(n), seed, &c.line(n, seed))? {
                    c.run(n, seed)?;
                }
            }
        }
    }
    Ok(None)
}

/// The seeds `0..count`.
pub fn seeds(count: u64) -> Vec<u64> {
    (0..count).collect()
}

/// The learning curves of a sweep as a plot with a logarithmic N axis.
pub fn curve_plot(
    id: &str,
    title: &str,
    result: &SweepResult,
    x_label: &str,
    y_label: &str,
    percent: bool,
    reference: Option<&str>,
) -> Result<Plot> {
    Ok(Plot {
        id: id.into(),
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        log_x: true,
        y_scale: if percent { 100.0 } else { 1.0 },
        zero_line: false,
        series: result.series()?,
        reference: reference.map(str::to_string),
    })
}

/// The crossover estimate as a sentence: where `a` and `b` cross, with the bootstrap
/// interval, the agreeing share and the undecided sizes, or "no crossover in range".
pub fn describe_crossover(a: &str, b: &str, c: &Crossover) -> String {
    let undecided = if c.undecided.is_empty() {
        "none".to_string()
    } else {
        format!("{:?}", c.undecided)
    };
    match c.estimate {
        Some(e) => {
            let (winner, loser) = if e.a_overtakes { (a, b) } else { (b, a) };
            let interval = c
                .interval
                .map(|(lo, hi)| format!("95% seed-bootstrap interval [{lo:.0}, {hi:.0}]"))
                .unwrap_or_else(|| "no bootstrap interval".into());
            let share = c
                .agreeing_share
                .map(|s| format!(", {:.0}% of resamples cross the same way", 100.0 * s))
                .unwrap_or_default();
            format!(
                "{winner} overtakes {loser} at N ≈ {:.0} ({interval}{share}); sizes where the \
                 difference is undecided: {undecided}",
                e.n
            )
        }
        None => {
            let leader = match c.leader_at_largest {
                Leader::A => a,
                Leader::B => b,
                Leader::Tie => "neither",
            };
            format!(
                "no crossover in range: {leader} leads throughout; sizes where the difference is \
                 undecided: {undecided}"
            )
        }
    }
}

/// A table of the crossovers of `pairs` (`(a, b)`: a's advantage over b), one row each, and
/// the estimates in the same order.
pub fn crossover_table(
    name: &str,
    result: &SweepResult,
    pairs: &[(&str, &str)],
    cfg: &CrossoverConfig,
) -> Result<(Table, Vec<Crossover>)> {
    let mut t = Table::new(
        name,
        &[
            "a",
            "b",
            "crossover N",
            "95% bootstrap interval",
            "resamples agreeing",
            "leader at largest N",
            "undecided sizes",
        ],
    );
    let mut out = Vec::new();
    for &(a, b) in pairs {
        let c = result.crossover(a, b, cfg)?;
        let leader = match c.leader_at_largest {
            Leader::A => a,
            Leader::B => b,
            Leader::Tie => "tie",
        };
        t.push(vec![
            TableCell::text(a),
            TableCell::text(b),
            match c.estimate {
                Some(e) => TableCell::Num(e.n.round()),
                None => TableCell::text("no crossover in range"),
            },
            match c.interval {
                Some((lo, hi)) => TableCell::text(format!("[{lo:.0}, {hi:.0}]")),
                None => TableCell::text("—"),
            },
            match c.agreeing_share {
                Some(s) => TableCell::text(format!("{:.0}%", 100.0 * s)),
                None => TableCell::text("—"),
            },
            TableCell::text(leader),
            TableCell::text(format!("{:?}", c.undecided)),
        ]);
        out.push(c);
    }
    Ok((t, out))
}

/// A table of the paired advantage of `a` over `b` at every size (positive: `a` better;
/// `percent` for accuracies).
pub fn advantage_table(
    name: &str,
    result: &SweepResult,
    pairs: &[(&str, &str)],
    crossovers: &[Crossover],
    percent: bool,
) -> Table {
    let mut t = Table::new(name, &["N", "a", "b", "advantage of a over b"]);
    for (&(a, b), c) in pairs.iter().zip(crossovers) {
        for (&n, s) in result.plan.sizes.iter().zip(&c.advantage) {
            t.push(vec![
                TableCell::int(n as i64),
                TableCell::text(a),
                TableCell::text(b),
                if percent {
                    TableCell::pct(*s)
                } else {
                    TableCell::stat(*s)
                },
            ]);
        }
    }
    t
}

/// The result key of `contender` at size `n` in `scope` (a variant, split or world tag):
/// `"{scope}/{contender}/{n}"`. The contrasts of P1, P2, P3 and P5 read these keys.
pub fn key(scope: &str, contender: &str, n: usize) -> String {
    format!("{scope}/{contender}/{n}")
}

/// Files every per-seed value of `sweep` into `results` under [`key`]`(scope, contender, N)`,
/// in seed order (the contenders of one seed saw the same training draw: paired by seed).
pub fn file_sweep(results: &mut Results, scope: &str, sweep: &SweepResult) {
    for curve in &sweep.curves {
        for (&n, scores) in sweep.plan.sizes.iter().zip(&curve.scores) {
            for &v in scores {
                results.push(key(scope, &curve.name, n), v);
            }
        }
    }
}

/// Every key [`file_sweep`] fills for a sweep of `contenders` over `sizes` in `scope`.
pub fn sweep_keys(
    scope: &str,
    contenders: &[&str],
    sizes: &[usize],
) -> std::collections::BTreeSet<String> {
    contenders
        .iter()
        .flat_map(|c| sizes.iter().map(move |&n| key(scope, c, n)))
        .collect()
}

/// A composite contrast (`Test::AllOf` or `Test::AnyOf` of `parts`) shown in `unit` with the
/// margin `margin` (its components carry their own).
pub fn composite(
    id: &str,
    claims: &[&str],
    label: impl Into<String>,
    unit: Unit,
    margin: Margin,
    test: Test,
) -> Contrast {
    let mut c = Contrast::composite(id, claims, label, test)
        .expect("an experiment declares AllOf or AnyOf with components");
    c.unit = unit;
    c.margin = margin;
    c
}

/// The claims `contrasts` decide, sorted and without repeats: what an experiment's report
/// claims (so that the two cannot disagree).
pub fn claims_of(contrasts: &[Contrast]) -> Vec<String> {
    let set: std::collections::BTreeSet<&str> = contrasts
        .iter()
        .flat_map(|c| c.claims.iter().map(String::as_str))
        .collect();
    set.into_iter().map(str::to_string).collect()
}

/// [`claims_of`] as the `&str`s a report skeleton takes.
pub fn as_strs(claims: &[String]) -> Vec<&str> {
    claims.iter().map(String::as_str).collect()
}

/// `mean [lo, hi]` scaled by `scale`.
pub fn fmt(s: &Summary, scale: f64) -> String {
    transferlab_report::format_summary(s, scale)
}

/// A sweep result for tests: `curves[i] = (name, value(N, seed index))` at `sizes` and seeds
/// `0..seeds`.
#[cfg(test)]
#[allow(clippy::type_complexity)]
pub(crate) fn test_sweep(
    sizes: &[usize],
    seeds: usize,
    goal: core_tensor::train::Goal,
    curves: &[(&str, &dyn Fn(usize, usize) -> f64)],
) -> SweepResult {
    SweepResult {
        plan: SweepPlan {
            sizes: sizes.to_vec(),
            seeds: (0..seeds as u64).collect(),
            goal,
        },
        curves: curves
            .iter()
            .map(|(name, f)| e2e_vs_pipeline::sweep::Curve {
                name: name.to_string(),
                scores: sizes
                    .iter()
                    .map(|&n| (0..seeds).map(|s| f(n, s)).collect())
                    .collect(),
            })
            .collect(),
        proportion_of: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_tensor::optim::OptimizerKind;

    #[test]
    fn a_sweep_files_its_values_under_the_keys_it_declares() {
        let sweep = test_sweep(
            &[4, 16],
            3,
            core_tensor::train::Goal::Maximize,
            &[
                ("a", &|n, s| n as f64 + s as f64),
                ("b", &|_, s| -(s as f64)),
            ],
        );
        let mut r = Results::default();
        file_sweep(&mut r, "x", &sweep);
        assert_eq!(r.get("x/a/16").unwrap(), [16.0, 17.0, 18.0]);
        assert_eq!(r.get("x/b/4").unwrap(), [0.0, -1.0, -2.0]);
        let keys = sweep_keys("x", &["a", "b"], &[4, 16]);
        assert_eq!(keys.len(), 4);
        assert!(keys.iter().all(|k| r.get(k).is_ok()));
        assert!(r.get("x/a/8").is_err());
    }

    #[test]
    fn the_step_budget_sets_the_epochs_and_the_patience() {
        let r = Recipe {
            train: TrainConfig {
                epochs: 2,
                batch_size: 32,
                optimizer: OptimizerKind::adam(),
                lr: 1e-3,
                weight_decay: 0.0,
                schedule: Default::default(),
                grad_clip_norm: None,
                early_stopping: Some(core_tensor::train::EarlyStopping {
                    patience: 3,
                    min_delta: 0.0,
                    goal: core_tensor::train::Goal::Maximize,
                    restore_best: true,
                    min_epochs: 0,
                    break_ties: false,
                }),
            },
            min_steps: 400,
            max_epochs: 100,
        };
        // 64 examples: 2 steps an epoch, 200 epochs wanted, 100 allowed; patience 50 steps.
        let t = r.resolve(64);
        assert_eq!(t.epochs, 100);
        assert_eq!(t.early_stopping.unwrap().patience, 50);
        // Plenty of data: the least epochs.
        assert_eq!(r.resolve(32 * 1000).epochs, 2);
        assert_eq!(validation_size(3), 1);
        assert_eq!(validation_size(50), 10);
    }
}
