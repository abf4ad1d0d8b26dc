//! Experiment X5, audio transfer across speakers (claim T-1 on sound).
//!
//! An M5-style 1-D CNN is pre-trained on the raw waveforms of five FSDD speakers and adapted
//! to the sixth with k recordings per digit, against training on the sixth speaker alone. The
//! held-out speaker's takes 0..`test_takes` are its test set; the k examples (and a validation
//! share) come from its other takes.

use std::collections::BTreeMap;
use std::path::Path;

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::driver::Plan;
use crate::xfer::common::{self as experiments, Adaptation, Results, RunOptions, claim, pts};
use crate::xfer::runner::{DataSpec, LabelMode, PixelMode, Pretrain, PretrainRecipe, SourceSpec};
use transfer::strategy::Strategy;

/// `experiments/x5.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X5Config {
    /// All speakers of the dataset (the source is every speaker but the held-out one).
    pub speakers: Vec<String>,
    /// Takes `0..test_takes` of the held-out speaker are its test set.
    pub test_takes: u32,
    /// How the source is pre-trained.
    pub recipe: PretrainRecipe,
    /// How it is adapted.
    pub adapt: Adaptation,
    /// Profiles.
    pub profiles: BTreeMap<String, X5Profile>,
}

/// Speakers, sizes, strategies and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct X5Profile {
    /// Speakers held out in turn.
    pub held_out: Vec<String>,
    /// Recordings per digit of the held-out speaker.
    pub per_class: Vec<usize>,
    /// Strategies; `scratch` and `fine_tune` must be among them.
    pub strategies: Vec<Strategy>,
    /// Seeds.
    pub seeds: u64,
    /// Pre-train one source per held-out speaker (seed 0) shared by every seed, instead of
    /// one per seed (cheaper; the interval then leaves out the source's own variance).
    pub shared_source: bool,
}

/// The rule for T-1 on sound, fixed before any run (the same as X1's).
pub const RULE: &str = "supported if the 95% CI of (fine_tune - scratch) at the smallest k is above 0 and the \
     mean gain at the largest k is smaller than at the smallest; not supported if that CI is \
     below 0, or above 0 while the gain at the largest k is at least as large; otherwise \
     inconclusive";

