//! What the experiments M1–M6 share: the data they train on, the one kind of run they are made
//! of, the run store bookkeeping and the report skeleton.
//!
//! Every experiment is a list of [`RunSpec`]s (data, trunk, balancer, recipe) trained once per
//! seed by [`Context::train`] and stored as it finishes in a [`RunStore`] under the key of the
//! resolved spec and the seed. A run that two experiments share (the single-task baseline of
//! "is there a 3" on the same scenes, trunk and recipe serves M1, M5 and M6) is trained once.
//!
//! Data is built from the seed alone ([`core_tensor::data::uniform`] and
//! [`core_tensor::data::permutation`], never libtorch's global generator): training and
//! validation scenes (or digit examples) come from the MNIST training split with the run's
//! seed, the test set from the MNIST test split with a fixed seed, the same for every run, so
//! every comparison is paired on the same test images. Validation is carved from the training
//! side and used only for early stopping; the test set is scored once, at the end of a run.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::driver::{Plan, Session};
use crate::runs::RunId;
use core_tensor::data::{TensorDataset, permutation, uniform};
use core_tensor::datasets::{FashionMnist, ImageDataset, Mnist, Split};
use core_tensor::train::TrainConfig;
use core_tensor::{Error, Result};
use pretrained_zoo::arch::{ArchConfig, HEAD, in_stage};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};
use transferlab_report::contrast::Contrast;
use transferlab_report::stats::Summary;

use multitask::balance::BalancerConfig;
use multitask::gain::{Comparison, delta_m};
use multitask::net::MultiTaskNet;
use multitask::scenes::{self, SceneConfig};
use multitask::task::{MetricKind, TaskKind, TaskSpec, fully_labelled, hide_labels};
use multitask::train::{MultiTaskConfig, TaskEval, train_and_evaluate};

/// Seed of every test set: the same test images for every run and seed.
pub const TEST_SEED: u64 = 0x7e57;

/// Where item images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// MNIST digits.
    Mnist,
    /// Fashion-MNIST items.
    FashionMnist,
}

impl Source {
    /// The dataset's name (the one `cargo xtask fetch` knows).
    pub fn name(self) -> &'static str {
        match self {
            Source::Mnist => "mnist",
            Source::FashionMnist => "fashion-mnist",
        }
    }
}

/// Multi-object scenes: how many for training, validation and test, and their shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneData {
    /// Item images.
    pub source: Source,
    /// Canvas and items per scene.
    pub scenes: SceneConfig,
    /// Training scenes (from the source's training split, seeded by the run).
    pub train: usize,
    /// Validation scenes for early stopping (also from the training split, disjoint draws).
    pub validation: usize,
    /// Test scenes (from the source's test split, [`TEST_SEED`]).
    pub test: usize,
    /// The networks see each canvas shrunk by this factor (`k x k` average pooling), so the
    /// items are `28/k` pixels a side: a large canvas with little overlap between items, at
    /// the cost of a small image. 1 (the default) shows the canvas as it is.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub downsample: i64,
}

fn one() -> i64 {
    1
}

fn is_one(k: &i64) -> bool {
    *k == 1
}

impl SceneData {
    /// Checks the sizes and the canvas; errors name `<at>.<field>`.
    pub fn validate(&self, at: &str) -> Result<()> {
        for (f, v) in [
            ("train", self.train),
            ("validation", self.validation),
            ("test", self.test),
        ] {
            if v == 0 {
                return Err(Error::InvalidArgument(format!(
                    "{at}.{f}: must be at least 1"
                )));
            }
        }
        self.scenes.validate(28, 28).map_err(|e| e.within(at))?;
        let k = self.downsample;
        if k < 1 || self.scenes.height % k != 0 || self.scenes.width % k != 0 {
            return Err(Error::InvalidArgument(format!(
                "{at}.downsample: {k} must be at least 1 and divide the canvas ({}x{})",
                self.scenes.height, self.scenes.width
            )));
        }
        Ok(())
    }

    /// Pixels of the image a network sees (the input width of an MLP trunk).
    pub fn pixels(&self) -> i64 {
        (self.scenes.height / self.downsample) * (self.scenes.width / self.downsample)
    }

    /// `40x40, 0–3 mnist items` (and `, shown at 20x20` when downsampled), for reports.
    pub fn describe(&self) -> String {
        let c = &self.scenes;
        let mut d = format!(
            "{}x{}, {}–{} {} items",
            c.height,
            c.width,
            c.min_items,
            c.max_items,
            self.source.name()
        );
        if self.downsample > 1 {
            let k = self.downsample;
            d += &format!(", shown at {}x{}", c.height / k, c.width / k);
        }
        d
    }

