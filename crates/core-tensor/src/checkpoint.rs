//! Checkpoints: a model's variables as a safetensors file whose keys are PyTorch `state_dict`
//! names, so the same file loads into the Rust network and into its PyTorch twin.
//!
//! - [`save`] writes every variable of a [`VarStore`] (atomically, through
//!   [`write_atomic`]) and returns the file's sha256.
//! - [`load`] copies a file's tensors into a [`VarStore`] by name and returns a [`LoadReport`]
//!   of missing and unexpected keys and shape mismatches. [`LoadMode::Strict`] refuses any
//!   difference and then changes nothing; [`LoadMode::NonStrict`] loads what matches.
//! - [`read_tensors`] and [`save_tensors`] do the same for plain lists of named tensors (inputs
//!   and outputs exchanged with Python, for instance).
//!
//! **Formats.** Safetensors (`.safetensors`) is the format written and the one to exchange
//! weights in. PyTorch files (`.pt`, `.pth`, `.bin`) are read through libtorch's own reader
//! (`tch::Tensor::loadz_multi`), which in libtorch 2.13 reads a plain dict of tensors,
//! `torch.save(dict(model.state_dict()), "w.pt")`, but fails on the `OrderedDict` that
//! `torch.save(model.state_dict(), "w.pt")` pickles (the error says so). Such a file is converted
//! once in Python:
//! `safetensors.torch.save_file(dict(torch.load("w.pt", map_location="cpu")), "w.safetensors")`.
//!
//! **Batch-norm counters.** PyTorch's batch norm has a `num_batches_tracked` buffer that tch's
//! has not (with a fixed momentum it does not change the forward pass). Loading ignores a file's
//! `P.num_batches_tracked` when the store has `P.running_mean` but no counter, and lists it in
//! [`LoadReport::ignored`]; saving writes only what the store has, and PyTorch fills a missing
//! counter itself when it loads a safetensors state dict, even with `strict=True`.
//!
//! ```no_run
//! use core_tensor::checkpoint::{self, LoadMode};
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let _fc = tch::nn::linear(vs.root() / "fc", 4, 2, Default::default());
//! let sha256 = checkpoint::save(&vs, "out/fc.safetensors".as_ref())?;
//! let mut other = tch::nn::VarStore::new(tch::Device::Cpu);
//! let _fc = tch::nn::linear(other.root() / "fc", 4, 2, Default::default());
//! let report = checkpoint::load(&mut other, "out/fc.safetensors".as_ref(), LoadMode::Strict)?;
//! assert!(report.is_exact());
//! # Ok::<(), core_tensor::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use sha2::{Digest, Sha256};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::persist::write_atomic;
use crate::{Error, Result};

/// The name of PyTorch's batch-norm batch counter, the last component of its key.
pub const BN_COUNTER: &str = "num_batches_tracked";

/// How [`load`] treats a file that does not match the store exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Any missing key, unexpected key or shape mismatch is an error, and nothing is loaded.
    Strict,
    /// Tensors whose name and shape match are loaded; the rest is only reported. Variables
    /// not loaded keep their values (a new head of another size keeps its fresh
    /// initialisation, for instance).
    NonStrict,
}

/// A tensor whose name matches but whose shape does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The `state_dict` key.
    pub name: String,
    /// The shape of the variable in the store.
    pub expected: Vec<i64>,
    /// The shape in the file.
    pub found: Vec<i64>,
}

/// What [`load`] did: every list is sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Variables copied from the file.
    pub loaded: Vec<String>,
    /// Variables of the store that the file lacks.
    pub missing: Vec<String>,
    /// Keys of the file that the store lacks.
    pub unexpected: Vec<String>,
    /// Keys present in both with different shapes (not loaded).
    pub mismatched: Vec<ShapeMismatch>,
    /// PyTorch batch-norm counters ([`BN_COUNTER`]) that the store has no variable for.
    pub ignored: Vec<String>,
}

impl LoadReport {
    /// True when every variable was loaded and every key of the file used (ignored batch-norm
    /// counters aside).
    pub fn is_exact(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.mismatched.is_empty()
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} loaded", self.loaded.len())?;
        if !self.missing.is_empty() {
            write!(f, "; missing from the file: {}", self.missing.join(", "))?;
        }
        if !self.unexpected.is_empty() {
            write!(
                f,
                "; unexpected in the file: {}",
                self.unexpected.join(", ")
            )?;
        }
        if !self.mismatched.is_empty() {
            let shapes: Vec<String> = self
                .mismatched
                .iter()
                .map(|m| format!("{} (model {:?}, file {:?})", m.name, m.expected, m.found))
                .collect();
            write!(f, "; shape mismatches: {}", shapes.join(", "))?;
        }
        if !self.ignored.is_empty() {
            write!(f, "; {} batch-norm counters ignored", self.ignored.len())?;
        }
        Ok(())
    }
}

