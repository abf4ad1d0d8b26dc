//! Image folders: one subfolder per class, PNG, JPEG or BMP files in each.
//!
//! ```text
//! pets/cat/001.jpg, pets/cat/002.png, …      Layout::Split: one folder, split by the loader
//! pets/dog/…
//!
//! flowers/train/daisy/…, flowers/train/rose/… Layout::TrainTest: already divided
//! flowers/test/daisy/…,  flowers/test/rose/…
//! ```
//!
//! The class names are the subfolder names, sorted (label `i` is `class_names[i]`); in a
//! `train/`+`test/` layout they come from `train/`, and `test/` may hold a subset of them.
//! Within a class the files are taken in the order of their names, so the same folder always
//! gives the same tensors. Files with other extensions (`.txt`, `Thumbs.db`) and hidden
//! entries (names starting with `.`) are skipped. Images are decoded by the `image` crate on
//! rayon's thread pool; an RGBA or grey-alpha image loses its alpha channel (it is not
//! composited), a 16-bit one is reduced to 8 bits.
//!
//! **Channels.** Without [`ImageFolderOptions::channels`], the folder has 3 channels if any
//! image is in colour (grey ones are replicated) and 1 if all are grey. [`Channels::Grey`]
//! turns colour images into their luminance `0.299 R + 0.587 G + 0.114 B` (rounded, as PIL's
//! `convert("L")`), [`Channels::Rgb`] replicates grey ones.
//!
//! **Sizes.** All images must have the same size unless [`ImageFolderOptions::resize`] is
//! given; then each image is resized (bilinear, the `image` crate's triangle filter) when it is
//! decoded, before the cache is written.
//!
//! **Cache.** The decoded pixels (`u8`, so a quarter of the floats' size) are stored as one
//! safetensors file per folder and options in the cache folder, with a key: the sha256 of every
//! image's relative path, size and modification time, and of the options. The next load walks
//! the folder, recomputes the key, and reads the file when the keys agree; when they differ (a
//! file added, removed, replaced or touched) the folder is decoded again and the file
//! replaced, atomically ([`crate::persist::write_atomic`]). A cache file that cannot be read is
//! rebuilt; one that cannot be written is reported in [`ImageFolder::cache`] (and by a
//! `tracing` warning), and the load still succeeds. The split of [`Layout::Split`] is drawn
//! after the cache, so other seeds and fractions reuse the same file.

use std::collections::{BTreeSet, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageFormat, ImageReader};
use rayon::prelude::*;
use safetensors::{Dtype, tensor::TensorView};
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

use super::{Splits, unit_float};
use crate::data::TensorDataset;
use crate::{Error, Result};

/// The file extensions read (compared without regard to case).
pub const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The subfolder of the resolved cache folder that holds the image-folder caches when no
/// cache folder is given ([`load_image_folder`]).
pub const CACHE_SUBDIR: &str = "image-folders";

/// The version of the cache layout; a cache of another version is rebuilt.
const CACHE_VERSION: &str = "1";

/// How the folder's images are divided into training and test examples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Layout {
    /// The folder has `train/` and `test/` subfolders, each with one subfolder per class.
    TrainTest,
    /// The folder has one subfolder per class; the loader draws a stratified split
    /// ([`super::stratified_split`]): `test_fraction` of each class, chosen by `seed`.
    Split {
        /// The share of each class that goes to the test part, in `[0, 1)`.
        test_fraction: f64,
        /// The seed of the split.
        seed: u64,
    },
}

/// The number of channels to give every image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channels {
    /// One channel: colour images become their luminance.
    Grey,
    /// Three channels: grey images are replicated.
    Rgb,
}

impl Channels {
    /// 1 or 3.
    pub fn count(self) -> usize {
        match self {
            Channels::Grey => 1,
            Channels::Rgb => 3,
        }
    }
}

/// What [`load_image_folder`] does; build it with [`ImageFolderOptions::train_test`] or
/// [`ImageFolderOptions::split`] and the methods that follow.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolderOptions {
    /// How the images are divided.
    pub layout: Layout,
    /// The channels of the output; `None`: 3 if any image is in colour, else 1.
    pub channels: Option<Channels>,
    /// Resize every image to `[height, width]` when it is decoded; `None`: all images must
    /// have the same size.
    pub resize: Option<[u32; 2]>,
    /// Whether to read and write the decoded folder's cache (default true).
    pub cache: bool,
}