    /// Float images `[N, 1, H/k, W/k]` of `scenes` as the networks see them.
    pub fn network_images(&self, scenes: &scenes::Scenes) -> Result<Tensor> {
        let images = scenes.images_f32();
        let k = self.downsample;
        if k == 1 {
            return Ok(images);
        }
        Ok(images.f_avg_pool2d([k, k], [k, k], [0, 0], false, true, None)?)
    }
}

/// One target column of a scene task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SceneTarget {
    /// "Is an item of `class` in the scene" (binary).
    Presence {
        /// The class.
        class: i64,
    },
    /// The number of items in the scene (regression).
    Count,
    /// A fair coin per scene, drawn from the seed: a task that shares nothing with the image.
    Random {
        /// Which coin (each index is an independent label).
        index: u64,
    },
}

impl SceneTarget {
    /// The task this column is.
    pub fn task(&self) -> TaskSpec {
        match self {
            SceneTarget::Presence { class } => TaskSpec::binary(&format!("has{class}")),
            SceneTarget::Count => TaskSpec::regression("count"),
            SceneTarget::Random { index } => TaskSpec::binary(&format!("random{index}")),
        }
    }
}

/// Which training rows a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    /// Every example, with whatever labels it has (masked loss).
    #[default]
    All,
    /// Only the examples with every label present.
    FullyLabelled,
}

/// M2's data: `tasks` binary tasks on MNIST digits, each a fixed random split of the ten
/// classes into five positive and five negative ones, each with examples of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionData {
    /// Number of tasks `T` (task 0 is the focal task).
    pub tasks: usize,
    /// Own training examples of each task but the focal one.
    pub per_task: usize,
    /// Own training examples of the focal task.
    pub focal_per_task: usize,
    /// Own validation examples of each task.
    pub validation_per_task: usize,
    /// Test digits (from MNIST's test split, [`TEST_SEED`]); every task is scored on them.
    pub test: usize,
    /// Seed of the class partitions (fixed across run seeds, so task 0 is the same task).
    pub partition_seed: u64,
}

impl PartitionData {
    /// The positive classes of task `t` (five of the ten, from `partition_seed` alone).
    pub fn positives(&self, t: usize) -> Vec<i64> {
        let seed = core_tensor::data::splitmix64(self.partition_seed ^ (t as u64 + 1));
        let perm: Vec<i64> = Vec::try_from(permutation(10, seed, Device::Cpu)).unwrap_or_default();
        let mut p = perm[..5].to_vec();
        p.sort_unstable();
        p
    }
}

/// What a run trains on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "data", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSpec {
    /// Scenes with one task per target column.
    Scenes {
        /// The scenes.
        scenes: SceneData,
        /// The task columns.
        targets: Vec<SceneTarget>,
        /// Fraction of the training and validation labels hidden (each independently, from the
        /// seed; the masks of two fractions are nested).
        hide: f64,
        /// Which training rows are used.
        rows: Rows,
    },
    /// M2's digit tasks.
    Partitions(PartitionData),
}

impl DataSpec {
    /// The fixture dataset its examples are drawn from.
    pub fn dataset(&self) -> &'static str {
        match self {
            DataSpec::Scenes { scenes, .. } => scenes.source.name(),
            DataSpec::Partitions(_) => Source::Mnist.name(),
        }
    }

    /// The tasks, in column order.
    pub fn tasks(&self) -> Vec<TaskSpec> {
        match self {
            DataSpec::Scenes { targets, .. } => targets.iter().map(SceneTarget::task).collect(),
            DataSpec::Partitions(p) => (0..p.tasks)
                .map(|t| TaskSpec::binary(&format!("split{t}")))
                .collect(),
        }
    }

    /// Pixels per input.
    pub fn pixels(&self) -> i64 {
        match self {
            DataSpec::Scenes { scenes, .. } => scenes.pixels(),
            DataSpec::Partitions(_) => 28 * 28,
        }
    }
}

/// A training recipe whose epochs follow the training set's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Training settings; `epochs` is the least number of epochs, and early stopping (if any)
    /// must minimise (the mean validation loss of the tasks).
    pub train: TrainConfig,
    /// Each run trains at least this many steps…
    pub min_steps: usize,
    /// … within this many epochs.
    pub max_epochs: usize,
}

