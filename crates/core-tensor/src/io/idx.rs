//! The IDX format of MNIST and Fashion-MNIST.
//!
//! An IDX file is a big-endian header followed by a dense payload:
//!
//! | bytes | content |
//! |---|---|
//! | 0–1 | zero |
//! | 2 | element type (`0x08` = unsigned byte; the only type accepted here) |
//! | 3 | number of dimensions *d* |
//! | 4 … 4+4*d* | each dimension as a big-endian `u32` |
//! | then | exactly the product of the dimensions, in bytes |
//!
//! Image files have the magic `0x00000803` (three dimensions: count, rows, columns) and label
//! files `0x00000801` (one dimension: count). Files may be given raw or gzip-compressed; gzip is
//! detected from its magic bytes, not from the file name.

use std::path::Path;

use tch::{Kind, Tensor};

use super::{gunzip_if_needed, read_file};
use crate::{Error, Result};

/// Magic number of an IDX file of unsigned-byte images (`[N, rows, cols]`).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (`[N]`).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The element-type byte of unsigned bytes, the only element type accepted.
pub const UBYTE: u8 = 0x08;
/// The number of classes [`read_pair`] callers use for the digit datasets.
pub const DIGIT_CLASSES: usize = 10;

/// A validated IDX header: dimensions and where the payload starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Header {
    dims: Vec<usize>,
    payload_offset: usize,
}

/// Checks the header of `bytes` against `magic` and the payload length against the dimensions.
fn parse_header(bytes: &[u8], path: &Path, magic: u32) -> Result<Header> {
    let [_, _, _, want_dims] = magic.to_be_bytes();
    let want_dims = usize::from(want_dims);
    let what = if magic == IMAGES_MAGIC {
        "an images file"
    } else {
        "a labels file"
    };
    let Some(head) = bytes.first_chunk::<4>() else {
        return Err(Error::format(
            path,
            format!(
                "file is {} bytes, too short for an IDX header (magic {magic:#010x} needs at least 4)",
                bytes.len()
            ),
        ));
    };
    let found = u32::from_be_bytes(*head);
    if head[0] != 0 || head[1] != 0 {
        return Err(Error::format(
            path,
            format!("bad magic {found:#010x}, expected {magic:#010x}: not an IDX file"),
        ));
    }
    if head[2] != UBYTE {
        return Err(Error::format(
            path,
            format!(
                "unsupported IDX element type {:#04x} (magic {found:#010x}); only {UBYTE:#04x} (unsigned byte) is supported",
                head[2]
            ),
        ));
    }
    let n_dims = usize::from(head[3]);
    if n_dims != want_dims {
        return Err(Error::format(
            path,
            format!(
                "bad magic {found:#010x}: {n_dims} dimensions, expected {want_dims} ({what}, magic {magic:#010x})"
            ),
        ));
    }
    let payload_offset = 4 + 4 * n_dims;
    let Some(dim_bytes) = bytes.get(4..payload_offset) else {
        return Err(Error::format(
            path,
            format!(
                "truncated header: file is {} bytes, the {n_dims}-dimension IDX header needs {payload_offset}",
                bytes.len()
            ),
        ));
    };
    let mut dims = Vec::with_capacity(n_dims);
    let mut expected: Option<usize> = Some(1);
    for chunk in dim_bytes.chunks_exact(4) {
        let dim = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let dim = usize::try_from(dim)
            .map_err(|_| Error::format(path, format!("dimension {dim} does not fit in memory")))?;
        expected = expected.and_then(|e| e.checked_mul(dim));
        dims.push(dim);
    }
    let shape = dims
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join("x");
    let Some(expected) = expected else {
        return Err(Error::format(
            path,
            format!("dimensions {shape} overflow the address space"),
        ));
    };
    let actual = bytes.len() - payload_offset;
    if actual != expected {
        let why = if actual < expected {
            format!("truncated: {} bytes missing", expected - actual)
        } else {
            format!("{} trailing bytes", actual - expected)
        };
        return Err(Error::format(
            path,
            format!(
                "payload length mismatch: dimensions {shape} need {expected} payload bytes, found {actual} ({why})"
            ),
        ));
    }
    Ok(Header {
        dims,
        payload_offset,
    })
}

