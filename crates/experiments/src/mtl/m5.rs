//! Experiment M5, loss balancing (beyond the chapter: Kendall 2018, Chen 2018, Liu 2019, Yu
//! 2020, Xin 2022).
//!
//! M1's scenes with tasks of different type and scale on the same input: the binary presence
//! tasks plus a regression of the number of items (squared error in items², a loss on another
//! scale than the cross-entropies). The shared network under equal weights, a small grid of
//! fixed weights on the count task, uncertainty weighting, GradNorm, DWA and PCGrad; Δm over
//! every task against trained single-task networks, and wall time per training step. No claim
//! is decided; which balancers beat equal weighting is read with Holm's correction over the
//! comparisons ([`comparisons`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{ALPHA, Contrast, Kind, Test};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::{About, Plan};
use crate::margins;
use crate::mtl::common::{
    self as experiments, Recipe, Results, RunOptions, SceneTarget, Setup, delta_m_of, presence,
    raw, scene_data,
};
use crate::mtl::m1::scale;
use multitask::balance::BalancerConfig;

/// `experiments/m5.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M5Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Balancers other than `fixed` (equal first: the reference of the paired differences).
    pub methods: Vec<BalancerConfig>,
    /// Fixed weights of the count task (the presence tasks keep weight 1), one run each.
    pub count_weights: Vec<f64>,
    /// Profiles.
    pub profiles: BTreeMap<String, M5Profile>,
}

/// Presence tasks and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M5Profile {
    /// Classes with a presence task (default: the setup's). PCGrad costs one backward pass
    /// per task, so the quick profile keeps a few.
    #[serde(default)]
    pub classes: Option<Vec<i64>>,
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Serialize)]
struct Resolved<'a> {
    config: &'a M5Config,
    recipe: &'a Recipe,
    setup: &'a Setup,
}

fn method_label(b: &BalancerConfig) -> String {
    match b {
        BalancerConfig::Fixed { weights } => format!(
            "fixed (count weight {})",
            weights.last().copied().unwrap_or(1.0)
        ),
        other => other.name().to_string(),
    }
}