impl Recipe {
    /// Checks the recipe; errors name `recipe.<field>`.
    pub fn validate(&self) -> Result<()> {
        self.train.validate().map_err(|e| e.within("recipe"))?;
        if self.max_epochs == 0 {
            return Err(Error::InvalidArgument(
                "recipe.max_epochs: must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The settings for `examples` training examples: epochs so that training takes at least
    /// `min_steps` steps (within `[train.epochs, max_epochs]`) and an early-stopping patience
    /// of at least a quarter of `min_steps` in steps (as transfer's adaptations).
    pub fn resolve(&self, examples: usize) -> TrainConfig {
        self.train
            .with_step_budget(examples, self.min_steps, self.max_epochs)
    }
}

/// One training run: data, trunk, balancing and the resolved recipe. Its JSON (with the seed)
/// is the key in the run store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// What it trains on.
    pub data: DataSpec,
    /// The shared trunk.
    pub model: ArchConfig,
    /// The loss balancing.
    pub balancer: BalancerConfig,
    /// The resolved recipe.
    pub train: TrainConfig,
}

/// What a run measured, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Scores on the test set, one per task.
    pub test: Vec<TaskEval>,
    /// Training examples used.
    pub train_examples: usize,
    /// Trainable parameters (trunk and task heads).
    pub parameters: i64,
    /// Epochs run, and the one whose weights were kept.
    pub epochs: usize,
    /// The epoch whose weights were scored.
    pub final_epoch: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Mean wall time of a training step.
    pub seconds_per_step: f64,
}

impl RunOutcome {
    /// Task `t`'s value of `metric` on the test set.
    pub fn metric(&self, t: usize, metric: MetricKind) -> Result<f64> {
        self.test
            .get(t)
            .and_then(|e| e.metrics.get(&metric).copied())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("task {t} has no test {metric:?} in this run"))
            })
    }
}

/// The number of test items task `t`'s proportions (accuracy, balanced accuracy, AUC) were
/// measured on: its labelled test examples (for an AUC, whose pairs are not independent, the
/// conservative count), which sets the correction of their intervals
/// ([`transferlab_report::stats::summarize_proportion`]).
pub fn test_size(outcome: &RunOutcome, t: usize) -> Result<usize> {
    outcome
        .test
        .get(t)
        .map(|e| e.labelled.max(1))
        .ok_or_else(|| Error::InvalidArgument(format!("task {t} has no test evaluation")))
}

/// The metrics Δm reads for a task: AUC for binary tasks, MAE and RMSE for regression, accuracy
/// for multi-class.
///
/// A binary task is judged by AUC alone. A presence task is positive in few scenes (a class is
/// absent from 86% of the quick profile's scenes), so a network that always answers "absent"
/// is 86% accurate and relative changes of accuracy near that level say little. Balanced
/// accuracy removes the base rate but still reads one threshold (logit 0), and where that
/// threshold falls on a rare class swings with each network's calibration (±20–30 points
/// between seeds in M1's quick profile), which would drown Δm in noise. AUC needs no
/// threshold; the reports show accuracy and balanced accuracy beside it.
pub fn delta_metrics(task: &TaskSpec) -> Vec<MetricKind> {
    match task.kind {
        TaskKind::Binary => vec![MetricKind::Auc],
        _ => task
            .metrics()
            .into_iter()
            .filter(|m| *m != MetricKind::Loss)
            .collect(),
    }
}

/// Δm (percent) of `multi` over the single-task runs `single[t]` (task `t` of `multi` is task 0
/// of `single[t]`), over the tasks `tasks` of `multi`.
pub fn delta_m_of(
    specs: &[TaskSpec],
    multi: &RunOutcome,
    single: &[&RunOutcome],
    tasks: &[usize],
) -> Result<f64> {
    let mut all = Vec::new();
    for (&t, s) in tasks.iter().zip(single) {
        let mut per = Vec::new();
        for m in delta_metrics(&specs[t]) {
            per.push(Comparison {
                multi: multi.metric(t, m)?,
                single: s.metric(0, m)?,
                goal: m.goal(),
            });
        }
        all.push(per);
    }
    delta_m(&all)
}

/// Trainable parameters of `model` with the heads of `tasks` (the zoo head left out).
pub fn parameter_count(model: &ArchConfig, tasks: &[TaskSpec]) -> Result<i64> {
    let vs = VarStore::new(Device::Cpu);
    MultiTaskNet::new(&vs, model, tasks)?;
    Ok(vs
        .variables()
        .iter()
        .filter(|(n, t)| t.requires_grad() && !in_stage(n, HEAD))
        .map(|(_, t)| t.numel() as i64)
        .sum())
}

pub use crate::driver::{RunOptions, load_toml, profile};

/// Checks that an MLP trunk takes `pixels` inputs (other trunks take images as they are).
pub fn check_model(model: &ArchConfig, pixels: i64, at: &str) -> Result<()> {
    model.validate().map_err(|e| e.within(at))?;
    if let ArchConfig::Mlp(m) = model
        && m.inputs != pixels
    {
        return Err(Error::InvalidArgument(format!(
            "{at}.inputs: the inputs are {pixels} pixels; set inputs = {pixels}"
        )));
    }
    Ok(())
}

