//! Typed handles for the fixture datasets, loaded from the cache that `cargo xtask fetch`
//! fills (see [`crate::fixtures`]).
//!
//! Image datasets come as an [`ImageDataset`] (`u8` images `[N, 1, H, W]` and `i64` labels
//! `[N]`): [`Mnist`], [`FashionMnist`], [`UciDigits`]. [`OrlFaces`] has identities instead of
//! classes, and [`Fsdd`] is audio. Every loader checks the files it reads and fails with an
//! [`Error`] naming the file (or `archive.tar.gz/member`) and the problem; a file missing from
//! the cache is an [`Error::MissingFixture`] telling which `cargo xtask fetch` to run.
//!
//! ```no_run
//! use core_tensor::datasets::{Fsdd, Split, UciDigits};
//! let cache = core_tensor::fixtures::cache_dir();
//! let digits = UciDigits::load(&cache)?;
//! let x = digits.images_f32()?; // [1797, 1, 8, 8] in [0, 1]
//! let fsdd = Fsdd::load(&cache)?;
//! let (_train, test) = fsdd.split_by_take();
//! assert_eq!(test.len(), 300);
//! # Ok::<(), core_tensor::Error>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::Path;

use tch::{Kind, Tensor};

use crate::fixtures::fixture_path;
use crate::io::{self, idx, pgm, uci, wav};
use crate::{Error, Result};

/// Which part of a dataset with an official train/test division to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The training part.
    Train,
    /// The test part.
    Test,
}

