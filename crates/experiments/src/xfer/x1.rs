//! Experiment X1, the target-size sweep (claim T-1; the shape of He et al. 2019).
//!
//! A source CNN pre-trained on all of MNIST is adapted to Fashion-MNIST and to the UCI 8x8
//! digits with N labelled examples per class, N swept over the profile's sizes, by every
//! strategy of the config, over seeds. Each run draws its N examples (and a validation share
//! for early stopping) from the target's training pool from its seed, and measures test
//! accuracy once. Runs are stored as they finish (resumable); the summary gives every
//! (target, N, strategy) mean with its 95% interval and every strategy's paired difference
//! with scratch, and T-1 is decided per target by the contrasts declared in [`contrasts`]
//! before any run.

use std::collections::BTreeMap;
use std::path::Path;

use crate::driver::{Plan, Session};
use crate::runs::RunId;
use core_tensor::{Error, Result};
use pretrained_zoo::registry::Registry;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, ContrastResult, Kind as ContrastKind};
use transferlab_report::stats::{Results, Summary, paired_difference, summarize_proportion};
use transferlab_report::{Cell as ReportCell, ExperimentReport, Plot, Point, Series, Table};

use crate::margins;

use transfer::strategy::{AdaptConfig, SourceModel, Strategy, adapt};
use transfer::target::{self, Target};

/// The experiment's configuration file (`experiments/x1.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X1Config {
    /// The zoo entry used as source.
    pub source: String,
    /// Target datasets.
    pub targets: Vec<Target>,
    /// Strategies compared; one must be `scratch` (the baseline of every difference).
    pub strategies: Vec<Strategy>,
    /// Settings shared by the strategies; `train.epochs` is the least number of epochs.
    pub adapt: AdaptConfig,
    /// Each run trains at least this many optimizer steps (small N means few steps per epoch).
    pub min_steps: usize,
    /// ... and at most this many epochs.
    pub max_epochs: usize,
    /// Profiles by name (`quick`, `full`).
    pub profiles: BTreeMap<String, Profile>,
}

/// Sizes and seeds of a profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Training examples per class.
    pub per_class: Vec<usize>,
    /// Number of seeds (0, 1, …).
    pub seeds: u64,
}

/// One run's configuration, as stored with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct X1Run {
    /// Source zoo entry.
    pub source: String,
    /// Target dataset.
    pub target: Target,
    /// Training examples per class.
    pub per_class: usize,
    /// Validation examples per class.
    pub val_per_class: usize,
    /// The strategy.
    pub strategy: Strategy,
    /// Settings, with epochs resolved for this N.
    pub adapt: AdaptConfig,
}

/// One run's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct X1Result {
    /// Test accuracy, measured once.
    pub test_accuracy: f64,
    /// Best validation accuracy.
    pub validation_accuracy: Option<f64>,
    /// Epochs trained (all phases).
    pub epochs: usize,
}

/// Per (target, N, strategy): accuracy over seeds, and the paired difference with scratch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// Target dataset.
    pub target: Target,
    /// Examples per class.
    pub per_class: usize,
    /// Strategy name.
    pub strategy: String,
    /// Test accuracy over seeds.
    pub accuracy: Summary,
    /// Test accuracy minus scratch's, paired by seed (absent for scratch itself).
    pub gain: Option<Summary>,
}

/// Everything the experiment reports.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct X1Summary {
    /// Profile run.
    pub profile: String,
    /// Seeds per cell.
    pub seeds: u64,
    /// Cells.
    pub cells: Vec<Cell>,
    /// The contrasts of [`contrasts`], evaluated (empty for a shard).
    pub contrasts: Vec<ContrastResult>,
}

/// The claims X1 decides.
const CLAIMS: [&str; 1] = ["T-1"];

/// Where the per-seed test accuracy of `strategy` on `target` with `per_class` examples per
/// class is filed for the contrasts.
pub fn result_key(target: Target, per_class: usize, strategy: &str) -> String {
    format!("{}/{per_class}/{strategy}", target.dataset())
}

