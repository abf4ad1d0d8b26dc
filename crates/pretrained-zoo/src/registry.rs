//! The registry of pre-trained models. The project's entries ship inside this crate
//! (`zoo.toml`, read by [`Registry::builtin`]), so a user without transferlab's repository gets
//! their names, recipes and checksums; [`Registry::load`] reads any other registry file.
//!
//! Each entry names an architecture and its configuration, the recipe that trains it (dataset,
//! subset, validation split, seed, training configuration) and, once registered, the test
//! accuracy its reference build measured and the sha256 of its weights. `cargo xtask zoo build`
//! trains missing entries from their recipes into a zoo folder ([`default_zoo_dir`]: an
//! argument, else `TRANSFERLAB_ZOO`, else the per-user cache), deterministically from the seed; [`Registry::load_model`] verifies the
//! checksum of the weights before loading them and refuses a mismatch.
//!
//! CPU training is bit-for-bit repeatable on one machine; another CPU may pick other kernels and
//! produce other bytes. A build whose checksum differs from the registered one is reported as
//! such and kept under its own checksum in the sidecar (`<name>.json`), never silently taken for
//! the registered weights; `zoo build --record` registers it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use core_tensor::checkpoint::{self, LoadMode};
use core_tensor::data::{TensorDataset, split_indices, stratified_indices};
use core_tensor::datasets::{FashionMnist, Fsdd, ImageDataset, Mnist, Recording, Split};
use core_tensor::train::{self, TrainConfig, Trainer};
use core_tensor::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::arch::{ArchConfig, Classifier};

/// The registry file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Entries by name.
    pub models: BTreeMap<String, Entry>,
}

/// One pre-trained model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// What the model is, in a sentence.
    pub description: String,
    /// Architecture and configuration.
    pub model: ArchConfig,
    /// How it is trained.
    pub recipe: Recipe,
    /// What the reference build measured; absent until registered.
    #[serde(default)]
    pub registered: Option<Registered>,
}

/// The measured results of an entry's reference build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registered {
    /// Accuracy on the dataset's test split, measured once after training.
    pub test_accuracy: f64,
    /// sha256 of the weights file (safetensors).
    pub sha256: String,
}

/// How an entry is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The data and how it becomes model input.
    pub data: RecipeData,
    /// Examples per class taken from the training split (all when absent).
    #[serde(default)]
    pub per_class: Option<usize>,
    /// Examples held out of the training split for validation (early stopping, progress).
    pub validation: usize,
    /// Seed of initialisation, subset, split and batch order.
    pub seed: u64,
    /// The training engine's configuration.
    pub train: TrainConfig,
    /// Augmentation of each training batch (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<Augment>,
}

/// Augmentation applied to every training batch, seeded from the recipe's seed and the step,
/// so that a build is deterministic; validation and test images are never augmented.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Pad each side by this many zeros, then crop back to the image's size at a random place
    /// (CIFAR's 4); 0 for no crop.
    #[serde(default)]
    pub crop_padding: i64,
    /// Mirror each image left to right with probability 1/2.
    #[serde(default)]
    pub flip: bool,
}

impl Augment {
    /// The augmented batch for training step `step` of a build seeded `seed`.
    pub fn apply(&self, images: &Tensor, seed: u64, step: u64) -> Result<Tensor> {
        let base = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(step.wrapping_mul(2));
        let mut x = images.shallow_clone();
        if self.crop_padding > 0 {
            let (h, w) = (x.size()[2], x.size()[3]);
            x = core_tensor::transforms::random_crop(&x, h, w, self.crop_padding, base)?;
        }
        if self.flip {
            x = core_tensor::transforms::random_horizontal_flip(&x, 0.5, base.wrapping_add(1))?;
        }
        Ok(x)
    }
}

/// Training data of a recipe, tagged by dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dataset", deny_unknown_fields)]
pub enum RecipeData {
    /// MNIST images, `(x / 255 - mean) / std`.
    #[serde(rename = "mnist")]
    Mnist(ImageInput),
    /// Fashion-MNIST images, `(x / 255 - mean) / std`.
    #[serde(rename = "fashion-mnist")]
    FashionMnist(ImageInput),
    /// FSDD waveforms: takes 5–49 train, takes 0–4 test (the dataset's convention).
    #[serde(rename = "fsdd")]
    Fsdd(AudioInput),
    /// CIFAR-10 from its folder of JPEG files (`cargo xtask fetch cifar10` unpacks it), loaded
    /// by `core_tensor::loaders::load_image_folder` as a user's folder would be: RGB in
    /// `[0, 1]`, then `(x - mean[c]) / std[c]` per channel.
    #[serde(rename = "cifar10")]
    Cifar10(ColourInput),
}