/// Settings shared by the scene experiments M1, M3–M6 (`experiments/common.toml`), so that the
/// runs they share (single-task baselines, the equal-weight multi-task network) have the same
/// key and are trained once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Common {
    /// How every network is trained.
    pub recipe: Recipe,
    /// The scenes, classes and trunk of each profile (same names as the experiments').
    pub setups: BTreeMap<String, Setup>,
}

/// The scenes, the classes with a presence task, and the trunk of one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// The scenes.
    pub data: SceneData,
    /// Classes with a presence task ("is there a 3").
    pub classes: Vec<i64>,
    /// The shared trunk (an MLP takes the flattened canvas, a CNN the `[1, H, W]` image).
    pub model: ArchConfig,
    /// The recipe of this profile, if not the common one (the tiny smoke test trains a few
    /// epochs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<Recipe>,
}

/// Reads the common settings named by an experiment config at `config_path` and returns the
/// recipe (the setup's own, else the common one) and the setup of `profile`; errors name the
/// file and the field.
pub fn load_common(
    config_path: &Path,
    common: &Path,
    profile_name: &str,
) -> Result<(Recipe, Setup)> {
    let path = config_path
        .parent()
        .map(|d| d.join(common))
        .unwrap_or_else(|| common.to_path_buf());
    let c: Common = load_toml(&path)?;
    let at = |e: Error| e.in_file(&path);
    c.recipe.validate().map_err(at)?;
    let setup = profile(&c.setups, profile_name).map_err(at)?.clone();
    let name = format!("setups.{profile_name}");
    setup.data.validate(&format!("{name}.data")).map_err(at)?;
    check_classes(&setup.classes, &format!("{name}.classes")).map_err(at)?;
    check_model(&setup.model, setup.data.pixels(), &format!("{name}.model")).map_err(at)?;
    if let Some(r) = &setup.recipe {
        r.validate().map_err(|e| e.within(&name).in_file(&path))?;
    }
    Ok((setup.recipe.clone().unwrap_or(c.recipe), setup))
}

/// The seeds to run: the option's, else the profile's; at least one.
pub fn seeds(opts: &RunOptions, profile_seeds: u64) -> Result<u64> {
    opts.seeds_or(profile_seeds)
}

type DataSets = Rc<(TensorDataset, TensorDataset, TensorDataset)>;