/// Converts a validated dimension to a tensor size (every `usize` dimension here came from a
/// `u32`, so this only fails on exotic platforms).
fn to_i64(dim: usize, path: &Path) -> Result<i64> {
    i64::try_from(dim)
        .map_err(|_| Error::format(path, format!("dimension {dim} too large for a tensor")))
}

/// Parses an IDX images file (raw or gzip) into a `Kind::Uint8` tensor of shape `[N, 1, H, W]`.
///
/// `path` only names the source in errors. The payload is copied once, into the tensor.
pub fn parse_images(bytes: &[u8], path: &Path) -> Result<Tensor> {
    let bytes = gunzip_if_needed(bytes, path)?;
    let header = parse_header(&bytes, path, IMAGES_MAGIC)?;
    let size = [
        to_i64(header.dims[0], path)?,
        1,
        to_i64(header.dims[1], path)?,
        to_i64(header.dims[2], path)?,
    ];
    // `parse_header` checked the payload length equals the product of `size`, which
    // `f_from_data_size` relies on (it does not check).
    Ok(Tensor::f_from_data_size(
        &bytes[header.payload_offset..],
        &size,
        Kind::Uint8,
    )?)
}

/// Parses an IDX labels file (raw or gzip) into its raw label bytes.
fn parse_label_bytes<'a>(bytes: &'a [u8], path: &Path) -> Result<std::borrow::Cow<'a, [u8]>> {
    let bytes = gunzip_if_needed(bytes, path)?;
    let header = parse_header(&bytes, path, LABELS_MAGIC)?;
    Ok(match bytes {
        std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(&b[header.payload_offset..]),
        std::borrow::Cow::Owned(mut v) => {
            v.drain(..header.payload_offset);
            std::borrow::Cow::Owned(v)
        }
    })
}

/// Builds the `Kind::Int64` label tensor of shape `[N]`.
fn labels_tensor(labels: &[u8]) -> Result<Tensor> {
    let wide: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    Ok(Tensor::f_from_slice(&wide)?)
}

/// Parses an IDX labels file (raw or gzip) into a `Kind::Int64` tensor of shape `[N]`.
///
/// `path` only names the source in errors. Label values are not range-checked here; see
/// [`parse_pair`].
pub fn parse_labels(bytes: &[u8], path: &Path) -> Result<Tensor> {
    labels_tensor(&parse_label_bytes(bytes, path)?)
}

/// Reads and parses an IDX images file; see [`parse_images`].
pub fn read_images(path: &Path) -> Result<Tensor> {
    parse_images(&read_file(path)?, path)
}

/// Reads and parses an IDX labels file; see [`parse_labels`].
pub fn read_labels(path: &Path) -> Result<Tensor> {
    parse_labels(&read_file(path)?, path)
}

/// Parses an images file and its labels file together, checking that they hold the same number
/// of items and that every label is below `classes`.
///
/// Returns images `Kind::Uint8 [N, 1, H, W]` and labels `Kind::Int64 [N]`. A count mismatch is
/// reported on the labels file and names both files and both counts; a label out of range names
/// its index.
pub fn parse_pair(
    images: (&[u8], &Path),
    labels: (&[u8], &Path),
    classes: usize,
) -> Result<(Tensor, Tensor)> {
    let (image_bytes, image_path) = images;
    let (label_bytes, label_path) = labels;
    let label_values = parse_label_bytes(label_bytes, label_path)?;
    let images = parse_images(image_bytes, image_path)?;
    let n_images = usize::try_from(images.size()[0]).unwrap_or(usize::MAX);
    if n_images != label_values.len() {
        return Err(Error::format(
            label_path,
            format!(
                "label count mismatch: {} labels here but {n_images} images in {}",
                label_values.len(),
                image_path.display()
            ),
        ));
    }
    if let Some((index, &label)) = label_values
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= classes)
    {
        return Err(Error::format(
            label_path,
            format!("label {label} at index {index} is out of range: expected 0..{classes}"),
        ));
    }
    Ok((images, labels_tensor(&label_values)?))
}

