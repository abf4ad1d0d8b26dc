//! RIFF/WAVE audio, restricted to what the Free Spoken Digit Dataset uses: uncompressed PCM
//! (format tag 1), one channel, 16 bits per sample.
//!
//! The parser walks the chunk list: unknown chunks (`LIST`, `fact`, …) are skipped, and a chunk
//! with an odd size is followed by one pad byte, as RIFF requires. The `fmt ` and `data` chunks
//! may come in either order, and each must appear exactly once.
//!
//! Decisions about sloppy files, since every writer gets something wrong:
//! - The RIFF size field is only used to bound the walk (bytes after the RIFF chunk are
//!   ignored); a RIFF size beyond the end of the file is tolerated, because every chunk's own
//!   size is checked against the bytes that are really there.
//! - A `data` chunk whose size runs past the end of the file is an error, not silently cut:
//!   all 3,000 FSDD recordings (v1.0.10 archive) were checked and none does this (each is exactly
//!   `fmt ` (16 bytes) + `data`, with a consistent RIFF size), so a short file means a damaged
//!   download. The same holds for any other chunk that runs past the end.
//! - A missing pad byte after an odd-sized final chunk is tolerated.

use std::path::Path;

use super::read_file;
use crate::{Error, Result};

/// The WAVE format tag of integer PCM, the only encoding accepted.
pub const FORMAT_PCM: u16 = 1;

/// A decoded mono recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// The samples, scaled from `i16` to `[-1, 1)` by dividing by 32768.
    pub samples: Vec<f32>,
}

/// Reads a little-endian `u16` at `at` (the caller has checked the bounds).
fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Reads a little-endian `u32` at `at` (the caller has checked the bounds).
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Shows a chunk id in messages, escaping bytes that are not printable ASCII.
fn show_id(id: &[u8]) -> String {
    id.iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

/// Checks the `fmt ` chunk body and returns the sample rate.
fn parse_fmt(body: &[u8], path: &Path) -> Result<u32> {
    if body.len() < 16 {
        return Err(Error::format(
            path,
            format!("fmt chunk is {} bytes, needs at least 16", body.len()),
        ));
    }
    let format_tag = le16(body, 0);
    let channels = le16(body, 2);
    let sample_rate = le32(body, 4);
    let block_align = le16(body, 12);
    let bits = le16(body, 14);
    if format_tag != FORMAT_PCM {
        let name = match format_tag {
            3 => " (IEEE float)",
            6 => " (A-law)",
            7 => " (mu-law)",
            0xFFFE => " (WAVE_FORMAT_EXTENSIBLE)",
            _ => "",
        };
        return Err(Error::format(
            path,
            format!(
                "unsupported WAV encoding: format tag {format_tag}{name}, only PCM (tag 1) is supported"
            ),
        ));
    }
    if channels != 1 {
        return Err(Error::format(
            path,
            format!("unsupported WAV encoding: {channels} channels, only mono (1) is supported"),
        ));
    }
    if bits != 16 {
        return Err(Error::format(
            path,
            format!("unsupported WAV encoding: {bits} bits per sample, only 16 is supported"),
        ));
    }
    if block_align != 2 {
        return Err(Error::format(
            path,
            format!("inconsistent fmt chunk: block align {block_align}, 16-bit mono needs 2"),
        ));
    }
    if sample_rate == 0 {
        return Err(Error::format(path, "fmt chunk has a sample rate of 0"));
    }
    Ok(sample_rate)
}

/// Parses a 16-bit mono PCM WAV file. `path` only names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Wav> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(Error::format(
            path,
            "not a RIFF/WAVE file (expected \"RIFF\" <size> \"WAVE\" at the start)",
        ));
    }
    let riff_end = usize::try_from(le32(bytes, 4))
        .ok()
        .and_then(|size| size.checked_add(8))
        .map_or(bytes.len(), |end| end.min(bytes.len()));
    let mut pos = 12;
    let mut fmt: Option<&[u8]> = None;
    let mut data: Option<&[u8]> = None;
    while pos < riff_end {
        let remaining = riff_end - pos;
        if remaining < 8 {
            return Err(Error::format(
                path,
                format!("truncated chunk header: {remaining} bytes left at offset {pos}, need 8"),
            ));
        }
        let id = &bytes[pos..pos + 4];
        let size = le32(bytes, pos + 4);
        let body_start = pos + 8;
        let available = riff_end - body_start;
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        if size_usize > available {
            let what = if id == b"data" {
                "truncated data chunk"
            } else {
                "truncated chunk"
            };
            return Err(Error::format(
                path,
                format!(
                    "{what}: chunk '{}' at offset {pos} declares {size} bytes but only {available} remain",
                    show_id(id)
                ),
            ));
        }
        let body = &bytes[body_start..body_start + size_usize];
        let slot = match id {
            b"fmt " => Some(&mut fmt),
            b"data" => Some(&mut data),
            _ => {
                tracing::trace!(path = %path.display(), chunk = %show_id(id), size, "skipping WAV chunk");
                None
            }
        };
        if let Some(slot) = slot {
            if slot.is_some() {
                return Err(Error::format(
                    path,
                    format!("more than one '{}' chunk", show_id(id)),
                ));
            }
            *slot = Some(body);
        }
        // Odd-sized chunks are followed by a pad byte (which may be missing at the very end).
        pos = body_start + size_usize + (size_usize & 1);
    }
    let fmt = fmt.ok_or_else(|| Error::format(path, "missing fmt chunk"))?;
    let sample_rate = parse_fmt(fmt, path)?;
    let data = data.ok_or_else(|| Error::format(path, "missing data chunk"))?;
    if data.len() % 2 != 0 {
        return Err(Error::format(
            path,
            format!(
                "data chunk is {} bytes, not a whole number of 16-bit samples",
                data.len()
            ),
        ));
    }
    let samples = data
        .chunks_exact(2)
        .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
        .collect();
    Ok(Wav {
        sample_rate,
        samples,
    })
}

