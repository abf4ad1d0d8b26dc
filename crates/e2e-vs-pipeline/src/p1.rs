//! Experiment P1, detect then identify (claim E-4; the face-recognition gate), digits variant.
//!
//! Scenes ([`crate::scenes`]): one MNIST digit at a random position in a cluttered canvas
//! (e.g. 84x84, with fragments of other digits as clutter). Contenders:
//!
//! - **pipeline**: a [`Localiser`] trained on `localiser_examples` scenes with their boxes
//!   (plentiful sub-task data: boxes, no labels) → crop at the predicted box, resized to
//!   28x28 → a classifier trained on `classifier_examples` labelled digit crops (cut at the
//!   localiser's own predicted boxes, so it learns what it will see). Both are trained once
//!   per seed on scenes made from the MNIST training split; the pipeline does not use the `N`
//!   labelled scenes, so its curve is flat in `N` by design;
//! - **end-to-end**: one CNN from scene to label trained on `N` labelled scenes (+ a fifth
//!   for validation, from the training side).
//!
//! Test: `test_examples` scenes from the MNIST test split, the same for every run. The
//! training pools are disjoint slices of one seeded permutation of the MNIST training split.
//! The faces variant (ORL) is not implemented yet.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use core_tensor::data::{TensorDataset, permutation};
use core_tensor::datasets::{ImageDataset, Mnist, Split};
use core_tensor::report::{Cell, ExperimentReport, Table, Verdict};
use core_tensor::stats::{Summary, summarize};
use core_tensor::train::{Goal, Trainer};
use core_tensor::{Error, Result};
use pretrained_zoo::arch::ArchConfig;
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::experiment::{self, Ctx, Recipe, RunOptions, claim, fmt, stored};
use crate::localise::{Localiser, LocaliserConfig, crop_and_resize, mean_iou};
use crate::pipeline::{EndToEnd, LearnedStage, Metric, Objective, evaluate};
use crate::scenes::{self, SceneConfig};
use crate::sweep::{CrossoverConfig, SweepPlan, run_sweep};

/// `experiments/p1.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P1Config {
    /// The scenes.
    pub scenes: SceneConfig,
    /// The localiser (its `fixed_size` is the digit's 28x28 when the scale is 1).
    pub localiser: LocaliserConfig,
    /// Scenes with boxes that train the localiser.
    pub localiser_examples: usize,
    /// Its recipe (no validation: fixed epochs).
    pub localiser_recipe: Recipe,
    /// The classifier of crops (28x28 in, 10 classes).
    pub classifier: ArchConfig,
    /// Labelled crops that train it.
    pub classifier_examples: usize,
    /// Its recipe (no validation: fixed epochs).
    pub classifier_recipe: Recipe,
    /// The end-to-end network (scene in, 10 classes).
    pub end_to_end: ArchConfig,
    /// Its recipe (early stopping on validation accuracy).
    pub end_to_end_recipe: Recipe,
    /// Test scenes (from the MNIST test split).
    pub test_examples: usize,
    /// Crossover estimate settings.
    pub crossover: CrossoverConfig,
    /// Profiles.
    pub profiles: BTreeMap<String, P1Profile>,
}

/// What a profile varies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P1Profile {
    /// Labelled scenes of the end-to-end network, increasing.
    pub sizes: Vec<usize>,
    /// Seeds.
    pub seeds: u64,
}

/// Names of the contenders.
pub const PIPELINE: &str = "localise → crop → classify";
/// See [`PIPELINE`].
pub const END_TO_END: &str = "end-to-end";

const TEST_SEED: u64 = 0x7E57_0001;
const CROP: i64 = 28;

/// The trained components of the pipeline of one seed.
struct Components {
    _vs: nn::VarStore,
    localiser: Localiser,
    classifier: LearnedStage,
}

impl Components {
    fn boxes(&self, images: &Tensor, device: Device) -> Tensor {
        batched(images, 256, |x| {
            tch::no_grad(|| self.localiser.boxes(&x.to_device(device))).to_device(Device::Cpu)
        })
    }

