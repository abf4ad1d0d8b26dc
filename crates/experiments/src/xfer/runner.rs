//! The runs the transfer experiments X2–X6 are made of, each stored as it finishes.
//!
//! Two kinds of run, both keyed by their resolved configuration and seed in a
//! [`RunStore`], so any experiment that needs a run another one already made reuses it:
//!
//! - a **source** ([`SourceSpec`]): a zoo entry, a network pre-trained here on a described
//!   dataset ([`Pretrain`]: a class subset, a number of examples per class, shuffled labels,
//!   permuted pixels), or an untrained network (the random-weights control). Pre-trained weights
//!   are kept next to the run record (`transfer-source/<key>.safetensors`) and verified by
//!   sha256 when reused;
//! - an **adaptation** ([`AdaptRun`]): a source adapted to a target ([`DataSpec`]) with N
//!   examples per class by a [`Strategy`], scored once on the target's test set. Estimates of
//!   transferability on the same training sample (LogME, LEEP, H-score) are stored with it.
//!
//! Examples are drawn by [`target::sample`] from the seed alone. A source pre-trained on
//! `per_class = n` with seed `s` sees exactly the training examples an adaptation to the same
//! dataset with `n` and `s` sees: that is what makes Yosinski's "selffer" BnB networks.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

use crate::driver::{Plan, Session};
use crate::runs::RunId;
use core_tensor::checkpoint;
use core_tensor::data::TensorDataset;
use core_tensor::datasets::Fsdd;
use core_tensor::train::{self, TrainConfig, Trainer};
use core_tensor::{Error, Result};
use pretrained_zoo::arch::ArchConfig;
use pretrained_zoo::registry::{AudioInput, ImageInput, RecipeData, Registry};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use transfer::strategy::{AdaptConfig, SourceModel, Strategy, adapt, features};
use transfer::target::{self, Target, TargetData};
use transfer::transferability;

/// A dataset, possibly restricted to some classes or speakers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "dataset", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataSpec {
    /// MNIST; `classes` keeps those classes, relabelled 0.. in the order given.
    Mnist {
        /// Classes kept (all when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<i64>>,
    },
    /// Fashion-MNIST, as MNIST.
    FashionMnist {
        /// Classes kept (all when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classes: Option<Vec<i64>>,
    },
    /// The UCI 8x8 digits in MNIST's frame (fixed 70/30 split, see [`transfer::target`]).
    UciDigits,
    /// Free Spoken Digit Dataset recordings of some speakers; takes below `test_takes` are the
    /// test set, the others the training pool.
    Fsdd {
        /// Speakers kept.
        speakers: Vec<String>,
        /// Takes `0..test_takes` of each speaker and digit are the test set.
        test_takes: u32,
    },
}

impl DataSpec {
    /// A short name for tables.
    pub fn label(&self) -> String {
        let classes = |name: &str, c: &Option<Vec<i64>>| match c {
            None => name.to_string(),
            Some(c) => format!(
                "{name}[{}]",
                c.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ),
        };
        match self {
            DataSpec::Mnist { classes: c } => classes("mnist", c),
            DataSpec::FashionMnist { classes: c } => classes("fashion-mnist", c),
            DataSpec::UciDigits => "uci-digits".into(),
            DataSpec::Fsdd { speakers, .. } => format!("fsdd[{}]", speakers.join(",")),
        }
    }

    /// The underlying dataset's name (the one `cargo xtask fetch` knows).
    pub fn dataset(&self) -> &'static str {
        match self {
            DataSpec::Mnist { .. } => "mnist",
            DataSpec::FashionMnist { .. } => "fashion-mnist",
            DataSpec::UciDigits => "uci-digits",
            DataSpec::Fsdd { .. } => "fsdd",
        }
    }
}