impl Split {
    /// The file-name prefix of this split in the MNIST family (`train` or `t10k`).
    pub fn idx_prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// A labelled image-classification dataset held in memory.
#[derive(Debug)]
pub struct ImageDataset {
    /// Images, `Kind::Uint8`, shape `[N, 1, H, W]`.
    pub images: Tensor,
    /// Labels, `Kind::Int64`, shape `[N]`, each in `0..classes`.
    pub labels: Tensor,
    /// The number of classes.
    pub classes: usize,
    /// The largest value a pixel can take in this dataset (255 for MNIST-like images, 16 for
    /// [`UciDigits`]); [`ImageDataset::images_f32`] divides by it.
    pub max_value: u8,
}

impl ImageDataset {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels
            .size()
            .first()
            .map_or(0, |&n| usize::try_from(n).unwrap_or(0))
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images as `Kind::Float` in `[0, 1]`: each pixel divided by [`Self::max_value`].
    pub fn images_f32(&self) -> Result<Tensor> {
        to_unit_float(&self.images, self.max_value)
    }
}

/// `images` as floats divided by `max_value`.
fn to_unit_float(images: &Tensor, max_value: u8) -> Result<Tensor> {
    Ok(images
        .f_to_kind(Kind::Float)?
        .f_div_scalar(f64::from(max_value))?)
}

/// Loads a split of an MNIST-family dataset (decompressed IDX files in `<cache>/<dataset>/`).
fn load_idx_dataset(cache: &Path, dataset: &str, split: Split) -> Result<ImageDataset> {
    let prefix = split.idx_prefix();
    let images = fixture_path(cache, dataset, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels = fixture_path(cache, dataset, &format!("{prefix}-labels-idx1-ubyte"))?;
    let (images, labels) = idx::read_pair(&images, &labels, idx::DIGIT_CLASSES)?;
    let loaded = ImageDataset {
        images,
        labels,
        classes: idx::DIGIT_CLASSES,
        max_value: u8::MAX,
    };
    tracing::debug!(dataset, ?split, n = loaded.len(), "loaded IDX dataset");
    Ok(loaded)
}

/// MNIST handwritten digits: 60,000 train and 10,000 test images, 28x28, 10 classes.
#[derive(Debug, Clone, Copy)]
pub struct Mnist;

impl Mnist {
    /// The dataset's folder in the cache and its name for `cargo xtask fetch`.
    pub const DATASET: &'static str = "mnist";

    /// Loads `split` from `<cache>/mnist/`.
    pub fn load(cache: &Path, split: Split) -> Result<ImageDataset> {
        load_idx_dataset(cache, Self::DATASET, split)
    }
}

/// Fashion-MNIST: 60,000 train and 10,000 test images of clothing, 28x28, 10 classes.
#[derive(Debug, Clone, Copy)]
pub struct FashionMnist;

impl FashionMnist {
    /// The dataset's folder in the cache and its name for `cargo xtask fetch`.
    pub const DATASET: &'static str = "fashion-mnist";

    /// The class names, indexed by label.
    pub const CLASS_NAMES: [&'static str; 10] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];

    /// Loads `split` from `<cache>/fashion-mnist/`.
    pub fn load(cache: &Path, split: Split) -> Result<ImageDataset> {
        load_idx_dataset(cache, Self::DATASET, split)
    }
}

/// The UCI optical-recognition digits (scikit-learn's copy): 1,797 images, 8x8, pixel values
/// `0..=16`, 10 classes, no official split.
#[derive(Debug, Clone, Copy)]
pub struct UciDigits;

impl UciDigits {
    /// The dataset's folder in the cache and its name for `cargo xtask fetch`.
    pub const DATASET: &'static str = "uci-digits";
    /// The file in the dataset's folder.
    pub const FILE: &'static str = "digits.csv.gz";

    /// Loads the whole dataset. Pixels stay in `0..=16`; `max_value` is 16, so
    /// [`ImageDataset::images_f32`] divides by 16 (not 255) to land in `[0, 1]`.
    pub fn load(cache: &Path) -> Result<ImageDataset> {
        let path = fixture_path(cache, Self::DATASET, Self::FILE)?;
        let (images, labels) = uci::read(&path)?;
        Ok(ImageDataset {
            images,
            labels,
            classes: usize::from(uci::CLASSES),
            max_value: uci::MAX_VALUE,
        })
    }
}

/// Parses a non-empty string of ASCII digits (no sign, no spaces).
fn parse_digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The ORL (AT&T) faces: 40 people, 10 images each, 112 rows by 92 columns, 8-bit grey.
#[derive(Debug)]
pub struct OrlFaces {
    /// Images, `Kind::Uint8`, shape `[400, 1, 112, 92]`, sorted by (person, image).
    pub images: Tensor,
    /// The person of each image, `Kind::Int64` `[400]`, `0..40` (folder `s1` is 0).
    pub person: Tensor,
    /// The image number within its person, `Kind::Int64` `[400]`, `0..10` (`1.pgm` is 0).
    pub image: Tensor,
}

impl OrlFaces {
    /// The dataset's folder in the cache and its name for `cargo xtask fetch`.
    pub const DATASET: &'static str = "orl-faces";
    /// The archive in the dataset's folder (members `orl_faces/sN/M.pgm`).
    pub const ARCHIVE: &'static str = "orl_faces.tar.gz";
    /// The number of people.
    pub const PEOPLE: usize = 40;
    /// Images per person.
    pub const IMAGES_PER_PERSON: usize = 10;
    /// Image width in pixels.
    pub const WIDTH: usize = 92;
    /// Image height in pixels.
    pub const HEIGHT: usize = 112;

    /// Loads all 400 images straight from the archive in memory (nothing is extracted),
    /// checking every member name, that each image is 92x112, and that all 400 are present
    /// exactly once.
    pub fn load(cache: &Path) -> Result<Self> {
        let archive = fixture_path(cache, Self::DATASET, Self::ARCHIVE)?;
        let members =
            io::read_tar_gz_members(&archive, |m| m.extension().is_some_and(|e| e == "pgm"))?;
        let count = Self::PEOPLE * Self::IMAGES_PER_PERSON;
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; count];
        for (member, bytes) in members {
            let member_path = archive.join(&member);
            let bad_name = || {
                Error::format(
                    &member_path,
                    format!(
                        "malformed member name: expected orl_faces/sN/M.pgm with N in 1..={} and M in 1..={}",
                        Self::PEOPLE,
                        Self::IMAGES_PER_PERSON
                    ),
                )
            };
            let person = member
                .parent()
                .and_then(Path::file_name)
                .and_then(|d| d.to_str())
                .and_then(|d| d.strip_prefix('s'))
                .and_then(parse_digits)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=Self::PEOPLE).contains(n))
                .ok_or_else(bad_name)?;
            let image = member
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(parse_digits)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| (1..=Self::IMAGES_PER_PERSON).contains(n))
                .ok_or_else(bad_name)?;
            let pgm = pgm::parse(&bytes, &member_path)?;
            if (pgm.width, pgm.height) != (Self::WIDTH, Self::HEIGHT) {
                return Err(Error::format(
                    &member_path,
                    format!(
                        "image is {}x{}, expected {}x{}",
                        pgm.width,
                        pgm.height,
                        Self::WIDTH,
                        Self::HEIGHT
                    ),
                ));
            }
            let slot = &mut slots[(person - 1) * Self::IMAGES_PER_PERSON + image - 1];
            if slot.is_some() {
                return Err(Error::format(
                    &member_path,
                    format!("duplicate image: s{person}/{image}.pgm appears twice"),
                ));
            }
            *slot = Some(pgm.pixels);
        }
        let missing: Vec<String> = slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_none())
            .map(|(i, _)| {
                format!(
                    "s{}/{}.pgm",
                    i / Self::IMAGES_PER_PERSON + 1,
                    i % Self::IMAGES_PER_PERSON + 1
                )
            })
            .collect();
        if !missing.is_empty() {
            let shown = missing
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::format(
                &archive,
                format!(
                    "{} of {count} images missing (first: {shown})",
                    missing.len()
                ),
            ));
        }
        let pixels: Vec<u8> = slots.into_iter().flatten().flatten().collect();
        let images = Tensor::f_from_data_size(
            &pixels,
            &[count as i64, 1, Self::HEIGHT as i64, Self::WIDTH as i64],
            Kind::Uint8,
        )?;
        let per = Self::IMAGES_PER_PERSON as i64;
        let person: Vec<i64> = (0..count as i64).map(|i| i / per).collect();
        let image: Vec<i64> = (0..count as i64).map(|i| i % per).collect();
        tracing::debug!(archive = %archive.display(), "loaded ORL faces");
        Ok(Self {
            images,
            person: Tensor::f_from_slice(&person)?,
            image: Tensor::f_from_slice(&image)?,
        })
    }

    /// The number of images (400).
    pub fn len(&self) -> usize {
        self.person
            .size()
            .first()
            .map_or(0, |&n| usize::try_from(n).unwrap_or(0))
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The images as `Kind::Float` in `[0, 1]` (divided by 255).
    pub fn images_f32(&self) -> Result<Tensor> {
        to_unit_float(&self.images, u8::MAX)
    }
}

