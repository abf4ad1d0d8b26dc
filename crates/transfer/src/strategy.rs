//! Fine-tuning strategies: one call adapts any zoo model to a target dataset.
//!
//! ```text
//! scratch            fresh weights, same architecture, trained on the target
//! linear_probe       source backbone frozen; features computed once (evaluation mode, no
//!                    gradients), a new head trained on them
//! fine_tune          source weights, new head, every layer trained
//! fine_tune_top      source weights, new head, only the top `stages` stages trained (the head is
//!                    the top stage: stages = 1 trains the head alone, without caching features)
//! discriminative_lr  every layer trained, backbone stage i (of n, from the input) at
//!                    lr · backbone_factor · layer_decay^(n-1-i), the head at lr
//! l2_sp              every layer trained with the penalty α/2 Σ‖w − w⁰‖² over the backbone
//!                    (w⁰ the source weights) + β/2 ‖w_head‖² (Li, Grandvalet, Davoine 2018)
//! lp_ft              linear probe for `probe_epochs`, then fine-tune every layer at
//!                    lr · lr_factor (Kumar et al. 2022)
//! layer_transfer     the first `stages` backbone stages copied from the source, frozen or
//!                    trained, every later stage and the head freshly initialised (the AnB /
//!                    AnB+ networks of Yosinski et al. 2014)
//! ```
//!
//! The new head always gets PyTorch's default initialisation for the target's class count.
//! Stages frozen by a strategy follow the [`BatchNormPolicy`] given with it.

use std::collections::HashMap;

use core_tensor::data::TensorDataset;
use core_tensor::optim::GroupSpec;
use core_tensor::train::{self, FitReport, TrainConfig, Trainer};
use core_tensor::{Error, Result};
use pretrained_zoo::arch::{
    ArchConfig, BatchNormPolicy, Classifier, HEAD, freeze_stages, in_stage,
};
use pretrained_zoo::registry::Registry;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

/// A source network: architecture and weights (kept on the CPU, copied into each new run).
pub struct SourceModel {
    /// Name (zoo entry or description).
    pub name: String,
    /// Architecture and configuration.
    pub model: ArchConfig,
    /// Weights by `state_dict` name.
    pub weights: HashMap<String, Tensor>,
}

impl std::fmt::Debug for SourceModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceModel")
            .field("name", &self.name)
            .field("model", &self.model)
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

    /// Takes the weights of a trained network.
    pub fn from_store(name: &str, model: ArchConfig, vs: &VarStore) -> Self {
        let _guard = tch::no_grad_guard();
        let weights = vs
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.detach().to_device(Device::Cpu).copy()))
            .collect();
        SourceModel {
            name: name.to_string(),
            model,
            weights,
        }
    }
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
        /// Epochs of the linear-probe phase.
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
}

impl Default for AdaptConfig {
    /// [`TrainConfig::default`] (Adam 1e-3, batch 32, early stopping on validation accuracy),
    /// batch norm of frozen stages kept in evaluation mode, evaluation in batches of 128.
    fn default() -> Self {
        AdaptConfig {
            train: TrainConfig::default(),
            batch_norm: default_bn(),
            eval_batch: default_eval_batch(),
        }
    }
}

fn default_bn() -> BatchNormPolicy {
    BatchNormPolicy::FrozenStagesEval
}

fn default_eval_batch() -> usize {
    128
}

/// A network adapted to the target.
pub struct Adapted {
    /// The architecture (with the source's configuration; its head has been replaced by one
    /// of [`Classifier::classes`] outputs).
    pub arch: ArchConfig,
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
    /// The architecture.
    pub arch: ArchConfig,
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
            arch: self.arch.clone(),
            classes: self.net.classes(),
        };
        core_tensor::persist::write_json(&path.with_extension("json"), &meta)?;
        Ok(sha)
    }

    /// Loads a network written by [`Adapted::save`] onto `device`: rebuilt from its
    /// `SavedModel`, every variable loaded strictly (a missing, extra or mis-shaped tensor is an
    /// error naming it). It predicts what the saved network predicted.
    pub fn load(path: &std::path::Path, device: Device) -> Result<Adapted> {
        let meta_path = path.with_extension("json");
        let text = std::fs::read_to_string(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let meta: SavedModel = serde_json::from_str(&text).map_err(|e| {
            Error::format(&meta_path, format!("not a saved model's description: {e}"))
        })?;
        let mut vs = VarStore::new(device);
        let mut net = meta.arch.build(&vs.root())?;
        net.replace_head(meta.classes)?;
        core_tensor::checkpoint::load(&mut vs, path, core_tensor::checkpoint::LoadMode::Strict)?;
        Ok(Adapted {
            arch: meta.arch,
            vs,
            net,
            reports: Vec::new(),
        })
    }
}

