//! Experiment P3, bone age in two worlds (claims E-4, E-5, E-6; generated data,
//! [`e2e_vs_pipeline::bone_age`]).
//!
//! Three contenders predict age from a hand-like image, each trained on the same `N` images
//! with their ages (plus a validation fifth from the training seed), scored by the test MAE
//! (age on its `[0, 1]` scale; × 18 for years):
//!
//! - **hand measurement → regression** (pipeline (i)): [`bone_age::measure_lengths`] (a
//!   hand-designed stage, divided by the image size) → an MLP regressor trained on the `N`;
//! - **learned measurement → regression** (pipeline (ii)): a CNN trained to output the bone
//!   lengths on `measure_examples` images labelled with lengths only (the plentiful, cheap
//!   sub-task labels; trained once per seed: images and lengths are the same in both worlds) → the same MLP regressor on its
//!   outputs, trained on the `N`;
//! - **end-to-end**: the same CNN shape with one output, image → age, trained on the `N`.
//!
//! In the world where lengths carry all the information about age the hand design is right;
//! in the other half of the age is in widths and texture, which a length measurement throws
//! away (the best prediction from exact lengths then has MAE 1/8).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use core_tensor::data::TensorDataset;
use core_tensor::train::Goal;
use core_tensor::{Error, Result};
use pretrained_zoo::arch::{ArchConfig, FaceCnnConfig, MlpConfig};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};
use transferlab_report::stats::Summary;
use transferlab_report::{ExperimentReport, Verdict};

use crate::e2e::common::{self as experiment, Ctx, Recipe, RunOptions, claim, fmt, stored};
use e2e_vs_pipeline::bone_age::{self, BoneAgeConfig, World};
use e2e_vs_pipeline::pipeline::{EndToEnd, LearnedStage, Metric, Objective, evaluate};
use e2e_vs_pipeline::sweep::{CrossoverConfig, SweepPlan, SweepResult};

/// `experiments/p3.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P3Config {
    /// Image side, pixels.
    pub size: i64,
    /// Bones per hand.
    pub bones: usize,
    /// Relative individual variation of each length.
    pub length_noise: f64,
    /// Background noise.
    pub noise: f64,
    /// Widths of the CNN of the learned measurement and of the end-to-end network.
    pub cnn_channels: Vec<i64>,
    /// Hidden widths of the regressor on lengths.
    pub regressor_hidden: Vec<i64>,
    /// Images labelled with bone lengths that train the learned measurement.
    pub measure_examples: usize,
    /// Test images per world.
    pub test_examples: usize,
    /// Recipe of the learned measurement (regression; early stopping must minimise).
    pub measure_recipe: Recipe,
    /// Recipe of the regressor on lengths.
    pub regressor_recipe: Recipe,
    /// Recipe of the end-to-end network.
    pub end_to_end_recipe: Recipe,
    /// Crossover estimate settings.
    pub crossover: CrossoverConfig,
    /// Profiles.
    pub profiles: BTreeMap<String, P3Profile>,
}

/// What a profile varies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P3Profile {
    /// The worlds.
    pub worlds: Vec<World>,
    /// Age-labelled training images, increasing.
    pub sizes: Vec<usize>,
    /// Seeds.
    pub seeds: u64,
}

/// Names of the contenders.
pub const HAND: &str = "hand measurement → regression";
/// See [`HAND`].
pub const LEARNED: &str = "learned measurement → regression";
/// See [`HAND`].
pub const END_TO_END: &str = "end-to-end";

const TEST_SEED: u64 = 0x7E57_0003;

impl P3Config {
    fn generator(&self, world: World) -> BoneAgeConfig {
        BoneAgeConfig {
            size: self.size,
            bones: self.bones,
            world,
            length_noise: self.length_noise,
            noise: self.noise,
        }
    }

    fn validate(&self) -> Result<()> {
        self.generator(World::LengthsSuffice).validate()?;
        for (name, r) in [
            ("measure_recipe", &self.measure_recipe),
            ("regressor_recipe", &self.regressor_recipe),
            ("end_to_end_recipe", &self.end_to_end_recipe),
        ] {
            r.validate(name)?;
            if r.train
                .early_stopping
                .as_ref()
                .is_some_and(|e| e.goal != Goal::Minimize)
            {
                return Err(Error::InvalidArgument(format!(
                    "{name}.train.early_stopping.goal must be \"minimize\" (MAE)"
                )));
            }
        }
        Ok(())
    }

