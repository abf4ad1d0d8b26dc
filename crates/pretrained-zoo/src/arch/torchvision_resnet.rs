//! torchvision's ResNet-18, ResNet-34 and ResNet-50 (He et al., 2016; torchvision's "v1.5",
//! with the stride of a bottleneck on its 3x3 convolution), with the same `state_dict`, the same
//! forward pass and the same initialisation as `torchvision.models.resnet18/34/50`.
//!
//! `conv1` (7x7, stride 2) → `bn1` → ReLU → 3x3 max-pool (stride 2) → `layer1` … `layer4`
//! (`width`, `2 width`, `4 width`, `8 width` planes; the first block of `layer2`–`layer4`
//! halves the resolution) → global average pooling → `fc`. Keys are torchvision's:
//! `conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`, `layer2.0.downsample.0.weight`,
//! `layer2.0.downsample.1.running_var`, …, `fc.weight`, `fc.bias` (plus the batch norms'
//! `num_batches_tracked`, which `core_tensor::checkpoint` writes and sets aside).
//!
//! **Stages** for every strategy: `stem` (= `conv1` and `bn1`), `layer1` … `layer4`, `head`
//! (= `fc`): "the first two stages" of a ResNet-18 are its stem and `layer1`.
//!
//! **Beyond torchvision's defaults**, each a field of [`TorchvisionResNetConfig`]:
//! `in_channels` (1 for grey images: `conv1` takes that many channels), `classes`, `width`
//! (64 is torchvision's; 16 is a quarter-width network, about 16x cheaper), and `small_input`,
//! the stem of CIFAR ResNets for 32x32 images: `conv1` a 3x3 convolution with stride 1 and
//! padding 1, and no max-pool (a 32x32 image reaches `layer4` as 4x4 maps instead of 1x1).
//! With `width = 64`, `small_input = false`, 3 channels, the network equals torchvision's
//! (`tests/torchvision.rs` checks outputs, gradients and batch-norm statistics both ways);
//! other settings equal torchvision's `ResNet` class built with the same changes
//! (`python/zoo_models.py`, `TorchvisionResNet`).
//!
//! ```no_run
//! use pretrained_zoo::arch::{Classifier, TorchvisionResNet, TorchvisionResNetConfig};
//! use tch::nn::ModuleT;
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let cfg = TorchvisionResNetConfig::resnet18(10).small_input().width(16);
//! let net = TorchvisionResNet::new(&vs.root(), &cfg);
//! let x = tch::Tensor::zeros([2, 3, 32, 32], tch::kind::FLOAT_CPU);
//! assert_eq!(net.forward_t(&x, false).size(), [2, 10]);
//! assert_eq!(net.stage_members("stem"), ["conv1", "bn1"]);
//! ```

use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Init};

use super::layers;
use super::{Classifier, EvalStages, HEAD, expect_valid, positive};

/// Which torchvision ResNet: the block type and the blocks per layer follow from the depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum ResNetDepth {
    /// ResNet-18: basic blocks, `[2, 2, 2, 2]`.
    D18,
    /// ResNet-34: basic blocks, `[3, 4, 6, 3]`.
    D34,
    /// ResNet-50: bottleneck blocks, `[3, 4, 6, 3]`.
    D50,
}

impl ResNetDepth {
    /// Blocks in `layer1` … `layer4`.
    pub fn blocks(self) -> [i64; 4] {
        match self {
            ResNetDepth::D18 => [2, 2, 2, 2],
            ResNetDepth::D34 | ResNetDepth::D50 => [3, 4, 6, 3],
        }
    }

    /// Whether the blocks are bottlenecks (1x1, 3x3, 1x1 with 4x expansion).
    pub fn bottleneck(self) -> bool {
        self == ResNetDepth::D50
    }

    /// Output channels of a block over its planes: 4 for bottlenecks, 1 for basic blocks.
    pub fn expansion(self) -> i64 {
        if self.bottleneck() { 4 } else { 1 }
    }
}

