//! The UCI optical-recognition digits as a CSV (the file scikit-learn ships as
//! `digits.csv.gz`), raw or gzip-compressed.
//!
//! Each line is 65 comma-separated integers: 64 pixel values of an 8x8 image in row-major
//! order, each in `0..=16`, then the label in `0..=9`. Spaces around fields and a trailing `\r`
//! are allowed; empty lines are not. Errors give the 1-based line number.

use std::path::Path;

use tch::{Kind, Tensor};

use super::{gunzip_if_needed, read_file};
use crate::{Error, Result};

/// Side of the square images.
pub const SIDE: usize = 8;
/// Pixels per row of the CSV.
pub const PIXELS: usize = SIDE * SIDE;
/// The largest pixel value (pixels count set bits in 4x4 blocks of a 32x32 bitmap).
pub const MAX_VALUE: u8 = 16;
/// The number of classes (digits 0–9).
pub const CLASSES: u8 = 10;

/// Parses one field as an integer in `0..=max`.
fn field(text: &[u8], path: &Path, line: usize, column: usize, max: u8) -> Result<u8> {
    let trimmed = text.trim_ascii();
    let value: u64 = std::str::from_utf8(trimmed)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "line {line}, field {column}: {:?} is not a non-negative integer",
                    String::from_utf8_lossy(trimmed)
                ),
            )
        })?;
    u8::try_from(value)
        .ok()
        .filter(|&v| v <= max)
        .ok_or_else(|| {
            let what = if column > PIXELS { "label" } else { "pixel" };
            Error::format(
                path,
                format!("line {line}, field {column}: {what} {value} out of range 0..={max}"),
            )
        })
}

/// Parses the CSV into images `Kind::Uint8 [N, 1, 8, 8]` (values `0..=16`) and labels
/// `Kind::Int64 [N]`. `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<(Tensor, Tensor)> {
    let text = gunzip_if_needed(bytes, path)?;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    if body.is_empty() {
        return Err(Error::format(path, "no rows: the file is empty"));
    }
    for (index, row) in body.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let row = row.strip_suffix(b"\r").unwrap_or(row);
        let n_fields = row.split(|&b| b == b',').count();
        if n_fields != PIXELS + 1 {
            return Err(Error::format(
                path,
                format!(
                    "line {line}: wrong field count: {n_fields} fields, expected {} (64 pixels and a label)",
                    PIXELS + 1
                ),
            ));
        }
        for (i, text) in row.split(|&b| b == b',').enumerate() {
            let column = i + 1;
            if i < PIXELS {
                pixels.push(field(text, path, line, column, MAX_VALUE)?);
            } else {
                labels.push(i64::from(field(text, path, line, column, CLASSES - 1)?));
            }
        }
    }
    let n = i64::try_from(labels.len())
        .map_err(|_| Error::format(path, "too many rows for a tensor"))?;
    let side = SIDE as i64;
    let images = Tensor::f_from_data_size(&pixels, &[n, 1, side, side], Kind::Uint8)?;
    Ok((images, Tensor::f_from_slice(&labels)?))
}

/// Reads and parses the digits CSV; see [`parse`].
pub fn read(path: &Path) -> Result<(Tensor, Tensor)> {
    parse(&read_file(path)?, path)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;
    use crate::io::test_util::assert_format_error;

    fn p() -> PathBuf {
        PathBuf::from("/fixtures/uci-digits/digits.csv.gz")
    }

    fn row(seed: u8, label: u8) -> String {
        let mut fields: Vec<String> = (0..64).map(|i| ((i + seed) % 17).to_string()).collect();
        fields.push(label.to_string());
        fields.join(",")
    }

    #[test]
    fn parses_plain_and_gzip() {
        let text = format!("{}\r\n{}\n", row(0, 0), row(3, 9));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        let gz = enc.finish().unwrap();
        for bytes in [text.as_bytes().to_vec(), gz] {
            let (images, labels) = parse(&bytes, &p()).unwrap();
            assert_eq!(images.size(), [2, 1, 8, 8]);
            assert_eq!(images.kind(), Kind::Uint8);
            assert_eq!(Vec::<i64>::try_from(&labels).unwrap(), [0, 9]);
            assert_eq!(images.int64_value(&[0, 0, 2, 1]), 17 % 17);
            assert_eq!(images.int64_value(&[1, 0, 0, 1]), 4);
        }
        // No final newline is fine too.
        assert!(parse(row(1, 1).as_bytes(), &p()).is_ok());
    }

    #[test]
    fn wrong_field_count() {
        let text = format!("{}\n{}\n", row(0, 0), "1,2,3");
        assert_format_error(
            parse(text.as_bytes(), &p()),
            &p(),
            &["line 2", "wrong field count", "3 fields, expected 65"],
        );
        let text = format!("{}\n\n{}\n", row(0, 0), row(0, 0));
        assert_format_error(parse(text.as_bytes(), &p()), &p(), &["line 2", "1 fields"]);
    }

    #[test]
    fn non_integer() {
        let text = row(0, 0).replacen("0", "0.5", 1);
        assert_format_error(
            parse(text.as_bytes(), &p()),
            &p(),
            &["line 1, field 1", "\"0.5\" is not a non-negative integer"],
        );
        let text = row(0, 0).replacen("1", "-1", 1);
        assert_format_error(parse(text.as_bytes(), &p()), &p(), &["field 2", "\"-1\""]);
        let text = row(0, 0).replacen("1", "", 1);
        assert_format_error(parse(text.as_bytes(), &p()), &p(), &["field 2", "\"\""]);
    }

    #[test]
    fn out_of_range() {
        let text = row(0, 0).replacen("16", "17", 1);
        assert_format_error(
            parse(text.as_bytes(), &p()),
            &p(),
            &["line 1, field 17", "pixel 17 out of range 0..=16"],
        );
        let text = format!("{}\n{}\n", row(0, 1), row(0, 10));
        assert_format_error(
            parse(text.as_bytes(), &p()),
            &p(),
            &["line 2, field 65", "label 10 out of range 0..=9"],
        );
        let text = row(0, 0).replacen("16", "99999999999999999999999", 1);
        assert_format_error(parse(text.as_bytes(), &p()), &p(), &["field 17"]);
    }

    #[test]
    fn empty_file() {
        assert_format_error(parse(b"", &p()), &p(), &["no rows"]);
        assert_format_error(parse(b"\n", &p()), &p(), &["no rows"]);
    }

    #[test]
    fn every_truncation_is_handled() {
        let text = format!("{}\n{}\n", row(0, 0), row(5, 7));
        for len in 0..text.len() {
            let _ = parse(&text.as_bytes()[..len], Path::new("t"));
        }
    }

    proptest! {
        #[test]
        fn random_bytes_after_valid_row(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut b = format!("{}\n", row(2, 3)).into_bytes();
            b.extend(&tail);
            let _ = parse(&b, Path::new("fuzz"));
        }

        #[test]
        fn random_csv_like_text(text in "[0-9,\n\r .-]{0,400}") {
            let _ = parse(text.as_bytes(), Path::new("fuzz"));
        }
    }
}
