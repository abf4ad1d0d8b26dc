//! Loaders for a user's own data: image folders, NumPy arrays and CSV tables, into the
//! crate's in-memory [`TensorDataset`].
//!
//! Every loader returns images as `Kind::Float` `[N, C, H, W]` in `[0, 1]` (or features as
//! `[N, F]`) and labels as `Kind::Int64` `[N]`, and every malformed input is an [`Error`]
//! naming the file (or `archive.npz/array`) and what to do about it; no input makes a loader
//! panic. Batch transforms for the loaded images (resize, crops, flips, normalisation) are in
//! [`crate::transforms`].
//!
//! - [`image_folder`]: one subfolder per class of PNG, JPEG or BMP files, decoded in
//!   parallel, either already divided into `train/` and `test/` or divided by a seeded
//!   stratified split; a decoded folder is cached as one safetensors file keyed by the folder's
//!   listing, so that the second load costs a directory walk and one file read.
//! - [`npy`]: `.npy` files and `.npz` archives of named arrays (MedMNIST's
//!   `train_images`/`train_labels`/…).
//! - [`csv`]: numeric feature columns and a label column chosen by name or index, the labels
//!   integers or class names.
//!
//! ```no_run
//! use std::path::Path;
//! use core_tensor::loaders::csv::{CsvOptions, load_csv};
//! use core_tensor::loaders::image_folder::{ImageFolderOptions, load_image_folder};
//! use core_tensor::loaders::npy::Npz;
//! use core_tensor::transforms::Pipeline;
//!
//! // pets/cat/*.jpg, pets/dog/*.jpg: a fifth of each class held out, seed 7; cached in the
//! // default cache folder (`$TRANSFERLAB_CACHE`, then the per-user cache).
//! let pets = load_image_folder(
//!     Path::new("pets"),
//!     &ImageFolderOptions::split(0.2, 7).resize(64, 64),
//!     None,
//! )?;
//! assert_eq!(pets.class_names, ["cat", "dog"]);
//! let augment = Pipeline::new()
//!     .random_crop(64, 64, 4)
//!     .random_horizontal_flip(0.5)
//!     .normalize(&[0.485, 0.456, 0.406], &[0.229, 0.224, 0.225]);
//! for (epoch, (images, labels)) in pets.train.shuffled_batches(64, 1).enumerate() {
//!     let images = augment.apply(&images, true, epoch as u64)?;
//!     # let _ = (images, labels);
//! }
//!
//! // MedMNIST: arrays `train_images` (N, 28, 28) uint8 and `train_labels` (N, 1).
//! let mut npz = Npz::open(Path::new("pneumoniamnist.npz"))?;
//! let train = npz.split("train")?; // images [2428, 1, 28, 28] in [0, 1]
//! let test = npz.split("test")?;
//!
//! // iris.csv with a header row and a `species` column of names.
//! let iris = load_csv(Path::new("iris.csv"), &CsvOptions::label("species"))?;
//! assert_eq!(iris.data.inputs.size()[1], 4);
//! # let _ = (train, test);
//! # Ok::<(), core_tensor::Error>(())
//! ```

pub mod csv;
pub mod image_folder;
pub mod npy;

use std::collections::BTreeMap;

use tch::{Device, Kind, Tensor};

use crate::data::{TensorDataset, permutation};
use crate::{Error, Result};

/// Labelled examples divided into a training and a test part, with the names of the classes
/// (label `i` is `class_names[i]`).
#[derive(Debug)]
pub struct Splits {
    /// The training part.
    pub train: TensorDataset,
    /// The test part (empty for a split of fraction 0).
    pub test: TensorDataset,
    /// The class names, indexed by label.
    pub class_names: Vec<String>,
}

impl Splits {
    /// Divides `data` (int64 class labels as targets) by [`stratified_split`]: about
    /// `test_fraction` of every class goes to the test part, drawn from `seed` alone.
    pub fn stratified(
        data: &TensorDataset,
        class_names: Vec<String>,
        test_fraction: f64,
        seed: u64,
    ) -> Result<Splits> {
        let (train, test) = stratified_split(&data.targets, test_fraction, seed)?;
        Ok(Splits {
            train: data.subset(&train)?,
            test: data.subset(&test)?,
            class_names,
        })
    }
}