impl ImageFolderOptions {
    /// A folder with `train/` and `test/` subfolders ([`Layout::TrainTest`]).
    pub fn train_test() -> Self {
        Self::with_layout(Layout::TrainTest)
    }

    /// A folder of class subfolders, `test_fraction` of each class held out by `seed`
    /// ([`Layout::Split`]).
    pub fn split(test_fraction: f64, seed: u64) -> Self {
        Self::with_layout(Layout::Split {
            test_fraction,
            seed,
        })
    }

    fn with_layout(layout: Layout) -> Self {
        ImageFolderOptions {
            layout,
            channels: None,
            resize: None,
            cache: true,
        }
    }

    /// Gives every image `channels` channels.
    pub fn channels(mut self, channels: Channels) -> Self {
        self.channels = Some(channels);
        self
    }

    /// Resizes every image to `height` x `width` (bilinear) when it is decoded.
    pub fn resize(mut self, height: u32, width: u32) -> Self {
        self.resize = Some([height, width]);
        self
    }

    /// Neither reads nor writes a cache.
    pub fn no_cache(mut self) -> Self {
        self.cache = false;
        self
    }

    fn validate(&self) -> Result<()> {
        if let Layout::Split { test_fraction, .. } = self.layout
            && !(0.0..1.0).contains(&test_fraction)
        {
            return Err(Error::InvalidArgument(format!(
                "image folder: test_fraction {test_fraction} is not in [0, 1)"
            )));
        }
        if let Some([h, w]) = self.resize
            && (h == 0 || w == 0)
        {
            return Err(Error::InvalidArgument(format!(
                "image folder: resize to {h}x{w}: both sides must be at least 1"
            )));
        }
        Ok(())
    }

    /// The options that change the decoded pixels, as one line of the cache key.
    fn pixel_key(&self) -> String {
        let layout = match self.layout {
            Layout::TrainTest => "train-test",
            Layout::Split { .. } => "classes",
        };
        format!(
            "layout={layout} channels={:?} resize={:?}",
            self.channels, self.resize
        )
    }
}

/// What happened to the cache on a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// Caching was off ([`ImageFolderOptions::no_cache`]).
    Disabled,
    /// The images were read from this cache file.
    Hit(PathBuf),
    /// The images were decoded and this cache file written.
    Built(PathBuf),
    /// The images were decoded but the cache file could not be written.
    NotWritten {
        /// The cache file.
        path: PathBuf,
        /// Why, in words.
        reason: String,
    },
}

/// A loaded image folder: images `Kind::Float` `[N, C, H, W]` in `[0, 1]` and labels
/// `Kind::Int64` `[N]`.
#[derive(Debug)]
pub struct ImageFolder {
    /// The training images (all of `train/`, or the rest of a split).
    pub train: TensorDataset,
    /// The test images (all of `test/`, or the held-out part of a split).
    pub test: TensorDataset,
    /// The class names (sorted subfolder names), indexed by label.
    pub class_names: Vec<String>,
    /// Whether the images came from the cache.
    pub cache: CacheStatus,
}

impl ImageFolder {
    /// The train and test parts with the class names.
    pub fn into_splits(self) -> Splits {
        Splits {
            train: self.train,
            test: self.test,
            class_names: self.class_names,
        }
    }
}

/// One image file found in the folder.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    class: i64,
    size: u64,
    mtime_ns: u128,
}

/// The images of `train/`, `test/`, or of the whole folder.
#[derive(Debug)]
struct Part {
    name: &'static str,
    entries: Vec<Entry>,
}

/// One decoded image, `channels` (1 or 3) interleaved, row by row.
#[derive(Debug)]
struct Decoded {
    width: u32,
    height: u32,
    channels: usize,
    pixels: Vec<u8>,
}

