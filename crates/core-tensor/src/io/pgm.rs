//! Binary 8-bit PGM (`P5`), as used by the ORL faces.
//!
//! Header rules (netpbm): the magic `P5`, then width, height and maxval as ASCII decimal
//! integers separated by whitespace (space, tab, CR, LF, VT, FF); a `#` starts a comment that
//! runs to the end of the line and may appear anywhere whitespace may. After maxval comes
//! exactly one whitespace byte, then `width * height` bytes of pixels (one byte each since
//! maxval is at most 255). 16-bit files (maxval 256..=65535), the plain-text variant `P2` and
//! several images in one file are not supported and are errors, as is any missing or extra
//! payload byte.

use std::path::Path;

use super::read_file;
use crate::{Error, Result};

/// A decoded greyscale image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pgm {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// The largest pixel value the header allows (1..=255).
    pub maxval: u8,
    /// Row-major pixels, `width * height` of them.
    pub pixels: Vec<u8>,
}

/// Whitespace as netpbm defines it.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A cursor over the header bytes.
struct Header<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Header<'_> {
    /// Skips whitespace and comments.
    fn skip_space(&mut self) {
        while let Some(&b) = self.bytes.get(self.pos) {
            if is_space(b) {
                self.pos += 1;
            } else if b == b'#' {
                while let Some(&c) = self.bytes.get(self.pos) {
                    if c == b'\n' || c == b'\r' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// Reads the next header field, a decimal integer.
    fn number(&mut self, field: &str) -> Result<u64> {
        self.skip_space();
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(&b) = self.bytes.get(self.pos) {
            if !b.is_ascii_digit() {
                break;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| {
                    Error::format(self.path, format!("bad PGM header: {field} is too large"))
                })?;
            self.pos += 1;
        }
        if self.pos == start {
            let found = match self.bytes.get(self.pos) {
                None => "end of file".to_string(),
                Some(b) => format!("byte {:?}", char::from(*b)),
            };
            return Err(Error::format(
                self.path,
                format!("bad PGM header: missing {field} (found {found})"),
            ));
        }
        Ok(value)
    }
}

/// Parses a binary 8-bit PGM. `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Pgm> {
    match bytes.get(..2) {
        Some(b"P5") => {}
        Some(b"P2") => {
            return Err(Error::format(
                path,
                "bad PGM header: plain (ASCII) PGM 'P2' is unsupported, only binary 'P5'",
            ));
        }
        _ => {
            return Err(Error::format(
                path,
                "bad PGM header: magic is not 'P5' (not a binary PGM file)",
            ));
        }
    }
    let mut header = Header {
        bytes,
        pos: 2,
        path,
    };
    if !bytes
        .get(2)
        .copied()
        .is_some_and(|b| is_space(b) || b == b'#')
    {
        return Err(Error::format(
            path,
            "bad PGM header: magic 'P5' must be followed by whitespace",
        ));
    }
    let width = header.number("width")?;
    let height = header.number("height")?;
    let maxval = header.number("maxval")?;
    if width == 0 || height == 0 {
        return Err(Error::format(
            path,
            format!("bad PGM header: image size {width}x{height} is empty"),
        ));
    }
    let maxval = match maxval {
        1..=255 => maxval as u8,
        256..=65535 => {
            return Err(Error::format(
                path,
                format!("unsupported 16-bit PGM (maxval {maxval}); only maxval 1..=255"),
            ));
        }
        _ => {
            return Err(Error::format(
                path,
                format!("bad PGM header: maxval {maxval} is outside 1..=65535"),
            ));
        }
    };
    match bytes.get(header.pos) {
        Some(&b) if is_space(b) => header.pos += 1,
        Some(&b) => {
            return Err(Error::format(
                path,
                format!(
                    "bad PGM header: maxval must be followed by one whitespace byte, found {:?}",
                    char::from(b)
                ),
            ));
        }
        None => {
            return Err(Error::format(
                path,
                format!("truncated: file ends after the header, expected {width}x{height} pixels"),
            ));
        }
    }
    let too_large = || {
        Error::format(
            path,
            format!("bad PGM header: {width}x{height} is too large"),
        )
    };
    let w = usize::try_from(width).map_err(|_| too_large())?;
    let h = usize::try_from(height).map_err(|_| too_large())?;
    let expected = w.checked_mul(h).ok_or_else(too_large)?;
    let payload = &bytes[header.pos..];
    if payload.len() != expected {
        let why = if payload.len() < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(Error::format(
            path,
            format!(
                "{why}: {width}x{height} needs {expected} pixel bytes, found {}",
                payload.len()
            ),
        ));
    }
    Ok(Pgm {
        width: w,
        height: h,
        maxval,
        pixels: payload.to_vec(),
    })
}

/// Reads and parses a PGM file; see [`parse`].
pub fn read(path: &Path) -> Result<Pgm> {
    parse(&read_file(path)?, path)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;
    use crate::io::test_util::assert_format_error;

    fn p() -> PathBuf {
        PathBuf::from("/fixtures/orl_faces.tar.gz/orl_faces/s1/1.pgm")
    }

    fn pgm(header: &str, pixels: usize) -> Vec<u8> {
        let mut b = header.as_bytes().to_vec();
        b.extend((0..pixels).map(|i| i as u8));
        b
    }

    #[test]
    fn parses_with_comments_and_whitespace() {
        let b = pgm("P5\n# a comment\n3 # trailing comment\r\n\t2\n#x\n255\n", 6);
        let img = parse(&b, &p()).unwrap();
        assert_eq!((img.width, img.height, img.maxval), (3, 2, 255));
        assert_eq!(img.pixels, [0, 1, 2, 3, 4, 5]);
        // The single whitespace after maxval may be a space, and pixel bytes may look like
        // whitespace or '#'.
        let mut b = b"P5 2 1 15 ".to_vec();
        b.extend([b'\n', b'#']);
        assert_eq!(parse(&b, &p()).unwrap().pixels, [b'\n', b'#']);
    }

    #[test]
    fn orl_like_header() {
        let b = pgm("P5\n92 112\n255\n", 92 * 112);
        let img = parse(&b, &p()).unwrap();
        assert_eq!((img.width, img.height), (92, 112));
    }

    #[test]
    fn plain_p2_is_unsupported() {
        let b = pgm("P2\n2 2\n255\n", 0);
        assert_format_error(
            parse(&b, &p()),
            &p(),
            &["bad PGM header", "'P2' is unsupported"],
        );
    }

    #[test]
    fn bad_magic() {
        assert_format_error(parse(b"P6\n1 1\n255\n\0\0\0", &p()), &p(), &["not 'P5'"]);
        assert_format_error(parse(b"", &p()), &p(), &["not 'P5'"]);
        assert_format_error(
            parse(b"P51 1 255 x", &p()),
            &p(),
            &["followed by whitespace"],
        );
    }

    #[test]
    fn missing_fields() {
        assert_format_error(
            parse(b"P5\n2 2\n", &p()),
            &p(),
            &["bad PGM header", "missing maxval", "end of file"],
        );
        assert_format_error(
            parse(b"P5\n2 x\n255\n", &p()),
            &p(),
            &["missing height", "'x'"],
        );
        assert_format_error(parse(b"P5\n0 2\n255\n", &p()), &p(), &["0x2 is empty"]);
        assert_format_error(
            parse(b"P5 99999999999999999999999 1 255\n", &p()),
            &p(),
            &["width is too large"],
        );
    }

    #[test]
    fn sixteen_bit_is_unsupported() {
        let b = pgm("P5\n2 2\n65535\n", 8);
        assert_format_error(
            parse(&b, &p()),
            &p(),
            &["unsupported 16-bit PGM", "maxval 65535"],
        );
        let b = pgm("P5\n2 2\n0\n", 4);
        assert_format_error(parse(&b, &p()), &p(), &["maxval 0"]);
        let b = pgm("P5\n2 2\n70000\n", 4);
        assert_format_error(parse(&b, &p()), &p(), &["maxval 70000"]);
    }

    #[test]
    fn truncated_and_trailing_payload() {
        let b = pgm("P5\n4 3\n255\n", 11);
        assert_format_error(
            parse(&b, &p()),
            &p(),
            &["truncated", "4x3 needs 12 pixel bytes, found 11"],
        );
        assert_format_error(parse(b"P5\n4 3\n255", &p()), &p(), &["truncated", "4x3"]);
        let b = pgm("P5\n4 3\n255\n", 13);
        assert_format_error(parse(&b, &p()), &p(), &["trailing bytes", "found 13"]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let b = pgm("P5\n# c\n4 3\n255\n", 12);
        for len in 0..b.len() {
            assert!(parse(&b[..len], Path::new("t")).is_err(), "len {len}");
        }
        assert!(parse(&b, Path::new("t")).is_ok());
    }

    proptest! {
        #[test]
        fn random_bytes_after_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut b = b"P5\n92 112\n255\n".to_vec();
            b.extend(&tail);
            prop_assert!(parse(&b, Path::new("fuzz")).is_err());
            let mut b = b"P5\n".to_vec();
            b.extend(&tail);
            let _ = parse(&b, Path::new("fuzz"));
        }

        #[test]
        fn random_headers(header in "P5[ #\n0-9a]{0,24}", pixels in 0usize..64) {
            let _ = parse(&pgm(&header, pixels), Path::new("fuzz"));
        }
    }
}