/// How examples become network input: the zoo's image normalisation or audio window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputSpec {
    /// `(x / 255 - mean) / std`.
    Image {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// RGB images, `(x / 255 - mean[c]) / std[c]` (the CIFAR-10 zoo entry).
    Colour {
        /// Means, red, green, blue.
        mean: [f64; 3],
        /// Standard deviations.
        std: [f64; 3],
    },
    /// Peak-normalised waveforms of `samples` samples.
    Audio {
        /// Samples per input.
        samples: usize,
    },
}

impl InputSpec {
    /// The input a zoo recipe was trained with.
    pub fn of_recipe(data: &RecipeData) -> InputSpec {
        match data {
            RecipeData::Mnist(i) | RecipeData::FashionMnist(i) => InputSpec::Image {
                mean: i.mean,
                std: i.std,
            },
            RecipeData::Fsdd(a) => InputSpec::Audio { samples: a.samples },
            RecipeData::Cifar10(c) => InputSpec::Colour {
                mean: c.mean,
                std: c.std,
            },
        }
    }
}

/// Labels of a pre-training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// As in the dataset.
    #[default]
    True,
    /// Randomly permuted over the training examples (image and label unrelated).
    Shuffled,
}

/// Pixels of a pre-training set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelMode {
    /// As in the dataset.
    #[default]
    Original,
    /// One fixed random permutation of the pixel positions (the same for every image and
    /// seed), which keeps every image's content but destroys spatial structure.
    Permuted,
}

/// How a source is pre-trained: the training recipe shared by the sources of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainRecipe {
    /// Architecture (its head is sized to the data's classes).
    pub model: ArchConfig,
    /// Input format.
    pub input: InputSpec,
    /// Training settings; `epochs` is the least number of epochs.
    pub train: TrainConfig,
    /// At least this many optimizer steps…
    pub min_steps: usize,
    /// … within at most this many epochs.
    pub max_epochs: usize,
}

/// A network pre-trained here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pretrain {
    /// The source data.
    pub data: DataSpec,
    /// Examples per class (all of the training pool when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class: Option<usize>,
    /// Labels.
    #[serde(default)]
    pub labels: LabelMode,
    /// Pixels.
    #[serde(default)]
    pub pixels: PixelMode,
    /// The recipe.
    pub recipe: PretrainRecipe,
}

/// Where a source network comes from.
#[allow(clippy::large_enum_variant)] // a config value, built a few times per experiment
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A zoo entry (checksum verified).
    Zoo {
        /// Entry name.
        entry: String,
    },
    /// Pre-trained here, from the run's seed.
    Pretrain(Pretrain),
    /// Fresh weights from the run's seed (the random-features control).
    Untrained {
        /// Architecture.
        model: ArchConfig,
        /// Input format.
        input: InputSpec,
    },
}

/// One adaptation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptRun {
    /// The source (for `scratch`, only its architecture and input matter).
    pub source: SourceSpec,
    /// Seed of the source's pre-training (usually the run's seed).
    pub source_seed: u64,
    /// Target data.
    pub target: DataSpec,
    /// Training examples per class.
    pub per_class: usize,
    /// Validation examples per class (early stopping).
    pub val_per_class: usize,
    /// The strategy.
    pub strategy: Strategy,
    /// Settings, epochs resolved.
    pub adapt: AdaptConfig,
}

/// Transferability estimates of a source on a training sample, before any training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimates {
    /// LogME per example (You et al. 2021).
    pub log_me: f64,
    /// LEEP (Nguyen et al. 2020), from the source head's softmax.
    pub leep: f64,
    /// H-score (Bao et al. 2019).
    pub h_score: f64,
    /// H-score with a Ledoit-Wolf shrunk covariance (Ibrahim et al. 2022). `None` in runs
    /// stored before it was added; [`Context::adapt`] adds it to them when it loads them.
    #[serde(default)]
    pub h_score_shrunk: Option<f64>,
}

impl Estimates {
    /// LogME, LEEP, H-score and shrunk H-score, in that order.
    pub fn values(&self) -> Result<[f64; 4]> {
        let shrunk = self
            .h_score_shrunk
            .ok_or_else(|| Error::InvalidArgument("estimates without the shrunk H-score".into()))?;
        Ok([self.log_me, self.leep, self.h_score, shrunk])
    }
}

