//! A 1-D CNN for raw waveforms `[N, 1, samples]` (after the M5 network of Dai et al., 2017).
//!
//! `block1`: a wide strided convolution (`first_kernel` samples, stride `first_stride`) that
//! learns a filter bank; `block2` … `blockN`: convolutions of `kernel` samples (padding
//! `kernel / 2`); each block is convolution (`blockK.conv`, no bias), batch norm (`blockK.bn`),
//! ReLU and max pooling by `pool`. Then adaptive average pooling over time, so clips of any
//! length work (long enough to survive the pooling), → `head`. The PyTorch twin is
//! `AudioCnn1d` in `python/zoo_models.py`.

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ModuleT};

use super::face::validate_blocks;
use super::layers::{self, ConvBn, ConvSpec};
use super::{Classifier, EvalStages, HEAD, expect_valid, positive};

/// Shape of the waveform CNN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioCnn1dConfig {
    /// Output channels of `block1`, `block2`, … (at least one block).
    pub channels: Vec<i64>,
    /// Kernel of `block1`, in samples.
    pub first_kernel: i64,
    /// Stride of `block1`.
    pub first_stride: i64,
    /// Kernel of the other blocks.
    pub kernel: i64,
    /// Max-pooling window and stride after every block.
    pub pool: i64,
    /// Number of classes (outputs of `head`).
    pub classes: i64,
}

impl Default for AudioCnn1dConfig {
    /// M5: 32, 32, 64, 64 channels, an 80-sample first kernel with stride 4, kernels of 3,
    /// pooling by 4; 10 classes (spoken digits at 8 kHz).
    fn default() -> Self {
        AudioCnn1dConfig {
            channels: vec![32, 32, 64, 64],
            first_kernel: 80,
            first_stride: 4,
            kernel: 3,
            pool: 4,
            classes: 10,
        }
    }
}

impl AudioCnn1dConfig {
    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        validate_blocks(&self.channels)?;
        positive("first_kernel", self.first_kernel)?;
        positive("first_stride", self.first_stride)?;
        positive("kernel", self.kernel)?;
        positive("pool", self.pool)?;
        positive("classes", self.classes)
    }
}

/// The network; see the module documentation.
#[derive(Debug)]
pub struct AudioCnn1d {
    config: AudioCnn1dConfig,
    stages: Vec<String>,
    blocks: Vec<ConvBn<nn::Conv1D>>,
    head: nn::Linear,
    eval: EvalStages,
}

impl AudioCnn1d {
    /// Creates the layers under `p` with PyTorch's default initialisation.
    ///
    /// # Panics
    /// If `cfg.validate()` fails.
    pub fn new(p: &nn::Path, cfg: &AudioCnn1dConfig) -> Self {
        expect_valid(cfg.validate());
        let mut stages = Vec::new();
        let mut blocks = Vec::new();
        let mut inputs = 1;
        for (i, &c) in cfg.channels.iter().enumerate() {
            let name = format!("block{}", i + 1);
            let (kernel, spec) = if i == 0 {
                let spec = ConvSpec {
                    stride: cfg.first_stride,
                    padding: 0,
                    bias: false,
                };
                (cfg.first_kernel, spec)
            } else {
                (cfg.kernel, ConvSpec::same_no_bias(cfg.kernel / 2))
            };
            blocks.push(ConvBn::new_1d(p / name.as_str(), inputs, c, kernel, spec));
            stages.push(name);
            inputs = c;
        }
        stages.push(HEAD.to_owned());
        AudioCnn1d {
            config: cfg.clone(),
            stages,
            blocks,
            head: layers::linear(p / HEAD, inputs, cfg.classes),
            eval: EvalStages::default(),
        }
    }

    /// The configuration, with the current number of classes.
    pub fn config(&self) -> &AudioCnn1dConfig {
        &self.config
    }
}

impl Classifier for AudioCnn1d {
    fn stages(&self) -> Vec<&str> {
        self.stages.iter().map(String::as_str).collect()
    }

    fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        let pool = self.config.pool;
        self.blocks
            .iter()
            .zip(&self.stages)
            .fold(xs.shallow_clone(), |x, (b, stage)| {
                b.forward_t(&x, self.eval.train(stage, train)).max_pool1d(
                    [pool],
                    [pool],
                    [0],
                    [1],
                    false,
                )
            })
            .adaptive_avg_pool1d([1])
            .flatten(1, -1)
    }

    fn feature_dim(&self) -> i64 {
        *self
            .config
            .channels
            .last()
            .expect("validated: at least one block")
    }

    head_methods!();
}

forward_through_head!(AudioCnn1d);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::test_util::*;

    fn small() -> AudioCnn1dConfig {
        AudioCnn1dConfig {
            channels: vec![4, 8],
            first_kernel: 16,
            first_stride: 4,
            kernel: 3,
            pool: 4,
            classes: 10,
        }
    }

    #[test]
    fn variable_names_match_pytorch_state_dict_keys() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = AudioCnn1d::new(&vs.root(), &small());
        let w = |p: &str| vec![format!("{p}.weight")];
        let mut expected = [
            w("block1.conv"),
            bn("block1.bn"),
            w("block2.conv"),
            bn("block2.bn"),
            wb("head"),
        ]
        .concat();
        expected.sort();
        assert_eq!(names(&vs), expected);
        assert_eq!(net.stages(), ["block1", "block2", "head"]);
        let vars = vs.variables();
        assert_eq!(vars["block1.conv.weight"].size(), [4, 1, 16]);
        assert_eq!(vars["block2.conv.weight"].size(), [8, 4, 3]);
        check_stages(&net, &vs);
        // One second at 8 kHz and a short clip give the same feature width.
        for samples in [8000, 500] {
            let x = Tensor::randn([2, 1, samples], tch::kind::FLOAT_CPU);
            assert_eq!(net.features(&x, false).size(), [2, 8]);
        }
    }

    #[test]
    fn default_config_accepts_spoken_digits() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = AudioCnn1d::new(&vs.root(), &AudioCnn1dConfig::default());
        let x = Tensor::randn([2, 1, 4000], tch::kind::FLOAT_CPU);
        assert_eq!(net.forward_t(&x, false).size(), [2, 10]);
    }

    #[test]
    fn head_replacement_keeps_names_and_changes_the_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = AudioCnn1d::new(&vs.root(), &small());
        let x = Tensor::randn([3, 1, 1000], tch::kind::FLOAT_CPU);
        check_head_replacement(&mut net, &vs, &x, 6);
    }
}
