//! NumPy arrays: `.npy` files and `.npz` archives of named arrays.
//!
//! Arrays are read by `ndarray-npy`; the element types read are `uint8`, `int8`, `int16`,
//! `uint16`, `int32`, `uint32`, `int64`, `float32`, `float64` and `bool`, little- or big-endian,
//! C or Fortran order. Plain [`read_tensor`] / [`Npz::tensor`] keep the array as it is (its
//! shape, and the matching `Kind`; `uint16` becomes `Int32`, `uint32` `Int64`). The image and
//! label readers shape it for training:
//!
//! - **images** ([`read_images`], [`Npz::images`]): `uint8` scaled to `[0, 1]` (divided by
//!   255), floats kept as they are (as `Kind::Float`); `(N, H, W)` gets a channel axis,
//!   `(N, C, H, W)` with `C` 1 or 3 is kept, `(N, H, W, C)` with `C` 1 or 3 (MedMNIST's colour
//!   sets) is made channel-first. A 4-D array whose second axis is 1 or 3 is read as
//!   channel-first.
//! - **labels** ([`read_labels`], [`Npz::labels`]): `(N,)` or `(N, 1)` of any integer type (or
//!   floats that are all whole numbers), not negative, as `Kind::Int64` `[N]`.
//!
//! A MedMNIST archive (`pneumoniamnist.npz`: `train_images` (2428, 28, 28) uint8,
//! `train_labels` (2428, 1) uint8, `val_*`, `test_*`) loads with [`Npz::split`]:
//!
//! ```no_run
//! use core_tensor::loaders::npy::Npz;
//! let mut npz = Npz::open("pneumoniamnist.npz".as_ref())?;
//! let val = npz.split("val")?;
//! assert_eq!(val.inputs.size(), [524, 1, 28, 28]);
//! # Ok::<(), core_tensor::Error>(())
//! ```
//!
//! Errors name the file, or `archive.npz/array` for a member of an archive: a file that is
//! not `.npy`, a truncated one, an unsupported element type, a wrong shape or type for images
//! or labels, a missing array (the message lists the arrays present), images and labels of
//! different lengths.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, ReadNpyError, ReadNpyExt, ReadNpzError, ReadableElement};
use tch::{Kind, Tensor};

use super::unit_float;
use crate::data::TensorDataset;
use crate::{Error, Result};

/// The first bytes of every `.npy` file.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// The element types read, in the order they are tried, as NumPy names them.
const SUPPORTED: &str = "uint8, int8, int16, uint16, int32, uint32, int64, float32, float64, bool";

/// Where an array's bytes come from: a `.npy` file in memory or a member of an archive.
trait ArraySource {
    /// The array if its element type is `T`; a `ReadNpyError::WrongDescriptor` otherwise.
    fn read<T: ReadableElement>(&mut self) -> std::result::Result<ArrayD<T>, ReadNpyError>;
}

/// A `.npy` file's bytes.
struct NpyBytes<'a>(&'a [u8]);

impl ArraySource for NpyBytes<'_> {
    fn read<T: ReadableElement>(&mut self) -> std::result::Result<ArrayD<T>, ReadNpyError> {
        ArrayD::<T>::read_npy(self.0)
    }
}

/// A member of an `.npz` archive.
struct NpzMember<'a, R: Read + Seek> {
    reader: &'a mut NpzReader<R>,
    name: &'a str,
}

impl<R: Read + Seek> ArraySource for NpzMember<'_, R> {
    fn read<T: ReadableElement>(&mut self) -> std::result::Result<ArrayD<T>, ReadNpyError> {
        match self.reader.by_name::<OwnedRepr<T>, IxDyn>(self.name) {
            Ok(a) => Ok(a),
            Err(ReadNpzError::Npy(e)) => Err(e),
            Err(ReadNpzError::Zip(e)) => Err(ReadNpyError::Io(std::io::Error::other(format!(
                "zip archive: {e}"
            )))),
        }
    }
}

/// `array` as a tensor of the same shape.
fn to_tensor<T: tch::kind::Element + Copy>(array: &ArrayD<T>) -> Result<Tensor> {
    let shape: Vec<i64> = array.shape().iter().map(|&d| d as i64).collect();
    let flat = match array.as_slice() {
        Some(s) => Tensor::f_from_slice(s)?,
        // Fortran order: `iter` walks the logical (row-major) order.
        None => Tensor::f_from_slice(&array.iter().copied().collect::<Vec<T>>())?,
    };
    Ok(flat.f_reshape(&shape)?)
}

/// `array` converted element-wise to `U` (a type tch stores), as a tensor.
fn widened<T: Copy, U: tch::kind::Element + Copy>(
    array: &ArrayD<T>,
    f: impl Fn(T) -> U,
) -> Result<Tensor> {
    to_tensor(&array.mapv(f))
}