    fn cnn(&self, outputs: i64) -> ArchConfig {
        ArchConfig::FaceCnn(FaceCnnConfig {
            channels: self.cnn_channels.clone(),
            classes: outputs,
        })
    }
}

fn world_name(w: World) -> &'static str {
    match w {
        World::LengthsSuffice => "lengths suffice",
        World::LengthsPartial => "lengths partial",
    }
}

/// The `n` training and validation images of a point, from `seed` (the same for every
/// contender).
fn training_set(
    cfg: &P3Config,
    world: World,
    n: usize,
    seed: u64,
) -> Result<(bone_age::BoneAgeSet, usize)> {
    let v = experiment::validation_size(n);
    Ok((
        bone_age::generate(&cfg.generator(world), n + v, 1000 + seed)?,
        v,
    ))
}

fn split(x: &Tensor, n: usize, v: usize) -> (Tensor, Tensor) {
    (x.narrow(0, 0, n as i64), x.narrow(0, n as i64, v as i64))
}

/// Trains the regressor on features `[n, bones]` → age and scores it on the test features.
#[allow(clippy::too_many_arguments)]
fn regress(
    cfg: &P3Config,
    features: &Tensor,
    age: &Tensor,
    n: usize,
    v: usize,
    test: &TensorDataset,
    seed: u64,
    device: Device,
) -> Result<f64> {
    let arch = ArchConfig::Mlp(MlpConfig {
        inputs: cfg.bones as i64,
        hidden: cfg.regressor_hidden.clone(),
        classes: 1,
    });
    let mut m = EndToEnd::new(
        "regressor",
        LearnedStage::from_arch(device, &arch, Objective::Regression, seed)?,
    );
    let (xt, xv) = split(features, n, v);
    let (yt, yv) = split(age, n, v);
    let train = TensorDataset::new(xt, yt)?;
    let val = TensorDataset::new(xv, yv)?;
    m.stage
        .fit(&train, Some(&val), &cfg.regressor_recipe.resolve(n), seed)?;
    evaluate(&m, test, 512, Metric::Mae)
}

/// Lengths in units of the image size (the regressor's inputs).
fn hand_lengths(images: &Tensor, cfg: &BoneAgeConfig) -> Result<Tensor> {
    Ok(bone_age::measure_lengths(images, cfg)? / cfg.size as f64)
}

/// The learned measurement of one seed (the same in both worlds): a CNN from image to lengths / size.
fn train_measurement(cfg: &P3Config, seed: u64, device: Device) -> Result<LearnedStage> {
    // Images and lengths do not depend on the world (only the age label does).
    let generator = cfg.generator(World::LengthsSuffice);
    let m = cfg.measure_examples;
    let v = experiment::validation_size(m);
    let set = bone_age::generate(&generator, m + v, 50_000 + seed)?;
    let lengths = &set.lengths / cfg.size as f64;
    let (xt, xv) = split(&set.images, m, v);
    let (yt, yv) = split(&lengths, m, v);
    let mut stage = LearnedStage::from_arch(
        device,
        &cfg.cnn(cfg.bones as i64),
        Objective::Regression,
        50_000 + seed,
    )?;
    stage.fit(
        &TensorDataset::new(xt, yt)?,
        Some(&TensorDataset::new(xv, yv)?),
        &cfg.measure_recipe.resolve(m),
        seed,
    )?;
    Ok(stage)
}

fn forward_batched(stage: &LearnedStage, xs: &Tensor) -> Tensor {
    let n = xs.size()[0];
    let parts: Vec<Tensor> = (0..n)
        .step_by(512)
        .map(|i| {
            stage
                .forward(&xs.narrow(0, i, (n - i).min(512)))
                .to_device(Device::Cpu)
        })
        .collect();
    Tensor::cat(&parts, 0)
}

/// The rule for E-4 in the world where lengths suffice, fixed before any run.
pub const RULE_E4: &str = "in the world where lengths suffice, at the smallest N: supported if the 95% CI of the \
     MAE advantage of the learned-measurement pipeline (sub-task with plentiful length labels) \
     over end-to-end is above 0; not supported if end-to-end's advantage CI is above 0; \
     otherwise inconclusive";