/// What an adaptation measured. Every run but `scratch` also stores the source's
/// transferability estimates on its training sample (computed before training; cheap).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdaptResult {
    /// Test accuracy, measured once.
    pub test_accuracy: f64,
    /// Best validation accuracy.
    pub validation_accuracy: Option<f64>,
    /// Epochs trained (all phases).
    pub epochs: usize,
    /// Estimates, when asked for.
    pub estimates: Option<Estimates>,
}

/// What a pre-training measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceResult {
    /// Accuracy on the source's own test set (with the same pixel treatment, true labels).
    pub source_test_accuracy: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// sha256 of the weights file.
    pub weights_sha256: String,
}

/// Shared state of an experiment's runs: the store, loaded datasets and sources, counters.
pub struct Context<'a> {
    session: Session<'a>,
    /// Device runs train on.
    pub device: Device,
    cache: PathBuf,
    registry: Option<Registry>,
    data: HashMap<String, Rc<TargetData>>,
    sources: HashMap<String, Rc<SourceModel>>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// The pixel permutation of [`PixelMode::Permuted`] (fixed: seed 0x5EED).
const PIXEL_SEED: u64 = 0x5EED;

impl<'a> Context<'a> {
    /// A context on `session`.
    pub fn new(session: Session<'a>) -> Self {
        Context {
            device: session.device(),
            session,
            cache: crate::paths::cache_dir(),
            registry: None,
            data: HashMap::new(),
            sources: HashMap::new(),
        }
    }