/// The contrasts that decide T-1, declared from the config before any run: per target, with
/// fine_tune as the transfer arm, (fine_tune − scratch) at the smallest N is positive
/// (superiority, δ = [`margins::transfer_gain`]) and larger than at the largest N (trend on the
/// per-seed gains, δ = [`margins::gain_shrinks`]). None when the config has no fine_tune. One zoo
/// source serves every seed, so all are marked shared.
pub fn contrasts(cfg: &X1Config, profile: &Profile) -> Vec<Contrast> {
    let mut out = Vec::new();
    if !cfg.strategies.contains(&Strategy::FineTune) {
        return out;
    }
    let (Some(&small), Some(&large)) = (
        profile.per_class.iter().min(),
        profile.per_class.iter().max(),
    ) else {
        return out;
    };
    let shared = format!(
        "one zoo checkpoint ({}) is the source of every seed: the seeds replicate the target \
         draw and the initialisation, not pre-training",
        cfg.source
    );
    for &tgt in &cfg.targets {
        let t = tgt.dataset();
        let key = |n: usize, s: &str| result_key(tgt, n, s);
        out.push(
            Contrast::paired(
                &format!("{t}/gain-smallest-n"),
                &CLAIMS,
                format!("{t}: fine_tune − scratch at N = {small}/class"),
                margins::accuracy_points(),
                ContrastKind::Superiority,
                &key(small, "fine_tune"),
                &key(small, "scratch"),
                margins::transfer_gain(),
            )
            .shared(shared.clone()),
        );
        if small != large {
            out.push(
                Contrast::trend(
                    &format!("{t}/gain-shrinks"),
                    &CLAIMS,
                    format!(
                        "{t}: (fine_tune − scratch) at N = {small} minus at N = {large}, paired by \
                         seed"
                    ),
                    margins::accuracy_points(),
                    (&key(small, "fine_tune"), &key(small, "scratch")),
                    (&key(large, "fine_tune"), &key(large, "scratch")),
                    margins::gain_shrinks(),
                )
                .shared(shared.clone()),
            );
        }
    }
    out
}

impl X1Config {
    /// Reads and checks a config file as `profile` sees it ([`crate::driver::load_config`]);
    /// errors name the field.
    pub fn load(path: &Path, profile: Option<&str>) -> Result<Self> {
        let cfg: X1Config = crate::driver::load_config(path, profile)?;
        cfg.validate().map_err(|e| e.in_file(path))?;
        Ok(cfg)
    }

    /// Checks the fields.
    pub fn validate(&self) -> Result<()> {
        if !self.strategies.contains(&Strategy::Scratch) {
            return Err(Error::InvalidArgument(
                "strategies: must include { kind = \"scratch\" }, the baseline".into(),
            ));
        }
        for s in &self.strategies {
            s.validate()?;
        }
        self.adapt.train.validate()?;
        for (name, p) in &self.profiles {
            if p.per_class.is_empty() || p.seeds == 0 {
                return Err(Error::InvalidArgument(format!(
                    "profiles.{name}: per_class and seeds must not be empty"
                )));
            }
        }
        Ok(())
    }

    /// The training settings for `per_class` examples per class of `classes` classes (see
    /// [`crate::xfer::runner::resolve_adapt`]).
    fn resolved(&self, per_class: usize, classes: usize) -> AdaptConfig {
        crate::xfer::runner::resolve_adapt(
            &self.adapt,
            per_class,
            classes,
            self.min_steps,
            self.max_epochs,
        )
    }
}

