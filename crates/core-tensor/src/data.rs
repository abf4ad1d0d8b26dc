//! In-memory tensor datasets and batching.
//!
//! Data stays in tensors: a batch is one `index_select` of a shuffled index tensor, never a
//! per-sample copy (assembling batches sample by sample costs 5–10x more on MNIST).
//!
//! Shuffling does not draw from libtorch's generator: that generator is global to the process,
//! so anything else drawing from it (another test, another model's initialisation) would change
//! the order. [`permutation`] derives the order from a seed alone, on the data's device.

use tch::{Device, Kind, Tensor};

use crate::{Error, Result};

/// Inputs and targets with the same first dimension.
#[derive(Debug)]
pub struct TensorDataset {
    /// Inputs, `[N, ...]`.
    pub inputs: Tensor,
    /// Targets, `[N, ...]`.
    pub targets: Tensor,
}

impl TensorDataset {
    /// Pairs inputs and targets, checking that they have the same number of examples.
    pub fn new(inputs: Tensor, targets: Tensor) -> Result<Self> {
        let (n_in, n_t) = (
            inputs.size().first().copied(),
            targets.size().first().copied(),
        );
        if n_in.is_none() || n_in != n_t {
            return Err(Error::InvalidArgument(format!(
                "inputs {:?} and targets {:?} must share their first dimension",
                inputs.size(),
                targets.size()
            )));
        }
        Ok(TensorDataset { inputs, targets })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.inputs.size()[0] as usize
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same data on `device`.
    pub fn to_device(&self, device: Device) -> TensorDataset {
        TensorDataset {
            inputs: self.inputs.to_device(device),
            targets: self.targets.to_device(device),
        }
    }

    /// Batches of `batch_size` in order (the last may be smaller).
    pub fn batches(&self, batch_size: usize) -> BatchIter<'_> {
        let n = self.len() as i64;
        let order = Tensor::arange(n, (Kind::Int64, self.inputs.device()));
        BatchIter {
            data: self,
            order,
            batch_size: batch_size.max(1) as i64,
            next: 0,
            n,
        }
    }

    /// Batches of `batch_size` in the order [`permutation`] gives for `seed`.
    pub fn shuffled_batches(&self, batch_size: usize, seed: u64) -> BatchIter<'_> {
        let n = self.len() as i64;
        let order = permutation(n, seed, self.inputs.device());
        BatchIter {
            data: self,
            order,
            batch_size: batch_size.max(1) as i64,
            next: 0,
            n,
        }
    }
}

impl TensorDataset {
    /// The examples at `indices` (an int64 tensor), as a new dataset.
    pub fn subset(&self, indices: &Tensor) -> Result<TensorDataset> {
        let idx = indices.f_to_device(self.inputs.device())?;
        TensorDataset::new(
            self.inputs.f_index_select(0, &idx)?,
            self.targets.f_index_select(0, &idx)?,
        )
    }
}

/// Indices of `per_class` examples of each class, chosen from `seed` alone; every class in
/// `0..classes` must have that many. The indices come sorted by class, then by position.
pub fn stratified_indices(
    labels: &Tensor,
    classes: usize,
    per_class: usize,
    seed: u64,
) -> Result<Tensor> {
    let labels: Vec<i64> = Vec::try_from(labels.f_to_kind(Kind::Int64)?.f_to_device(Device::Cpu)?)?;
    let order: Vec<i64> = Vec::try_from(permutation(labels.len() as i64, seed, Device::Cpu))?;
    let mut chosen: Vec<Vec<i64>> = vec![Vec::new(); classes];
    for i in order {
        let c = labels[i as usize];
        if c < 0 || c as usize >= classes {
            return Err(Error::InvalidArgument(format!(
                "label {c} outside 0..{classes}"
            )));
        }
        let bucket = &mut chosen[c as usize];
        if bucket.len() < per_class {
            bucket.push(i);
        }
    }
    for (c, bucket) in chosen.iter_mut().enumerate() {
        if bucket.len() < per_class {
            return Err(Error::InvalidArgument(format!(
                "class {c} has {} examples, fewer than the {per_class} per class asked for",
                bucket.len()
            )));
        }
        bucket.sort_unstable();
    }
    Ok(Tensor::from_slice(&chosen.concat()))
}