/// Per-channel normalisation of colour images in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColourInput {
    /// Means subtracted, red, green, blue.
    pub mean: [f64; 3],
    /// Standard deviations divided by.
    pub std: [f64; 3],
}

/// Normalisation of 8-bit grey images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// Mean subtracted after scaling to `[0, 1]`.
    pub mean: f64,
    /// Standard deviation divided by.
    pub std: f64,
}

impl ImageInput {
    /// `[N, 1, H, W]` u8 images as the model's float input.
    pub fn prepare(&self, images: &Tensor) -> Tensor {
        (images.to_kind(Kind::Float) / 255.0 - self.mean) / self.std
    }
}

/// Waveforms as model input: each recording scaled to peak 1, then cut or zero-padded to a fixed
/// length (centred).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioInput {
    /// Samples per input (8000 = one second at 8 kHz).
    pub samples: usize,
}

impl AudioInput {
    /// `[N, 1, samples]` float input from recordings.
    pub fn prepare(&self, recordings: &[&Recording]) -> Tensor {
        let len = self.samples;
        let mut flat = vec![0f32; recordings.len() * len];
        for (row, rec) in flat.chunks_mut(len).zip(recordings) {
            let peak = rec
                .samples
                .iter()
                .fold(0f32, |m, s| m.max(s.abs()))
                .max(1e-6);
            let src = &rec.samples;
            // Centre the recording in the window, cropping equally from both ends if longer.
            let (skip, offset) = if src.len() > len {
                ((src.len() - len) / 2, 0)
            } else {
                (0, (len - src.len()) / 2)
            };
            for (dst, s) in row[offset..].iter_mut().zip(&src[skip..]) {
                *dst = s / peak;
            }
        }
        Tensor::from_slice(&flat).view([recordings.len() as i64, 1, len as i64])
    }
}

/// What a model expects of an image: its channels and size, and the per-channel normalisation
/// applied after scaling to `[0, 1]`. [`InputSpec::prepare`] maps images of any channel count
/// and size onto it, explicitly: one channel replicated to three or three reduced to their
/// luminance, resized (bilinear), or — with [`InputSpec::resize`], as ImageNet models expect —
/// the shorter side resized first and the centre cropped, then normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Channels (1 grey, 3 RGB).
    pub channels: i64,
    /// Height and width of the input.
    pub size: [i64; 2],
    /// Resize the shorter side to this, then centre-crop `size` (ImageNet's 256 then 224);
    /// absent: resize straight to `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<i64>,
    /// Means subtracted, one per channel.
    pub mean: Vec<f64>,
    /// Standard deviations divided by, one per channel.
    pub std: Vec<f64>,
}

impl InputSpec {
    /// Checks channels, size and one positive `std` and one `mean` per channel.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(format!("input: {m}")));
        if !matches!(self.channels, 1 | 3) {
            return bad(format!("channels = {}; 1 or 3", self.channels));
        }
        if self.size.iter().any(|&s| s < 1) || self.resize.is_some_and(|r| r < 1) {
            return bad(format!("size {:?} and resize must be positive", self.size));
        }
        if self.mean.len() != self.channels as usize || self.std.len() != self.channels as usize {
            return bad(format!(
                "{} means and {} standard deviations for {} channels",
                self.mean.len(),
                self.std.len(),
                self.channels
            ));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return bad(format!(
                "standard deviations {:?} must be positive",
                self.std
            ));
        }
        Ok(())
    }

    /// `[N, C, H, W]` images in `[0, 1]` (a loader's output) as this model's input.
    pub fn prepare(&self, images: &Tensor) -> Result<Tensor> {
        use core_tensor::transforms;
        self.validate()?;
        if images.dim() != 4 {
            return Err(Error::InvalidArgument(format!(
                "images must be [N, C, H, W], got shape {:?}",
                images.size()
            )));
        }
        let mut x = images.f_to_kind(Kind::Float)?;
        x = match (x.size()[1], self.channels) {
            (c, want) if c == want => x,
            (1, 3) => transforms::grey_to_rgb(&x)?,
            (3, 1) => transforms::rgb_to_grey(&x)?,
            (c, want) => {
                return Err(Error::InvalidArgument(format!(
                    "images have {c} channels; the model takes {want} (1 or 3 can be converted)"
                )));
            }
        };
        let [h, w] = self.size;
        let (ih, iw) = (x.size()[2], x.size()[3]);
        x = match self.resize {
            Some(short) => {
                // The shorter side to `short`, the other in proportion (torchvision's Resize(int)).
                let (rh, rw) = if ih <= iw {
                    (short, (short as f64 * iw as f64 / ih as f64) as i64)
                } else {
                    ((short as f64 * ih as f64 / iw as f64) as i64, short)
                };
                let x = if (rh, rw) != (ih, iw) {
                    transforms::resize(&x, rh, rw)?
                } else {
                    x
                };
                transforms::center_crop(&x, h, w)?
            }
            None if (ih, iw) != (h, w) => transforms::resize(&x, h, w)?,
            None => x,
        };
        transforms::normalize(&x, &self.mean, &self.std)
    }
}

