//! Experiment M3, capacity sweep (claim M-3, Caruana: MTL only hurts when the network is too
//! small).
//!
//! M1's scenes and presence tasks with the setup's trunk at width `w` for each `w` of the
//! profile ([`at_width`]: a convolutional trunk with `w` channels in its last block and the
//! earlier blocks in proportion, or a one-hidden-layer MLP of `w` units). At each width: the shared network against (a) one network per task of the
//! same width, and (b) one network per task of the width whose total over the tasks has about
//! the shared network's parameter count. Δm of the shared network against each, per seed; the
//! width below which MTL loses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::{Error, Result};
use pretrained_zoo::arch::{ArchConfig, FaceCnnConfig, MlpConfig, SpectrogramCnnConfig};
use serde::{Deserialize, Serialize};
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table, Verdict};

use crate::driver::Plan;
use crate::mtl::common::{
    self as experiments, Recipe, Results, RunOptions, RunOutcome, Setup, claim, delta_m_of,
    parameter_count, presence, raw, scene_data,
};
use crate::mtl::m1::scale;
use multitask::balance::BalancerConfig;
use multitask::task::TaskSpec;

/// `experiments/m3.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M3Config {
    /// The common settings file, relative to this one.
    pub common: PathBuf,
    /// Profiles.
    pub profiles: BTreeMap<String, M3Profile>,
}

/// Widths, tasks and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M3Profile {
    /// Trunk widths (one hidden layer).
    pub widths: Vec<i64>,
    /// Classes with a presence task (default: the setup's).
    #[serde(default)]
    pub classes: Option<Vec<i64>>,
    /// Seeds.
    pub seeds: u64,
}

#[derive(Debug, Serialize)]
struct Resolved<'a> {
    config: &'a M3Config,
    recipe: &'a Recipe,
    setup: &'a Setup,
}

/// The rule for M-3, fixed before any run.
pub const RULE: &str = "with Δm(w) the shared network of width w against one network per task \
     of width w, \"MTL loses at w\" when the CI of Δm(w) lies below 0: not supported if MTL loses \
     at the largest width, or loses at some width while its CI lies above 0 at a smaller one; \
     supported if MTL loses at one or more widths, all of them smaller than every width where it \
     does not lose; otherwise (including no width where it loses) inconclusive";

/// The verdict from Δm per width (widths in increasing order), and the width from which on MTL
/// no longer loses (`None`: it loses at the largest width, or the widths are empty).
pub fn verdict(dms: &[Summary], widths: &[i64]) -> (Verdict, Option<i64>) {
    let Some(last) = dms.last() else {
        return (Verdict::Inconclusive, None);
    };
    let loses: Vec<bool> = dms.iter().map(|d| d.below(0.0)).collect();
    let stops = loses
        .iter()
        .rposition(|&l| l)
        .map_or(widths.first().copied(), |i| widths.get(i + 1).copied());
    let wins_below_a_loss = loses
        .iter()
        .enumerate()
        .any(|(i, &l)| l && dms[..i].iter().any(|d| d.above(0.0)));
    if last.below(0.0) || wins_below_a_loss {
        return (Verdict::NotSupported, stops);
    }
    let first_not = loses.iter().position(|&l| !l).unwrap_or(loses.len());
    let clean = loses[first_not..].iter().all(|&l| !l);
    if first_not > 0 && clean {
        (Verdict::Supported, stops)
    } else {
        (Verdict::Inconclusive, stops)
    }
}

/// The setup's trunk at width `w`: an MLP becomes one hidden layer of `w` units; a plain CNN
/// (`face_cnn`, `spectrogram_cnn`) keeps its number of blocks and their proportions, every
/// block's channels scaled by `w / (last block's channels)` and rounded (at least 1), so that
/// its last block, the features the heads read, has `w` channels. At the setup's own last
/// width this is the setup's trunk, so those runs are shared with M1.
pub fn at_width(model: &ArchConfig, w: i64) -> Result<ArchConfig> {
    let scale = |channels: &[i64]| -> Vec<i64> {
        let last = *channels.last().unwrap_or(&1) as f64;
        channels
            .iter()
            .map(|&c| ((c as f64 * w as f64 / last).round() as i64).max(1))
            .collect()
    };
    Ok(match model {
        ArchConfig::Mlp(m) => ArchConfig::Mlp(MlpConfig {
            inputs: m.inputs,
            hidden: vec![w],
            classes: m.classes,
        }),
        ArchConfig::FaceCnn(c) => ArchConfig::FaceCnn(FaceCnnConfig {
            channels: scale(&c.channels),
            classes: c.classes,
        }),
        ArchConfig::SpectrogramCnn(c) => ArchConfig::SpectrogramCnn(SpectrogramCnnConfig {
            channels: scale(&c.channels),
            classes: c.classes,
        }),
        other => {
            return Err(Error::InvalidArgument(format!(
                "M3 sweeps the width of an mlp, face_cnn or spectrogram_cnn trunk, not of a {}",
                other.name()
            )));
        }
    })
}