/// Splits `0..n` into (train, validation) index tensors with `validation` examples drawn from
/// `seed` alone; both come sorted.
pub fn split_indices(n: usize, validation: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    if validation >= n {
        return Err(Error::InvalidArgument(format!(
            "a validation split of {validation} leaves nothing to train on out of {n} examples"
        )));
    }
    let order: Vec<i64> = Vec::try_from(permutation(n as i64, seed, Device::Cpu))?;
    let (mut val, mut train) = (order[..validation].to_vec(), order[validation..].to_vec());
    val.sort_unstable();
    train.sort_unstable();
    Ok((Tensor::from_slice(&train), Tensor::from_slice(&val)))
}

/// `n` uniform numbers in `[0, 1)` from `seed` alone (float32, on `device`), from the same
/// counter-based hash as [`permutation`]; for augmentations that must not touch libtorch's
/// global generator.
pub fn uniform(n: i64, seed: u64, device: Device) -> Tensor {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let offset = splitmix64(seed ^ 0x5DEE_CE66_D1CE_4E5B) as i64;
    let z = mix64(&(Tensor::arange(n, (Kind::Int64, device)) * (GOLDEN as i64) + offset));
    // The top 24 bits give every float32 in [0, 1) on a 2^-24 grid.
    shr(&z, 40).to_kind(Kind::Float) / (1u64 << 24) as f64
}

/// Cheap on-device augmentations for image batches `[N, C, H, W]`, seeded per call.
pub mod augment {
    use tch::{Kind, Tensor};

    use super::uniform;

    /// Shifts each image by a random whole number of pixels in `-max..=max` along both axes
    /// (zeros fill the border), like a random crop from a zero-padded image.
    pub fn random_shift(images: &Tensor, max: i64, seed: u64) -> Tensor {
        let size = images.size();
        let (n, h, w) = (size[0], size[2], size[3]);
        let device = images.device();
        let padded = images.constant_pad_nd([max, max, max, max]);
        let span = (2 * max + 1) as f64;
        let draws = (uniform(2 * n, seed, device) * span)
            .floor()
            .to_kind(Kind::Int64);
        let (dy, dx) = (draws.narrow(0, 0, n), draws.narrow(0, n, n));
        // Gather rows then columns: index grids of shape [N, 1, H, 1] and [N, 1, 1, W].
        let rows =
            Tensor::arange(h, (Kind::Int64, device)).view([1, 1, h, 1]) + dy.view([n, 1, 1, 1]);
        let cols =
            Tensor::arange(w, (Kind::Int64, device)).view([1, 1, 1, w]) + dx.view([n, 1, 1, 1]);
        let c = size[1];
        let wp = w + 2 * max;
        let picked_rows = padded.gather(2, &rows.expand([n, c, h, wp], false), false);
        picked_rows.gather(3, &cols.expand([n, c, h, w], false), false)
    }

    /// Adds Gaussian noise with standard deviation `std` (Box–Muller on [`uniform`] draws).
    pub fn gaussian_noise(xs: &Tensor, std: f64, seed: u64) -> Tensor {
        let n = xs.numel() as i64;
        let u = uniform(2 * n, seed, xs.device());
        let u1 = (u.narrow(0, 0, n) * -1.0 + 1.0).clamp_min(1e-12); // (0, 1]
        let u2 = u.narrow(0, n, n);
        let z = (u1.log() * -2.0).sqrt() * (u2 * (2.0 * std::f64::consts::PI)).cos();
        xs + z.view(xs.size().as_slice()).to_kind(xs.kind()) * std
    }
}

