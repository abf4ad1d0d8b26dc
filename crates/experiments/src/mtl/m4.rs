//! Experiment M4, missing labels (claim M-4).
//!
//! M1's scenes and presence tasks with a fraction of the training and validation labels hidden
//! (each label independently, from the seed; the hidden sets of two fractions are nested). The
//! shared network trained with the masked loss over the labels that are present, against the
//! same network trained only on the scenes that still carry every label. Both arms stop early
//! on the same partly labelled validation scenes and are scored on the fully labelled test
//! scenes. A fraction of 0 is M1's shared network (the two arms are the same run). M-4 is
//! decided by superiority of the masked loss at every fraction above 0 ([`contrasts`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind, Test, Unit};
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::{About, Plan, decide};
use crate::margins;
use crate::mtl::common::{
    self as experiments, DataSpec, Outcomes, Recipe, Results, Rows, RunOptions, RunOutcome, Setup,
    presence,
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

/// The fractions of a profile, increasing, each once.
fn sorted_fractions(hidden: &[f64]) -> Vec<f64> {
    let mut h = hidden.to_vec();
    h.sort_by(f64::total_cmp);
    h.dedup();
    h
}

/// The contrast deciding M-4, declared before any run: at every hidden fraction `f > 0`, the
/// mean test AUC over tasks of the network trained with the loss summed over the labels present
/// (`masked/{f}/auc`) is above that of the same network trained only on the scenes that keep
/// every label (`full-only/{f}/auc`), paired by seed (superiority, all of them). None when no
/// fraction is above 0.
pub fn contrasts(hidden: &[f64]) -> Vec<Contrast> {
    let parts: Vec<Contrast> = sorted_fractions(hidden)
        .into_iter()
        .filter(|&f| f > 0.0)
        .map(|f| {
            Contrast::paired(
                &format!("hidden-{f}"),
                &["M-4"],
                format!(
                    "mean AUC, masked loss − fully labelled scenes only, {:.0}% of labels hidden",
                    100.0 * f
                ),
                Unit::new("AUC points", 100.0),
                Kind::Superiority,
                &format!("masked/{f}/auc"),
                &format!("full-only/{f}/auc"),
                margins::mtl_accuracy(),
            )
        })
        .collect();
    match parts.len() {
        0 => Vec::new(),
        1 => parts,
        k => vec![
            Contrast::composite(
                "masked-beats-full-only",
                &["M-4"],
                format!(
                    "mean AUC, masked loss − fully labelled scenes only, at each of the {k} \
                     hidden fractions above 0"
                ),
                Test::AllOf(parts),
            )
            .expect("AllOf with components"),
        ],
    }
}

/// The per-seed results of M4's runs (cells `masked/{f}` and `full-only/{f}`), over the `tasks`
/// presence tasks: `{cell}/auc` and `{cell}/bacc` (means over tasks) and `{cell}/n` (training
/// scenes used).
pub fn results(out: &Outcomes, tasks: usize) -> Result<Results> {
    let mut res = Results::default();
    for (cell, _, r) in out.iter() {
        // A mean over tasks of proportions, each on that task's labelled test scenes: the
        // smallest of those counts sets the interval's correction.
        let n = (0..tasks)
            .map(|t| crate::mtl::common::test_size(r, t))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .min()
            .unwrap_or(1);
        res.push_proportion(
            format!("{cell}/auc"),
            mean_metric(r, tasks, MetricKind::Auc)?,
            n,
        );
        res.push_proportion(
            format!("{cell}/bacc"),
            mean_metric(r, tasks, MetricKind::BalancedAccuracy)?,
            n,
        );
        res.push(format!("{cell}/n"), r.train_examples as f64);
    }
    Ok(res)
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
    let cfg: M4Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
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
    hidden = sorted_fractions(&hidden);
    let declared = contrasts(&hidden);
    let seeds = experiments::seeds(opts, p.seeds)?;
    let targets = presence(&setup.classes);
    let t = targets.len();
    let (mut rep, outcomes) = experiments::with_context(opts, on_run, |ctx| {
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
        let rep = ctx.session().report(
            About {
                id: "M4",
                title: "missing labels: masked loss vs fully labelled examples only",
                claims: &experiments::claims_of(&declared),
            },
            format!(
                "M1's scenes ({} training, {} validation, {} test) and presence tasks for \
                 classes {:?}, with a fraction f in {:?} of the training and validation labels \
                 hidden at random. The shared network trained with the loss over present labels \
                 vs trained on the fully labelled training scenes only; equal loss weights; \
                 paired by seed.",
                setup.data.train, setup.data.validation, setup.data.test, setup.classes, hidden
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
    let res = results(&out, t)?;

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
    }
    if declared.is_empty() {
        rep.notes
            .push("No fraction above 0 in the profile: nothing is decided.".into());
    }
    decide(&mut rep, &res, declared)?;
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
    use transferlab_report::contrast::Outcome;

    use super::*;
    use crate::mtl::common::test_outcome;

    /// Outcomes over three seeds of two tasks at the fractions `hidden`: the fully labelled
    /// arm at AUC 0.80, the masked arm at `0.80 + lift(f, seed)` (the same run at f = 0).
    fn outcomes(hidden: &[f64], lift: impl Fn(f64, u64) -> f64) -> Outcomes {
        let mut out = Outcomes::default();
        for seed in 0..3 {
            for &f in hidden {
                let masked = if f == 0.0 { 0.8 } else { 0.8 + lift(f, seed) };
                out.insert(format!("masked/{f}"), seed, test_outcome(&[masked; 2]));
                out.insert(format!("full-only/{f}"), seed, test_outcome(&[0.8; 2]));
            }
        }
        out
    }

    const HIDDEN: [f64; 3] = [0.0, 0.5, 0.9];

    #[test]
    fn the_masked_loss_must_win_at_every_hidden_fraction() {
        let c = contrasts(&[0.9, 0.0, 0.5]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].claims, ["M-4"]);
        let mut keys = c[0].keys();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "full-only/0.5/auc",
                "full-only/0.9/auc",
                "masked/0.5/auc",
                "masked/0.9/auc"
            ]
        );
        // +5, +6, +7 points at both fractions: supported.
        let gain = |_: f64, seed: u64| [0.05, 0.06, 0.07][seed as usize];
        let yes = results(&outcomes(&HIDDEN, gain), 2).unwrap();
        assert_eq!(c[0].evaluate(&yes).unwrap().outcome, Outcome::Supported);
        // A gain at 90% hidden but a loss at 50%: contradicted.
        let mixed = |f: f64, seed: u64| {
            let g = [0.05, 0.06, 0.07][seed as usize];
            if f == 0.5 { -g } else { g }
        };
        let no = results(&outcomes(&HIDDEN, mixed), 2).unwrap();
        assert_eq!(c[0].evaluate(&no).unwrap().outcome, Outcome::Contradicted);
    }

    #[test]
    fn the_contrast_reads_keys_the_results_hold() {
        let res = results(&outcomes(&HIDDEN, |_, _| 0.01), 2).unwrap();
        for c in contrasts(&HIDDEN) {
            for k in c.keys() {
                assert_eq!(res.get(k).unwrap().len(), 3, "{k}");
            }
        }
        assert!(res.get("full-only/0.9/n").is_ok() && res.get("masked/0/bacc").is_ok());
        // One fraction above 0: a single contrast; none: nothing to decide.
        let one = contrasts(&[0.0, 0.5]);
        assert_eq!(one[0].keys(), ["masked/0.5/auc", "full-only/0.5/auc"]);
        assert!(contrasts(&[0.0]).is_empty());
    }
}
