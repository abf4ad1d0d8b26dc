//! Experiment M4, missing labels (claim M-4).
//!
//! M1's scenes and presence tasks with a fraction of the training and validation labels hidden
//! (each label independently, from the seed; the hidden sets of two fractions are nested). The
//! shared network trained with the masked loss over the labels that are present, against the
//! same network trained only on the scenes that still carry every label. Both arms stop early
//! on the same partly labelled validation scenes and are scored on the fully labelled test
//! scenes. A fraction of 0 is M1's shared network (the two arms are the same run).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::driver::Plan;
use crate::mtl::common::{
    self as experiments, DataSpec, Recipe, Results, Rows, RunOptions, RunOutcome, Setup, claim,
    presence, pts,
};
use multitask::balance::BalancerConfig;
use multitask::task::MetricKind;

/// `experiments/m4.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M4Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Profiles.
    pub profiles: BTreeMap<String, M4Profile>,
}

/// Fractions and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M4Profile {
    /// Fractions of labels hidden, each in `[0, 1)`.
    pub hidden: Vec<f64>,
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Serialize)]
struct Resolved<'a> {
    config: &'a M4Config,
    recipe: &'a Recipe,
    setup: &'a Setup,
}

/// The rule for M-4, fixed before any run.
pub const RULE: &str = "with d(f) the mean test AUC over tasks of the masked-loss network minus \
     that of the network trained on the fully labelled scenes only, at hidden fraction f (paired \
     by seed): supported if the CI of d(f) lies above 0 at every f > 0; not supported if it lies \
     below 0 at some f > 0; otherwise inconclusive";

/// The verdict from `d(f)` at the fractions `f > 0`.
pub fn verdict(diffs: &[Summary]) -> Verdict {
    if diffs.is_empty() {
        Verdict::Inconclusive
    } else if diffs.iter().any(|d| d.below(0.0)) {
        Verdict::NotSupported
    } else if diffs.iter().all(|d| d.above(0.0)) {
        Verdict::Supported
    } else {
        Verdict::Inconclusive
    }
}

fn mean_metric(r: &RunOutcome, tasks: usize, m: MetricKind) -> Result<f64> {
    let mut sum = 0.0;
    for t in 0..tasks {
        sum += r.metric(t, m)?;
    }
    Ok(sum / tasks as f64)
}

