//! Architectures. Every layer has an explicit name equal to its PyTorch `state_dict` prefix, and
//! every network is a backbone (ordered stages) followed by a linear `head`.
//!
//! | `arch` | network | input |
//! |---|---|---|
//! | `mlp` | [`Mlp`] | `[N, inputs]` (or any `[N, ...]`, flattened) |
//! | `lenet` | [`LeNet`] | `[N, 1, 28, 28]` |
//! | `resnet` | [`ResNet`] | `[N, 1, H, W]`, small images (28x28) |
//! | `face_cnn` | [`FaceCnn`] | `[N, 1, H, W]`, any size from 16x16 on (112x92 ORL faces) |
//! | `audio_cnn1d` | [`AudioCnn1d`] | `[N, 1, samples]` raw waveform |
//! | `spectrogram_cnn` | [`SpectrogramCnn`] | `[N, 1, mels, frames]` |
//! | `torchvision_resnet` | [`TorchvisionResNet`] (ResNet-18/34/50, torchvision's keys) | `[N, C, H, W]`, photographs (224x224; 32x32 with `small_input`) |
//!
//! The PyTorch twins, with the same `state_dict` keys and the same forward pass, are in
//! `python/zoo_models.py`; `tests/interop.rs` checks both directions.
//!
//! **Stages.** [`Classifier::stages`] lists a network's stages input to output, the head last;
//! each stage is a name prefix of its variables (see [`in_stage`]), so "the first n stages"
//! of a network is defined and every variable belongs to exactly one stage.
//!
//! **Replacing the head.** [`Classifier::replace_head`] gives the network a freshly
//! initialised head of another size *in place*: the variables `head.weight` and `head.bias`
//! keep their names and their place in the `VarStore` and get new data of the new shape (the
//! way tch itself moves variables between devices), and any gradient they had is dropped for a
//! zero one of the new shape. Nothing is created under a new name, so tch never renames a
//! duplicate `head` to `head__N`, and a checkpoint of the new network has the same keys. Build
//! the optimizer after replacing the head: one built before keeps state of the old shape.
//!
//! **Frozen stages and batch norm.** Freezing a stage (`core_tensor::optim::freeze`) stops its
//! gradients, but batch-norm running statistics are buffers: a training-mode forward pass
//! still normalises with batch statistics and updates them. Whether frozen stages do that is
//! an experiment's choice, so it is explicit: [`Classifier::set_eval_stages`] makes some
//! stages run in evaluation mode whatever the `train` flag says, and [`freeze_stages`]
//! freezes the first n stages and applies a [`BatchNormPolicy`].
//!
//! ```no_run
//! use core_tensor::optim::{Optimizer, OptimizerKind};
//! use pretrained_zoo::arch::{BatchNormPolicy, ResNet, ResNetConfig, freeze_stages};
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let mut net = ResNet::new(&vs.root(), &ResNetConfig::default());
//! let frozen = freeze_stages(&mut net, &vs, 2, BatchNormPolicy::FrozenStagesEval)?;
//! assert_eq!(frozen, ["stem", "layer1"]);
//! // Built after freezing, the optimizer leaves the frozen variables out.
//! let opt = Optimizer::new(&vs, OptimizerKind::sgd(0.9), 0.1, 0.0)?;
//! # Ok::<(), core_tensor::Error>(())
//! ```

/// The [`Classifier`] methods every architecture shares, for a struct with the fields
/// `config` (with `classes`), `head` (an `nn::Linear`) and `eval` ([`EvalStages`]). Used
/// inside `impl Classifier for …`.
macro_rules! head_methods {
    () => {
        fn classes(&self) -> i64 {
            self.config.classes
        }

        fn replace_head(&mut self, classes: i64) -> core_tensor::Result<()> {
            $crate::arch::replace_linear(&mut self.head, classes)?;
            self.config.classes = classes;
            Ok(())
        }

        fn set_eval_stages(&mut self, stages: &[&str]) -> core_tensor::Result<()> {
            self.eval = $crate::arch::EvalStages::new(&self.stages(), stages)?;
            Ok(())
        }

        fn eval_stages(&self) -> Vec<String> {
            self.eval.names()
        }

        fn head(&self) -> &tch::nn::Linear {
            &self.head
        }
    };
}

