//! Transforms of image batches: `[N, C, H, W]` tensors, floats for the ones that compute
//! (resize, normalise, luminance), on any device.
//!
//! Each transform is a function ([`resize`], [`center_crop`], [`random_crop`],
//! [`horizontal_flip`], [`random_horizontal_flip`], [`normalize`], [`grey_to_rgb`],
//! [`rgb_to_grey`]) and a [`Transform`] value; a [`Pipeline`] applies a list of them in order,
//! and the random ones only in training:
//!
//! ```
//! use core_tensor::transforms::Pipeline;
//! use tch::{Device, Kind, Tensor};
//! // CIFAR-10's augmentation: pad 4, crop 32, flip half of the images, then normalise.
//! let cifar = Pipeline::new()
//!     .random_crop(32, 32, 4)
//!     .random_horizontal_flip(0.5)
//!     .normalize(&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]);
//! let batch = Tensor::rand([8, 3, 32, 32], (Kind::Float, Device::Cpu));
//! let train = cifar.apply(&batch, true, 17)?;   // augmented by seed 17, then normalised
//! let test = cifar.apply(&batch, false, 17)?;   // normalised only
//! assert_eq!(train.size(), [8, 3, 32, 32]);
//! assert!(train.equal(&cifar.apply(&batch, true, 17)?)); // the seed decides
//! # let _ = test;
//! # Ok::<(), core_tensor::Error>(())
//! ```
//!
//! **Randomness.** Random transforms take a seed and draw from [`crate::data::uniform`], a
//! counter-based hash of the seed: the same seed gives the same crops and flips on every run
//! and device, whatever else draws from libtorch's global generator. Give each batch its own
//! seed (from the epoch and batch index, say); the same seed on every batch repeats the same
//! crop offsets and flips for the same positions in the batch.
//!
//! Bad arguments (a crop larger than the image, a mean per channel that does not match the
//! channels, a probability outside `[0, 1]`, a batch that is not 4-D) are
//! [`Error::InvalidArgument`]s that say which transform and why.

use tch::{Kind, Tensor};

use crate::data::{splitmix64, uniform};
use crate::{Error, Result};

/// The luminance weights of R, G and B (ITU-R BT.601, as PIL's `convert("L")` and
/// torchvision's `rgb_to_grayscale`).
pub const LUMINANCE: [f64; 3] = [0.299, 0.587, 0.114];

/// `[N, C, H, W]` of `images`, or an error naming `op` if it is not 4-D.
fn batch_dims(images: &Tensor, op: &str) -> Result<[i64; 4]> {
    match images.size().as_slice() {
        &[n, c, h, w] => Ok([n, c, h, w]),
        other => Err(Error::InvalidArgument(format!(
            "{op}: expected a batch of images [N, C, H, W], got shape {other:?}"
        ))),
    }
}

/// [`batch_dims`], also requiring a floating-point kind.
fn float_batch_dims(images: &Tensor, op: &str) -> Result<[i64; 4]> {
    let dims = batch_dims(images, op)?;
    let kind = images.f_kind()?;
    if !matches!(
        kind,
        Kind::Half | Kind::BFloat16 | Kind::Float | Kind::Double
    ) {
        return Err(Error::InvalidArgument(format!(
            "{op}: expected floating-point images, got {kind:?}; convert u8 pixels with \
             `to_kind(Kind::Float) / 255`"
        )));
    }
    Ok(dims)
}

/// Checks that an output size is positive.
fn check_size(op: &str, height: i64, width: i64) -> Result<()> {
    if height < 1 || width < 1 {
        return Err(Error::InvalidArgument(format!(
            "{op}: the output size {height}x{width} must be at least 1x1"
        )));
    }
    Ok(())
}

/// Resizes every image to `height` x `width`, bilinear, as PyTorch's
/// `F.interpolate(x, (height, width), mode="bilinear", align_corners=False)` (no antialiasing:
/// shrinking by more than 2x skips pixels).
pub fn resize(images: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    let [_, _, h, w] = float_batch_dims(images, "resize")?;
    check_size("resize", height, width)?;
    if (h, w) == (height, width) {
        return Ok(images.shallow_clone());
    }
    Ok(images.f_upsample_bilinear2d([height, width], false, None, None)?)
}

