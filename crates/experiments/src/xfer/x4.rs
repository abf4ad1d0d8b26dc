//! Experiment X4, source relatedness and negative transfer (claim T-3).
//!
//! Sources of the same architecture pre-trained with the same recipe on related and unrelated
//! data (MNIST; Fashion-MNIST; MNIST with shuffled labels; MNIST with a fixed pixel
//! permutation) are fine-tuned on small target sets and compared with training from scratch,
//! paired by seed. A source whose gain has a 95% CI below zero is negative transfer. A source
//! trained on the target's own dataset is skipped for that target (it would be the target's
//! labels, not transfer). T-3 is decided by the contrasts declared in [`contrasts`] before any
//! run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind, Test};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::Plan;
use crate::margins;
use crate::xfer::common::{self as experiments, Common, Results, RunOptions, pts};
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

/// Whether `source` is compared on `target`: not when it was trained on the target's own
/// dataset (that would be the target's labels, not transfer).
pub fn applies(source: &SourceVariant, target: &DataSpec) -> bool {
    source.data.dataset() != target.dataset()
}

/// Where the per-seed test accuracy is filed: `{target}/{N}/scratch` for the baseline,
/// `{target}/{N}/{source}/{strategy}` for a source adapted by a strategy.
pub fn result_key(target: &str, n: usize, arm: &str) -> String {
    format!("{target}/{n}/{arm}")
}

/// The contrasts that decide T-3, declared from the config before any run: per target, every
/// source marked unrelated, in every strategy and at every N, gives no gain worth having over
/// scratch (all of k no-meaningful-gain contrasts, δ = [`margins::transfer_gain`]; harm is
/// allowed, and negative transfer is reported beside, not decided). A source whose pixels are
/// permuted uses one fixed permutation for every seed, so its components are marked shared.
pub fn contrasts(cfg: &X4Config, p: &X4Profile) -> Vec<Contrast> {
    let mut out = Vec::new();
    for target in &cfg.targets {
        let t = target.label();
        let mut parts = Vec::new();
        for s in cfg
            .sources
            .iter()
            .filter(|s| s.unrelated && applies(s, target))
        {
            for strategy in &p.strategies {
                for &n in &p.per_class {
                    let arm = format!("{}/{}", s.name, strategy.name());
                    let c = Contrast::paired(
                        &format!("{t}/{n}/{arm}"),
                        &[],
                        format!(
                            "{t}: {} ({}) − scratch at N = {n}/class",
                            s.name,
                            strategy.name()
                        ),
                        margins::accuracy_points(),
                        Kind::NoMeaningfulGain,
                        &result_key(&t, n, &arm),
                        &result_key(&t, n, "scratch"),
                        margins::transfer_gain(),
                    );
                    parts.push(if s.pixels == PixelMode::Permuted {
                        c.shared(
                            "one fixed pixel permutation serves every seed: the seeds replicate \
                             the source's training and the target draw, not the permutation",
                        )
                    } else {
                        c
                    });
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        let k = parts.len();
        out.push(
            Contrast::composite(
                &format!("{t}/unrelated"),
                &["T-3"],
                format!("{t}: every unrelated source (×strategy ×N, {k}) − scratch, no gain"),
                Test::AllOf(parts),
            )
            .expect("an all-of with components"),
        );
    }
    out
}

/// Runs X4 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: X4Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let mut results = Results::default();
    let mut test_sizes = std::collections::BTreeMap::new();
    let (mut rep, done) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for target in &cfg.targets {
            let data = ctx.data(target, common.recipe.input)?;
            let (classes, t) = (data.classes, target.label());
            test_sizes.insert(t.clone(), data.test.len());
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
        let rep = ctx.session().report(
            crate::driver::About {
                id: "X4",
                title: "source relatedness and negative transfer",
                claims: &["T-3"],
            },
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
    }
    crate::driver::decide(&mut rep, &results, contrasts(&cfg, p))?;
    rep.tables.push(table);
    rep.notes.push(if negative.is_empty() {
        "No negative transfer: no source's gain over scratch has a 95% CI below 0 (reported, \
         not decided: T-3's \"can hurt\" is a possibility, not a prediction)."
            .into()
    } else {
        format!(
            "Negative transfer (gain CI below 0; reported, not decided): {}.",
            negative.join("; ")
        )
    });
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::contrast::Outcome;

    use super::*;

    fn config() -> X4Config {
        // The file as the profiles without overrides read it.
        crate::driver::load_toml(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transfer/x4.toml"),
        )
        .unwrap()
    }

    /// Every result key the run files, as its plan does.
    fn planned_keys(cfg: &X4Config, p: &X4Profile) -> Vec<String> {
        let mut keys = Vec::new();
        for target in &cfg.targets {
            let t = target.label();
            for &n in &p.per_class {
                keys.push(format!("{t}/{n}/scratch"));
                for s in cfg.sources.iter().filter(|s| applies(s, target)) {
                    for strategy in &p.strategies {
                        keys.push(format!("{t}/{n}/{}/{}", s.name, strategy.name()));
                    }
                }
            }
        }
        keys
    }

    /// Accuracy per planned key: the unrelated sources `unrelated` above scratch, the related
    /// ones 10 points above; seed noise differs between cells.
    fn results(cfg: &X4Config, p: &X4Profile, unrelated: f64) -> Results {
        let names: Vec<&str> = cfg
            .sources
            .iter()
            .filter(|s| s.unrelated)
            .map(|s| s.name.as_str())
            .collect();
        let mut r = Results::default();
        for key in planned_keys(cfg, p) {
            let g = if key.ends_with("/scratch") {
                0.0
            } else if names.iter().any(|n| key.contains(&format!("/{n}/"))) {
                unrelated
            } else {
                0.1
            };
            for seed in 0..3 {
                let noise = ((key.len() * 7 + seed * 13 + key.len() * seed) % 5) as f64 * 0.001;
                r.push(key.clone(), 0.5 + g + noise);
            }
        }
        r
    }

    #[test]
    fn the_contrasts_cover_every_unrelated_source_and_read_only_result_keys() {
        let cfg = config();
        for p in cfg.profiles.values() {
            let planned = planned_keys(&cfg, p);
            let cs = contrasts(&cfg, p);
            assert_eq!(cs.len(), cfg.targets.len());
            for c in &cs {
                assert_eq!(c.claims, ["T-3"]);
                let Test::AllOf(parts) = &c.test else {
                    panic!("{}: all of k", c.id)
                };
                // Two unrelated sources per target, every strategy and N.
                assert_eq!(parts.len(), 2 * p.strategies.len() * p.per_class.len());
                assert!(parts.iter().any(|c| c.replication.is_some()));
                for k in c.keys() {
                    assert!(planned.iter().any(|p| p == k), "{k} is not a result key");
                    assert!(
                        !k.contains("/mnist/") && !k.contains("/fashion-mnist/"),
                        "{k}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_gain_or_harm_is_supported_and_a_gain_contradicted() {
        let cfg = config();
        let p = &cfg.profiles["full"];
        let cs = contrasts(&cfg, p);
        for c in &cs {
            for harmless in [0.0, -0.1] {
                let r = results(&cfg, p, harmless);
                assert_eq!(
                    c.evaluate(&r).unwrap().outcome,
                    Outcome::Supported,
                    "{}",
                    c.id
                );
            }
            let r = results(&cfg, p, 0.1);
            assert_eq!(
                c.evaluate(&r).unwrap().outcome,
                Outcome::Contradicted,
                "{}",
                c.id
            );
        }
    }
}