    fn crops(&self, images: &Tensor, device: Device) -> Result<Tensor> {
        crop_and_resize(images, &self.boxes(images, device), CROP, CROP)
    }
}

fn batched(xs: &Tensor, size: i64, f: impl Fn(&Tensor) -> Tensor) -> Tensor {
    let n = xs.size()[0];
    let parts: Vec<Tensor> = (0..n)
        .step_by(size as usize)
        .map(|i| f(&xs.narrow(0, i, (n - i).min(size))))
        .collect();
    Tensor::cat(&parts, 0)
}

/// MNIST as the scenes' pool.
struct Pool {
    images: Tensor,
    labels: Tensor,
}

impl Pool {
    fn new(d: &ImageDataset) -> Result<Self> {
        Ok(Pool {
            images: d.images_f32()?.view([-1, 1, 28, 28]),
            labels: d.labels.shallow_clone(),
        })
    }

    fn scenes(&self, which: &Tensor, cfg: &SceneConfig, seed: u64) -> Result<scenes::Scenes> {
        scenes::generate(&self.images, &self.labels, which, cfg, seed)
    }
}

/// Which slice of the seed's permutation of the training split each set uses.
struct Slices {
    order: Tensor,
    localiser: usize,
    classifier: usize,
}

impl Slices {
    fn new(cfg: &P1Config, n: i64, seed: u64) -> Self {
        Slices {
            order: permutation(n, 0x5111_0000 + seed, Device::Cpu),
            localiser: cfg.localiser_examples,
            classifier: cfg.classifier_examples,
        }
    }

    fn take(&self, start: usize, len: usize) -> Result<Tensor> {
        let total = self.order.size()[0] as usize;
        if start + len > total {
            return Err(Error::InvalidArgument(format!(
                "P1 asks for {} training images of the {total} in MNIST's training split",
                start + len
            )));
        }
        Ok(self.order.narrow(0, start as i64, len as i64))
    }

    fn localiser(&self) -> Result<Tensor> {
        self.take(0, self.localiser)
    }

    fn classifier(&self) -> Result<Tensor> {
        self.take(self.localiser, self.classifier)
    }

    /// The `n` training and `v` validation scenes of the end-to-end network.
    fn end_to_end(&self, n: usize, v: usize) -> Result<(Tensor, Tensor)> {
        let start = self.localiser + self.classifier;
        Ok((self.take(start, n)?, self.take(start + n, v)?))
    }
}

fn train_components(cfg: &P1Config, pool: &Pool, seed: u64, device: Device) -> Result<Components> {
    let slices = Slices::new(cfg, pool.images.size()[0], seed);
    // The localiser, on scenes with boxes only.
    let loc_scenes = pool.scenes(&slices.localiser()?, &cfg.scenes, 0x10C0 + seed)?;
    let vs = nn::VarStore::new(device);
    core_tensor::device::seed(0x10C0 + seed);
    let localiser = Localiser::new(&vs.root(), &cfg.localiser)?;
    let data = TensorDataset::new(loc_scenes.images, loc_scenes.boxes)?.to_device(device);
    Trainer::new(&vs, cfg.localiser_recipe.resolve(cfg.localiser_examples))?
        .shuffle_seed(seed)
        .fit(&data, |xs, ys| localiser.loss(xs, ys), None)?;
    drop(data);
    let mut components = Components {
        _vs: vs,
        localiser,
        classifier: LearnedStage::from_arch(
            device,
            &cfg.classifier,
            Objective::Classification,
            0xC1A5 + seed,
        )?,
    };
    // The classifier, on labelled crops cut where the localiser says.
    let which = slices.classifier()?;
    let mut crops = Vec::new();
    let mut labels = Vec::new();
    for (i, chunk) in which.split(2000, 0).iter().enumerate() {
        let s = pool.scenes(chunk, &cfg.scenes, 0xC1A5_0000 + 1000 * seed + i as u64)?;
        crops.push(components.crops(&s.images, device)?);
        labels.push(s.labels);
    }
    let data = TensorDataset::new(Tensor::cat(&crops, 0), Tensor::cat(&labels, 0))?;
    components.classifier.fit(
        &data,
        None,
        &cfg.classifier_recipe.resolve(cfg.classifier_examples),
        seed,
    )?;
    Ok(components)
}

