//! A 2-D CNN for spectrograms `[N, 1, mels, frames]`.
//!
//! `block1` … `blockN`, each a 3x3 convolution (`blockK.conv`, no bias), batch norm
//! (`blockK.bn`), ReLU and 2x2 max pooling, as in [`FaceCnn`](super::FaceCnn); then the map is
//! averaged over frequency and max-pooled over time, so a sound counts wherever it occurs in the
//! clip and clips of any length work (at least `2^N` mels and frames), → `head`. The PyTorch
//! twin is `SpectrogramCnn` in `python/zoo_models.py`.

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ModuleT};

use super::face::{blocks_2d, validate_blocks};
use super::layers::{self, ConvBn};
use super::{Classifier, EvalStages, HEAD, expect_valid, positive};

/// Widths of the spectrogram CNN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpectrogramCnnConfig {
    /// Output channels of `block1`, `block2`, … (at least one block).
    pub channels: Vec<i64>,
    /// Number of classes (outputs of `head`).
    pub classes: i64,
}

impl Default for SpectrogramCnnConfig {
    /// Three blocks of 16, 32, 64 channels; 10 classes (spoken digits).
    fn default() -> Self {
        SpectrogramCnnConfig {
            channels: vec![16, 32, 64],
            classes: 10,
        }
    }
}

impl SpectrogramCnnConfig {
    /// Checks every width; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        validate_blocks(&self.channels)?;
        positive("classes", self.classes)
    }
}

/// The network; see the module documentation.
#[derive(Debug)]
pub struct SpectrogramCnn {
    config: SpectrogramCnnConfig,
    stages: Vec<String>,
    blocks: Vec<ConvBn<nn::Conv2D>>,
    head: nn::Linear,
    eval: EvalStages,
}

impl SpectrogramCnn {
    /// Creates the layers under `p` with PyTorch's default initialisation.
    ///
    /// # Panics
    /// If `cfg.validate()` fails.
    pub fn new(p: &nn::Path, cfg: &SpectrogramCnnConfig) -> Self {
        expect_valid(cfg.validate());
        let (mut stages, blocks) = blocks_2d(p, &cfg.channels);
        stages.push(HEAD.to_owned());
        let width = *cfg.channels.last().expect("validated: at least one block");
        SpectrogramCnn {
            config: cfg.clone(),
            stages,
            blocks,
            head: layers::linear(p / HEAD, width, cfg.classes),
            eval: EvalStages::default(),
        }
    }

    /// The configuration, with the current number of classes.
    pub fn config(&self) -> &SpectrogramCnnConfig {
        &self.config
    }
}

impl Classifier for SpectrogramCnn {
    fn stages(&self) -> Vec<&str> {
        self.stages.iter().map(String::as_str).collect()
    }

    fn features(&self, xs: &Tensor, train: bool) -> Tensor {
        self.blocks
            .iter()
            .zip(&self.stages)
            .fold(xs.shallow_clone(), |x, (b, stage)| {
                b.forward_t(&x, self.eval.train(stage, train))
                    .max_pool2d_default(2)
            })
            // [N, C, mels, frames]: mean over frequency, then max over time.
            .mean_dim(2, false, None)
            .amax(2, false)
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

forward_through_head!(SpectrogramCnn);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::test_util::*;

    fn small() -> SpectrogramCnnConfig {
        SpectrogramCnnConfig {
            channels: vec![4, 6, 8],
            classes: 10,
        }
    }

    #[test]
    fn variable_names_match_pytorch_state_dict_keys() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = SpectrogramCnn::new(&vs.root(), &small());
        let w = |p: &str| vec![format!("{p}.weight")];
        let mut expected = [
            w("block1.conv"),
            bn("block1.bn"),
            w("block2.conv"),
            bn("block2.bn"),
            w("block3.conv"),
            bn("block3.bn"),
            wb("head"),
        ]
        .concat();
        expected.sort();
        assert_eq!(names(&vs), expected);
        assert_eq!(net.stages(), ["block1", "block2", "block3", "head"]);
        check_stages(&net, &vs);
        let x = Tensor::randn([2, 1, 40, 101], tch::kind::FLOAT_CPU);
        assert_eq!(net.features(&x, false).size(), [2, 8]);
    }

    #[test]
    fn head_replacement_keeps_names_and_changes_the_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = SpectrogramCnn::new(&vs.root(), &small());
        let x = Tensor::randn([3, 1, 32, 50], tch::kind::FLOAT_CPU);
        check_head_replacement(&mut net, &vs, &x, 3);
    }
}