/// A multi-task experiment's [`Session`] (store, device, ledger of runs) with its loaded
/// images and datasets.
pub struct Context<'a> {
    session: Session<'a>,
    /// The device runs train on.
    pub device: Device,
    cache: PathBuf,
    images: HashMap<(Source, bool), Rc<ImageDataset>>,
    data: HashMap<String, DataSets>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl<'a> Context<'a> {
    /// A context on `session`.
    pub fn new(session: Session<'a>) -> Self {
        Context {
            device: session.device(),
            session,
            cache: crate::paths::cache_dir(),
            images: HashMap::new(),
            data: HashMap::new(),
        }
    }

    /// The session the runs go through.
    pub fn session(&self) -> &Session<'a> {
        &self.session
    }

    fn images(&mut self, source: Source, train: bool) -> Result<Rc<ImageDataset>> {
        if let Some(d) = self.images.get(&(source, train)) {
            return Ok(d.clone());
        }
        let split = if train { Split::Train } else { Split::Test };
        let d = Rc::new(match source {
            Source::Mnist => Mnist::load(&self.cache, split)?,
            Source::FashionMnist => FashionMnist::load(&self.cache, split)?,
        });
        self.images.insert((source, train), d.clone());
        Ok(d)
    }

    /// Training, validation and test sets of `data` for `seed` (on the CPU, cached).
    pub fn datasets(&mut self, data: &DataSpec, seed: u64) -> Result<DataSets> {
        let key = serde_json::to_string(&(data, seed)).expect("serialisable");
        if let Some(d) = self.data.get(&key) {
            return Ok(d.clone());
        }
        if self.data.len() >= 16 {
            self.data.clear();
        }
        let d = Rc::new(match data {
            DataSpec::Scenes {
                scenes,
                targets,
                hide,
                rows,
            } => self.scene_sets(scenes, targets, *hide, *rows, seed)?,
            DataSpec::Partitions(p) => self.partition_sets(p, seed)?,
        });
        self.data.insert(key, d.clone());
        Ok(d)
    }

    fn scene_sets(
        &mut self,
        data: &SceneData,
        targets: &[SceneTarget],
        hide: f64,
        rows: Rows,
        seed: u64,
    ) -> Result<(TensorDataset, TensorDataset, TensorDataset)> {
        if targets.is_empty() {
            return Err(Error::InvalidArgument(
                "a run needs at least one task".into(),
            ));
        }
        let train_images = self.images(data.source, true)?;
        let test_images = self.images(data.source, false)?;
        let n = data.train + data.validation;
        let side = |images: &ImageDataset, n: usize, seed: u64| -> Result<TensorDataset> {
            let s = scenes::generate(images, n, &data.scenes, seed)?;
            let mut cols = Vec::with_capacity(targets.len());
            for t in targets {
                cols.push(match *t {
                    SceneTarget::Presence { class } => {
                        if class < 0 || class as usize >= s.classes {
                            return Err(Error::InvalidArgument(format!(
                                "class {class}: the source has classes 0..{}",
                                s.classes
                            )));
                        }
                        s.presence.select(1, class)
                    }
                    SceneTarget::Count => s.counts.sum_dim_intlist(1, false, Kind::Float),
                    SceneTarget::Random { index } => {
                        let coin_seed = core_tensor::data::splitmix64(seed ^ (0xc017 + index));
                        uniform(n as i64, coin_seed, s.presence.device())
                            .lt(0.5)
                            .to_kind(Kind::Float)
                    }
                });
            }
            TensorDataset::new(data.network_images(&s)?, Tensor::stack(&cols, 1))
        };
        let all = side(&train_images, n, seed)?;
        let test = side(&test_images, data.test, TEST_SEED)?;
        let mut targets_all = all.targets.shallow_clone();
        if hide > 0.0 {
            targets_all = hide_labels(&targets_all, hide, seed ^ 0x41de)?;
        }
        let all = TensorDataset::new(all.inputs, targets_all)?;
        let idx = |a: usize, b: usize| {
            Tensor::arange_start(a as i64, b as i64, (Kind::Int64, Device::Cpu))
        };
        let mut train = all.subset(&idx(0, data.train))?;
        let val = all.subset(&idx(data.train, n))?;
        if rows == Rows::FullyLabelled {
            let keep = fully_labelled(&train.targets)?;
            train = train.subset(&keep)?;
        }
        Ok((train, val, test))
    }

    fn partition_sets(
        &mut self,
        p: &PartitionData,
        seed: u64,
    ) -> Result<(TensorDataset, TensorDataset, TensorDataset)> {
        if p.tasks == 0 {
            return Err(Error::InvalidArgument("tasks: need at least 1".into()));
        }
        let train_images = self.images(Source::Mnist, true)?;
        let test_images = self.images(Source::Mnist, false)?;
        let own = |t: usize| {
            if t == 0 {
                p.focal_per_task
            } else {
                p.per_task
            }
        } + p.validation_per_task;
        let needed: usize = (0..p.tasks).map(own).sum();
        if needed > train_images.len() {
            return Err(Error::InvalidArgument(format!(
                "{} tasks need {needed} MNIST training digits, more than the {} there are; \
                 lower tasks or per_task",
                p.tasks,
                train_images.len()
            )));
        }
        let labels: Vec<i64> = Vec::try_from(&train_images.labels)?;
        let order: Vec<i64> =
            Vec::try_from(permutation(train_images.len() as i64, seed, Device::Cpu))?;
        let positives: Vec<Vec<i64>> = (0..p.tasks).map(|t| p.positives(t)).collect();
        let (mut tr_idx, mut tr_y, mut va_idx, mut va_y) = (vec![], vec![], vec![], vec![]);
        let mut at = 0;
        for (t, pos) in positives.iter().enumerate() {
            let n_train = own(t) - p.validation_per_task;
            for k in 0..own(t) {
                let i = order[at + k];
                let mut row = vec![f32::NAN; p.tasks];
                row[t] = f32::from(u8::from(pos.contains(&labels[i as usize])));
                if k < n_train {
                    tr_idx.push(i);
                    tr_y.extend(row);
                } else {
                    va_idx.push(i);
                    va_y.extend(row);
                }
            }
            at += own(t);
        }
        let images = train_images.images_f32()?;
        let set = |idx: Vec<i64>, y: Vec<f32>| -> Result<TensorDataset> {
            let n = idx.len() as i64;
            TensorDataset::new(
                images.index_select(0, &Tensor::from_slice(&idx)),
                Tensor::from_slice(&y).view([n, p.tasks as i64]),
            )
        };
        let train = set(tr_idx, tr_y)?;
        let val = set(va_idx, va_y)?;
        let test_n = p.test.min(test_images.len());
        let pick = permutation(test_images.len() as i64, TEST_SEED, Device::Cpu).narrow(
            0,
            0,
            test_n as i64,
        );
        let test_labels: Vec<i64> = Vec::try_from(test_images.labels.index_select(0, &pick))?;
        let mut y = Vec::with_capacity(test_n * p.tasks);
        for l in &test_labels {
            for pos in &positives {
                y.push(f32::from(u8::from(pos.contains(l))));
            }
        }
        let test = TensorDataset::new(
            test_images.images_f32()?.index_select(0, &pick),
            Tensor::from_slice(&y).view([test_n as i64, p.tasks as i64]),
        )?;
        Ok((train, val, test))
    }

    /// Trains (or loads) `spec` with `seed`; `label` names the run in progress reports.
    pub fn train(&mut self, spec: &RunSpec, seed: u64, label: &str) -> Result<RunOutcome> {
        let id = self.run_id(spec, seed)?;
        if let Some(r) = self.session.stored::<RunOutcome>(&id, label)? {
            return Ok(r);
        }
        let sets = self.datasets(&spec.data, seed)?;
        let device = self.device;
        self.session.run(&id, label, || {
            let (train, val, test) = &*sets;
            let cfg = MultiTaskConfig {
                model: spec.model.clone(),
                tasks: spec.data.tasks(),
                balancer: spec.balancer.clone(),
                train: spec.train.clone(),
            };
            let parameters = parameter_count(&cfg.model, &cfg.tasks)?;
            let (train, val, test) = (
                train.to_device(device),
                val.to_device(device),
                test.to_device(device),
            );
            if train.is_empty() {
                // Nothing to learn from (e.g. no fully labelled example): score the network
                // as initialised, which is what training on nothing gives.
                cfg.validate()?;
                tch::manual_seed(seed as i64);
                let vs = VarStore::new(device);
                let net = MultiTaskNet::new(&vs, &cfg.model, &cfg.tasks)?;
                let test = multitask::train::evaluate(&net, &test, 256, None)?;
                return Ok(RunOutcome {
                    test,
                    train_examples: 0,
                    parameters,
                    epochs: 0,
                    final_epoch: 0,
                    steps: 0,
                    seconds_per_step: 0.0,
                });
            }
            let r = train_and_evaluate(&cfg, &train, Some(&val), &test, seed, device)?;
            Ok(RunOutcome {
                test: r.test,
                train_examples: train.len(),
                parameters,
                epochs: r.fit.epochs.len(),
                final_epoch: r.fit.final_epoch,
                steps: r.fit.steps,
                seconds_per_step: r.fit.seconds_per_step,
            })
        })
    }

    /// The id of the run `spec` with `seed`. The dataset is checked against the manifest
    /// before anything is trained or reused, and its checksum is part of the key: a run on a
    /// damaged file is never made, and none is taken for a repaired one.
    fn run_id(&self, spec: &RunSpec, seed: u64) -> Result<RunId> {
        let inputs = crate::paths::verified_inputs(&self.cache, &[spec.data.dataset()])?;
        RunId::new("multitask-run", spec, seed, inputs)
    }

    /// Executes `plan` (see [`crate::driver::Plan`]): every run loaded from the store or
    /// trained, the outcomes by cell and seed; `None` in a sharded store, which runs only its
    /// slice of the plan and has no report.
    pub fn execute(&mut self, plan: Plan<String, RunSpec>) -> Result<Option<Outcomes>> {
        let runs = self
            .session
            .mine(plan, |spec, seed| Ok(self.run_id(spec, seed)?.key()))?;
        let mut out = BTreeMap::new();
        for p in runs {
            let r = self.train(&p.spec, p.seed, &p.label)?;
            if out.insert((p.cell.clone(), p.seed), r).is_some() {
                return Err(Error::InvalidArgument(format!(
                    "the plan files two runs under {:?} with seed {}",
                    p.cell, p.seed
                )));
            }
        }
        Ok((!self.session.sharded()).then_some(Outcomes(out)))
    }

    /// The number of training examples `data` gives with `seed` (for resolving epochs).
    pub fn train_size(&mut self, data: &DataSpec, seed: u64) -> Result<usize> {
        Ok(self.datasets(data, seed)?.0.len())
    }

    /// A run of `data` with `model`, `balancer` and `recipe` resolved for its training size.
    pub fn spec(
        &mut self,
        data: DataSpec,
        model: &ArchConfig,
        balancer: BalancerConfig,
        recipe: &Recipe,
        seed: u64,
    ) -> Result<RunSpec> {
        let n = self.train_size(&data, seed)?;
        Ok(RunSpec {
            data,
            model: model.clone(),
            balancer,
            train: recipe.resolve(n),
        })
    }
}