/// The central `height` x `width` window of every image; the offsets are
/// `floor((H - height) / 2)` and `floor((W - width) / 2)`.
pub fn center_crop(images: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    let [_, _, h, w] = batch_dims(images, "center_crop")?;
    check_size("center_crop", height, width)?;
    if height > h || width > w {
        return Err(Error::InvalidArgument(format!(
            "center_crop: a {height}x{width} crop is larger than the {h}x{w} images; resize \
             first"
        )));
    }
    Ok(images
        .f_narrow(2, (h - height) / 2, height)?
        .f_narrow(3, (w - width) / 2, width)?)
}

/// A `height` x `width` window of every image at a random place, after padding each side with
/// `padding` zeros (torchvision's `RandomCrop(size, padding)`; CIFAR's augmentation is
/// `random_crop(x, 32, 32, 4, seed)`). Every offset in `0..=H + 2 padding - height` (and the
/// same for the width) is equally likely, drawn for each image from `seed`.
pub fn random_crop(
    images: &Tensor,
    height: i64,
    width: i64,
    padding: i64,
    seed: u64,
) -> Result<Tensor> {
    let [n, c, h, w] = batch_dims(images, "random_crop")?;
    check_size("random_crop", height, width)?;
    if padding < 0 {
        return Err(Error::InvalidArgument(format!(
            "random_crop: padding {padding} must not be negative"
        )));
    }
    let (hp, wp) = (h + 2 * padding, w + 2 * padding);
    if height > hp || width > wp {
        return Err(Error::InvalidArgument(format!(
            "random_crop: a {height}x{width} crop is larger than the {h}x{w} images padded by \
             {padding} ({hp}x{wp})"
        )));
    }
    let padded = if padding > 0 {
        images.f_constant_pad_nd([padding, padding, padding, padding])?
    } else {
        images.shallow_clone()
    };
    let device = images.device();
    let draws = uniform(2 * n, seed, device);
    let offsets = |start: i64, span: i64| -> Result<Tensor> {
        Ok(draws
            .f_narrow(0, start, n)?
            .f_mul_scalar(span as f64)?
            .f_floor()?
            .f_to_kind(Kind::Int64)?
            .f_clamp_max(span - 1)?)
    };
    let top = offsets(0, hp - height + 1)?;
    let left = offsets(n, wp - width + 1)?;
    // Gather rows, then columns: index grids [N, 1, height, 1] and [N, 1, 1, width].
    let rows = Tensor::f_arange(height, (Kind::Int64, device))?
        .f_view([1, 1, height, 1])?
        .f_add(&top.f_view([n, 1, 1, 1])?)?;
    let cols = Tensor::f_arange(width, (Kind::Int64, device))?
        .f_view([1, 1, 1, width])?
        .f_add(&left.f_view([n, 1, 1, 1])?)?;
    let picked_rows = padded.f_gather(2, &rows.f_expand([n, c, height, wp], false)?, false)?;
    Ok(picked_rows.f_gather(3, &cols.f_expand([n, c, height, width], false)?, false)?)
}

/// Every image mirrored left to right.
pub fn horizontal_flip(images: &Tensor) -> Result<Tensor> {
    batch_dims(images, "horizontal_flip")?;
    Ok(images.f_flip([3])?)
}

/// Each image mirrored left to right with probability `p`, drawn for each image from `seed`.
pub fn random_horizontal_flip(images: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let [n, _, _, _] = batch_dims(images, "random_horizontal_flip")?;
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::InvalidArgument(format!(
            "random_horizontal_flip: probability {p} is not in [0, 1]"
        )));
    }
    let flip = uniform(n, seed, images.device())
        .f_lt(p)?
        .f_view([n, 1, 1, 1])?;
    Ok(images.f_flip([3])?.f_where_self(&flip, images)?)
}