impl RecipeData {
    /// The input the entry's network takes (an error for audio).
    pub fn input_spec(&self) -> Result<InputSpec> {
        match self {
            RecipeData::Mnist(i) | RecipeData::FashionMnist(i) => Ok(InputSpec {
                channels: 1,
                size: [28, 28],
                resize: None,
                mean: vec![i.mean],
                std: vec![i.std],
            }),
            RecipeData::Cifar10(i) => Ok(InputSpec {
                channels: 3,
                size: [32, 32],
                resize: None,
                mean: i.mean.to_vec(),
                std: i.std.to_vec(),
            }),
            RecipeData::Fsdd(_) => Err(Error::InvalidArgument(
                "an audio model (FSDD) takes waveforms, not images".into(),
            )),
        }
    }
}

/// The file of imported models in a zoo folder ([`UserRegistry`]).
pub const USER_REGISTRY_FILE: &str = "imported.toml";

/// Models imported into a zoo folder from checkpoints — your own or published ones — by
/// `cargo xtask zoo import` and `cargo xtask zoo fetch`: `imported.toml` beside their weights,
/// each with the sha256 its weights must have.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRegistry {
    /// Entries by name.
    #[serde(default)]
    pub models: BTreeMap<String, ImportedEntry>,
}

/// One imported model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedEntry {
    /// What the model is.
    pub description: String,
    /// The architecture its `state_dict` fits.
    pub model: ArchConfig,
    /// sha256 of `<name>.safetensors` in the zoo folder.
    pub sha256: String,
    /// The file or URL it was imported from.
    pub source: String,
    /// sha256 of that file.
    pub source_sha256: String,
    /// The input the weights expect, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputSpec>,
}

impl UserRegistry {
    /// `imported.toml` in `zoo_dir`.
    pub fn path(zoo_dir: &Path) -> PathBuf {
        zoo_dir.join(USER_REGISTRY_FILE)
    }

