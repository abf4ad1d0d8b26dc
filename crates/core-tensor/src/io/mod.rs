//! Pure-Rust parsers for the file formats of the fixture datasets.
//!
//! Each format module offers a `parse*` function that takes the bytes and the path they came
//! from (used only in error messages; for an archive member pass `archive.tar.gz/member`), and
//! a `read*` function that reads a file first. Parsers validate everything that comes from the
//! file (magic numbers, header fields, payload lengths) and answer with [`Error::Format`]
//! naming the file and the problem; they never panic on malformed input.
//!
//! - [`idx`]: the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).
//! - [`wav`]: RIFF/WAVE, 16-bit mono PCM (the Free Spoken Digit Dataset).
//! - [`pgm`]: binary 8-bit PGM, `P5` (the ORL faces).
//! - [`uci`]: the CSV of the UCI optical digits as shipped by scikit-learn (raw or gzip).

pub mod idx;
pub mod pgm;
pub mod uci;
pub mod wav;

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The two bytes every gzip stream starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether `bytes` start like a gzip stream.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Returns `bytes` decompressed if they are a gzip stream (detected by its magic), else as is.
///
/// Concatenated gzip members are decompressed one after the other, as `gunzip` does.
pub fn gunzip_if_needed<'a>(bytes: &'a [u8], path: &Path) -> Result<Cow<'a, [u8]>> {
    if !is_gzip(bytes) {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(path, format!("corrupt gzip stream: {e}")))?;
    Ok(Cow::Owned(out))
}

/// Reads a whole file with one `std::fs::read`, mapping failure to [`Error::Io`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Reads the regular-file members of a `.tar.gz` archive whose path `keep` accepts, in archive
/// order, as `(member path, contents)`. Nothing is extracted to disk.
pub(crate) fn read_tar_gz_members(
    archive: &Path,
    mut keep: impl FnMut(&Path) -> bool,
) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let decoder = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let mut tar = tar::Archive::new(decoder);
    let mut members = Vec::new();
    for entry in tar.entries().map_err(|e| Error::io(archive, e))? {
        let mut entry = entry.map_err(|e| Error::io(archive, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry
            .path()
            .map_err(|e| Error::format(archive, format!("unreadable member name: {e}")))?
            .into_owned();
        if !keep(&member) {
            continue;
        }
        // The size is only a capacity hint; `read_to_end` reads what is really there.
        let hint = usize::try_from(entry.size()).unwrap_or(0).min(1 << 26);
        let mut contents = Vec::with_capacity(hint);
        entry
            .read_to_end(&mut contents)
            .map_err(|e| Error::io(archive.join(&member), e))?;
        members.push((member, contents));
    }
    tracing::debug!(archive = %archive.display(), members = members.len(), "read tar.gz members");
    Ok(members)
}

/// Helpers shared by the parsers' unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::Path;

    use crate::Error;

    /// Asserts `result` is an [`Error::Format`] for `path` whose message contains every one of
    /// `needles`, and returns the message.
    #[track_caller]
    pub(crate) fn assert_format_error<T: std::fmt::Debug>(
        result: crate::Result<T>,
        path: &Path,
        needles: &[&str],
    ) -> String {
        match result {
            Err(err @ Error::Format { .. }) => {
                let Error::Format { path: got, .. } = &err else {
                    unreachable!()
                };
                assert_eq!(got, path, "error names the wrong file: {err}");
                let message = err.to_string();
                assert!(
                    message.contains(&path.display().to_string()),
                    "message does not name the file: {message}"
                );
                for needle in needles {
                    assert!(
                        message.contains(needle),
                        "message lacks {needle:?}: {message}"
                    );
                }
                message
            }
            other => panic!("expected Error::Format, got {other:?}"),
        }
    }
}
