//! Experiment M6, unrelated tasks (the converse of claim M-1).
//!
//! A focal presence task ("is there a 3") trained jointly with `R` tasks whose labels are fair
//! coins drawn per scene (they share nothing with the image), against the focal task's own
//! network (M1's single-task run). For contrast, the gain of the same task in M1's network
//! shared with the other presence tasks (related tasks).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::driver::Plan;
use crate::mtl::common::{
    self as experiments, Recipe, Results, RunOptions, SceneTarget, Setup, claim, presence, pts,
    scene_data,
};
use multitask::balance::BalancerConfig;
use multitask::task::MetricKind;

/// `experiments/m6.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M6Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Profiles.
    pub profiles: BTreeMap<String, M6Profile>,
}

/// Focal tasks, numbers of random tasks and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M6Profile {
    /// Classes whose presence task is a focal task (each must be one of the setup's classes).
    pub focal: Vec<i64>,
    /// Numbers `R` of random-label tasks paired with a focal task.
    pub random_tasks: Vec<u64>,
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Serialize)]
struct Resolved<'a> {
    config: &'a M6Config,
    recipe: &'a Recipe,
    setup: &'a Setup,
}

/// The rule for the converse of M-1, fixed before any run.
pub const RULE: &str = "with g(R) the focal tasks' mean test AUC jointly with R random-label tasks \
     minus alone (paired by seed): supported (unrelated tasks do not help, and hurt) if no CI of \
     g(R) lies above 0 and at least one lies below 0; not supported if some CI lies above 0; \
     otherwise inconclusive (no significant effect either way)";

/// The verdict from `g(R)` for each `R`.
pub fn verdict(gains: &[Summary]) -> Verdict {
    if gains.iter().any(|g| g.above(0.0)) {
        Verdict::NotSupported
    } else if gains.iter().any(|g| g.below(0.0)) {
        Verdict::Supported
    } else {
        Verdict::Inconclusive
    }
}

