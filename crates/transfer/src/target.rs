//! Target datasets as input of a source network.
//!
//! A target is loaded in the source's input format (see [`crate::input`]): Fashion-MNIST and
//! MNIST through the source's normalisation, UCI digits resized into MNIST's frame. UCI digits
//! have no test split: a fixed stratified 30% (seed 0, the same for every run) is the test
//! set, so that runs with different seeds are compared on one test set.

use std::path::Path;

use core_tensor::data::{TensorDataset, stratified_indices};
use core_tensor::datasets::{FashionMnist, ImageDataset, Mnist, Split, UciDigits};
use core_tensor::{Error, Result};
use pretrained_zoo::registry::{ImageInput, RecipeData};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// A target dataset by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// Fashion-MNIST (60,000 train / 10,000 test).
    FashionMnist,
    /// UCI 8x8 digits (1,797 images; fixed 70/30 split).
    UciDigits,
    /// MNIST (for same-domain checks).
    Mnist,
}

impl Target {
    /// The name `cargo xtask fetch` knows.
    pub fn dataset(self) -> &'static str {
        match self {
            Target::FashionMnist => "fashion-mnist",
            Target::UciDigits => "uci-digits",
            Target::Mnist => "mnist",
        }
    }
}

/// A target's train pool and test set, in the source's input format.
#[derive(Debug)]
pub struct TargetData {
    /// Every training example (subsets and validation are drawn from it).
    pub train: TensorDataset,
    /// The test set, used once per run.
    pub test: TensorDataset,
    /// Number of classes.
    pub classes: usize,
}

/// The image normalisation a zoo entry was trained with.
pub fn source_image_input(data: &RecipeData) -> Result<ImageInput> {
    match data {
        RecipeData::Mnist(i) | RecipeData::FashionMnist(i) => Ok(*i),
        RecipeData::Fsdd(_) => Err(Error::InvalidArgument(
            "an audio source cannot take an image target".into(),
        )),
        RecipeData::Cifar10(_) => Err(Error::InvalidArgument(
            "a colour source (CIFAR-10) takes RGB 32x32 input: prepare the target with \
             RecipeData::input_spec"
                .into(),
        )),
    }
}

/// Loads `target` from the fixture cache in the format of a source trained with `input`.
pub fn load(target: Target, cache: &Path, input: &ImageInput) -> Result<TargetData> {
    let images = |d: ImageDataset| TensorDataset::new(input.prepare(&d.images), d.labels);
    match target {
        Target::FashionMnist => Ok(TargetData {
            train: images(FashionMnist::load(cache, Split::Train)?)?,
            test: images(FashionMnist::load(cache, Split::Test)?)?,
            classes: 10,
        }),
        Target::Mnist => Ok(TargetData {
            train: images(Mnist::load(cache, Split::Train)?)?,
            test: images(Mnist::load(cache, Split::Test)?)?,
            classes: 10,
        }),
        Target::UciDigits => {
            let d = UciDigits::load(cache)?;
            let all = TensorDataset::new(crate::input::uci_to_mnist(&d.images, input)?, d.labels)?;
            // 30% of each class (the smallest class has 174 images: 52 of them) for testing.
            let test_idx = stratified_indices(&all.targets, 10, 52, 0)?;
            let mut is_test = vec![false; all.len()];
            for i in Vec::<i64>::try_from(&test_idx)? {
                is_test[i as usize] = true;
            }
            let train_idx: Vec<i64> = (0..all.len() as i64)
                .filter(|i| !is_test[*i as usize])
                .collect();
            Ok(TargetData {
                train: all.subset(&Tensor::from_slice(&train_idx))?,
                test: all.subset(&test_idx)?,
                classes: 10,
            })
        }
    }
}

/// Draws `per_class` training and `val_per_class` validation examples per class from the
/// train pool (disjoint, from `seed` alone), on `device`.
pub fn sample(
    data: &TargetData,
    per_class: usize,
    val_per_class: usize,
    seed: u64,
    device: Device,
) -> Result<(TensorDataset, TensorDataset)> {
    if per_class == 0 || val_per_class == 0 {
        return Err(Error::InvalidArgument(
            "per_class and val_per_class must both be at least 1".into(),
        ));
    }
    let idx = stratified_indices(
        &data.train.targets,
        data.classes,
        per_class + val_per_class,
        seed,
    )?;
    let pool = data.train.subset(&idx)?;
    // Split each class's examples: the validation share is stratified too.
    let val_idx = stratified_indices(&pool.targets, data.classes, val_per_class, seed ^ 0x5A5A)?;
    let mut is_val = vec![false; pool.len()];
    for i in Vec::<i64>::try_from(&val_idx)? {
        is_val[i as usize] = true;
    }
    let train_idx: Vec<i64> = (0..pool.len() as i64)
        .filter(|i| !is_val[*i as usize])
        .collect();
    Ok((
        pool.subset(&Tensor::from_slice(&train_idx))?
            .to_device(device),
        pool.subset(&val_idx)?.to_device(device),
    ))
}

/// The validation examples per class used with `per_class` training examples: a fifth, at
/// least one, at most 100.
pub fn validation_per_class(per_class: usize) -> usize {
    (per_class / 5).clamp(1, 100)
}
