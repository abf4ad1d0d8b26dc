//! Fine-tuning strategies: one call adapts any zoo model to a target dataset.
//!
//! ```text
//! scratch            fresh weights, same architecture, trained on the target
//! linear_probe       source backbone frozen; features computed once (evaluation mode, no
//!                    gradients), a new head fitted on them: to convergence by L-BFGS
//!                    (the default, [`ProbeFit::Lbfgs`]) or trained ([`ProbeFit::Train`])
//! fine_tune          source weights, new head, every layer trained
//! fine_tune_top      source weights, new head, only the top `stages` stages trained (the head is
//!                    the top stage: stages = 1 trains the head alone, without caching features)
//! discriminative_lr  every layer trained, backbone stage i (of n, from the input) at
//!                    lr · backbone_factor · layer_decay^(n-1-i), the head at lr
//! l2_sp              every layer trained with the penalty α/2 Σ‖w − w⁰‖² over the backbone
//!                    (w⁰ the source weights) + β/2 ‖w_head‖² (Li, Grandvalet, Davoine 2018)
//! lp_ft              linear probe (fitted to convergence, or trained for `probe_epochs`),
//!                    then fine-tune every layer at lr · lr_factor (Kumar et al. 2022)
//! layer_transfer     the first `stages` backbone stages copied from the source, frozen or
//!                    trained, every later stage and the head freshly initialised (the AnB /
//!                    AnB+ networks of Yosinski et al. 2014)
//! ```
//!
//! The new head always gets PyTorch's default initialisation for the target's class count.
//! Stages frozen by a strategy follow the [`BatchNormPolicy`] given with it.
//!
//! **Any network.** A source is an [`Architecture`] (a zoo [`ArchConfig`], or a function of
//! yours that builds your network as a [`Classifier`], for instance by wrapping your tch
//! modules in a [`Staged`](pretrained_zoo::arch::Staged)) and its weights. Stages are named
//! sets of variables ([`Classifier::stage_members`]), so "the first n stages" means the same
//! for a zoo network and for yours; [`adapt`] checks that the stages partition the variables
//! before it trains.

use std::collections::HashMap;
use std::sync::Arc;

use core_tensor::data::TensorDataset;
use core_tensor::optim::GroupSpec;
use core_tensor::train::{self, FitReport, TrainConfig, Trainer};
use core_tensor::{Error, Result};
use pretrained_zoo::arch::{
    ArchConfig, Architecture, BatchNormPolicy, Classifier, check_stage_membership, freeze_stages,
    in_head, stage_of,
};
use pretrained_zoo::registry::Registry;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

use crate::probe::{ProbeFit, fit_logistic};

/// A source network: what builds it and its weights (kept on the CPU, copied into each new
/// run). Cloning shares the weights' storage (no strategy writes to it).
pub struct SourceModel {
    /// Name (zoo entry or description).
    pub name: String,
    /// What builds the network: a zoo [`ArchConfig`] or your own [`Architecture`].
    pub arch: Arc<dyn Architecture>,
    /// Weights by `state_dict` name.
    pub weights: HashMap<String, Tensor>,
}

impl Clone for SourceModel {
    fn clone(&self) -> Self {
        SourceModel {
            name: self.name.clone(),
            arch: self.arch.clone(),
            weights: self
                .weights
                .iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect(),
        }
    }
}

impl std::fmt::Debug for SourceModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceModel")
            .field("name", &self.name)
            .field("arch", &self.arch.config())
            .field("weights", &self.weights.len())
            .finish()
    }
}

impl SourceModel {
    /// Loads a zoo entry (checksum verified).
    pub fn from_zoo(registry: &Registry, zoo_dir: &std::path::Path, name: &str) -> Result<Self> {
        let loaded = registry.load_model(zoo_dir, name, Device::Cpu)?;
        Ok(Self::from_store(
            name,
            loaded.entry.model.clone(),
            &loaded.vs,
        ))
    }

    /// Takes the weights of a trained network built by `arch` at the root of `vs`: a zoo
    /// [`ArchConfig`] or your own [`Architecture`] (a closure that builds your network).
    pub fn from_store(name: &str, arch: impl Architecture + 'static, vs: &VarStore) -> Self {
        Self::new(name, Arc::new(arch), store_weights(vs))
    }