/// Runs M6 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: M6Config = experiments::load_toml(config_path)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let (recipe, setup) = experiments::load_common(config_path, &cfg.common, &opts.profile)?;
    let at = |why: String| Error::format(config_path, format!("profiles.{}.{why}", opts.profile));
    if p.focal.is_empty() {
        return Err(at("focal: list at least one class".into()));
    }
    if let Some(c) = p.focal.iter().find(|c| !setup.classes.contains(c)) {
        return Err(at(format!(
            "focal: class {c} has no presence task in the setup (classes {:?})",
            setup.classes
        )));
    }
    let mut rs = p.random_tasks.clone();
    rs.sort_unstable();
    rs.dedup();
    if rs.is_empty() || rs.contains(&0) {
        return Err(at(
            "random_tasks: list numbers of random tasks, each at least 1".into(),
        ));
    }
    let seeds = experiments::seeds(opts, p.seeds)?;
    let store = opts.run_store();
    let related = presence(&setup.classes);
    let mut res = Results::default();
    let (mut rep, outcomes) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for seed in 0..seeds {
            let shared = ctx.spec(
                scene_data(&setup.data, related.clone()),
                &setup.model,
                BalancerConfig::Equal,
                &recipe,
                seed,
            )?;
            plan.push(
                "related".into(),
                shared,
                seed,
                format!("m6 related (M1 shared) seed {seed}"),
            );
            for &c in &p.focal {
                let focal = SceneTarget::Presence { class: c };
                let spec = ctx.spec(
                    scene_data(&setup.data, vec![focal]),
                    &setup.model,
                    BalancerConfig::Equal,
                    &recipe,
                    seed,
                )?;
                plan.push(
                    format!("alone/{c}"),
                    spec,
                    seed,
                    format!("m6 single has{c} seed {seed}"),
                );
                for &r in &rs {
                    let mut targets = vec![focal];
                    targets.extend((0..r).map(|index| SceneTarget::Random { index }));
                    let spec = ctx.spec(
                        scene_data(&setup.data, targets),
                        &setup.model,
                        BalancerConfig::Equal,
                        &recipe,
                        seed,
                    )?;
                    let label = format!("m6 has{c} + {r} random seed {seed}");
                    plan.push(format!("R{r}/{c}"), spec, seed, label);
                }
            }
        }
        let outcomes = ctx.execute(plan)?;
        let rep = experiments::report(
            "M6",
            "unrelated tasks: a task paired with random-label tasks",
            &["M-1"],
            format!(
                "M1's scenes ({} training, {} test). Focal presence tasks for classes {:?}, each \
                 trained jointly with R in {:?} tasks whose labels are fair coins per scene, \
                 against its own network; for contrast, the same task in M1's network shared \
                 with the presence tasks of classes {:?}. {} trunk, equal loss weights; focal \
                 metrics averaged over the focal tasks, paired by seed.",
                setup.data.train,
                setup.data.test,
                p.focal,
                rs,
                setup.classes,
                setup.model.name()
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
    for seed in 0..seeds {
        let shared = out.get("related", seed)?;
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        for &c in &p.focal {
            let alone = out.get(&format!("alone/{c}"), seed)?;
            let col = setup.classes.iter().position(|&k| k == c).unwrap_or(0);
            let mut add = |key: String, v: f64| *sums.entry(key).or_default() += v;
            for (m, n) in [
                (MetricKind::Auc, "auc"),
                (MetricKind::BalancedAccuracy, "bacc"),
            ] {
                add(format!("alone/{n}"), alone.metric(0, m)?);
                add(format!("related/{n}"), shared.metric(col, m)?);
            }
            for &r in &rs {
                let joint = out.get(&format!("R{r}/{c}"), seed)?;
                for (m, n) in [
                    (MetricKind::Auc, "auc"),
                    (MetricKind::BalancedAccuracy, "bacc"),
                ] {
                    add(format!("R{r}/{n}"), joint.metric(0, m)?);
                }
            }
        }
        for (k, v) in sums {
            res.push(k, v / p.focal.len() as f64);
        }
    }

    let mut table = Table::new(
        "m6-unrelated-tasks",
        &[
            "paired with",
            "focal AUC (%)",
            "alone AUC (%)",
            "AUC gain (points)",
            "focal bal. acc (%)",
            "alone bal. acc (%)",
            "bal. acc gain (points)",
        ],
    );
    let mut row = |name: String, key: &str| -> Result<Summary> {
        let g = res.gain(&format!("{key}/auc"), "alone/auc")?;
        table.push(vec![
            Cell::text(name),
            Cell::pct(res.summary(&format!("{key}/auc"))?),
            Cell::pct(res.summary("alone/auc")?),
            Cell::pct(g),
            Cell::pct(res.summary(&format!("{key}/bacc"))?),
            Cell::pct(res.summary("alone/bacc")?),
            Cell::pct(res.gain(&format!("{key}/bacc"), "alone/bacc")?),
        ]);
        Ok(g)
    };
    let mut series = Series {
        name: "random-label tasks".into(),
        points: Vec::new(),
    };
    let mut gains = Vec::new();
    for &r in &rs {
        let g = row(format!("{r} random-label tasks"), &format!("R{r}"))?;
        series.points.push(Point { x: r as f64, y: g });
        gains.push(g);
    }
    let related = row(
        format!(
            "the other presence tasks ({} in all, M1)",
            setup.classes.len()
        ),
        "related",
    )?;
    let largest = *gains.last().expect("random_tasks is not empty");
    rep.verdicts.push(claim(
        "M-1",
        "M6",
        "converse: unrelated (random-label) tasks",
        verdict(&gains),
        RULE,
        format!(
            "focal AUC gain with {} random tasks (points)",
            rs.last().expect("random_tasks is not empty")
        ),
        largest,
        format!(
            "Gains per R: {}; with related tasks (M1's shared network): {}.",
            rs.iter()
                .zip(&gains)
                .map(|(r, g)| format!("R={r}: {}", pts(g)))
                .collect::<Vec<_>>()
                .join(", "),
            pts(&related)
        ),
    ));
    rep.tables.push(table);
    rep.plots.push(Plot {
        id: "m6-gain-vs-random-tasks".into(),
        title: "M6: focal AUC gain when paired with random-label tasks".into(),
        x_label: "random-label tasks R".into(),
        y_label: "joint − alone (AUC points)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: true,
        series: vec![series],
        reference: None,
    });
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
        assert_eq!(verdict(&[flat, down]), Verdict::Supported);
        assert_eq!(verdict(&[flat, flat]), Verdict::Inconclusive);
        assert_eq!(verdict(&[down, up]), Verdict::NotSupported);
    }
}
