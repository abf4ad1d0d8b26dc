//! Experiment M1, multi-label scenes (claims M-1 and M-5).
//!
//! Scenes of 0–k MNIST digits; one binary presence task per class ("is there a 3"), like the
//! chapter's pedestrian / car / stop-sign / traffic-light labels. One shared trunk with a head
//! per task against one network per task of the same architecture, trained on the same scenes
//! with the same recipe; per-task accuracy, balanced accuracy and AUC on the test scenes and Δm
//! (the AUC of every task, see [`crate::mtl::common::delta_metrics`]) against the trained
//! single-task networks, paired by seed. Plain accuracy is reported but not judged: a class is
//! absent from most scenes (86% of them with 0–3 digits), so a network that always answers
//! "absent" is that accurate. One declared contrast ([`contrasts`]) decides both claims.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind};
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::{About, Plan, decide};
use crate::margins;
use crate::mtl::common::{
    self as experiments, Outcomes, Recipe, Results, RunOptions, SEPARATE_DELTA_M, Setup,
    delta_m_of, presence, scene_data,
};
use multitask::balance::BalancerConfig;
use multitask::task::{MetricKind, TaskSpec};

/// `experiments/m1.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M1Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Profiles.
    pub profiles: BTreeMap<String, M1Profile>,
}

/// Seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M1Profile {
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Serialize)]
struct Resolved<'a> {
    config: &'a M1Config,
    recipe: &'a Recipe,
    setup: &'a Setup,
}

/// The contrast deciding M-1 and M-5, declared before any run: Δm (percent, result key
/// `delta_m`) of the shared network against one network per task, over the AUC of every
/// presence task, is positive. Δm pairs the two by seed itself, so it is read against the
/// separate networks' own Δm, 0 ([`SEPARATE_DELTA_M`]).
///
/// It decides both claims: M-1 ("MTL helps when the tasks can share low-level features") and
/// M-5's detection-like exception (one network for several object-presence tasks beats
/// separate detectors). The per-class AUC differences are shown, not judged.
pub fn contrasts() -> Vec<Contrast> {
    vec![Contrast::paired(
        "delta-m",
        &["M-1", "M-5"],
        "Δm of the shared network against one network per task (AUC of every presence task)",
        margins::delta_m_percent(),
        Kind::Superiority,
        "delta_m",
        SEPARATE_DELTA_M,
        margins::mtl_delta_m(),
    )]
}

/// The per-seed results of M1's runs (cells `shared` and `single/{i}`, seeds `0..seeds`):
/// `shared/{i}/{acc|bacc|auc}`, `single/{i}/{acc|bacc|auc}`, `delta_m` (percent),
/// [`SEPARATE_DELTA_M`], `params/shared` and `params/single`.
pub fn results(out: &Outcomes, specs: &[TaskSpec], seeds: u64) -> Result<Results> {
    let all: Vec<usize> = (0..specs.len()).collect();
    let mut res = Results::default();
    for seed in 0..seeds {
        let mtl = out.get("shared", seed)?;
        let singles = (0..specs.len())
            .map(|i| out.get(&format!("single/{i}"), seed))
            .collect::<Result<Vec<_>>>()?;
        for (i, s) in singles.iter().enumerate() {
            for (m, name) in [
                (MetricKind::Accuracy, "acc"),
                (MetricKind::BalancedAccuracy, "bacc"),
                (MetricKind::Auc, "auc"),
            ] {
                res.push_proportion(
                    format!("shared/{i}/{name}"),
                    mtl.metric(i, m)?,
                    experiments::test_size(mtl, i)?,
                );
                res.push_proportion(
                    format!("single/{i}/{name}"),
                    s.metric(0, m)?,
                    experiments::test_size(s, 0)?,
                );
            }
        }
        res.push("delta_m", delta_m_of(specs, mtl, &singles, &all)?);
        res.push(SEPARATE_DELTA_M, 0.0);
        res.push("params/shared", mtl.parameters as f64);
        res.push(
            "params/single",
            singles.iter().map(|s| s.parameters as f64).sum::<f64>(),
        );
    }
    Ok(res)
}