/// Indices `(train, test)` of a stratified split of int64 `labels` `[N]`: of the `n_c`
/// examples of each class, `round(test_fraction * n_c)` (but never all of them, so that every
/// class keeps a training example) go to the test part. Which ones depends on `seed` alone
/// ([`permutation`]); both index tensors come sorted, so the examples keep their order.
///
/// `test_fraction` must be in `[0, 1)`; labels must not be negative.
pub fn stratified_split(
    labels: &Tensor,
    test_fraction: f64,
    seed: u64,
) -> Result<(Tensor, Tensor)> {
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(Error::InvalidArgument(format!(
            "test_fraction: {test_fraction} is not in [0, 1)"
        )));
    }
    if labels.dim() != 1 {
        return Err(Error::InvalidArgument(format!(
            "stratified_split: labels must be one-dimensional, got shape {:?}",
            labels.size()
        )));
    }
    let labels: Vec<i64> = Vec::try_from(labels.f_to_kind(Kind::Int64)?.f_to_device(Device::Cpu)?)?;
    if let Some(bad) = labels.iter().find(|&&l| l < 0) {
        return Err(Error::InvalidArgument(format!(
            "stratified_split: label {bad} is negative"
        )));
    }
    // Per class: how many to hold out, then how many are held out so far.
    let mut quota: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
    for &l in &labels {
        quota.entry(l).or_default().0 += 1;
    }
    for (n, _) in quota.values_mut() {
        *n = ((test_fraction * *n as f64).round() as usize).min(n.saturating_sub(1));
    }
    let order: Vec<i64> = Vec::try_from(permutation(labels.len() as i64, seed, Device::Cpu))?;
    let mut is_test = vec![false; labels.len()];
    for i in order {
        if let Some((want, taken)) = quota.get_mut(&labels[i as usize])
            && taken < want
        {
            *taken += 1;
            is_test[i as usize] = true;
        }
    }
    let (test, train): (Vec<i64>, Vec<i64>) =
        (0..labels.len() as i64).partition(|&i| is_test[i as usize]);
    Ok((Tensor::f_from_slice(&train)?, Tensor::f_from_slice(&test)?))
}

/// Pixels `u8` `[N, C, H, W]` as floats in `[0, 1]`.
pub(crate) fn unit_float(pixels: &Tensor) -> Result<Tensor> {
    // One float tensor, divided in place: no second copy of the (large) floats.
    let mut x = pixels.f_to_kind(Kind::Float)?;
    let _ = x.f_div_scalar_(255.0)?;
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_takes_the_fraction_of_each_class() {
        let labels = Tensor::from_slice(&[0i64, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
        let (train, test) = stratified_split(&labels, 0.4, 3).unwrap();
        let test: Vec<i64> = Vec::try_from(&test).unwrap();
        let train: Vec<i64> = Vec::try_from(&train).unwrap();
        let class = |i: &i64| {
            if *i < 5 {
                0
            } else if *i < 15 {
                1
            } else {
                2
            }
        };
        let per = |v: &[i64], c| v.iter().filter(|i| class(i) == c).count();
        assert_eq!([per(&test, 0), per(&test, 1), per(&test, 2)], [2, 4, 0]);
        assert_eq!(train.len() + test.len(), 16);
        assert!(test.windows(2).all(|w| w[0] < w[1]));
        let again: Vec<i64> = Vec::try_from(stratified_split(&labels, 0.4, 3).unwrap().1).unwrap();
        assert_eq!(test, again);
    }

    #[test]
    fn bad_fractions_are_refused() {
        let labels = Tensor::from_slice(&[0i64, 1]);
        for f in [-0.1, 1.0, f64::NAN] {
            let err = stratified_split(&labels, f, 0).unwrap_err().to_string();
            assert!(err.contains("test_fraction"), "{err}");
        }
    }
}