    /// The session the runs go through.
    pub fn session(&self) -> &Session<'a> {
        &self.session
    }

    fn registry(&mut self) -> Result<&Registry> {
        if self.registry.is_none() {
            self.registry = Some(Registry::builtin()?);
        }
        Ok(self.registry.as_ref().expect("just set"))
    }

    /// `spec` in `input`'s format (on the CPU; loaded once per context).
    pub fn data(&mut self, spec: &DataSpec, input: InputSpec) -> Result<Rc<TargetData>> {
        let key = serde_json::to_string(&(spec, input)).expect("serialisable");
        if let Some(d) = self.data.get(&key) {
            return Ok(d.clone());
        }
        let d = Rc::new(load_data(spec, input, &self.cache)?);
        self.data.insert(key, d.clone());
        Ok(d)
    }

    /// The source network `spec` pre-trained from `seed` (trained and stored the first time).
    pub fn source(&mut self, spec: &SourceSpec, seed: u64) -> Result<Rc<SourceModel>> {
        let id = RunId::new("transfer-source", spec, seed, self.source_inputs(spec)?)?;
        let key = id.key();
        if let Some(s) = self.sources.get(&key) {
            return Ok(s.clone());
        }
        let source = match spec {
            SourceSpec::Zoo { entry } => {
                let zoo = crate::paths::zoo_dir();
                SourceModel::from_zoo(self.registry()?, &zoo, entry)?
            }
            SourceSpec::Untrained { model, .. } => {
                let vs = VarStore::new(Device::Cpu);
                core_tensor::device::seed(seed);
                model.build(&vs.root())?;
                SourceModel::from_store("untrained", model.clone(), &vs)
            }
            SourceSpec::Pretrain(p) => self.pretrain(p, &id)?,
        };
        let source = Rc::new(source);
        self.sources.insert(key, source.clone());
        Ok(source)
    }

    fn pretrain(&mut self, p: &Pretrain, id: &RunId) -> Result<SourceModel> {
        let path = self
            .session
            .store_dir()
            .join(&id.experiment)
            .join(format!("{}.safetensors", id.key()));
        let label = format!(
            "source {} {}{}{} seed {}",
            p.data.label(),
            p.per_class
                .map(|n| format!("{n}/class"))
                .unwrap_or_else(|| "all".into()),
            if p.labels == LabelMode::Shuffled {
                " shuffled-labels"
            } else {
                ""
            },
            if p.pixels == PixelMode::Permuted {
                " permuted-pixels"
            } else {
                ""
            },
            id.seed
        );
        if let Some(rec) = self.session.lookup::<SourceResult>(id)? {
            match checkpoint::read_tensors(&path) {
                Ok(tensors)
                    if pretrained_zoo::registry::sha256_file(&path)?
                        == rec.result.weights_sha256 =>
                {
                    self.session.loaded(&label, rec.seconds);
                    return Ok(SourceModel::new(
                        &label,
                        std::sync::Arc::new(self.head_sized(p)?),
                        tensors.into_iter().collect(),
                    ));
                }
                // A record without its weights (or with other weights): train again.
                _ => tracing::warn!(
                    "{}: missing or altered; pre-training it again",
                    path.display()
                ),
            }
        }
        let data = self.data(&p.data, p.recipe.input)?;
        let device = self.device;
        let model = self.head_sized(p)?;
        self.session.rerun(id, &label, || {
            let seed = id.seed;
            let (mut train_set, test) = match p.per_class {
                Some(n) => {
                    let (t, _) =
                        target::sample(&data, n, target::validation_per_class(n), seed, device)?;
                    (t, data.test.to_device(device))
                }
                None => (data.train.to_device(device), data.test.to_device(device)),
            };
            let mut test = test;
            if p.pixels == PixelMode::Permuted {
                train_set = permute_pixels(&train_set)?;
                test = permute_pixels(&test)?;
            }
            if p.labels == LabelMode::Shuffled {
                let perm =
                    core_tensor::data::permutation(train_set.len() as i64, seed ^ 0x1abe1, device);
                train_set = TensorDataset::new(
                    train_set.inputs.shallow_clone(),
                    train_set.targets.index_select(0, &perm),
                )?;
            }
            let mut cfg = p.recipe.train.clone();
            cfg.epochs =
                cfg.epochs_for_steps(train_set.len(), p.recipe.min_steps, p.recipe.max_epochs);
            core_tensor::device::seed(seed);
            let vs = VarStore::new(device);
            let net = model.build(&vs.root())?;
            let mut trainer = Trainer::new(&vs, cfg)?.shuffle_seed(seed);
            let report = trainer.fit(
                &train_set,
                |x, y| net.forward_t(x, true).cross_entropy_for_logits(y),
                None,
            )?;
            drop(trainer);
            let acc = train::accuracy(&*net, &test, 256)?;
            let sha = checkpoint::save(&vs, &path)?;
            Ok(SourceResult {
                source_test_accuracy: acc,
                epochs: report.epochs.len(),
                weights_sha256: sha,
            })
        })?;
        let weights = checkpoint::read_tensors(&path)?.into_iter().collect();
        Ok(SourceModel::new(
            &label,
            std::sync::Arc::new(model),
            weights,
        ))
    }

    /// The recipe's architecture with its head sized to the pre-training data's classes.
    fn head_sized(&mut self, p: &Pretrain) -> Result<ArchConfig> {
        let classes = self.data(&p.data, p.recipe.input)?.classes as i64;
        p.recipe.model.with_classes(classes)
    }

    /// The dataset `spec`'s network was trained on (`none` for an untrained one).
    pub fn source_dataset(&mut self, spec: &SourceSpec) -> Result<&'static str> {
        Ok(match spec {
            SourceSpec::Zoo { entry } => self.registry()?.entry(entry)?.recipe.data.dataset(),
            SourceSpec::Pretrain(p) => p.data.dataset(),
            SourceSpec::Untrained { .. } => "none",
        })
    }

    /// The verified dataset files `datasets` (see [`crate::paths::verified_inputs`]):
    /// a run's key carries their checksums, and nothing trains on a file that is not the
    /// manifest's.
    fn dataset_inputs(&self, datasets: &[&str]) -> Result<BTreeMap<String, String>> {
        crate::paths::verified_inputs(&self.cache, datasets)
    }

    /// The inputs a source's network depends on beyond its spec: the data it is pre-trained
    /// on (zoo weights are keyed by their own checksum where they are used).
    fn source_inputs(&self, spec: &SourceSpec) -> Result<BTreeMap<String, String>> {
        match spec {
            SourceSpec::Pretrain(p) => self.dataset_inputs(&[p.data.dataset()]),
            SourceSpec::Zoo { .. } | SourceSpec::Untrained { .. } => Ok(BTreeMap::new()),
        }
    }

    /// The input format of `spec`'s network.
    pub fn source_input(&mut self, spec: &SourceSpec) -> Result<InputSpec> {
        Ok(match spec {
            SourceSpec::Zoo { entry } => {
                InputSpec::of_recipe(&self.registry()?.entry(entry)?.recipe.data)
            }
            SourceSpec::Pretrain(p) => p.recipe.input,
            SourceSpec::Untrained { input, .. } => *input,
        })
    }

    /// The run `run` as it is stored, and its id: a scratch run keeps only its architecture
    /// (one scratch run serves every source built alike); the key carries the target's and the
    /// source's data checksums and the zoo weights' checksum.
    fn adapt_id(&mut self, run: &AdaptRun, seed: u64) -> Result<(AdaptRun, RunId)> {
        let mut run = run.clone();
        if run.strategy == Strategy::Scratch {
            let input = self.source_input(&run.source)?;
            let model = match &run.source {
                SourceSpec::Zoo { entry } => self.registry()?.entry(entry)?.model.clone(),
                SourceSpec::Pretrain(p) => p.recipe.model.clone(),
                SourceSpec::Untrained { model, .. } => model.clone(),
            };
            run.source = SourceSpec::Untrained { model, input };
            run.source_seed = 0;
        }
        let mut inputs: Vec<(String, String)> =
            self.source_inputs(&run.source)?.into_iter().collect();
        inputs.extend(self.dataset_inputs(&[run.target.dataset()])?);
        if let SourceSpec::Zoo { entry } = &run.source {
            let zoo = crate::paths::zoo_dir();
            inputs.push((
                "source_weights".to_string(),
                self.registry()?.expected_sha256(&zoo, entry)?,
            ));
        }
        let id = RunId::new("transfer-adapt", &run, seed, inputs)?;
        Ok((run, id))
    }

    /// Executes `plan` (see [`crate::driver::Plan`]): every adaptation loaded from the store
    /// or trained, the results in plan order with their cells; `None` in a sharded store, which
    /// runs only its slice of the plan and has no report.
    pub fn execute<C>(&mut self, plan: Plan<C, AdaptRun>) -> Result<Option<Vec<(C, AdaptResult)>>> {
        let mut keys = Vec::with_capacity(plan.len());
        if self.session.sharded() {
            for p in plan.runs() {
                keys.push(self.adapt_id(&p.spec, p.seed)?.1.key());
            }
        }
        let mut keys = keys.into_iter();
        let runs = self.session.mine(plan, |_, _| {
            Ok(keys.next().expect("one key per planned run"))
        })?;
        let mut out = Vec::with_capacity(runs.len());
        for p in runs {
            let r = self.adapt(&p.spec, p.seed, &p.label)?;
            out.push((p.cell, r));
        }
        Ok((!self.session.sharded()).then_some(out))
    }

    /// Runs (or loads) one adaptation with `seed`.
    pub fn adapt(&mut self, run: &AdaptRun, seed: u64, label: &str) -> Result<AdaptResult> {
        let (run, id) = self.adapt_id(run, seed)?;
        if let Some(mut rec) = self.session.lookup::<AdaptResult>(&id)? {
            if rec
                .result
                .estimates
                .is_some_and(|e| e.h_score_shrunk.is_none())
            {
                // Stored before the shrunk H-score: estimates need no training, so add them
                // from the same sample (drawn from the seed) rather than train again.
                let source = self.source(&run.source, run.source_seed)?;
                let input = self.source_input(&run.source)?;
                let data = self.data(&run.target, input)?;
                let (train_set, _) =
                    target::sample(&data, run.per_class, run.val_per_class, seed, self.device)?;
                rec.result.estimates = Some(estimate(
                    &source,
                    &train_set,
                    data.classes,
                    run.adapt.eval_batch,
                )?);
                self.session.restore(&rec)?;
            }
            self.session.loaded(label, rec.seconds);
            return Ok(rec.result);
        }
        let source = self.source(&run.source, run.source_seed)?;
        let input = self.source_input(&run.source)?;
        let data = self.data(&run.target, input)?;
        let device = self.device;
        self.session.run(&id, label, || {
            let (train_set, val) =
                target::sample(&data, run.per_class, run.val_per_class, seed, device)?;
            let estimates = if run.strategy != Strategy::Scratch {
                Some(estimate(
                    &source,
                    &train_set,
                    data.classes,
                    run.adapt.eval_batch,
                )?)
            } else {
                None
            };
            let adapted = adapt(
                &run.strategy,
                &source,
                data.classes as i64,
                &train_set,
                &val,
                &run.adapt,
                seed,
            )?;
            let test = data.test.to_device(device);
            Ok(AdaptResult {
                test_accuracy: adapted.accuracy(&test, run.adapt.eval_batch)?,
                validation_accuracy: adapted.reports.last().and_then(|r| r.best_validation),
                epochs: adapted.reports.iter().map(|r| r.epochs.len()).sum(),
                estimates,
            })
        })
    }
}

