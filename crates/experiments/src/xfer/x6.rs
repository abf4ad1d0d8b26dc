//! Experiment X6, transferability estimates against measured accuracy (beyond the chapter).
//!
//! Before fine-tuning, every source of a pool (zoo entries and networks pre-trained here on
//! related, smaller, unrelated and corrupted data) is scored on the target's training sample by
//! LogME, LEEP and the H-score; then each is fine-tuned on that sample and tested. Per seed,
//! the rank correlation (Spearman, Kendall) between each score and the accuracy over the
//! sources says how well the cheap score would have chosen the source.
//!
//! The fine-tuning runs are the same runs as X2's and X4's where the source, target and
//! settings agree, so after those experiments X6 adds only its zoo sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::stats::{Summary, summarize};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::driver::Plan;
use crate::xfer::common::{self as experiments, Common, RunOptions, claim};
use crate::xfer::runner::{DataSpec, SourceSpec};
use crate::xfer::x4::SourceVariant;
use transfer::strategy::Strategy;
use transfer::transferability::{kendall_tau, spearman};

/// `experiments/x6.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X6Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Targets.
    pub targets: Vec<DataSpec>,
    /// Sources pre-trained here.
    pub sources: Vec<SourceVariant>,
    /// How every source is adapted.
    pub strategy: Strategy,
    /// Profiles.
    pub profiles: BTreeMap<String, X6Profile>,
}

/// Sizes, zoo sources and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X6Profile {
    /// Target examples per class.
    pub per_class: usize,
    /// Zoo entries added to the pool (each must be built: `cargo xtask zoo build NAME`).
    pub zoo: Vec<String>,
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Resolved<'a> {
    config: &'a X6Config,
    common: &'a Common,
}

/// The rule, fixed before any run.
pub const RULE: &str = "LogME ranks sources usefully if the 95% CI of its per-seed Spearman correlation with \
     the fine-tuned test accuracy lies above 0; misleading if it lies below 0; otherwise \
     inconclusive";