impl TryFrom<u32> for ResNetDepth {
    type Error = String;

    fn try_from(depth: u32) -> std::result::Result<Self, String> {
        match depth {
            18 => Ok(ResNetDepth::D18),
            34 => Ok(ResNetDepth::D34),
            50 => Ok(ResNetDepth::D50),
            other => Err(format!(
                "depth {other} is not a torchvision ResNet the zoo builds: choose 18, 34 or 50"
            )),
        }
    }
}

impl From<ResNetDepth> for u32 {
    fn from(depth: ResNetDepth) -> u32 {
        match depth {
            ResNetDepth::D18 => 18,
            ResNetDepth::D34 => 34,
            ResNetDepth::D50 => 50,
        }
    }
}

/// A torchvision ResNet: depth, input channels, classes, width and stem.
///
/// In a TOML config: `model = { arch = "torchvision_resnet", depth = 18, classes = 10,
/// small_input = true, width = 16 }` (`in_channels`, `width` and `small_input` may be left
/// out: 3, 64 and `false`, torchvision's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchvisionResNetConfig {
    /// 18, 34 or 50.
    pub depth: ResNetDepth,
    /// Channels of the input image (torchvision: 3).
    #[serde(default = "three")]
    pub in_channels: i64,
    /// Outputs of `fc` (torchvision's ImageNet weights: 1000).
    pub classes: i64,
    /// Planes of `layer1`; `layer2`–`layer4` have 2, 4, 8 times as many (torchvision: 64).
    #[serde(default = "sixty_four")]
    pub width: i64,
    /// The CIFAR stem: `conv1` 3x3 with stride 1 and no max-pool (torchvision: `false`).
    #[serde(default)]
    pub small_input: bool,
}

fn three() -> i64 {
    3
}

fn sixty_four() -> i64 {
    64
}

impl TorchvisionResNetConfig {
    /// torchvision's network of this depth with `classes` outputs.
    pub fn new(depth: ResNetDepth, classes: i64) -> Self {
        TorchvisionResNetConfig {
            depth,
            in_channels: 3,
            classes,
            width: 64,
            small_input: false,
        }
    }

    /// `torchvision.models.resnet18(num_classes=classes)`.
    pub fn resnet18(classes: i64) -> Self {
        Self::new(ResNetDepth::D18, classes)
    }

    /// `torchvision.models.resnet34(num_classes=classes)`.
    pub fn resnet34(classes: i64) -> Self {
        Self::new(ResNetDepth::D34, classes)
    }

    /// `torchvision.models.resnet50(num_classes=classes)`.
    pub fn resnet50(classes: i64) -> Self {
        Self::new(ResNetDepth::D50, classes)
    }

    /// With the CIFAR stem (3x3 `conv1` with stride 1, no max-pool), for 32x32 images.
    pub fn small_input(mut self) -> Self {
        self.small_input = true;
        self
    }

    /// With `width` planes in `layer1` (64 is torchvision's).
    pub fn width(mut self, width: i64) -> Self {
        self.width = width;
        self
    }

    /// With `channels` input channels (3 is torchvision's).
    pub fn in_channels(mut self, channels: i64) -> Self {
        self.in_channels = channels;
        self
    }