/// What a failed read of `path` means, in words.
fn describe(e: &ReadNpyError) -> String {
    match e {
        ReadNpyError::MissingData | ReadNpyError::Io(_) => {
            format!("truncated or unreadable array data ({e}); write the file again")
        }
        ReadNpyError::ParseHeader(_) => format!(
            "not a NumPy .npy array ({e}); write it with numpy.save (or numpy.savez for .npz)"
        ),
        ReadNpyError::ExtraBytes(n) => {
            format!("{n} bytes after the array data; the file is not one .npy array")
        }
        other => other.to_string(),
    }
}

/// Reads the array of `source` into a tensor, trying each supported element type.
fn read_any(source: &mut impl ArraySource, path: &Path) -> Result<Tensor> {
    macro_rules! attempt {
        ($t:ty, $convert:expr) => {
            match source.read::<$t>() {
                Ok(a) => return $convert(&a),
                Err(ReadNpyError::WrongDescriptor(_)) => {}
                Err(e) => return Err(Error::format(path, describe(&e))),
            }
        };
    }
    attempt!(u8, to_tensor::<u8>);
    attempt!(i8, to_tensor::<i8>);
    attempt!(i16, to_tensor::<i16>);
    attempt!(u16, |a| widened(a, i32::from));
    attempt!(i32, to_tensor::<i32>);
    attempt!(u32, |a| widened(a, i64::from));
    attempt!(i64, to_tensor::<i64>);
    attempt!(f32, to_tensor::<f32>);
    attempt!(f64, to_tensor::<f64>);
    attempt!(bool, to_tensor::<bool>);
    let descr = match source.read::<u8>() {
        Err(ReadNpyError::WrongDescriptor(d)) => d.to_string(),
        _ => "?".into(),
    };
    Err(Error::format(
        path,
        format!("unsupported element type {descr}; supported: {SUPPORTED}"),
    ))
}

/// Reads one `.npy` file as a tensor of its shape and element type (see the
/// [module documentation](self) for the types).
pub fn read_tensor(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if !bytes.starts_with(NPY_MAGIC) {
        return Err(Error::format(
            path,
            "not a NumPy .npy array (it does not start with \\x93NUMPY); write it with numpy.save",
        ));
    }
    read_any(&mut NpyBytes(&bytes), path)
}

/// Reads a `.npy` file of images as `Kind::Float` `[N, C, H, W]` (see the
/// [module documentation](self) for the shapes and scaling).
pub fn read_images(path: &Path) -> Result<Tensor> {
    as_images(read_tensor(path)?, path)
}

/// Reads a `.npy` file of class labels as `Kind::Int64` `[N]`.
pub fn read_labels(path: &Path) -> Result<Tensor> {
    as_labels(read_tensor(path)?, path)
}

/// Reads images and labels from two `.npy` files and pairs them.
pub fn load(images: &Path, labels: &Path) -> Result<TensorDataset> {
    pair(read_images(images)?, images, read_labels(labels)?, labels)
}

/// `t` (read from `path`) as images `[N, C, H, W]` in float.
fn as_images(t: Tensor, path: &Path) -> Result<Tensor> {
    let kind = t.kind();
    let x = match kind {
        Kind::Uint8 => unit_float(&t)?,
        Kind::Float => t,
        Kind::Double | Kind::Half | Kind::BFloat16 => t.f_to_kind(Kind::Float)?,
        other => {
            return Err(Error::format(
                path,
                format!(
                    "images must be uint8 (scaled to [0, 1]) or float, found {}",
                    numpy_name(other)
                ),
            ));
        }
    };
    let size = x.size();
    let channels = |c: i64| c == 1 || c == 3;
    match size.as_slice() {
        [_, _, _] => Ok(x.f_unsqueeze(1)?),
        [_, c, _, _] if channels(*c) => Ok(x),
        [_, _, _, c] if channels(*c) => Ok(x.f_permute([0, 3, 1, 2])?.f_contiguous()?),
        _ => Err(Error::format(
            path,
            format!(
                "images of shape {size:?}: expected (N, H, W), (N, C, H, W) or (N, H, W, C) with \
                 C 1 or 3"
            ),
        )),
    }
}