/// A permutation of `0..n` that depends on `seed` alone, computed on `device`.
///
/// Each index is hashed with the splitmix64 finaliser (a bijection of 64-bit integers, so
/// the keys are distinct) and the keys are sorted. Costs one sort of `n` integers.
pub fn permutation(n: i64, seed: u64, device: Device) -> Tensor {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let offset = splitmix64(seed) as i64;
    let z = Tensor::arange(n, (Kind::Int64, device)) * (GOLDEN as i64) + offset;
    mix64(&z).argsort(0, false)
}

/// Logical right shift of int64 tensors (libtorch's shift is arithmetic).
fn shr(z: &Tensor, k: i64) -> Tensor {
    z.bitwise_right_shift_tensor_scalar(k)
        .bitwise_and((1i64 << (64 - k)) - 1)
}

/// The splitmix64 finaliser on an int64 tensor (wrapping arithmetic).
fn mix64(z: &Tensor) -> Tensor {
    let z = (z.bitwise_xor_tensor(&shr(z, 30))) * (0xBF58_476D_1CE4_E5B9u64 as i64);
    let z = (z.bitwise_xor_tensor(&shr(&z, 27))) * (0x94D0_49BB_1331_11EBu64 as i64);
    z.bitwise_xor_tensor(&shr(&z, 31))
}

/// The same finaliser on one integer (for seeds, and to check the tensor version).
pub fn splitmix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Iterator over `(inputs, targets)` batches; see [`TensorDataset::batches`].
#[derive(Debug)]
pub struct BatchIter<'a> {
    data: &'a TensorDataset,
    order: Tensor,
    batch_size: i64,
    next: i64,
    n: i64,
}

impl BatchIter<'_> {
    /// Number of batches in a full pass.
    pub fn num_batches(&self) -> usize {
        ((self.n + self.batch_size - 1) / self.batch_size) as usize
    }
}