    /// A source from what builds it and its weights by `state_dict` name.
    pub fn new(name: &str, arch: Arc<dyn Architecture>, weights: HashMap<String, Tensor>) -> Self {
        SourceModel {
            name: name.to_string(),
            arch,
            weights,
        }
    }

    /// An adapted network as the source of a further adaptation.
    pub fn from_adapted(name: &str, adapted: &Adapted) -> Self {
        Self::new(name, adapted.arch.clone(), store_weights(&adapted.vs))
    }

    /// The zoo configuration of the architecture, if it is one.
    pub fn config(&self) -> Option<ArchConfig> {
        self.arch.config()
    }
}

/// The variables of `vs`, detached copies on the CPU.
fn store_weights(vs: &VarStore) -> HashMap<String, Tensor> {
    let _guard = tch::no_grad_guard();
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().to_device(Device::Cpu).copy()))
        .collect()
}

/// How to adapt a source model to the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Train the same architecture from a fresh initialisation.
    Scratch,
    /// Frozen source features (computed once), a new head trained on them.
    LinearProbe,
    /// Source weights and a new head, every layer trained.
    FineTune,
    /// Source weights and a new head, only the top `stages` stages trained.
    FineTuneTop {
        /// Stages trained, counted from the head (1 = the head alone).
        stages: usize,
    },
    /// Every layer trained, the backbone at smaller learning rates.
    DiscriminativeLr {
        /// Factor of the backbone's learning rate relative to the head's.
        backbone_factor: f64,
        /// Extra factor per stage further from the head (1 = no layer-wise decay).
        #[serde(default = "one")]
        layer_decay: f64,
    },
    /// Every layer trained, pulled towards the source weights.
    L2Sp {
        /// Strength of the pull of backbone weights towards the source weights.
        alpha: f64,
        /// Strength of the ordinary weight decay on the new head.
        beta: f64,
    },
    /// Linear probe, then fine-tuning of every layer.
    LpFt {
        /// Epochs of the linear-probe phase when it is trained ([`ProbeFit::Train`]); a probe
        /// fitted to convergence ([`AdaptConfig::probe`]) ignores it.
        probe_epochs: usize,
        /// Learning-rate factor of the fine-tuning phase.
        #[serde(default = "one")]
        lr_factor: f64,
    },
    /// The first `stages` backbone stages from the source, the rest re-initialised.
    LayerTransfer {
        /// Backbone stages copied (0 = none: the same as scratch).
        stages: usize,
        /// Whether the copied stages stay frozen (AnB) or are trained too (AnB+).
        frozen: bool,
    },
}

fn one() -> f64 {
    1.0
}

impl Strategy {
    /// LP-FT with the defaults: the probe's head first (fitted to convergence unless
    /// [`AdaptConfig::probe`] says to train it, then for 10 epochs), then every layer
    /// fine-tuned at a tenth of the learning rate, so that the good head is not undone by
    /// large first steps through the backbone (Kumar et al. 2022).
    pub fn lp_ft() -> Self {
        Strategy::LpFt {
            probe_epochs: 10,
            lr_factor: 0.1,
        }
    }

    /// A short name for tables and plots.
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Scratch => "scratch",
            Strategy::LinearProbe => "linear_probe",
            Strategy::FineTune => "fine_tune",
            Strategy::FineTuneTop { .. } => "fine_tune_top",
            Strategy::DiscriminativeLr { .. } => "discriminative_lr",
            Strategy::L2Sp { .. } => "l2_sp",
            Strategy::LpFt { .. } => "lp_ft",
            Strategy::LayerTransfer { .. } => "layer_transfer",
        }
    }

    /// Checks the parameters, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |f: &str, why: &str| Err(Error::InvalidArgument(format!("strategy.{f}: {why}")));
        match self {
            Strategy::FineTuneTop { stages: 0 } => bad("stages", "must be at least 1 (the head)"),
            Strategy::DiscriminativeLr {
                backbone_factor,
                layer_decay,
            } if !(*backbone_factor > 0.0) || !(*layer_decay > 0.0) => bad(
                "backbone_factor",
                "backbone_factor and layer_decay must be > 0",
            ),
            Strategy::L2Sp { alpha, beta } if !(*alpha >= 0.0) || !(*beta >= 0.0) => {
                bad("alpha", "alpha and beta must be >= 0")
            }
            Strategy::LpFt {
                probe_epochs: 0, ..
            } => bad("probe_epochs", "must be at least 1"),
            Strategy::LpFt { lr_factor, .. } if !(*lr_factor > 0.0) => {
                bad("lr_factor", "must be > 0")
            }
            _ => Ok(()),
        }
    }
}