/// What the pipeline's parts do on the test scenes (one seed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentScores {
    /// Mean IoU of the localiser's boxes with the true boxes.
    pub localiser_iou: f64,
    /// The classifier's accuracy on crops at the true boxes.
    pub classifier_true_boxes: f64,
    /// The pipeline's accuracy (crops at the predicted boxes).
    pub pipeline: f64,
}

impl core_tensor::experiment::StandIn for ComponentScores {
    fn stand_in() -> Self {
        ComponentScores {
            localiser_iou: 0.5,
            classifier_true_boxes: 0.5,
            pipeline: 0.5,
        }
    }
}

fn score_components(
    c: &Components,
    test: &scenes::Scenes,
    device: Device,
) -> Result<ComponentScores> {
    let boxes = c.boxes(&test.images, device);
    let classify = |crops: Tensor| -> Result<f64> {
        let m = &c.classifier;
        let data = TensorDataset::new(crops, test.labels.shallow_clone())?;
        let mut correct = 0.0;
        for (xs, ys) in data.batches(512) {
            correct += m
                .forward(&xs)
                .f_argmax(-1, false)?
                .f_eq_tensor(&ys.to_device(device))?
                .f_sum(Kind::Float)?
                .f_double_value(&[])?;
        }
        Ok(correct / data.len() as f64)
    };
    Ok(ComponentScores {
        localiser_iou: mean_iou(&boxes, &test.boxes),
        classifier_true_boxes: classify(crop_and_resize(&test.images, &test.boxes, CROP, CROP)?)?,
        pipeline: classify(crop_and_resize(&test.images, &boxes, CROP, CROP)?)?,
    })
}

/// The rule for E-4 on detect-then-identify, fixed before any run.
pub const RULE: &str = "at the smallest N: supported if the 95% CI of the pipeline's accuracy advantage over \
     end-to-end (paired by seed) is above 0; not supported if it is below 0; otherwise \
     inconclusive (the crossover, if any, is reported beside)";

/// The verdict from the pipeline's paired advantage at the smallest N.
pub fn verdict(pipeline_advantage_at_smallest: &Summary) -> Verdict {
    if pipeline_advantage_at_smallest.above(0.0) {
        Verdict::Supported
    } else if pipeline_advantage_at_smallest.below(0.0) {
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    }
}