/// The outcomes of an executed plan, by cell and seed.
#[derive(Debug, Default)]
pub struct Outcomes(BTreeMap<(String, u64), RunOutcome>);

impl Outcomes {
    /// The outcome filed under `cell` with `seed`.
    pub fn get(&self, cell: &str, seed: u64) -> Result<&RunOutcome> {
        self.0.get(&(cell.to_string(), seed)).ok_or_else(|| {
            Error::InvalidArgument(format!("no run {cell:?} with seed {seed} in the plan"))
        })
    }

    /// Every outcome as `(cell, seed, outcome)`, by cell and then seed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, &RunOutcome)> {
        self.0.iter().map(|((c, s), r)| (c.as_str(), *s, r))
    }

    /// Files `outcome` under `cell` with `seed` (what [`Context::execute`] does for each run;
    /// tests build outcomes this way without training), returning the one it replaces.
    pub fn insert(
        &mut self,
        cell: impl Into<String>,
        seed: u64,
        outcome: RunOutcome,
    ) -> Option<RunOutcome> {
        self.0.insert((cell.into(), seed), outcome)
    }
}

/// A context on a new [`Session`] with `opts` that reports each run to `on_run`.
pub fn with_context<'a, T>(
    opts: &RunOptions,
    on_run: impl FnMut(&str, bool) + 'a,
    body: impl FnOnce(&mut Context<'a>) -> Result<T>,
) -> Result<T> {
    let mut ctx = Context::new(Session::new(opts, on_run)?);
    body(&mut ctx)
}