    /// The imported models of `zoo_dir` (none when the file does not exist).
    pub fn load(zoo_dir: &Path) -> Result<Self> {
        let path = Self::path(zoo_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let reg: UserRegistry = toml::from_str(&text).map_err(|e| {
            Error::format(
                &path,
                format!("{e}; fix the entry or import the model again"),
            )
        })?;
        for (name, entry) in &reg.models {
            let input = entry.input.as_ref().map_or(Ok(()), InputSpec::validate);
            entry
                .model
                .validate()
                .and(input)
                .map_err(|e| e.within(&format!("models.{name}")).in_file(&path))?;
        }
        Ok(reg)
    }

    /// Adds (or replaces) `name` in the registry of `zoo_dir`, written atomically.
    pub fn record(zoo_dir: &Path, name: &str, entry: ImportedEntry) -> Result<()> {
        let mut reg = Self::load(zoo_dir)?;
        reg.models.insert(name.to_owned(), entry);
        let text = toml::to_string_pretty(&reg)
            .map_err(|e| Error::InvalidArgument(format!("user registry: {e}")))?;
        let header = "# Models imported into this zoo folder (`cargo xtask zoo import`, `zoo fetch`);\n\
                      # each `sha256` is that of `<name>.safetensors` beside this file.\n\n";
        core_tensor::persist::write_atomic(
            &Self::path(zoo_dir),
            format!("{header}{text}").as_bytes(),
        )
    }

    /// The entry called `name`; the error lists the known names.
    pub fn entry(&self, name: &str) -> Result<&ImportedEntry> {
        self.models.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            Error::InvalidArgument(format!(
                "no imported model {name:?}; {} has: {}",
                USER_REGISTRY_FILE,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// Loads the weights of `name` from `zoo_dir` onto `device` after verifying their checksum.
    pub fn load_model(
        &self,
        zoo_dir: &Path,
        name: &str,
        device: Device,
    ) -> Result<(ImportedEntry, VarStore, Box<dyn Classifier>)> {
        let entry = self.entry(name)?.clone();
        let path = Registry::weights_path(zoo_dir, name);
        let actual = sha256_file(&path)?;
        if actual != entry.sha256 {
            return Err(Error::format(
                &path,
                format!(
                    "checksum mismatch: sha256 {actual}, {} records {}; the file is corrupted or \
                     was replaced. Import it again with `cargo xtask zoo import`",
                    USER_REGISTRY_FILE, entry.sha256
                ),
            ));
        }
        let mut vs = VarStore::new(device);
        let net = entry.model.build(&vs.root())?;
        checkpoint::load(&mut vs, &path, LoadMode::Strict)?;
        Ok((entry, vs, net))
    }
}

/// Train and test sets of a recipe, as model input.
#[derive(Debug)]
pub struct PreparedData {
    /// The training split (before subset and validation hold-out).
    pub train: TensorDataset,
    /// The test split.
    pub test: TensorDataset,
    /// Number of classes.
    pub classes: usize,
}

impl RecipeData {
    /// The dataset name, as `cargo xtask fetch` knows it.
    pub fn dataset(&self) -> &'static str {
        match self {
            RecipeData::Mnist(_) => "mnist",
            RecipeData::FashionMnist(_) => "fashion-mnist",
            RecipeData::Fsdd(_) => "fsdd",
            RecipeData::Cifar10(_) => "cifar10",
        }
    }

    /// Loads the dataset from the fixture cache and prepares it as model input.
    pub fn load(&self, cache: &Path) -> Result<PreparedData> {
        let images = |train: ImageDataset, test: ImageDataset, input: &ImageInput| {
            Ok(PreparedData {
                train: TensorDataset::new(input.prepare(&train.images), train.labels)?,
                test: TensorDataset::new(input.prepare(&test.images), test.labels)?,
                classes: train.classes,
            })
        };
        match self {
            RecipeData::Mnist(input) => images(
                Mnist::load(cache, Split::Train)?,
                Mnist::load(cache, Split::Test)?,
                input,
            ),
            RecipeData::FashionMnist(input) => images(
                FashionMnist::load(cache, Split::Train)?,
                FashionMnist::load(cache, Split::Test)?,
                input,
            ),
            RecipeData::Fsdd(input) => {
                let fsdd = Fsdd::load(cache)?;
                let (train, test) = fsdd.split_by_take();
                let labels = |r: &[&Recording]| {
                    Tensor::from_slice(&r.iter().map(|r| r.digit as i64).collect::<Vec<_>>())
                };
                Ok(PreparedData {
                    train: TensorDataset::new(input.prepare(&train), labels(&train))?,
                    test: TensorDataset::new(input.prepare(&test), labels(&test))?,
                    classes: 10,
                })
            }
            RecipeData::Cifar10(input) => {
                use core_tensor::loaders::image_folder::{
                    Channels, ImageFolderOptions, load_image_folder,
                };
                let root = core_tensor::fixtures::fixture_dir(cache, "cifar10", "cifar-10-images")?;
                let options = ImageFolderOptions::train_test().channels(Channels::Rgb);
                let folder = load_image_folder(&root, &options, Some(cache))?;
                let norm = |d: TensorDataset| -> Result<TensorDataset> {
                    let x = core_tensor::transforms::normalize(&d.inputs, &input.mean, &input.std)?;
                    TensorDataset::new(x, d.targets)
                };
                Ok(PreparedData {
                    classes: folder.class_names.len(),
                    train: norm(folder.train)?,
                    test: norm(folder.test)?,
                })
            }
        }
    }
}

/// What building an entry measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    /// The entry's name.
    pub name: String,
    /// The entry as built.
    pub entry: Entry,
    /// sha256 of the weights written.
    pub sha256: String,
    /// Test accuracy measured once after training.
    pub test_accuracy: f64,
    /// Validation accuracy of the weights kept.
    pub validation_accuracy: Option<f64>,
    /// Examples trained on and held out.
    pub train_examples: usize,
    /// Examples held out for validation.
    pub validation_examples: usize,
    /// The training engine's report.
    pub fit: train::FitReport,
    /// Wall time of the whole build (loading, training, testing).
    pub seconds: f64,
    /// The device trained on.
    pub device: String,
    /// Whether the weights are the registered ones bit for bit (`None`: nothing registered).
    pub matches_registered: Option<bool>,
}

/// A model loaded from the zoo.
pub struct LoadedModel {
    /// The variables (on the device asked for).
    pub vs: VarStore,
    /// The network.
    pub net: Box<dyn Classifier>,
    /// The registry entry.
    pub entry: Entry,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("entry", &self.entry)
            .finish_non_exhaustive()
    }
}

/// The environment variable naming the folder of built weights.
pub const ZOO_ENV: &str = "TRANSFERLAB_ZOO";

/// The registry text shipped with this crate.
const BUILTIN: &str = include_str!("../zoo.toml");

/// The folder holding built weights when the caller names none: `$TRANSFERLAB_ZOO` if set and
/// not empty, else `<per-user cache>/zoo` ([`core_tensor::fixtures::user_cache_root`]), else
/// `transferlab-cache/zoo` in the system's temporary folder.
pub fn default_zoo_dir() -> PathBuf {
    match std::env::var_os(ZOO_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => core_tensor::fixtures::user_cache_dir("zoo"),
    }
}

/// `explicit` if given, else [`default_zoo_dir`].
pub fn resolve_zoo_dir(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(default_zoo_dir, Path::to_path_buf)
}

impl Registry {
    /// Reads a registry file; errors name the file and the bad field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// The registry shipped with this crate: the project's zoo entries (MNIST and
    /// Fashion-MNIST LeNets, the FSDD audio CNN), with their recipes and registered checksums.
    pub fn builtin() -> Result<Self> {
        Self::parse(BUILTIN, Path::new("pretrained-zoo/zoo.toml"))
    }

