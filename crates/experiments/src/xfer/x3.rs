//! Experiment X3, layer transfer in the layout of Yosinski et al. 2014, figure 2 (claims T-1
//! and T-3).
//!
//! A dataset's classes are split into halves A and B. Base networks are trained on A (baseA)
//! and on B (baseB), each on `per_class` examples per class. Then for every n = 1..L backbone
//! stages a network is built whose first n stages come from baseB (BnB, the "selffer") or
//! baseA (AnB, the transfer), frozen or fine-tuned (+), the rest re-initialised, and trained
//! on B's same examples; a network whose first n stages are frozen random weights is the
//! control. Point n = 0 is B trained from scratch with the same recipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::driver::Plan;
use crate::xfer::common::{self as experiments, Common, Results, RunOptions, claim, pts};
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

/// The margin of the non-inferiority rule, in accuracy (1 point).
pub const MARGIN: f64 = 0.01;

/// The rule for T-1 ("low-level features carry over"), fixed before any run.
pub const RULE: &str = "supported if (AnB - baseB) at n = 1, the first stage transferred from A and frozen, \
     has a 95% CI whose lower end is above -1 point (the first layer's features serve B as well \
     as B's own) and the mean of (AnB - baseB) at n = L is below that at n = 1 (specificity grows \
     with depth); not supported if the CI at n = 1 lies below -1 point; otherwise inconclusive";

/// The verdict from (AnB − baseB) at n = 1 and at n = L.
pub fn verdict(first: &Summary, last: &Summary) -> Verdict {
    if first.above(-MARGIN) && last.mean < first.mean {
        Verdict::Supported
    } else if first.below(-MARGIN) {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
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
    let started = std::time::Instant::now();
    let cfg: X3Config = experiments::load_toml(config_path)?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let n = p.per_class;
    let store = opts.run_store();
    let stages = {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        common.recipe.model.build(&vs.root())?.stages().len() - 1
    };
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
    let (mut rep, done) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for name in &p.datasets {
            let (a, b) = (data(name, &cfg.split_a)?, data(name, &cfg.split_b)?);
            let classes = ctx.data(&b, common.recipe.input)?.classes;
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
        let rep = experiments::report(
            "X3",
            "layer transfer (Yosinski et al. 2014, figure 2)",
            &["T-1", "T-3"],
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
            opts,
            seeds,
            ctx,
            started,
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
    for (cell, r) in done {
        results.push(cell, r.test_accuracy);
    }

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
        let first = results.gain(&format!("{name}/AnB/1"), &base_key)?;
        let last = results.gain(&format!("{name}/AnB/{stages}"), &base_key)?;
        let plus: Vec<String> = (1..=stages)
            .map(|k| {
                results
                    .gain(&format!("{name}/AnB+/{k}"), &base_key)
                    .map(|g| pts(&g))
            })
            .collect::<transferlab_report::Result<_>>()?;
        rep.verdicts.push(claim(
            "T-1",
            "X3",
            name,
            verdict(&first, &last),
            RULE,
            "AnB − baseB at n = 1, points".into(),
            first,
            format!(
                "AnB − baseB at n = {stages}: {}; AnB+ − baseB at n = 1..{stages}: {}.",
                pts(&last),
                plus.join(", ")
            ),
        ));
    }
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
    use transferlab_report::stats::summarize;

    use super::*;

    #[test]
    fn the_rule_reads_the_intervals() {
        let s = |v: &[f64]| summarize(v).unwrap();
        let same = s(&[0.0, 0.002, -0.002]);
        let worse = s(&[-0.1, -0.12, -0.11]);
        assert_eq!(verdict(&same, &worse), Verdict::Supported);
        assert_eq!(
            verdict(&same, &s(&[0.01, 0.012, 0.011])),
            Verdict::Inconclusive
        );
        assert_eq!(verdict(&worse, &worse), Verdict::NotSupported);
    }
}