/// Runs M4 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: M4Config = experiments::load_toml(config_path)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let (recipe, setup) = experiments::load_common(config_path, &cfg.common, &opts.profile)?;
    let mut hidden = p.hidden.clone();
    if hidden.is_empty() || hidden.iter().any(|f| !(0.0..1.0).contains(f)) {
        return Err(Error::format(
            config_path,
            format!(
                "profiles.{}.hidden: list fractions in [0, 1), e.g. [0.0, 0.5, 0.9]",
                opts.profile
            ),
        ));
    }
    hidden.sort_by(f64::total_cmp);
    hidden.dedup();
    let seeds = experiments::seeds(opts, p.seeds)?;
    let store = opts.run_store();
    let targets = presence(&setup.classes);
    let t = targets.len();
    let mut res = Results::default();
    let (mut rep, outcomes) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for seed in 0..seeds {
            for &f in &hidden {
                let arm = |rows: Rows| DataSpec::Scenes {
                    scenes: setup.data.clone(),
                    targets: targets.clone(),
                    hide: f,
                    // With nothing hidden both arms are the same run.
                    rows: if f == 0.0 { Rows::All } else { rows },
                };
                for (rows, name) in [(Rows::All, "masked"), (Rows::FullyLabelled, "full-only")] {
                    let spec = ctx.spec(
                        arm(rows),
                        &setup.model,
                        BalancerConfig::Equal,
                        &recipe,
                        seed,
                    )?;
                    let label = format!("m4 {name} hidden {f} seed {seed}");
                    plan.push(format!("{name}/{f}"), spec, seed, label);
                }
            }
        }
        let outcomes = ctx.execute(plan)?;
        let rep = experiments::report(
            "M4",
            "missing labels: masked loss vs fully labelled examples only",
            &["M-4"],
            format!(
                "M1's scenes ({} training, {} validation, {} test) and presence tasks for \
                 classes {:?}, with a fraction f in {:?} of the training and validation labels \
                 hidden at random. The shared network trained with the loss over present labels \
                 vs trained on the fully labelled training scenes only; equal loss weights; \
                 paired by seed.",
                setup.data.train, setup.data.validation, setup.data.test, setup.classes, hidden
            ),
            opts,
            seeds,
            ctx,
            started,
            &Resolved {
                config: &cfg,
                recipe: &recipe,
                setup: &setup,
            },
        );
        Ok((rep, outcomes))
    })?;
    let Some(out) = outcomes else {
        return Ok(rep);
    };
    for (cell, _, r) in out.iter() {
        res.push(format!("{cell}/auc"), mean_metric(r, t, MetricKind::Auc)?);
        res.push(
            format!("{cell}/bacc"),
            mean_metric(r, t, MetricKind::BalancedAccuracy)?,
        );
        res.push(format!("{cell}/n"), r.train_examples as f64);
    }

    let mut table = Table::new(
        "m4-missing-labels",
        &[
            "hidden (%)",
            "fully labelled scenes",
            "masked AUC (%)",
            "full-only AUC (%)",
            "AUC gain (points)",
            "masked bal. acc (%)",
            "full-only bal. acc (%)",
            "bal. acc gain (points)",
        ],
    );
    let mut masked = Series {
        name: "masked loss over present labels".into(),
        points: Vec::new(),
    };
    let mut full = Series {
        name: "fully labelled scenes only".into(),
        points: Vec::new(),
    };
    let mut diffs = Vec::new();
    for &f in &hidden {
        let k = |name: &str, m: &str| format!("{name}/{f}/{m}");
        let d = res.gain(&k("masked", "auc"), &k("full-only", "auc"))?;
        table.push(vec![
            Cell::Num(100.0 * f),
            Cell::stat(res.summary(&k("full-only", "n"))?),
            Cell::pct(res.summary(&k("masked", "auc"))?),
            Cell::pct(res.summary(&k("full-only", "auc"))?),
            Cell::pct(d),
            Cell::pct(res.summary(&k("masked", "bacc"))?),
            Cell::pct(res.summary(&k("full-only", "bacc"))?),
            Cell::pct(res.gain(&k("masked", "bacc"), &k("full-only", "bacc"))?),
        ]);
        masked.points.push(Point {
            x: f,
            y: res.summary(&k("masked", "auc"))?,
        });
        full.points.push(Point {
            x: f,
            y: res.summary(&k("full-only", "auc"))?,
        });
        if f > 0.0 {
            diffs.push((f, d));
        }
    }
    let v = verdict(&diffs.iter().map(|(_, d)| *d).collect::<Vec<_>>());
    if let Some(&(f, d)) = diffs.last() {
        rep.verdicts.push(claim(
            "M-4",
            "M4",
            "presence tasks with hidden labels",
            v,
            RULE,
            format!(
                "mean AUC, masked − fully labelled only, at {:.0}% hidden (points)",
                100.0 * f
            ),
            d,
            format!(
                "Per fraction: {}.",
                diffs
                    .iter()
                    .map(|(f, d)| format!("{:.0}%: {}", 100.0 * f, pts(d)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    } else {
        rep.notes
            .push("No fraction above 0 in the profile: no verdict.".into());
    }
    rep.tables.push(table);
    rep.plots.push(Plot {
        id: "m4-auc-vs-hidden".into(),
        title: "M4: mean test AUC vs fraction of labels hidden".into(),
        x_label: "fraction of labels hidden".into(),
        y_label: "mean AUC over tasks (%)".into(),
        log_x: false,
        y_scale: 100.0,
        zero_line: false,
        series: vec![masked, full],
        reference: None,
    });
    rep.notes.push(
        "With T tasks and labels hidden independently, a scene keeps every label with \
         probability (1 − f)^T: discarding partly labelled scenes throws most of the data away. \
         A network with no fully labelled scene to train on is scored as initialised (AUC near \
         50%)."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::stats::summarize;

    use super::*;

    #[test]
    fn the_rule_reads_the_intervals() {
        let s = |v: &[f64]| summarize(v).unwrap();
        let up = s(&[0.05, 0.06, 0.07]);
        let flat = s(&[-0.01, 0.01, 0.0]);
        let down = s(&[-0.05, -0.06, -0.07]);
        assert_eq!(verdict(&[up, up]), Verdict::Supported);
        assert_eq!(verdict(&[up, flat]), Verdict::Inconclusive);
        assert_eq!(verdict(&[up, down]), Verdict::NotSupported);
        assert_eq!(verdict(&[]), Verdict::Inconclusive);
    }
}