    /// Parses registry text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let registry: Registry =
            toml::from_str(text).map_err(|e| Error::format(path, e.to_string()))?;
        for (name, entry) in &registry.models {
            entry
                .model
                .validate()
                .and_then(|_| entry.recipe.train.validate())
                .map_err(|e| e.within(&format!("models.{name}")).in_file(path))?;
        }
        Ok(registry)
    }

    /// The entry called `name`; the error lists the known names.
    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.models.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            Error::InvalidArgument(format!(
                "no zoo model {name:?}; the registry has: {}",
                known.join(", ")
            ))
        })
    }

    /// Path of an entry's weights in `zoo_dir`.
    pub fn weights_path(zoo_dir: &Path, name: &str) -> PathBuf {
        zoo_dir.join(format!("{name}.safetensors"))
    }

    /// Path of an entry's build record in `zoo_dir`.
    pub fn record_path(zoo_dir: &Path, name: &str) -> PathBuf {
        zoo_dir.join(format!("{name}.json"))
    }

    /// The checksum the weights of `name` must have: the registered one, else the one its
    /// local build recorded.
    pub fn expected_sha256(&self, zoo_dir: &Path, name: &str) -> Result<String> {
        let entry = self.entry(name)?;
        if let Some(reg) = &entry.registered {
            // No record is fine (the registered checksum decides); a record that is there but
            // unreadable is its own problem, not the weights'.
            let local = if Self::record_path(zoo_dir, name).exists() {
                Some(read_record(zoo_dir, name)?)
            } else {
                None
            };
            // A local build that differs from the registered bytes keeps its own checksum;
            // its record says so, and loading follows the record.
            if let Some(rec) = local.filter(|r| r.matches_registered == Some(false)) {
                return Ok(rec.sha256);
            }
            return Ok(reg.sha256.clone());
        }
        read_record(zoo_dir, name).map(|r| r.sha256)
    }

    /// Loads the weights of `name` onto `device` after verifying their checksum.
    pub fn load_model(&self, zoo_dir: &Path, name: &str, device: Device) -> Result<LoadedModel> {
        let entry = self.entry(name)?.clone();
        let path = Self::weights_path(zoo_dir, name);
        if !path.exists() {
            return Err(Error::format(
                &path,
                format!(
                    "zoo model {name} is not built; build it with `cargo xtask zoo build {name}`"
                ),
            ));
        }
        let expected = self.expected_sha256(zoo_dir, name)?;
        let actual = sha256_file(&path)?;
        if actual != expected {
            return Err(Error::format(
                &path,
                format!(
                    "checksum mismatch: sha256 {actual}, expected {expected}; the file is corrupted \
                     or was replaced. Rebuild it with `cargo xtask zoo build {name}`"
                ),
            ));
        }
        let mut vs = VarStore::new(device);
        let net = entry.model.build(&vs.root())?;
        checkpoint::load(&mut vs, &path, LoadMode::Strict)?;
        Ok(LoadedModel { vs, net, entry })
    }
}