/// `impl ModuleT`: the head applied to [`Classifier::features`].
macro_rules! forward_through_head {
    ($net:ty) => {
        impl tch::nn::ModuleT for $net {
            fn forward_t(&self, xs: &tch::Tensor, train: bool) -> tch::Tensor {
                $crate::arch::Classifier::features(self, xs, train).apply(&self.head)
            }
        }
    };
}

pub mod audio;
pub mod face;
pub mod layers;
pub mod lenet;
pub mod mlp;
pub mod resnet;
pub mod spectrogram;
pub mod staged;
pub mod torchvision_resnet;

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ModuleT};

pub use audio::{AudioCnn1d, AudioCnn1dConfig};
pub use face::{FaceCnn, FaceCnnConfig};
pub use lenet::{LeNet, LeNetConfig};
pub use mlp::{Mlp, MlpConfig};
pub use resnet::{ResNet, ResNetConfig};
pub use spectrogram::{SpectrogramCnn, SpectrogramCnnConfig};
pub use staged::{Staged, StagedBuilder};
pub use torchvision_resnet::{ResNetDepth, TorchvisionResNet, TorchvisionResNetConfig};

/// The name of every network's last stage, the linear classifier on the features.
pub const HEAD: &str = "head";

/// How batch norm behaves in the stages whose weights [`freeze_stages`] freezes.
///
/// In an experiment's configuration it reads `"frozen_stages_eval"` or `"update_all"`; it has
/// no default, since the two are different experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchNormPolicy {
    /// Frozen stages run in evaluation mode whatever the `train` flag: batch norm normalises
    /// with its running statistics and never changes them (and dropout, where there is any,
    /// is off). The frozen stages are then a fixed function of their input.
    FrozenStagesEval,
    /// Every stage follows the `train` flag: in training, batch norm of frozen stages
    /// normalises with batch statistics and its running statistics keep updating, although
    /// its weights are frozen.
    UpdateAll,
}

/// A network made of a backbone (ordered stages that compute features) and a linear head.
///
/// `forward_t(xs, train)` is `head(features(xs, train))`. `train` matters for batch norm:
/// `true` normalises with batch statistics and updates the running ones, `false` uses the
/// running statistics and changes nothing. Stages named in [`Classifier::set_eval_stages`]
/// run as with `false` whatever `train` says; `false` is evaluation mode everywhere.
pub trait Classifier: ModuleT {
    /// Stage names, input to output; the last one is the head (named [`HEAD`] in the zoo's
    /// architectures). A variable belongs to a stage when it is one of the stage's
    /// [`Classifier::stage_members`] or below one ([`in_stage`]).
    fn stages(&self) -> Vec<&str>;

    /// The variable-name prefixes that make up `stage`. The default is the stage's own name;
    /// a network whose stage spans several modules lists them (torchvision's ResNet stem is
    /// `conv1` and `bn1`).
    fn stage_members(&self, stage: &str) -> Vec<String> {
        vec![stage.to_string()]
    }

    /// The linear head, the last stage: `forward_t(xs) = head(features(xs))`.
    fn head(&self) -> &nn::Linear;

    /// The backbone's output, the input of the head: `[N, feature_dim()]`.
    fn features(&self, xs: &Tensor, train: bool) -> Tensor;

    /// The width of [`Classifier::features`].
    fn feature_dim(&self) -> i64;

    /// The number of outputs of the head.
    fn classes(&self) -> i64;

    /// Replaces the head by a freshly initialised one with `classes` outputs, in place (see the
    /// module documentation): the variable names stay `head.weight` and `head.bias`, and so
    /// does their `requires_grad` (a frozen head stays frozen). Build optimizers afterwards.
    fn replace_head(&mut self, classes: i64) -> Result<()>;

    /// Makes `stages` run in evaluation mode in every forward pass ([`ModuleT::forward_t`]
    /// and [`Classifier::features`]) whatever the `train` flag says: their batch norm uses its
    /// running statistics and leaves them unchanged, dropout is off. The other stages follow
    /// the flag. The set replaces the previous one (`&[]` clears it).
    ///
    /// Networks without batch norm or dropout (`Mlp`, `LeNet`) compute the same either way
    /// but keep and check the set all the same.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] listing the valid stages if a name is not one of
    /// [`Classifier::stages`]; the previous set is then kept.
    fn set_eval_stages(&mut self, stages: &[&str]) -> Result<()>;

