//! A LeNet-style CNN for 28x28 grey images.
//!
//! Stages, in order (each name is the PyTorch `state_dict` prefix of its weights):
//! `conv1` (5x5, padding 2) → ReLU → 2x2 max-pool → `conv2` (5x5) → ReLU → 2x2 max-pool →
//! flatten → `fc1` → ReLU → `fc2` → ReLU → `head`. The backbone (features) is everything
//! before `head`. The PyTorch twin is `LeNet` in `python/zoo_models.py`.

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn;

use super::layers::{self, ConvSpec};
use super::{Classifier, EvalStages, HEAD, expect_valid, positive};

/// Widths of the LeNet-style CNN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeNetConfig {
    /// Output channels of `conv1` and `conv2`.
    pub channels: [i64; 2],
    /// Widths of `fc1` and `fc2`.
    pub hidden: [i64; 2],
    /// Number of classes (outputs of `head`).
    pub classes: i64,
}

impl Default for LeNetConfig {
    /// The classic LeNet-5 widths (6, 16; 120, 84) for 10 classes.
    fn default() -> Self {
        LeNetConfig {
            channels: [6, 16],
            hidden: [120, 84],
            classes: 10,
        }
    }
}

impl LeNetConfig {
    /// Checks every width; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        for (i, &c) in self.channels.iter().enumerate() {
            positive(&format!("channels[{i}]"), c)?;
        }
        for (i, &h) in self.hidden.iter().enumerate() {
            positive(&format!("hidden[{i}]"), h)?;
        }
        positive("classes", self.classes)
    }
}

/// The network; see the module documentation for its layers.
#[derive(Debug)]
pub struct LeNet {
    config: LeNetConfig,
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
    head: nn::Linear,
    /// Kept and checked only: no layer depends on the `train` flag.
    eval: EvalStages,
}

impl LeNet {
    /// The stages (here single layers), input to output.
    pub const STAGES: [&'static str; 5] = ["conv1", "conv2", "fc1", "fc2", HEAD];

    /// Creates the layers under `p` with PyTorch's default initialisation.
    ///
    /// # Panics
    /// If `cfg.validate()` fails.
    pub fn new(p: &nn::Path, cfg: &LeNetConfig) -> Self {
        expect_valid(cfg.validate());
        let [c1, c2] = cfg.channels;
        let [h1, h2] = cfg.hidden;
        let conv = |padding| ConvSpec {
            stride: 1,
            padding,
            bias: true,
        };
        LeNet {
            config: cfg.clone(),
            conv1: layers::conv2d(p / "conv1", 1, c1, 5, conv(2)),
            conv2: layers::conv2d(p / "conv2", c1, c2, 5, conv(0)),
            fc1: layers::linear(p / "fc1", c2 * 5 * 5, h1),
            fc2: layers::linear(p / "fc2", h1, h2),
            head: layers::linear(p / HEAD, h2, cfg.classes),
            eval: EvalStages::default(),
        }
    }

    /// The configuration, with the current number of classes.
    pub fn config(&self) -> &LeNetConfig {
        &self.config
    }
}

impl Classifier for LeNet {
    fn stages(&self) -> Vec<&str> {
        Self::STAGES.to_vec()
    }

    /// `[N, hidden[1]]`; the network has no batch norm, so `train` changes nothing.
    fn features(&self, xs: &Tensor, _train: bool) -> Tensor {
        xs.apply(&self.conv1)
            .relu()
            .max_pool2d_default(2)
            .apply(&self.conv2)
            .relu()
            .max_pool2d_default(2)
            .flatten(1, -1)
            .apply(&self.fc1)
            .relu()
            .apply(&self.fc2)
            .relu()
    }

    fn feature_dim(&self) -> i64 {
        self.config.hidden[1]
    }

    head_methods!();
}

forward_through_head!(LeNet);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::test_util::*;

    #[test]
    fn variable_names_match_pytorch_state_dict_keys() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = LeNet::new(&vs.root(), &LeNetConfig::default());
        let mut expected: Vec<String> = LeNet::STAGES.iter().flat_map(|l| wb(l)).collect();
        expected.sort();
        assert_eq!(names(&vs), expected);
        let vars = vs.variables();
        assert_eq!(vars["conv1.weight"].size(), [6, 1, 5, 5]);
        assert_eq!(vars["fc1.weight"].size(), [120, 16 * 5 * 5]);
        assert_eq!(vars["head.weight"].size(), [10, 84]);
        check_stages(&net, &vs);
    }

    #[test]
    fn head_replacement_keeps_names_and_changes_the_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = LeNet::new(&vs.root(), &LeNetConfig::default());
        let x = Tensor::randn([3, 1, 28, 28], tch::kind::FLOAT_CPU);
        assert_eq!(net.features(&x, false).size(), [3, 84]);
        check_head_replacement(&mut net, &vs, &x, 4);
    }

    #[test]
    #[allow(clippy::field_reassign_with_default)]
    fn an_invalid_config_is_refused_with_the_field_name() {
        let mut cfg = LeNetConfig::default();
        cfg.hidden[1] = 0;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("hidden[1]"), "{err}");
    }
}