/// Reads the build record of `name`.
///
/// A missing record (the entry was never built here) and a record
/// that cannot be parsed (truncated, edited) are each an [`Error::Format`] that names it and
/// says how to build it again, so that neither is mistaken for damaged weights.
pub fn read_record(zoo_dir: &Path, name: &str) -> Result<BuildRecord> {
    let path = Registry::record_path(zoo_dir, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::format(
                path,
                format!(
                    "no build record of zoo model {name} (its checksum is recorded there); \
                     build it with `cargo xtask zoo build {name}`"
                ),
            ));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    serde_json::from_str(&text).map_err(|e| {
        Error::format(
            &path,
            format!(
                "the build record of zoo model {name} is truncated or corrupted ({e}); rebuild \
                 the model with `cargo xtask zoo build {name}`"
            ),
        )
    })
}

/// Lowercase hex sha256 of a file.
pub use core_tensor::fixtures::sha256_file;

/// Trains entry `name` from its recipe on `device`, writes `<name>.safetensors` and
/// `<name>.json` into `zoo_dir` (atomically), and returns the record.
pub fn build(
    name: &str,
    entry: &Entry,
    cache: &Path,
    zoo_dir: &Path,
    device: Device,
    progress: Option<Box<dyn FnMut(train::Progress)>>,
) -> Result<BuildRecord> {
    let start = Instant::now();
    let recipe = &entry.recipe;
    core_tensor::device::seed(recipe.seed);
    let data = recipe.data.load(cache)?;
    let mut train_set = data.train;
    if let Some(k) = recipe.per_class {
        let idx = stratified_indices(&train_set.targets, data.classes, k, recipe.seed)?;
        train_set = train_set.subset(&idx)?;
    }
    let (fit_idx, val_idx) = split_indices(train_set.len(), recipe.validation, recipe.seed ^ 1)?;
    let fit = train_set.subset(&fit_idx)?.to_device(device);
    let val = train_set.subset(&val_idx)?.to_device(device);
    let test = data.test.to_device(device);

    let vs = VarStore::new(device);
    let net = entry.model.build(&vs.root())?;
    if net.classes() as usize != data.classes {
        return Err(Error::InvalidArgument(format!(
            "models.{name}.model.classes is {} but {} has {} classes",
            net.classes(),
            recipe.data.dataset(),
            data.classes
        )));
    }
    tracing::info!(
        name,
        train = fit.len(),
        validation = val.len(),
        test = test.len(),
        "zoo build"
    );
    let mut trainer = Trainer::new(&vs, recipe.train.clone())?.shuffle_seed(recipe.seed);
    if let Some(p) = progress {
        trainer = trainer.on_progress(p);
    }
    let eval_batch = 128;
    let mut validate = || train::accuracy(&*net, &val, eval_batch);
    let mut step = 0u64;
    let mut augment_error = None;
    let report = trainer.fit(
        &fit,
        |x, y| {
            let x = match recipe.augment.map(|a| a.apply(x, recipe.seed, step)) {
                Some(Ok(augmented)) => augmented,
                Some(Err(e)) => {
                    // The loss becomes NaN, which stops training; the error says why.
                    augment_error.get_or_insert(e);
                    return Tensor::from(f32::NAN).to_device(x.device());
                }
                None => x.shallow_clone(),
            };
            step += 1;
            net.forward_t(&x, true).cross_entropy_for_logits(y)
        },
        Some(&mut validate),
    );
    if let Some(e) = augment_error {
        return Err(e);
    }
    let report = report?;
    drop(trainer);
    let validation_accuracy = train::accuracy(&*net, &val, eval_batch).ok();
    let test_accuracy = train::accuracy(&*net, &test, eval_batch)?;
    let weights = Registry::weights_path(zoo_dir, name);
    let sha256 = checkpoint::save(&vs, &weights)?;
    let record = BuildRecord {
        name: name.to_string(),
        entry: entry.clone(),
        matches_registered: entry.registered.as_ref().map(|r| r.sha256 == sha256),
        sha256,
        test_accuracy,
        validation_accuracy,
        train_examples: fit.len(),
        validation_examples: val.len(),
        fit: report,
        seconds: start.elapsed().as_secs_f64(),
        device: format!("{device:?}"),
    };
    core_tensor::persist::write_json(&Registry::record_path(zoo_dir, name), &record)?;
    Ok(record)
}