    /// The stages that run in evaluation mode whatever the `train` flag, in stage order.
    fn eval_stages(&self) -> Vec<String>;
}

/// Freezes the first `n` stages of `net`, whose variables are `vs`, and applies `policy` to
/// their batch norm; returns the names of the frozen stages.
///
/// Freezing sets `requires_grad = false` on every variable of those stages
/// (`core_tensor::optim::freeze` with the stage names as prefixes), so an optimizer built
/// afterwards leaves them out. Then [`BatchNormPolicy::FrozenStagesEval`] makes exactly the
/// frozen stages run in evaluation mode ([`Classifier::set_eval_stages`]) and
/// [`BatchNormPolicy::UpdateAll`] makes every stage follow the `train` flag (it clears any
/// evaluation stages set before). `n = 0` freezes nothing and only applies the policy.
///
/// The network must have been built at the root of `vs` (`build(&vs.root())`), so that its
/// variable names start with its stage names.
///
/// # Errors
/// [`Error::InvalidArgument`], with nothing changed, if `n` exceeds the number of backbone
/// stages (the head is never frozen: it is the part fine-tuning trains) or if a stage to
/// freeze has no variable in `vs`.
pub fn freeze_stages(
    net: &mut dyn Classifier,
    vs: &nn::VarStore,
    n: usize,
    policy: BatchNormPolicy,
) -> Result<Vec<String>> {
    let stages = net.stages();
    let backbone = &stages[..stages.len() - 1];
    if n > backbone.len() {
        return Err(Error::InvalidArgument(format!(
            "cannot freeze the first {n} stages: the network has {} backbone stages {backbone:?} \
             before its `{HEAD}`, and the head cannot be frozen (it is what fine-tuning trains); \
             freeze at most {} stages",
            backbone.len(),
            backbone.len()
        )));
    }
    let frozen: Vec<String> = backbone[..n].iter().map(|s| s.to_string()).collect();
    let names: Vec<String> = vs.variables().into_keys().collect();
    if let Some(stage) = frozen.iter().find(|stage| {
        let members = net.stage_members(stage);
        !names
            .iter()
            .any(|name| members.iter().any(|m| in_stage(name, m)))
    }) {
        return Err(Error::InvalidArgument(format!(
            "stage `{stage}` has no variable in the VarStore: build the network at the store's \
             root (`build(&vs.root())`) so that its variable names start with its stage names"
        )));
    }
    let stage_names: Vec<&str> = frozen.iter().map(String::as_str).collect();
    let members = stage_prefixes(&*net, &stage_names);
    let prefixes: Vec<&str> = members.iter().map(String::as_str).collect();
    match policy {
        BatchNormPolicy::FrozenStagesEval => net.set_eval_stages(&stage_names)?,
        BatchNormPolicy::UpdateAll => net.set_eval_stages(&[])?,
    }
    let variables = core_tensor::optim::freeze(vs, &prefixes);
    tracing::info!(stages = ?frozen, variables, ?policy, "froze stages");
    Ok(frozen)
}

/// The stages of a network that run in evaluation mode whatever the `train` flag: the state
/// behind [`Classifier::set_eval_stages`], one per network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EvalStages(Vec<String>);

impl EvalStages {
    /// The stages of `requested`, which must all be among `stages` (the network's), kept in
    /// the order of `stages`; the error lists the valid stages.
    pub(crate) fn new(stages: &[&str], requested: &[&str]) -> Result<Self> {
        let unknown: Vec<&str> = requested
            .iter()
            .copied()
            .filter(|r| !stages.contains(r))
            .collect();
        if !unknown.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "unknown stage names {unknown:?}: the stages of this network are {stages:?}"
            )));
        }
        Ok(EvalStages(
            stages
                .iter()
                .filter(|s| requested.contains(s))
                .map(|s| s.to_string())
                .collect(),
        ))
    }

    /// The stage names, in stage order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.0.clone()
    }

    /// The `train` flag `stage` runs with: `false` for an evaluation stage, `train` otherwise.
    pub(crate) fn train(&self, stage: &str, train: bool) -> bool {
        train && !self.0.iter().any(|s| s == stage)
    }
}