/// Reads and parses a WAV file; see [`parse`].
pub fn read(path: &Path) -> Result<Wav> {
    parse(&read_file(path)?, path)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use proptest::prelude::*;

    use super::*;
    use crate::io::test_util::assert_format_error;

    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend((body.len() as u32).to_le_bytes());
        c.extend(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn fmt_body(tag: u16, channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut b = Vec::new();
        b.extend(tag.to_le_bytes());
        b.extend(channels.to_le_bytes());
        b.extend(rate.to_le_bytes());
        b.extend((rate * u32::from(align)).to_le_bytes());
        b.extend(align.to_le_bytes());
        b.extend(bits.to_le_bytes());
        b
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut b = b"RIFF".to_vec();
        b.extend((body.len() as u32 + 4).to_le_bytes());
        b.extend(b"WAVE");
        b.extend(body);
        b
    }

    fn pcm(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn p() -> PathBuf {
        PathBuf::from("/fixtures/recordings/3_theo_7.wav")
    }

    #[test]
    fn parses_mono_pcm16_and_skips_unknown_chunks() {
        let b = riff(&[
            chunk(b"LIST", b"odd"), // odd size: padded
            chunk(b"fmt ", &fmt_body(1, 1, 8000, 16)),
            chunk(b"junk", &[1, 2, 3, 4]),
            chunk(b"data", &pcm(&[0, 16384, -32768, 32767])),
        ]);
        let wav = parse(&b, &p()).unwrap();
        assert_eq!(wav.sample_rate, 8000);
        assert_eq!(wav.samples, [0.0, 0.5, -1.0, 32767.0 / 32768.0]);
    }

    #[test]
    fn data_before_fmt_and_missing_final_pad() {
        let mut b = riff(&[
            chunk(b"data", &pcm(&[1, 2])),
            chunk(b"fmt ", &fmt_body(1, 1, 16000, 16)),
            chunk(b"note", b"x"),
        ]);
        b.pop(); // drop the final pad byte
        let wav = parse(&b, &p()).unwrap();
        assert_eq!(wav.sample_rate, 16000);
        assert_eq!(wav.samples.len(), 2);
    }

    #[test]
    fn not_riff_wave() {
        let mut b = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 8000, 16))]);
        b[8..12].copy_from_slice(b"AVI ");
        assert_format_error(parse(&b, &p()), &p(), &["not a RIFF/WAVE file"]);
        assert_format_error(parse(b"RIFF", &p()), &p(), &["not a RIFF/WAVE file"]);
    }

    #[test]
    fn missing_chunks() {
        let b = riff(&[chunk(b"data", &pcm(&[1]))]);
        assert_format_error(parse(&b, &p()), &p(), &["missing fmt chunk"]);
        let b = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 8000, 16))]);
        assert_format_error(parse(&b, &p()), &p(), &["missing data chunk"]);
    }

    #[test]
    fn unsupported_encodings() {
        let data = chunk(b"data", &pcm(&[1, 2]));
        let cases: [(Vec<u8>, &[&str]); 4] = [
            (
                fmt_body(3, 1, 8000, 32),
                &["unsupported WAV encoding", "format tag 3", "IEEE float"],
            ),
            (
                fmt_body(0xFFFE, 1, 8000, 16),
                &["format tag 65534", "EXTENSIBLE"],
            ),
            (
                fmt_body(1, 2, 8000, 16),
                &["unsupported WAV encoding", "2 channels"],
            ),
            (
                fmt_body(1, 1, 8000, 8),
                &["unsupported WAV encoding", "8 bits per sample"],
            ),
        ];
        for (fmt, needles) in cases {
            let b = riff(&[chunk(b"fmt ", &fmt), data.clone()]);
            assert_format_error(parse(&b, &p()), &p(), needles);
        }
    }

    #[test]
    fn short_fmt_and_bad_align() {
        let b = riff(&[chunk(b"fmt ", &[1, 0, 1, 0]), chunk(b"data", &pcm(&[1]))]);
        assert_format_error(parse(&b, &p()), &p(), &["fmt chunk is 4 bytes"]);
        let mut fmt = fmt_body(1, 1, 8000, 16);
        fmt[12] = 4;
        let b = riff(&[chunk(b"fmt ", &fmt), chunk(b"data", &pcm(&[1]))]);
        assert_format_error(parse(&b, &p()), &p(), &["block align 4"]);
    }

    #[test]
    fn truncated_data_chunk() {
        let b = riff(&[
            chunk(b"fmt ", &fmt_body(1, 1, 8000, 16)),
            chunk(b"data", &pcm(&[1, 2, 3, 4])),
        ]);
        assert_format_error(
            parse(&b[..b.len() - 3], &p()),
            &p(),
            &["truncated data chunk", "declares 8 bytes", "only 5 remain"],
        );
    }

    #[test]
    fn odd_data_and_duplicate_chunks() {
        let b = riff(&[
            chunk(b"fmt ", &fmt_body(1, 1, 8000, 16)),
            chunk(b"data", &[1, 2, 3]),
        ]);
        assert_format_error(
            parse(&b, &p()),
            &p(),
            &["not a whole number of 16-bit samples"],
        );
        let fmt = chunk(b"fmt ", &fmt_body(1, 1, 8000, 16));
        let b = riff(&[fmt.clone(), fmt, chunk(b"data", &pcm(&[1]))]);
        assert_format_error(parse(&b, &p()), &p(), &["more than one 'fmt ' chunk"]);
    }

    #[test]
    fn every_truncation_is_handled() {
        let b = riff(&[
            chunk(b"LIST", b"abc"),
            chunk(b"fmt ", &fmt_body(1, 1, 8000, 16)),
            chunk(b"data", &pcm(&[1, -2, 3, -4, 5])),
        ]);
        for len in 0..b.len() {
            // Only dropping the last pad byte could be fine, and the data chunk is even-sized.
            assert!(parse(&b[..len], Path::new("t")).is_err(), "len {len}");
        }
        assert!(parse(&b, Path::new("t")).is_ok());
    }

    proptest! {
        #[test]
        fn random_bytes_after_valid_header(tail in proptest::collection::vec(any::<u8>(), 0..128)) {
            let mut b = riff(&[chunk(b"fmt ", &fmt_body(1, 1, 8000, 16))]);
            b.extend(&tail);
            let _ = parse(&b, Path::new("fuzz"));
            // Also with a RIFF size that covers the tail, so the tail is walked as chunks.
            let size = (b.len() - 8) as u32;
            b[4..8].copy_from_slice(&size.to_le_bytes());
            let _ = parse(&b, Path::new("fuzz"));
        }

        #[test]
        fn random_chunk_sizes(sizes in proptest::collection::vec(any::<u32>(), 1..4),
                              tail in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = b"RIFF\xff\xff\xff\xffWAVE".to_vec();
            for s in sizes {
                b.extend(b"data");
                b.extend(s.to_le_bytes());
            }
            b.extend(&tail);
            let _ = parse(&b, Path::new("fuzz"));
        }
    }
}