/// Runs P1 (resumable) and builds its report.
pub fn run(
    config_path: &Path,
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool),
) -> Result<ExperimentReport> {
    let started = std::time::Instant::now();
    let cfg: P1Config = experiment::load_toml(config_path)?;
    let check = || -> Result<()> {
        cfg.scenes.validate(28, 28)?;
        cfg.localiser.validate()?;
        cfg.classifier.validate()?;
        cfg.end_to_end.validate()?;
        cfg.localiser_recipe.validate("localiser_recipe")?;
        cfg.classifier_recipe.validate("classifier_recipe")?;
        cfg.end_to_end_recipe.validate("end_to_end_recipe")?;
        if cfg.localiser_recipe.train.early_stopping.is_some()
            || cfg.classifier_recipe.train.early_stopping.is_some()
        {
            return Err(Error::InvalidArgument(
                "localiser_recipe and classifier_recipe train without validation: no early_stopping"
                    .into(),
            ));
        }
        Ok(())
    };
    check().map_err(|e| Error::format(config_path, e.to_string()))?;
    let p = experiment::profile(&cfg.profiles, &opts.profile)?;
    let seeds = opts.seeds.unwrap_or(p.seeds);
    let ctx = Ctx::new(opts, on_run)?;
    let device = ctx.device;

    let cache = core_tensor::fixtures::cache_dir();
    let train_pool = Pool::new(&Mnist::load(&cache, Split::Train)?)?;
    let test_pool = Pool::new(&Mnist::load(&cache, Split::Test)?)?;
    let test = test_pool.scenes(
        &Tensor::arange(cfg.test_examples as i64, (Kind::Int64, Device::Cpu)),
        &cfg.scenes,
        TEST_SEED,
    )?;
    let test_data = TensorDataset::new(test.images.shallow_clone(), test.labels.shallow_clone())?;

    let components: RefCell<HashMap<u64, Rc<Components>>> = RefCell::new(HashMap::new());
    let component = |seed: u64| -> Result<Rc<Components>> {
        if let Some(c) = components.borrow().get(&seed) {
            return Ok(c.clone());
        }
        let c = Rc::new(train_components(&cfg, &train_pool, seed, device)?);
        components.borrow_mut().insert(seed, c.clone());
        Ok(c)
    };
    let scope = serde_json::json!({
        "scenes": cfg.scenes, "localiser": cfg.localiser,
        "localiser_examples": cfg.localiser_examples, "localiser_recipe": cfg.localiser_recipe,
        "classifier": cfg.classifier, "classifier_examples": cfg.classifier_examples,
        "classifier_recipe": cfg.classifier_recipe, "end_to_end": cfg.end_to_end,
        "end_to_end_recipe": cfg.end_to_end_recipe, "test_examples": cfg.test_examples,
    });
    let label = "p1 digits";
    let result = {
        let mut contenders = vec![
            stored(
                &ctx,
                "p1-detect-identify",
                label,
                &scope,
                PIPELINE,
                |_, seed| {
                    let c = component(seed)?;
                    Ok(score_components(&c, &test, device)?.pipeline)
                },
            ),
            stored(
                &ctx,
                "p1-detect-identify",
                label,
                &scope,
                END_TO_END,
                |n, seed| {
                    let slices = Slices::new(&cfg, train_pool.images.size()[0], seed);
                    let v = experiment::validation_size(n);
                    let (tw, vw) = slices.end_to_end(n, v)?;
                    let tr = train_pool.scenes(&tw, &cfg.scenes, 0xE2E0_0000 + seed)?;
                    let va = train_pool.scenes(&vw, &cfg.scenes, 0xE2E1_0000 + seed)?;
                    let mut m = EndToEnd::new(
                        END_TO_END,
                        LearnedStage::from_arch(
                            device,
                            &cfg.end_to_end,
                            Objective::Classification,
                            seed,
                        )?,
                    );
                    m.stage.fit(
                        &TensorDataset::new(tr.images, tr.labels)?,
                        Some(&TensorDataset::new(va.images, va.labels)?),
                        &cfg.end_to_end_recipe.resolve(n),
                        seed,
                    )?;
                    evaluate(&m, &test_data, 256, Metric::Accuracy)
                },
            ),
        ];
        let plan = SweepPlan {
            sizes: p.sizes.clone(),
            seeds: experiment::seeds(seeds),
            goal: Goal::Maximize,
        };
        run_sweep(&mut contenders, &plan)?
    };
    // The components' diagnostics, one stored run per seed.
    let mut diag: Vec<ComponentScores> = Vec::new();
    for seed in experiment::seeds(seeds) {
        let line = format!("p1 digits components seed {seed}");
        diag.push(ctx.run("p1-components", &scope, seed, &line, || {
            score_components(&*component(seed)?, &test, device)
        })?);
    }

    let mut rep = ctx.report(
        "P1",
        "detect then identify: cluttered MNIST digits",
        &["E-4"],
        format!(
            "An MNIST digit (scale {:?}) in a {}x{} canvas with {} clutter fragments of {}x{} \
             pixels. Pipeline: a localiser (conv widths {:?}, soft-argmax centre) trained on {} \
             scenes with boxes → 28x28 crop at the predicted box → classifier {} trained on {} \
             labelled crops; both trained once per seed and independent of N. End-to-end: {} \
             from the scene, trained on N ∈ {:?} labelled scenes (+ a fifth for validation). \
             Test: {} scenes from the MNIST test split. Training sets are disjoint slices of the \
             MNIST training split.",
            cfg.scenes.scale,
            cfg.scenes.height,
            cfg.scenes.width,
            cfg.scenes.clutter,
            cfg.scenes.clutter_size,
            cfg.scenes.clutter_size,
            cfg.localiser.channels,
            cfg.localiser_examples,
            cfg.classifier.name(),
            cfg.classifier_examples,
            cfg.end_to_end.name(),
            p.sizes,
            cfg.test_examples,
        ),
        opts,
        seeds,
        started,
        &cfg,
    );
    rep.tables.push(result.table("p1-accuracy (%)", true)?);
    let pairs = [(END_TO_END, PIPELINE)];
    let (t, crossovers) =
        experiment::crossover_table("p1-crossover", &result, &pairs, &cfg.crossover)?;
    rep.tables.push(t);
    rep.tables.push(experiment::advantage_table(
        "p1-advantage (accuracy points)",
        &result,
        &pairs,
        &crossovers,
        true,
    ));
    let mut comp = Table::new(
        "p1-components",
        &[
            "localiser IoU on test scenes",
            "classifier on crops at true boxes (%)",
            "pipeline (%)",
        ],
    );
    let col = |f: fn(&ComponentScores) -> f64| summarize(&diag.iter().map(f).collect::<Vec<_>>());
    comp.push(vec![
        Cell::stat(col(|d| d.localiser_iou)?),
        Cell::pct(col(|d| d.classifier_true_boxes)?),
        Cell::pct(col(|d| d.pipeline)?),
    ]);
    rep.tables.push(comp);
    rep.plots.push(experiment::curve_plot(
        "p1-digits",
        "P1 (digits): test accuracy vs labelled scenes N",
        &result,
        "labelled scenes of the end-to-end network (N)",
        "test accuracy (%)",
        true,
        Some("E-4: the pipeline's sub-tasks have far more data (boxes, digit crops) than the whole task"),
    )?);
    let c = &crossovers[0];
    let pipeline_adv = {
        let a = c.advantage[0];
        Summary {
            mean: -a.mean,
            ci95: a.ci95.map(|(lo, hi)| (-hi, -lo)),
            ..a
        }
    };
    let small = p.sizes[0];
    rep.verdicts.push(claim(
        "E-4",
        "P1",
        "cluttered MNIST digits",
        verdict(&pipeline_adv),
        RULE,
        format!("pipeline − end-to-end at N = {small}, accuracy points"),
        pipeline_adv,
        format!(
            "Sub-task data: {} scenes with boxes and {} labelled crops. Crossover: {}. At the \
             largest N the end-to-end advantage is {} points.",
            cfg.localiser_examples,
            cfg.classifier_examples,
            experiment::describe_crossover(END_TO_END, PIPELINE, c),
            fmt(c.advantage.last().expect("not empty"), 100.0)
        ),
    ));
    rep.notes.push(
        "The faces variant (ORL faces in larger scenes) is not run yet; this report is the \
         digits variant."
            .into(),
    );
    rep.notes.push(
        "The pipeline's points do not depend on N (its parts learn from their own data); they \
         are stored per N and seed like every point of the sweep."
            .into(),
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_reads_the_interval_at_the_smallest_n() {
        let s = |v: &[f64]| summarize(v).unwrap();
        assert_eq!(verdict(&s(&[0.5, 0.6, 0.55])), Verdict::Supported);
        assert_eq!(verdict(&s(&[-0.1, -0.12, -0.11])), Verdict::NotSupported);
        assert_eq!(verdict(&s(&[0.1, -0.1, 0.0])), Verdict::Inconclusive);
    }
}