/// Runs M1 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: M1Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let (recipe, setup) = experiments::load_common(config_path, &cfg.common, &opts.profile)?;
    let seeds = experiments::seeds(opts, p.seeds)?;
    let classes = &setup.classes;
    let targets = presence(classes);
    let specs: Vec<_> = targets.iter().map(|t| t.task()).collect();
    let declared = contrasts();
    let shared_params = experiments::parameter_count(&setup.model, &specs)?;
    let (mut rep, outcomes) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for seed in 0..seeds {
            let mtl_spec = ctx.spec(
                scene_data(&setup.data, targets.clone()),
                &setup.model,
                BalancerConfig::Equal,
                &recipe,
                seed,
            )?;
            plan.push(
                "shared".into(),
                mtl_spec,
                seed,
                format!("m1 shared seed {seed}"),
            );
            for (i, t) in targets.iter().enumerate() {
                let spec = ctx.spec(
                    scene_data(&setup.data, vec![*t]),
                    &setup.model,
                    BalancerConfig::Equal,
                    &recipe,
                    seed,
                )?;
                let label = format!("m1 single {} seed {seed}", specs[i].name);
                plan.push(format!("single/{i}"), spec, seed, label);
            }
        }
        let outcomes = ctx.execute(plan)?;
        let rep = ctx.session().report(
            About {
                id: "M1",
                title: "multi-label scenes: one shared network vs one network per task",
                claims: &experiments::claims_of(&declared),
            },
            format!(
                "{} training scenes ({}), {} validation scenes for early stopping, {} test \
                 scenes; one presence task per class {:?}. A {} trunk ({} parameters with its \
                 heads) against one network of the same architecture per task, trained on the \
                 same scenes with the same recipe; equal loss weights; paired by seed.",
                setup.data.train,
                setup.data.describe(),
                setup.data.validation,
                setup.data.test,
                classes,
                setup.model.name(),
                shared_params,
            ),
            seeds,
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
    let res = results(&out, &specs, seeds)?;

    let mut table = Table::new(
        "m1-per-task",
        &[
            "task",
            "shared acc (%)",
            "separate acc (%)",
            "shared bal. acc (%)",
            "separate bal. acc (%)",
            "bal. acc gain (points)",
            "shared AUC (%)",
            "separate AUC (%)",
            "AUC gain (points)",
        ],
    );
    let mut acc_series = Series {
        name: "balanced accuracy".into(),
        points: Vec::new(),
    };
    let mut auc_series = Series {
        name: "AUC".into(),
        points: Vec::new(),
    };
    for (i, s) in specs.iter().enumerate() {
        let bacc = res.gain(&format!("shared/{i}/bacc"), &format!("single/{i}/bacc"))?;
        let auc = res.gain(&format!("shared/{i}/auc"), &format!("single/{i}/auc"))?;
        table.push(vec![
            Cell::text(&s.name),
            Cell::pct(res.summary(&format!("shared/{i}/acc"))?),
            Cell::pct(res.summary(&format!("single/{i}/acc"))?),
            Cell::pct(res.summary(&format!("shared/{i}/bacc"))?),
            Cell::pct(res.summary(&format!("single/{i}/bacc"))?),
            Cell::pct(bacc),
            Cell::pct(res.summary(&format!("shared/{i}/auc"))?),
            Cell::pct(res.summary(&format!("single/{i}/auc"))?),
            Cell::pct(auc),
        ]);
        let x = classes[i] as f64;
        acc_series.points.push(Point { x, y: bacc });
        auc_series.points.push(Point { x, y: auc });
    }
    let dm = res.summary("delta_m")?;
    let mut summary = Table::new(
        "m1-delta-m",
        &["Δm (%)", "shared params", "separate params (all)"],
    );
    summary.push(vec![
        Cell::stat(dm),
        Cell::Num(res.summary("params/shared")?.mean),
        Cell::Num(res.summary("params/single")?.mean),
    ]);
    decide(&mut rep, &res, declared)?;
    rep.tables.push(summary);
    rep.tables.push(table);
    rep.plots.push(Plot {
        id: "m1-gain-per-class".into(),
        title: "M1: shared network − one network per task, per class".into(),
        x_label: "class".into(),
        y_label: "shared − separate (points)".into(),
        log_x: false,
        y_scale: 100.0,
        zero_line: true,
        series: vec![acc_series, auc_series],
        reference: Some(
            "Caruana 1997: MTL error reductions of roughly 5–12% (pneumonia), 20–35% (1D-DOORS)"
                .into(),
        ),
    });
    rep.notes.push(
        "Δm averages, over tasks, the relative change of the AUC against the task's own trained \
         network (LibMTL's definition); positive means the shared network is better. AUC needs \
         no threshold and ignores the base rate: a class is absent from most scenes (86% of \
         them with 0–3 digits, 82% with 0–4), and always answering \"absent\" is that accurate \
         (balanced accuracy 50%, AUC 50%). Balanced accuracy reads the logit-0 threshold, \
         which on a rare class moves with each network's calibration; it is shown, not judged."
            .into(),
    );
    rep.notes.push(
        "M-5's first half (transfer is used more often than MTL) is about practice and is not \
         measured; only the detection-like exception is, by the same Δm as M-1. The per-class \
         AUC differences in the table are shown, not judged (one interval per class, not \
         corrected for multiplicity)."
            .into(),
    );
    Ok(rep)
}