/// One recording of the Free Spoken Digit Dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The spoken digit, 0–9.
    pub digit: u8,
    /// The speaker's name, as in the file name (`george`, `jackson`, …).
    pub speaker: String,
    /// The take number (0–49 in v1.0.x).
    pub take: u32,
    /// Samples per second (8000 throughout the dataset).
    pub sample_rate: u32,
    /// Mono samples in `[-1, 1)`.
    pub samples: Vec<f32>,
}

/// The Free Spoken Digit Dataset: recordings of spoken digits, several speakers and takes.
#[derive(Debug, Clone)]
pub struct Fsdd {
    /// Every recording, sorted by (speaker, digit, take).
    pub recordings: Vec<Recording>,
    /// The distinct speakers, sorted.
    pub speakers: Vec<String>,
}

impl Fsdd {
    /// The dataset's folder in the cache and its name for `cargo xtask fetch`.
    pub const DATASET: &'static str = "fsdd";
    /// The archive in the dataset's folder (members `recordings/{digit}_{speaker}_{take}.wav`).
    pub const ARCHIVE: &'static str = "free-spoken-digit-dataset.tar.gz";
    /// The takes of the conventional test split (of every speaker and digit).
    pub const TEST_TAKES: RangeInclusive<u32> = 0..=4;

    /// Loads every `recordings/*.wav` member straight from the archive in memory. Member names
    /// must be `{digit}_{speaker}_{take}.wav`; other members (README, metadata) are ignored.
    pub fn load(cache: &Path) -> Result<Self> {
        let archive = fixture_path(cache, Self::DATASET, Self::ARCHIVE)?;
        let members = io::read_tar_gz_members(&archive, |m| {
            m.extension().is_some_and(|e| e == "wav")
                && m.parent()
                    .and_then(Path::file_name)
                    .is_some_and(|d| d == "recordings")
        })?;
        let mut by_key = BTreeMap::new();
        for (member, bytes) in members {
            let member_path = archive.join(&member);
            let (digit, speaker, take) = member
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(parse_recording_name)
                .ok_or_else(|| {
                    Error::format(
                        &member_path,
                        "malformed member name: expected recordings/{digit}_{speaker}_{take}.wav \
                         with digit 0-9, a speaker name without '_' and a numeric take",
                    )
                })?;
            let wav = wav::parse(&bytes, &member_path)?;
            let key = (speaker.clone(), digit, take);
            let recording = Recording {
                digit,
                speaker,
                take,
                sample_rate: wav.sample_rate,
                samples: wav.samples,
            };
            if by_key.insert(key, recording).is_some() {
                return Err(Error::format(
                    &member_path,
                    "duplicate recording: the same digit, speaker and take appear twice",
                ));
            }
        }
        if by_key.is_empty() {
            return Err(Error::format(
                &archive,
                "no recordings/{digit}_{speaker}_{take}.wav members in the archive",
            ));
        }
        let speakers: Vec<String> = by_key
            .keys()
            .map(|(s, _, _)| s.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // A BTreeMap iterates in key order: (speaker, digit, take).
        let recordings: Vec<Recording> = by_key.into_values().collect();
        tracing::debug!(
            archive = %archive.display(),
            recordings = recordings.len(),
            speakers = speakers.len(),
            "loaded FSDD"
        );
        Ok(Self {
            recordings,
            speakers,
        })
    }

    /// The conventional split: `(train, test)` where test holds takes
    /// [`Self::TEST_TAKES`] (0–4) of every speaker and digit, train the rest.
    pub fn split_by_take(&self) -> (Vec<&Recording>, Vec<&Recording>) {
        let (test, train) = self
            .recordings
            .iter()
            .partition(|r| Self::TEST_TAKES.contains(&r.take));
        (train, test)
    }

    /// A leave-one-speaker-out split: `(others, that speaker)`. An unknown speaker is an
    /// [`Error::InvalidArgument`] listing the known ones.
    pub fn split_by_speaker(&self, speaker: &str) -> Result<(Vec<&Recording>, Vec<&Recording>)> {
        if !self.speakers.iter().any(|s| s == speaker) {
            return Err(Error::InvalidArgument(format!(
                "unknown FSDD speaker {speaker:?}; known speakers: {}",
                self.speakers.join(", ")
            )));
        }
        let (held_out, others) = self.recordings.iter().partition(|r| r.speaker == speaker);
        Ok((others, held_out))
    }
}

/// Splits a file stem `{digit}_{speaker}_{take}`.
fn parse_recording_name(stem: &str) -> Option<(u8, String, u32)> {
    let mut parts = stem.split('_');
    let (digit, speaker, take) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || speaker.is_empty() {
        return None;
    }
    let digit = u8::try_from(parse_digits(digit)?)
        .ok()
        .filter(|&d| d <= 9)?;
    Some((digit, speaker.to_string(), parse_digits(take)?))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::*;

    /// Writes a `.tar.gz` at `path` with the given (member, contents).
    fn write_tar_gz(path: &Path, members: &[(String, Vec<u8>)]) {
        let file = std::fs::File::create(path).unwrap();
        let enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut tar = tar::Builder::new(enc);
        for (name, data) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, name, data.as_slice()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
    }

    fn wav_bytes(samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut b = b"RIFF".to_vec();
        b.extend((36 + data.len() as u32).to_le_bytes());
        b.extend(b"WAVEfmt ");
        b.extend(16u32.to_le_bytes());
        b.extend([1, 0, 1, 0]);
        b.extend(8000u32.to_le_bytes());
        b.extend(16000u32.to_le_bytes());
        b.extend([2, 0, 16, 0]);
        b.extend(b"data");
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(data);
        b
    }

    fn pgm_bytes(w: usize, h: usize, fill: u8) -> Vec<u8> {
        let mut b = format!("P5\n{w} {h}\n255\n").into_bytes();
        b.resize(b.len() + w * h, fill);
        b
    }

    fn fsdd_cache(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let cache = tempfile::tempdir().unwrap();
        std::fs::create_dir(cache.path().join("fsdd")).unwrap();
        let mut members = vec![("README.md".to_string(), b"hi".to_vec())];
        for (i, n) in names.iter().enumerate() {
            members.push((format!("recordings/{n}"), wav_bytes(&[i as i16, 1, 2])));
        }
        let archive = cache.path().join("fsdd").join(Fsdd::ARCHIVE);
        write_tar_gz(&archive, &members);
        (cache, archive)
    }

    #[test]
    fn fsdd_sorts_and_splits() {
        let (cache, _) = fsdd_cache(&[
            "3_theo_7.wav",
            "1_anna_0.wav",
            "1_anna_12.wav",
            "0_theo_4.wav",
        ]);
        let fsdd = Fsdd::load(cache.path()).unwrap();
        let keys: Vec<_> = fsdd
            .recordings
            .iter()
            .map(|r| (r.speaker.as_str(), r.digit, r.take))
            .collect();
        assert_eq!(
            keys,
            [
                ("anna", 1, 0),
                ("anna", 1, 12),
                ("theo", 0, 4),
                ("theo", 3, 7)
            ]
        );
        assert_eq!(fsdd.speakers, ["anna", "theo"]);
        assert_eq!(fsdd.recordings[0].sample_rate, 8000);
        assert_eq!(fsdd.recordings[0].samples.len(), 3);
        let (train, test) = fsdd.split_by_take();
        assert_eq!(train.len(), 2);
        assert!(test.iter().all(|r| r.take <= 4));
        let (others, theo) = fsdd.split_by_speaker("theo").unwrap();
        assert_eq!((others.len(), theo.len()), (2, 2));
        assert!(matches!(
            fsdd.split_by_speaker("nobody"),
            Err(Error::InvalidArgument(m)) if m.contains("anna, theo")
        ));
    }

    #[test]
    fn fsdd_rejects_malformed_member_names() {
        for bad in [
            "x_theo_1.wav",
            "10_theo_1.wav",
            "1_theo.wav",
            "1_theo_a.wav",
            "1__2.wav",
            "1_a_b_2.wav",
        ] {
            let (cache, archive) = fsdd_cache(&["1_anna_0.wav", bad]);
            match Fsdd::load(cache.path()) {
                Err(e @ Error::Format { .. }) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("recordings/{bad}")), "{msg}");
                    assert!(msg.contains(&archive.display().to_string()), "{msg}");
                    assert!(msg.contains("malformed member name"), "{msg}");
                }
                other => panic!("{bad}: expected Format error, got {other:?}"),
            }
        }
    }

    #[test]
    fn fsdd_bad_wav_names_the_member() {
        let cache = tempfile::tempdir().unwrap();
        std::fs::create_dir(cache.path().join("fsdd")).unwrap();
        let archive = cache.path().join("fsdd").join(Fsdd::ARCHIVE);
        let mut bad = wav_bytes(&[1, 2, 3]);
        bad.truncate(bad.len() - 2);
        write_tar_gz(&archive, &[("recordings/2_bob_3.wav".into(), bad)]);
        let msg = Fsdd::load(cache.path()).unwrap_err().to_string();
        assert!(
            msg.contains("fsdd/free-spoken-digit-dataset.tar.gz/recordings/2_bob_3.wav"),
            "{msg}"
        );
        assert!(msg.contains("truncated data chunk"), "{msg}");
    }

    #[test]
    fn fsdd_empty_archive_is_an_error() {
        let (cache, _) = fsdd_cache(&[]);
        assert!(matches!(
            Fsdd::load(cache.path()),
            Err(Error::Format { .. })
        ));
    }

    fn orl_cache(
        skip: Option<(usize, usize)>,
        extra: Option<(String, Vec<u8>)>,
    ) -> tempfile::TempDir {
        let cache = tempfile::tempdir().unwrap();
        std::fs::create_dir(cache.path().join("orl-faces")).unwrap();
        let mut members = vec![("orl_faces/README".to_string(), b"ORL".to_vec())];
        // Archive order as in the real tarball (s1, s10, s11, ..., 1.pgm, 10.pgm, 2.pgm...).
        let mut names: Vec<(usize, usize)> = (1..=40)
            .flat_map(|p| (1..=10).map(move |i| (p, i)))
            .collect();
        names.sort_by_key(|&(p, i)| (p.to_string(), i.to_string()));
        for (p, i) in names {
            if Some((p, i)) != skip {
                members.push((
                    format!("orl_faces/s{p}/{i}.pgm"),
                    pgm_bytes(92, 112, (p * 10 + i) as u8),
                ));
            }
        }
        members.extend(extra);
        write_tar_gz(
            &cache.path().join("orl-faces").join(OrlFaces::ARCHIVE),
            &members,
        );
        cache
    }

    #[test]
    fn orl_loads_sorted() {
        let cache = orl_cache(None, None);
        let faces = OrlFaces::load(cache.path()).unwrap();
        assert_eq!(faces.images.size(), [400, 1, 112, 92]);
        assert_eq!(faces.len(), 400);
        assert_eq!(faces.person.int64_value(&[13]), 1);
        assert_eq!(faces.image.int64_value(&[13]), 3);
        // Index 13 is s2/4.pgm, filled with 2*10+4.
        assert_eq!(faces.images.int64_value(&[13, 0, 5, 5]), 24);
        assert_eq!(faces.images.int64_value(&[399, 0, 111, 91]), 410 % 256);
        let x = faces.images_f32().unwrap();
        assert_eq!(x.kind(), Kind::Float);
    }

    #[test]
    fn orl_errors() {
        let cache = orl_cache(Some((7, 3)), None);
        let msg = OrlFaces::load(cache.path()).unwrap_err().to_string();
        assert!(
            msg.contains("1 of 400 images missing") && msg.contains("s7/3.pgm"),
            "{msg}"
        );

        let cache = orl_cache(
            None,
            Some(("orl_faces/s41/1.pgm".into(), pgm_bytes(92, 112, 0))),
        );
        let msg = OrlFaces::load(cache.path()).unwrap_err().to_string();
        assert!(
            msg.contains("orl_faces/s41/1.pgm") && msg.contains("malformed member name"),
            "{msg}"
        );

        let cache = orl_cache(
            Some((2, 2)),
            Some(("orl_faces/s2/2.pgm".into(), pgm_bytes(92, 111, 0))),
        );
        let msg = OrlFaces::load(cache.path()).unwrap_err().to_string();
        assert!(
            msg.contains("orl_faces/s2/2.pgm") && msg.contains("92x111, expected 92x112"),
            "{msg}"
        );

        let cache = orl_cache(
            None,
            Some(("orl_faces/s2/02.pgm".into(), pgm_bytes(92, 112, 0))),
        );
        let msg = OrlFaces::load(cache.path()).unwrap_err().to_string();
        assert!(
            msg.contains("s2/02.pgm") && msg.contains("duplicate"),
            "{msg}"
        );
    }

    #[test]
    fn missing_fixtures_name_the_fetch_command() {
        let cache = tempfile::tempdir().unwrap();
        for (result, dataset) in [
            (Mnist::load(cache.path(), Split::Train).map(|_| ()), "mnist"),
            (
                FashionMnist::load(cache.path(), Split::Test).map(|_| ()),
                "fashion-mnist",
            ),
            (UciDigits::load(cache.path()).map(|_| ()), "uci-digits"),
            (OrlFaces::load(cache.path()).map(|_| ()), "orl-faces"),
            (Fsdd::load(cache.path()).map(|_| ()), "fsdd"),
        ] {
            match result {
                Err(e @ Error::MissingFixture { .. }) => {
                    assert!(
                        e.to_string()
                            .contains(&format!("cargo xtask fetch {dataset}")),
                        "{e}"
                    );
                }
                other => panic!("{dataset}: expected MissingFixture, got {other:?}"),
            }
        }
    }

    #[test]
    fn image_dataset_f32() {
        let ds = ImageDataset {
            images: Tensor::from_slice(&[0u8, 8, 16, 4]).view([1, 1, 2, 2]),
            labels: Tensor::from_slice(&[3i64]),
            classes: 10,
            max_value: 16,
        };
        assert_eq!(ds.len(), 1);
        assert!(!ds.is_empty());
        let x = Vec::<f32>::try_from(ds.images_f32().unwrap().flatten(0, -1)).unwrap();
        assert_eq!(x, [0.0, 0.5, 1.0, 0.25]);
    }
}