/// Runs X1 from its config file (resumable) and builds its report: the tables of
/// [`markdown`], accuracy-vs-N and gain-vs-N plots per target, and the T-1 contrasts.
pub fn run_report(
    config_path: &Path,
    opts: &crate::xfer::common::RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let session = Session::new(opts, on_run)?;
    let cfg = X1Config::load(config_path, Some(&opts.profile))?;
    let summary = run(&cfg, &opts.profile, opts.seeds, &session)?;
    let mut report = session.report(
        crate::driver::About {
            id: "X1",
            title: "target-size sweep",
            claims: &CLAIMS,
        },
        format!(
            "Source: zoo entry {} (LeNet on all of MNIST). Targets {} with N examples per class, \
             strategies {}.",
            cfg.source,
            cfg.targets
                .iter()
                .map(|t| t.dataset())
                .collect::<Vec<_>>()
                .join(" and "),
            cfg.strategies
                .iter()
                .map(Strategy::name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        summary.seeds,
        &cfg,
    );
    if session.sharded() {
        return Ok(report);
    }
    let mut table = Table::new(
        "x1-target-size",
        &[
            "target",
            "N/class",
            "strategy",
            "accuracy (%)",
            "gain over scratch (points)",
        ],
    );
    let mut plots = Vec::new();
    for &tgt in &cfg.targets {
        let mut acc_plot = Plot {
            id: format!("x1-{}-accuracy", tgt.dataset()),
            title: format!(
                "X1: test accuracy vs target size, {} (source MNIST)",
                tgt.dataset()
            ),
            x_label: "target examples per class (N)".into(),
            y_label: "test accuracy (%)".into(),
            log_x: true,
            y_scale: 100.0,
            zero_line: false,
            series: Vec::new(),
            reference: None,
        };
        let mut gain_plot = Plot {
            id: format!("x1-{}-gain", tgt.dataset()),
            title: format!("X1: gain over scratch vs target size, {}", tgt.dataset()),
            x_label: "target examples per class (N)".into(),
            y_label: "strategy − scratch (accuracy points)".into(),
            log_x: true,
            y_scale: 100.0,
            zero_line: true,
            series: Vec::new(),
            reference: Some(
                "He, Girshick, Dollár 2019: the gain of pre-training shrinks as the target grows"
                    .into(),
            ),
        };
        for s in &cfg.strategies {
            let cells: Vec<&Cell> = summary
                .cells
                .iter()
                .filter(|c| c.target == tgt && c.strategy == s.name())
                .collect();
            acc_plot.series.push(Series {
                name: s.name().into(),
                points: cells
                    .iter()
                    .map(|c| Point {
                        x: c.per_class as f64,
                        y: c.accuracy,
                    })
                    .collect(),
            });
            if *s != Strategy::Scratch {
                gain_plot.series.push(Series {
                    name: s.name().into(),
                    points: cells
                        .iter()
                        .filter_map(|c| {
                            c.gain.map(|g| Point {
                                x: c.per_class as f64,
                                y: g,
                            })
                        })
                        .collect(),
                });
            }
        }
        plots.push(acc_plot);
        plots.push(gain_plot);
    }
    for c in &summary.cells {
        table.push(vec![
            ReportCell::text(c.target.dataset()),
            ReportCell::int(c.per_class as i64),
            ReportCell::text(&c.strategy),
            ReportCell::pct(c.accuracy),
            c.gain
                .map(ReportCell::pct)
                .unwrap_or_else(|| ReportCell::text("—")),
        ]);
    }
    report.contrasts = summary.contrasts;
    report.tables = vec![table];
    report.plots = plots;
    Ok(report)
}

/// Runs (or loads through `session`) every run of `profile` and summarises them; no cells in a
/// sharded session.
pub fn run(
    cfg: &X1Config,
    profile_name: &str,
    seeds_override: Option<u64>,
    session: &Session<'_>,
) -> Result<X1Summary> {
    let profile = cfg.profiles.get(profile_name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "no profile {profile_name:?}; the config has {:?}",
            cfg.profiles.keys().collect::<Vec<_>>()
        ))
    })?;
    let seeds = crate::driver::check_seeds(seeds_override.unwrap_or(profile.seeds))?;
    let dev = session.device();
    let cache = crate::paths::cache_dir();
    let registry = Registry::builtin()?;
    let zoo = crate::paths::zoo_dir();
    // Loaded when a run trains (a report rebuilt from the store needs no weights).
    let source = std::cell::OnceCell::new();
    let entry = registry.entry(&cfg.source)?;
    let input = target::source_image_input(&entry.recipe.data)?;
    let weights_sha = registry.expected_sha256(&zoo, &cfg.source)?;

    // The plan: every (target, N, strategy, seed), filed under (target, N, strategy).
    let mut plan = Plan::new();
    let mut loaded = Vec::new();
    for (ti, &tgt) in cfg.targets.iter().enumerate() {
        let data_inputs = crate::paths::verified_inputs(&cache, &[tgt.dataset()])?;
        let data = target::load(tgt, &cache, &input)?;
        for &n in &profile.per_class {
            let val_n = target::validation_per_class(n);
            for strategy in &cfg.strategies {
                for seed in 0..seeds {
                    let run_cfg = X1Run {
                        source: cfg.source.clone(),
                        target: tgt,
                        per_class: n,
                        val_per_class: val_n,
                        strategy: strategy.clone(),
                        adapt: cfg.resolved(n, data.classes),
                    };
                    let mut inputs = data_inputs.clone();
                    inputs.insert("source_weights".to_string(), weights_sha.clone());
                    let id = RunId::new("x1", &run_cfg, seed, inputs)?;
                    let label = format!("{} N={n} {} seed {seed}", tgt.dataset(), strategy.name());
                    plan.push(
                        (tgt.dataset().to_string(), n, strategy.name().to_string()),
                        (ti, run_cfg, id),
                        seed,
                        label,
                    );
                }
            }
        }
        let test = data.test.to_device(dev);
        loaded.push((data, test));
    }
    let outcome = session.execute(
        plan,
        |(_, _, id), _| Ok(id.key()),
        |(ti, run_cfg, id), seed, label| {
            let (data, test) = &loaded[*ti];
            let r: X1Result = session.run(id, label, || {
                let source: &SourceModel = match source.get() {
                    Some(s) => s,
                    None => {
                        let s = SourceModel::from_zoo(&registry, &zoo, &cfg.source)?;
                        source.get_or_init(|| s)
                    }
                };
                let (train, val) =
                    target::sample(data, run_cfg.per_class, run_cfg.val_per_class, seed, dev)?;
                let adapted = adapt(
                    &run_cfg.strategy,
                    source,
                    data.classes as i64,
                    &train,
                    &val,
                    &run_cfg.adapt,
                    seed,
                )?;
                Ok(X1Result {
                    test_accuracy: adapted.accuracy(test, run_cfg.adapt.eval_batch)?,
                    validation_accuracy: adapted.reports.last().and_then(|r| r.best_validation),
                    epochs: adapted.reports.iter().map(|r| r.epochs.len()).sum(),
                })
            })?;
            Ok(r.test_accuracy)
        },
    )?;
    let Some(outcome) = outcome else {
        return Ok(X1Summary {
            profile: profile_name.to_string(),
            seeds,
            cells: Vec::new(),
            contrasts: Vec::new(),
        });
    };
    // results[(target, n, strategy)] = accuracy per seed
    let mut results: BTreeMap<(String, usize, String), Vec<f64>> = BTreeMap::new();
    for (cell, accuracy) in outcome {
        results.entry(cell).or_default().push(accuracy);
    }
    let test_sizes = cfg
        .targets
        .iter()
        .zip(&loaded)
        .map(|(t, (data, _))| (t.dataset().to_string(), data.test.len()))
        .collect();
    summarise(cfg, profile_name, seeds, profile, &results, &test_sizes)
}