/// Loads the image folder `root` (see the [module documentation](self) for the layouts,
/// channels, sizes and cache).
///
/// The cache file lives in `cache_dir` when given, else in [`CACHE_SUBDIR`] of the folder
/// [`crate::fixtures::resolve_cache`] names (`$TRANSFERLAB_CACHE`, then the per-user cache);
/// [`cache_path`] says which file.
///
/// Errors, each naming the file or folder: `root` missing or not a folder, a missing `train/`
/// or `test/` ([`Layout::TrainTest`]), a folder without class subfolders, an empty class
/// folder, a class in `test/` that `train/` lacks, an unreadable or undecodable (truncated,
/// corrupt) image, an image of another size than the first without
/// [`ImageFolderOptions::resize`].
pub fn load_image_folder(
    root: &Path,
    options: &ImageFolderOptions,
    cache_dir: Option<&Path>,
) -> Result<ImageFolder> {
    let started = std::time::Instant::now();
    options.validate()?;
    check_is_folder(root)?;
    let (class_names, parts) = scan(root, options.layout)?;
    let key = content_key(root, options, &parts);
    let cache_file = match options.cache {
        true => Some(cache_path(root, options, cache_dir)?),
        false => None,
    };
    let cached = cache_file
        .as_deref()
        .and_then(|path| read_cache(path, &key, &class_names, &parts));
    let (pixels, status) = match (cached, cache_file) {
        (Some(pixels), Some(path)) => (pixels, CacheStatus::Hit(path)),
        (_, cache_file) => {
            let decoded = decode_parts(&parts, options)?;
            let status = match cache_file {
                None => CacheStatus::Disabled,
                Some(path) => match write_cache(&path, &key, &class_names, &parts, &decoded) {
                    Ok(()) => CacheStatus::Built(path),
                    Err(e) => {
                        tracing::warn!(cache = %path.display(), error = %e, "image-folder cache not written");
                        CacheStatus::NotWritten {
                            path,
                            reason: e.to_string(),
                        }
                    }
                },
            };
            let pixels = decoded
                .into_iter()
                .map(|(shape, bytes)| Ok(Tensor::f_from_data_size(&bytes, &shape, Kind::Uint8)?))
                .collect::<Result<Vec<_>>>()?;
            (pixels, status)
        }
    };
    // Split the u8 pixels first, then convert each part once: the floats are 4x larger.
    let mut datasets = Vec::with_capacity(parts.len());
    for (part, images) in parts.iter().zip(pixels) {
        let labels: Vec<i64> = part.entries.iter().map(|e| e.class).collect();
        datasets.push(TensorDataset::new(images, Tensor::f_from_slice(&labels)?)?);
    }
    let mut datasets = datasets.into_iter();
    let (train, test) = match (options.layout, datasets.next(), datasets.next()) {
        (Layout::TrainTest, Some(train), Some(test)) => (train, test),
        (
            Layout::Split {
                test_fraction,
                seed,
            },
            Some(all),
            None,
        ) => {
            let s = Splits::stratified(&all, Vec::new(), test_fraction, seed)?;
            (s.train, s.test)
        }
        _ => {
            return Err(Error::InvalidArgument(
                "image folder: internal error, the parts do not match the layout".into(),
            ));
        }
    };
    let to_float = |d: TensorDataset| -> Result<TensorDataset> {
        TensorDataset::new(unit_float(&d.inputs)?, d.targets)
    };
    let (train, test) = (to_float(train)?, to_float(test)?);
    tracing::info!(
        root = %root.display(),
        images = train.len() + test.len(),
        classes = class_names.len(),
        cache = ?status,
        seconds = started.elapsed().as_secs_f64(),
        "loaded image folder"
    );
    Ok(ImageFolder {
        train,
        test,
        class_names,
        cache: status,
    })
}

/// The cache file [`load_image_folder`] reads and writes for `root` and `options`: in
/// `cache_dir` when given, else in `<resolved cache>/`[`CACHE_SUBDIR`]; named after the
/// folder and a hash of its absolute path and of the options that change the pixels (so that
/// a change of split, fraction or seed shares the file).
pub fn cache_path(
    root: &Path,
    options: &ImageFolderOptions,
    cache_dir: Option<&Path>,
) -> Result<PathBuf> {
    let dir = match cache_dir {
        Some(d) => d.to_path_buf(),
        None => crate::fixtures::resolve_cache(None).join(CACHE_SUBDIR),
    };
    let absolute = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
    let mut h = Sha256::new();
    h.update(absolute.to_string_lossy().as_bytes());
    h.update(b"\n");
    h.update(options.pixel_key().as_bytes());
    let hash = hex(&h.finalize());
    let stem: String = absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(dir.join(format!("{stem}-{}.safetensors", &hash[..16])))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_is_folder(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Err(Error::format(
            path,
            "expected a folder of class subfolders, found a file",
        ));
    }
    Ok(())
}

