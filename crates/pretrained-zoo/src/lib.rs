//! `pretrained-zoo`: architectures with explicitly named layers grouped in ordered stages, so
//! that "the first n layers" of a network is well defined and its weights carry PyTorch
//! `state_dict` names.
//!
//! ```no_run
//! use pretrained_zoo::arch::lenet::{LeNet, LeNetConfig};
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let net = LeNet::new(&vs.root(), &LeNetConfig::default());
//! let logits = tch::nn::ModuleT::forward_t(&net, &tch::Tensor::zeros([2, 1, 28, 28], tch::kind::FLOAT_CPU), false);
//! assert_eq!(logits.size(), [2, 10]);
//! ```

pub mod arch;