/// `t` (read from `path`) as int64 class labels `[N]`.
fn as_labels(t: Tensor, path: &Path) -> Result<Tensor> {
    let size = t.size();
    let t = match size.as_slice() {
        [_] => t,
        [n, 1] => t.f_reshape([*n])?,
        _ => {
            return Err(Error::format(
                path,
                format!(
                    "labels of shape {size:?}: expected (N,) or (N, 1) class indices (one label \
                     per example; multi-label targets are not class labels)"
                ),
            ));
        }
    };
    let labels = match t.kind() {
        Kind::Uint8 | Kind::Int8 | Kind::Int16 | Kind::Int | Kind::Int64 => {
            t.f_to_kind(Kind::Int64)?
        }
        Kind::Float | Kind::Double => {
            let whole = t.f_eq_tensor(&t.f_round()?)?.f_all()?.f_int64_value(&[])? != 0;
            if !whole {
                return Err(Error::format(
                    path,
                    "labels are floats with a fractional part; class labels must be whole numbers",
                ));
            }
            t.f_to_kind(Kind::Int64)?
        }
        other => {
            return Err(Error::format(
                path,
                format!("labels must be integers, found {}", numpy_name(other)),
            ));
        }
    };
    if labels.numel() > 0 {
        let min = labels.f_min()?.f_int64_value(&[])?;
        if min < 0 {
            return Err(Error::format(
                path,
                format!("label {min} is negative; class labels are 0, 1, 2, …"),
            ));
        }
    }
    Ok(labels)
}

/// Pairs images and labels, checking their lengths.
fn pair(
    images: Tensor,
    images_path: &Path,
    labels: Tensor,
    labels_path: &Path,
) -> Result<TensorDataset> {
    let (n, m) = (images.size()[0], labels.size()[0]);
    if n != m {
        return Err(Error::format(
            labels_path,
            format!(
                "{m} labels for the {n} images of {}; both must have one entry per example",
                images_path.display()
            ),
        ));
    }
    TensorDataset::new(images, labels)
}

/// The NumPy name of a tensor kind, for messages.
fn numpy_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Uint8 => "uint8",
        Kind::Int8 => "int8",
        Kind::Int16 => "int16",
        Kind::Int => "int32 (or uint16)",
        Kind::Int64 => "int64 (or uint32)",
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::Bool => "bool",
        _ => "another type",
    }
}

/// An open `.npz` archive of named arrays.
pub struct Npz {
    path: PathBuf,
    reader: NpzReader<BufReader<File>>,
    names: Vec<String>,
}

impl std::fmt::Debug for Npz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Npz")
            .field("path", &self.path)
            .field("names", &self.names)
            .finish()
    }
}

impl Npz {
    /// Opens the archive at `path` and lists its arrays (nothing else is read yet).
    pub fn open(path: &Path) -> Result<Npz> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let not_npz = |e: ReadNpzError| {
            Error::format(
                path,
                format!(
                    "not an .npz archive ({e}); write it with numpy.savez or numpy.savez_compressed"
                ),
            )
        };
        let mut reader = NpzReader::new(BufReader::new(file)).map_err(not_npz)?;
        let mut names = reader.names().map_err(not_npz)?;
        names.sort();
        Ok(Npz {
            path: path.to_path_buf(),
            reader,
            names,
        })
    }

    /// The archive's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the arrays in the archive, sorted (without the `.npy` of the members).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `archive.npz/name`, the path errors about an array give.
    fn member_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The array `name` as a tensor of its shape and element type.
    pub fn tensor(&mut self, name: &str) -> Result<Tensor> {
        if !self.names.iter().any(|n| n == name) {
            return Err(Error::format(
                &self.path,
                format!(
                    "no array named {name:?}; the archive holds: {}",
                    self.names.join(", ")
                ),
            ));
        }
        let member = self.member_path(name);
        read_any(
            &mut NpzMember {
                reader: &mut self.reader,
                name,
            },
            &member,
        )
    }

    /// The array `name` as images, `Kind::Float` `[N, C, H, W]`.
    pub fn images(&mut self, name: &str) -> Result<Tensor> {
        let t = self.tensor(name)?;
        as_images(t, &self.member_path(name))
    }

    /// The array `name` as class labels, `Kind::Int64` `[N]`.
    pub fn labels(&mut self, name: &str) -> Result<Tensor> {
        let t = self.tensor(name)?;
        as_labels(t, &self.member_path(name))
    }

    /// The arrays `images` and `labels` as one dataset.
    pub fn dataset(&mut self, images: &str, labels: &str) -> Result<TensorDataset> {
        let x = self.images(images)?;
        let y = self.labels(labels)?;
        pair(x, &self.member_path(images), y, &self.member_path(labels))
    }

    /// The arrays `<split>_images` and `<split>_labels` (MedMNIST's naming: `train`, `val`,
    /// `test`) as one dataset.
    pub fn split(&mut self, split: &str) -> Result<TensorDataset> {
        self.dataset(&format!("{split}_images"), &format!("{split}_labels"))
    }
}
