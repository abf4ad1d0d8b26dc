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
    // The tar reader stops at the end-of-archive marker; the gzip stream's CRC-32 and length
    // trailer come after it (with the archive's zero padding), and a body whose corruption
    // still inflates is caught only there. Read to the end so that the decoder checks it.
    let mut decoder = tar.into_inner();
    std::io::copy(&mut decoder, &mut std::io::sink()).map_err(|e| {
        Error::format(
            archive,
            format!("corrupt gzip stream (its checksum or length does not match): {e}"),
        )
    })?;
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A `.tar.gz` of two members, compressed at `level` (0: stored blocks only).
    fn archive(level: u32) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, body) in [
            ("a/one.txt", vec![b'1'; 3000]),
            ("a/two.txt", vec![b'2'; 500]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, name, &body[..]).unwrap();
        }
        let raw = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap()
    }

    /// The members of an archive: name and bytes.
    type Members = Vec<(PathBuf, Vec<u8>)>;

    fn read(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, Result<Members>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.tar.gz");
        std::fs::write(&path, bytes).unwrap();
        let members = read_tar_gz_members(&path, |_| true);
        (dir, path, members)
    }

    #[test]
    fn an_intact_archive_reads_whole() {
        let (_d, _p, members) = read(&archive(6));
        let members = members.unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].1, vec![b'1'; 3000]);
    }

    #[test]
    fn a_damaged_gzip_trailer_is_refused_with_the_file_name() {
        // The CRC-32 is the 8th to 5th last byte: the body inflates without error, only the
        // trailer tells.
        let mut bytes = archive(6);
        let n = bytes.len();
        bytes[n - 6] ^= 0x01;
        let (_d, path, members) = read(&bytes);
        let msg = members.unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("corrupt gzip"), "{msg}");
    }

    #[test]
    fn a_flipped_bit_in_a_stored_block_is_refused_with_the_file_name() {
        // Stored (uncompressed) deflate blocks: a flipped payload bit inflates to other bytes
        // without any deflate error; only the CRC-32 catches it.
        let mut bytes = archive(0);
        let at = bytes.windows(8).position(|w| w == [b'1'; 8]).unwrap() + 100;
        bytes[at] ^= 0x04;
        let (_d, path, members) = read(&bytes);
        let msg = members.unwrap_err().to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }
}