/// Builds the source architecture on `device` with the source weights in every stage but the
/// head, and a fresh head of `classes` outputs.
pub fn pretrained_with_new_head(
    source: &SourceModel,
    classes: i64,
    device: Device,
) -> Result<(VarStore, Box<dyn Classifier>)> {
    let vs = VarStore::new(device);
    let mut net = source.model.build(&vs.root())?;
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
        if !stages[..n].iter().any(|s| in_stage(&name, s)) {
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
    .shuffle_seed(seed);
    let mut validate = validate_with(net, val, eval_batch);
    trainer.fit(
        train_set,
        |x, y| net.forward_t(x, true).cross_entropy_for_logits(y),
        Some(&mut validate),
    )
}

/// Trains only the head of `net` on features computed once from the frozen backbone.
fn linear_probe(
    net: &mut dyn Classifier,
    vs: &VarStore,
    train_set: &TensorDataset,
    val: &TensorDataset,
    cfg: &TrainConfig,
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
    // The head is trained in its own store, starting from the network's fresh head.
    let head_vs = VarStore::new(device);
    let vars = vs.variables();
    let head = nn::linear(
        head_vs.root() / HEAD,
        net.feature_dim(),
        net.classes(),
        Default::default(),
    );
    tch::no_grad(|| {
        let mut w = head.ws.shallow_clone();
        w.copy_(&vars[&format!("{HEAD}.weight")]);
        if let Some(b) = &head.bs {
            let mut b = b.shallow_clone();
            b.copy_(&vars[&format!("{HEAD}.bias")]);
        }
    });
    let mut trainer = Trainer::new(&head_vs, cfg.clone())?.shuffle_seed(seed);
    let mut validate = || train::accuracy(&head, &f_val, eval_batch);
    let report = trainer.fit(
        &f_train,
        |x, y| head.forward(x).cross_entropy_for_logits(y),
        Some(&mut validate),
    )?;
    drop(trainer);
    tch::no_grad(|| -> Result<()> {
        let mut w = vars[&format!("{HEAD}.weight")].shallow_clone();
        w.f_copy_(&head.ws)?;
        if let Some(b) = &head.bs {
            let mut nb = vars[&format!("{HEAD}.bias")].shallow_clone();
            nb.f_copy_(b)?;
        }
        Ok(())
    })?;
    Ok(report)
}

/// The L2-SP penalty over the trainable variables: α/2 Σ ‖w − w⁰‖² over the backbone (w⁰ the
/// source weights) + β/2 Σ ‖w‖² over the head (weight and bias).
pub fn l2_sp_penalty(
    vs: &VarStore,
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
        if in_stage(&name, HEAD) {
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

/// Parameter groups of `discriminative_lr`: backbone stage i of n (from the input) at
/// `lr · backbone_factor · layer_decay^(n-1-i)`, the head (last stage) at `lr`.
pub fn discriminative_groups(
    stages: &[&str],
    train: &TrainConfig,
    backbone_factor: f64,
    layer_decay: f64,
) -> Vec<GroupSpec> {
    let backbone = stages.len().saturating_sub(1);
    let mut groups: Vec<GroupSpec> = stages[..backbone]
        .iter()
        .enumerate()
        .map(|(i, s)| GroupSpec {
            name: s.to_string(),
            prefixes: vec![s.to_string()],
            lr: train.lr * backbone_factor * layer_decay.powi((backbone - 1 - i) as i32),
            weight_decay: train.weight_decay,
        })
        .collect();
    groups.push(GroupSpec {
        name: HEAD.into(),
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
    let device = train_set.inputs.device();
    core_tensor::device::seed(seed);
    let eval_batch = cfg.eval_batch;
    let (vs, mut net) = match strategy {
        Strategy::Scratch | Strategy::LayerTransfer { .. } => {
            let vs = VarStore::new(device);
            let mut net = source.model.build(&vs.root())?;
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
                &mut *net, &vs, train_set, val, &cfg.train, eval_batch, seed,
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
            let stages = net.stages();
            let groups = discriminative_groups(&stages, &cfg.train, *backbone_factor, *layer_decay);
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
            let penalty = l2_sp_penalty(&vs, source, *alpha, *beta)?;
            let mut trainer = Trainer::new(&vs, cfg.train.clone())?
                .shuffle_seed(seed)
                .add_loss_term(penalty);
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
                &mut *net, &vs, train_set, val, &probe, eval_batch, seed,
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
        arch: source.model.clone(),
        vs,
        net,
        reports,
    })
}