impl Iterator for BatchIter<'_> {
    type Item = (Tensor, Tensor);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.n {
            return None;
        }
        let len = self.batch_size.min(self.n - self.next);
        let idx = self.order.narrow(0, self.next, len);
        self.next += len;
        Some((
            self.data.inputs.index_select(0, &idx),
            self.data.targets.index_select(0, &idx),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_example_once() {
        let data = TensorDataset::new(
            Tensor::arange(10, (Kind::Float, Device::Cpu)).view([10, 1]),
            Tensor::arange(10, (Kind::Int64, Device::Cpu)),
        )
        .unwrap();
        let it = data.shuffled_batches(4, 1);
        assert_eq!(it.num_batches(), 3);
        let mut seen: Vec<i64> = Vec::new();
        for (x, y) in it {
            let xs: Vec<f32> = Vec::try_from(x.view([-1])).unwrap();
            let ys: Vec<i64> = Vec::try_from(&y).unwrap();
            assert_eq!(xs.iter().map(|v| *v as i64).collect::<Vec<_>>(), ys);
            seen.extend(ys);
        }
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_ne!(seen, (0..10).collect::<Vec<_>>(), "shuffled order expected");
    }

    #[test]
    fn permutations_depend_on_the_seed_alone() {
        let p = |seed| Vec::<i64>::try_from(permutation(1000, seed, Device::Cpu)).unwrap();
        let a = p(5);
        tch::manual_seed(123); // the global generator has no say
        let _ = Tensor::randn([10], (Kind::Float, Device::Cpu));
        assert_eq!(a, p(5));
        assert_ne!(a, p(6));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn tensor_hash_equals_the_scalar_hash() {
        // mix64 on x must equal splitmix64 on x - GOLDEN (splitmix64 adds GOLDEN first).
        let xs: Vec<i64> = vec![0, 1, -1, i64::MAX, i64::MIN, 0x1234_5678_9abc_def0];
        let got: Vec<i64> = Vec::try_from(mix64(&Tensor::from_slice(&xs))).unwrap();
        for (x, g) in xs.iter().zip(got) {
            let want = splitmix64((*x as u64).wrapping_sub(0x9E37_79B9_7F4A_7C15));
            assert_eq!(g as u64, want, "x = {x}");
        }
    }

    #[test]
    fn stratified_subsets_take_n_per_class_from_the_seed() {
        let labels = Tensor::from_slice(&[0i64, 1, 0, 1, 0, 1, 2, 2, 2, 0]);
        let idx: Vec<i64> = Vec::try_from(stratified_indices(&labels, 3, 2, 9).unwrap()).unwrap();
        assert_eq!(idx.len(), 6);
        let got: Vec<i64> = idx
            .iter()
            .map(|i| [0, 1, 0, 1, 0, 1, 2, 2, 2, 0][*i as usize])
            .collect();
        assert_eq!(got, vec![0, 0, 1, 1, 2, 2]);
        let again: Vec<i64> = Vec::try_from(stratified_indices(&labels, 3, 2, 9).unwrap()).unwrap();
        assert_eq!(idx, again);
        let err = stratified_indices(&labels, 3, 4, 9)
            .unwrap_err()
            .to_string();
        assert!(err.contains("class 1 has 3 examples"), "{err}");
    }

    #[test]
    fn splits_are_disjoint_and_complete() {
        let (train, val) = split_indices(100, 20, 4).unwrap();
        let mut all: Vec<i64> = Vec::try_from(&train).unwrap();
        all.extend(Vec::<i64>::try_from(&val).unwrap());
        assert_eq!(val.size(), [20]);
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(split_indices(10, 10, 0).is_err());
    }

    #[test]
    fn uniform_draws_are_in_range_and_spread() {
        let u = uniform(10_000, 3, Device::Cpu);
        let (min, max) = (u.min().double_value(&[]), u.max().double_value(&[]));
        assert!(min >= 0.0 && max < 1.0);
        assert!((u.mean(Kind::Float).double_value(&[]) - 0.5).abs() < 0.02);
        assert!(!u.equal(&uniform(10_000, 4, Device::Cpu)));
    }

    #[test]
    fn random_shift_moves_pixels_within_bounds() {
        // One bright pixel at the centre of a 9x9 image moves by at most 2 in each direction.
        let img = Tensor::zeros([64, 1, 9, 9], (Kind::Float, Device::Cpu));
        let _ = img.narrow(2, 4, 1).narrow(3, 4, 1).fill_(1.0);
        let out = augment::random_shift(&img, 2, 7);
        assert_eq!(out.size(), [64, 1, 9, 9]);
        let sums: Vec<f32> =
            Vec::try_from(out.sum_dim_intlist([1, 2, 3].as_slice(), false, Kind::Float)).unwrap();
        assert!(
            sums.iter().all(|s| *s == 1.0),
            "the pixel stays inside: {sums:?}"
        );
        let flat = out.view([64, 81]).argmax(1, false);
        let pos: Vec<i64> = Vec::try_from(flat).unwrap();
        assert!(
            pos.iter()
                .all(|p| (p / 9 - 4).abs() <= 2 && (p % 9 - 4).abs() <= 2)
        );
        assert!(pos.iter().any(|p| *p != 40), "some image should move");
    }

    #[test]
    fn gaussian_noise_has_the_asked_spread() {
        let x = Tensor::zeros([20_000], (Kind::Float, Device::Cpu));
        let y = augment::gaussian_noise(&x, 0.5, 1);
        let std = y.std(true).double_value(&[]);
        assert!((std - 0.5).abs() < 0.02, "{std}");
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let err = TensorDataset::new(
            Tensor::zeros([3, 2], (Kind::Float, Device::Cpu)),
            Tensor::zeros([4], (Kind::Int64, Device::Cpu)),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[3, 2]") && err.contains("[4]"), "{err}");
    }
}
