//! Experiment X6, transferability estimates against measured accuracy (beyond the chapter).
//!
//! Before fine-tuning, every source of a pool (zoo entries and networks pre-trained here on
//! related, smaller, unrelated and corrupted data) is scored on the target's training sample by
//! LogME, LEEP and the H-score; then each is fine-tuned on that sample and tested. Per seed,
//! the rank correlation (Spearman, Kendall) between each score and the accuracy over the
//! sources says how well the cheap score would have chosen the source.
//!
//! The claim "X6" (a cheap transferability estimate ranks sources by their fine-tuned accuracy)
//! is decided by the contrasts declared in [`contrasts`] before any run: LogME is the primary
//! estimate, fixed before the runs; LEEP and the H-scores are reported in a table, undecided.
//!
//! The fine-tuning runs are the same runs as X2's and X4's where the source, target and
//! settings agree, so after those experiments X6 adds only its zoo sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind, Quantity, Test, Unit};
use transferlab_report::stats::{Results, Summary, summarize, summarize_proportion};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::Plan;
use crate::margins;
use crate::xfer::common::{self as experiments, Common, RunOptions};
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

/// The estimate that decides the claim, chosen before any run (You et al. 2021's LogME); the
/// others of [`ESTIMATORS`] are reported without a decision.
pub const PRIMARY: &str = "LogME";

/// Where the per-seed values of a source on a target are filed: `{target}/{source}/accuracy`
/// for its fine-tuned test accuracy, `{target}/{source}/{estimator}` for a score of
/// [`ESTIMATORS`].
pub fn result_key(target: &str, source: &str, what: &str) -> String {
    format!("{target}/{source}/{what}")
}

/// The pool of sources compared on `target`, in plan order, with their names: the profile's
/// zoo entries (`zoo:{entry}`), then the configured sources, each left out when it was trained
/// on the target's own dataset (`dataset_of` names a source's dataset).
pub fn pool(
    cfg: &X6Config,
    common: &Common,
    p: &X6Profile,
    target: &DataSpec,
    mut dataset_of: impl FnMut(&SourceSpec) -> Result<&'static str>,
) -> Result<Vec<(String, SourceSpec)>> {
    let mut pool: Vec<(String, SourceSpec)> = Vec::new();
    for entry in &p.zoo {
        let spec = SourceSpec::Zoo {
            entry: entry.clone(),
        };
        if dataset_of(&spec)? != target.dataset() {
            pool.push((format!("zoo:{entry}"), spec));
        }
    }
    for s in &cfg.sources {
        if s.data.dataset() != target.dataset() {
            pool.push((s.name.clone(), s.spec(common)));
        }
    }
    Ok(pool)
}

/// The contrasts that decide the claim, declared from each target's pool of sources (names in
/// plan order) before any run: per target, Spearman's ρ over the sources between the seed-mean
/// [`PRIMARY`] score and the seed-mean fine-tuned accuracy is positive (superiority of ρ, its
/// exact permutation p-value over the sources; δ = [`margins::correlation`]). The unit of
/// replication is the source: the pool is a fixed set, so the inference is about this pool,
/// and the contrasts are marked shared. A pool of fewer than 3 sources ranks nothing and gets
/// no contrast.
pub fn contrasts(pools: &BTreeMap<String, Vec<String>>) -> Vec<Contrast> {
    pools
        .iter()
        .filter(|(_, pool)| pool.len() >= 3)
        .map(|(t, pool)| {
            let keys = |what: &str| -> Vec<String> {
                pool.iter().map(|s| result_key(t, s, what)).collect()
            };
            Contrast {
                id: format!("{t}/{PRIMARY}"),
                claims: vec!["X6".into()],
                label: format!(
                    "{t}: Spearman ρ({PRIMARY}, fine-tuned accuracy) over the {} sources of the \
                     pool (seed means; the unit of replication is the source)",
                    pool.len()
                ),
                unit: Unit::new("ρ", 1.0),
                test: Test::Single {
                    kind: Kind::Superiority,
                    quantity: Quantity::Spearman {
                        x: keys(PRIMARY),
                        y: keys("accuracy"),
                    },
                },
                margin: margins::correlation(),
                replication: None,
            }
            .shared(format!(
                "a fixed pool of {} sources, some of them zoo checkpoints shared by every seed: ρ \
                 is over the sources (seed means), so the inference is about this pool",
                pool.len()
            ))
        })
        .collect()
}

/// The transferability estimates, in the order of [`crate::xfer::runner::Estimates::values`].
pub const ESTIMATORS: [&str; 4] = ["LogME", "LEEP", "H-score", "shrunk H-score"];