/// Settings shared by every strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptConfig {
    /// The training engine's settings (epochs, optimizer, learning rate, early stopping…).
    pub train: TrainConfig,
    /// Batch norm in frozen stages.
    #[serde(default = "default_bn")]
    pub batch_norm: BatchNormPolicy,
    /// Batch size of evaluation and feature extraction.
    #[serde(default = "default_eval_batch")]
    pub eval_batch: usize,
    /// How the linear probe (and LP-FT's probe phase) fits its head. [`AdaptConfig::default`]
    /// fits it to convergence ([`ProbeFit::lbfgs`]); a config file that leaves it out trains it
    /// by `train` ([`ProbeFit::Train`], the behaviour before this setting existed, so stored
    /// run keys stay valid). In TOML: `[adapt.probe]` with `kind = "lbfgs"`.
    #[serde(default = "train_probe", skip_serializing_if = "ProbeFit::is_train")]
    pub probe: ProbeFit,
}

impl Default for AdaptConfig {
    /// [`TrainConfig::default`] (Adam 1e-3, batch 32, early stopping on validation accuracy),
    /// batch norm of frozen stages kept in evaluation mode, evaluation in batches of 128, and
    /// the linear probe's head fitted to convergence by L-BFGS ([`ProbeFit::lbfgs`]:
    /// logistic regression with scikit-learn's default `C = 1`).
    fn default() -> Self {
        AdaptConfig {
            train: TrainConfig::default(),
            batch_norm: default_bn(),
            eval_batch: default_eval_batch(),
            probe: ProbeFit::lbfgs(),
        }
    }
}

fn train_probe() -> ProbeFit {
    ProbeFit::Train
}

fn default_bn() -> BatchNormPolicy {
    BatchNormPolicy::FrozenStagesEval
}

fn default_eval_batch() -> usize {
    128
}

/// A network adapted to the target.
pub struct Adapted {
    /// What builds the architecture (the source's; the network's head has since been replaced
    /// by one of [`Classifier::classes`] outputs).
    pub arch: Arc<dyn Architecture>,
    /// Its variables.
    pub vs: VarStore,
    /// The network.
    pub net: Box<dyn Classifier>,
    /// One report per training phase (two for `lp_ft`).
    pub reports: Vec<FitReport>,
}

impl std::fmt::Debug for Adapted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapted")
            .field("reports", &self.reports)
            .finish_non_exhaustive()
    }
}

/// What [`Adapted::save`] writes beside the weights (`<name>.json`): enough to rebuild the
/// network before its weights are loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedModel {
    /// The zoo architecture; `null` for a network of your own, which
    /// [`Adapted::load_with`] rebuilds with your [`Architecture`].
    pub arch: Option<ArchConfig>,
    /// The stage names, input to output (checked when loading with your architecture).
    #[serde(default)]
    pub stages: Vec<String>,
    /// Outputs of the head.
    pub classes: i64,
}

impl Adapted {
    /// Accuracy on `data` (evaluation mode).
    pub fn accuracy(&self, data: &TensorDataset, batch: usize) -> Result<f64> {
        train::accuracy(&*self.net, data, batch)
    }

    /// Logits of `inputs` in evaluation mode, in batches of `batch`, on the network's device.
    pub fn logits(&self, inputs: &Tensor, batch: usize) -> Result<Tensor> {
        train::predict(&*self.net, &inputs.to_device(self.vs.device()), batch)
    }

    /// The predicted class of each of `inputs`.
    pub fn predict(&self, inputs: &Tensor, batch: usize) -> Result<Tensor> {
        Ok(self.logits(inputs, batch)?.argmax(-1, false))
    }