pub use transferlab_report::stats::Results;

pub use transferlab_report::pts;

/// `mean [lo, hi]` as is (Δm is already in percent).
pub fn raw(s: &Summary) -> String {
    transferlab_report::format_summary(s, 1.0)
}

/// The result key of the separate networks' Δm against themselves: 0 in every seed, by
/// definition. A contrast of Δm reads it as its baseline arm, so that the one-sample Δm of a
/// shared network (already paired by seed inside Δm) is the paired difference Δm − 0.
pub const SEPARATE_DELTA_M: &str = "separate/delta_m";

/// The claims `contrasts` decide, each once, in order of first appearance: what an experiment
/// passes to [`report`] as its claims.
pub fn claims_of(contrasts: &[Contrast]) -> Vec<&str> {
    let mut claims: Vec<&str> = Vec::new();
    for k in contrasts.iter().flat_map(|c| &c.claims) {
        if !claims.contains(&k.as_str()) {
            claims.push(k);
        }
    }
    claims
}

/// The presence tasks of `classes`.
pub fn presence(classes: &[i64]) -> Vec<SceneTarget> {
    classes
        .iter()
        .map(|&class| SceneTarget::Presence { class })
        .collect()
}

/// Scenes with `targets`, every label present, every row used.
pub fn scene_data(scenes: &SceneData, targets: Vec<SceneTarget>) -> DataSpec {
    DataSpec::Scenes {
        scenes: scenes.clone(),
        targets,
        hide: 0.0,
        rows: Rows::All,
    }
}

/// Checks a class list for scene tasks; errors name `<at>`.
pub fn check_classes(classes: &[i64], at: &str) -> Result<()> {
    if classes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{at}: list at least one class"
        )));
    }
    if let Some(c) = classes.iter().find(|c| !(0..10).contains(*c)) {
        return Err(Error::InvalidArgument(format!(
            "{at}: class {c} is not in 0..10"
        )));
    }
    for (i, c) in classes.iter().enumerate() {
        if classes[..i].contains(c) {
            return Err(Error::InvalidArgument(format!(
                "{at}: class {c} is listed twice"
            )));
        }
    }
    Ok(())
}