    /// Checks channels, classes and width; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        positive("in_channels", self.in_channels)?;
        positive("classes", self.classes)?;
        positive("width", self.width)
    }

    /// The width of the features, the input of `fc`: `8 width` times the block expansion
    /// (512 for ResNet-18/34, 2048 for ResNet-50 at width 64).
    pub fn feature_dim(&self) -> i64 {
        8 * self.width * self.depth.expansion()
    }

    /// The torchvision model name (`resnet18`, …) of this depth.
    pub fn torchvision_name(&self) -> &'static str {
        match self.depth {
            ResNetDepth::D18 => "resnet18",
            ResNetDepth::D34 => "resnet34",
            ResNetDepth::D50 => "resnet50",
        }
    }

    /// The configuration of a torchvision model name (`resnet18`, `resnet34`, `resnet50`)
    /// with `classes` outputs.
    pub fn from_torchvision_name(name: &str, classes: i64) -> Result<Self> {
        let depth = match name {
            "resnet18" => ResNetDepth::D18,
            "resnet34" => ResNetDepth::D34,
            "resnet50" => ResNetDepth::D50,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown torchvision architecture {other:?}: choose resnet18, resnet34 or \
                     resnet50"
                )));
            }
        };
        Ok(Self::new(depth, classes))
    }

    /// The configuration of the torchvision model `name` (`resnet18`, …) whose `state_dict`
    /// has these shapes: input channels and width from `conv1.weight`
    /// (`[width, in_channels, k, k]`, the CIFAR stem when `k` is 3), classes from `fc.weight`.
    /// A checkpoint without those keys is an error naming them; any other mismatch is left to
    /// the strict load that follows.
    pub fn infer(
        name: &str,
        shapes: &std::collections::BTreeMap<String, Vec<i64>>,
    ) -> Result<Self> {
        let get = |key: &str, dims: usize| -> Result<&[i64]> {
            match shapes.get(key) {
                Some(s) if s.len() == dims => Ok(s.as_slice()),
                Some(s) => Err(Error::InvalidArgument(format!(
                    "the checkpoint's {key} has shape {s:?}; a {name} has {dims} dimensions there"
                ))),
                None => Err(Error::InvalidArgument(format!(
                    "the checkpoint has no {key}: it is not a torchvision {name} state_dict"
                ))),
            }
        };
        let conv1 = get("conv1.weight", 4)?;
        let fc = get("fc.weight", 2)?;
        let cfg = Self::from_torchvision_name(name, fc[0])?
            .width(conv1[0])
            .in_channels(conv1[1]);
        Ok(if conv1[2] == 3 {
            cfg.small_input()
        } else {
            cfg
        })
    }
}

/// A convolution without bias, initialised as torchvision's ResNet does:
/// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, a normal with standard deviation
/// `sqrt(2 / (outputs * kernel²))`.
fn conv(
    p: nn::Path,
    inputs: i64,
    outputs: i64,
    kernel: i64,
    stride: i64,
    padding: i64,
) -> nn::Conv2D {
    let fan_out = (outputs * kernel * kernel) as f64;
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: (2.0 / fan_out).sqrt(),
        },
        ..Default::default()
    };
    nn::conv2d(p, inputs, outputs, kernel, cfg)
}

/// A residual block: basic (`conv1` 3x3, `conv2` 3x3) or bottleneck (`conv1` 1x1, `conv2` 3x3
/// with the stride, `conv3` 1x1), each convolution followed by its batch norm, and a
/// `downsample` (1x1 convolution with the stride, batch norm) where the shape changes.
#[derive(Debug)]
struct Block {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl Block {
    fn new(p: nn::Path, inputs: i64, planes: i64, stride: i64, bottleneck: bool) -> Self {
        let expansion = if bottleneck { 4 } else { 1 };
        let outputs = planes * expansion;
        // (inputs, outputs, kernel, stride, padding) of conv1, conv2[, conv3].
        let specs: Vec<(i64, i64, i64, i64, i64)> = if bottleneck {
            vec![
                (inputs, planes, 1, 1, 0),
                (planes, planes, 3, stride, 1),
                (planes, outputs, 1, 1, 0),
            ]
        } else {
            vec![(inputs, planes, 3, stride, 1), (planes, planes, 3, 1, 1)]
        };
        let convs = specs
            .into_iter()
            .enumerate()
            .map(|(i, (cin, cout, k, s, pad))| {
                (
                    conv(&p / format!("conv{}", i + 1), cin, cout, k, s, pad),
                    layers::batch_norm2d(&p / format!("bn{}", i + 1), cout),
                )
            })
            .collect();
        let downsample = (stride != 1 || inputs != outputs).then(|| {
            let q = &p / "downsample";
            (
                conv(&q / "0", inputs, outputs, 1, stride, 0),
                layers::batch_norm2d(&q / "1", outputs),
            )
        });
        Block { convs, downsample }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let last = self.convs.len() - 1;
        let mut out = xs.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            out = out.apply(conv).apply_t(bn, train);
            if i < last {
                out = out.relu();
            }
        }
        let identity = match &self.downsample {
            Some((conv, bn)) => xs.apply(conv).apply_t(bn, train),
            None => xs.shallow_clone(),
        };
        (out + identity).relu()
    }
}