/// Whether a directory entry's name marks it hidden.
fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// The class subfolders of `dir`, sorted by name.
fn class_folders(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut classes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if is_hidden(&entry.file_name()) {
            continue;
        }
        // `fs::metadata` follows symbolic links, so a linked class folder counts.
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if !meta.is_dir() {
            continue;
        }
        let name = entry.file_name().into_string().map_err(|_| {
            Error::format(
                &path,
                "class folder name is not valid UTF-8; rename the folder",
            )
        })?;
        classes.push((name, path));
    }
    classes.sort();
    if classes.is_empty() {
        return Err(Error::format(
            dir,
            "no class subfolders: expected one subfolder per class, each holding that class's \
             PNG, JPEG or BMP images",
        ));
    }
    Ok(classes)
}

/// Whether `path` has one of [`EXTENSIONS`].
fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The image files of one class folder, sorted by name.
fn image_files(dir: &Path, class: i64) -> Result<Vec<Entry>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let path = entry.path();
        if is_hidden(&name) || !is_image_file(&path) {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        files.push((
            name,
            Entry {
                path,
                class,
                size: meta.len(),
                mtime_ns,
            },
        ));
    }
    if files.is_empty() {
        return Err(Error::format(
            dir,
            format!(
                "empty class folder: no image with extension {} in it; add images or remove the \
                 folder",
                EXTENSIONS.join(", ")
            ),
        ));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files.into_iter().map(|(_, e)| e).collect())
}

/// The image files of the class folders `classes` of `dir` (in parallel: one listing per
/// class), labelled by `label_of`; the first error in class order wins.
fn list_part(
    classes: &[(String, PathBuf)],
    label_of: impl Fn(&str) -> i64 + Sync,
) -> Result<Vec<Entry>> {
    let listed: Vec<Result<Vec<Entry>>> = classes
        .par_iter()
        .map(|(name, path)| image_files(path, label_of(name)))
        .collect();
    let mut entries = Vec::new();
    for files in listed {
        entries.extend(files?);
    }
    Ok(entries)
}

/// The class names and the parts of the folder for `layout`.
fn scan(root: &Path, layout: Layout) -> Result<(Vec<String>, Vec<Part>)> {
    match layout {
        Layout::Split { .. } => {
            let classes = class_folders(root)?;
            let names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
            let entries = list_part(&classes, |n| position(&names, n))?;
            Ok((
                names,
                vec![Part {
                    name: "all",
                    entries,
                }],
            ))
        }
        Layout::TrainTest => {
            let (train_dir, test_dir) = (root.join("train"), root.join("test"));
            for dir in [&train_dir, &test_dir] {
                if !dir.is_dir() {
                    return Err(Error::format(
                        root,
                        format!(
                            "no {}/ subfolder: the train/test layout needs train/ and test/, each \
                             with one subfolder per class; for a single folder of class \
                             subfolders use ImageFolderOptions::split",
                            dir.file_name().unwrap_or_default().to_string_lossy()
                        ),
                    ));
                }
            }
            let train_classes = class_folders(&train_dir)?;
            let test_classes = class_folders(&test_dir)?;
            let names: Vec<String> = train_classes.iter().map(|(n, _)| n.clone()).collect();
            let known: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            let extra: Vec<&str> = test_classes
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !known.contains(n))
                .collect();
            if !extra.is_empty() {
                return Err(Error::format(
                    &test_dir,
                    format!(
                        "class folders {} are not in train/ (whose classes are {}); every test \
                         class needs training images",
                        extra.join(", "),
                        names.join(", ")
                    ),
                ));
            }
            let train = list_part(&train_classes, |n| position(&names, n))?;
            let test = list_part(&test_classes, |n| position(&names, n))?;
            Ok((
                names,
                vec![
                    Part {
                        name: "train",
                        entries: train,
                    },
                    Part {
                        name: "test",
                        entries: test,
                    },
                ],
            ))
        }
    }
}