/// Saves every variable of `vs` (trainable or not, batch-norm statistics included) to `path` as
/// safetensors under its `state_dict` name, atomically. Returns the lowercase hex sha256 of the
/// file written.
pub fn save(vs: &VarStore, path: &Path) -> Result<String> {
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    save_tensors(&named, path)
}

/// Saves named tensors (any device; moved to the CPU) to `path` as safetensors, atomically.
/// Returns the lowercase hex sha256 of the file written. Names must be unique.
pub fn save_tensors<S: AsRef<str>>(tensors: &[(S, Tensor)], path: &Path) -> Result<String> {
    let mut raw: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, tensor) in tensors {
        let name = name.as_ref();
        let t = tensor.detach().to_device(Device::Cpu).contiguous();
        let kind = t.f_kind()?;
        let dtype = dtype_of(kind).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "saving {}: tensor {name} has kind {kind:?}, which safetensors cannot store",
                path.display()
            ))
        })?;
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        if raw.insert(name.to_owned(), (dtype, shape, bytes)).is_some() {
            return Err(Error::InvalidArgument(format!(
                "saving {}: the name {name} occurs twice",
                path.display()
            )));
        }
    }
    let mut views = Vec::with_capacity(raw.len());
    for (name, (dtype, shape, bytes)) in &raw {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .map_err(|e| Error::InvalidArgument(format!("saving {name}: {e}")))?;
        views.push((name.as_str(), view));
    }
    // The metadata safetensors.torch writes, so that tools recognise a PyTorch state dict.
    let metadata = Some(HashMap::from([("format".to_owned(), "pt".to_owned())]));
    let bytes = safetensors::serialize(views, &metadata)
        .map_err(|e| Error::InvalidArgument(format!("saving {}: {e}", path.display())))?;
    write_atomic(path, &bytes)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Reads every named tensor of a safetensors file, or of a PyTorch `state_dict` file
/// (extension `.pt`, `.pth` or `.bin`), onto the CPU, in the file's order.
///
/// A file that is truncated, corrupted or not in the format its extension says is an
/// [`Error::Format`] naming the file.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pt" | "pth" | "bin" => read_torch(path),
        _ => read_safetensors(path),
    }
}

fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            Error::format(
                path,
                format!(
                    "tensor {name} has dtype {:?}, which is not supported",
                    view.dtype()
                ),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let t = Tensor::f_from_data_size(view.data(), &shape, kind)
            .map_err(|e| Error::format(path, format!("tensor {name}: {e}")))?;
        out.push((name, t));
    }
    Ok(out)
}

fn read_torch(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.is_file() {
        // libtorch's message for a missing file does not say which; std's does.
        std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    }
    let tensors = Tensor::loadz_multi(path).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_owned();
        Error::format(
            path,
            format!(
                "not a PyTorch file libtorch can read ({first}); libtorch reads a plain dict of \
                 tensors, `torch.save(dict(model.state_dict()), path)`, not the OrderedDict \
                 that `state_dict()` returns; convert in Python with \
                 `safetensors.torch.save_file(dict(torch.load(path)), out)`"
            ),
        )
    })?;
    Ok(tensors
        .into_iter()
        .map(|(name, t)| (name, t.to_device(Device::Cpu)))
        .collect())
}

/// Loads the file at `path` (see [`read_tensors`] for the formats) into the variables of `vs`
/// by name.
///
/// In [`LoadMode::Strict`] any difference is an [`Error::Format`] that names the file and lists
/// the keys, and `vs` is left unchanged. Tensors are converted to the variable's kind and device.
pub fn load(vs: &mut VarStore, path: &Path, mode: LoadMode) -> Result<LoadReport> {
    let tensors = read_tensors(path)?;
    load_tensors(vs, tensors, mode, path)
}