/// Whether the variable `name` is `prefix` or below it (`prefix.`...): whole name components
/// only, so `layer10.0.weight` is not under `layer1`.
pub fn in_stage(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// The member prefixes of `stages` of `net` ([`Classifier::stage_members`]), in order.
pub fn stage_prefixes(net: &dyn Classifier, stages: &[&str]) -> Vec<String> {
    stages.iter().flat_map(|s| net.stage_members(s)).collect()
}

/// The index in [`Classifier::stages`] of the stage the variable `name` belongs to.
pub fn stage_of(net: &dyn Classifier, name: &str) -> Option<usize> {
    net.stages().iter().position(|stage| {
        net.stage_members(stage)
            .iter()
            .any(|member| in_stage(name, member))
    })
}

/// Whether the variable `name` belongs to the head (the last stage).
pub fn in_head(net: &dyn Classifier, name: &str) -> bool {
    stage_of(net, name) == Some(net.stages().len() - 1)
}

/// Checks that `net` has a backbone (a stage before its head), that every variable of `vs`
/// belongs to exactly one stage and that every stage has a variable; strategies that copy or
/// freeze "the first n stages" and multi-task trunks rely on it. The zoo's architectures
/// always pass; a network wrapped with [`Staged`] passes when its stages' members cover the
/// modules it created.
///
/// # Errors
/// [`Error::InvalidArgument`] for a network that is only a head, or naming the variables in
/// no stage or in two, and the stages with their members.
pub fn check_stage_membership(net: &dyn Classifier, vs: &nn::VarStore) -> Result<()> {
    let stages = net.stages();
    if stages.len() < 2 {
        return Err(Error::InvalidArgument(format!(
            "a network needs at least one backbone stage before its head, got {stages:?}"
        )));
    }
    let members: Vec<Vec<String>> = stages.iter().map(|s| net.stage_members(s)).collect();
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    let mut problems = Vec::new();
    for name in &names {
        let owners: Vec<&str> = stages
            .iter()
            .zip(&members)
            .filter(|(_, m)| m.iter().any(|p| in_stage(name, p)))
            .map(|(s, _)| *s)
            .collect();
        match owners.len() {
            1 => {}
            0 => problems.push(format!("`{name}` belongs to no stage")),
            _ => problems.push(format!("`{name}` belongs to stages {owners:?}")),
        }
    }
    for (stage, m) in stages.iter().zip(&members) {
        if !names.iter().any(|n| m.iter().any(|p| in_stage(n, p))) {
            problems.push(format!("stage `{stage}` has no variable"));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let layout: Vec<String> = stages
        .iter()
        .zip(&members)
        .map(|(s, m)| format!("{s} = {m:?}"))
        .collect();
    Err(Error::InvalidArgument(format!(
        "the network's stages do not partition its variables: {}; stages and their member \
         prefixes: {}; build the network at the store's root and list every module in one stage",
        problems.join(", "),
        layout.join(", ")
    )))
}

/// What builds a network: a zoo [`ArchConfig`], or a function of yours that creates your
/// network under a path. Strategies that need a fresh copy of a source network (scratch, layer
/// transfer) and [`Classifier`] loaders call it; every call must create the same variables.
///
/// ```
/// use pretrained_zoo::arch::{Architecture, Classifier, Staged};
/// use tch::nn;
/// let mine = |p: &nn::Path| -> core_tensor::Result<Box<dyn Classifier>> {
///     let body = nn::seq_t().add(nn::linear(p / "body", 4, 8, Default::default())).add_fn(|x| x.relu());
///     Ok(Box::new(Staged::builder().stage("body", body).head(p / "fc", 8, 3)?))
/// };
/// let vs = nn::VarStore::new(tch::Device::Cpu);
/// let net = mine.build(&vs.root())?;
/// assert_eq!(net.stages(), ["body", "fc"]);
/// assert!(mine.config().is_none());
/// # Ok::<(), core_tensor::Error>(())
/// ```
pub trait Architecture: Send + Sync {
    /// Creates the network's variables under `p` and returns the network.
    fn build(&self, p: &nn::Path) -> Result<Box<dyn Classifier>>;

    /// The zoo configuration this is, if it is one: what a saved model records so that it can
    /// be rebuilt without your code.
    fn config(&self) -> Option<ArchConfig> {
        None
    }
}

impl Architecture for ArchConfig {
    fn build(&self, p: &nn::Path) -> Result<Box<dyn Classifier>> {
        ArchConfig::build(self, p)
    }

    fn config(&self) -> Option<ArchConfig> {
        Some(self.clone())
    }
}

impl<F> Architecture for F
where
    F: Fn(&nn::Path) -> Result<Box<dyn Classifier>> + Send + Sync,
{
    fn build(&self, p: &nn::Path) -> Result<Box<dyn Classifier>> {
        self(p)
    }
}

/// A network's configuration tagged with its architecture, as it appears in an experiment's
/// TOML (`model = { arch = "resnet", width = 16, blocks = [2, 2, 2], classes = 10 }`) or JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", deny_unknown_fields)]
pub enum ArchConfig {
    /// [`Mlp`].
    #[serde(rename = "mlp")]
    Mlp(MlpConfig),
    /// [`LeNet`].
    #[serde(rename = "lenet")]
    LeNet(LeNetConfig),
    /// [`ResNet`].
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    /// [`FaceCnn`].
    #[serde(rename = "face_cnn")]
    FaceCnn(FaceCnnConfig),
    /// [`AudioCnn1d`].
    #[serde(rename = "audio_cnn1d")]
    AudioCnn1d(AudioCnn1dConfig),
    /// [`SpectrogramCnn`].
    #[serde(rename = "spectrogram_cnn")]
    SpectrogramCnn(SpectrogramCnnConfig),
    /// [`TorchvisionResNet`].
    #[serde(rename = "torchvision_resnet")]
    TorchvisionResNet(TorchvisionResNetConfig),
}

impl ArchConfig {
    /// The architecture's name, the `arch` tag (also the name `python/interop.py` takes).
    pub fn name(&self) -> &'static str {
        match self {
            ArchConfig::Mlp(_) => "mlp",
            ArchConfig::LeNet(_) => "lenet",
            ArchConfig::ResNet(_) => "resnet",
            ArchConfig::FaceCnn(_) => "face_cnn",
            ArchConfig::AudioCnn1d(_) => "audio_cnn1d",
            ArchConfig::SpectrogramCnn(_) => "spectrogram_cnn",
            ArchConfig::TorchvisionResNet(_) => "torchvision_resnet",
        }
    }

    /// Checks the configuration; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        match self {
            ArchConfig::Mlp(c) => c.validate(),
            ArchConfig::LeNet(c) => c.validate(),
            ArchConfig::ResNet(c) => c.validate(),
            ArchConfig::FaceCnn(c) => c.validate(),
            ArchConfig::AudioCnn1d(c) => c.validate(),
            ArchConfig::SpectrogramCnn(c) => c.validate(),
            ArchConfig::TorchvisionResNet(c) => c.validate(),
        }
    }

    /// The configuration without its tag, as JSON (what `python/interop.py` takes).
    pub fn inner_json(&self) -> serde_json::Value {
        let value = match self {
            ArchConfig::Mlp(c) => serde_json::to_value(c),
            ArchConfig::LeNet(c) => serde_json::to_value(c),
            ArchConfig::ResNet(c) => serde_json::to_value(c),
            ArchConfig::FaceCnn(c) => serde_json::to_value(c),
            ArchConfig::AudioCnn1d(c) => serde_json::to_value(c),
            ArchConfig::SpectrogramCnn(c) => serde_json::to_value(c),
            ArchConfig::TorchvisionResNet(c) => serde_json::to_value(c),
        };
        value.expect("configs are plain data and always serialise")
    }

    /// The same architecture with a head of `classes` outputs.
    pub fn with_classes(&self, classes: i64) -> Result<ArchConfig> {
        positive("classes", classes)?;
        let mut value = serde_json::to_value(self).expect("configs always serialise");
        value["classes"] = classes.into();
        serde_json::from_value(value).map_err(|e| {
            Error::InvalidArgument(format!("{} has no `classes` field: {e}", self.name()))
        })
    }

    /// Validates the configuration and creates the network's variables under `p`.
    pub fn build(&self, p: &nn::Path) -> Result<Box<dyn Classifier>> {
        self.validate()?;
        Ok(match self {
            ArchConfig::Mlp(c) => Box::new(Mlp::new(p, c)),
            ArchConfig::LeNet(c) => Box::new(LeNet::new(p, c)),
            ArchConfig::ResNet(c) => Box::new(ResNet::new(p, c)),
            ArchConfig::FaceCnn(c) => Box::new(FaceCnn::new(p, c)),
            ArchConfig::AudioCnn1d(c) => Box::new(AudioCnn1d::new(p, c)),
            ArchConfig::SpectrogramCnn(c) => Box::new(SpectrogramCnn::new(p, c)),
            ArchConfig::TorchvisionResNet(c) => Box::new(TorchvisionResNet::new(p, c)),
        })
    }
}