/// Reads an images file and its labels file; see [`parse_pair`].
pub fn read_pair(images: &Path, labels: &Path, classes: usize) -> Result<(Tensor, Tensor)> {
    let image_bytes = read_file(images)?;
    let label_bytes = read_file(labels)?;
    parse_pair((&image_bytes, images), (&label_bytes, labels), classes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;
    use crate::io::test_util::assert_format_error;

    fn images_file(n: u32, h: u32, w: u32) -> Vec<u8> {
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [n, h, w] {
            b.extend(d.to_be_bytes());
        }
        b.extend((0..n * h * w).map(|i| (i % 251) as u8));
        b
    }

    fn labels_file(labels: &[u8]) -> Vec<u8> {
        let mut b = LABELS_MAGIC.to_be_bytes().to_vec();
        b.extend((labels.len() as u32).to_be_bytes());
        b.extend(labels);
        b
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn p(name: &str) -> PathBuf {
        PathBuf::from(format!("/fixtures/{name}"))
    }

    #[test]
    fn parses_raw_and_gzip_images() {
        let raw = images_file(3, 4, 5);
        for bytes in [raw.clone(), gzip(&raw)] {
            let t = parse_images(&bytes, &p("img")).unwrap();
            assert_eq!(t.kind(), Kind::Uint8);
            assert_eq!(t.size(), [3, 1, 4, 5]);
            assert_eq!(t.int64_value(&[0, 0, 0, 1]), 1);
            assert_eq!(t.int64_value(&[2, 0, 3, 4]), 59);
        }
    }

    #[test]
    fn parses_labels() {
        let t = parse_labels(&gzip(&labels_file(&[5, 0, 9])), &p("lab")).unwrap();
        assert_eq!(t.kind(), Kind::Int64);
        assert_eq!(Vec::<i64>::try_from(&t).unwrap(), [5, 0, 9]);
    }

    #[test]
    fn bad_magic() {
        let mut b = images_file(1, 2, 2);
        b[0] = 0x12;
        assert_format_error(
            parse_images(&b, &p("x")),
            &p("x"),
            &["bad magic", "0x00000803"],
        );
    }

    #[test]
    fn unsupported_element_type() {
        let mut b = images_file(1, 2, 2);
        b[2] = 0x0d; // float
        assert_format_error(
            parse_images(&b, &p("x")),
            &p("x"),
            &["element type 0x0d", "unsigned byte"],
        );
    }

    #[test]
    fn wrong_dimension_count() {
        let labels = labels_file(&[1, 2]);
        assert_format_error(
            parse_images(&labels, &p("lab")),
            &p("lab"),
            &["1 dimensions, expected 3", "images file"],
        );
        let images = images_file(1, 2, 2);
        assert_format_error(
            parse_labels(&images, &p("img")),
            &p("img"),
            &["3 dimensions, expected 1", "labels file"],
        );
    }

    #[test]
    fn short_header() {
        assert_format_error(
            parse_images(&[0, 0], &p("x")),
            &p("x"),
            &["too short", "2 bytes"],
        );
        let b = images_file(1, 2, 2);
        assert_format_error(
            parse_images(&b[..10], &p("x")),
            &p("x"),
            &["truncated header", "10 bytes", "needs 16"],
        );
    }

    #[test]
    fn truncated_payload() {
        let b = images_file(2, 3, 3);
        assert_format_error(
            parse_images(&b[..b.len() - 4], &p("x")),
            &p("x"),
            &["2x3x3 need 18", "found 14", "truncated"],
        );
        // The same holds through gzip.
        assert_format_error(
            parse_images(&gzip(&b[..b.len() - 4]), &p("x.gz")),
            &p("x.gz"),
            &["need 18", "found 14", "truncated"],
        );
    }

    #[test]
    fn trailing_bytes() {
        let mut b = labels_file(&[1, 2, 3]);
        b.extend([0, 0]);
        assert_format_error(
            parse_labels(&b, &p("lab")),
            &p("lab"),
            &["need 3", "found 5", "2 trailing bytes"],
        );
    }

    #[test]
    fn corrupt_gzip() {
        let mut b = gzip(&labels_file(&[1, 2, 3]));
        let n = b.len();
        b.truncate(n / 2);
        assert_format_error(parse_labels(&b, &p("lab.gz")), &p("lab.gz"), &["gzip"]);
    }

    #[test]
    fn dimension_overflow() {
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [u32::MAX, u32::MAX, u32::MAX] {
            b.extend(d.to_be_bytes());
        }
        assert_format_error(parse_images(&b, &p("x")), &p("x"), &["overflow"]);
    }

    #[test]
    fn pair_checks_counts_and_range() {
        let img = images_file(3, 2, 2);
        let (ip, lp) = (p("train-images"), p("train-labels"));
        let (images, labels) =
            parse_pair((&img, &ip), (&labels_file(&[1, 2, 3]), &lp), 10).unwrap();
        assert_eq!(images.size(), [3, 1, 2, 2]);
        assert_eq!(labels.size(), [3]);

        let msg = assert_format_error(
            parse_pair((&img, &ip), (&labels_file(&[1, 2]), &lp), 10),
            &lp,
            &["label count mismatch", "2 labels", "3 images"],
        );
        assert!(msg.contains(&ip.display().to_string()), "{msg}");

        assert_format_error(
            parse_pair((&img, &ip), (&labels_file(&[1, 10, 3]), &lp), 10),
            &lp,
            &["label 10 at index 1", "0..10"],
        );
        assert_format_error(
            parse_pair((&img, &ip), (&labels_file(&[1, 4, 3]), &lp), 4),
            &lp,
            &["label 4 at index 1", "0..4"],
        );
    }

    #[test]
    fn read_missing_file_is_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        match read_images(&path) {
            Err(e @ Error::Io { .. }) => assert!(e.to_string().contains("absent")),
            other => panic!("expected Error::Io, got {other:?}"),
        }
    }

    #[test]
    fn read_pair_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (ip, lp) = (dir.path().join("i"), dir.path().join("l"));
        std::fs::write(&ip, gzip(&images_file(2, 2, 2))).unwrap();
        std::fs::write(&lp, labels_file(&[7, 8])).unwrap();
        let (images, labels) = read_pair(&ip, &lp, DIGIT_CLASSES).unwrap();
        assert_eq!(images.size(), [2, 1, 2, 2]);
        assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), [7, 8]);
    }

    /// The first bytes of the real MNIST training images when the cache holds them, else a
    /// header with the same dimensions built here.
    fn real_looking_header() -> Vec<u8> {
        let real = crate::fixtures::cache_dir().join("mnist/train-images-idx3-ubyte");
        let mut head = vec![0u8; 16 + 2 * 784];
        if let Ok(mut f) = std::fs::File::open(&real) {
            use std::io::Read;
            if f.read_exact(&mut head).is_ok() {
                return head;
            }
        }
        let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [60_000u32, 28, 28] {
            b.extend(d.to_be_bytes());
        }
        b.resize(16 + 2 * 784, 0);
        b
    }

    fn parse_any(bytes: &[u8]) {
        let path = Path::new("fuzz");
        let _ = parse_images(bytes, path);
        let _ = parse_labels(bytes, path);
        let _ = parse_pair((bytes, path), (bytes, path), 10);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = images_file(2, 3, 3);
        for len in 0..b.len() {
            assert!(
                parse_images(&b[..len], Path::new("t")).is_err(),
                "len {len}"
            );
            parse_any(&b[..len]);
        }
        let head = real_looking_header();
        for len in 0..head.len() {
            parse_any(&head[..len]);
        }
    }

    proptest! {
        #[test]
        fn random_bytes_after_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..256),
                                           n in 0u32..4, h in 0u32..5, w in 0u32..5) {
            let mut b = IMAGES_MAGIC.to_be_bytes().to_vec();
            for d in [n, h, w] {
                b.extend(d.to_be_bytes());
            }
            b.extend(&tail);
            let ok = parse_images(&b, Path::new("fuzz")).is_ok();
            prop_assert_eq!(ok, tail.len() == (n * h * w) as usize);
            parse_any(&b);
            let mut real = real_looking_header();
            real.truncate(16);
            real.extend(&tail);
            parse_any(&real);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            parse_any(&bytes);
            let mut prefixed = vec![0, 0, 8, 1];
            prefixed.extend(&bytes);
            parse_any(&prefixed);
        }
    }
}