fn summarise(
    cfg: &X1Config,
    profile_name: &str,
    seeds: u64,
    profile: &Profile,
    results: &BTreeMap<(String, usize, String), Vec<f64>>,
    test_sizes: &BTreeMap<String, usize>,
) -> Result<X1Summary> {
    let mut cells = Vec::new();
    let mut per_seed = Results::default();
    for &tgt in &cfg.targets {
        let t = tgt.dataset().to_string();
        for &n in &profile.per_class {
            let scratch = &results[&(t.clone(), n, "scratch".to_string())];
            for s in &cfg.strategies {
                let acc = &results[&(t.clone(), n, s.name().to_string())];
                for &a in acc {
                    per_seed.push(result_key(tgt, n, s.name()), a);
                }
                let gain = if *s == Strategy::Scratch {
                    None
                } else {
                    Some(paired_difference(acc, scratch)?)
                };
                cells.push(Cell {
                    target: tgt,
                    per_class: n,
                    strategy: s.name().into(),
                    // A proportion of the target's test set: its interval stays in [0, 1].
                    accuracy: summarize_proportion(acc, test_sizes[&t])?,
                    gain,
                });
            }
        }
    }
    Ok(X1Summary {
        profile: profile_name.to_string(),
        seeds,
        cells,
        contrasts: decide(&per_seed, contrasts(cfg, profile))?,
    })
}

/// Evaluates `contrasts` on the per-seed results (X1 builds its report after its summary).
fn decide(per_seed: &Results, contrasts: Vec<Contrast>) -> Result<Vec<ContrastResult>> {
    crate::driver::evaluate_contrasts("X1", &CLAIMS, per_seed, contrasts)
}