/// LogME and H-score of the source's features, LEEP of its head's softmax, on `data`.
pub fn estimate(
    source: &SourceModel,
    data: &TensorDataset,
    classes: usize,
    batch: usize,
) -> Result<Estimates> {
    let vs = VarStore::new(data.inputs.device());
    let net = source.arch.build(&vs.root())?;
    let backbone = net.stages().len();
    // Every stage, the source head included, comes from the source.
    {
        let _guard = tch::no_grad_guard();
        let vars = vs.variables();
        for (name, mut var) in vars {
            let src = source.weights.get(&name).ok_or_else(|| {
                Error::InvalidArgument(format!("source {} has no variable {name}", source.name))
            })?;
            var.f_copy_(src)?;
        }
    }
    debug_assert!(backbone >= 1);
    let feats = features(&*net, &data.inputs, batch)?.to_kind(Kind::Double);
    let probs = {
        let _guard = tch::no_grad_guard();
        train::predict(&*net, &data.inputs, batch)?.softmax(-1, Kind::Double)
    };
    Ok(Estimates {
        log_me: transferability::log_me(&feats, &data.targets, classes)?,
        leep: transferability::leep(&probs, &data.targets, classes)?,
        h_score: transferability::h_score(&feats, &data.targets, classes)?,
        h_score_shrunk: Some(transferability::shrunk_h_score(
            &feats,
            &data.targets,
            classes,
        )?),
    })
}