/// `(x - mean[c]) / std[c]` for each channel `c`; `mean` and `std` have one entry per channel
/// and every `std` is positive.
pub fn normalize(images: &Tensor, mean: &[f64], std: &[f64]) -> Result<Tensor> {
    let [_, c, _, _] = float_batch_dims(images, "normalize")?;
    if mean.len() != c as usize || std.len() != c as usize {
        return Err(Error::InvalidArgument(format!(
            "normalize: {} means and {} standard deviations for images with {c} channels; give \
             one of each per channel",
            mean.len(),
            std.len()
        )));
    }
    if let Some(bad) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(Error::InvalidArgument(format!(
            "normalize: standard deviation {bad} must be positive and finite"
        )));
    }
    if let Some(bad) = mean.iter().find(|m| !m.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "normalize: mean {bad} must be finite"
        )));
    }
    let options = (images.f_kind()?, images.device());
    let per_channel = |v: &[f64]| -> Result<Tensor> {
        Ok(Tensor::f_from_slice(v)?
            .f_to_kind(options.0)?
            .f_to_device(options.1)?
            .f_view([1, c, 1, 1])?)
    };
    Ok(images
        .f_sub(&per_channel(mean)?)?
        .f_div(&per_channel(std)?)?)
}

/// One-channel images as three identical channels.
pub fn grey_to_rgb(images: &Tensor) -> Result<Tensor> {
    let [n, c, h, w] = batch_dims(images, "grey_to_rgb")?;
    if c != 1 {
        return Err(Error::InvalidArgument(format!(
            "grey_to_rgb: expected 1 channel, the images have {c}"
        )));
    }
    Ok(images.f_expand([n, 3, h, w], false)?.f_contiguous()?)
}

/// Three-channel images as their luminance, `0.299 R + 0.587 G + 0.114 B` ([`LUMINANCE`]),
/// one channel.
pub fn rgb_to_grey(images: &Tensor) -> Result<Tensor> {
    let [_, c, _, _] = float_batch_dims(images, "rgb_to_grey")?;
    if c != 3 {
        return Err(Error::InvalidArgument(format!(
            "rgb_to_grey: expected 3 channels, the images have {c}"
        )));
    }
    let kind = images.f_kind()?;
    let weights = Tensor::f_from_slice(&LUMINANCE)?
        .f_to_kind(kind)?
        .f_to_device(images.device())?
        .f_view([1, 3, 1, 1])?;
    Ok(images
        .f_mul(&weights)?
        .f_sum_dim_intlist([1].as_slice(), true, kind)?)
}

/// One step of a [`Pipeline`].
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// [`resize`].
    Resize {
        /// Output height.
        height: i64,
        /// Output width.
        width: i64,
    },
    /// [`center_crop`].
    CenterCrop {
        /// Crop height.
        height: i64,
        /// Crop width.
        width: i64,
    },
    /// [`random_crop`] (random: training only).
    RandomCrop {
        /// Crop height.
        height: i64,
        /// Crop width.
        width: i64,
        /// Zeros added on each side first.
        padding: i64,
    },
    /// [`random_horizontal_flip`] (random: training only).
    RandomHorizontalFlip {
        /// The probability of flipping each image.
        p: f64,
    },
    /// [`normalize`].
    Normalize {
        /// Mean per channel.
        mean: Vec<f64>,
        /// Standard deviation per channel.
        std: Vec<f64>,
    },
    /// [`grey_to_rgb`].
    GreyToRgb,
    /// [`rgb_to_grey`].
    RgbToGrey,
}

impl Transform {
    /// Whether the step is an augmentation, applied only in training.
    pub fn is_random(&self) -> bool {
        matches!(
            self,
            Transform::RandomCrop { .. } | Transform::RandomHorizontalFlip { .. }
        )
    }