/// The summary as a Markdown table (accuracy and gain over scratch, in percent).
pub fn markdown(summary: &X1Summary) -> String {
    let pct = |s: &Summary| match s.ci95 {
        Some((lo, hi)) => format!(
            "{:.1} [{:.1}, {:.1}]",
            100.0 * s.mean,
            100.0 * lo,
            100.0 * hi
        ),
        None => format!("{:.1}", 100.0 * s.mean),
    };
    let mut out = format!(
        "# X1 target-size sweep ({} profile, {} seeds)\n\nTest accuracy in %, mean [95% CI]; gain = strategy − scratch, paired by seed.\n\n| target | N/class | strategy | accuracy | gain over scratch |\n|---|---|---|---|---|\n",
        summary.profile, summary.seeds
    );
    for c in &summary.cells {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.target.dataset(),
            c.per_class,
            c.strategy,
            pct(&c.accuracy),
            c.gain.as_ref().map(pct).unwrap_or_else(|| "—".into())
        ));
    }
    out.push_str("\n## Contrasts (T-1)\n\n");
    for c in &summary.contrasts {
        out.push_str(&format!("- {}\n", c.line()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use transferlab_report::contrast::Outcome;

    fn config() -> X1Config {
        // The file as the profiles without overrides read it.
        let cfg: X1Config = crate::driver::load_toml(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transfer/x1.toml"),
        )
        .unwrap();
        cfg.validate().unwrap();
        cfg
    }

    /// What [`run`] collects: accuracy per (target, N, strategy), per seed, with fine_tune
    /// `gain(N)` above the others and a little seed noise that differs between cells.
    fn collected(
        cfg: &X1Config,
        profile: &Profile,
        gain: impl Fn(usize) -> f64,
    ) -> BTreeMap<(String, usize, String), Vec<f64>> {
        let mut out = BTreeMap::new();
        for &tgt in &cfg.targets {
            for &n in &profile.per_class {
                for s in &cfg.strategies {
                    let g = if *s == Strategy::FineTune {
                        gain(n)
                    } else {
                        0.0
                    };
                    let v = (0..3)
                        .map(|seed| {
                            0.5 + g + ((s.name().len() * 7 + n + seed * 13) % 5) as f64 * 0.003
                        })
                        .collect();
                    out.insert((tgt.dataset().to_string(), n, s.name().to_string()), v);
                }
            }
        }
        out
    }

    #[test]
    fn the_contrasts_read_only_keys_the_runs_file() {
        let cfg = config();
        for profile in cfg.profiles.values() {
            let planned: Vec<String> = collected(&cfg, profile, |_| 0.0)
                .keys()
                .map(|(t, n, s)| format!("{t}/{n}/{s}"))
                .collect();
            let cs = contrasts(&cfg, profile);
            assert_eq!(cs.len(), 2 * cfg.targets.len());
            for c in &cs {
                assert_eq!(c.claims, CLAIMS);
                assert!(c.replication.is_some(), "one zoo source: shared");
                for k in c.keys() {
                    assert!(planned.iter().any(|p| p == k), "{k} is not a result key");
                }
            }
        }
    }

    #[test]
    fn a_gain_that_shrinks_is_supported_and_a_loss_is_contradicted() {
        let cfg = config();
        let profile = &cfg.profiles["quick"];
        let small = profile.per_class[0];
        let sizes: BTreeMap<String, usize> = cfg
            .targets
            .iter()
            .map(|t| (t.dataset().to_string(), 1000))
            .collect();
        let shrinks = collected(&cfg, profile, |n| if n == small { 0.2 } else { 0.01 });
        let summary = summarise(&cfg, "quick", 3, profile, &shrinks, &sizes).unwrap();
        assert_eq!(summary.contrasts.len(), 4);
        for c in &summary.contrasts {
            assert_eq!(c.outcome, Outcome::Supported, "{}", c.contrast.id);
        }
        let hurts = collected(&cfg, profile, |n| if n == small { -0.1 } else { 0.05 });
        let summary = summarise(&cfg, "quick", 3, profile, &hurts, &sizes).unwrap();
        for c in &summary.contrasts {
            assert_eq!(c.outcome, Outcome::Contradicted, "{}", c.contrast.id);
        }
    }

    #[test]
    fn without_fine_tune_nothing_is_declared() {
        let mut cfg = config();
        cfg.strategies.retain(|s| *s != Strategy::FineTune);
        assert!(contrasts(&cfg, &cfg.profiles["quick"]).is_empty());
    }
}
