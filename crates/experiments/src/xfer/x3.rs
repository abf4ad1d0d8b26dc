//! Experiment X3, layer transfer in the layout of Yosinski et al. 2014, figure 2 (claim T-1:
//! low-level features carry over, higher ones are specific to the source task). Not T-3: half A
//! is the same dataset as half B, so it shares low-level structure with B by design.
//!
//! A dataset's classes are split into halves A and B. Base networks are trained on A (baseA)
//! and on B (baseB), each on `per_class` examples per class. Then for every n = 1..L backbone
//! stages a network is built whose first n stages come from baseB (BnB, the "selffer") or
//! baseA (AnB, the transfer), frozen or fine-tuned (+), the rest re-initialised, and trained
//! on B's same examples; a network whose first n stages are frozen random weights is the
//! control. Point n = 0 is B trained from scratch with the same recipe. T-1 is decided by the
//! contrasts declared in [`contrasts`] before any run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind, Test};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::Plan;
use crate::margins;
use crate::xfer::common::{self as experiments, Common, Results, RunOptions};
use crate::xfer::runner::{DataSpec, LabelMode, PixelMode, Pretrain, SourceSpec};
use transfer::strategy::Strategy;

/// `experiments/x3.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X3Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Classes of half A.
    pub split_a: Vec<i64>,
    /// Classes of half B.
    pub split_b: Vec<i64>,
    /// Profiles.
    pub profiles: BTreeMap<String, X3Profile>,
}

/// Datasets, sizes and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X3Profile {
    /// Datasets split into A and B (`mnist`, `fashion-mnist`).
    pub datasets: Vec<String>,
    /// Training examples per class of each half.
    pub per_class: usize,
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Resolved<'a> {
    config: &'a X3Config,
    common: &'a Common,
}

/// Where the per-seed test accuracy on B is filed: `{dataset}/baseB`, and
/// `{dataset}/{arm}/{n}` for an arm (`BnB`, `AnB+`, …) with its first n stages transferred.
pub fn result_key(dataset: &str, arm: &str, n: Option<usize>) -> String {
    match n {
        Some(n) => format!("{dataset}/{arm}/{n}"),
        None => format!("{dataset}/{arm}"),
    }
}

/// The number of backbone stages of the common recipe's model (L: n runs over 1..=L).
pub fn stages(common: &Common) -> Result<usize> {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    Ok(common.recipe.model.build(&vs.root())?.stages().len() - 1)
}

/// The contrasts that decide T-1, declared from the profile and the depth L before any run: per
/// dataset, Yosinski's specificity, AnB (stages from A, frozen) at n = 1 minus AnB at n = L,
/// paired by seed, is positive (superiority, δ = [`margins::specificity_fall`]): the features
/// of the first stage serve B better than those of every stage. The base networks are trained
/// per seed, so the seeds replicate them.
pub fn contrasts(p: &X3Profile, stages: usize) -> Vec<Contrast> {
    if stages < 2 {
        return Vec::new();
    }
    p.datasets
        .iter()
        .map(|name| {
            // "Low-level features carry over": the first stage from A is as good as B's own
            // (non-inferiority of AnB at n = 1 against baseB) and the deepest transfer falls
            // (specificity, Yosinski et al. 2014): both needed.
            let carry = Contrast::paired(
                "low-level-carries",
                &[],
                "AnB at n = 1 − baseB",
                margins::accuracy_points(),
                Kind::NonInferiority,
                &result_key(name, "AnB", Some(1)),
                &result_key(name, "baseB", None),
                margins::specificity_fall(),
            );
            let fall = Contrast::paired(
                "specificity",
                &[],
                format!("AnB at n = 1 − AnB at n = {stages} (first n stages from A, frozen)"),
                margins::accuracy_points(),
                Kind::Superiority,
                &result_key(name, "AnB", Some(1)),
                &result_key(name, "AnB", Some(stages)),
                margins::specificity_fall(),
            );
            Contrast::composite(
                &format!("{name}/low-level-carries-over"),
                &["T-1"],
                format!(
                    "{name}: the first stage from A carries over (AnB at n = 1 as good as baseB) \
                     and deeper stages are specific (AnB falls by n = {stages}), paired by seed"
                ),
                Test::AllOf(vec![carry, fall]),
            )
            .expect("two components")
        })
        .collect()
}

