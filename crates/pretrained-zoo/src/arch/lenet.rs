//! A LeNet-style CNN for 28x28 grey images.
//!
//! Layers, in order (each name is the PyTorch `state_dict` prefix of its weights):
//! `conv1` (5x5, padding 2) → ReLU → 2x2 max-pool → `conv2` (5x5) → ReLU → 2x2 max-pool →
//! flatten → `fc1` → ReLU → `fc2` → ReLU → `head`. The backbone (features) is everything
//! before `head`. The equivalent PyTorch module is in `python/zoo_models.py`.

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ModuleT};

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

/// The network; see the module documentation for its layers.
#[derive(Debug)]
pub struct LeNet {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
    head: nn::Linear,
}

impl LeNet {
    /// The names of the layers, input to output.
    pub const LAYERS: [&'static str; 5] = ["conv1", "conv2", "fc1", "fc2", "head"];

    /// Creates the layers under `p` with PyTorch's default initialisation.
    pub fn new(p: &nn::Path, cfg: &LeNetConfig) -> Self {
        let [c1, c2] = cfg.channels;
        let [h1, h2] = cfg.hidden;
        let padded = nn::ConvConfig {
            padding: 2,
            ..Default::default()
        };
        LeNet {
            conv1: nn::conv2d(p / "conv1", 1, c1, 5, padded),
            conv2: nn::conv2d(p / "conv2", c1, c2, 5, Default::default()),
            fc1: nn::linear(p / "fc1", c2 * 5 * 5, h1, Default::default()),
            fc2: nn::linear(p / "fc2", h1, h2, Default::default()),
            head: nn::linear(p / "head", h2, cfg.classes, Default::default()),
        }
    }

    /// The backbone's output (the input of `head`), `[N, hidden[1]]`.
    pub fn features(&self, xs: &Tensor) -> Tensor {
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
}

impl ModuleT for LeNet {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.features(xs).apply(&self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_match_pytorch_state_dict_keys() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _net = LeNet::new(&vs.root(), &LeNetConfig::default());
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        let mut expected: Vec<String> = LeNet::LAYERS
            .iter()
            .flat_map(|l| [format!("{l}.bias"), format!("{l}.weight")])
            .collect();
        expected.sort();
        assert_eq!(names, expected);
        let vars = vs.variables();
        assert_eq!(vars["fc1.weight"].size(), [120, 16 * 5 * 5]);
        assert_eq!(vars["head.weight"].size(), [10, 84]);
    }
}
