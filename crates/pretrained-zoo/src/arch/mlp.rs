//! A multi-layer perceptron: `fc1` → ReLU → … → `fcN` → ReLU → `head`.
//!
//! The input is flattened, so `[N, 1, 28, 28]` images work as `[N, 784]` vectors. With no
//! hidden layer the network is a linear classifier on the input (its features are the input).
//! The PyTorch twin is `Mlp` in `python/zoo_models.py`.

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn;

use super::{Classifier, EvalStages, HEAD, expect_valid, layers, positive};

/// Widths of the perceptron.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Input width (784 for 28x28 images).
    pub inputs: i64,
    /// Widths of the hidden layers `fc1`, `fc2`, … (may be empty).
    pub hidden: Vec<i64>,
    /// Number of classes (outputs of `head`).
    pub classes: i64,
}

impl Default for MlpConfig {
    /// 784 → 256 → 128 → 10.
    fn default() -> Self {
        MlpConfig {
            inputs: 784,
            hidden: vec![256, 128],
            classes: 10,
        }
    }
}

impl MlpConfig {
    /// Checks every width; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        positive("inputs", self.inputs)?;
        for (i, &h) in self.hidden.iter().enumerate() {
            positive(&format!("hidden[{i}]"), h)?;
        }
        positive("classes", self.classes)
    }
}

/// The perceptron; see the module documentation.
#[derive(Debug)]
pub struct Mlp {
    config: MlpConfig,
    stages: Vec<String>,
    hidden: Vec<nn::Linear>,
    head: nn::Linear,
    /// Kept and checked only: no layer depends on the `train` flag.
    eval: EvalStages,
}

impl Mlp {
    /// Creates `fc1` … `fcN` and `head` under `p` with PyTorch's default initialisation.
    ///
    /// # Panics
    /// If `cfg.validate()` fails.
    pub fn new(p: &nn::Path, cfg: &MlpConfig) -> Self {
        expect_valid(cfg.validate());
        let mut stages = Vec::new();
        let mut hidden = Vec::new();
        let mut width = cfg.inputs;
        for (i, &h) in cfg.hidden.iter().enumerate() {
            let name = format!("fc{}", i + 1);
            hidden.push(layers::linear(p / name.as_str(), width, h));
            stages.push(name);
            width = h;
        }
        stages.push(HEAD.to_owned());
        Mlp {
            config: cfg.clone(),
            stages,
            hidden,
            head: layers::linear(p / HEAD, width, cfg.classes),
            eval: EvalStages::default(),
        }
    }

    /// The configuration, with the current number of classes.
    pub fn config(&self) -> &MlpConfig {
        &self.config
    }
}

impl Classifier for Mlp {
    fn stages(&self) -> Vec<&str> {
        self.stages.iter().map(String::as_str).collect()
    }

    fn features(&self, xs: &Tensor, _train: bool) -> Tensor {
        self.hidden
            .iter()
            .fold(xs.flatten(1, -1), |x, fc| x.apply(fc).relu())
    }

    fn feature_dim(&self) -> i64 {
        self.config
            .hidden
            .last()
            .copied()
            .unwrap_or(self.config.inputs)
    }

    head_methods!();
}

forward_through_head!(Mlp);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::test_util::*;
    use tch::nn::ModuleT;

    fn small() -> MlpConfig {
        MlpConfig {
            inputs: 12,
            hidden: vec![8, 6],
            classes: 3,
        }
    }

    #[test]
    fn variable_names_match_pytorch_state_dict_keys() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Mlp::new(&vs.root(), &small());
        let mut expected = [wb("fc1"), wb("fc2"), wb("head")].concat();
        expected.sort();
        assert_eq!(names(&vs), expected);
        assert_eq!(net.stages(), ["fc1", "fc2", "head"]);
        assert_eq!(vs.variables()["fc1.weight"].size(), [8, 12]);
        assert_eq!(net.feature_dim(), 6);
        check_stages(&net, &vs);
        let x = Tensor::randn([5, 3, 4], tch::kind::FLOAT_CPU);
        assert_eq!(net.features(&x, false).size(), [5, 6]);
        assert_eq!(net.forward_t(&x, false).size(), [5, 3]);
    }

    #[test]
    fn no_hidden_layer_is_a_linear_classifier() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = MlpConfig {
            hidden: vec![],
            ..small()
        };
        let net = Mlp::new(&vs.root(), &cfg);
        assert_eq!(names(&vs), ["head.bias", "head.weight"]);
        assert_eq!(net.stages(), ["head"]);
        assert_eq!(net.feature_dim(), 12);
    }

    #[test]
    fn head_replacement_keeps_names_and_changes_the_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = Mlp::new(&vs.root(), &small());
        let x = Tensor::randn([4, 12], tch::kind::FLOAT_CPU);
        check_head_replacement(&mut net, &vs, &x, 7);
        assert_eq!(net.config().classes, 7);
    }
}