/// Runs X6 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: X6Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let n = p.per_class;
    // (target, source) → per seed (accuracy, the estimates in the order of ESTIMATORS).
    type Row = (f64, [f64; 4]);
    let mut rows: BTreeMap<(String, String), Vec<Row>> = BTreeMap::new();
    let mut pools: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut test_sizes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut rep, done) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for target in &cfg.targets {
            let t = target.label();
            let data = ctx.data(target, common.recipe.input)?;
            let classes = data.classes;
            test_sizes.insert(t.clone(), data.test.len());
            let pool = pool(&cfg, &common, p, target, |spec| ctx.source_dataset(spec))?;
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
        let rep = ctx.session().report(
            crate::driver::About {
                id: "X6",
                title: "transferability estimates vs measured accuracy (beyond the chapter)",
                claims: &["X6"],
            },
            format!(
                "Every source of the pool scored by LogME, LEEP and H-score on the target's N = {n} \
                 examples per class before training, then fine-tuned ({}) on them; rank \
                 correlation between score and test accuracy over the pool, per seed.",
                cfg.strategy.name()
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
    // The same values by result key, for the contrasts.
    let mut per_seed = Results::default();
    for (cell, r) in done {
        let e = r.estimates.ok_or_else(|| {
            core_tensor::Error::InvalidArgument(
                "x6: the strategy must not be scratch (no source to score)".into(),
            )
        })?;
        let values = e.values()?;
        let (t, source) = &cell;
        per_seed.push(result_key(t, source, "accuracy"), r.test_accuracy);
        for (name, v) in ESTIMATORS.iter().zip(values) {
            per_seed.push(result_key(t, source, name), v);
        }
        rows.entry(cell)
            .or_default()
            .push((r.test_accuracy, values));
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
            // A proportion of the target's test set: its interval stays in [0, 1].
            let acc =
                summarize_proportion(&r.iter().map(|x| x.0).collect::<Vec<_>>(), test_sizes[&t])?;
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
        }
    }
    crate::driver::decide(&mut rep, &per_seed, contrasts(&pools))?;
    rep.notes.push(format!(
        "{PRIMARY} is the primary estimate, chosen before any run: the claim is decided by \
         Spearman's ρ over the sources between its seed-mean score and the seed-mean fine-tuned \
         accuracy (the unit of replication is the source; the pool is fixed). {} are reported \
         in the rank-correlation table without a decision.",
        ESTIMATORS[1..].join(", ")
    ));
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
    use pretrained_zoo::registry::Registry;
    use transferlab_report::contrast::Outcome;

    use super::*;

    fn config() -> (X6Config, Common) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transfer/x6.toml");
        let cfg: X6Config = experiments::load_toml(&path).unwrap();
        let common = experiments::load_common(&path, &cfg.common).unwrap();
        (cfg, common)
    }

    /// Each target's pool, as the run builds it (zoo datasets from the built-in registry).
    fn pools(cfg: &X6Config, common: &Common, p: &X6Profile) -> BTreeMap<String, Vec<String>> {
        let registry = Registry::builtin().unwrap();
        let dataset_of = |spec: &SourceSpec| -> Result<&'static str> {
            Ok(match spec {
                SourceSpec::Zoo { entry } => registry.entry(entry)?.recipe.data.dataset(),
                SourceSpec::Pretrain(p) => p.data.dataset(),
                SourceSpec::Untrained { .. } => "none",
            })
        };
        cfg.targets
            .iter()
            .map(|t| {
                let pool = pool(cfg, common, p, t, dataset_of).unwrap();
                (t.label(), pool.into_iter().map(|(n, _)| n).collect())
            })
            .collect()
    }

    /// Per-seed values of every key the run files: each source's accuracy and scores, with
    /// LogME `logme(i)` for the i-th source of accuracy `0.5 + 0.03 i`.
    fn results(pools: &BTreeMap<String, Vec<String>>, logme: impl Fn(usize) -> f64) -> Results {
        let mut r = Results::default();
        for (t, pool) in pools {
            for (i, source) in pool.iter().enumerate() {
                for seed in 0..3 {
                    let noise = ((i * 7 + seed * 13) % 5) as f64 * 0.001;
                    r.push(
                        result_key(t, source, "accuracy"),
                        0.5 + 0.03 * i as f64 + noise,
                    );
                    for (j, e) in ESTIMATORS.iter().enumerate() {
                        let v = if *e == PRIMARY { logme(i) } else { j as f64 };
                        r.push(result_key(t, source, e), v + noise);
                    }
                }
            }
        }
        r
    }

    #[test]
    fn the_contrasts_read_only_keys_the_runs_file() {
        let (cfg, common) = config();
        for p in cfg.profiles.values() {
            let pools = pools(&cfg, &common, p);
            // Sources on the target's own dataset are left out.
            assert!(!pools["fashion-mnist"].iter().any(|s| s == "fashion-mnist"));
            for z in &p.zoo {
                assert!(pools["uci-digits"].iter().any(|s| *s == format!("zoo:{z}")));
            }
            let filed = results(&pools, |i| i as f64);
            let cs = contrasts(&pools);
            assert_eq!(cs.len(), cfg.targets.len());
            for c in &cs {
                assert_eq!(c.claims, ["X6"]);
                assert!(c.replication.is_some(), "a fixed pool of sources");
                assert!(c.label.contains("unit of replication is the source"));
                for k in c.keys() {
                    assert!(filed.get(k).is_ok(), "{k} is not a result key");
                }
            }
        }
    }

    #[test]
    fn a_score_that_orders_the_sources_is_supported_and_a_reversed_one_contradicted() {
        let (cfg, common) = config();
        let pools = pools(&cfg, &common, &cfg.profiles["quick"]);
        let cs = contrasts(&pools);
        let ordered = results(&pools, |i| -10.0 + i as f64);
        let reversed = results(&pools, |i| -(i as f64));
        for c in &cs {
            assert_eq!(c.evaluate(&ordered).unwrap().outcome, Outcome::Supported);
            assert_eq!(
                c.evaluate(&reversed).unwrap().outcome,
                Outcome::Contradicted
            );
        }
    }
}