/// The index of `name` in the sorted `names` (present by construction).
fn position(names: &[String], name: &str) -> i64 {
    names.iter().position(|n| n == name).unwrap_or(0) as i64
}

/// The cache key: sha256 of the cache version, the options that change the pixels, and every
/// image's path relative to `root`, size and modification time.
fn content_key(root: &Path, options: &ImageFolderOptions, parts: &[Part]) -> String {
    let mut h = Sha256::new();
    h.update(format!("transferlab image-folder cache v{CACHE_VERSION}\n").as_bytes());
    h.update(options.pixel_key().as_bytes());
    for part in parts {
        h.update(format!("\npart {}", part.name).as_bytes());
        for e in &part.entries {
            let rel = e.path.strip_prefix(root).unwrap_or(&e.path);
            h.update(format!("\n{}\t{}\t{}", rel.to_string_lossy(), e.size, e.mtime_ns).as_bytes());
        }
    }
    hex(&h.finalize())
}

/// Decodes one image file, resized to `resize` (`[height, width]`) if given.
fn decode(path: &Path, resize: Option<[u32; 2]>) -> Result<Decoded> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut reader = ImageReader::new(Cursor::new(bytes.as_slice()));
    if let Ok(format) = ImageFormat::from_path(path) {
        reader.set_format(format);
    }
    // The content's magic bytes win over the extension (a JPEG named `.png` still decodes).
    let reader = reader
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let image = reader.decode().map_err(|e| {
        Error::format(
            path,
            format!("cannot decode the image ({e}); replace or remove the file"),
        )
    })?;
    if image.width() == 0 || image.height() == 0 {
        return Err(Error::format(
            path,
            "the image has no pixels (0 wide or high)",
        ));
    }
    let image = match resize {
        Some([h, w]) if (image.height(), image.width()) != (h, w) => {
            image.resize_exact(w, h, FilterType::Triangle)
        }
        _ => image,
    };
    let (width, height) = (image.width(), image.height());
    let (channels, pixels) = if image.color().has_color() {
        (3, image.into_rgb8().into_raw())
    } else {
        (1, image.into_luma8().into_raw())
    };
    Ok(Decoded {
        width,
        height,
        channels,
        pixels,
    })
}

/// A decoded part: its shape `[N, C, H, W]` and its pixels in that order.
type PartPixels = ([i64; 4], Vec<u8>);

/// Decodes every image of `parts` in parallel and assembles each part's `[N, C, H, W]` bytes;
/// the first error in folder order wins.
fn decode_parts(parts: &[Part], options: &ImageFolderOptions) -> Result<Vec<PartPixels>> {
    let entries: Vec<&Entry> = parts.iter().flat_map(|p| &p.entries).collect();
    let decoded: Vec<Result<Decoded>> = entries
        .par_iter()
        .map(|e| decode(&e.path, options.resize))
        .collect();
    let decoded: Vec<Decoded> = decoded.into_iter().collect::<Result<_>>()?;
    let (Some(first), Some(first_entry)) = (decoded.first(), entries.first()) else {
        // class_folders and image_files refuse empty folders, so this is not reached.
        return Ok(parts.iter().map(|_| ([0, 1, 1, 1], Vec::new())).collect());
    };
    let (width, height) = (first.width, first.height);
    for (d, e) in decoded.iter().zip(&entries) {
        if (d.width, d.height) != (width, height) {
            return Err(Error::format(
                &e.path,
                format!(
                    "image is {}x{} (width x height) but {} is {width}x{height}; images of \
                     different sizes need a resize (ImageFolderOptions::resize)",
                    d.width,
                    d.height,
                    first_entry.path.display()
                ),
            ));
        }
    }
    let channels = options.channels.map_or_else(
        || decoded.iter().map(|d| d.channels).max().unwrap_or(1),
        Channels::count,
    );
    let per_image = channels * width as usize * height as usize;
    let mut out = Vec::with_capacity(parts.len());
    let mut rest = decoded.as_slice();
    for part in parts {
        let (mine, tail) = rest.split_at(part.entries.len());
        rest = tail;
        let mut bytes = vec![0u8; mine.len() * per_image];
        bytes
            .par_chunks_mut(per_image)
            .zip(mine.par_iter())
            .for_each(|(dst, src)| to_planar(src, dst, channels));
        out.push((
            [
                mine.len() as i64,
                channels as i64,
                i64::from(height),
                i64::from(width),
            ],
            bytes,
        ));
    }
    Ok(out)
}