/// `Err` naming `field` unless `value >= 1`.
pub(crate) fn positive(field: &str, value: i64) -> Result<()> {
    if value >= 1 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{field} must be at least 1, got {value}"
        )))
    }
}

/// Panics with the validation error: constructors take configs their callers have validated
/// (or built in code); configs read from files go through [`ArchConfig::build`].
pub(crate) fn expect_valid(result: Result<()>) {
    if let Err(e) = result {
        panic!("invalid network configuration: {e}");
    }
}

/// Gives `head` fresh PyTorch-initialised weights with `classes` outputs, in place (see the
/// module documentation).
pub(crate) fn replace_linear(head: &mut nn::Linear, classes: i64) -> Result<()> {
    positive("classes", classes)?;
    let inputs = head.ws.size()[1];
    let (device, kind) = (head.ws.device(), head.ws.kind());
    // A fresh layer in a scratch store gives PyTorch's initialisation for the new shape.
    let scratch = nn::VarStore::new(device);
    let fresh = layers::linear(scratch.root() / HEAD, inputs, classes);
    tch::no_grad(|| {
        set_data_and_drop_grad(&mut head.ws, &fresh.ws.detach().to_kind(kind));
        if let (Some(bs), Some(new)) = (head.bs.as_mut(), fresh.bs.as_ref()) {
            set_data_and_drop_grad(bs, &new.detach().to_kind(kind));
        }
    });
    Ok(())
}

