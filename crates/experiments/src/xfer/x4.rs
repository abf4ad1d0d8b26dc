//! Experiment X4, source relatedness and negative transfer (claim T-3).
//!
//! Sources of the same architecture pre-trained with the same recipe on related and unrelated
//! data (MNIST; Fashion-MNIST; MNIST with shuffled labels; MNIST with a fixed pixel
//! permutation) are fine-tuned on small target sets and compared with training from scratch,
//! paired by seed. A source whose gain has a 95% CI below zero is negative transfer. A source
//! trained on the target's own dataset is skipped for that target (it would be the target's
//! labels, not transfer).

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

/// A source variant, pre-trained with the common recipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceVariant {
    /// Name in tables.
    pub name: String,
    /// Data.
    pub data: DataSpec,
    /// Examples per class (all when absent).
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Labels.
    #[serde(default)]
    pub labels: LabelMode,
    /// Pixels.
    #[serde(default)]
    pub pixels: PixelMode,
    /// Shares no useful low-level structure with the targets (what T-3 is about).
    #[serde(default)]
    pub unrelated: bool,
}

impl SourceVariant {
    /// The source spec with `common`'s recipe.
    pub fn spec(&self, common: &Common) -> SourceSpec {
        SourceSpec::Pretrain(Pretrain {
            data: self.data.clone(),
            per_class: self.per_class,
            labels: self.labels,
            pixels: self.pixels,
            recipe: common.recipe.clone(),
        })
    }
}

/// `experiments/x4.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X4Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Sources.
    pub sources: Vec<SourceVariant>,
    /// Targets.
    pub targets: Vec<DataSpec>,
    /// Profiles.
    pub profiles: BTreeMap<String, X4Profile>,
}

/// Sizes, strategies and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X4Profile {
    /// Target examples per class.
    pub per_class: Vec<usize>,
    /// Strategies compared with scratch.
    pub strategies: Vec<Strategy>,
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Resolved<'a> {
    config: &'a X4Config,
    common: &'a Common,
}

/// The rule for T-3, fixed before any run.
pub const RULE: &str = "supported if no source marked unrelated shows a gain over scratch whose 95% CI lies \
     above 0 (in any strategy and N); not supported if one does; negative transfer (CI below 0) \
     is reported for every source, related or not";

/// The verdict from the gains of the unrelated sources.
pub fn verdict(unrelated_gains: &[Summary]) -> Verdict {
    if unrelated_gains.iter().any(|g| g.above(0.0)) {
        Verdict::NotSupported
    } else {
        Verdict::Supported
    }
}

