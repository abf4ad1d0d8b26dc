//! Experiment M3, capacity sweep (claim M-3, Caruana: MTL only hurts when the network is too
//! small).
//!
//! M1's scenes and presence tasks with the setup's trunk at width `w` for each `w` of the
//! profile ([`at_width`]: a convolutional trunk with `w` channels in its last block and the
//! earlier blocks in proportion, or a one-hidden-layer MLP of `w` units). At each width: the shared network against (a) one network per task of the
//! same width, and (b) one network per task of the width whose total over the tasks has about
//! the shared network's parameter count. Δm of the shared network against each, per seed.
//! M-3 ("MTL hurts only when the network is too small") is decided by non-inferiority of the
//! shared network at every width but the smallest ([`contrasts`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::{Error, Result};
use pretrained_zoo::arch::{ArchConfig, FaceCnnConfig, MlpConfig, SpectrogramCnnConfig};
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind, Test};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::{About, Plan, decide};
use crate::margins;
use crate::mtl::common::{
    self as experiments, Outcomes, Recipe, Results, RunOptions, RunOutcome, SEPARATE_DELTA_M,
    Setup, delta_m_of, parameter_count, presence, scene_data,
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

/// The widths of a profile, increasing, each once.
fn sorted_widths(widths: &[i64]) -> Vec<i64> {
    let mut w = widths.to_vec();
    w.sort_unstable();
    w.dedup();
    w
}

/// The contrast deciding M-3, declared before any run: "MTL does not hurt unless the network
/// is small" — at every width but the smallest, Δm (percent, result key `same/{w}`) of the
/// shared network against one network per task of the same width is above −δ
/// (non-inferiority, all of them). Δm pairs the two by seed itself, so it is read against the
/// separate networks' own Δm, 0 ([`SEPARATE_DELTA_M`]).
///
/// The smallest width is where the claim allows MTL to lose, so it is not tested; whether it
/// does lose there is shown in the table, not decided. None with a single width.
pub fn contrasts(widths: &[i64]) -> Vec<Contrast> {
    let widths = sorted_widths(widths);
    if widths.len() < 2 {
        return Vec::new();
    }
    let parts = widths[1..]
        .iter()
        .map(|w| {
            Contrast::paired(
                &format!("width-{w}"),
                &[],
                format!("Δm at width {w} (shared against separate networks of width {w})"),
                margins::delta_m_percent(),
                Kind::NonInferiority,
                &format!("same/{w}"),
                SEPARATE_DELTA_M,
                margins::mtl_delta_m(),
            )
        })
        .collect();
    let c = Contrast::composite(
        "no-loss-above-smallest",
        &["M-3"],
        format!(
            "the shared network is not worse than separate networks of its width at every \
             width above the smallest ({} to {})",
            widths[1],
            widths[widths.len() - 1]
        ),
        Test::AllOf(parts),
    )
    .expect("AllOf with at least one component");
    vec![c]
}

/// The per-seed results of M3's runs (cells `shared/{w}` and `single/{width}/{i}/for {w}`, with
/// `matched[k] = (w, v)`: width `w` and its parameter-matched width `v`): Δm in percent of the
/// shared network of width `w` against separate networks of width `w` (`same/{w}`) and of
/// width `v` (`matched/{w}`), and [`SEPARATE_DELTA_M`].
pub fn results(
    out: &Outcomes,
    specs: &[TaskSpec],
    matched: &[(i64, i64)],
    seeds: u64,
) -> Result<Results> {
    let all: Vec<usize> = (0..specs.len()).collect();
    let mut res = Results::default();
    for seed in 0..seeds {
        for &(w, v) in matched {
            let mtl = out.get(&format!("shared/{w}"), seed)?;
            let singles = |width: i64| -> Result<Vec<&RunOutcome>> {
                (0..specs.len())
                    .map(|i| out.get(&format!("single/{width}/{i}/for {w}"), seed))
                    .collect()
            };
            res.push(
                format!("same/{w}"),
                delta_m_of(specs, mtl, &singles(w)?, &all)?,
            );
            res.push(
                format!("matched/{w}"),
                delta_m_of(specs, mtl, &singles(v)?, &all)?,
            );
        }
        res.push(SEPARATE_DELTA_M, 0.0);
    }
    Ok(res)
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
    let cfg: M3Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
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
    widths = sorted_widths(&widths);
    let declared = contrasts(&widths);
    let seeds = experiments::seeds(opts, p.seeds)?;
    let targets = presence(&classes);
    let specs: Vec<_> = targets.iter().map(|t| t.task()).collect();
    let trunk = |w: i64| at_width(&setup.model, w);
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
    let (mut rep, outcomes) = experiments::with_context(opts, on_run, |ctx| {
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
        let rep = ctx.session().report(
            About {
                id: "M3",
                title: "capacity sweep: shared trunk width",
                claims: &experiments::claims_of(&declared),
            },
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
    let widths_matched: Vec<(i64, i64)> = matched.iter().map(|&(w, v, ..)| (w, v)).collect();
    let res = results(&out, &specs, &widths_matched, seeds)?;

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
    }
    if declared.is_empty() {
        rep.notes
            .push("A single width in the profile: nothing is decided.".into());
    }
    decide(&mut rep, &res, declared)?;
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
    rep.notes.push(
        "M-3 is decided at every width but the smallest (the claim lets a network that is too \
         small lose); the Δm against parameter-matched separate networks is shown, not judged. \
         Plot values are Δm/100 (drawn ×100, in percent)."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::contrast::Outcome;

    use super::*;
    use crate::mtl::common::test_outcome;

    /// Outcomes over three seeds of two tasks at widths `matched` (with their matched widths):
    /// separate networks at AUC 0.90, the shared network of width `w` at `0.90 + lift(w, seed)`.
    fn outcomes(matched: &[(i64, i64)], lift: impl Fn(i64, u64) -> f64) -> Outcomes {
        let mut out = Outcomes::default();
        for seed in 0..3 {
            for &(w, v) in matched {
                out.insert(
                    format!("shared/{w}"),
                    seed,
                    test_outcome(&[0.9 + lift(w, seed); 2]),
                );
                for width in [w, v] {
                    for i in 0..2 {
                        let cell = format!("single/{width}/{i}/for {w}");
                        out.insert(cell, seed, test_outcome(&[0.9]));
                    }
                }
            }
        }
        out
    }

    fn specs() -> Vec<TaskSpec> {
        presence(&[0, 1]).iter().map(|t| t.task()).collect()
    }

    const MATCHED: [(i64, i64); 3] = [(2, 1), (8, 4), (32, 16)];

    #[test]
    fn mtl_may_lose_only_at_the_smallest_width() {
        let c = contrasts(&[32, 2, 8, 8]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].claims, ["M-3"]);
        let mut keys = c[0].keys();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys, ["same/32", "same/8", SEPARATE_DELTA_M]);
        // Δm −9 % at width 2; about 0 (−0.1, +0.1, 0 %) at 8 and 32: supported.
        let small_loses = |w: i64, seed: u64| {
            if w == 2 {
                -0.081
            } else {
                [-0.0009, 0.0009, 0.0][seed as usize]
            }
        };
        let yes = results(&outcomes(&MATCHED, small_loses), &specs(), &MATCHED, 3).unwrap();
        assert_eq!(c[0].evaluate(&yes).unwrap().outcome, Outcome::Supported);
        // The shared network loses 2–3 % at width 32 too: contradicted.
        let large_loses = |w: i64, seed: u64| match w {
            2 => -0.081,
            32 => [-0.018, -0.027, -0.0225][seed as usize],
            _ => 0.0,
        };
        let no = results(&outcomes(&MATCHED, large_loses), &specs(), &MATCHED, 3).unwrap();
        assert_eq!(c[0].evaluate(&no).unwrap().outcome, Outcome::Contradicted);
    }

    #[test]
    fn the_contrast_reads_keys_the_results_hold() {
        let res = results(&outcomes(&MATCHED, |_, _| 0.01), &specs(), &MATCHED, 3).unwrap();
        for c in contrasts(&[2, 8, 32]) {
            for k in c.keys() {
                assert_eq!(res.get(k).unwrap().len(), 3, "{k}");
            }
        }
        assert!(res.get("matched/32").is_ok());
        assert!(contrasts(&[8]).is_empty());
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