    /// Saves the network: its variables as safetensors at `path` with PyTorch `state_dict`
    /// names (what [`pretrained_zoo`]'s architectures call them), and beside it, at `path`
    /// with the extension `json`, the [`SavedModel`] needed to rebuild it. Both are written
    /// atomically. Returns the weights' sha256.
    pub fn save(&self, path: &std::path::Path) -> Result<String> {
        let sha = core_tensor::checkpoint::save(&self.vs, path)?;
        let meta = SavedModel {
            arch: self.arch.config(),
            stages: self.net.stages().iter().map(|s| s.to_string()).collect(),
            classes: self.net.classes(),
        };
        core_tensor::persist::write_json(&path.with_extension("json"), &meta)?;
        Ok(sha)
    }

    /// Loads a network of a zoo architecture written by [`Adapted::save`] onto `device`:
    /// rebuilt from its `SavedModel`, every variable loaded strictly (a missing, extra or
    /// mis-shaped tensor is an error naming it). It predicts what the saved network predicted.
    /// A network of your own is loaded by [`Adapted::load_with`].
    pub fn load(path: &std::path::Path, device: Device) -> Result<Adapted> {
        let (meta_path, meta) = read_meta(path)?;
        let arch = meta.arch.clone().ok_or_else(|| {
            Error::format(
                &meta_path,
                "the saved network is not a zoo architecture: load it with \
                 `Adapted::load_with(path, device, your_architecture)`",
            )
        })?;
        Self::rebuild(path, device, Arc::new(arch), &meta)
    }

    /// Loads a network written by [`Adapted::save`], rebuilt by `arch` (your own
    /// [`Architecture`], or a zoo configuration), onto `device`; its stage names must be the
    /// saved ones and every variable is loaded strictly.
    pub fn load_with(
        path: &std::path::Path,
        device: Device,
        arch: impl Architecture + 'static,
    ) -> Result<Adapted> {
        let (_, meta) = read_meta(path)?;
        Self::rebuild(path, device, Arc::new(arch), &meta)
    }

    fn rebuild(
        path: &std::path::Path,
        device: Device,
        arch: Arc<dyn Architecture>,
        meta: &SavedModel,
    ) -> Result<Adapted> {
        let mut vs = VarStore::new(device);
        let mut net = arch.build(&vs.root())?;
        let stages: Vec<String> = net.stages().iter().map(|s| s.to_string()).collect();
        if !meta.stages.is_empty() && stages != meta.stages {
            return Err(Error::InvalidArgument(format!(
                "{}: saved with the stages {:?}, but the architecture given builds {stages:?}",
                path.display(),
                meta.stages
            )));
        }
        net.replace_head(meta.classes)?;
        core_tensor::checkpoint::load(&mut vs, path, core_tensor::checkpoint::LoadMode::Strict)?;
        Ok(Adapted {
            arch,
            vs,
            net,
            reports: Vec::new(),
        })
    }
}

fn read_meta(path: &std::path::Path) -> Result<(std::path::PathBuf, SavedModel)> {
    let meta_path = path.with_extension("json");
    let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    let meta: SavedModel = serde_json::from_str(&text)
        .map_err(|e| Error::format(&meta_path, format!("not a saved model's description: {e}")))?;
    Ok((meta_path, meta))
}

/// Builds the network of `source` on `device`, its variables at the root of a new store, and
/// checks that its stages partition its variables.
fn build_source(source: &SourceModel, device: Device) -> Result<(VarStore, Box<dyn Classifier>)> {
    let vs = VarStore::new(device);
    let net = source.arch.build(&vs.root())?;
    check_stage_membership(&*net, &vs).map_err(|e| e.about(&format!("source {}", source.name)))?;
    Ok((vs, net))
}

/// Builds the source architecture on `device` with the source weights in every stage but the
/// head, and a fresh head of `classes` outputs.
pub fn pretrained_with_new_head(
    source: &SourceModel,
    classes: i64,
    device: Device,
) -> Result<(VarStore, Box<dyn Classifier>)> {
    let (vs, mut net) = build_source(source, device)?;
    copy_stages(&vs, &*net, source, net.stages().len() - 1)?;
    net.replace_head(classes)?;
    Ok((vs, net))
}