/// The verdict from the per-seed Spearman correlations of LogME.
pub fn verdict(rho: &Summary) -> Verdict {
    if rho.above(0.0) {
        Verdict::Supported
    } else if rho.below(0.0) {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
}

const ESTIMATORS: [&str; 4] = ["LogME", "LEEP", "H-score", "shrunk H-score"];

/// Runs X6 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: X6Config = experiments::load_toml(config_path)?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let n = p.per_class;
    let store = opts.run_store();
    // (target, source) → per seed (accuracy, the estimates in the order of ESTIMATORS).
    type Row = (f64, [f64; 4]);
    let mut rows: BTreeMap<(String, String), Vec<Row>> = BTreeMap::new();
    let mut pools: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut rep, done) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for target in &cfg.targets {
            let t = target.label();
            let classes = ctx.data(target, common.recipe.input)?.classes;
            let mut pool: Vec<(String, SourceSpec)> = Vec::new();
            for entry in &p.zoo {
                let spec = SourceSpec::Zoo {
                    entry: entry.clone(),
                };
                if ctx.source_dataset(&spec)? != target.dataset() {
                    pool.push((format!("zoo:{entry}"), spec));
                }
            }
            for s in &cfg.sources {
                if s.data.dataset() != target.dataset() {
                    pool.push((s.name.clone(), s.spec(&common)));
                }
            }
            pools.insert(t.clone(), pool.iter().map(|(n, _)| n.clone()).collect());
            for seed in 0..seeds {
                for (name, spec) in &pool {
                    let run = common.adapt.run(
                        spec.clone(),
                        seed,
                        target.clone(),
                        classes,
                        n,
                        cfg.strategy.clone(),
                    );
                    plan.push(
                        (t.clone(), name.clone()),
                        run,
                        seed,
                        format!("x6 {t} {name} seed {seed}"),
                    );
                }
            }
        }
        let done = ctx.execute(plan)?;
        let rep = experiments::report(
            "X6",
            "transferability estimates vs measured accuracy (beyond the chapter)",
            &["X6"],
            format!(
                "Every source of the pool scored by LogME, LEEP and H-score on the target's N = {n} \
                 examples per class before training, then fine-tuned ({}) on them; rank \
                 correlation between score and test accuracy over the pool, per seed.",
                cfg.strategy.name()
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
        let e = r.estimates.ok_or_else(|| {
            core_tensor::Error::InvalidArgument(
                "x6: the strategy must not be scratch (no source to score)".into(),
            )
        })?;
        rows.entry(cell)
            .or_default()
            .push((r.test_accuracy, e.values()?));
    }

    let mut sources_table = Table::new(
        "x6-sources",
        &[
            "target",
            "source",
            "test accuracy (%)",
            "LogME",
            "LEEP",
            "H-score",
            "shrunk H-score",
        ],
    );
    let mut corr_table = Table::new(
        "x6-rank-correlation",
        &[
            "target",
            "estimator",
            "Spearman over seeds",
            "Kendall over seeds",
            "Spearman of the means",
        ],
    );
    for target in &cfg.targets {
        let t = target.label();
        let pool = &pools[&t];
        let mut plot = Plot {
            id: format!("x6-{t}"),
            title: format!("X6: LogME vs fine-tuned accuracy, target {t} (one point per source)"),
            x_label: "LogME (mean over seeds)".into(),
            y_label: "test accuracy after fine-tuning (%)".into(),
            log_x: false,
            y_scale: 100.0,
            zero_line: false,
            series: Vec::new(),
            reference: Some(
                "You et al. 2021: LogME correlates with fine-tuned accuracy across pre-trained models"
                    .into(),
            ),
        };
        let mut mean_rows: Vec<Row> = Vec::new();
        for name in pool {
            let r = &rows[&(t.clone(), name.clone())];
            let acc = summarize(&r.iter().map(|x| x.0).collect::<Vec<_>>())?;
            let est: Vec<Summary> = (0..ESTIMATORS.len())
                .map(|j| summarize(&r.iter().map(|x| x.1[j]).collect::<Vec<_>>()))
                .collect::<transferlab_report::Result<_>>()?;
            let mut row = vec![Cell::text(&t), Cell::text(name), Cell::pct(acc)];
            row.extend(est.iter().map(|e| Cell::Num(e.mean)));
            sources_table.push(row);
            plot.series.push(Series {
                name: name.clone(),
                points: vec![Point {
                    x: est[0].mean,
                    y: acc,
                }],
            });
            mean_rows.push((acc.mean, std::array::from_fn(|j| est[j].mean)));
        }
        rep.plots.push(plot);
        let mut logme_rho = None;
        for (j, estimator) in ESTIMATORS.iter().enumerate() {
            let mut rho = Vec::new();
            let mut tau = Vec::new();
            #[allow(clippy::needless_range_loop)] // one ranking per seed, across the sources
            for seed in 0..seeds as usize {
                let acc: Vec<f64> = pool
                    .iter()
                    .map(|s| rows[&(t.clone(), s.clone())][seed].0)
                    .collect();
                let score: Vec<f64> = pool
                    .iter()
                    .map(|s| rows[&(t.clone(), s.clone())][seed].1[j])
                    .collect();
                // Undefined when every accuracy ties (then no ranking is right or wrong).
                if let (Ok(r), Ok(k)) = (spearman(&score, &acc), kendall_tau(&score, &acc)) {
                    rho.push(r);
                    tau.push(k);
                }
            }
            let acc_means: Vec<f64> = mean_rows.iter().map(|r| r.0).collect();
            let score_means: Vec<f64> = mean_rows.iter().map(|r| r.1[j]).collect();
            let of_means = spearman(&score_means, &acc_means).ok();
            let (rho_s, tau_s) = if rho.is_empty() {
                (None, None)
            } else {
                (Some(summarize(&rho)?), Some(summarize(&tau)?))
            };
            corr_table.push(vec![
                Cell::text(&t),
                Cell::text(*estimator),
                rho_s
                    .map(Cell::stat)
                    .unwrap_or_else(|| Cell::text("undefined")),
                tau_s
                    .map(Cell::stat)
                    .unwrap_or_else(|| Cell::text("undefined")),
                of_means
                    .map(Cell::Num)
                    .unwrap_or_else(|| Cell::text("undefined")),
            ]);
            if j == 0 {
                logme_rho = rho_s;
            }
        }
        if let Some(rho) = logme_rho {
            let mut v = claim(
                "X6",
                "X6",
                &t,
                verdict(&rho),
                RULE,
                format!(
                    "Spearman(LogME, accuracy) over {} sources, per seed",
                    pool.len()
                ),
                rho,
                "See the rank-correlation table for LEEP and the H-scores.".into(),
            );
            // A correlation is not in accuracy points: undo the report's percent scaling.
            v.effect_label.push_str(" (×100)");
            rep.verdicts.push(v);
        }
    }
    rep.tables.push(sources_table);
    rep.tables.push(corr_table);
    rep.notes.push(
        "LogME is the per-example log evidence of a Bayesian linear model on the source's \
         features (You et al. 2021); LEEP the log expected empirical prediction of the source's \
         own head (Nguyen et al. 2020); H-score the trace of the inter-class feature covariance \
         against the total (Bao et al. 2019), which saturates at C − 1 when there are fewer \
         examples than feature dimensions; the shrunk H-score shrinks the total covariance \
         towards a multiple of the identity by Ledoit and Wolf's estimate first (Ibrahim et al. \
         2022). Scores of different sources are compared on the \
         same target sample."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_reads_the_interval() {
        let s = |v: &[f64]| summarize(v).unwrap();
        assert_eq!(verdict(&s(&[0.8, 0.7, 0.9])), Verdict::Supported);
        assert_eq!(verdict(&s(&[-0.8, -0.7, -0.9])), Verdict::NotSupported);
        assert_eq!(verdict(&s(&[-0.5, 0.7, 0.1])), Verdict::Inconclusive);
    }
}
