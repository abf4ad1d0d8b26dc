//! Importing a PyTorch `state_dict` saved as safetensors into any architecture, pure Rust.
//!
//! A `.pth`/`.pt` checkpoint is a pickle; it is converted first, with PyTorch's safe loader
//! (`torch.load(path, weights_only=True)`, never an unrestricted unpickle):
//!
//! ```text
//! from safetensors.torch import save_file; import torch
//! save_file({k: v.contiguous() for k, v in torch.load("in.pth", weights_only=True).items()}, "out.safetensors")
//! ```
//!
//! (`python/pth_to_safetensors.py` in the repository does the same and unwraps
//! `{"state_dict": …}` checkpoints.) Then:
//!
//! ```no_run
//! use pretrained_zoo::arch::{ArchConfig, TorchvisionResNetConfig};
//! use pretrained_zoo::import::import_state_dict;
//! let arch = ArchConfig::TorchvisionResNet(TorchvisionResNetConfig::resnet18(1000));
//! let model = import_state_dict("resnet18.safetensors".as_ref(), &arch, tch::Device::Cpu)?;
//! assert_eq!(model.net.classes(), 1000);
//! # Ok::<(), core_tensor::Error>(())
//! ```

use std::path::Path;

use core_tensor::Result;
use core_tensor::checkpoint::{self, LoadMode, LoadReport};
use tch::Device;
use tch::nn::VarStore;

use crate::arch::{Architecture, Classifier};

/// A network built from an architecture and filled with an imported `state_dict`.
pub struct Imported {
    /// The variables, on the device asked for.
    pub vs: VarStore,
    /// The network.
    pub net: Box<dyn Classifier>,
    /// What was loaded (PyTorch's `num_batches_tracked` counters are listed as ignored).
    pub report: LoadReport,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Builds `arch` on `device` and loads the safetensors `state_dict` at `path` into it,
/// strictly: every variable of the network must be in the file with its shape, and the file
/// may hold nothing else (batch-norm counters aside).
///
/// # Errors
/// [`core_tensor::Error::Format`] naming the file and listing, by name, the missing keys, the
/// unexpected keys and the keys whose shape differs (expected and found); nothing is loaded
/// then. An unreadable or truncated file is an error naming it too.
pub fn import_state_dict(path: &Path, arch: &dyn Architecture, device: Device) -> Result<Imported> {
    let mut vs = VarStore::new(device);
    let net = arch.build(&vs.root())?;
    let report = checkpoint::load(&mut vs, path, LoadMode::Strict)?;
    Ok(Imported { vs, net, report })
}