/// Copies the variables of the first `n` stages of `net` from `source` (names and shapes must
/// match) and returns their names. `n` may be at most the number of backbone stages.
pub fn copy_stages(
    vs: &VarStore,
    net: &dyn Classifier,
    source: &SourceModel,
    n: usize,
) -> Result<Vec<String>> {
    let stages = net.stages();
    let backbone = stages.len() - 1;
    if n > backbone {
        return Err(Error::InvalidArgument(format!(
            "cannot copy {n} stages: the network has {backbone} backbone stages ({})",
            stages[..backbone].join(", ")
        )));
    }
    let _guard = tch::no_grad_guard();
    let mut copied = Vec::new();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        if stage_of(net, &name).is_none_or(|i| i >= n) {
            continue;
        }
        let src = source.weights.get(&name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "source model {} has no variable {name}",
                source.name
            ))
        })?;
        if src.size() != var.size() {
            return Err(Error::InvalidArgument(format!(
                "{name}: source shape {:?}, target shape {:?}",
                src.size(),
                var.size()
            )));
        }
        var.f_copy_(src)?;
        copied.push(name);
    }
    Ok(copied)
}

/// The backbone's features of `inputs` (evaluation mode, no gradients, batched).
pub fn features(net: &dyn Classifier, inputs: &Tensor, batch: usize) -> Result<Tensor> {
    let _guard = tch::no_grad_guard();
    let n = inputs.size()[0];
    let mut outs = Vec::new();
    let mut i = 0;
    while i < n {
        let len = (batch as i64).min(n - i);
        outs.push(net.features(&inputs.narrow(0, i, len), false));
        i += len;
    }
    Ok(Tensor::f_cat(&outs, 0)?)
}

fn validate_with<'a>(
    net: &'a dyn Classifier,
    val: &'a TensorDataset,
    batch: usize,
) -> impl FnMut() -> Result<f64> + 'a {
    move || train::accuracy(net, val, batch)
}

/// The mean cross-entropy of `model` on `val` (evaluation mode): what breaks ties of the
/// validation accuracy ([`EarlyStopping::break_ties`](core_tensor::train::EarlyStopping)).
fn val_loss<'a, M: nn::ModuleT + ?Sized>(
    model: &'a M,
    val: &'a TensorDataset,
    batch: usize,
) -> impl FnMut() -> Result<f64> + 'a {
    move || {
        let logits = train::predict(model, &val.inputs, batch)?;
        Ok(logits
            .f_log_softmax(-1, Kind::Float)?
            .f_nll_loss(&val.targets, None::<Tensor>, tch::Reduction::Mean, -100)?
            .f_double_value(&[])?)
    }
}

#[allow(clippy::too_many_arguments)]
fn fit_all(
    vs: &VarStore,
    net: &dyn Classifier,
    train_set: &TensorDataset,
    val: &TensorDataset,
    cfg: &TrainConfig,
    groups: Option<Vec<GroupSpec>>,
    eval_batch: usize,
    seed: u64,
) -> Result<FitReport> {
    let mut trainer = match groups {
        Some(g) => Trainer::with_groups(vs, cfg.clone(), &g)?,
        None => Trainer::new(vs, cfg.clone())?,
    }
    .shuffle_seed(seed)
    .tie_break(val_loss(net, val, eval_batch));
    let mut validate = validate_with(net, val, eval_batch);
    trainer.fit(
        train_set,
        |x, y| net.forward_t(x, true).cross_entropy_for_logits(y),
        Some(&mut validate),
    )
}