/// The verdict from the gains at the smallest and the largest k.
pub fn verdict(smallest: &Summary, largest: &Summary) -> Verdict {
    let shrinks = largest.mean < smallest.mean;
    if smallest.above(0.0) && shrinks {
        Verdict::Supported
    } else if smallest.below(0.0) || (smallest.above(0.0) && !shrinks) {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
}

/// Runs X5 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: X5Config = experiments::load_toml(config_path)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    for needed in [Strategy::Scratch, Strategy::FineTune] {
        if !p.strategies.contains(&needed) {
            return Err(core_tensor::Error::format(
                config_path,
                format!(
                    "profiles.{}.strategies must include {}",
                    opts.profile,
                    needed.name()
                ),
            ));
        }
    }
    let seeds = opts.seeds_or(p.seeds)?;
    let store = opts.run_store();
    let mut results = Results::default();
    let (mut rep, done) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for held in &p.held_out {
            let others: Vec<String> = cfg
                .speakers
                .iter()
                .filter(|s| *s != held)
                .cloned()
                .collect();
            let source = SourceSpec::Pretrain(Pretrain {
                data: DataSpec::Fsdd {
                    speakers: others,
                    test_takes: 5,
                },
                per_class: None,
                labels: LabelMode::True,
                pixels: PixelMode::Original,
                recipe: cfg.recipe.clone(),
            });
            let target = DataSpec::Fsdd {
                speakers: vec![held.clone()],
                test_takes: cfg.test_takes,
            };
            for &k in &p.per_class {
                for seed in 0..seeds {
                    let source_seed = if p.shared_source { 0 } else { seed };
                    for strategy in &p.strategies {
                        let run = cfg.adapt.run(
                            source.clone(),
                            source_seed,
                            target.clone(),
                            10,
                            k,
                            strategy.clone(),
                        );
                        let label = format!("x5 {held} k={k} {} seed {seed}", strategy.name());
                        plan.push(format!("{k}/{}", strategy.name()), run, seed, label);
                    }
                }
            }
        }
        let done = ctx.execute(plan)?;
        let rep = experiments::report(
            "X5",
            "audio transfer across speakers",
            &["T-1"],
            format!(
                "FSDD raw waveforms (M5-style 1-D CNN). Source: pre-trained on the other five \
                 speakers; target: held-out speaker(s) {} with k = {:?} recordings per digit \
                 (test: its takes 0–{}); strategies {}; {} source{}.",
                p.held_out.join(", "),
                p.per_class,
                cfg.test_takes - 1,
                p.strategies
                    .iter()
                    .map(Strategy::name)
                    .collect::<Vec<_>>()
                    .join(", "),
                if p.shared_source { "one" } else { "a" },
                if p.shared_source {
                    " per held-out speaker (seed 0), shared by the seeds"
                } else {
                    " per seed"
                }
            ),
            opts,
            seeds,
            ctx,
            started,
            &cfg,
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
        "x5-speaker-transfer",
        &[
            "k/digit",
            "strategy",
            "accuracy (%)",
            "gain over scratch (points)",
        ],
    );
    let mut acc_plot = Plot {
        id: "x5-accuracy".into(),
        title: "X5: accuracy on a new speaker vs recordings per digit".into(),
        x_label: "recordings per digit of the new speaker (k)".into(),
        y_label: "test accuracy (%)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: false,
        series: Vec::new(),
        reference: Some(
            "T-1: the gain of transfer is largest when the target has little data".into(),
        ),
    };
    for strategy in &p.strategies {
        let mut series = Series {
            name: strategy.name().into(),
            points: Vec::new(),
        };
        for &k in &p.per_class {
            let key = format!("{k}/{}", strategy.name());
            let acc = results.summary(&key)?;
            let gain = if *strategy == Strategy::Scratch {
                Cell::text("—")
            } else {
                Cell::pct(results.gain(&key, &format!("{k}/scratch"))?)
            };
            table.push(vec![
                Cell::int(k as i64),
                Cell::text(strategy.name()),
                Cell::pct(acc),
                gain,
            ]);
            series.points.push(Point {
                x: k as f64,
                y: acc,
            });
        }
        acc_plot.series.push(series);
    }
    rep.plots.push(acc_plot);
    let small = *p.per_class.iter().min().expect("profiles are not empty");
    let large = *p.per_class.iter().max().expect("profiles are not empty");
    let gain_at = |k: usize| results.gain(&format!("{k}/fine_tune"), &format!("{k}/scratch"));
    let (gs, gl) = (gain_at(small)?, gain_at(large)?);
    rep.verdicts.push(claim(
        "T-1",
        "X5",
        "FSDD, new speaker",
        verdict(&gs, &gl),
        RULE,
        format!("fine_tune − scratch at k = {small}, points"),
        gs,
        format!("At k = {large}: {}.", pts(&gl)),
    ));
    rep.tables.push(table);
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::stats::summarize;

    use super::*;

    #[test]
    fn the_rule_reads_the_intervals() {
        let s = |v: &[f64]| summarize(v).unwrap();
        let big = s(&[0.30, 0.32, 0.31]);
        let small = s(&[0.01, 0.02, 0.0]);
        assert_eq!(verdict(&big, &small), Verdict::Supported);
        // Significant at the smallest k but growing with k: not the claimed shape.
        let modest = s(&[0.05, 0.06, 0.055]);
        assert_eq!(verdict(&modest, &big), Verdict::NotSupported);
        assert_eq!(
            verdict(&s(&[-0.05, -0.06, -0.055]), &small),
            Verdict::NotSupported
        );
        assert_eq!(
            verdict(&s(&[-0.1, 0.2, 0.0]), &small),
            Verdict::Inconclusive
        );
    }
}