/// Writes the interleaved pixels of `src` as `channels` planes into `dst`, replicating a grey
/// image or taking the luminance of a colour one as needed.
fn to_planar(src: &Decoded, dst: &mut [u8], channels: usize) {
    let plane = src.width as usize * src.height as usize;
    match (src.channels, channels) {
        (1, 1) => dst.copy_from_slice(&src.pixels),
        (1, _) => {
            for k in 0..channels {
                dst[k * plane..(k + 1) * plane].copy_from_slice(&src.pixels);
            }
        }
        (_, 1) => {
            for (d, rgb) in dst.iter_mut().zip(src.pixels.chunks_exact(3)) {
                *d = luminance(rgb[0], rgb[1], rgb[2]);
            }
        }
        _ => {
            for (i, rgb) in src.pixels.chunks_exact(3).enumerate() {
                dst[i] = rgb[0];
                dst[plane + i] = rgb[1];
                dst[2 * plane + i] = rgb[2];
            }
        }
    }
}

/// `0.299 R + 0.587 G + 0.114 B`, rounded (PIL's `convert("L")`).
fn luminance(r: u8, g: u8, b: u8) -> u8 {
    let y = 299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b);
    ((y + 500) / 1000) as u8
}

/// The metadata keys of a cache file.
const META_FORMAT: &str = "format";
const META_VERSION: &str = "version";
const META_KEY: &str = "key";
const META_CLASSES: &str = "class_names";
const FORMAT_NAME: &str = "transferlab-image-folder";

/// The largest safetensors header a cache file may have (its JSON; a few hundred bytes in
/// practice).
const MAX_HEADER: u64 = 1 << 20;