/// What a width is for `model`'s kind of trunk, in words.
fn width_meaning(model: &ArchConfig) -> String {
    match model {
        ArchConfig::Mlp(_) => "w units in one hidden layer".into(),
        _ => "w channels in the last block, the earlier blocks in the setup's proportions".into(),
    }
}

/// The width `v ≥ 1` whose `tasks` single-task networks (the setup's trunk at width `v`)
/// together have the parameter count closest to `target`.
fn matched_width(model: &ArchConfig, tasks: usize, target: i64, max: i64) -> Result<i64> {
    let one = [TaskSpec::binary("t")];
    let mut best = (i64::MAX, 1);
    for v in 1..=max {
        let total = tasks as i64 * parameter_count(&at_width(model, v)?, &one)?;
        let gap = (total - target).abs();
        if gap < best.0 {
            best = (gap, v);
        }
        if total > target {
            break;
        }
    }
    Ok(best.1)
}

/// Runs M3 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: M3Config = experiments::load_toml(config_path)?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let (recipe, setup) = experiments::load_common(config_path, &cfg.common, &opts.profile)?;
    let classes = p.classes.clone().unwrap_or_else(|| setup.classes.clone());
    let at = |e: Error| {
        e.within(&format!("profiles.{}", opts.profile))
            .in_file(config_path)
    };
    experiments::check_classes(&classes, "classes").map_err(at)?;
    let mut widths = p.widths.clone();
    if widths.is_empty() || widths.iter().any(|&w| w < 1) {
        return Err(at(Error::InvalidArgument(
            "widths: list widths, each at least 1".into(),
        )));
    }
    widths.sort_unstable();
    widths.dedup();
    let seeds = experiments::seeds(opts, p.seeds)?;
    let store = opts.run_store();
    let targets = presence(&classes);
    let specs: Vec<_> = targets.iter().map(|t| t.task()).collect();
    let all: Vec<usize> = (0..classes.len()).collect();
    let trunk = |w: i64| at_width(&setup.model, w);
    let mut res = Results::default();
    let mut matched = Vec::new();
    for &w in &widths {
        let shared = parameter_count(&trunk(w)?, &specs)?;
        let v = matched_width(&setup.model, specs.len(), shared, w)?;
        let one = parameter_count(&trunk(v)?, &specs[..1])?;
        let same = parameter_count(&trunk(w)?, &specs[..1])?;
        matched.push((
            w,
            v,
            shared,
            one * specs.len() as i64,
            same * specs.len() as i64,
        ));
    }
    let (mut rep, outcomes) = experiments::with_context(&store, opts, on_run, |ctx| {
        let mut plan = Plan::new();
        for seed in 0..seeds {
            for &(w, v, ..) in &matched {
                let spec = ctx.spec(
                    scene_data(&setup.data, targets.clone()),
                    &trunk(w)?,
                    BalancerConfig::Equal,
                    &recipe,
                    seed,
                )?;
                plan.push(
                    format!("shared/{w}"),
                    spec,
                    seed,
                    format!("m3 shared w={w} seed {seed}"),
                );
                for width in if v == w { vec![w] } else { vec![w, v] } {
                    for (i, t) in targets.iter().enumerate() {
                        let spec = ctx.spec(
                            scene_data(&setup.data, vec![*t]),
                            &trunk(width)?,
                            BalancerConfig::Equal,
                            &recipe,
                            seed,
                        )?;
                        let label = format!("m3 single {} w={width} seed {seed}", specs[i].name);
                        plan.push(format!("single/{width}/{i}/for {w}"), spec, seed, label);
                    }
                }
            }
        }
        let outcomes = ctx.execute(plan)?;
        let rep = experiments::report(
            "M3",
            "capacity sweep: shared trunk width",
            &["M-3"],
            format!(
                "M1's scenes ({} training, {} test) with presence tasks for classes {:?}; the \
                 setup's {} trunk at width w in {:?} ({}). At each w the shared network \
                 against one network per task of width w, and against one network per task of \
                 the width whose total parameter count is closest to the shared network's. \
                 Δm over the tasks' AUC, paired by seed.",
                setup.data.train,
                setup.data.test,
                classes,
                setup.model.name(),
                widths,
                width_meaning(&setup.model),
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
        for &(w, v, ..) in &matched {
            let mtl = out.get(&format!("shared/{w}"), seed)?;
            let singles = |width: i64| -> Result<Vec<&RunOutcome>> {
                (0..targets.len())
                    .map(|i| out.get(&format!("single/{width}/{i}/for {w}"), seed))
                    .collect()
            };
            res.push(
                format!("same/{w}"),
                delta_m_of(&specs, mtl, &singles(w)?, &all)?,
            );
            res.push(
                format!("matched/{w}"),
                delta_m_of(&specs, mtl, &singles(v)?, &all)?,
            );
        }
    }

    let mut table = Table::new(
        "m3-width",
        &[
            "width",
            "shared params",
            "separate params (same width)",
            "matched width",
            "separate params (matched)",
            "Δm vs same width (%)",
            "Δm vs matched params (%)",
        ],
    );
    let mut same_series = Series {
        name: "vs separate networks of the same width".into(),
        points: Vec::new(),
    };
    let mut matched_series = Series {
        name: "vs separate networks with the shared network's parameter count".into(),
        points: Vec::new(),
    };
    let mut dms = Vec::new();
    for &(w, v, shared, small, same) in &matched {
        let d_same = res.summary(&format!("same/{w}"))?;
        let d_matched = res.summary(&format!("matched/{w}"))?;
        table.push(vec![
            Cell::int(w),
            Cell::int(shared),
            Cell::int(same),
            Cell::int(v),
            Cell::int(small),
            Cell::stat(d_same),
            Cell::stat(d_matched),
        ]);
        same_series.points.push(Point {
            x: w as f64,
            y: scale(d_same, 0.01),
        });
        matched_series.points.push(Point {
            x: w as f64,
            y: scale(d_matched, 0.01),
        });
        dms.push(d_same);
    }
    let (v, stops) = verdict(&dms, &widths);
    let losing: Vec<i64> = widths
        .iter()
        .zip(&dms)
        .filter(|(_, d)| d.below(0.0))
        .map(|(w, _)| *w)
        .collect();
    let threshold = match (losing.is_empty(), stops) {
        (true, _) => "none in range: MTL loses at no width".to_string(),
        (false, Some(w)) => format!("MTL loses at widths {losing:?}, not from width {w} on"),
        (false, None) => format!("MTL loses at widths {losing:?}, up to the largest"),
    };
    let last = *dms.last().expect("widths are not empty");
    rep.verdicts.push(claim(
        "M-3",
        "M3",
        &format!("presence tasks, {} trunk", setup.model.name()),
        v,
        RULE,
        format!(
            "Δm (%; stored as a fraction) at the largest width ({})",
            widths.last().expect("widths are not empty")
        ),
        scale(last, 0.01),
        format!(
            "{threshold}. Δm per width: {}.",
            widths
                .iter()
                .zip(&dms)
                .map(|(w, d)| format!("w={w}: {}", raw(d)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));
    rep.tables.push(table);
    rep.plots.push(Plot {
        id: "m3-delta-m-vs-width".into(),
        title: "M3: Δm of the shared network vs trunk width".into(),
        x_label: "trunk width".into(),
        y_label: "Δm (%)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: true,
        series: vec![same_series, matched_series],
        reference: Some(
            "Caruana: MTL hurts only when the network is too small; a big enough one rarely loses"
                .into(),
        ),
    });
    rep.notes.push(format!(
        "Where MTL stops losing: {threshold}. Plot values are Δm/100 (drawn ×100, in percent)."
    ));
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::stats::summarize;

    use super::*;

    #[test]
    fn the_rule_finds_the_threshold() {
        let s = |v: &[f64]| summarize(v).unwrap();
        let down = s(&[-3.0, -4.0, -3.5]);
        let flat = s(&[-1.0, 1.0, 0.0]);
        let up = s(&[3.0, 4.0, 3.5]);
        let w = [2, 8, 32, 128];
        assert_eq!(
            verdict(&[down, down, flat, up], &w),
            (Verdict::Supported, Some(32))
        );
        assert_eq!(
            verdict(&[flat, flat, flat, up], &w),
            (Verdict::Inconclusive, Some(2))
        );
        assert_eq!(
            verdict(&[down, flat, down, flat], &w),
            (Verdict::Inconclusive, Some(128))
        );
        assert_eq!(
            verdict(&[flat, flat, flat, down], &w).0,
            Verdict::NotSupported
        );
        assert_eq!(
            verdict(&[up, down, flat, flat], &w).0,
            Verdict::NotSupported
        );
        assert_eq!(verdict(&[], &[]), (Verdict::Inconclusive, None));
    }

    #[test]
    fn matched_width_divides_the_budget() {
        let tasks: Vec<_> = (0..4).map(|i| TaskSpec::binary(&format!("t{i}"))).collect();
        let mlp = ArchConfig::Mlp(MlpConfig {
            inputs: 100,
            hidden: vec![64],
            classes: 1,
        });
        let shared = parameter_count(&at_width(&mlp, 40).unwrap(), &tasks).unwrap();
        let v = matched_width(&mlp, 4, shared, 40).unwrap();
        assert_eq!(v, 10);
        assert_eq!(matched_width(&mlp, 4, 10, 40).unwrap(), 1);
    }

    #[test]
    fn a_conv_trunk_scales_every_block() {
        let cnn = ArchConfig::FaceCnn(FaceCnnConfig {
            channels: vec![8, 16, 32, 32],
            classes: 1,
        });
        let channels = |w| match at_width(&cnn, w).unwrap() {
            ArchConfig::FaceCnn(c) => c.channels,
            other => panic!("{other:?}"),
        };
        assert_eq!(channels(32), [8, 16, 32, 32], "the setup's own width");
        assert_eq!(channels(8), [2, 4, 8, 8]);
        assert_eq!(channels(2), [1, 1, 2, 2], "at least one channel");
        assert_eq!(channels(128), [32, 64, 128, 128]);
        let lenet = ArchConfig::LeNet(Default::default());
        assert!(at_width(&lenet, 8).is_err());
    }
}
