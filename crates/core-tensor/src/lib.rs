//! `core-tensor`: the bottom layer of the toolkit.
//!
//! It owns what every experiment needs and nothing experiment-specific: devices and
//! determinism, dataset loaders that turn the fetched fixture files into tensors, loaders for
//! a user's own data ([`loaders`]: image folders, `.npy`/`.npz`, CSV) with batch transforms
//! ([`transforms`]), the training engine, metrics, and checkpoints.
//!
//! ```no_run
//! use core_tensor::datasets::{Mnist, Split};
//! let cache = core_tensor::fixtures::cache_dir();
//! let train = Mnist::load(&cache, Split::Train)?;
//! assert_eq!(train.images.size(), [60_000, 1, 28, 28]);
//! # Ok::<(), core_tensor::Error>(())
//! ```

pub mod alloc;
pub mod checkpoint;
pub mod data;
pub mod datasets;
pub mod device;
pub mod error;
pub mod fixtures;
pub mod io;
pub mod loaders;
pub mod metrics;
pub mod optim;
pub mod persist;
pub mod schedule;
pub mod train;
pub mod transforms;

pub use error::{Error, Result};