fn data(name: &str, classes: &[i64]) -> Result<DataSpec> {
    let classes = Some(classes.to_vec());
    match name {
        "mnist" => Ok(DataSpec::Mnist { classes }),
        "fashion-mnist" => Ok(DataSpec::FashionMnist { classes }),
        other => Err(core_tensor::Error::InvalidArgument(format!(
            "profiles.*.datasets: {other:?} is not mnist or fashion-mnist"
        ))),
    }
}

/// The arms of the figure, in legend order: (name, source half or none, frozen).
const ARMS: [(&str, Option<char>, bool); 5] = [
    ("BnB", Some('B'), true),
    ("BnB+", Some('B'), false),
    ("AnB", Some('A'), true),
    ("AnB+", Some('A'), false),
    ("random frozen", None, true),
];

/// Runs X3 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: X3Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let n = p.per_class;
    let stages = stages(&common)?;
    let half = |d: &DataSpec| {
        SourceSpec::Pretrain(Pretrain {
            data: d.clone(),
            per_class: Some(n),
            labels: LabelMode::True,
            pixels: PixelMode::Original,
            recipe: common.recipe.clone(),
        })
    };
    let mut results = Results::default();
    let mut test_sizes = std::collections::BTreeMap::new();
    let (mut rep, done) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for name in &p.datasets {
            let (a, b) = (data(name, &cfg.split_a)?, data(name, &cfg.split_b)?);
            let target = ctx.data(&b, common.recipe.input)?;
            let classes = target.classes;
            test_sizes.insert(name.clone(), target.test.len());
            for seed in 0..seeds {
                let base =
                    common
                        .adapt
                        .run(half(&b), seed, b.clone(), classes, n, Strategy::Scratch);
                plan.push(
                    format!("{name}/baseB"),
                    base,
                    seed,
                    format!("x3 {name} baseB seed {seed}"),
                );
                for k in 1..=stages {
                    for (arm, half_of, frozen) in ARMS {
                        let source = match half_of {
                            Some('A') => half(&a),
                            Some(_) => half(&b),
                            None => SourceSpec::Untrained {
                                model: common.recipe.model.with_classes(classes as i64)?,
                                input: common.recipe.input,
                            },
                        };
                        let run = common.adapt.run(
                            source,
                            seed,
                            b.clone(),
                            classes,
                            n,
                            Strategy::LayerTransfer { stages: k, frozen },
                        );
                        let label = format!("x3 {name} {arm} n={k} seed {seed}");
                        plan.push(format!("{name}/{arm}/{k}"), run, seed, label);
                    }
                }
            }
        }
        let done = ctx.execute(plan)?;
        let rep = ctx.session().report(
            crate::driver::About {
                id: "X3",
                title: "layer transfer (Yosinski et al. 2014, figure 2)",
                claims: &["T-1"],
            },
            format!(
                "Classes split into A = {:?} and B = {:?} of {}; base networks (LeNet, {stages} \
                 backbone stages) trained on {n} examples per class of each half; for n = 1..{stages} \
                 the first n stages copied from baseB (BnB) or baseA (AnB), frozen or fine-tuned \
                 (+), or frozen random weights, the rest re-initialised and trained on B's same \
                 examples; test accuracy on B's test set.",
                cfg.split_a,
                cfg.split_b,
                p.datasets.join(" and ")
            ),
            seeds,
            &Resolved {
                config: &cfg,
                common: &common,
            },
        );
        Ok((rep, done))
    })?;
    let Some(done) = done else {
        return Ok(rep);
    };
    experiments::push_accuracies(&mut results, done, &test_sizes)?;

    let mut table = Table::new(
        "x3-layer-transfer",
        &[
            "dataset",
            "n",
            "network",
            "accuracy on B (%)",
            "minus baseB (points)",
        ],
    );
    for name in &p.datasets {
        let base_key = format!("{name}/baseB");
        let base = results.summary(&base_key)?;
        table.push(vec![
            Cell::text(name),
            Cell::int(0),
            Cell::text("baseB (scratch)"),
            Cell::pct(base),
            Cell::text("—"),
        ]);
        let mut plot = Plot {
            id: format!("x3-{name}"),
            title: format!(
                "X3: layer transfer on {name} (A = {:?}, B = {:?})",
                cfg.split_a, cfg.split_b
            ),
            x_label: "layer n at which the network is chopped and retrained".into(),
            y_label: "test accuracy on B (%)".into(),
            log_x: false,
            y_scale: 100.0,
            zero_line: false,
            series: vec![Series {
                name: "baseB".into(),
                points: (0..=stages)
                    .map(|k| Point {
                        x: k as f64,
                        y: base,
                    })
                    .collect(),
            }],
            reference: Some(
                "Yosinski et al. 2014, fig. 2: BnB dips at middle layers (co-adaptation), BnB+ \
                 recovers; AnB falls with n (specificity); AnB+ is at or above baseB"
                    .into(),
            ),
        };
        for (arm, _, _) in ARMS {
            let mut series = Series {
                name: arm.into(),
                points: Vec::new(),
            };
            for k in 1..=stages {
                let key = format!("{name}/{arm}/{k}");
                let acc = results.summary(&key)?;
                table.push(vec![
                    Cell::text(name),
                    Cell::int(k as i64),
                    Cell::text(arm),
                    Cell::pct(acc),
                    Cell::pct(results.gain(&key, &base_key)?),
                ]);
                series.points.push(Point {
                    x: k as f64,
                    y: acc,
                });
            }
            plot.series.push(series);
        }
        rep.plots.push(plot);
    }
    crate::driver::decide(&mut rep, &results, contrasts(p, stages))?;
    rep.tables.push(table);
    rep.notes.push(format!(
        "baseB here is B trained from scratch with the adaptation recipe (early stopping on a \
         validation share of B's training side); the BnB sources are pre-trained on exactly the \
         {n} examples per class the adaptations train on, so BnB is Yosinski's selffer network."
    ));
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::contrast::Outcome;

    use super::*;

    fn config() -> (X3Config, Common) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transfer/x3.toml");
        let cfg: X3Config = experiments::load_toml(&path).unwrap();
        let common = experiments::load_common(&path, &cfg.common).unwrap();
        (cfg, common)
    }

    /// Every result key the run files, as its plan does.
    fn planned_keys(p: &X3Profile, stages: usize) -> Vec<String> {
        let mut keys = Vec::new();
        for name in &p.datasets {
            keys.push(result_key(name, "baseB", None));
            for k in 1..=stages {
                for (arm, _, _) in ARMS {
                    keys.push(result_key(name, arm, Some(k)));
                }
            }
        }
        keys
    }

    /// Accuracy on B per planned key: AnB at n stages is `anb(n)`, the rest 0.8; seed noise
    /// differs between cells.
    fn results(p: &X3Profile, stages: usize, anb: impl Fn(usize) -> f64) -> Results {
        let mut r = Results::default();
        for name in &p.datasets {
            for seed in 0..3 {
                let noise = |k: usize| ((k * 7 + seed * 13 + k * seed * 3) % 5) as f64 * 0.002;
                r.push(result_key(name, "baseB", None), 0.8 + noise(0));
                for k in 1..=stages {
                    for (arm, _, _) in ARMS {
                        let acc = if arm == "AnB" { anb(k) } else { 0.8 };
                        r.push(result_key(name, arm, Some(k)), acc + noise(k));
                    }
                }
            }
        }
        r
    }

    #[test]
    fn the_contrasts_read_only_keys_the_runs_file() {
        let (cfg, common) = config();
        let stages = stages(&common).unwrap();
        assert!(stages >= 2);
        for p in cfg.profiles.values() {
            let planned = planned_keys(p, stages);
            let cs = contrasts(p, stages);
            assert_eq!(cs.len(), p.datasets.len());
            for c in &cs {
                assert_eq!(c.claims, ["T-1"]);
                for k in c.keys() {
                    assert!(planned.iter().any(|p| p == k), "{k} is not a result key");
                }
            }
        }
    }

    #[test]
    fn carrying_over_then_falling_with_depth_is_supported_and_a_rise_contradicted() {
        let (cfg, common) = config();
        let stages = stages(&common).unwrap();
        let p = &cfg.profiles["quick"];
        let cs = contrasts(p, stages);
        let falls = results(p, stages, |k| 0.8 - 0.03 * (k - 1) as f64);
        let rises = results(p, stages, |k| 0.7 + 0.02 * k as f64);
        let flat = results(p, stages, |_| 0.8);
        for c in &cs {
            assert_eq!(c.evaluate(&falls).unwrap().outcome, Outcome::Supported);
            assert_eq!(c.evaluate(&rises).unwrap().outcome, Outcome::Contradicted);
            assert_ne!(c.evaluate(&flat).unwrap().outcome, Outcome::Supported);
        }
    }
}
