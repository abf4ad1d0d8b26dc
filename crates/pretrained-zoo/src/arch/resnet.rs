//! A small ResNet for 28x28 grey images (the CIFAR-style ResNet of He et al., 2016, with one
//! input channel).
//!
//! `stem` (3x3 convolution, batch norm, ReLU) → `layer1`, `layer2`, `layer3` (basic blocks with
//! `width`, `2 width`, `4 width` channels; the first block of `layer2` and `layer3` halves the
//! resolution with stride 2) → global average pooling → `head`. 28x28 inputs become 7x7 maps
//! before pooling; any size from 4x4 on works.
//!
//! A basic block is `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, the shortcut being
//! the identity or, where the shape changes, a strided 1x1 convolution and batch norm
//! (`shortcut.0`, `shortcut.1`). Keys follow PyTorch: `stem.conv.weight`, `stem.bn.running_mean`,
//! `layer1.0.conv1.weight`, `layer1.0.bn1.weight`, `layer2.0.shortcut.0.weight`, … The PyTorch
//! twin is `ResNet` in `python/zoo_models.py`.

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn;

use super::layers::{self, ConvSpec};
use super::{Classifier, EvalStages, HEAD, expect_valid, positive};

/// Width and depth of the ResNet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// Channels of the stem and `layer1`; `layer2` has twice as many, `layer3` four times.
    pub width: i64,
    /// Basic blocks in `layer1`, `layer2`, `layer3`.
    pub blocks: [i64; 3],
    /// Number of classes (outputs of `head`).
    pub classes: i64,
}

impl Default for ResNetConfig {
    /// Width 16, two blocks per stage (a ResNet-14), 10 classes.
    fn default() -> Self {
        ResNetConfig {
            width: 16,
            blocks: [2, 2, 2],
            classes: 10,
        }
    }
}

impl ResNetConfig {
    /// Checks width, depths and classes; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        positive("width", self.width)?;
        for (i, &b) in self.blocks.iter().enumerate() {
            positive(&format!("blocks[{i}]"), b)?;
        }
        positive("classes", self.classes)
    }
}

/// A 3x3 convolution without bias (it is followed by batch norm).
fn conv3x3(p: nn::Path, inputs: i64, outputs: i64, stride: i64) -> nn::Conv2D {
    let spec = ConvSpec {
        stride,
        padding: 1,
        bias: false,
    };
    layers::conv2d(p, inputs, outputs, 3, spec)
}

/// The stem: `stem.conv`, `stem.bn`.
#[derive(Debug)]
struct Stem {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

/// A basic block: `conv1`, `bn1`, `conv2`, `bn2` and, when the shape changes, `shortcut.0`
/// (1x1 convolution) and `shortcut.1` (batch norm).
#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    shortcut: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(p: nn::Path, inputs: i64, outputs: i64, stride: i64) -> Self {
        let shortcut = (stride != 1 || inputs != outputs).then(|| {
            let q = &p / "shortcut";
            let spec = ConvSpec {
                stride,
                padding: 0,
                bias: false,
            };
            (
                layers::conv2d(&q / "0", inputs, outputs, 1, spec),
                layers::batch_norm2d(&q / "1", outputs),
            )
        });
        BasicBlock {
            conv1: conv3x3(&p / "conv1", inputs, outputs, stride),
            bn1: layers::batch_norm2d(&p / "bn1", outputs),
            conv2: conv3x3(&p / "conv2", outputs, outputs, 1),
            bn2: layers::batch_norm2d(&p / "bn2", outputs),
            shortcut,
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = xs
            .apply(&self.conv1)
            .apply_t(&self.bn1, train)
            .relu()
            .apply(&self.conv2)
            .apply_t(&self.bn2, train);
        let short = match &self.shortcut {
            Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
            None => xs.shallow_clone(),
        };
        (out + short).relu()
    }
}

/// The network; see the module documentation.
#[derive(Debug)]
pub struct ResNet {
    config: ResNetConfig,
    stem: Stem,
    layers: [Vec<BasicBlock>; 3],
    head: nn::Linear,
    eval: EvalStages,
}

impl ResNet {
    /// The stages, input to output.
    pub const STAGES: [&'static str; 5] = ["stem", "layer1", "layer2", "layer3", HEAD];

    /// Creates the layers under `p` with PyTorch's default initialisation.
    ///
    /// # Panics
    /// If `cfg.validate()` fails.
    pub fn new(p: &nn::Path, cfg: &ResNetConfig) -> Self {
        expect_valid(cfg.validate());
        let w = cfg.width;
        let stem = Stem {
            conv: conv3x3(p / "stem" / "conv", 1, w, 1),
            bn: layers::batch_norm2d(p / "stem" / "bn", w),
        };
        let mut inputs = w;
        let layers = std::array::from_fn(|i| {
            let outputs = w << i;
            let q = p / format!("layer{}", i + 1);
            (0..cfg.blocks[i])
                .map(|b| {
                    let stride = if i > 0 && b == 0 { 2 } else { 1 };
                    let block = BasicBlock::new(&q / b, inputs, outputs, stride);
                    inputs = outputs;
                    block
                })
                .collect()
        });
        ResNet {
            config: cfg.clone(),
            stem,
            layers,
            head: layers::linear(p / HEAD, 4 * w, cfg.classes),
            eval: EvalStages::default(),
        }
    }

    /// The configuration, with the current number of classes.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }
}

impl Classifier for ResNet {
    fn stages(&self) -> Vec<&str> {
        Self::STAGES.to_vec()
    }

    fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs
            .apply(&self.stem.conv)
            .apply_t(&self.stem.bn, self.eval.train("stem", train))
            .relu();
        for (stage, blocks) in Self::STAGES[1..].iter().zip(&self.layers) {
            let train = self.eval.train(stage, train);
            for block in blocks {
                x = block.forward_t(&x, train);
            }
        }
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    fn feature_dim(&self) -> i64 {
        4 * self.config.width
    }

    head_methods!();
}

forward_through_head!(ResNet);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::test_util::*;
    use tch::nn::ModuleT;

    fn small() -> ResNetConfig {
        ResNetConfig {
            width: 4,
            blocks: [2, 1, 1],
            classes: 3,
        }
    }

    #[test]
    fn variable_names_match_pytorch_state_dict_keys() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = ResNet::new(&vs.root(), &small());
        let w = |p: &str| vec![format!("{p}.weight")];
        let mut expected = [
            w("stem.conv"),
            bn("stem.bn"),
            // layer1: same shape, identity shortcuts.
            w("layer1.0.conv1"),
            bn("layer1.0.bn1"),
            w("layer1.0.conv2"),
            bn("layer1.0.bn2"),
            w("layer1.1.conv1"),
            bn("layer1.1.bn1"),
            w("layer1.1.conv2"),
            bn("layer1.1.bn2"),
            // layer2, layer3: stride 2 and twice the channels, projection shortcuts.
            w("layer2.0.conv1"),
            bn("layer2.0.bn1"),
            w("layer2.0.conv2"),
            bn("layer2.0.bn2"),
            w("layer2.0.shortcut.0"),
            bn("layer2.0.shortcut.1"),
            w("layer3.0.conv1"),
            bn("layer3.0.bn1"),
            w("layer3.0.conv2"),
            bn("layer3.0.bn2"),
            w("layer3.0.shortcut.0"),
            bn("layer3.0.shortcut.1"),
            wb("head"),
        ]
        .concat();
        expected.sort();
        assert_eq!(names(&vs), expected);
        let vars = vs.variables();
        assert_eq!(vars["stem.conv.weight"].size(), [4, 1, 3, 3]);
        assert_eq!(vars["layer2.0.conv1.weight"].size(), [8, 4, 3, 3]);
        assert_eq!(vars["layer3.0.shortcut.0.weight"].size(), [16, 8, 1, 1]);
        assert_eq!(vars["head.weight"].size(), [3, 16]);
        // Batch-norm statistics are variables (saved and loaded) but not trained.
        assert!(!vars["stem.bn.running_mean"].requires_grad());
        assert!(vars["stem.bn.weight"].requires_grad());
        check_stages(&net, &vs);
    }

    #[test]
    fn train_mode_updates_batch_norm_statistics_and_eval_mode_does_not() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = ResNet::new(&vs.root(), &small());
        let x = Tensor::randn([4, 1, 28, 28], tch::kind::FLOAT_CPU) * 3.0 + 1.0;
        let mean = || vs.variables()["stem.bn.running_mean"].detach().copy();
        let start = mean();
        let out = tch::no_grad(|| net.forward_t(&x, false));
        assert_eq!(out.size(), [4, 3]);
        assert!(mean().equal(&start));
        let _ = tch::no_grad(|| net.forward_t(&x, true));
        assert!(!mean().equal(&start));
        assert_eq!(net.features(&x, false).size(), [4, 16]);
    }

    #[test]
    fn eval_stages_run_in_eval_mode_while_the_other_stages_train() {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = ResNet::new(&vs.root(), &small());
        // Move the running statistics away from their initial values (0 and 1), so that
        // evaluation and training mode differ in every stage.
        let x = Tensor::randn([4, 1, 28, 28], tch::kind::FLOAT_CPU) * 2.0 + 0.5;
        let _ = tch::no_grad(|| net.forward_t(&x, true));
        net.set_eval_stages(&["layer1", "stem"]).unwrap();
        assert_eq!(net.eval_stages(), ["stem", "layer1"]);

        // By hand: stem and layer1 with `train = false`, layer2 and layer3 with `true`.
        let expected = tch::no_grad(|| {
            let mut h = x.apply(&net.stem.conv).apply_t(&net.stem.bn, false).relu();
            for block in &net.layers[0] {
                h = block.forward_t(&h, false);
            }
            // The stem and layer1 part equals that of a full evaluation-mode pass.
            let mut full_eval = x.apply(&net.stem.conv).apply_t(&net.stem.bn, false).relu();
            for block in &net.layers[0] {
                full_eval = block.forward_t(&full_eval, false);
            }
            assert!(h.equal(&full_eval));
            for block in net.layers[1..].iter().flatten() {
                h = block.forward_t(&h, true);
            }
            h.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
        });
        let mean = |name: &str| vs.variables()[name].detach().copy();
        let (stem, layer2) = (
            mean("stem.bn.running_mean"),
            mean("layer2.0.bn1.running_mean"),
        );
        let features = tch::no_grad(|| net.features(&x, true));
        assert!(features.equal(&expected));
        assert!(mean("stem.bn.running_mean").equal(&stem));
        assert!(!mean("layer2.0.bn1.running_mean").equal(&layer2));
        // Differs from a pass where every stage trains.
        net.set_eval_stages(&[]).unwrap();
        assert!(net.eval_stages().is_empty());
        assert!(!tch::no_grad(|| net.features(&x, true)).equal(&expected));
    }

    #[test]
    fn head_replacement_keeps_names_and_changes_the_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = ResNet::new(&vs.root(), &small());
        let x = Tensor::randn([4, 1, 28, 28], tch::kind::FLOAT_CPU);
        check_head_replacement(&mut net, &vs, &x, 11);
    }
}