/// The network; see the module documentation.
#[derive(Debug)]
pub struct TorchvisionResNet {
    config: TorchvisionResNetConfig,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: [Vec<Block>; 4],
    head: nn::Linear,
    eval: EvalStages,
}

impl TorchvisionResNet {
    /// The stages, input to output.
    pub const STAGES: [&'static str; 6] = ["stem", "layer1", "layer2", "layer3", "layer4", HEAD];

    /// Creates the layers under `p` (at a store's root, the keys are torchvision's) with
    /// torchvision's initialisation: convolutions Kaiming-normal (fan out, ReLU), batch norms
    /// weight 1 and bias 0, `fc` PyTorch's default for `nn.Linear`.
    ///
    /// # Panics
    /// If `cfg.validate()` fails (configs read from files go through `ArchConfig::build`,
    /// which returns the error instead).
    pub fn new(p: &nn::Path, cfg: &TorchvisionResNetConfig) -> Self {
        expect_valid(cfg.validate());
        let w = cfg.width;
        let conv1 = if cfg.small_input {
            conv(p / "conv1", cfg.in_channels, w, 3, 1, 1)
        } else {
            conv(p / "conv1", cfg.in_channels, w, 7, 2, 3)
        };
        let bn1 = layers::batch_norm2d(p / "bn1", w);
        let bottleneck = cfg.depth.bottleneck();
        let blocks = cfg.depth.blocks();
        let mut inputs = w;
        let layers = std::array::from_fn(|i| {
            let planes = w << i;
            let q = p / format!("layer{}", i + 1);
            (0..blocks[i])
                .map(|b| {
                    let stride = if i > 0 && b == 0 { 2 } else { 1 };
                    let block = Block::new(&q / b, inputs, planes, stride, bottleneck);
                    inputs = planes * cfg.depth.expansion();
                    block
                })
                .collect()
        });
        TorchvisionResNet {
            config: cfg.clone(),
            conv1,
            bn1,
            layers,
            head: layers::linear(p / "fc", cfg.feature_dim(), cfg.classes),
            eval: EvalStages::default(),
        }
    }

    /// The configuration, with the current number of classes.
    pub fn config(&self) -> &TorchvisionResNetConfig {
        &self.config
    }
}

impl Classifier for TorchvisionResNet {
    fn stages(&self) -> Vec<&str> {
        Self::STAGES.to_vec()
    }

    fn stage_members(&self, stage: &str) -> Vec<String> {
        match stage {
            "stem" => vec!["conv1".into(), "bn1".into()],
            HEAD => vec!["fc".into()],
            other => vec![other.into()],
        }
    }

    fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs
            .apply(&self.conv1)
            .apply_t(&self.bn1, self.eval.train("stem", train))
            .relu();
        if !self.config.small_input {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for (stage, blocks) in Self::STAGES[1..].iter().zip(&self.layers) {
            let train = self.eval.train(stage, train);
            for block in blocks {
                x = block.forward_t(&x, train);
            }
        }
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }

    fn feature_dim(&self) -> i64 {
        self.config.feature_dim()
    }

    head_methods!();
}

forward_through_head!(TorchvisionResNet);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::check_stage_membership;
    use crate::arch::test_util::*;
    use tch::nn::ModuleT;

    fn count(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(Tensor::numel)
            .sum::<usize>() as i64
    }