/// A run outcome with one task per value, every metric of the task equal to it (tests build
/// [`Outcomes`] from these without training).
#[cfg(test)]
pub(crate) fn test_outcome(values: &[f64]) -> RunOutcome {
    RunOutcome {
        test: values
            .iter()
            .enumerate()
            .map(|(t, &v)| TaskEval {
                name: format!("t{t}"),
                labelled: 100,
                metrics: [
                    MetricKind::Accuracy,
                    MetricKind::BalancedAccuracy,
                    MetricKind::Auc,
                    MetricKind::Mae,
                    MetricKind::Rmse,
                    MetricKind::Loss,
                ]
                .into_iter()
                .map(|m| (m, v))
                .collect(),
                primary: MetricKind::Auc,
            })
            .collect(),
        train_examples: 100,
        parameters: 1000,
        epochs: 1,
        final_epoch: 1,
        steps: 10,
        seconds_per_step: 0.01,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_listed_once_in_order() {
        use transferlab_report::contrast::{Kind, Margin, Unit};
        let c = |id: &str, claims: &[&str]| {
            Contrast::paired(
                id,
                claims,
                id,
                Unit::accuracy_points(),
                Kind::Superiority,
                "a",
                "b",
                Margin::new(0.01, "test"),
            )
        };
        let cs = [c("x", &["M-1", "M-5"]), c("y", &["M-5"]), c("z", &["M-2"])];
        assert_eq!(claims_of(&cs), ["M-1", "M-5", "M-2"]);
        assert!(claims_of(&[]).is_empty());
    }

    #[test]
    fn outcomes_are_filed_by_cell_and_seed() {
        let mut out = Outcomes::default();
        assert!(out.insert("b", 1, test_outcome(&[0.6])).is_none());
        out.insert("a", 0, test_outcome(&[0.7, 0.8]));
        assert!(out.insert("b", 1, test_outcome(&[0.9])).is_some());
        let cells: Vec<_> = out.iter().map(|(c, s, _)| (c.to_string(), s)).collect();
        assert_eq!(cells, [("a".to_string(), 0), ("b".to_string(), 1)]);
        let r = out.get("a", 0).unwrap();
        assert_eq!(r.metric(1, MetricKind::Auc).unwrap(), 0.8);
        assert!(out.get("a", 1).is_err());
    }

    #[test]
    fn epochs_follow_the_training_size() {
        let recipe = Recipe {
            train: TrainConfig {
                epochs: 2,
                batch_size: 10,
                optimizer: core_tensor::optim::OptimizerKind::adam(),
                lr: 1e-3,
                weight_decay: 0.0,
                schedule: Default::default(),
                grad_clip_norm: None,
                early_stopping: Some(core_tensor::train::EarlyStopping {
                    patience: 2,
                    min_delta: 0.0,
                    goal: core_tensor::train::Goal::Minimize,
                    restore_best: true,
                    min_epochs: 0,
                    break_ties: false,
                }),
            },
            min_steps: 100,
            max_epochs: 30,
        };
        // 100 examples: 10 steps an epoch, 10 epochs, patience 25 steps = 3 epochs.
        let t = recipe.resolve(100);
        assert_eq!(t.epochs, 10);
        assert_eq!(t.early_stopping.unwrap().patience, 3);
        // 10 examples: capped at 30 epochs; 10,000: at least 2.
        assert_eq!(recipe.resolve(10).epochs, 30);
        assert_eq!(recipe.resolve(10_000).epochs, 2);
    }

    #[test]
    fn downsampled_scenes_are_average_pooled() {
        let mut data = SceneData {
            source: Source::Mnist,
            scenes: SceneConfig {
                height: 40,
                width: 40,
                min_items: 1,
                max_items: 1,
            },
            train: 1,
            validation: 1,
            test: 1,
            downsample: 2,
        };
        assert_eq!(data.pixels(), 400);
        assert_eq!(data.describe(), "40x40, 1–1 mnist items, shown at 20x20");
        // A white 28x28 item: each 2x2 block of the canvas averages to 0, 1 or (at the item's
        // edges when it sits at an odd offset) 1/2.
        let source = ImageDataset {
            images: Tensor::full([1, 1, 28, 28], 255, (Kind::Uint8, Device::Cpu)),
            labels: Tensor::from_slice(&[0i64]),
            classes: 1,
            max_value: 255,
        };
        let s = scenes::generate(&source, 5, &data.scenes, 3).unwrap();
        let x = data.network_images(&s).unwrap();
        assert_eq!(x.size(), [5, 1, 20, 20]);
        let sum = x.sum(Kind::Double).double_value(&[]);
        assert!((sum - 5.0 * 28.0 * 28.0 / 4.0).abs() < 1e-6, "{sum}");
        data.downsample = 3;
        let err = data.validate("data").unwrap_err().to_string();
        assert!(err.contains("data.downsample"), "{err}");
        // The default leaves the key of a run without the field unchanged.
        data.downsample = 1;
        assert!(!serde_json::to_string(&data).unwrap().contains("downsample"));
    }

    #[test]
    fn a_setup_may_bring_its_own_recipe() {
        let dir = crate::configs("multitask");
        let common = Path::new("common.toml");
        let (quick, setup) = load_common(&dir.join("m1.toml"), common, "quick").unwrap();
        assert!(setup.recipe.is_none());
        let (tiny, setup) = load_common(&dir.join("m1.toml"), common, "tiny").unwrap();
        assert_eq!(setup.recipe.as_ref(), Some(&tiny));
        assert_ne!(tiny, quick);
        let (full, setup) = load_common(&dir.join("m1.toml"), common, "full").unwrap();
        assert_eq!((full, setup.data.pixels()), (quick, 56 * 56));
    }

    #[test]
    fn partitions_are_fixed_halves() {
        let p = PartitionData {
            tasks: 3,
            per_task: 10,
            focal_per_task: 10,
            validation_per_task: 2,
            test: 10,
            partition_seed: 5,
        };
        for t in 0..3 {
            let pos = p.positives(t);
            assert_eq!(pos.len(), 5);
            assert!(pos.iter().all(|c| (0..10).contains(c)));
            assert_eq!(pos, p.positives(t));
        }
        assert_ne!(p.positives(0), p.positives(1));
    }
}
