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

pub mod audio;
pub mod face;
pub mod layers;
pub mod lenet;
pub mod mlp;
pub mod resnet;
pub mod spectrogram;

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

/// The name of every network's last stage, the linear classifier on the features.
pub const HEAD: &str = "head";

/// A network made of a backbone (ordered stages that compute features) and a linear head.
///
/// `forward_t(xs, train)` is `head(features(xs, train))`. `train` matters for batch norm:
/// `true` normalises with batch statistics and updates the running ones, `false` uses the
/// running statistics and changes nothing.
pub trait Classifier: ModuleT {
    /// Stage names, input to output; the last one is [`HEAD`]. A variable belongs to a stage
    /// when [`in_stage`] says so.
    fn stages(&self) -> Vec<&str>;

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
}

/// Whether the variable `name` belongs to `stage` (equal to it, or below it: `stage.`...).
pub fn in_stage(name: &str, stage: &str) -> bool {
    name.strip_prefix(stage)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
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
        };
        value.expect("configs are plain data and always serialise")
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
        let vars = vs.variables();
        assert_eq!(vars["head.weight"].size(), [classes, net.feature_dim()]);
        assert_eq!(vars["head.bias"].size(), [classes]);
        assert!(vars["head.weight"].requires_grad());
        assert_eq!(net.classes(), classes);
        let bound = 1.0 / (net.feature_dim() as f64).sqrt();
        let max = vars["head.weight"].abs().max().double_value(&[]);
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
