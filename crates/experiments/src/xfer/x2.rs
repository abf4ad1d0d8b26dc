//! Experiment X2, the source-size sweep (claim T-2).
//!
//! A LeNet is pre-trained on M MNIST examples per class, M = r·N for each ratio r of the
//! profile (and on all of MNIST), then fine-tuned on N examples per class of each target; the
//! gain over training from scratch on the same N is measured per seed, as a function of M/N.
//! T-2 is decided by the contrasts declared in [`contrasts`] before any run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::Plan;
use crate::margins;
use crate::xfer::common::{self as experiments, Common, Results, RunOptions};
use crate::xfer::runner::{DataSpec, LabelMode, PixelMode, Pretrain, SourceSpec};
use transfer::strategy::Strategy;

/// `experiments/x2.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X2Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// The source dataset.
    pub source: DataSpec,
    /// Targets.
    pub targets: Vec<DataSpec>,
    /// How sources are adapted (compared with scratch).
    pub strategy: Strategy,
    /// Profiles.
    pub profiles: BTreeMap<String, X2Profile>,
}

/// Sizes and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X2Profile {
    /// Target examples per class (N).
    pub per_class: usize,
    /// Source sizes as multiples of N (M = r·N per class, at least 1).
    pub ratios: Vec<f64>,
    /// Also pre-train on the whole source training set.
    pub include_all: bool,
    /// Seeds.
    pub seeds: u64,
}

/// The resolved configuration, stored in the report.
#[derive(Debug, Clone, Serialize)]
struct Resolved<'a> {
    config: &'a X2Config,
    common: &'a Common,
}

/// The source sizes of a profile, per class, in its order: `Some(M)` for M = r·N (at least 1)
/// per ratio r, then `None` for the whole source training set when `include_all`.
pub fn source_sizes(p: &X2Profile) -> Vec<Option<usize>> {
    let n = p.per_class;
    let mut sizes: Vec<Option<usize>> = p
        .ratios
        .iter()
        .map(|r| Some(((r * n as f64).round() as usize).max(1)))
        .collect();
    if p.include_all {
        sizes.push(None);
    }
    sizes
}

/// The label of a source size (`5`, `all`).
fn label_m(m: Option<usize>) -> String {
    m.map(|m| m.to_string()).unwrap_or_else(|| "all".into())
}

/// Where the per-seed test accuracy of a target's runs is filed: `{target}/{M}` for a source of
/// M examples per class (`all`), `{target}/scratch` for its baseline.
pub fn result_key(target: &str, arm: &str) -> String {
    format!("{target}/{arm}")
}

/// The contrasts that decide T-2, declared from the config before any run: for every target
/// and every source size M ≤ N (the source has as little data as the target, or less), the
/// gain of fine-tuning that source over scratch is no gain worth having (no meaningful gain,
/// δ = [`margins::transfer_gain`]; any harm allowed). The whole source training set ("all",
/// MNIST's 6,000 per class) is never ≤ N. The sources are pre-trained per seed, so the seeds
/// replicate them.
pub fn contrasts(cfg: &X2Config, p: &X2Profile) -> Vec<Contrast> {
    let n = p.per_class;
    let mut small: Vec<usize> = source_sizes(p)
        .into_iter()
        .flatten()
        .filter(|&m| m <= n)
        .collect();
    small.sort_unstable();
    small.dedup();
    let mut out = Vec::new();
    for target in &cfg.targets {
        let t = target.label();
        for &m in &small {
            out.push(Contrast::paired(
                &format!("{t}/M={m}"),
                &["T-2"],
                format!(
                    "{t}: fine-tune from {m} source examples per class − scratch, N = {n}/class"
                ),
                margins::accuracy_points(),
                Kind::NoMeaningfulGain,
                &result_key(&t, &m.to_string()),
                &result_key(&t, "scratch"),
                margins::transfer_gain(),
            ));
        }
    }
    out
}