/// The adaptation settings for `per_class` examples of `classes` classes: epochs so that
/// training takes at least `min_steps` steps (within `[train.epochs, max_epochs]`), and an
/// early-stopping patience of at least a quarter of `min_steps` in steps. With N = 1 per class
/// an epoch is one step, and a patience of 10 epochs would stop after 10 steps on a validation
/// set of 10 examples whose accuracy moves in coarse jumps.
pub fn resolve_adapt(
    adapt: &AdaptConfig,
    per_class: usize,
    classes: usize,
    min_steps: usize,
    max_epochs: usize,
) -> AdaptConfig {
    let mut a = adapt.clone();
    a.train = a
        .train
        .with_step_budget(per_class * classes, min_steps, max_epochs);
    a
}

fn permute_pixels(d: &TensorDataset) -> Result<TensorDataset> {
    let shape = d.inputs.size();
    let n = shape[0];
    let pixels: i64 = shape[1..].iter().product();
    let perm = core_tensor::data::permutation(pixels, PIXEL_SEED, d.inputs.device());
    let inputs = d
        .inputs
        .f_reshape([n, pixels])?
        .f_index_select(1, &perm)?
        .f_reshape(&shape)?;
    TensorDataset::new(inputs, d.targets.shallow_clone())
}

fn keep_classes(d: &TensorDataset, classes: &[i64]) -> Result<TensorDataset> {
    let targets = d.targets.to_device(Device::Cpu);
    let labels: Vec<i64> = Vec::try_from(&targets)?;
    let mut idx = Vec::new();
    let mut relabelled = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        if let Some(k) = classes.iter().position(|c| c == l) {
            idx.push(i as i64);
            relabelled.push(k as i64);
        }
    }
    let idx = Tensor::from_slice(&idx);
    TensorDataset::new(
        d.inputs.index_select(0, &idx),
        Tensor::from_slice(&relabelled),
    )
}