/// Fits only the head of `net` on features computed once from the frozen backbone: trained by
/// `cfg` ([`ProbeFit::Train`]) or fitted to convergence ([`ProbeFit::Lbfgs`]), starting from
/// the network's fresh head either way.
#[allow(clippy::too_many_arguments)]
fn linear_probe(
    net: &mut dyn Classifier,
    train_set: &TensorDataset,
    val: &TensorDataset,
    cfg: &TrainConfig,
    probe: &ProbeFit,
    eval_batch: usize,
    seed: u64,
) -> Result<FitReport> {
    let device = train_set.inputs.device();
    let f_train = TensorDataset::new(
        features(net, &train_set.inputs, eval_batch)?,
        train_set.targets.shallow_clone(),
    )?;
    let f_val = TensorDataset::new(
        features(net, &val.inputs, eval_batch)?,
        val.targets.shallow_clone(),
    )?;
    if let ProbeFit::Lbfgs { l2, max_iter, tol } = probe {
        let start = std::time::Instant::now();
        let head = net.head();
        let fit = fit_logistic(
            &f_train.inputs,
            &f_train.targets,
            net.classes(),
            *l2,
            *max_iter,
            *tol,
            head.bs.as_ref().map(|b| (&head.ws, b)),
        )?;
        if !fit.converged {
            tracing::warn!(
                iterations = fit.iterations,
                grad_max = fit.grad_max,
                "the linear probe's L-BFGS stopped at max_iter before its gradient reached tol"
            );
        }
        copy_linear(net.head(), &fit.weight, Some(&fit.bias))?;
        let head = net.head();
        let accuracy = train::accuracy(head, &f_val, eval_batch)?;
        let seconds = start.elapsed().as_secs_f64();
        return Ok(FitReport {
            epochs: vec![train::EpochLog {
                epoch: 1,
                train_loss: fit.loss,
                validation: Some(accuracy),
                lr: 0.0,
                seconds,
                train_seconds: seconds,
            }],
            final_epoch: 1,
            best_validation: Some(accuracy),
            stopped_early: false,
            steps: fit.iterations as u64,
            seconds,
        });
    }
    // The head is trained in its own store, starting from the network's fresh head.
    let head_vs = VarStore::new(device);
    let head = nn::linear(
        head_vs.root() / "head",
        net.feature_dim(),
        net.classes(),
        Default::default(),
    );
    copy_linear(&head, &net.head().ws, net.head().bs.as_ref())?;
    let mut trainer = Trainer::new(&head_vs, cfg.clone())?
        .shuffle_seed(seed)
        .tie_break(val_loss(&head, &f_val, eval_batch));
    let mut validate = || train::accuracy(&head, &f_val, eval_batch);
    let report = trainer.fit(
        &f_train,
        |x, y| head.forward(x).cross_entropy_for_logits(y),
        Some(&mut validate),
    )?;
    drop(trainer);
    copy_linear(net.head(), &head.ws, head.bs.as_ref())?;
    Ok(report)
}

/// Copies `weight` (and `bias`) into the linear layer `head`.
fn copy_linear(head: &nn::Linear, weight: &Tensor, bias: Option<&Tensor>) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        head.ws.shallow_clone().f_copy_(weight)?;
        if let (Some(dst), Some(src)) = (&head.bs, bias) {
            dst.shallow_clone().f_copy_(src)?;
        }
        Ok(())
    })
}

/// The L2-SP penalty over the trainable variables of `net` (built at the root of `vs`): α/2
/// Σ ‖w − w⁰‖² over the backbone (w⁰ the source weights) + β/2 Σ ‖w‖² over the head (weight
/// and bias).
pub fn l2_sp_penalty(
    vs: &VarStore,
    net: &dyn Classifier,
    source: &SourceModel,
    alpha: f64,
    beta: f64,
) -> Result<impl Fn() -> Tensor + use<>> {
    let device = vs.device();
    let mut anchored = Vec::new();
    let mut head = Vec::new();
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, var) in vars {
        if in_head(net, &name) {
            head.push(var);
        } else {
            let w0 = source.weights.get(&name).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "source model {} has no variable {name}",
                    source.name
                ))
            })?;
            anchored.push((var, w0.to_device(device)));
        }
    }
    Ok(move || {
        let mut total = Tensor::zeros([], (Kind::Float, device));
        for (w, w0) in &anchored {
            total = total + (w - w0).square().sum(Kind::Float) * (alpha / 2.0);
        }
        for w in &head {
            total = total + w.square().sum(Kind::Float) * (beta / 2.0);
        }
        total
    })
}

/// Parameter groups of `discriminative_lr` for `net`: backbone stage i of n (from the input)
/// at `lr · backbone_factor · layer_decay^(n-1-i)`, the head (last stage) at `lr`.
pub fn discriminative_groups(
    net: &dyn Classifier,
    train: &TrainConfig,
    backbone_factor: f64,
    layer_decay: f64,
) -> Vec<GroupSpec> {
    let stages = net.stages();
    let backbone = stages.len().saturating_sub(1);
    let mut groups: Vec<GroupSpec> = stages[..backbone]
        .iter()
        .enumerate()
        .map(|(i, s)| GroupSpec {
            name: s.to_string(),
            prefixes: net.stage_members(s),
            lr: train.lr * backbone_factor * layer_decay.powi((backbone - 1 - i) as i32),
            weight_decay: train.weight_decay,
        })
        .collect();
    groups.push(GroupSpec {
        name: stages.last().map_or("head", |s| s).to_string(),
        prefixes: vec![],
        lr: train.lr,
        weight_decay: train.weight_decay,
    });
    groups
}