/// Runs X2 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: X2Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let n = p.per_class;
    let sizes = source_sizes(p);
    let source_for = |m: Option<usize>| {
        SourceSpec::Pretrain(Pretrain {
            data: cfg.source.clone(),
            per_class: m,
            labels: LabelMode::True,
            pixels: PixelMode::Original,
            recipe: common.recipe.clone(),
        })
    };
    let mut results = Results::default();
    let mut m_of_all = 0usize;
    let mut test_sizes = std::collections::BTreeMap::new();
    let (mut rep, done) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        let input = common.recipe.input;
        m_of_all = ctx.data(&cfg.source, input)?.train.len() / 10;
        for target in &cfg.targets {
            let data = ctx.data(target, input)?;
            let (classes, t) = (data.classes, target.label());
            test_sizes.insert(t.clone(), data.test.len());
            for seed in 0..seeds {
                let scratch = common.adapt.run(
                    source_for(None),
                    seed,
                    target.clone(),
                    classes,
                    n,
                    Strategy::Scratch,
                );
                plan.push(
                    format!("{t}/scratch"),
                    scratch,
                    seed,
                    format!("x2 {t} scratch seed {seed}"),
                );
                for &m in &sizes {
                    let run = common.adapt.run(
                        source_for(m),
                        seed,
                        target.clone(),
                        classes,
                        n,
                        cfg.strategy.clone(),
                    );
                    let label = format!("x2 {t} M={}/class seed {seed}", label_m(m));
                    plan.push(format!("{t}/{}", label_m(m)), run, seed, label);
                }
            }
        }
        let done = ctx.execute(plan)?;
        let rep = ctx.session().report(
            crate::driver::About {
                id: "X2",
                title: "source-size sweep",
                claims: &["T-2"],
            },
            format!(
                "LeNet sources pre-trained on M {} examples per class (M = r·N for r in {:?}{}), \
                 each fine-tuned ({}) on N = {n} examples per class of {}; compared with scratch on \
                 the same N, paired by seed.",
                cfg.source.label(),
                p.ratios,
                if p.include_all { ", and all" } else { "" },
                cfg.strategy.name(),
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
        "x2-source-size",
        &[
            "target",
            "M/class",
            "M/N",
            "accuracy (%)",
            "scratch (%)",
            "gain (points)",
        ],
    );
    let mut plot = Plot {
        id: "x2-gain-vs-ratio".into(),
        title: "X2: gain of pre-training over scratch vs source size".into(),
        x_label: "M/N (source examples per target example)".into(),
        y_label: "fine-tune − scratch (accuracy points)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: true,
        series: Vec::new(),
        reference: Some(
            "T-2: little or no gain when the source has as little data as the target (M/N ≤ 1)"
                .into(),
        ),
    };
    for target in &cfg.targets {
        let t = target.label();
        let mut series = Series {
            name: t.clone(),
            points: Vec::new(),
        };
        let scratch_key = result_key(&t, "scratch");
        for &m in &sizes {
            let key = result_key(&t, &label_m(m));
            let gain = results.gain(&key, &scratch_key)?;
            let m_count = m.unwrap_or(m_of_all);
            let ratio = m_count as f64 / n as f64;
            table.push(vec![
                Cell::text(&t),
                Cell::text(label_m(m)),
                Cell::Num(ratio),
                Cell::pct(results.summary(&key)?),
                Cell::pct(results.summary(&scratch_key)?),
                Cell::pct(gain),
            ]);
            series.points.push(Point { x: ratio, y: gain });
        }
        plot.series.push(series);
    }
    crate::driver::decide(&mut rep, &results, contrasts(&cfg, p))?;
    rep.tables.push(table);
    rep.plots.push(plot);
    rep.notes.push(format!(
        "Sources are trained for at least {} steps of {} examples (at most {} epochs), so a small \
         source is seen many times over; \"all\" is MNIST's {} training images.",
        common.recipe.min_steps,
        common.recipe.train.batch_size,
        common.recipe.max_epochs,
        m_of_all * 10
    ));
    rep.notes.push(
        "T-2 is decided at the source sizes M <= N only; the larger sources (up to all of MNIST) \
         show in the table and the plot whether pre-training helps at all on these targets."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::contrast::Outcome;

    use super::*;

    fn config() -> X2Config {
        // The file as the profiles without overrides read it.
        crate::driver::load_toml(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/transfer/x2.toml"),
        )
        .unwrap()
    }

    /// Every result key the run files, as its plan does.
    fn planned_keys(cfg: &X2Config, p: &X2Profile) -> Vec<String> {
        let mut keys = Vec::new();
        for target in &cfg.targets {
            let t = target.label();
            keys.push(format!("{t}/scratch"));
            for m in source_sizes(p) {
                keys.push(format!("{t}/{}", label_m(m)));
            }
        }
        keys
    }

    fn results(cfg: &X2Config, p: &X2Profile, gain: f64) -> Results {
        let mut r = Results::default();
        for key in planned_keys(cfg, p) {
            let g = if key.ends_with("/scratch") { 0.0 } else { gain };
            for seed in 0..3 {
                r.push(
                    key.clone(),
                    0.5 + g + ((key.len() * 7 + seed * 13) % 5) as f64 * 0.001,
                );
            }
        }
        r
    }

    #[test]
    fn the_contrasts_cover_every_small_source_and_read_only_result_keys() {
        let cfg = config();
        for p in cfg.profiles.values() {
            let planned = planned_keys(&cfg, p);
            let cs = contrasts(&cfg, p);
            let small = source_sizes(p)
                .into_iter()
                .flatten()
                .filter(|&m| m <= p.per_class)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            assert!(small > 0);
            assert_eq!(cs.len(), small * cfg.targets.len());
            for c in &cs {
                assert_eq!(c.claims, ["T-2"]);
                for k in c.keys() {
                    assert!(planned.iter().any(|p| p == k), "{k} is not a result key");
                    assert!(!k.ends_with("/all"), "{k}: all of MNIST is never <= N");
                }
            }
        }
    }

    #[test]
    fn no_gain_is_supported_and_a_large_gain_contradicted() {
        let cfg = config();
        let p = &cfg.profiles["quick"];
        let cs = contrasts(&cfg, p);
        for c in &cs {
            let none = results(&cfg, p, 0.0);
            assert_eq!(c.evaluate(&none).unwrap().outcome, Outcome::Supported);
            // Harm is allowed.
            let harm = results(&cfg, p, -0.1);
            assert_eq!(c.evaluate(&harm).unwrap().outcome, Outcome::Supported);
            let gain = results(&cfg, p, 0.15);
            assert_eq!(c.evaluate(&gain).unwrap().outcome, Outcome::Contradicted);
        }
    }
}