/// Loads `spec` from the fixture cache in `input`'s format.
pub fn load_data(spec: &DataSpec, input: InputSpec, cache: &std::path::Path) -> Result<TargetData> {
    let image = |what: &str| match input {
        InputSpec::Image { mean, std } => Ok(ImageInput { mean, std }),
        InputSpec::Audio { .. } => Err(Error::InvalidArgument(format!(
            "{what} is an image dataset but the source takes audio input"
        ))),
        InputSpec::Colour { .. } => Err(Error::InvalidArgument(format!(
            "{what}: the experiments' grey targets do not take a colour source yet (issue 15)"
        ))),
    };
    let with_classes = |d: TargetData, classes: &Option<Vec<i64>>| -> Result<TargetData> {
        let Some(c) = classes else { return Ok(d) };
        if c.is_empty() || c.iter().any(|&k| k < 0 || k as usize >= d.classes) {
            return Err(Error::InvalidArgument(format!(
                "classes {c:?}: need a non-empty list of classes in 0..{}",
                d.classes
            )));
        }
        Ok(TargetData {
            train: keep_classes(&d.train, c)?,
            test: keep_classes(&d.test, c)?,
            classes: c.len(),
        })
    };
    match spec {
        DataSpec::Mnist { classes } => with_classes(
            target::load(Target::Mnist, cache, &image("mnist")?)?,
            classes,
        ),
        DataSpec::FashionMnist { classes } => with_classes(
            target::load(Target::FashionMnist, cache, &image("fashion-mnist")?)?,
            classes,
        ),
        DataSpec::UciDigits => target::load(Target::UciDigits, cache, &image("uci-digits")?),
        DataSpec::Fsdd {
            speakers,
            test_takes,
        } => {
            let InputSpec::Audio { samples } = input else {
                return Err(Error::InvalidArgument(
                    "fsdd is an audio dataset but the source takes image input".into(),
                ));
            };
            let fsdd = Fsdd::load(cache)?;
            for s in speakers {
                if !fsdd.speakers.contains(s) {
                    return Err(Error::InvalidArgument(format!(
                        "unknown FSDD speaker {s:?}; known speakers: {}",
                        fsdd.speakers.join(", ")
                    )));
                }
            }
            let (test, train): (Vec<_>, Vec<_>) = fsdd
                .recordings
                .iter()
                .filter(|r| speakers.contains(&r.speaker))
                .partition(|r| r.take < *test_takes);
            let audio = AudioInput { samples };
            let set = |recs: &[&core_tensor::datasets::Recording]| {
                let labels: Vec<i64> = recs.iter().map(|r| i64::from(r.digit)).collect();
                TensorDataset::new(audio.prepare(recs), Tensor::from_slice(&labels))
            };
            Ok(TargetData {
                train: set(&train)?,
                test: set(&test)?,
                classes: 10,
            })
        }
    }
}
