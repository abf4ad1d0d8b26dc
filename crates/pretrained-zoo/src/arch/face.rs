//! A plain CNN for larger grey images (112x92 ORL faces, 64x64 crops, …).
//!
//! `block1` … `blockN`, each a 3x3 convolution (`blockK.conv`, no bias), batch norm
//! (`blockK.bn`), ReLU and 2x2 max pooling, then adaptive average pooling to 1x1, so the input
//! size is free (at least `2^N` pixels a side), → `head`. The PyTorch twin is `FaceCnn` in
//! `python/zoo_models.py`.

use core_tensor::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, ModuleT};

use super::layers::{self, ConvBn};
use super::{Classifier, EvalStages, HEAD, expect_valid, positive};

/// Widths of the face CNN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceCnnConfig {
    /// Output channels of `block1`, `block2`, … (at least one block).
    pub channels: Vec<i64>,
    /// Number of classes (outputs of `head`).
    pub classes: i64,
}

impl Default for FaceCnnConfig {
    /// Four blocks of 16, 32, 64, 128 channels; 40 classes (the ORL subjects).
    fn default() -> Self {
        FaceCnnConfig {
            channels: vec![16, 32, 64, 128],
            classes: 40,
        }
    }
}

impl FaceCnnConfig {
    /// Checks every width; the error names the bad field.
    pub fn validate(&self) -> Result<()> {
        validate_blocks(&self.channels)?;
        positive("classes", self.classes)
    }
}

/// At least one block, every width positive.
pub(crate) fn validate_blocks(channels: &[i64]) -> Result<()> {
    if channels.is_empty() {
        return Err(core_tensor::Error::InvalidArgument(
            "channels must list at least one block".into(),
        ));
    }
    for (i, &c) in channels.iter().enumerate() {
        positive(&format!("channels[{i}]"), c)?;
    }
    Ok(())
}

/// `block1` … `blockN` of 3x3 convolution and batch norm, with their stage names.
pub(crate) fn blocks_2d(p: &nn::Path, channels: &[i64]) -> (Vec<String>, Vec<ConvBn<nn::Conv2D>>) {
    let mut inputs = 1;
    channels
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let name = format!("block{}", i + 1);
            let block = ConvBn::new_3x3(p / name.as_str(), inputs, c);
            inputs = c;
            (name, block)
        })
        .unzip()
}

/// The network; see the module documentation.
#[derive(Debug)]
pub struct FaceCnn {
    config: FaceCnnConfig,
    stages: Vec<String>,
    blocks: Vec<ConvBn<nn::Conv2D>>,
    head: nn::Linear,
    eval: EvalStages,
}

impl FaceCnn {
    /// Creates the layers under `p` with PyTorch's default initialisation.
    ///
    /// # Panics
    /// If `cfg.validate()` fails.
    pub fn new(p: &nn::Path, cfg: &FaceCnnConfig) -> Self {
        expect_valid(cfg.validate());
        let (mut stages, blocks) = blocks_2d(p, &cfg.channels);
        stages.push(HEAD.to_owned());
        let width = *cfg.channels.last().expect("validated: at least one block");
        FaceCnn {
            config: cfg.clone(),
            stages,
            blocks,
            head: layers::linear(p / HEAD, width, cfg.classes),
            eval: EvalStages::default(),
        }
    }

    /// The configuration, with the current number of classes.
    pub fn config(&self) -> &FaceCnnConfig {
        &self.config
    }
}

impl Classifier for FaceCnn {
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
            .adaptive_avg_pool2d([1, 1])
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

forward_through_head!(FaceCnn);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::test_util::*;

    fn small() -> FaceCnnConfig {
        FaceCnnConfig {
            channels: vec![4, 8],
            classes: 5,
        }
    }

    #[test]
    fn variable_names_match_pytorch_state_dict_keys() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = FaceCnn::new(&vs.root(), &small());
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
        assert_eq!(vs.variables()["block2.conv.weight"].size(), [8, 4, 3, 3]);
        check_stages(&net, &vs);
    }

    #[test]
    fn any_input_size_gives_the_same_feature_width() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = FaceCnn::new(&vs.root(), &small());
        for [h, w] in [[112, 92], [64, 64], [4, 4]] {
            let x = Tensor::randn([2, 1, h, w], tch::kind::FLOAT_CPU);
            assert_eq!(net.features(&x, false).size(), [2, 8]);
            assert_eq!(net.forward_t(&x, true).size(), [2, 5]);
        }
    }

    #[test]
    fn head_replacement_keeps_names_and_changes_the_shape() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let mut net = FaceCnn::new(&vs.root(), &small());
        let x = Tensor::randn([3, 1, 32, 28], tch::kind::FLOAT_CPU);
        check_head_replacement(&mut net, &vs, &x, 2);
    }

    #[test]
    fn no_block_is_refused() {
        let err = FaceCnnConfig {
            channels: vec![],
            classes: 2,
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("channels"), "{err}");
    }
}