    /// Applies the step to `images`; random steps draw from `seed`.
    pub fn apply(&self, images: &Tensor, seed: u64) -> Result<Tensor> {
        match self {
            Transform::Resize { height, width } => resize(images, *height, *width),
            Transform::CenterCrop { height, width } => center_crop(images, *height, *width),
            Transform::RandomCrop {
                height,
                width,
                padding,
            } => random_crop(images, *height, *width, *padding, seed),
            Transform::RandomHorizontalFlip { p } => random_horizontal_flip(images, *p, seed),
            Transform::Normalize { mean, std } => normalize(images, mean, std),
            Transform::GreyToRgb => grey_to_rgb(images),
            Transform::RgbToGrey => rgb_to_grey(images),
        }
    }
}

/// Transforms applied in order; the random ones ([`Transform::is_random`]) only when
/// `train` is true, so one pipeline serves training and evaluation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pipeline {
    steps: Vec<Transform>,
}

impl Pipeline {
    /// An empty pipeline (the identity).
    pub fn new() -> Self {
        Self::default()
    }

    /// This pipeline with `step` appended.
    pub fn then(mut self, step: Transform) -> Self {
        self.steps.push(step);
        self
    }

    /// Appends [`Transform::Resize`].
    pub fn resize(self, height: i64, width: i64) -> Self {
        self.then(Transform::Resize { height, width })
    }

    /// Appends [`Transform::CenterCrop`].
    pub fn center_crop(self, height: i64, width: i64) -> Self {
        self.then(Transform::CenterCrop { height, width })
    }

    /// Appends [`Transform::RandomCrop`].
    pub fn random_crop(self, height: i64, width: i64, padding: i64) -> Self {
        self.then(Transform::RandomCrop {
            height,
            width,
            padding,
        })
    }

    /// Appends [`Transform::RandomHorizontalFlip`].
    pub fn random_horizontal_flip(self, p: f64) -> Self {
        self.then(Transform::RandomHorizontalFlip { p })
    }

    /// Appends [`Transform::Normalize`].
    pub fn normalize(self, mean: &[f64], std: &[f64]) -> Self {
        self.then(Transform::Normalize {
            mean: mean.to_vec(),
            std: std.to_vec(),
        })
    }

    /// Appends [`Transform::GreyToRgb`].
    pub fn grey_to_rgb(self) -> Self {
        self.then(Transform::GreyToRgb)
    }

    /// Appends [`Transform::RgbToGrey`].
    pub fn rgb_to_grey(self) -> Self {
        self.then(Transform::RgbToGrey)
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[Transform] {
        &self.steps
    }

    /// Applies the steps to `images` in order, skipping the random ones unless `train`. Step
    /// `i` draws from a seed derived from `seed` and `i`, so two random steps do not share
    /// their draws. An error names the step that failed.
    pub fn apply(&self, images: &Tensor, train: bool, seed: u64) -> Result<Tensor> {
        let mut x = images.shallow_clone();
        for (i, step) in self.steps.iter().enumerate() {
            if step.is_random() && !train {
                continue;
            }
            let step_seed = splitmix64(seed ^ splitmix64(i as u64));
            x = step.apply(&x, step_seed).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("pipeline step {i}: {m}"))
                }
                other => other,
            })?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn ramp(n: i64, c: i64, h: i64, w: i64) -> Tensor {
        Tensor::arange(n * c * h * w, (Kind::Float, Device::Cpu)).view([n, c, h, w])
    }

    #[test]
    fn random_crop_without_padding_of_the_full_size_is_the_identity() {
        let x = ramp(3, 2, 5, 4);
        assert!(random_crop(&x, 5, 4, 0, 9).unwrap().equal(&x));
    }

    #[test]
    fn a_crop_is_a_window_of_the_padded_image() {
        let x = ramp(16, 1, 6, 6) + 1.0; // no zero inside the image
        let y = random_crop(&x, 6, 6, 2, 3).unwrap();
        for i in 0..16 {
            let yi = y.get(i);
            // Find the offset: the padded image's window equal to yi.
            let padded = x.get(i).constant_pad_nd([2, 2, 2, 2]);
            let found =
                (0..5).any(|t| (0..5).any(|l| padded.narrow(1, t, 6).narrow(2, l, 6).equal(&yi)));
            assert!(found, "image {i} is no window of its padded image");
        }
    }
}
