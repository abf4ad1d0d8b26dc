//! Experiment X2, the source-size sweep (claim T-2).
//!
//! A LeNet is pre-trained on M MNIST examples per class, M = r·N for each ratio r of the
//! profile (and on all of MNIST), then fine-tuned on N examples per class of each target; the
//! gain over training from scratch on the same N is measured per seed, as a function of M/N.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::driver::Plan;
use crate::xfer::common::{self as experiments, Common, Results, RunOptions, claim, pts};
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

/// The rule for T-2, fixed before any run.
pub const RULE: &str = "supported if the gain of pre-training on all the source data has its 95% CI above 0 \
     and, at every M <= N, the upper end of the gain's CI is below half that gain; not supported \
     if the largest-M gain is above 0 and at some M <= N the lower end of the gain's CI is at \
     least half of it; otherwise inconclusive";

/// The verdict from the gains at M ≤ N and the gain at the largest M.
pub fn verdict(
    small: &[transferlab_report::stats::Summary],
    largest: &transferlab_report::stats::Summary,
) -> Verdict {
    if !largest.above(0.0) {
        return Verdict::Inconclusive;
    }
    let half = largest.mean / 2.0;
    if small.iter().all(|g| g.below(half)) {
        Verdict::Supported
    } else if small.iter().any(|g| g.above(half - f64::EPSILON)) {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
}

/// Runs X2 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: X2Config = experiments::load_toml(config_path)?;
    let common = experiments::load_common(config_path, &cfg.common)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let n = p.per_class;
    let mut sizes: Vec<Option<usize>> = p
        .ratios
        .iter()
        .map(|r| Some(((r * n as f64).round() as usize).max(1)))
        .collect();
    if p.include_all {
        sizes.push(None);
    }
    let store = opts.run_store();
    let source_for = |m: Option<usize>| {
        SourceSpec::Pretrain(Pretrain {
            data: cfg.source.clone(),
            per_class: m,
            labels: LabelMode::True,
            pixels: PixelMode::Original,
            recipe: common.recipe.clone(),
        })
    };
    let label_m = |m: Option<usize>| m.map(|m| m.to_string()).unwrap_or_else(|| "all".into());
    let mut results = Results::default();
    let mut m_of_all = 0usize;
    let (mut rep, done) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        let input = common.recipe.input;
        m_of_all = ctx.data(&cfg.source, input)?.train.len() / 10;
        for target in &cfg.targets {
            let classes = ctx.data(target, input)?.classes;
            let t = target.label();
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
        let rep = experiments::report(
            "X2",
            "source-size sweep",
            &["T-2"],
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
        let mut small = Vec::new();
        let mut largest = None;
        for &m in &sizes {
            let key = format!("{t}/{}", label_m(m));
            let gain = results.gain(&key, &format!("{t}/scratch"))?;
            let m_count = m.unwrap_or(m_of_all);
            let ratio = m_count as f64 / n as f64;
            table.push(vec![
                Cell::text(&t),
                Cell::text(label_m(m)),
                Cell::Num(ratio),
                Cell::pct(results.summary(&key)?),
                Cell::pct(results.summary(&format!("{t}/scratch"))?),
                Cell::pct(gain),
            ]);
            series.points.push(Point { x: ratio, y: gain });
            if m_count <= n {
                small.push(gain);
            }
            largest = Some(gain);
        }
        plot.series.push(series);
        let largest = largest.expect("profiles have at least one size");
        let v = verdict(&small, &largest);
        rep.verdicts.push(claim(
            "T-2",
            "X2",
            &t,
            v,
            RULE,
            format!("gain at the largest M ({}/class), points", m_of_all),
            largest,
            format!(
                "Gains at M <= N: {}.",
                small.iter().map(pts).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
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
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::stats::summarize;

    use super::*;

    #[test]
    fn the_rule_reads_the_intervals() {
        let s = |v: &[f64]| summarize(v).unwrap();
        let big = s(&[0.20, 0.22, 0.21]);
        assert_eq!(verdict(&[s(&[0.0, 0.01, -0.01])], &big), Verdict::Supported);
        assert_eq!(
            verdict(&[s(&[0.15, 0.16, 0.17])], &big),
            Verdict::NotSupported
        );
        assert_eq!(verdict(&[s(&[0.0, 0.2, 0.1])], &big), Verdict::Inconclusive);
        assert_eq!(
            verdict(&[s(&[0.0, 0.01, -0.01])], &s(&[-0.1, 0.2, 0.0])),
            Verdict::Inconclusive
        );
    }
}