/// Runs X4 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: X4Config = experiments::load_toml(config_path)?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let store = opts.run_store();
    let applies = |s: &SourceVariant, t: &DataSpec| s.data.dataset() != t.dataset();
    let mut results = Results::default();
    let (mut rep, done) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for target in &cfg.targets {
            let classes = ctx.data(target, common.recipe.input)?.classes;
            let t = target.label();
            for &n in &p.per_class {
                for seed in 0..seeds {
                    let any = cfg.sources[0].spec(&common);
                    let scratch =
                        common
                            .adapt
                            .run(any, seed, target.clone(), classes, n, Strategy::Scratch);
                    plan.push(
                        format!("{t}/{n}/scratch"),
                        scratch,
                        seed,
                        format!("x4 {t} N={n} scratch seed {seed}"),
                    );
                    for s in cfg.sources.iter().filter(|s| applies(s, target)) {
                        for strategy in &p.strategies {
                            let run = common.adapt.run(
                                s.spec(&common),
                                seed,
                                target.clone(),
                                classes,
                                n,
                                strategy.clone(),
                            );
                            let label =
                                format!("x4 {t} N={n} {} {} seed {seed}", s.name, strategy.name());
                            plan.push(
                                format!("{t}/{n}/{}/{}", s.name, strategy.name()),
                                run,
                                seed,
                                label,
                            );
                        }
                    }
                }
            }
        }
        let done = ctx.execute(plan)?;
        let rep = experiments::report(
            "X4",
            "source relatedness and negative transfer",
            &["T-3"],
            format!(
                "LeNet sources pre-trained with one recipe on {}; fine-tuned on N = {:?} examples \
                 per class of {} and compared with scratch, paired by seed.",
                cfg.sources
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                p.per_class,
                cfg.targets
                    .iter()
                    .map(DataSpec::label)
                    .collect::<Vec<_>>()
                    .join(" and ")
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
        "x4-relatedness",
        &[
            "target",
            "N/class",
            "source",
            "unrelated",
            "strategy",
            "accuracy (%)",
            "gain over scratch (points)",
            "negative transfer",
        ],
    );
    let mut negative = Vec::new();
    for target in &cfg.targets {
        let t = target.label();
        let mut unrelated = Vec::new();
        let mut plot = Plot {
            id: format!("x4-{t}"),
            title: format!("X4: gain over scratch by source, target {t}"),
            x_label: "target examples per class".into(),
            y_label: "gain over scratch (accuracy points)".into(),
            log_x: p.per_class.len() > 1,
            y_scale: 100.0,
            zero_line: true,
            series: Vec::new(),
            reference: Some(
                "T-3: an unrelated source gives no gain and can hurt (negative transfer)".into(),
            ),
        };
        for &n in &p.per_class {
            let scratch_key = format!("{t}/{n}/scratch");
            table.push(vec![
                Cell::text(&t),
                Cell::int(n as i64),
                Cell::text("none (scratch)"),
                Cell::text(""),
                Cell::text("scratch"),
                Cell::pct(results.summary(&scratch_key)?),
                Cell::text("—"),
                Cell::text(""),
            ]);
        }
        for s in cfg.sources.iter().filter(|s| applies(s, target)) {
            for strategy in &p.strategies {
                let mut series = Series {
                    name: format!("{} ({})", s.name, strategy.name()),
                    points: Vec::new(),
                };
                for &n in &p.per_class {
                    let key = format!("{t}/{n}/{}/{}", s.name, strategy.name());
                    let gain = results.gain(&key, &format!("{t}/{n}/scratch"))?;
                    if gain.below(0.0) {
                        negative.push(format!(
                            "{} → {t} ({}, N={n}): {} points",
                            s.name,
                            strategy.name(),
                            pts(&gain)
                        ));
                    }
                    if s.unrelated {
                        unrelated.push((format!("{} ({}, N={n})", s.name, strategy.name()), gain));
                    }
                    table.push(vec![
                        Cell::text(&t),
                        Cell::int(n as i64),
                        Cell::text(&s.name),
                        Cell::text(if s.unrelated { "yes" } else { "no" }),
                        Cell::text(strategy.name()),
                        Cell::pct(results.summary(&key)?),
                        Cell::pct(gain),
                        Cell::text(if gain.below(0.0) { "yes" } else { "no" }),
                    ]);
                    series.points.push(Point {
                        x: n as f64,
                        y: gain,
                    });
                }
                plot.series.push(series);
            }
        }
        rep.plots.push(plot);
        let gains: Vec<Summary> = unrelated.iter().map(|(_, g)| *g).collect();
        if let Some((worst_name, worst)) = unrelated
            .iter()
            .max_by(|a, b| a.1.mean.total_cmp(&b.1.mean))
        {
            rep.verdicts.push(claim(
                "T-3",
                "X4",
                &t,
                verdict(&gains),
                RULE,
                format!("largest gain of an unrelated source: {worst_name}, points"),
                *worst,
                format!(
                    "Unrelated sources: {}.",
                    unrelated
                        .iter()
                        .map(|(n, g)| format!("{n} {}", pts(g)))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            ));
        }
    }
    rep.tables.push(table);
    rep.notes.push(if negative.is_empty() {
        "No negative transfer: no source's gain over scratch has a 95% CI below 0.".into()
    } else {
        format!(
            "Negative transfer (gain CI below 0): {}.",
            negative.join("; ")
        )
    });
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::stats::summarize;

    use super::*;

    #[test]
    fn one_significant_unrelated_gain_contradicts_the_claim() {
        let s = |v: &[f64]| summarize(v).unwrap();
        assert_eq!(
            verdict(&[s(&[-0.1, 0.0, 0.05]), s(&[-0.2, -0.21, -0.22])]),
            Verdict::Supported
        );
        assert_eq!(
            verdict(&[s(&[-0.1, 0.0, 0.05]), s(&[0.2, 0.21, 0.22])]),
            Verdict::NotSupported
        );
    }
}
