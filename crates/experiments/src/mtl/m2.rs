//! Experiment M2, many small tasks (claim M-2).
//!
//! `T` binary tasks on MNIST digits, each a fixed random split of the ten classes into five
//! positive and five negative ones, each with `n` training examples of its own (labelled for
//! that task only; the others' labels are missing). The focal task (task 0) trained alone on its
//! `n` examples against the same task trained jointly with the `T − 1` others; the gain as a
//! function of (others' examples) / (own examples). One more pair gives the focal task as much
//! data as all the others together: `(T_eq − 1)·n` examples alone, and jointly with `T_eq − 1`
//! tasks of `n` examples each. A trend contrast ([`contrasts`]) decides M-2.

use std::collections::BTreeMap;
use std::path::Path;

use core_tensor::{Error, Result};
use pretrained_zoo::arch::ArchConfig;
use serde::{Deserialize, Serialize};
use transferlab_report::contrast::Contrast;
use transferlab_report::stats::Summary;
use transferlab_report::{Cell, ExperimentReport, Plot, Point, Series, Table};

use crate::driver::{About, Plan, decide};
use crate::margins;
use crate::mtl::common::{
    self as experiments, DataSpec, Outcomes, PartitionData, Recipe, Results, RunOptions,
};
use multitask::balance::BalancerConfig;
use multitask::task::MetricKind;

/// `experiments/m2.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M2Config {
    /// Seed of the class partitions (the same tasks for every run seed).
    pub partition_seed: u64,
    /// How every network is trained.
    pub recipe: Recipe,
    /// Profiles.
    pub profiles: BTreeMap<String, M2Profile>,
}

/// Sizes, trunk and seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct M2Profile {
    /// Numbers of tasks `T` (1 is the focal task alone).
    pub tasks: Vec<usize>,
    /// Own training examples per task (`n`).
    pub per_task: usize,
    /// Own validation examples per task (early stopping).
    pub validation_per_task: usize,
    /// `T_eq` of the equal-data pair: the focal task gets `(T_eq − 1)·n` examples.
    pub equal_data_tasks: usize,
    /// Test digits (MNIST test split).
    pub test: usize,
    /// The shared trunk (an MLP takes 784 inputs).
    pub model: ArchConfig,
    /// Seeds.
    pub seeds: u64,
}

impl M2Profile {
    fn validate(&self) -> Result<()> {
        let bad = |f: &str, why: &str| Err(Error::InvalidArgument(format!("{f}: {why}")));
        if self.tasks.is_empty() || self.tasks.contains(&0) {
            return bad("tasks", "list numbers of tasks, each at least 1");
        }
        if self.per_task == 0 || self.validation_per_task == 0 || self.test == 0 {
            return bad(
                "per_task, validation_per_task, test",
                "each must be at least 1",
            );
        }
        if self.equal_data_tasks < 2 {
            return bad(
                "equal_data_tasks",
                "must be at least 2 (the focal task and one other)",
            );
        }
        experiments::check_model(&self.model, 28 * 28, "model")
    }
}

#[derive(Debug, Serialize)]
struct Resolved<'a> {
    config: &'a M2Config,
    profile: &'a M2Profile,
}

impl M2Profile {
    /// The numbers of tasks `T`, increasing, each once.
    fn task_counts(&self) -> Vec<usize> {
        let mut tasks = self.tasks.clone();
        tasks.sort_unstable();
        tasks.dedup();
        tasks
    }
}

/// The contrast deciding M-2, declared before any run: the focal task's accuracy gain from
/// joint training when its own data is scarce (`n` examples, jointly with the `T − 1` others at
/// the largest `T`: cells `T{T}` against `alone`) minus the gain when it already has as much data
/// as all the others together (`eq` against `alone-eq`), paired by seed, is positive — the many
/// small tasks help the one that has little data, more than they help one that has as much as
/// they do. None when the profile has no `T > 1`.
///
/// The class partitions are fixed (`partition_seed`), so every seed trains the same focal task:
/// the seeds replicate the digits and the initialisation, not the task.
pub fn contrasts(p: &M2Profile) -> Vec<Contrast> {
    let Some(t) = p.task_counts().into_iter().rfind(|&t| t > 1) else {
        return Vec::new();
    };
    let scarce = format!("T{t}/acc");
    vec![
        Contrast::trend(
            "gain-scarce-vs-rich",
            &["M-2"],
            format!(
                "focal accuracy gain of joint training with {} others when it has {} examples, \
                 minus the gain when it has as many as the others together ({})",
                t - 1,
                p.per_task,
                (p.equal_data_tasks - 1) * p.per_task
            ),
            margins::accuracy_points(),
            (&scarce, "alone/acc"),
            ("eq/acc", "alone-eq/acc"),
            margins::mtl_accuracy(),
        )
        .shared(
            "one fixed focal task (the class partitions are drawn once, from partition_seed): \
             seeds replicate the digits and the initialisation, not the task",
        ),
    ]
}