/// Adapts `source` to a target with `classes` classes; `train_set` and `val` are on the device
/// to train on. `seed` fixes the new head, fresh layers and batch order.
pub fn adapt(
    strategy: &Strategy,
    source: &SourceModel,
    classes: i64,
    train_set: &TensorDataset,
    val: &TensorDataset,
    cfg: &AdaptConfig,
    seed: u64,
) -> Result<Adapted> {
    strategy.validate()?;
    cfg.train.validate()?;
    cfg.probe.validate()?;
    let device = train_set.inputs.device();
    core_tensor::device::seed(seed);
    let eval_batch = cfg.eval_batch;
    let (vs, mut net) = match strategy {
        Strategy::Scratch | Strategy::LayerTransfer { .. } => {
            let (vs, mut net) = build_source(source, device)?;
            net.replace_head(classes)?;
            (vs, net)
        }
        _ => pretrained_with_new_head(source, classes, device)?,
    };
    let backbone = net.stages().len() - 1;
    let mut reports = Vec::new();
    match strategy {
        Strategy::LayerTransfer { stages, frozen } => {
            copy_stages(&vs, &*net, source, *stages)?;
            if *frozen {
                freeze_stages(&mut *net, &vs, *stages, cfg.batch_norm)?;
            }
            reports.push(fit_all(
                &vs, &*net, train_set, val, &cfg.train, None, eval_batch, seed,
            )?);
        }
        Strategy::Scratch | Strategy::FineTune => {
            reports.push(fit_all(
                &vs, &*net, train_set, val, &cfg.train, None, eval_batch, seed,
            )?);
        }
        Strategy::LinearProbe => {
            reports.push(linear_probe(
                &mut *net, train_set, val, &cfg.train, &cfg.probe, eval_batch, seed,
            )?);
        }
        Strategy::FineTuneTop { stages } => {
            let trained = (*stages).min(backbone + 1);
            freeze_stages(&mut *net, &vs, backbone + 1 - trained, cfg.batch_norm)?;
            reports.push(fit_all(
                &vs, &*net, train_set, val, &cfg.train, None, eval_batch, seed,
            )?);
        }
        Strategy::DiscriminativeLr {
            backbone_factor,
            layer_decay,
        } => {
            let groups = discriminative_groups(&*net, &cfg.train, *backbone_factor, *layer_decay);
            reports.push(fit_all(
                &vs,
                &*net,
                train_set,
                val,
                &cfg.train,
                Some(groups),
                eval_batch,
                seed,
            )?);
        }
        Strategy::L2Sp { alpha, beta } => {
            let penalty = l2_sp_penalty(&vs, &*net, source, *alpha, *beta)?;
            let mut trainer = Trainer::new(&vs, cfg.train.clone())?
                .shuffle_seed(seed)
                .add_loss_term(penalty)
                .tie_break(val_loss(&*net, val, eval_batch));
            let mut validate = validate_with(&*net, val, eval_batch);
            reports.push(trainer.fit(
                train_set,
                |x, y| net.forward_t(x, true).cross_entropy_for_logits(y),
                Some(&mut validate),
            )?);
        }
        Strategy::LpFt {
            probe_epochs,
            lr_factor,
        } => {
            let mut probe = cfg.train.clone();
            probe.epochs = *probe_epochs;
            reports.push(linear_probe(
                &mut *net, train_set, val, &probe, &cfg.probe, eval_batch, seed,
            )?);
            let mut ft = cfg.train.clone();
            ft.lr *= lr_factor;
            reports.push(fit_all(
                &vs,
                &*net,
                train_set,
                val,
                &ft,
                None,
                eval_batch,
                seed ^ 1,
            )?);
        }
    }
    Ok(Adapted {
        arch: source.arch.clone(),
        vs,
        net,
        reports,
    })
}