    #[test]
    fn parameter_counts_equal_torchvision() {
        // torchvision: sum(p.numel() for p in resnet18().parameters()) and so on.
        for (cfg, expected) in [
            (TorchvisionResNetConfig::resnet18(1000), 11_689_512),
            (TorchvisionResNetConfig::resnet34(1000), 21_797_672),
            (TorchvisionResNetConfig::resnet50(1000), 25_557_032),
        ] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let net = TorchvisionResNet::new(&vs.root(), &cfg);
            assert_eq!(count(&vs), expected, "{cfg:?}");
            check_stage_membership(&net, &vs).unwrap();
        }
    }

    #[test]
    fn keys_and_shapes_are_torchvisions() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _net = TorchvisionResNet::new(&vs.root(), &TorchvisionResNetConfig::resnet50(7));
        let vars = vs.variables();
        assert_eq!(vars["conv1.weight"].size(), [64, 3, 7, 7]);
        assert_eq!(vars["layer1.0.conv3.weight"].size(), [256, 64, 1, 1]);
        assert_eq!(vars["layer1.0.downsample.0.weight"].size(), [256, 64, 1, 1]);
        assert_eq!(vars["layer2.0.conv2.weight"].size(), [128, 128, 3, 3]);
        assert_eq!(vars["layer4.2.bn3.running_var"].size(), [2048]);
        assert_eq!(vars["fc.weight"].size(), [7, 2048]);
        assert!(!vars.contains_key("layer1.1.downsample.0.weight"));
        assert!(!vars["bn1.running_mean"].requires_grad());
        let names = names(&vs);
        assert!(names.iter().all(|n| !n.starts_with("head")), "{names:?}");
    }

    #[test]
    fn small_input_stem_keeps_32x32_resolution_into_layer1() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = TorchvisionResNetConfig::resnet18(10)
            .small_input()
            .width(8)
            .in_channels(1);
        let mut net = TorchvisionResNet::new(&vs.root(), &cfg);
        assert_eq!(vs.variables()["conv1.weight"].size(), [8, 1, 3, 3]);
        let x = Tensor::randn([2, 1, 32, 32], tch::kind::FLOAT_CPU);
        let stem = x.apply(&net.conv1);
        assert_eq!(stem.size(), [2, 8, 32, 32]);
        assert_eq!(net.features(&x, false).size(), [2, 64]);
        check_stage_membership(&net, &vs).unwrap();
        check_head_replacement(&mut net, &vs, &x, 4);
        assert_eq!(vs.variables()["fc.weight"].size(), [4, 64]);
    }

    #[test]
    fn eval_stages_freeze_the_stems_batch_norm_statistics() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = TorchvisionResNetConfig::resnet18(3).small_input().width(4);
        let mut net = TorchvisionResNet::new(&vs.root(), &cfg);
        net.set_eval_stages(&["stem"]).unwrap();
        let x = Tensor::randn([4, 3, 16, 16], tch::kind::FLOAT_CPU) * 2.0 + 1.0;
        let mean = |n: &str| vs.variables()[n].detach().copy();
        let (stem, l1) = (mean("bn1.running_mean"), mean("layer1.0.bn1.running_mean"));
        let _ = tch::no_grad(|| net.forward_t(&x, true));
        assert!(mean("bn1.running_mean").equal(&stem));
        assert!(!mean("layer1.0.bn1.running_mean").equal(&l1));
    }

    #[test]
    fn depth_reads_as_a_number_and_refuses_others() {
        let cfg: TorchvisionResNetConfig =
            serde_json::from_str(r#"{"depth": 34, "classes": 5}"#).unwrap();
        assert_eq!(cfg, TorchvisionResNetConfig::resnet34(5));
        assert_eq!(serde_json::to_value(&cfg).unwrap()["depth"], 34);
        let err =
            serde_json::from_str::<TorchvisionResNetConfig>(r#"{"depth": 101, "classes": 5}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("18, 34 or 50"), "{err}");
        assert!(TorchvisionResNetConfig::from_torchvision_name("resnet152", 3).is_err());
    }
}
