//! `transfer`: adapting a pre-trained network to a small dataset.
//!
//! ```
//! use core_tensor::data::TensorDataset;
//! use pretrained_zoo::arch::{ArchConfig, MlpConfig};
//! use tch::{Device, Kind, Tensor, nn::VarStore};
//! use transfer::finetune::FineTune;
//! use transfer::strategy::{Adapted, SourceModel, Strategy};
//!
//! // A source network (here untrained; in practice a zoo entry or your own pre-training).
//! let arch = ArchConfig::Mlp(MlpConfig { inputs: 8, hidden: vec![16], classes: 5 });
//! let vs = VarStore::new(Device::Cpu);
//! arch.build(&vs.root())?;
//! let source = SourceModel::from_store("mine", arch, &vs);
//!
//! // A two-class target: 40 training and 20 validation examples.
//! let x = Tensor::randn([60, 8], (Kind::Float, Device::Cpu));
//! let y = x.select(1, 0).gt(0.0).to_kind(Kind::Int64);
//! let train = TensorDataset::new(x.narrow(0, 0, 40), y.narrow(0, 0, 40))?;
//! let val = TensorDataset::new(x.narrow(0, 40, 20), y.narrow(0, 40, 20))?;
//!
//! let adapted = FineTune::new(&source).strategy(Strategy::LinearProbe).fit(&train, &val)?;
//! let dir = tempfile::tempdir().unwrap();
//! adapted.save(&dir.path().join("adapted.safetensors"))?;
//! let back = Adapted::load(&dir.path().join("adapted.safetensors"), Device::Cpu)?;
//! assert!(back.predict(&val.inputs, 64)?.equal(&adapted.predict(&val.inputs, 64)?));
//! # Ok::<(), core_tensor::Error>(())
//! ```
//!
//! - [`finetune`]: the short path above ([`finetune::FineTune`]), with a step budget so that a
//!   small target is neither under-trained nor stopped by a few noisy validation scores.
//! - [`strategy`]: one call ([`strategy::adapt`]) adapts any zoo model to a target by one of
//!   eight strategies (scratch, linear probe, fine-tune, top-k, discriminative learning rates,
//!   L2-SP, LP-FT, layer transfer).
//! - [`probe`]: the linear probe's head as a logistic regression fitted to convergence
//!   (full-batch L-BFGS on the frozen features).
//! - [`input`] and [`target`]: explicit input adaptation (UCI 8x8 digits into MNIST's frame) and
//!   the target datasets with seeded, stratified samples.
//! - [`transferability`]: LogME, LEEP, H-score and rank correlations, to rank sources for a
//!   target without fine-tuning.
//!
//! The project's transfer experiments (X1–X6) are built on this crate in the workspace's
//! `experiments` crate; nothing here depends on them.

pub mod finetune;
pub mod input;
pub mod probe;
pub mod strategy;
pub mod target;
pub mod transferability;