/// "Some balancer beats equal weighting": for every method labelled in `labels` other than
/// equal weighting, Δm over every task (`{name}/dm`, percent) minus equal weighting's
/// (`equal/dm`), paired by seed, is positive — any of them, Holm over the comparisons. It
/// decides no claim (M5 tests none; its components' Holm-adjusted p-values pick the methods
/// its note names). None when there is nothing to compare with equal weighting.
pub fn comparisons(labels: &[String]) -> Option<Contrast> {
    let equal = method_label(&BalancerConfig::Equal);
    let parts: Vec<Contrast> = labels
        .iter()
        .filter(|name| **name != equal)
        .map(|name| {
            Contrast::paired(
                name,
                &[],
                format!("Δm of {name} − Δm of equal weighting"),
                margins::delta_m_percent(),
                Kind::Superiority,
                &format!("{name}/dm"),
                &format!("{equal}/dm"),
                margins::mtl_delta_m(),
            )
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    Contrast::composite(
        "beats-equal",
        &[],
        "some balancer's Δm above equal weighting's",
        Test::AnyOf(parts),
    )
    .ok()
}

/// The methods whose comparison with equal weighting Holm's procedure rejects (family-wise
/// one-sided 2.5%), each with its paired difference as is, from [`comparisons`] on `res`.
fn better_than_equal(labels: &[String], res: &Results) -> Result<Vec<String>> {
    let Some(c) = comparisons(labels) else {
        return Ok(Vec::new());
    };
    let r = c
        .evaluate(res)
        .map_err(|e| Error::InvalidArgument(format!("M5: {e}")))?;
    let mut better = Vec::new();
    for part in &r.components {
        if part.p_value.is_some_and(|p| p <= ALPHA) {
            let name = &part.contrast.id;
            let d = res.gain(&format!("{name}/dm"), "equal/dm")?;
            better.push(format!(
                "{name} ({}, Holm-adjusted p = {:.3})",
                raw(&d),
                part.p_value.unwrap_or(1.0)
            ));
        }
    }
    Ok(better)
}

/// Runs M5 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: M5Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let (recipe, setup) = experiments::load_common(config_path, &cfg.common, &opts.profile)?;
    let classes = p.classes.clone().unwrap_or_else(|| setup.classes.clone());
    experiments::check_classes(&classes, "classes").map_err(|e| {
        e.within(&format!("profiles.{}", opts.profile))
            .in_file(config_path)
    })?;
    let mut targets = presence(&classes);
    targets.push(SceneTarget::Count);
    let specs: Vec<_> = targets.iter().map(|t| t.task()).collect();
    let t = targets.len();
    let mut methods = cfg.methods.clone();
    if methods.first() != Some(&BalancerConfig::Equal) {
        methods.retain(|m| *m != BalancerConfig::Equal);
        methods.insert(0, BalancerConfig::Equal);
    }
    for w in &cfg.count_weights {
        let mut weights = vec![1.0; t];
        weights[t - 1] = *w;
        methods.push(BalancerConfig::Fixed { weights });
    }
    for (i, m) in methods.iter().enumerate() {
        m.validate(t).map_err(|e| {
            Error::format(
                config_path,
                format!("methods[{i}] / count_weights ({}): {e}", method_label(m)),
            )
        })?;
    }
    let seeds = experiments::seeds(opts, p.seeds)?;
    let all: Vec<usize> = (0..t).collect();
    let labels: Vec<String> = methods.iter().map(method_label).collect();
    let mut res = Results::default();
    let (mut rep, outcomes) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for seed in 0..seeds {
            for (i, target) in targets.iter().enumerate() {
                let spec = ctx.spec(
                    scene_data(&setup.data, vec![*target]),
                    &setup.model,
                    BalancerConfig::Equal,
                    &recipe,
                    seed,
                )?;
                let label = format!("m5 single {} seed {seed}", specs[i].name);
                plan.push(format!("single/{i}"), spec, seed, label);
            }
            for (m, name) in methods.iter().zip(&labels) {
                let spec = ctx.spec(
                    scene_data(&setup.data, targets.clone()),
                    &setup.model,
                    m.clone(),
                    &recipe,
                    seed,
                )?;
                plan.push(
                    format!("method/{name}"),
                    spec,
                    seed,
                    format!("m5 {name} seed {seed}"),
                );
            }
        }
        let outcomes = ctx.execute(plan)?;
        let rep = ctx.session().report(
            About {
                id: "M5",
                title: "loss balancing of tasks of different type and scale",
                claims: &[],
            },
            format!(
                "M1's scenes ({} training, {} test) with presence tasks for classes {:?} and a \
                 regression of the number of items (squared error). The shared {} trunk under \
                 each balancer; Δm over the AUC of each presence task and the MAE and RMSE of \
                 the count, against one trained network per task; paired by seed.",
                setup.data.train,
                setup.data.test,
                classes,
                setup.model.name()
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
    for seed in 0..seeds {
        let refs = (0..targets.len())
            .map(|i| out.get(&format!("single/{i}"), seed))
            .collect::<Result<Vec<_>>>()?;
        for name in &labels {
            let r = out.get(&format!("method/{name}"), seed)?;
            res.push(format!("{name}/dm"), delta_m_of(&specs, r, &refs, &all)?);
            res.push(
                format!("{name}/dm-presence"),
                delta_m_of(&specs, r, &refs[..t - 1], &all[..t - 1])?,
            );
            res.push(
                format!("{name}/dm-count"),
                delta_m_of(&specs, r, &refs[t - 1..], &all[t - 1..])?,
            );
            res.push(format!("{name}/sps"), r.seconds_per_step);
        }
    }

    let mut table = Table::new(
        "m5-balancers",
        &[
            "method",
            "Δm all tasks (%)",
            "Δm presence (%)",
            "Δm count (%)",
            "Δm − equal's (%)",
            "ms per step",
        ],
    );
    let mut plot = Plot {
        id: "m5-delta-m-vs-cost".into(),
        title: "M5: Δm against cost per step, per balancer".into(),
        x_label: "milliseconds per training step".into(),
        y_label: "Δm (%)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: true,
        series: Vec::new(),
        reference: Some(
            "Xin et al. 2022, Kurin et al. 2022: a tuned equal-weight sum is usually as good as \
             the balancing methods"
                .into(),
        ),
    };
    for name in &labels {
        let dm = res.summary(&format!("{name}/dm"))?;
        let vs_equal = res.gain(&format!("{name}/dm"), "equal/dm")?;
        let ms = res.summary(&format!("{name}/sps"))?;
        let ms = scale(ms, 1000.0);
        table.push(vec![
            Cell::text(name),
            Cell::stat(dm),
            Cell::stat(res.summary(&format!("{name}/dm-presence"))?),
            Cell::stat(res.summary(&format!("{name}/dm-count"))?),
            Cell::stat(vs_equal),
            Cell::stat(ms),
        ]);
        plot.series.push(Series {
            name: name.clone(),
            points: vec![Point {
                x: ms.mean,
                y: scale(dm, 0.01),
            }],
        });
    }
    let better = better_than_equal(&labels, &res)?;
    rep.tables.push(table);
    rep.plots.push(plot);
    rep.notes.push(format!(
        "No claim of the chapter is judged here. Methods whose Δm is above equal weighting's, \
         corrected for the {} comparisons with it (Holm, family-wise one-sided 2.5%; the table's \
         \"Δm − equal's\" intervals are each at 95%, uncorrected): {}.",
        labels.len().saturating_sub(1),
        if better.is_empty() {
            "none".to_string()
        } else {
            better.join(", ")
        }
    ));
    rep.notes.push(
        "Seconds per step are wall times on a shared machine: compare them within one run of \
         the experiment, not across machines."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["equal", "uncertainty", "gradnorm", "dwa", "pcgrad"]
            .map(String::from)
            .to_vec()
    }

    fn results(dm: &[(&str, [f64; 3])]) -> Results {
        let mut r = Results::default();
        for (name, v) in dm {
            for x in v {
                r.push(format!("{name}/dm"), *x);
            }
        }
        r
    }

    #[test]
    fn the_comparisons_with_equal_weighting_are_corrected() {
        let c = comparisons(&labels()).unwrap();
        assert!(c.claims.is_empty());
        match &c.test {
            Test::AnyOf(parts) => assert_eq!(parts.len(), 4),
            other => panic!("{other:?}"),
        }
        assert!(c.keys().iter().all(|k| k.ends_with("/dm")));
        assert!(comparisons(&labels()[..1]).is_none());
        let base = [-3.0, -2.0, -4.0];
        let noise = [-3.5, -1.0, -4.2];
        // pcgrad is +5 % in every seed (up to ±0.05): Holm keeps it.
        let clear = results(&[
            ("equal", base),
            ("uncertainty", noise),
            ("gradnorm", noise),
            ("dwa", noise),
            ("pcgrad", [2.0, 3.05, 0.95]),
        ]);
        let better = better_than_equal(&labels(), &clear).unwrap();
        assert_eq!(better.len(), 1);
        assert!(better[0].starts_with("pcgrad"), "{better:?}");
        // Δm +0.5, +1.5, +1.0 % over equal (t = 3.46, one-sided p ≈ 0.037): not even
        // significant alone, and nothing passes Holm.
        let weak = results(&[
            ("equal", base),
            ("uncertainty", noise),
            ("gradnorm", noise),
            ("dwa", noise),
            ("pcgrad", [-2.5, -0.5, -3.0]),
        ]);
        assert!(better_than_equal(&labels(), &weak).unwrap().is_empty());
    }
}
