//! `pretrained-zoo`: architectures with explicitly named layers grouped in ordered stages, so
//! that "the first n stages" of a network is well defined and its weights carry PyTorch
//! `state_dict` names.
//!
//! Every network ([`arch::Mlp`], [`arch::LeNet`], [`arch::ResNet`], [`arch::FaceCnn`],
//! [`arch::AudioCnn1d`], [`arch::SpectrogramCnn`]) implements [`arch::Classifier`]: a backbone
//! (`features`) of ordered `stages`, then a linear `head` that `replace_head` swaps for a fresh
//! one of another size. [`arch::ArchConfig`] is the serde-tagged configuration that builds any
//! of them. Weights are saved and loaded as safetensors by `core_tensor::checkpoint`; each
//! architecture has a PyTorch twin in `python/zoo_models.py` with the same keys and outputs
//! (`tests/interop.rs` checks both directions).
//!
//! ```no_run
//! use pretrained_zoo::arch::{ArchConfig, Classifier, ResNetConfig};
//! use tch::nn::ModuleT;
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let cfg = ArchConfig::ResNet(ResNetConfig::default());
//! let mut net = cfg.build(&vs.root())?;
//! assert_eq!(net.stages(), ["stem", "layer1", "layer2", "layer3", "head"]);
//! let x = tch::Tensor::zeros([2, 1, 28, 28], tch::kind::FLOAT_CPU);
//! assert_eq!(net.features(&x, false).size(), [2, 64]);
//! net.replace_head(5)?; // still `head.weight`, now [5, 64]
//! assert_eq!(net.forward_t(&x, false).size(), [2, 5]);
//! core_tensor::checkpoint::save(&vs, "out/resnet.safetensors".as_ref())?;
//! # Ok::<(), core_tensor::Error>(())
//! ```

pub mod arch;
pub mod import;
pub mod registry;