/// `var.data = new` as in PyTorch: every handle of the variable (the store's, the layer's)
/// sees the new data and shape. A gradient of the old shape would break the next backward
/// pass, so it becomes zeros of the new shape.
fn set_data_and_drop_grad(var: &mut Tensor, new: &Tensor) {
    var.set_data(new);
    let mut grad = var.grad();
    if grad.defined() {
        grad.set_data(&new.zeros_like());
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Helpers for the architectures' unit tests.
    use super::*;

    /// The store's variable names, sorted.
    pub fn names(vs: &nn::VarStore) -> Vec<String> {
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        names
    }

    /// `weight, bias` (linear or convolution with bias) keys under `prefix`.
    pub fn wb(prefix: &str) -> Vec<String> {
        vec![format!("{prefix}.weight"), format!("{prefix}.bias")]
    }

    /// The four tch batch-norm keys under `prefix` (PyTorch adds `num_batches_tracked`).
    pub fn bn(prefix: &str) -> Vec<String> {
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .map(|v| format!("{prefix}.{v}"))
            .collect()
    }

    /// Checks that every variable belongs to exactly one stage and that the head is last.
    pub fn check_stages(net: &dyn Classifier, vs: &nn::VarStore) {
        let stages = net.stages();
        assert_eq!(stages.last(), Some(&HEAD));
        for name in names(vs) {
            let owners: Vec<&&str> = stages.iter().filter(|s| in_stage(&name, s)).collect();
            assert_eq!(owners.len(), 1, "{name} belongs to {owners:?}");
        }
        for stage in &stages {
            assert!(
                names(vs).iter().any(|n| in_stage(n, stage)),
                "stage {stage} has no variable"
            );
        }
    }

    /// Replaces the head of `net` and checks names, shapes and that training still works.
    pub fn check_head_replacement(
        net: &mut dyn Classifier,
        vs: &nn::VarStore,
        input: &Tensor,
        classes: i64,
    ) {
        use tch::nn::OptimizerConfig;
        let before = names(vs);
        let trainable = vs.trainable_variables().len();
        // A gradient of the old shape must not break the next backward pass.
        net.forward_t(input, true).sum(tch::Kind::Float).backward();
        net.replace_head(classes).unwrap();
        assert_eq!(names(vs), before, "replacement renamed or added variables");
        assert_eq!(vs.trainable_variables().len(), trainable);
        // The head's variables, whatever their names (`head.*` in the zoo, `fc.*` in
        // torchvision's layout).
        let (weight, bias) = (&net.head().ws, net.head().bs.as_ref().unwrap());
        assert_eq!(weight.size(), [classes, net.feature_dim()]);
        assert_eq!(bias.size(), [classes]);
        assert!(weight.requires_grad());
        assert_eq!(net.classes(), classes);
        let bound = 1.0 / (net.feature_dim() as f64).sqrt();
        let max = weight.abs().max().double_value(&[]);
        assert!(
            max <= bound && max > 0.0,
            "fresh head max {max}, bound {bound}"
        );

        let mut opt = nn::Sgd::default().build(vs, 0.1).unwrap();
        let target = Tensor::zeros([input.size()[0]], tch::kind::INT64_CPU);
        let loss = net.forward_t(input, true).cross_entropy_for_logits(&target);
        opt.backward_step(&loss);
        let out = net.forward_t(input, false);
        assert_eq!(out.size(), [input.size()[0], classes]);
        assert_eq!(out.isfinite().all().int64_value(&[]), 1);
        assert!(net.replace_head(0).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_stages_keep_stage_order_and_refuse_unknown_names() {
        let stages = ["stem", "layer1", "layer2", HEAD];
        let eval = EvalStages::new(&stages, &["layer2", "stem", "stem"]).unwrap();
        assert_eq!(eval.names(), ["stem", "layer2"]);
        assert!(!eval.train("stem", true));
        assert!(eval.train("layer1", true));
        assert!(!eval.train("layer1", false));
        let err = EvalStages::new(&stages, &["layer1", "layer9"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("layer9"), "{err}");
        for stage in stages {
            assert!(err.contains(stage), "{err} does not list {stage}");
        }
        assert_eq!(
            EvalStages::new(&stages, &[]).unwrap(),
            EvalStages::default()
        );
    }

    #[test]
    fn in_stage_matches_whole_components_only() {
        assert!(in_stage("layer1.0.conv1.weight", "layer1"));
        assert!(in_stage("head", "head"));
        assert!(!in_stage("layer10.0.conv1.weight", "layer1"));
        assert!(!in_stage("fc1.weight", "fc"));
    }

    #[test]
    fn arch_config_reads_tagged_json_and_refuses_unknown_fields() {
        let cfg: ArchConfig = serde_json::from_str(
            r#"{"arch": "resnet", "width": 8, "blocks": [1, 1, 1], "classes": 3}"#,
        )
        .unwrap();
        assert_eq!(
            cfg,
            ArchConfig::ResNet(ResNetConfig {
                width: 8,
                blocks: [1, 1, 1],
                classes: 3
            })
        );
        assert_eq!(cfg.name(), "resnet");
        assert_eq!(cfg.inner_json()["width"], 8);
        let err = serde_json::from_str::<ArchConfig>(
            r#"{"arch": "resnet", "width": 8, "blocks": [1, 1, 1], "classes": 3, "depth": 2}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("depth"), "{err}");
        let err = serde_json::from_str::<ArchConfig>(r#"{"arch": "vgg"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vgg"), "{err}");
    }

    #[test]
    fn build_validates_and_names_the_bad_field() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = ArchConfig::Mlp(MlpConfig {
            inputs: 4,
            hidden: vec![3, 0],
            classes: 2,
        });
        let err = cfg.build(&vs.root()).err().unwrap().to_string();
        assert!(err.contains("hidden[1]"), "{err}");
        assert!(
            vs.variables().is_empty(),
            "nothing is created for a bad config"
        );
    }
}