/// The per-seed results of M2's runs (cells `alone`, `T{t}`, `alone-eq`, `eq`): the focal
/// task's `{cell}/acc` and `{cell}/auc`.
pub fn results(out: &Outcomes) -> Result<Results> {
    let mut res = Results::default();
    for (key, _, r) in out.iter() {
        let n = crate::mtl::common::test_size(r, 0)?;
        res.push_proportion(format!("{key}/acc"), r.metric(0, MetricKind::Accuracy)?, n);
        res.push_proportion(format!("{key}/auc"), r.metric(0, MetricKind::Auc)?, n);
    }
    Ok(res)
}

fn data(p: &M2Profile, cfg: &M2Config, tasks: usize, focal: usize) -> DataSpec {
    DataSpec::Partitions(PartitionData {
        tasks,
        // Alone, the others' size does not exist: keep the key of "alone" independent of it.
        per_task: if tasks == 1 { focal } else { p.per_task },
        focal_per_task: focal,
        validation_per_task: p.validation_per_task,
        test: p.test,
        partition_seed: cfg.partition_seed,
    })
}

/// Runs M2 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let cfg: M2Config = crate::driver::load_config(config_path, Some(&opts.profile))?;
    let p = experiments::profile(&cfg.profiles, &opts.profile)?;
    let at = |e: Error| e.in_file(config_path);
    cfg.recipe.validate().map_err(at)?;
    p.validate().map_err(|e| {
        e.within(&format!("profiles.{}", opts.profile))
            .in_file(config_path)
    })?;
    let seeds = experiments::seeds(opts, p.seeds)?;
    let n = p.per_task;
    let n_eq = (p.equal_data_tasks - 1) * n;
    let tasks = p.task_counts();
    let declared = contrasts(p);
    let (mut rep, outcomes) = experiments::with_context(opts, on_run, |ctx| {
        let mut plan = Plan::new();
        let mut one = |ctx: &mut experiments::Context<'_>,
                       t: usize,
                       focal: usize,
                       seed: u64,
                       key: String|
         -> Result<()> {
            let spec = ctx.spec(
                data(p, &cfg, t, focal),
                &p.model,
                BalancerConfig::Equal,
                &cfg.recipe,
                seed,
            )?;
            let label = format!("m2 T={t} focal n={focal} seed {seed}");
            plan.push(key, spec, seed, label);
            Ok(())
        };
        for seed in 0..seeds {
            one(ctx, 1, n, seed, "alone".into())?;
            for &t in tasks.iter().filter(|&&t| t > 1) {
                one(ctx, t, n, seed, format!("T{t}"))?;
            }
            one(ctx, 1, n_eq, seed, "alone-eq".into())?;
            one(ctx, p.equal_data_tasks, n_eq, seed, "eq".into())?;
        }
        let outcomes = ctx.execute(plan)?;
        let rep = ctx.session().report(
            About {
                id: "M2",
                title: "many small tasks: the focal task alone vs jointly with others",
                claims: &experiments::claims_of(&declared),
            },
            format!(
                "Binary tasks on MNIST digits, each a fixed random split of the ten classes into \
                 five positive and five negative ones (partition seed {}); each task has n = {n} \
                 training and {} validation digits of its own, labelled for it only. The focal \
                 task alone vs jointly with T−1 others for T in {:?}; and with {n_eq} own \
                 examples (as many as the {} others together) alone vs jointly. {} trunk, equal \
                 loss weights, {} test digits.",
                cfg.partition_seed,
                p.validation_per_task,
                tasks,
                p.equal_data_tasks - 1,
                p.model.name(),
                p.test
            ),
            seeds,
            &Resolved {
                config: &cfg,
                profile: p,
            },
        );
        Ok((rep, outcomes))
    })?;
    let Some(out) = outcomes else {
        return Ok(rep);
    };
    let res = results(&out)?;

    let mut table = Table::new(
        "m2-focal-task",
        &[
            "T",
            "own n",
            "others/own",
            "joint acc (%)",
            "alone acc (%)",
            "acc gain (points)",
            "joint AUC (%)",
            "alone AUC (%)",
            "AUC gain (points)",
        ],
    );
    let mut row = |t: usize, own: usize, key: &str, alone: &str| -> Result<Summary> {
        let gain = res.gain(&format!("{key}/acc"), &format!("{alone}/acc"))?;
        table.push(vec![
            Cell::int(t as i64),
            Cell::int(own as i64),
            Cell::Num(((t - 1) * n) as f64 / own as f64),
            Cell::pct(res.summary(&format!("{key}/acc"))?),
            Cell::pct(res.summary(&format!("{alone}/acc"))?),
            Cell::pct(gain),
            Cell::pct(res.summary(&format!("{key}/auc"))?),
            Cell::pct(res.summary(&format!("{alone}/auc"))?),
            Cell::pct(res.gain(&format!("{key}/auc"), &format!("{alone}/auc"))?),
        ]);
        Ok(gain)
    };
    let mut curve = Series {
        name: format!("focal task with n = {n}"),
        points: Vec::new(),
    };
    row(1, n, "alone", "alone")?;
    for &t in tasks.iter().filter(|&&t| t > 1) {
        let g = row(t, n, &format!("T{t}"), "alone")?;
        curve.points.push(Point {
            x: (t - 1) as f64,
            y: g,
        });
    }
    let g_eq = row(p.equal_data_tasks, n_eq, "eq", "alone-eq")?;
    let eq_series = Series {
        name: format!("focal task with {n_eq} (as much as the others)"),
        points: vec![Point { x: 1.0, y: g_eq }],
    };
    if declared.is_empty() {
        rep.notes.push(
            "No T > 1 in the profile: only the equal-data pair was run, so nothing is decided."
                .into(),
        );
    }
    decide(&mut rep, &res, declared)?;
    rep.tables.push(table);
    rep.plots.push(Plot {
        id: "m2-gain-vs-ratio".into(),
        title: "M2: focal-task gain of joint training vs the others' data".into(),
        x_label: "others' examples / own examples".into(),
        y_label: "joint − alone (accuracy points)".into(),
        log_x: true,
        y_scale: 100.0,
        zero_line: true,
        series: vec![curve, eq_series],
        reference: Some(
            "M-2: 100 tasks x 1,000 examples, the 99,000 others' examples help the 100th; less so \
             when the focal task has as much data as all others"
                .into(),
        ),
    });
    rep.notes.push(
        "Each task's own digits are disjoint from the other tasks'; an example carries only its \
         own task's label (the rest are missing, masked out of the loss). The test digits carry \
         every task's label; only the focal task's are reported."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use transferlab_report::contrast::Outcome;

    use super::*;
    use crate::mtl::common::test_outcome;

    fn profile(tasks: Vec<usize>) -> M2Profile {
        M2Profile {
            tasks,
            per_task: 20,
            validation_per_task: 5,
            equal_data_tasks: 3,
            test: 200,
            model: ArchConfig::LeNet(Default::default()),
            seeds: 3,
        }
    }

    /// Outcomes of the cells of `p` over three seeds: the focal task's accuracy alone 0.80 with
    /// `n` and 0.90 with `n_eq` examples, plus `scarce[seed]` jointly at every T > 1 and
    /// `rich[seed]` jointly at equal data.
    fn outcomes(p: &M2Profile, scarce: [f64; 3], rich: [f64; 3]) -> Outcomes {
        let mut out = Outcomes::default();
        for seed in 0..3 {
            let s = seed as usize;
            out.insert("alone", seed, test_outcome(&[0.8]));
            for t in p.task_counts().into_iter().filter(|&t| t > 1) {
                out.insert(format!("T{t}"), seed, test_outcome(&[0.8 + scarce[s]; 2]));
            }
            out.insert("alone-eq", seed, test_outcome(&[0.9]));
            out.insert("eq", seed, test_outcome(&[0.9 + rich[s]; 2]));
        }
        out
    }

    #[test]
    fn the_trend_pairs_the_two_gains_by_seed() {
        let p = profile(vec![3, 1, 10, 3]);
        let c = contrasts(&p);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].claims, ["M-2"]);
        assert!(c[0].replication.is_some(), "one fixed focal task");
        assert!(c[0].keys().contains(&"T10/acc"), "{:?}", c[0].keys());
        // Scarce: +5, +6, +7 points; rich: 0, +1, +2 → the difference is +5 in every seed.
        let yes = results(&outcomes(&p, [0.05, 0.06, 0.07], [0.0, 0.01, 0.02])).unwrap();
        let r = c[0].evaluate(&yes).unwrap();
        assert_eq!(r.outcome, Outcome::Supported);
        assert!((r.estimate.unwrap().mean - 0.05).abs() < 1e-9);
        // The same gain in both settings: no trend.
        let no = results(&outcomes(&p, [0.05, 0.06, 0.07], [0.05, 0.07, 0.06])).unwrap();
        assert_ne!(c[0].evaluate(&no).unwrap().outcome, Outcome::Supported);
    }

    #[test]
    fn the_contrast_reads_keys_the_results_hold() {
        for tasks in [vec![1, 3], vec![1, 10, 30], vec![30, 10]] {
            let p = profile(tasks);
            let res = results(&outcomes(&p, [0.0; 3], [0.0; 3])).unwrap();
            for c in contrasts(&p) {
                for k in c.keys() {
                    assert_eq!(res.get(k).unwrap().len(), 3, "{k}");
                }
            }
        }
        assert!(contrasts(&profile(vec![1])).is_empty());
    }
}