/// `s` with every value multiplied by `f` (the report prints effects ×100).
pub fn scale(s: Summary, f: f64) -> Summary {
    Summary {
        n: s.n,
        mean: s.mean * f,
        std: s.std.map(|v| v * f.abs()),
        ci95: s.ci95.map(|(lo, hi)| {
            let (a, b) = (lo * f, hi * f);
            (a.min(b), a.max(b))
        }),
        range: s.range.map(|(lo, hi)| {
            let (a, b) = (lo * f, hi * f);
            (a.min(b), a.max(b))
        }),
    }
}

#[cfg(test)]
mod tests {
    use transferlab_report::contrast::Outcome;
    use transferlab_report::stats::summarize;

    use super::*;
    use crate::mtl::common::test_outcome;

    /// Outcomes of three tasks over three seeds: the separate networks at AUC 0.90, the shared
    /// network at `0.90 + lift[seed]` on every task.
    fn outcomes(lift: [f64; 3]) -> Outcomes {
        let mut out = Outcomes::default();
        for (seed, l) in lift.iter().enumerate() {
            let seed = seed as u64;
            out.insert("shared", seed, test_outcome(&[0.9 + l; 3]));
            for i in 0..3 {
                out.insert(format!("single/{i}"), seed, test_outcome(&[0.9]));
            }
        }
        out
    }

    fn specs() -> Vec<TaskSpec> {
        presence(&[0, 1, 2]).iter().map(|t| t.task()).collect()
    }

    #[test]
    fn the_contrast_reads_delta_m_in_percent() {
        let c = contrasts();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].claims, ["M-1", "M-5"]);
        // +0.018, +0.027, +0.0225 AUC on 0.90: Δm = +2, +3, +2.5 %.
        let up = results(&outcomes([0.018, 0.027, 0.0225]), &specs(), 3).unwrap();
        let dm = up.summary("delta_m").unwrap();
        assert!((dm.mean - 2.5).abs() < 1e-9, "{dm:?}");
        assert_eq!(c[0].evaluate(&up).unwrap().outcome, Outcome::Supported);
        // Δm = −2, −3, −2.5 %: the shared network is worse.
        let down = results(&outcomes([-0.018, -0.027, -0.0225]), &specs(), 3).unwrap();
        assert_eq!(c[0].evaluate(&down).unwrap().outcome, Outcome::Contradicted);
        // Δm = −0.1, +0.1, 0 %: inside ±0.5 %, no gain worth having.
        let flat = results(&outcomes([-0.0009, 0.0009, 0.0]), &specs(), 3).unwrap();
        assert_eq!(
            c[0].evaluate(&flat).unwrap().outcome,
            Outcome::NoEffectWorthHaving
        );
    }

    #[test]
    fn the_contrast_reads_keys_the_results_hold() {
        let res = results(&outcomes([0.01, 0.02, 0.03]), &specs(), 3).unwrap();
        for c in contrasts() {
            for k in c.keys() {
                assert_eq!(res.get(k).unwrap().len(), 3, "{k}");
            }
        }
        assert!(res.get("shared/2/auc").is_ok() && res.get("single/2/bacc").is_ok());
    }

    #[test]
    fn scaling_keeps_the_interval_ordered() {
        let s = summarize(&[1.0, 2.0, 3.0]).unwrap();
        let t = scale(s, -0.01);
        let (lo, hi) = t.ci95.unwrap();
        assert!(lo < hi && (t.mean + 0.02).abs() < 1e-12);
    }
}