/// The verdict of E-4 from the pipeline's paired advantage (positive: pipeline better).
pub fn verdict_e4(pipeline_advantage_at_smallest: &Summary) -> Verdict {
    if pipeline_advantage_at_smallest.above(0.0) {
        Verdict::Supported
    } else if pipeline_advantage_at_smallest.below(0.0) {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
}

/// The rule for E-5, fixed before any run.
pub const RULE_E5: &str = "in the world where lengths carry only part of the age, at the largest N: supported if the \
     95% CI of end-to-end's MAE advantage over the better pipeline (by mean MAE there) is above \
     0; not supported if it is below 0; otherwise inconclusive";

/// The verdict of E-5 from end-to-end's advantage over the better pipeline at the largest N.
pub fn verdict_e5(e2e_advantage_at_largest: &Summary) -> Verdict {
    verdict_e4(e2e_advantage_at_largest)
}

/// The rule for E-6, fixed before any run.
pub const RULE_E6: &str = "supported if the hand-measurement pipeline's MAE advantage over end-to-end has a 95% CI \
     above 0 at the smallest N where lengths suffice (the knowledge helps) and below 0 at the \
     largest N where lengths are partial (it caps accuracy); not supported if either interval \
     lies on the other side of 0; otherwise inconclusive";

/// The verdict of E-6 from the hand pipeline's advantage over end-to-end (positive: hand
/// better) at the smallest N of the right world and the largest N of the wrong one.
pub fn verdict_e6(right_world_smallest: &Summary, wrong_world_largest: &Summary) -> Verdict {
    if right_world_smallest.above(0.0) && wrong_world_largest.below(0.0) {
        Verdict::Supported
    } else if right_world_smallest.below(0.0) || wrong_world_largest.above(0.0) {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
}

/// Runs the sweep of one world.
fn sweep_world(
    cfg: &P3Config,
    p: &P3Profile,
    world: World,
    seeds: u64,
    ctx: &Ctx<'_>,
    measurements: &RefCell<HashMap<u64, Rc<LearnedStage>>>,
) -> Result<Option<SweepResult>> {
    let generator = cfg.generator(world);
    let test_set = bone_age::generate(&generator, cfg.test_examples, TEST_SEED)?;
    let test_images = TensorDataset::new(
        test_set.images.shallow_clone(),
        test_set.age.shallow_clone(),
    )?;
    let test_hand = TensorDataset::new(
        hand_lengths(&test_set.images, &generator)?,
        test_set.age.shallow_clone(),
    )?;
    let measurement = |seed: u64| -> Result<Rc<LearnedStage>> {
        if let Some(m) = measurements.borrow().get(&seed) {
            return Ok(m.clone());
        }
        let m = Rc::new(train_measurement(cfg, seed, ctx.device)?);
        measurements.borrow_mut().insert(seed, m.clone());
        Ok(m)
    };
    let scope = serde_json::json!({
        "world": world, "size": cfg.size, "bones": cfg.bones, "length_noise": cfg.length_noise,
        "noise": cfg.noise, "cnn_channels": cfg.cnn_channels, "regressor_hidden": cfg.regressor_hidden,
        "measure_examples": cfg.measure_examples, "test_examples": cfg.test_examples,
        "measure_recipe": cfg.measure_recipe, "regressor_recipe": cfg.regressor_recipe,
        "end_to_end_recipe": cfg.end_to_end_recipe,
    });
    let label = format!("p3 {}", world_name(world));
    let device = ctx.device;
    let contenders = vec![
        stored(ctx, "p3-bone-age", &label, &scope, HAND, |n, seed| {
            let (set, v) = training_set(cfg, world, n, seed)?;
            let features = hand_lengths(&set.images, &generator)?;
            regress(cfg, &features, &set.age, n, v, &test_hand, seed, device)
        }),
        stored(ctx, "p3-bone-age", &label, &scope, LEARNED, |n, seed| {
            let (set, v) = training_set(cfg, world, n, seed)?;
            let stage = measurement(seed)?;
            let features = forward_batched(&stage, &set.images);
            let test = TensorDataset::new(
                forward_batched(&stage, &test_set.images),
                test_set.age.shallow_clone(),
            )?;
            regress(cfg, &features, &set.age, n, v, &test, seed, device)
        }),
        stored(ctx, "p3-bone-age", &label, &scope, END_TO_END, |n, seed| {
            let (set, v) = training_set(cfg, world, n, seed)?;
            let (xt, xv) = split(&set.images, n, v);
            let (yt, yv) = split(&set.age, n, v);
            let mut m = EndToEnd::new(
                END_TO_END,
                LearnedStage::from_arch(device, &cfg.cnn(1), Objective::Regression, seed)?,
            );
            m.stage.fit(
                &TensorDataset::new(xt, yt)?,
                Some(&TensorDataset::new(xv, yv)?),
                &cfg.end_to_end_recipe.resolve(n),
                seed,
            )?;
            evaluate(&m, &test_images, 512, Metric::Mae)
        }),
    ];
    let plan = SweepPlan {
        sizes: p.sizes.clone(),
        seeds: experiment::seeds(seeds),
        goal: Goal::Minimize,
    };
    experiment::sweep(ctx, contenders, &plan)
}

/// Runs P3 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: P3Config = experiment::load_toml(config_path)?;
    cfg.validate().map_err(|e| e.in_file(config_path))?;
    let p = experiment::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds_or(p.seeds)?;
    let ctx = Ctx::new(opts, on_run)?;
    let mut results = Vec::new();
    let measurements = RefCell::new(HashMap::new());
    for &world in &p.worlds {
        if let Some(r) = sweep_world(&cfg, p, world, seeds, &ctx, &measurements)? {
            results.push((world, r));
        }
    }
    if ctx.sharded() {
        return Ok(ctx.shard_report(
            "P3",
            "bone age",
            &["E-4", "E-5", "E-6"],
            opts,
            seeds,
            started,
        ));
    }
    let mut rep = ctx.report(
        "P3",
        "bone age in two worlds: hand design, learned sub-task, end-to-end",
        &["E-4", "E-5", "E-6"],
        format!(
            "Generated hand-like {s}x{s} images with {b} bones (length noise {ln}, background \
             noise {bn}); worlds: {worlds}. N ∈ {sizes:?} age-labelled images (+ a fifth for \
             validation, from the training seed); test: {t} images per world. Contenders: {HAND} \
             (hand-designed length measurement → MLP {rh:?}); {LEARNED} (CNN {c:?} trained on \
             {m} images labelled with lengths only → the same MLP); {END_TO_END} (CNN {c:?} → \
             age). Metric: test MAE of age on its [0, 1] scale (× 18 for years); lower is better.",
            s = cfg.size,
            b = cfg.bones,
            ln = cfg.length_noise,
            bn = cfg.noise,
            worlds = p
                .worlds
                .iter()
                .map(|w| world_name(*w))
                .collect::<Vec<_>>()
                .join(", "),
            sizes = p.sizes,
            t = cfg.test_examples,
            rh = cfg.regressor_hidden,
            c = cfg.cnn_channels,
            m = cfg.measure_examples,
        ),
        opts,
        seeds,
        started,
        &cfg,
    );
    let pairs = [(END_TO_END, HAND), (END_TO_END, LEARNED), (LEARNED, HAND)];
    for (world, result) in &results {
        let tag = match world {
            World::LengthsSuffice => "lengths-suffice",
            World::LengthsPartial => "lengths-partial",
        };
        let mut t = result.table(&format!("p3-{tag}-mae"), true)?;
        t.name = format!("p3-{tag}-mae (test MAE, % of the age range)");
        rep.tables.push(t);
        let (t, crossovers) = experiment::crossover_table(
            &format!("p3-{tag}-crossovers"),
            result,
            &pairs,
            &cfg.crossover,
        )?;
        rep.tables.push(t);
        rep.tables.push(experiment::advantage_table(
            &format!("p3-{tag}-advantage (MAE of b − MAE of a, % of the age range)"),
            result,
            &pairs,
            &crossovers,
            true,
        ));
        rep.plots.push(experiment::curve_plot(
            &format!("p3-{tag}"),
            &format!("P3 ({}): test MAE of age vs N", world_name(*world)),
            result,
            "age-labelled training images (N)",
            "test MAE (% of the age range)",
            true,
            match world {
                World::LengthsPartial => {
                    Some("best MAE from exact lengths alone: 12.5% of the age range")
                }
                World::LengthsSuffice => None,
            },
        )?);
        for ((a, b), c) in pairs.iter().zip(&crossovers) {
            rep.notes.push(format!(
                "{}: {}.",
                world_name(*world),
                experiment::describe_crossover(a, b, c)
            ));
        }
    }
    let in_world = |w: World| results.iter().find(|(x, _)| *x == w).map(|(_, r)| r);
    let first = |r: &SweepResult, a: &str, b: &str| -> Result<Summary> {
        Ok(r.crossover(
            a,
            b,
            &CrossoverConfig {
                bootstrap: 0,
                seed: 0,
            },
        )?
        .advantage[0])
    };
    let last = |r: &SweepResult, a: &str, b: &str| -> Result<Summary> {
        Ok(*r
            .crossover(
                a,
                b,
                &CrossoverConfig {
                    bootstrap: 0,
                    seed: 0,
                },
            )?
            .advantage
            .last()
            .expect("sizes are not empty"))
    };
    let (small, large) = (p.sizes[0], *p.sizes.last().expect("validated"));
    if let Some(r) = in_world(World::LengthsSuffice) {
        let adv = first(r, LEARNED, END_TO_END)?;
        let hand = first(r, HAND, END_TO_END)?;
        rep.verdicts.push(claim(
            "E-4",
            "P3",
            "bone age, lengths suffice",
            verdict_e4(&adv),
            RULE_E4,
            format!(
                "MAE(end-to-end) − MAE(learned measurement) at N = {small}, % of the age range"
            ),
            adv,
            format!(
                "The hand-measurement pipeline's advantage there: {} (% of the age range).",
                fmt(&hand, 100.0)
            ),
        ));
    }
    if let Some(r) = in_world(World::LengthsPartial) {
        let mean_at_largest = |name: &str| -> Result<f64> {
            Ok(r.learning_curve(name)?.last().expect("not empty").mean)
        };
        let better = if mean_at_largest(HAND)? <= mean_at_largest(LEARNED)? {
            HAND
        } else {
            LEARNED
        };
        let adv = last(r, END_TO_END, better)?;
        rep.verdicts.push(claim(
            "E-5",
            "P3",
            "bone age, lengths partial",
            verdict_e5(&adv),
            RULE_E5,
            format!("MAE({better}) − MAE(end-to-end) at N = {large}, % of the age range"),
            adv,
            format!(
                "End-to-end MAE at N = {large}: {}%; the better pipeline's: {}% (floor from exact \
                 lengths alone: 12.5%).",
                fmt(
                    r.learning_curve(END_TO_END)?.last().expect("not empty"),
                    100.0
                ),
                fmt(r.learning_curve(better)?.last().expect("not empty"), 100.0),
            ),
        ));
    }
    if let (Some(right), Some(wrong)) = (
        in_world(World::LengthsSuffice),
        in_world(World::LengthsPartial),
    ) {
        let helps = first(right, HAND, END_TO_END)?;
        let caps = last(wrong, HAND, END_TO_END)?;
        rep.verdicts.push(claim(
            "E-6",
            "P3",
            "bone age, both worlds",
            verdict_e6(&helps, &caps),
            RULE_E6,
            format!("MAE(end-to-end) − MAE(hand measurement), lengths suffice, N = {small}, % of the age range"),
            helps,
            format!(
                "Where lengths are partial, at N = {large}: {} (% of the age range; negative = the hand \
                 design loses).",
                fmt(&caps, 100.0)
            ),
        ));
    }
    rep.notes.push(
        "The learned measurement is trained once per seed on its own length-labelled images \
         (the same in both worlds) and reused at every N and world of that seed; its training time is counted in the first \
         run that needs it."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use transferlab_report::stats::summarize;

    fn s(v: &[f64]) -> Summary {
        summarize(v).unwrap()
    }

    #[test]
    fn the_rules_read_the_intervals() {
        let pos = s(&[0.02, 0.03, 0.025]);
        let neg = s(&[-0.02, -0.03, -0.025]);
        let tie = s(&[0.02, -0.03, 0.0]);
        assert_eq!(verdict_e4(&pos), Verdict::Supported);
        assert_eq!(verdict_e4(&neg), Verdict::NotSupported);
        assert_eq!(verdict_e4(&tie), Verdict::Inconclusive);
        assert_eq!(verdict_e5(&pos), Verdict::Supported);
        assert_eq!(verdict_e5(&neg), Verdict::NotSupported);
        // E-6: helps where right, hurts where wrong.
        assert_eq!(verdict_e6(&pos, &neg), Verdict::Supported);
        assert_eq!(verdict_e6(&pos, &tie), Verdict::Inconclusive);
        assert_eq!(verdict_e6(&neg, &neg), Verdict::NotSupported);
        assert_eq!(verdict_e6(&pos, &pos), Verdict::NotSupported);
    }

    #[test]
    fn the_hand_measurement_feeds_the_regressor_in_image_units() {
        let generator = BoneAgeConfig {
            size: 32,
            bones: 3,
            world: World::LengthsSuffice,
            length_noise: 0.03,
            noise: 0.05,
        };
        let set = bone_age::generate(&generator, 4, 0).unwrap();
        let f = hand_lengths(&set.images, &generator).unwrap();
        assert_eq!(f.size(), [4, 3]);
        let err = (f * 32.0 - &set.lengths).abs().max().double_value(&[]);
        assert!(err <= 1.0 + 1e-4, "{err}");
    }
}
