//! Experiment M6, unrelated tasks (the converse of claim M-1).
//!
//! A focal presence task ("is there a 3") trained jointly with `R` tasks whose labels are fair
//! coins drawn per scene (they share nothing with the image), against the focal task's own
//! network (M1's single-task run). For contrast, the gain of the same task in M1's network
//! shared with the other presence tasks (related tasks). The converse of M-1 (tasks that share
//! nothing hurt) is decided by [`contrasts`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::{Contrast, Kind, Test, Unit};
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::{About, Plan, decide};
use crate::margins;
use crate::mtl::common::{
    self as experiments, Outcomes, Recipe, Results, RunOptions, SceneTarget, Setup, presence, pts,
    scene_data, test_size,
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

impl M6Profile {
    /// The numbers of random-label tasks, increasing, each once.
    fn random_counts(&self) -> Vec<u64> {
        let mut rs = self.random_tasks.clone();
        rs.sort_unstable();
        rs.dedup();
        rs
    }
}

/// The contrast deciding the converse of M-1, declared before any run: unrelated tasks hurt —
/// for some number `R` of random-label tasks, the focal tasks' mean test AUC alone
/// (`alone/auc`) is above their mean AUC jointly with `R` random-label tasks (`R{R}/auc`),
/// paired by seed (superiority of the harm, any of the `R`s, Holm over them). This is the
/// direction the former rule called supported ("some interval below 0"); a gain at every `R`
/// contradicts it.
///
/// With one focal class every seed trains the same task: the seeds replicate the scenes, the
/// random labels and the initialisation, not the task.
pub fn contrasts(p: &M6Profile) -> Vec<Contrast> {
    // M-1 says MTL helps *when the tasks share low-level features*; its converse, tested here,
    // is that tasks sharing nothing with the focal task bring no gain worth having, at every
    // number of them (harm allowed; an intersection–union test over R, no correction needed).
    let parts: Vec<Contrast> = p
        .random_counts()
        .into_iter()
        .map(|r| {
            Contrast::paired(
                &format!("R{r}"),
                &[],
                format!("focal AUC jointly with {r} random-label tasks − alone"),
                Unit::new("AUC points", 100.0),
                Kind::NoMeaningfulGain,
                &format!("R{r}/auc"),
                "alone/auc",
                margins::mtl_accuracy(),
            )
        })
        .collect();
    if parts.is_empty() {
        return Vec::new();
    }
    let c = Contrast::composite(
        "unrelated-tasks-no-gain",
        &["M-1"],
        "converse: random-label tasks that share nothing with the focal task bring it no gain \
         worth having, at every number of them",
        Test::AllOf(parts),
    )
    .expect("AllOf with components");
    vec![if p.focal.len() == 1 {
        c.shared(format!(
            "one focal task (presence of {}): seeds replicate the scenes, the random labels and \
             the initialisation, not the task",
            p.focal[0]
        ))
    } else {
        c
    }]
}

/// The per-seed results of M6's runs (cells `related`, `alone/{c}` and `R{r}/{c}` for the focal
/// classes `focal` and the counts `rs`; `classes` are the setup's, the tasks of `related`):
/// `{alone|related|R{r}}/{auc|bacc}`, each the mean over the focal tasks.
pub fn results(
    out: &Outcomes,
    focal: &[i64],
    rs: &[u64],
    classes: &[i64],
    seeds: u64,
) -> Result<Results> {
    let mut res = Results::default();
    for seed in 0..seeds {
        let shared = out.get("related", seed)?;
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        // The fewest labelled test scenes behind each mean (its interval's correction).
        let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
        for &c in focal {
            let alone = out.get(&format!("alone/{c}"), seed)?;
            let col = classes.iter().position(|&k| k == c).unwrap_or(0);
            let mut add = |key: String, v: f64, n: usize| {
                *sums.entry(key.clone()).or_default() += v;
                let least = sizes.entry(key).or_insert(n);
                *least = (*least).min(n);
            };
            for (m, n) in [
                (MetricKind::Auc, "auc"),
                (MetricKind::BalancedAccuracy, "bacc"),
            ] {
                add(
                    format!("alone/{n}"),
                    alone.metric(0, m)?,
                    test_size(alone, 0)?,
                );
                add(
                    format!("related/{n}"),
                    shared.metric(col, m)?,
                    test_size(shared, col)?,
                );
            }
            for &r in rs {
                let joint = out.get(&format!("R{r}/{c}"), seed)?;
                for (m, n) in [
                    (MetricKind::Auc, "auc"),
                    (MetricKind::BalancedAccuracy, "bacc"),
                ] {
                    add(
                        format!("R{r}/{n}"),
                        joint.metric(0, m)?,
                        test_size(joint, 0)?,
                    );
                }
            }
        }
        for (k, v) in sums {
            let n = sizes[&k];
            res.push_proportion(k, v / focal.len() as f64, n);
        }
    }
    Ok(res)
}

/// Runs M6 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: M6Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
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
    let rs = p.random_counts();
    if rs.is_empty() || rs.contains(&0) {
        return Err(at(
            "random_tasks: list numbers of random tasks, each at least 1".into(),
        ));
    }
    let seeds = experiments::seeds(opts, p.seeds)?;
    let related = presence(&setup.classes);
    let declared = contrasts(p);
    let (mut rep, outcomes) = experiments::with_context(opts, on_run, |ctx| {
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
        let rep = ctx.session().report(
            About {
                id: "M6",
                title: "unrelated tasks: a task paired with random-label tasks",
                claims: &experiments::claims_of(&declared),
            },
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
    let res = results(&out, &p.focal, &rs, &setup.classes, seeds)?;

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
    for &r in &rs {
        let g = row(format!("{r} random-label tasks"), &format!("R{r}"))?;
        series.points.push(Point { x: r as f64, y: g });
    }
    let related = row(
        format!(
            "the other presence tasks ({} in all, M1)",
            setup.classes.len()
        ),
        "related",
    )?;
    decide(&mut rep, &res, declared)?;
    rep.notes.push(format!(
        "The converse of M-1 is decided on the random-label tasks alone; the related tasks' \
         gain (M1's shared network) is shown for contrast, not judged: {} AUC points.",
        pts(&related)
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
    use transferlab_report::contrast::Outcome;

    use super::*;
    use crate::mtl::common::test_outcome;

    fn profile(focal: Vec<i64>, random_tasks: Vec<u64>) -> M6Profile {
        M6Profile {
            focal,
            random_tasks,
            seeds: 3,
        }
    }

    /// Outcomes over three seeds: every focal task at AUC 0.90 alone and in M1's shared network
    /// of `classes`, and at `0.90 + lift(r, seed)` jointly with `r` random-label tasks.
    fn outcomes(p: &M6Profile, classes: &[i64], lift: impl Fn(u64, u64) -> f64) -> Outcomes {
        let mut out = Outcomes::default();
        for seed in 0..3 {
            out.insert("related", seed, test_outcome(&vec![0.9; classes.len()]));
            for c in &p.focal {
                out.insert(format!("alone/{c}"), seed, test_outcome(&[0.9]));
                for &r in &p.random_tasks {
                    let joint = vec![0.9 + lift(r, seed); 1 + r as usize];
                    out.insert(format!("R{r}/{c}"), seed, test_outcome(&joint));
                }
            }
        }
        out
    }

    const CLASSES: [i64; 4] = [0, 3, 5, 8];

    #[test]
    fn no_gain_at_every_r_is_an_intersection_union_test() {
        let p = profile(vec![3], vec![9, 1]);
        let c = contrasts(&p);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].claims, ["M-1"]);
        assert!(c[0].replication.is_some(), "one focal task");
        assert!(
            contrasts(&profile(vec![0, 3], vec![1]))[0]
                .replication
                .is_none()
        );
        // About no effect at R = 1 (interval inside ±0.3 points); −5 to −7 AUC points at R = 9:
        // no gain worth having at either, supported.
        let hurts = |r: u64, seed: u64| {
            if r == 9 {
                -[0.05, 0.06, 0.07][seed as usize]
            } else {
                [0.001, -0.001, 0.0][seed as usize]
            }
        };
        let yes = results(
            &outcomes(&p, &CLASSES, hurts),
            &p.focal,
            &[1, 9],
            &CLASSES,
            3,
        )
        .unwrap();
        assert_eq!(c[0].evaluate(&yes).unwrap().outcome, Outcome::Supported);
        // Random-label tasks help by 5-7 points at both R: contradicted.
        let helps = |_: u64, seed: u64| [0.05, 0.06, 0.07][seed as usize];
        let no = results(
            &outcomes(&p, &CLASSES, helps),
            &p.focal,
            &[1, 9],
            &CLASSES,
            3,
        )
        .unwrap();
        assert_eq!(c[0].evaluate(&no).unwrap().outcome, Outcome::Contradicted);
    }

    #[test]
    fn the_contrast_reads_keys_the_results_hold() {
        let p = profile(vec![0, 8], vec![1, 3, 27]);
        let rs = [1, 3, 27];
        let res = results(
            &outcomes(&p, &CLASSES, |_, _| 0.0),
            &p.focal,
            &rs,
            &CLASSES,
            3,
        )
        .unwrap();
        for c in contrasts(&p) {
            for k in c.keys() {
                assert_eq!(res.get(k).unwrap().len(), 3, "{k}");
            }
        }
        assert!(res.get("related/auc").is_ok() && res.get("R27/bacc").is_ok());
    }
}