/// Copies named tensors into the variables of `vs`, as [`load`] does for a file; `source` only
/// names where they came from in errors.
pub fn load_tensors(
    vs: &mut VarStore,
    tensors: Vec<(String, Tensor)>,
    mode: LoadMode,
    source: &Path,
) -> Result<LoadReport> {
    let vars = vs.variables();
    let mut report = LoadReport::default();
    let mut to_copy = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, tensor) in tensors {
        seen.insert(name.clone());
        match vars.get(&name) {
            Some(var) if var.size() == tensor.size() => to_copy.push((name, var, tensor)),
            Some(var) => report.mismatched.push(ShapeMismatch {
                name,
                expected: var.size(),
                found: tensor.size(),
            }),
            None if is_untracked_counter(&name, &vars) => report.ignored.push(name),
            None => report.unexpected.push(name),
        }
    }
    report.missing = vars
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    report.missing.sort();
    report.unexpected.sort();
    report.mismatched.sort_by(|a, b| a.name.cmp(&b.name));
    report.ignored.sort();
    if mode == LoadMode::Strict && !report.is_exact() {
        return Err(Error::format(
            source,
            format!("does not match the model (strict load, nothing loaded): {report}"),
        ));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var, tensor) in &to_copy {
            let mut var = var.shallow_clone();
            var.f_copy_(tensor)
                .map_err(|e| Error::format(source, format!("copying {name}: {e}")))?;
        }
        Ok(())
    })?;
    report.loaded = to_copy.into_iter().map(|(name, _, _)| name).collect();
    report.loaded.sort();
    tracing::debug!(source = %source.display(), %report, "checkpoint loaded");
    Ok(report)
}