/// The cached pixels of `parts` if the file at `path` exists, is readable and carries `key`
/// and `class_names`; `None` otherwise (the reason goes to a `tracing` event).
///
/// The header is read and checked first; then the whole file becomes one `u8` tensor through
/// libtorch's `from_file` (a private mapping: no copy through a Rust buffer, and writes never
/// reach the file), whose header bytes must equal those checked (the file may have been
/// replaced in between), and each part is a view into it. The cache is only ever replaced by a
/// rename, so a mapped file is never truncated under the reader.
fn read_cache(
    path: &Path,
    key: &str,
    class_names: &[String],
    parts: &[Part],
) -> Option<Vec<Tensor>> {
    use std::io::Read;
    let miss = |why: &str| {
        tracing::debug!(cache = %path.display(), why, "image-folder cache out of date; rebuilding");
        None
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(cache = %path.display(), error = %e, "image-folder cache unreadable; rebuilding");
            }
            return None;
        }
    };
    let file_len = file.metadata().ok()?.len();
    let mut head = [0u8; 8];
    if file.read_exact(&mut head).is_err() {
        return miss("shorter than a safetensors header");
    }
    let n = u64::from_le_bytes(head);
    if n > MAX_HEADER || 8 + n > file_len {
        return miss("not a safetensors file");
    }
    let mut header = vec![0u8; n as usize];
    if file.read_exact(&mut header).is_err() {
        return miss("truncated header");
    }
    drop(file);
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&header) else {
        return miss("not a safetensors header");
    };
    let meta = &json["__metadata__"];
    let get = |k: &str| meta.get(k).and_then(serde_json::Value::as_str);
    if get(META_FORMAT) != Some(FORMAT_NAME) || get(META_VERSION) != Some(CACHE_VERSION) {
        return miss("another format or version");
    }
    if get(META_KEY) != Some(key) {
        return miss("the folder changed");
    }
    let names: Option<Vec<String>> = get(META_CLASSES).and_then(|s| serde_json::from_str(s).ok());
    if names.as_deref() != Some(class_names) {
        return miss("other class names");
    }
    // Each part: its shape and byte range within the data after the header.
    let data_len = file_len - 8 - n;
    let mut layout = Vec::with_capacity(parts.len());
    for part in parts {
        let entry = &json[part.name];
        let shape: Option<Vec<i64>> = entry["shape"]
            .as_array()
            .and_then(|a| a.iter().map(serde_json::Value::as_i64).collect());
        let range: Option<Vec<u64>> = entry["data_offsets"]
            .as_array()
            .and_then(|a| a.iter().map(serde_json::Value::as_u64).collect());
        let (Some(shape), Some(range)) = (shape, range) else {
            return miss("a part is missing");
        };
        let numel: Option<i64> = shape.iter().try_fold(1i64, |acc, &d| acc.checked_mul(d));
        let ok = entry["dtype"] == "U8"
            && shape.len() == 4
            && shape[0] == part.entries.len() as i64
            && range.len() == 2
            && range[0] <= range[1]
            && range[1] <= data_len
            && numel == Some((range[1] - range[0]) as i64);
        if !ok {
            return miss("a part has another shape");
        }
        layout.push((shape, range[0], range[1] - range[0]));
    }
    let whole = match path.to_str() {
        Some(p) => Tensor::f_from_file(
            p,
            false,
            Some(file_len as i64),
            (Kind::Uint8, tch::Device::Cpu),
        )
        .ok(),
        None => std::fs::read(path)
            .ok()
            .and_then(|b| Tensor::f_from_slice(&b).ok()),
    };
    let Some(whole) = whole.filter(|t| t.numel() as u64 == file_len) else {
        return miss("the file could not be read whole");
    };
    let start = 8 + n as i64;
    let same_header = whole
        .f_narrow(0, 0, start)
        .ok()
        .and_then(|h| Vec::<u8>::try_from(h).ok())
        .is_some_and(|h| h[..8] == head && h[8..] == header[..]);
    if !same_header {
        return miss("the file was replaced while being read");
    }
    let mut out = Vec::with_capacity(parts.len());
    for (shape, offset, len) in layout {
        match whole
            .f_narrow(0, start + offset as i64, len as i64)
            .and_then(|t| t.f_view(shape.as_slice()))
        {
            Ok(t) => out.push(t),
            Err(_) => return miss("tensor data unreadable"),
        }
    }
    Some(out)
}

/// Writes the decoded parts to the cache file at `path`, atomically.
fn write_cache(
    path: &Path,
    key: &str,
    class_names: &[String],
    parts: &[Part],
    decoded: &[PartPixels],
) -> Result<()> {
    let mut views = Vec::with_capacity(parts.len());
    for (part, (shape, bytes)) in parts.iter().zip(decoded) {
        let shape = shape.iter().map(|&d| d as usize).collect();
        let view = TensorView::new(Dtype::U8, shape, bytes)
            .map_err(|e| Error::InvalidArgument(format!("image-folder cache: {e}")))?;
        views.push((part.name, view));
    }
    let metadata = HashMap::from([
        (META_FORMAT.to_owned(), FORMAT_NAME.to_owned()),
        (META_VERSION.to_owned(), CACHE_VERSION.to_owned()),
        (META_KEY.to_owned(), key.to_owned()),
        (
            META_CLASSES.to_owned(),
            serde_json::to_string(class_names).unwrap_or_default(),
        ),
    ]);
    let bytes = safetensors::serialize(views, &Some(metadata))
        .map_err(|e| Error::format(path, format!("cannot serialise the cache: {e}")))?;
    crate::persist::write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luminance_matches_pil() {
        assert_eq!(luminance(255, 255, 255), 255);
        assert_eq!(luminance(0, 0, 0), 0);
        // PIL's fixed-point (10*19595 + 200*38470 + 30*7471 + 0x8000) >> 16 is 124 too.
        assert_eq!(luminance(10, 200, 30), 124);
    }

    #[test]
    fn extensions_are_matched_without_case() {
        assert!(is_image_file(Path::new("a/B.JPG")));
        assert!(is_image_file(Path::new("a/b.jpeg")));
        assert!(!is_image_file(Path::new("a/b.gif")));
        assert!(!is_image_file(Path::new("a/png")));
    }
}