/// `P.num_batches_tracked` where the store has `P.running_mean` but no counter.
fn is_untracked_counter(name: &str, vars: &HashMap<String, Tensor>) -> bool {
    match name.strip_suffix(BN_COUNTER) {
        Some(prefix) if prefix.is_empty() || prefix.ends_with('.') => {
            vars.contains_key(&format!("{prefix}running_mean"))
        }
        _ => false,
    }
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        Kind::Half => Dtype::F16,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Int64 => Dtype::I64,
        Kind::Int => Dtype::I32,
        Kind::Int16 => Dtype::I16,
        Kind::Int8 => Dtype::I8,
        Kind::Uint8 => Dtype::U8,
        Kind::Bool => Dtype::BOOL,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        Dtype::F16 => Kind::Half,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::I64 => Kind::Int64,
        Dtype::I32 => Kind::Int,
        Dtype::I16 => Kind::Int16,
        Dtype::I8 => Kind::Int8,
        Dtype::U8 => Kind::Uint8,
        Dtype::BOOL => Kind::Bool,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn;

    /// A linear layer and a batch norm, as a network would name them.
    fn store(out: i64) -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let _fc = nn::linear(vs.root() / "fc", 3, out, Default::default());
        let _bn = nn::batch_norm1d(vs.root() / "bn", out, Default::default());
        vs
    }

    fn value(vs: &VarStore, name: &str) -> Tensor {
        vs.variables()[name].detach().copy()
    }

    #[test]
    fn save_then_load_round_trips_every_variable_and_returns_the_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let a = store(2);
        let _ = tch::no_grad(|| a.variables()["bn.running_var"].shallow_clone().fill_(3.5));
        let sha = save(&a, &path).unwrap();
        assert_eq!(sha.len(), 64);
        let bytes = std::fs::read(&path).unwrap();
        let expected: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sha, expected);

        let mut b = store(2);
        let report = load(&mut b, &path, LoadMode::Strict).unwrap();
        assert!(report.is_exact(), "{report}");
        assert_eq!(
            report.loaded,
            [
                "bn.bias",
                "bn.running_mean",
                "bn.running_var",
                "bn.weight",
                "fc.bias",
                "fc.weight"
            ]
        );
        for name in &report.loaded {
            assert!(value(&a, name).equal(&value(&b, name)), "{name}");
        }
        // Loading keeps the variables trainable and the store's optimisable list intact.
        assert!(b.variables()["fc.weight"].requires_grad());
        assert_eq!(b.trainable_variables().len(), 4);
    }

    #[test]
    fn the_report_lists_missing_unexpected_and_mismatched_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let extra = Tensor::zeros([1], tch::kind::FLOAT_CPU);
        let fc = Tensor::ones([5, 3], tch::kind::FLOAT_CPU);
        let bias = Tensor::full([2], 7.0, tch::kind::FLOAT_CPU);
        save_tensors(
            &[
                ("fc.weight", fc),
                ("fc.bias", bias),
                ("other.weight", extra),
                // PyTorch's counter for a batch norm the store has: ignored, not unexpected.
                ("bn.num_batches_tracked", Tensor::from(3i64)),
            ],
            &path,
        )
        .unwrap();

        let mut vs = store(2);
        let before = value(&vs, "fc.weight");
        let err = load(&mut vs, &path, LoadMode::Strict)
            .unwrap_err()
            .to_string();
        for needle in [
            "w.safetensors",
            "bn.weight",
            "other.weight",
            "fc.weight (model [2, 3], file [5, 3])",
        ] {
            assert!(err.contains(needle), "{needle} not in {err}");
        }
        // Strict: nothing was loaded, not even the matching bias.
        assert!(value(&vs, "fc.weight").equal(&before));
        assert_ne!(value(&vs, "fc.bias").double_value(&[0]), 7.0);

        let report = load(&mut vs, &path, LoadMode::NonStrict).unwrap();
        assert_eq!(report.loaded, ["fc.bias"]);
        assert_eq!(
            report.missing,
            ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight"]
        );
        assert_eq!(report.unexpected, ["other.weight"]);
        assert_eq!(
            report.mismatched,
            [ShapeMismatch {
                name: "fc.weight".into(),
                expected: vec![2, 3],
                found: vec![5, 3],
            }]
        );
        assert_eq!(report.ignored, ["bn.num_batches_tracked"]);
        assert!(!report.is_exact());
        assert_eq!(value(&vs, "fc.bias").double_value(&[0]), 7.0);
        assert!(value(&vs, "fc.weight").equal(&before));
    }

    #[test]
    fn a_counter_without_its_batch_norm_is_unexpected() {
        let mut vs = store(2);
        let mut tensors: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(k, v)| (k, v.detach().copy()))
            .collect();
        tensors.push(("fc.num_batches_tracked".into(), Tensor::from(1i64)));
        let report = load_tensors(&mut vs, tensors, LoadMode::NonStrict, Path::new("mem")).unwrap();
        assert_eq!(report.unexpected, ["fc.num_batches_tracked"]);
        assert!(report.ignored.is_empty());
    }

    #[test]
    fn tensors_of_every_stored_kind_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let base = Tensor::arange(6, tch::kind::FLOAT_CPU).reshape([2, 3]);
        let kinds = [
            Kind::Float,
            Kind::Double,
            Kind::Half,
            Kind::BFloat16,
            Kind::Int64,
            Kind::Int,
            Kind::Int16,
            Kind::Int8,
            Kind::Uint8,
            Kind::Bool,
        ];
        let named: Vec<(String, Tensor)> = kinds
            .iter()
            .map(|k| (format!("{k:?}"), base.to_kind(*k)))
            .chain([("scalar".to_owned(), Tensor::from(2.5f64))])
            .collect();
        save_tensors(&named, &path).unwrap();
        let back: HashMap<String, Tensor> = read_tensors(&path).unwrap().into_iter().collect();
        assert_eq!(back.len(), named.len());
        for (name, t) in &named {
            assert_eq!(back[name].kind(), t.kind(), "{name}");
            assert_eq!(back[name].size(), t.size(), "{name}");
            assert!(back[name].equal(t), "{name}");
        }
    }

    #[test]
    fn truncated_corrupted_and_missing_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.safetensors");
        save(&store(4), &good).unwrap();
        let bytes = std::fs::read(&good).unwrap();

        let cases: [(&str, Vec<u8>); 4] = [
            ("truncated.safetensors", bytes[..bytes.len() - 5].to_vec()),
            ("short.safetensors", bytes[..5].to_vec()),
            ("empty.safetensors", Vec::new()),
            ("garbage.safetensors", {
                // A header length far larger than the file.
                let mut b = bytes.clone();
                b[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            }),
        ];
        for (name, contents) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            let mut vs = store(4);
            let err = load(&mut vs, &path, LoadMode::NonStrict).unwrap_err();
            assert!(matches!(err, Error::Format { .. }), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }

        // A header that is not JSON.
        let path = dir.path().join("header.safetensors");
        let mut b = bytes.clone();
        b[8] = b'#';
        std::fs::write(&path, b).unwrap();
        let err = read_tensors(&path).unwrap_err().to_string();
        assert!(err.contains("header.safetensors"), "{err}");

        let missing = dir.path().join("missing.safetensors");
        let err = read_tensors(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.safetensors"), "{err}");

        // A file claiming to be a PyTorch zip that is not one.
        let pt = dir.path().join("bad.pt");
        std::fs::write(&pt, b"not a zip").unwrap();
        let err = read_tensors(&pt).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err}");
        assert!(err.to_string().contains("bad.pt"), "{err}");
        let err = read_tensors(&dir.path().join("absent.pt")).unwrap_err();
        assert!(err.to_string().contains("absent.pt"), "{err}");
    }

    #[test]
    fn duplicate_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::zeros([1], tch::kind::FLOAT_CPU);
        let err = save_tensors(&[("a", t.shallow_clone()), ("a", t)], &dir.path().join("d"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
    }
}
